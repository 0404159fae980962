/**
 * Runs the Debian tools the image builder drives. The tail of their output is kept for the error, so a
 * failed step says why; builds run under `nice` because they share the machine with everything else.
 */
import { spawn } from "node:child_process";
import { OsToolError } from "./errors.ts";

export interface RunOptions {
  cwd?: string;
  env?: Record<string, string>;
  /** Bytes written to the tool's stdin. */
  input?: Buffer;
}

export function run(tool: string, args: ReadonlyArray<string>, opts: RunOptions = {}): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn("nice", ["-n", "10", tool, ...args], {
      cwd: opts.cwd,
      env: { ...process.env, LC_ALL: "C", ...opts.env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    let tail = "";
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => {
      tail = (tail + b.toString("utf8")).slice(-4096);
    });
    child.on("error", (err) => reject(new OsToolError(tool, err.message, "", { cause: err })));
    child.on("close", (code, signal) => {
      if (code === 0) resolve(Buffer.concat(out));
      else {
        const hint =
          code === 127
            ? "not found (run `npm run ensure-tools` as root)"
            : `exited with ${signal ?? `code ${code}`}`;
        reject(new OsToolError(tool, hint, tail));
      }
    });
    // A tool that exits without reading its stdin closes the pipe (EPIPE): its exit status, handled on
    // "close", says whether that was a failure; unhandled, the pipe error would crash the whole process.
    child.stdin.on("error", () => undefined);
    child.stdin.end(opts.input ?? Buffer.alloc(0));
  });
}
