/**
 * A power switch for one node's files, for the torture run (docs/guarantees.md). Every file system call
 * the agent makes under the node's directory goes through here (node:fs/promises and FileHandle are
 * patched once, in this process); each call that changes the disk is a numbered cut point. At the chosen
 * one the power goes off: a write lands torn (a random prefix of its bytes), a rename or fsync lands or
 * not (a coin), and from then on every call under the directory fails with PowerCutError, so the agent
 * can change nothing more. With `lossy`, the node's files are then put back to what was durable: data a
 * file held at its last fsync, names a directory held at its last fsync, so writes that were never
 * synced are really lost (what ext4 with delayed allocation may do on a power cut).
 */
import fs, { type Stats } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { syncBuiltinESMExports } from "node:module";
import { join } from "node:path";

export class PowerCutError extends Error {
  override name = "PowerCutError";
}

const P = fs.promises;
const orig = {
  open: P.open,
  rename: P.rename,
  rm: P.rm,
  unlink: P.unlink,
  writeFile: P.writeFile,
  readFile: P.readFile,
  readdir: P.readdir,
  stat: P.stat,
  mkdir: P.mkdir,
};

interface Durable {
  /** dir → name → inode, as of the directory's last fsync (or power-on). */
  names: Map<string, Map<string, number>>;
  /** inode → bytes, as of the file's last fsync (or power-on). */
  data: Map<number, Buffer>;
}

export class PowerSwitch {
  /** Cut points passed so far in this power-on. */
  ops = 0;
  /** The cut point at which the power goes off; null: never. */
  cutAt: number | null = null;
  dead = false;
  /** Off while the harness itself (firmware, checks) touches the files. */
  enabled = false;
  private durable: Durable = { names: new Map(), data: new Map() };
  private readonly paths = new WeakMap<FileHandle, string>();

  constructor(
    readonly root: string,
    readonly lossy: boolean,
    readonly random: () => number,
  ) {}

  ours(path: unknown): boolean {
    return (
      this.enabled && typeof path === "string" && (path === this.root || path.startsWith(`${this.root}/`))
    );
  }

  alive(path: unknown): void {
    if (this.dead && typeof path === "string" && path.startsWith(this.root)) {
      throw new PowerCutError(`power is off (${path})`);
    }
  }

  /** One cut point; true when the power goes off here. */
  point(): boolean {
    const n = this.ops++;
    if (this.cutAt !== null && n === this.cutAt) {
      this.dead = true;
      return true;
    }
    return false;
  }

  /** Power on: everything on disk now is durable; count from zero; cut at `cutAt`. */
  async powerOn(cutAt: number | null): Promise<void> {
    this.dead = false;
    this.ops = 0;
    this.cutAt = cutAt;
    if (this.lossy) this.durable = await snapshot(this.root);
  }

  /** After a cut (lossy): the node's files become what was durable. */
  async restoreDurable(): Promise<void> {
    if (!this.lossy) return;
    for (const [dir, names] of this.durable.names) {
      const now = await orig.readdir(dir, { withFileTypes: true }).catch(() => []);
      for (const e of now) {
        if (e.isFile() && !names.has(e.name)) await orig.rm(join(dir, e.name), { force: true });
      }
      for (const [name, ino] of names) {
        const p = join(dir, name);
        const st = await orig.stat(p).catch(() => null);
        if (st?.isDirectory()) continue;
        await orig.writeFile(p, this.durable.data.get(ino) ?? Buffer.alloc(0));
      }
    }
  }

  async synced(fh: FileHandle): Promise<void> {
    if (!this.lossy) return;
    const path = this.paths.get(fh);
    if (!path) return;
    const st = await fh.stat();
    if (st.isDirectory()) {
      const names = new Map<string, number>();
      for (const e of await orig.readdir(path, { withFileTypes: true })) {
        if (!e.isFile()) continue;
        names.set(e.name, (await orig.stat(join(path, e.name))).ino);
      }
      this.durable.names.set(path, names);
    } else {
      this.durable.data.set(st.ino, await orig.readFile(path));
    }
  }

  track(fh: FileHandle, path: string): void {
    this.paths.set(fh, path);
  }
  pathOf(fh: FileHandle): string | undefined {
    return this.paths.get(fh);
  }
}

async function snapshot(root: string): Promise<Durable> {
  const d: Durable = { names: new Map(), data: new Map() };
  const walk = async (dir: string) => {
    const names = new Map<string, number>();
    for (const e of await orig.readdir(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) {
        await walk(p);
        continue;
      }
      if (!e.isFile()) continue;
      const st: Stats = await orig.stat(p);
      names.set(e.name, st.ino);
      d.data.set(st.ino, await orig.readFile(p));
    }
    d.names.set(dir, names);
  };
  await walk(root);
  return d;
}

let current: PowerSwitch | null = null;
let installed = false;

/** Routes this process's file calls through `sw` (one switch at a time). */
export async function installPowerSwitch(sw: PowerSwitch): Promise<void> {
  current = sw;
  if (installed) return;
  installed = true;
  const probe = await orig.open(process.execPath, "r");
  const proto = Object.getPrototypeOf(probe) as Record<string, (...a: unknown[]) => Promise<unknown>>;
  await probe.close();
  const writing = (flags: unknown) => flags !== undefined && flags !== "r" && flags !== fs.constants.O_RDONLY;

  P.open = (async (path: string, flags?: string | number, mode?: number) => {
    const sw = current;
    if (sw?.ours(path)) {
      sw.alive(path);
      if (writing(flags) && sw.point()) throw new PowerCutError(`cut before open ${path}`);
    }
    const fh = await orig.open(path, flags, mode);
    if (sw?.ours(path)) sw.track(fh, path);
    return fh;
  }) as typeof P.open;

  for (const name of ["rename", "rm", "unlink"] as const) {
    const f = orig[name] as (...a: unknown[]) => Promise<void>;
    (P as unknown as Record<string, unknown>)[name] = async (...a: unknown[]) => {
      const sw = current;
      if (sw?.ours(a[0])) {
        sw.alive(a[0]);
        if (sw.point()) {
          if (sw.random() < 0.5) await f(...a); // the disk got it done, or not
          throw new PowerCutError(`cut at ${name} ${String(a[0])}`);
        }
      }
      return f(...a);
    };
  }
  P.writeFile = (async (path: string, data: string | Uint8Array, opts?: unknown) => {
    const sw = current;
    if (sw?.ours(path)) {
      sw.alive(path);
      if (sw.point()) {
        const b = Buffer.from(data);
        await orig.writeFile(path, b.subarray(0, Math.floor(sw.random() * b.length)));
        throw new PowerCutError(`torn writeFile ${path}`);
      }
    }
    return orig.writeFile(path, data, opts as never);
  }) as typeof P.writeFile;
  for (const name of ["readFile", "readdir", "stat", "mkdir"] as const) {
    const f = orig[name] as (...a: unknown[]) => Promise<unknown>;
    (P as unknown as Record<string, unknown>)[name] = (...a: unknown[]) => {
      if (current?.ours(a[0])) current.alive(a[0]);
      return f(...a);
    };
  }

  const fhWrite = proto.write as (this: FileHandle, ...a: unknown[]) => Promise<{ bytesWritten: number }>;
  proto.write = async function (this: FileHandle, ...a: unknown[]) {
    const sw = current;
    const path = sw?.pathOf(this);
    if (sw && path && sw.ours(path)) {
      sw.alive(path);
      if (sw.point()) {
        if (!(a[0] instanceof Uint8Array)) throw new PowerCutError(`cut before write to ${path}`);
        const buf = a[0];
        const offset = (a[1] as number | undefined) ?? 0;
        const length = (a[2] as number | undefined) ?? buf.byteLength - offset;
        await fhWrite.call(this, buf, offset, Math.floor(sw.random() * length), a[3]);
        throw new PowerCutError(`torn write to ${path}`);
      }
    }
    return fhWrite.apply(this, a);
  };
  const fhWriteFile = proto.writeFile as (this: FileHandle, ...a: unknown[]) => Promise<void>;
  proto.writeFile = async function (this: FileHandle, ...a: unknown[]) {
    const sw = current;
    const path = sw?.pathOf(this);
    if (sw && path && sw.ours(path)) {
      sw.alive(path);
      if (sw.point()) {
        const b = Buffer.from(a[0] as string | Uint8Array);
        await fhWriteFile.call(this, b.subarray(0, Math.floor(sw.random() * b.length)));
        throw new PowerCutError(`torn write to ${path}`);
      }
    }
    return fhWriteFile.apply(this, a);
  };
  for (const name of ["sync", "datasync"] as const) {
    const f = proto[name] as (this: FileHandle) => Promise<void>;
    proto[name] = async function (this: FileHandle) {
      const sw = current;
      const path = sw?.pathOf(this);
      if (sw && path && sw.ours(path)) {
        sw.alive(path);
        if (sw.point()) {
          // The cut lands while the disk flushes: the data may or may not have reached it.
          if (sw.random() < 0.5) await sw.synced(this);
          throw new PowerCutError(`cut during ${name} of ${path}`);
        }
        await f.call(this);
        await sw.synced(this);
        return;
      }
      return f.call(this);
    };
  }
  syncBuiltinESMExports();
}
