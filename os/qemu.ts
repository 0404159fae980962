/**
 * Boots a KeelOS disk under QEMU: TCG (KVM does not work on the machines this project runs on), the
 * serial console on stdout (kept in a log file and scanned for markers), an i6300esb watchdog that
 * resets the machine, virtio disk and network. `-no-reboot` turns every reset (reboot, panic, watchdog)
 * into QEMU exiting; the caller power-cycles by starting a fresh QEMU on the same disk, which is 2–3×
 * faster under TCG than a warm reset (docs/os-image.md).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, type WriteStream } from "node:fs";
import { copyFile } from "node:fs/promises";
import { join } from "node:path";
import { OsToolError } from "./errors.ts";
import { run } from "./exec.ts";

export type Firmware = "bios" | "uefi";
/** Terminal escape sequences (ESC [ … letter) that GRUB and systemd write to the console. */
const ANSI_ESCAPE = new RegExp(`${String.fromCharCode(27)}\\[[0-9;?]*[A-Za-z]`, "g");
const OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd";

export interface QemuOptions {
  /** The disk QEMU writes: a qcow2 overlay (see `makeOverlay`) or a raw image. */
  disk: string;
  firmware: Firmware;
  /** Directory for the UEFI variable store copy. */
  workDir: string;
  serialLog: string;
  memMiB?: number;
  /** Host ports forwarded into the guest (hostfwd), e.g. for SSH-less probes; rarely needed. */
  extraArgs?: string[];
  /** QEMU's disk cache mode; `unsafe` drops flushes, `none` bypasses the host page cache. */
  cache?: "writeback" | "unsafe" | "none" | "directsync";
}

/** A qcow2 overlay on a base disk, so a run never changes the base image. */
export async function makeOverlay(base: string, overlay: string): Promise<void> {
  await run("qemu-img", ["create", "-q", "-f", "qcow2", "-F", "raw", "-b", base, overlay]);
}

export async function qemuArgs(o: QemuOptions): Promise<string[]> {
  const format = o.disk.endsWith(".qcow2") ? "qcow2" : "raw";
  const args = [
    "-accel",
    "tcg",
    "-m",
    String(o.memMiB ?? 1024),
    "-smp",
    "1",
    "-display",
    "none",
    "-serial",
    "stdio",
    "-monitor",
    "none",
    "-no-reboot",
    "-drive",
    `file=${o.disk},if=virtio,format=${format},cache=${o.cache ?? "writeback"}`,
    "-netdev",
    "user,id=n0",
    "-device",
    "virtio-net-pci,netdev=n0",
    "-device",
    "i6300esb",
    "-watchdog-action",
    "reset",
  ];
  if (o.firmware === "uefi") {
    const vars = join(o.workDir, "OVMF_VARS.fd");
    await copyFile(OVMF_VARS, vars);
    args.push(
      "-drive",
      `if=pflash,format=raw,unit=0,readonly=on,file=${OVMF_CODE}`,
      "-drive",
      `if=pflash,format=raw,unit=1,file=${vars}`,
    );
  }
  return [...args, ...(o.extraArgs ?? [])];
}

export interface Boot {
  child: ChildProcess;
  /** Resolves with the first serial line matching `re` (text since this boot started). */
  waitFor(re: RegExp, timeoutMs: number): Promise<string>;
  /** Everything the serial console printed in this boot. */
  output(): string;
  /** Resolves when QEMU exits (the guest reset, powered off, or was killed). */
  exited: Promise<number | null>;
  /**
   * Runs a shell command on the serial console (needs config/serial-shell on the persistence partition)
   * and resolves with its output.
   */
  shell(command: string, timeoutMs: number): Promise<string>;
  /** Power cut: SIGKILL, no guest shutdown. */
  kill(): void;
  startedAt: number;
}

export async function boot(o: QemuOptions): Promise<Boot> {
  const args = await qemuArgs(o);
  const child = spawn("qemu-system-x86_64", args, { stdio: ["pipe", "pipe", "pipe"] });
  let shellSeq = 0;
  const log: WriteStream = createWriteStream(o.serialLog, { flags: "a" });
  let text = "";
  let errText = "";
  const waiters: Array<{ re: RegExp; resolve: (s: string) => void }> = [];
  const check = () => {
    for (let i = waiters.length - 1; i >= 0; i--) {
      const w = waiters[i];
      if (!w) continue;
      const m = w.re.exec(text);
      if (m) {
        waiters.splice(i, 1);
        w.resolve(m[0]);
      }
    }
  };
  let raw = "";
  child.stdout?.on("data", (b: Buffer) => {
    log.write(b);
    // Serial output is CRLF with terminal escapes (GRUB, systemd, bash); an escape can be split across
    // chunks, so strip them from the whole text rather than per chunk.
    raw += b.toString("utf8");
    text = raw.replace(/\r/g, "").replace(ANSI_ESCAPE, "");
    check();
  });
  child.stderr?.on("data", (b: Buffer) => {
    errText = (errText + b.toString("utf8")).slice(-4096);
    log.write(b);
  });
  const exited = new Promise<number | null>((resolve) => {
    child.on("close", (code) => {
      log.end();
      resolve(code);
    });
    child.on("error", () => resolve(null));
  });
  function waitFor(re: RegExp, timeoutMs: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const m = re.exec(text);
      if (m) return resolve(m[0]);
      const timer = setTimeout(() => {
        reject(
          new OsToolError(
            "qemu-system-x86_64",
            `no serial line matching ${re} within ${timeoutMs / 1000} s`,
            text.slice(-3000),
          ),
        );
      }, timeoutMs);
      waiters.push({
        re,
        resolve: (s) => {
          clearTimeout(timer);
          resolve(s);
        },
      });
      void exited.then(() => {
        setTimeout(() => {
          if (!re.exec(text)) {
            clearTimeout(timer);
            reject(
              new OsToolError(
                "qemu-system-x86_64",
                `exited before a serial line matched ${re}`,
                `${text.slice(-3000)}\n${errText}`,
              ),
            );
          }
        }, 50);
      });
    });
  }

  return {
    child,
    startedAt: Date.now(),
    output: () => text,
    exited,
    kill: () => {
      if (child.exitCode === null) child.kill("SIGKILL");
    },
    async shell(command, timeoutMs) {
      shellSeq += 1;
      const n = shellSeq;
      // The end marker is computed by the shell, so the echoed command line never matches it.
      const from = text.length;
      child.stdin?.write(`${command}; echo "KEEL-SHELL-END-$((${n} * 1))"\n`);
      await waitFor(new RegExp(`\\nKEEL-SHELL-END-${n}\\n`), timeoutMs);
      const out = text.slice(from);
      const body = out.slice(out.indexOf("\n") + 1, out.lastIndexOf(`KEEL-SHELL-END-${n}`));
      return body;
    },
    waitFor,
  };
}
