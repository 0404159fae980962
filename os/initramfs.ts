/**
 * A busybox initramfs (~1.5 MB): load the node's modules, find the root partition named by
 * `root=PARTLABEL=…` on the kernel command line (GRUB's keel.cfg passes keel-a or keel-b), mount its
 * SquashFS read-only and switch_root into systemd. No udev is needed: partition names are read from
 * /sys/class/block/<dev>/uevent. Built reproducibly (sorted cpio, fixed mtimes, gzip -n).
 */
import { chmod, copyFile, mkdir, readFile, utimes, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { cachedStep } from "./cache.ts";
import { OsInputError } from "./errors.ts";
import { run } from "./exec.ts";
import type { KernelBuild } from "./kernel.ts";

const BUSYBOX = "/bin/busybox";

/** PID 1 of the initramfs. Any failure exits it, which panics the kernel; `panic=N` then resets the node. */
export const INIT_SCRIPT = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
echo "KEEL-INITRAMFS: start"
for m in $(cat /modules.order); do insmod "/modules/$m" || echo "KEEL-INITRAMFS: insmod $m failed"; done
label=""
for arg in $(cat /proc/cmdline); do
  case "$arg" in root=PARTLABEL=*) label="\${arg#root=PARTLABEL=}" ;; esac
done
[ -n "$label" ] || { echo "KEEL-INITRAMFS: no root=PARTLABEL= on the command line"; exit 1; }
dev=""
tries=0
while [ -z "$dev" ] && [ "$tries" -lt 100 ]; do
  for u in /sys/class/block/*/uevent; do
    if grep -qx "PARTNAME=$label" "$u"; then dev="/dev/$(sed -n 's/^DEVNAME=//p' "$u")"; fi
  done
  [ -n "$dev" ] || { tries=$((tries + 1)); sleep 0.1; }
done
[ -n "$dev" ] || { echo "KEEL-INITRAMFS: partition $label not found"; exit 1; }
mkdir -p /newroot
mount -t squashfs -o ro "$dev" /newroot || { echo "KEEL-INITRAMFS: cannot mount $dev"; exit 1; }
echo "KEEL-INITRAMFS: root $label ($dev)"
mount --move /dev /newroot/dev
umount /proc /sys
exec switch_root /newroot /sbin/init
`;

export async function buildInitramfs(cacheRoot: string, kernel: KernelBuild): Promise<string> {
  const busybox = await readFile(BUSYBOX);
  // The initramfs has no libc: a dynamically linked busybox (Debian's `busybox`) would not start.
  if (busybox.includes("/lib64/ld-linux-x86-64.so.2")) {
    throw new OsInputError(`${BUSYBOX} is dynamically linked; install busybox-static`);
  }
  const step = await cachedStep(
    cacheRoot,
    "initramfs",
    [basename(kernel.dir), INIT_SCRIPT, busybox],
    async (dir) => {
      const tree = join(dir, "tree");
      for (const d of ["bin", "dev", "proc", "sys", "newroot", "modules"])
        await mkdir(join(tree, d), { recursive: true });
      const target = join(tree, "bin", "busybox");
      await copyFile(BUSYBOX, target);
      await chmod(target, 0o755);
      await writeFile(join(tree, "init"), INIT_SCRIPT, { mode: 0o755 });
      await writeFile(join(tree, "modules.order"), `${kernel.modules.join("\n")}\n`);
      for (const m of kernel.modules)
        await copyFile(join(kernel.dir, "modules", m), join(tree, "modules", m));
      const files = (await run("find", [".", "-mindepth", "1"], { cwd: tree }))
        .toString("utf8")
        .split("\n")
        .filter(Boolean)
        .sort();
      for (const f of files) await utimes(join(tree, f), 0, 0);
      const cpio = await run("cpio", ["--quiet", "-o", "-H", "newc", "--reproducible", "-R", "0:0"], {
        cwd: tree,
        input: Buffer.from(`${files.join("\n")}\n`),
      });
      const gz = await run("gzip", ["-n", "-9"], { input: cpio });
      await writeFile(join(dir, "initrd.img"), gz);
      await run("rm", ["-rf", tree]);
    },
  );
  return join(step.dir, "initrd.img");
}
