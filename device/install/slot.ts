/**
 * The inactive slot as a write target: a block device or a plain file (tests, the fleet simulator). Its
 * size is fixed (files are pre-sized like a partition), so "does the image fit" is known before the first
 * write. Writes go straight to the slot at their offset: never to a temp copy.
 */
import { execFile } from "node:child_process";
import { createHash, type Hash } from "node:crypto";
import { type FileHandle, open, stat } from "node:fs/promises";
import { promisify } from "node:util";
import { describeError } from "../../core/errors.ts";
import { SlotError } from "../errors.ts";

const execFileP = promisify(execFile);

/** Size in bytes of a slot: a file's length, or a block device's size (`blockdev --getsize64`). */
export async function slotSize(path: string): Promise<number> {
  let st: Awaited<ReturnType<typeof stat>>;
  try {
    st = await stat(path);
  } catch (err) {
    throw new SlotError(path, `cannot stat (${describeError(err)})`, { cause: err });
  }
  if (st.isFile()) return st.size;
  if (st.isBlockDevice()) {
    try {
      const { stdout } = await execFileP("blockdev", ["--getsize64", path]);
      return Number.parseInt(stdout.trim(), 10);
    } catch (err) {
      throw new SlotError(path, `cannot read the block device size (${describeError(err)})`, {
        cause: err,
      });
    }
  }
  throw new SlotError(path, "is neither a regular file nor a block device");
}

export class SlotWriter {
  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
  ) {}

  /** Opens for writing in place (r+: never truncates, never creates). */
  static async open(path: string): Promise<SlotWriter> {
    try {
      return new SlotWriter(path, await open(path, "r+"));
    } catch (err) {
      throw new SlotError(path, `cannot open for writing (${describeError(err)})`, { cause: err });
    }
  }

  async write(chunk: Buffer, position: number): Promise<void> {
    let done = 0;
    try {
      while (done < chunk.length) {
        const { bytesWritten } = await this.fh.write(chunk, done, chunk.length - done, position + done);
        done += bytesWritten;
      }
    } catch (err) {
      throw new SlotError(this.path, `write at byte ${position + done} failed (${describeError(err)})`, {
        cause: err,
      });
    }
  }

  async sync(): Promise<void> {
    try {
      await this.fh.datasync();
    } catch (err) {
      throw new SlotError(this.path, `fsync failed (${describeError(err)})`, { cause: err });
    }
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

const READ_CHUNK = 1024 * 1024;

/**
 * Feeds bytes [start, end) of the slot into `hash`, reusing one buffer: used to rebuild the running hash
 * after a restart mid-download, and for the read-back check.
 */
export async function hashSlotRange(
  path: string,
  start: number,
  end: number,
  hash: Hash = createHash("sha256"),
  signal?: AbortSignal,
): Promise<Hash> {
  let fh: FileHandle;
  try {
    fh = await open(path, "r");
  } catch (err) {
    throw new SlotError(path, `cannot open for reading (${describeError(err)})`, { cause: err });
  }
  try {
    const buf = Buffer.allocUnsafe(READ_CHUNK);
    let pos = start;
    while (pos < end) {
      signal?.throwIfAborted();
      const { bytesRead } = await fh.read(buf, 0, Math.min(READ_CHUNK, end - pos), pos);
      if (bytesRead === 0) throw new SlotError(path, `ends at byte ${pos}, expected ${end}`);
      hash.update(buf.subarray(0, bytesRead));
      pos += bytesRead;
    }
    return hash;
  } catch (err) {
    if (err instanceof SlotError) throw err;
    if (signal?.aborted) throw err;
    throw new SlotError(path, `read failed (${describeError(err)})`, { cause: err });
  } finally {
    await fh.close();
  }
}

/**
 * Coalesces incoming chunks into large blocks written at their offset, with at most one block write and
 * one fsync in flight while the next block fills: the network, the hash and the disk overlap instead of
 * taking turns. Two preallocated blocks are the only buffers: memory stays flat whatever the image size.
 * `onDurable(offset)` is called once everything below `offset` has been fsynced (the resume point).
 */
export class BlockPipeline {
  private blocks: [Buffer, Buffer];
  private fill = 0;
  private blockStart: number;
  private pendingWrite: Promise<void> | null = null;
  private pendingSync: Promise<void> | null = null;
  private written: number;
  private lastDurable: number;

  constructor(
    private readonly writer: SlotWriter,
    start: number,
    private readonly checkpointBytes: number,
    private readonly onDurable: (offset: number) => Promise<void>,
    blockSize = 4 * 1024 * 1024,
  ) {
    this.blocks = [Buffer.allocUnsafe(blockSize), Buffer.allocUnsafe(blockSize)];
    this.blockStart = start;
    this.written = start;
    this.lastDurable = start;
  }

  /** Consecutive chunks only: `position` must be where the previous chunk ended. */
  async push(chunk: Buffer, position: number): Promise<void> {
    if (position !== this.blockStart + this.fill) {
      throw new SlotError(
        this.writer.path,
        `non-consecutive write at ${position}, expected ${this.blockStart + this.fill}`,
      );
    }
    let done = 0;
    while (done < chunk.length) {
      const block = this.blocks[0];
      const n = chunk.copy(block, this.fill, done);
      this.fill += n;
      done += n;
      if (this.fill === block.length) await this.flushBlock();
    }
  }

  private async flushBlock(): Promise<void> {
    if (this.fill === 0) return;
    // One write in flight: wait for the previous block before reusing its buffer.
    await this.pendingWrite;
    // Bounded lag: never more than two checkpoints past the last durable offset (a crash loses little).
    if (this.pendingSync && this.written - this.lastDurable >= 2 * this.checkpointBytes)
      await this.pendingSync;
    const block = this.blocks[0].subarray(0, this.fill);
    const at = this.blockStart;
    const end = at + this.fill;
    this.pendingWrite = this.writer.write(block, at).then(() => {
      this.written = end;
      this.maybeSync();
    });
    // Errors surface on the next await of pendingWrite (the next flush, finish or drain); until then a
    // failed write must not be an unhandled rejection, which would crash the agent (found by the torture run).
    this.pendingWrite.catch(() => {});
    this.blocks = [this.blocks[1], this.blocks[0]];
    this.blockStart = end;
    this.fill = 0;
  }

  /** Starts an fsync in the background once enough new bytes are written; records the offset it covers. */
  private maybeSync(): void {
    if (this.pendingSync || this.written - this.lastDurable < this.checkpointBytes) return;
    const covered = this.written;
    this.pendingSync = this.writer
      .sync()
      .then(() => this.onDurable(covered))
      .then(() => {
        this.lastDurable = covered;
        this.pendingSync = null;
      });
    // Errors surface on the next await of pendingSync (finish or the next push's flush).
    this.pendingSync.catch(() => {});
  }

  /** Writes what is left, waits for everything in flight, fsyncs. */
  async finish(): Promise<void> {
    await this.flushBlock();
    await this.pendingWrite;
    await this.pendingSync;
    await this.writer.sync();
  }

  /** Waits for in-flight work without writing the partial block (abandon, cut). */
  async drain(): Promise<void> {
    await this.pendingWrite?.catch(() => {});
    await this.pendingSync?.catch(() => {});
  }
}
