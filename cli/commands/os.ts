/**
 * `keel os build|run`: a bootable KeelOS (docs/os-image.md). `build` makes the release SquashFS with the
 * same reproducible mksquashfs as `keel release build` and a GPT disk that boots it under BIOS and UEFI;
 * `run` boots that disk under QEMU with the serial console on the terminal.
 */
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Command } from "commander";
import { buildOs } from "../../os/build.ts";
import { OsInputError } from "../../os/errors.ts";
import { makeOverlay, qemuArgs } from "../../os/qemu.ts";
import { FAULTS, type Fault } from "../../os/rootfs.ts";
import { collectList, intOption } from "../inputs.ts";
import { buildImage } from "./release.ts";

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
      const started = Date.now();
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
        progress: (m) =>
          process.stderr.write(`keel os build: ${m} (${((Date.now() - started) / 1000).toFixed(0)} s)\n`),
      });
      process.stdout.write(
        `wrote ${r.image}: ${r.size} bytes, sha256 ${r.sha256}\nwrote ${r.disk}: ${r.diskMiB} MiB (kernel ${r.kernel})\n`,
      );
    });

  os.command("run")
    .description(
      "boot a KeelOS disk under QEMU (TCG) with its serial console on this terminal; Ctrl-A X quits",
    )
    .argument("<disk>", "disk.img from `keel os build`")
    .option("--uefi", "boot with OVMF (UEFI) instead of SeaBIOS")
    .option("--write", "write to the disk itself instead of a throw-away overlay")
    .action(async (disk: string, f: { uefi?: boolean; write?: boolean }) => {
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
}
