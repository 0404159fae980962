/**
 * U-Boot environment codec and store (docs/bootloaders.md#environment-format), compatible with U-Boot, mkenvimage and
 * libubootenv's fw_printenv/fw_setenv.
 *
 * Layout: single copy `crc32(4) | data(SIZE-4)`; redundant `crc32(4) | flags(1) | data(SIZE-5)`. The CRC is
 * zlib's CRC-32 over the whole data area including padding, little-endian. Data: `name=value\0` entries,
 * one more `\0`, then padding. With two copies the writer always writes the copy that is NOT current, with
 * flag = current + 1 (mod 256), so a cut write leaves the current copy untouched and its CRC wins.
 */
import { z } from "zod";
import { readAt, writeAt } from "./atomic-file.ts";
import { BootEnvFormatError, BootEnvTooSmallError, BootUsageError, NoValidEnvError } from "./errors.ts";

/** One line of fw_env.config: where a copy lives and how big it is (CONFIG_ENV_SIZE). */
export const UbootEnvCopySchema = z.strictObject({
  path: z.string().min(1).describe("file or block device holding this copy"),
  offset: z.number().int().nonnegative().default(0).describe("byte offset of the copy"),
  size: z
    .number()
    .int()
    .min(16)
    .max(16 * 1024 * 1024)
    .describe("CONFIG_ENV_SIZE in bytes, equal for both copies"),
});
export type UbootEnvCopy = z.output<typeof UbootEnvCopySchema>;

/** One copy (single) or two (redundant), as one or two lines of fw_env.config. */
export const UbootEnvFilesSchema = z
  .array(UbootEnvCopySchema)
  .min(1)
  .max(2)
  .refine((c) => c.length === 1 || c[0]?.size === c[1]?.size, {
    message: "both copies of a redundant environment must have the same size",
  })
  .refine(
    ([a, b]) =>
      !a || !b || a.path !== b.path || a.offset + a.size <= b.offset || b.offset + b.size <= a.offset,
    { message: "the two copies overlap" },
  );

// ---- CRC-32 (zlib polynomial 0xEDB88320); zlib.crc32 only exists from Node 22 ----
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(data: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++)
    c = (CRC_TABLE[(c ^ (data[i] as number)) & 0xff] as number) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export type UbootEntries = Array<[string, string]>;

/** Header bytes before the data area. */
export const headerSize = (redundant: boolean): number => (redundant ? 5 : 4);

export interface EncodeOptions {
  size: number;
  redundant: boolean;
  /** Redundant only: the copy's serial number (mkenvimage -r writes 1). */
  flags?: number;
  /** Fill byte after the terminator (mkenvimage default 0xFF, `-p 0`; U-Boot saveenv fills with 0). */
  pad?: number;
}

/** Serializes entries in the given order (mkenvimage keeps input order; U-Boot and we write sorted). */
export function encodeUbootEnv(entries: UbootEntries, opts: EncodeOptions): Buffer {
  const hdr = headerSize(opts.redundant);
  const out = Buffer.alloc(opts.size, opts.pad ?? 0);
  let p = hdr;
  for (const [name, value] of entries) {
    if (name.length === 0 || name.includes("=") || name.includes("\0") || value.includes("\0")) {
      throw new BootUsageError(`invalid U-Boot environment entry ${JSON.stringify(name)}`);
    }
    const line = Buffer.from(`${name}=${value}\0`, "utf8");
    // Room must remain for the final terminator.
    if (p + line.length + 1 > opts.size) throw new BootEnvTooSmallError("U-Boot environment", opts.size);
    line.copy(out, p);
    p += line.length;
  }
  out[p] = 0; // an empty environment is a single NUL, as mkenvimage writes it
  if (opts.redundant) out[4] = (opts.flags ?? 1) & 0xff;
  out.writeUInt32LE(crc32(out.subarray(hdr)), 0);
  return out;
}

export interface DecodedCopy {
  /** CRC over the data area matches. */
  valid: boolean;
  /** Redundant copies only; 0 for a single copy. */
  flags: number;
  entries: UbootEntries;
}

/** Decodes one copy; an invalid CRC is reported, not thrown (copy selection needs to see it). */
export function decodeUbootEnv(bytes: Uint8Array, redundant: boolean): DecodedCopy {
  const buf = Buffer.from(bytes);
  const hdr = headerSize(redundant);
  if (buf.length <= hdr + 1)
    throw new BootEnvFormatError(`U-Boot environment of ${buf.length} bytes is too small`);
  const data = buf.subarray(hdr);
  const valid = buf.readUInt32LE(0) === crc32(data);
  const flags = redundant ? (buf[4] as number) : 0;
  const entries: UbootEntries = [];
  if (valid) {
    let p = 0;
    while (p < data.length && data[p] !== 0) {
      let end = data.indexOf(0, p);
      if (end < 0) end = data.length;
      const line = data.toString("utf8", p, end);
      const eq = line.indexOf("=");
      // U-Boot's himport skips entries without '='.
      if (eq > 0) entries.push([line.slice(0, eq), line.slice(eq + 1)]);
      p = end + 1;
    }
  }
  return { valid, flags, entries };
}

/**
 * Which copy U-Boot and libubootenv load (env/common.c env_import_redund): only valid copies count; of two
 * valid ones flags 255 loses to 0 (wrap-around), else the larger flag wins, equal → copy 1. null = none
 * valid (U-Boot falls back to its built-in default environment).
 */
export function selectCopy(copies: ReadonlyArray<Pick<DecodedCopy, "valid" | "flags">>): number | null {
  const [a, b] = copies;
  if (!a) return null;
  if (!b) return a.valid ? 0 : null;
  if (!a.valid && !b.valid) return null;
  if (a.valid !== b.valid) return a.valid ? 0 : 1;
  if (a.flags === 255 && b.flags === 0) return 1;
  if (b.flags === 255 && a.flags === 0) return 0;
  return b.flags > a.flags ? 1 : 0;
}

/** ASCII order, upper before lower, as fw_setenv and U-Boot's saveenv write it. */
const byName = (x: [string, string], y: [string, string]): number => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0);

/** One edit: a value sets the variable; null or "" deletes it (`fw_setenv name=`). */
export type UbootEnvChange = readonly [name: string, value: string | null];

export interface UbootEnvSnapshot {
  /** Index of the copy in use; null when no copy is valid (the loader's default environment). */
  current: number | null;
  flags: number;
  vars: Record<string, string>;
  copies: DecodedCopy[];
}

/** A planned write: the whole image of one copy. Exposed so tests can cut it at every byte. */
export interface UbootEnvWrite {
  copy: UbootEnvCopy;
  bytes: Buffer;
}

export class UbootEnvStore {
  readonly redundant: boolean;

  constructor(readonly copies: readonly UbootEnvCopy[]) {
    if (copies.length < 1 || copies.length > 2)
      throw new BootUsageError("a U-Boot environment has one or two copies");
    this.redundant = copies.length === 2;
  }

  async read(): Promise<UbootEnvSnapshot> {
    const decoded = await Promise.all(
      this.copies.map(async (c) => decodeUbootEnv(await readAt(c.path, c.offset, c.size), this.redundant)),
    );
    const current = selectCopy(decoded);
    const chosen = current === null ? undefined : decoded[current];
    return {
      current,
      flags: chosen?.flags ?? 0,
      vars: Object.fromEntries(chosen?.entries ?? []),
      copies: decoded,
    };
  }

  /**
   * The write for `changes`: current variables with the changes applied, sorted, zero-filled, into the
   * non-current copy with flag+1. With no valid copy we refuse, as fw_setenv does: writing only our
   * variables would replace U-Boot's built-in default environment (bootcmd …) and brick the board.
   * `fromDefault` is for the simulated firmware, whose saveenv writes the default environment it booted.
   */
  plan(snapshot: UbootEnvSnapshot, changes: readonly UbootEnvChange[], fromDefault = false): UbootEnvWrite {
    if (snapshot.current === null && !fromDefault) {
      throw new NoValidEnvError(
        `no valid U-Boot environment in ${this.copies.map((c) => `${c.path}@${c.offset}`).join(", ")} (bad CRC); provision it with mkenvimage`,
      );
    }
    const vars = new Map(Object.entries(snapshot.vars));
    for (const [name, value] of changes) {
      if (value === null || value === "") vars.delete(name);
      else vars.set(name, value);
    }
    const entries = [...vars.entries()].sort(byName);
    const target = this.redundant ? (snapshot.current === 0 ? 1 : 0) : 0;
    const copy = this.copies[target] as UbootEnvCopy;
    const bytes = encodeUbootEnv(entries, {
      size: copy.size,
      redundant: this.redundant,
      flags: (snapshot.flags + 1) & 0xff,
      pad: 0,
    });
    return { copy, bytes };
  }

  static async commit(w: UbootEnvWrite): Promise<void> {
    await writeAt(w.copy.path, w.copy.offset, w.bytes);
  }

  /** Read, apply, write the other copy: one physical write per call. */
  async update(changes: readonly UbootEnvChange[], fromDefault = false): Promise<UbootEnvSnapshot> {
    const snap = await this.read();
    await UbootEnvStore.commit(this.plan(snap, changes, fromDefault));
    return snap;
  }
}
