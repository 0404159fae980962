/**
 * The kernel, straight from Debian's archive without installing it on the build host: `apt-get download`
 * the package `linux-image-amd64` points at, unpack it with `dpkg-deb -x`, and keep vmlinuz plus the few
 * modules a KeelOS node needs before and after switch_root (Debian builds virtio_blk and squashfs as
 * modules, so the initramfs must load them). Cached by package name and version.
 */
import { copyFile, mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { cachedStep } from "./cache.ts";
import { OsToolError } from "./errors.ts";
import { run } from "./exec.ts";

/**
 * Modules loaded by the initramfs, in this order (their dependencies first): the disk and root file
 * system, the ESP and persistence file systems, the network card and the watchdog systemd feeds.
 * Loaded once in the initramfs, they stay loaded after switch_root, so the root needs no /lib/modules.
 */
export const NODE_MODULES = [
  "virtio_pci",
  "virtio_blk",
  "squashfs",
  "ext4",
  "vfat",
  "nls_cp437",
  "nls_ascii",
  "virtio_net",
  "i6300esb",
] as const;

export interface KernelBuild {
  dir: string;
  version: string;
  vmlinuz: string;
  /** Module file names under `dir/modules`, in load order. */
  modules: string[];
  hit: boolean;
}

/** The versioned kernel package the meta-package depends on, and its candidate version. */
async function resolveKernelPackage(): Promise<{ pkg: string; version: string }> {
  const deps = (await run("apt-cache", ["depends", "linux-image-amd64"])).toString("utf8");
  const pkg = /Depends:\s*(linux-image-[0-9][^\s]*-amd64)/.exec(deps)?.[1];
  if (!pkg)
    throw new OsToolError("apt-cache", "cannot find the kernel package linux-image-amd64 depends on", deps);
  const policy = (await run("apt-cache", ["policy", pkg])).toString("utf8");
  const version = /Candidate:\s*(\S+)/.exec(policy)?.[1];
  if (!version || version === "(none)")
    throw new OsToolError("apt-cache", `no candidate version of ${pkg}`, policy);
  return { pkg, version };
}

export async function buildKernel(cacheRoot: string): Promise<KernelBuild> {
  const { pkg, version } = await resolveKernelPackage();
  const step = await cachedStep(cacheRoot, "kernel", [pkg, version, NODE_MODULES.join(",")], async (dir) => {
    const work = join(dir, "work");
    await mkdir(work);
    await run("apt-get", ["download", `${pkg}=${version}`], { cwd: work });
    const deb = (await readdir(work)).find((f) => f.endsWith(".deb"));
    if (!deb) throw new OsToolError("apt-get", `downloaded no .deb for ${pkg}`);
    const tree = join(work, "tree");
    await run("dpkg-deb", ["-x", join(work, deb), tree]);
    const [kver] = await readdir(join(tree, "lib/modules"));
    if (!kver) throw new OsToolError("dpkg-deb", `${deb} holds no /lib/modules`);
    await run("depmod", ["-b", tree, kver]);
    const order: string[] = [];
    for (const m of NODE_MODULES) {
      const lines = (await run("modprobe", ["-d", tree, "-S", kver, "--show-depends", m])).toString("utf8");
      // "builtin X" lines need nothing; "insmod PATH" lines are in dependency order.
      for (const match of lines.matchAll(/^insmod (\S+)/gm)) {
        const path = match[1] as string;
        const name = basename(path);
        if (!order.includes(name)) {
          order.push(name);
          await mkdir(join(dir, "modules"), { recursive: true });
          await copyFile(path, join(dir, "modules", name));
        }
      }
    }
    await copyFile(join(tree, "boot", `vmlinuz-${kver}`), join(dir, "vmlinuz"));
    await writeFile(join(dir, "modules.order"), `${order.join("\n")}\n`);
    await writeFile(join(dir, "version"), `${kver}\n`);
    await rm(work, { recursive: true, force: true });
  });
  const modules = (await readFile(join(step.dir, "modules.order"), "utf8")).split("\n").filter(Boolean);
  const kver = (await readFile(join(step.dir, "version"), "utf8")).trim();
  return { dir: step.dir, version: kver, vmlinuz: join(step.dir, "vmlinuz"), modules, hit: step.hit };
}
