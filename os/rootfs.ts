/**
 * The KeelOS root file system. A Debian base from the archive (mmdebstrap, minbase, cached by suite,
 * mirror and package list), then the node's own files: Node.js (the build host's binary, because
 * Debian 12's nodejs is older than the agent needs), the bundled keel-agent and its shipped unit, a
 * kubelet stand-in answering /healthz on 10248, the trust root, the kernel and initramfs under /boot,
 * and the settings that make a read-only root work (fstab, journald in memory, watchdog, network).
 */
import { chmod, copyFile, mkdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { cachedStep } from "./cache.ts";
import { run } from "./exec.ts";

export const DEBIAN_SUITE = "bookworm";
/** Debian's own archive, as the build host's apt sources name it. */
export const DEBIAN_MIRROR = "http://deb.debian.org/debian";
/**
 * On top of minbase: systemd as PID 1, udev (partition links under /dev/disk/by-partlabel), the
 * C++ runtime node links against, iproute2 for operators, grub-common for `grub-editenv list` on the node.
 * `usr-is-merged` keeps init-system-helpers' "usrmerge | usr-is-merged" met once usrmerge is purged below
 * (the tree mmdebstrap writes is merged-/usr already).
 */
export const BASE_PACKAGES = [
  "systemd-sysv",
  "udev",
  "procps",
  "iproute2",
  "grub-common",
  "libstdc++6",
  "usr-is-merged",
] as const;

/**
 * Purged once the base is installed: apt picks usrmerge for init-system-helpers' "usrmerge |
 * usr-is-merged" even with usr-is-merged asked for, and usrmerge pulls in Perl: 46 MB of a 364 MB root
 * for a conversion mmdebstrap's merged tree never needs. perl-base (essential) stays.
 */
export const PURGED_PACKAGES = [
  "usrmerge",
  "libfile-find-rule-perl",
  "libnumber-compare-perl",
  "libtext-glob-perl",
  "perl",
  "libperl5.36",
  "perl-modules-5.36",
] as const;

/**
 * Files dpkg leaves out of the base (54 MB of 364 MB): translations, manuals and documentation nobody
 * reads on a node, minus the copyright files, which stay with the binaries they cover.
 */
export const DPKG_PATH_FILTERS = [
  "path-exclude=/usr/share/locale/*",
  "path-exclude=/usr/share/man/*",
  "path-exclude=/usr/share/info/*",
  "path-exclude=/usr/share/doc/*",
  "path-include=/usr/share/doc/*/copyright",
] as const;

/** The hardware identifier a KeelOS node under QEMU reports; releases for it list it in `compatible`. */
export const QEMU_HARDWARE = "qemu-x86_64";

/**
 * Where the image puts what agent.json names: the slots by GPT label, the GRUB environment on the ESP,
 * the persistence partition as the state dir. Every agent.json a KeelOS image gets starts from these.
 */
export const NODE_LAYOUT = {
  hardware: QEMU_HARDWARE,
  stateDir: "/var/lib/keel",
  slots: { A: "/dev/disk/by-partlabel/keel-a", B: "/dev/disk/by-partlabel/keel-b" },
  bootloader: { type: "grub", envFile: "/boot/efi/EFI/keel/grubenv" },
} as const;

/**
 * Deliberately broken releases, for proving rollbacks on a real node: a kubelet that never gets healthy,
 * a kernel panic at boot, or a boot that hangs with the hardware watchdog armed and never fed.
 */
export const FAULTS = ["none", "unhealthy", "panic", "hang"] as const;
export type Fault = (typeof FAULTS)[number];

export async function buildBase(cacheRoot: string): Promise<string> {
  const step = await cachedStep(
    cacheRoot,
    "base",
    [DEBIAN_SUITE, DEBIAN_MIRROR, BASE_PACKAGES.join(","), ...DPKG_PATH_FILTERS, ...PURGED_PACKAGES],
    async (dir) => {
      await run("mmdebstrap", [
        "--variant=minbase",
        `--include=${BASE_PACKAGES.join(",")}`,
        ...DPKG_PATH_FILTERS.map((f) => `--dpkgopt=${f}`),
        `--customize-hook=chroot "$1" dpkg --purge ${PURGED_PACKAGES.join(" ")}`,
        "--mode=root",
        "--format=tar",
        DEBIAN_SUITE,
        join(dir, "base.tar"),
        DEBIAN_MIRROR,
      ]);
    },
  );
  return join(step.dir, "base.tar");
}

/** The kubelet stand-in: answers GET /healthz like kubelet's healthz endpoint (plain "ok"). */
export function kubeletStandIn(healthy: boolean): string {
  return `// KeelOS kubelet stand-in: answers /healthz on 127.0.0.1:10248 as kubelet does.
import { createServer } from "node:http";
createServer((req, res) => {
  const ok = ${healthy ? "true" : "false"} && req.url === "/healthz";
  res.writeHead(ok ? 200 : 500, { "content-type": "text/plain" });
  res.end(ok ? "ok" : "unhealthy");
}).listen(10248, "127.0.0.1", () => console.log("KEEL-MARK kubelet-standin listening healthy=${healthy}"));
`;
}

const KUBELET_UNIT = `[Unit]
Description=kubelet stand-in (answers /healthz on 10248)
[Service]
ExecStart=/usr/bin/node /usr/lib/keel/kubelet-standin.mjs
Restart=always
RestartSec=2
StandardOutput=journal+console
[Install]
WantedBy=multi-user.target
`;

const FSTAB = `# KeelOS: the root is the read-only SquashFS of the booted slot.
PARTLABEL=keel-esp   /boot/efi     vfat  umask=0077,flush  0 2
PARTLABEL=keel-data  /var/lib/keel ext4  defaults,noatime  0 2
tmpfs                /tmp          tmpfs mode=1777,nosuid,nodev  0 0
tmpfs                /var          tmpfs mode=0755  0 0
`;

/** config/loopback-forward is JSON: {"host": "10.0.2.2", "ports": [1883, 9000]}. */
const LOOPBACK_FORWARD = `import { readFileSync } from "node:fs";
import { connect, createServer } from "node:net";
const { host, ports } = JSON.parse(readFileSync(process.argv[2], "utf8"));
for (const port of ports) {
  createServer((local) => {
    const remote = connect(port, host);
    local.pipe(remote).pipe(local);
    local.on("error", () => remote.destroy());
    remote.on("error", () => local.destroy());
  }).listen(port, "127.0.0.1", () => console.log(\`KEEL-MARK loopback-forward 127.0.0.1:\${port} -> \${host}:\${port}\`));
}
`;

/** Files written into the tree: path → [contents, mode]. Part of the cache key of the image. */
export function nodeFiles(version: string, fault: Fault): Record<string, [string, number]> {
  return {
    "etc/fstab": [FSTAB, 0o644],
    "etc/hostname": ["keelos\n", 0o644],
    "etc/hosts": ["127.0.0.1 localhost\n127.0.1.1 keelos\n", 0o644],
    // Empty: systemd mounts a fresh id over it on a read-only root.
    "etc/machine-id": ["", 0o444],
    "etc/keelos-release": [`VERSION=${version}\n`, 0o644],
    "etc/systemd/system.conf.d/keel-watchdog.conf": [
      "# PID 1 feeds the i6300esb hardware watchdog: a node that hangs is reset and GRUB falls back.\n[Manager]\nRuntimeWatchdogSec=15s\nRebootWatchdogSec=2min\n",
      0o644,
    ],
    "etc/systemd/journald.conf.d/keel.conf": [
      "# Root is read-only: keep the journal in /run, and copy it to the serial console for operators and tests.\n[Journal]\nStorage=volatile\nForwardToConsole=yes\nTTYPath=/dev/ttyS0\nMaxLevelConsole=info\n",
      0o644,
    ],
    "etc/systemd/network/10-keel.network": ["[Match]\nName=en* eth*\n[Network]\nDHCP=ipv4\n", 0o644],
    "etc/systemd/system/kubelet.service": [KUBELET_UNIT, 0o644],
    "usr/lib/keel/kubelet-standin.mjs": [kubeletStandIn(fault !== "unhealthy"), 0o644],
    // Operators and the VM tests get a root shell on the serial console only when the persistence
    // partition says so (config/serial-shell); a node as built has none.
    "etc/systemd/system/keel-serial-shell.service": [
      "[Unit]\nDescription=Root shell on the serial console (only with /var/lib/keel/config/serial-shell)\nConditionPathExists=/var/lib/keel/config/serial-shell\nRequiresMountsFor=/var/lib/keel\nConflicts=serial-getty@ttyS0.service\nAfter=serial-getty@ttyS0.service\n[Service]\nExecStart=-/sbin/agetty --autologin root --noclear --keep-baud 115200 ttyS0 vt220\nRestart=always\n[Install]\nWantedBy=multi-user.target\n",
      0o644,
    ],
    // Lab and VM-test plumbing: the local cloud listens on the host's loopback and presigns its URLs
    // for 127.0.0.1, so this relays the node's own 127.0.0.1:PORT to the QEMU host (10.0.2.2) for the
    // ports listed in config/loopback-forward. A node as built has no such file and runs no relay.
    "usr/lib/keel/loopback-forward.mjs": [LOOPBACK_FORWARD, 0o644],
    "etc/systemd/system/keel-loopback-forward.service": [
      "[Unit]\nDescription=Relay 127.0.0.1 ports to the lab host (only with /var/lib/keel/config/loopback-forward)\nConditionPathExists=/var/lib/keel/config/loopback-forward\nRequiresMountsFor=/var/lib/keel\nBefore=keel-agent.service\n[Service]\nExecStart=/usr/bin/node /usr/lib/keel/loopback-forward.mjs /var/lib/keel/config/loopback-forward\nRestart=always\nRestartSec=2\n[Install]\nWantedBy=multi-user.target\n",
      0o644,
    ],
    "etc/systemd/system/keel-boot-marker.service": [
      "[Unit]\nDescription=KeelOS boot marker on the serial console\nAfter=keel-agent.service\n[Service]\nType=oneshot\nExecStart=/bin/sh -c 'echo \"KEEL-MARK booted $(cat /etc/keelos-release) watchdog=$(cat /sys/class/watchdog/watchdog0/state 2>/dev/null || echo none) cmdline=$(cat /proc/cmdline)\" > /dev/ttyS0'\n[Install]\nWantedBy=multi-user.target\n",
      0o644,
    ],
  };
}

/** Units enabled in the image (systemctl --root, nothing runs on the build host). */
const ENABLED_UNITS = [
  "keel-agent.service",
  "kubelet.service",
  "keel-boot-marker.service",
  "keel-serial-shell.service",
  "keel-loopback-forward.service",
  "systemd-networkd.service",
  "systemd-networkd-wait-online.service",
] as const;

/** A /sbin/init that panics the kernel at once: a release that can never come up. */
const PANIC_INIT =
  "#!/bin/sh\necho 'KEEL-MARK this release panics at boot' > /dev/console\necho c > /proc/sysrq-trigger\n";

/**
 * A /sbin/init that hangs: it arms the i6300esb (opening /dev/watchdog starts it; the initramfs loaded
 * the driver) and keeps it open without ever writing to it, while PID 1 sleeps forever. Nothing feeds
 * the watchdog, so the machine is reset when its heartbeat (the driver's default, 30 s) runs out, as a
 * node whose PID 1 froze after systemd armed the watchdog would be.
 */
const HANG_INIT =
  "#!/bin/sh\necho 'KEEL-MARK this release hangs at boot' > /dev/console\nexec 3>/dev/watchdog\nwhile :; do sleep 3600; done\n";

/** The /sbin/init that replaces systemd for the faults that never get to userspace proper. */
const FAULT_INIT: Partial<Record<Fault, string>> = { panic: PANIC_INIT, hang: HANG_INIT };

export interface NodeInputs {
  base: string;
  node: string;
  agent: string;
  agentUnit: string;
  trustRoot: string;
  vmlinuz: string;
  initrd: string;
  version: string;
  fault: Fault;
}

/**
 * Creates `rel` and its missing parents under `tree` as 0755 whatever the build host's umask is: the
 * SquashFS records every mode, and a build under umask 077 must give the same bytes as one under 022.
 */
async function mkdirTree(tree: string, rel: string): Promise<void> {
  let at = tree;
  for (const part of rel.split("/").filter((p) => p !== "" && p !== ".")) {
    at = join(at, part);
    const made = await mkdir(at).then(
      () => true,
      (err: NodeJS.ErrnoException) => {
        if (err.code === "EEXIST") return false;
        throw err;
      },
    );
    if (made) await chmod(at, 0o755);
  }
}

/** Fills `tree` (empty) with the node's root file system. */
export async function assembleRootfs(tree: string, inp: NodeInputs): Promise<void> {
  await run("tar", ["-xpf", inp.base, "-C", tree, "--numeric-owner", "--exclude=./dev/*"]);
  const put = async (rel: string, body: string | Buffer, mode: number) => {
    await mkdirTree(tree, dirname(rel));
    await writeFile(join(tree, rel), body);
    await chmod(join(tree, rel), mode);
  };
  for (const [rel, [body, mode]] of Object.entries(nodeFiles(inp.version, inp.fault)))
    await put(rel, body, mode);
  await copyFile(inp.node, join(tree, "usr/bin/node"));
  await chmod(join(tree, "usr/bin/node"), 0o755);
  await put("usr/lib/keel/keel-agent.mjs", await readFile(inp.agent), 0o755);
  await rm(join(tree, "usr/bin/keel-agent"), { force: true });
  await symlink("../lib/keel/keel-agent.mjs", join(tree, "usr/bin/keel-agent"));
  await put("etc/systemd/system/keel-agent.service", await readFile(inp.agentUnit), 0o644);
  await put("usr/share/keel/root.json", await readFile(inp.trustRoot), 0o644);
  await put("boot/vmlinuz", await readFile(inp.vmlinuz), 0o644);
  await put("boot/initrd.img", await readFile(inp.initrd), 0o644);
  // agent.json and the device certificates live on the persistence partition.
  await rm(join(tree, "etc/keel"), { recursive: true, force: true });
  await symlink("/var/lib/keel/config", join(tree, "etc/keel"));
  for (const d of ["boot/efi", "var/lib/keel", "var/log"]) await mkdirTree(tree, d);
  await rm(join(tree, "var/log/journal"), { recursive: true, force: true });
  // systemctl creates the .wants directories: under a fixed umask, for the same reason as mkdirTree.
  await run("sh", ["-c", 'umask 022 && exec systemctl --root "$0" enable "$@"', tree, ...ENABLED_UNITS]);
  const init = FAULT_INIT[inp.fault];
  if (init) {
    await rm(join(tree, "sbin/init"), { force: true });
    await put("sbin/init", init, 0o755);
  }
}
