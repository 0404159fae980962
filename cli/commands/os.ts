/**
 * `keel os build|run`: a bootable KeelOS (docs/os-image.md). `build` makes the release SquashFS with the
 * same reproducible mksquashfs as `keel release build` and a GPT disk that boots it under BIOS and UEFI;
 * `run` boots that disk under QEMU with the serial console on the terminal.
 */
import { spawn } from "node:child_process";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Command } from "commander";
import { buildOs } from "../../os/build.ts";
import { OsInputError } from "../../os/errors.ts";
import { flashDisk } from "../../os/flash.ts";
import { makeOverlay, qemuArgs } from "../../os/qemu.ts";
import { FAULTS, type Fault } from "../../os/rootfs.ts";
import { collectList, intOption } from "../inputs.ts";
import { keygen } from "./keys.ts";
import { buildImage } from "./release.ts";
import { rootInit } from "./root.ts";

interface BuildFlags {
  out: string;
  trustRoot: string;
  version: string;
  fault: string;
  slotSize: number;
  diskSize?: number;
  agentConfig?: string;
  configFile?: string[];
  agent?: string;
  cache?: string;
}

const progress = (started: number) => (m: string) =>
  process.stderr.write(`keel os build: ${m} (${((Date.now() - started) / 1000).toFixed(0)} s)\n`);

/**
 * `keel os run` with no disk: a lab image in `dir` (its own signing key and trust root, made once, and a
 * root shell on the serial console), built through the OS build cache so a second run costs seconds.
 */
async function labDisk(dir: string): Promise<string> {
  const out = resolve(dir);
  const rootFile = join(out, "root.json");
  if (!(await stat(rootFile).catch(() => undefined))) {
    const key = await keygen(join(out, "keys"), "release");
    await rootInit({ keys: [key.pub], threshold: 1, sign: [key.secret], out: rootFile });
  }
  const shell = join(out, "serial-shell");
  await writeFile(shell, "lab image: a root shell on ttyS0\n");
  const r = await buildOs({
    out: join(out, "os"),
    trustRoot: rootFile,
    version: "1.0.0",
    configFiles: [shell],
    pack: buildImage,
    progress: progress(Date.now()),
  });
  return r.disk;
}

export function register(program: Command): void {
  const os = program.command("os").description("build and boot KeelOS disk images");

  os.command("build")
    .description(
      "build the KeelOS release SquashFS and a bootable GPT disk (BIOS + UEFI GRUB, slots A/B, persistence)",
    )
    .requiredOption("--out <dir>", "output directory: image.squashfs, disk.img, build.json")
    .requiredOption("--trust-root <file>", "root.json shipped in the image (/usr/share/keel/root.json)")
    .option(
      "--version <semver>",
      "the OS version this image is (factory version in the default agent.json)",
      "1.0.0",
    )
    .option(
      "--fault <kind>",
      "build a deliberately broken release: none, unhealthy (kubelet fails /healthz), panic, hang (watchdog never fed)",
      "none",
    )
    .option("--slot-size <MiB>", "size of each root slot", intOption(16), 384)
    .option("--disk-size <MiB>", "size of the whole disk (default: the smallest that fits)", intOption(1))
    .option("--agent-config <file>", "agent.json for the persistence partition (default: an air-gapped node)")
    .option(
      "--config-file <file>",
      "more files for /etc/keel (certificates); repeat or comma-separate",
      collectList,
    )
    .option("--agent <file>", "the agent bundle (default: dist/keel-agent.mjs from `npm run build:agent`)")
    .option("--cache <dir>", "build cache (default: .keel/os-cache)")
    .action(async (f: BuildFlags) => {
      if (!FAULTS.includes(f.fault as Fault))
        throw new OsInputError(`--fault must be one of ${FAULTS.join(", ")}`);
      const r = await buildOs({
        out: resolve(f.out),
        trustRoot: f.trustRoot,
        version: f.version,
        fault: f.fault as Fault,
        slotMiB: f.slotSize,
        diskMiB: f.diskSize,
        agentConfig: f.agentConfig,
        configFiles: f.configFile ?? [],
        agent: f.agent,
        cacheDir: f.cache,
        pack: buildImage,
        progress: progress(Date.now()),
      });
      process.stdout.write(
        `wrote ${r.image}: ${r.size} bytes, sha256 ${r.sha256}\nwrote ${r.disk}: ${r.diskMiB} MiB (kernel ${r.kernel})\n`,
      );
    });

  os.command("run")
    .description(
      "boot a KeelOS disk under QEMU (TCG) with its serial console on this terminal; Ctrl-A X quits",
    )
    .argument(
      "[disk]",
      "disk.img from `keel os build` (default: build a lab image in .keel/os-run through the cache, with a root shell on the console)",
    )
    .option("--uefi", "boot with OVMF (UEFI) instead of SeaBIOS")
    .option("--write", "write to the disk itself instead of a throw-away overlay")
    .action(async (given: string | undefined, f: { uefi?: boolean; write?: boolean }) => {
      const disk = given ?? (await labDisk(".keel/os-run"));
      const work = await mkdtemp(join(tmpdir(), "keel-os-run-"));
      try {
        let target = resolve(disk);
        if (!f.write) {
          target = join(work, "overlay.qcow2");
          await makeOverlay(resolve(disk), target);
        }
        const args = (
          await qemuArgs({ disk: target, firmware: f.uefi ? "uefi" : "bios", workDir: work, serialLog: "" })
        )
          // Interactively the guest may reboot inside the same QEMU, and Ctrl-A X must reach QEMU's muxer.
          .filter((a) => a !== "-no-reboot")
          .map((a) => (a === "stdio" ? "mon:stdio" : a));
        const monitorAt = args.indexOf("-monitor");
        if (monitorAt >= 0) args.splice(monitorAt, 2);
        const code = await new Promise<number>((res) => {
          spawn("qemu-system-x86_64", args, { stdio: "inherit" }).on("close", (c) => res(c ?? 1));
        });
        process.exitCode = code;
      } finally {
        await rm(work, { recursive: true, force: true });
      }
    });

  os.command("flash")
    .description(
      "write a KeelOS disk image to a whole disk, refusing a mounted disk, a partition or one smaller than the image",
    )
    .requiredOption("--disk <file>", "disk.img from `keel os build`")
    .requiredOption("--device <path>", "the whole disk to overwrite, e.g. /dev/sdX (or a regular file)")
    .option("--yes", "confirm that everything on --device is destroyed")
    .action(async (f: { disk: string; device: string; yes?: boolean }) => {
      let shown = -1;
      const r = await flashDisk({
        disk: resolve(f.disk),
        device: f.device,
        yes: f.yes === true,
        progress: (done, total) => {
          const pct = Math.floor((done * 100) / total);
          if (pct === shown) return;
          shown = pct;
          process.stderr.write(`\rkeel os flash: ${pct}% of ${(total / 2 ** 20).toFixed(0)} MiB`);
          if (done === total) process.stderr.write("\n");
        },
      });
      process.stdout.write(
        `wrote ${r.bytes} bytes to ${f.device} (read back, sha256 ${r.sha256})${r.deviceBytes > r.bytes ? "; backup GPT moved to the end of the disk" : ""}\n`,
      );
    });
}
