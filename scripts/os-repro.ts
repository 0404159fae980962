/**
 * The full-size reproducibility check of the KeelOS release SquashFS (docs/os-image.md#reproducible-images):
 * the real Debian base, kernel and initramfs (from the OS build cache, built if missing), the build host's
 * Node.js and the agent bundle; the root tree is assembled twice, independently (the second time under
 * umask 077), and packed by two mksquashfs runs, without the image cache. Prints both sha256 and exits 1
 * if they differ. Minutes on a loaded machine, hence not in `npm test` (test/os/reproducible.test.ts is).
 *
 *   npm run repro:os
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildImage } from "../cli/commands/release.ts";
import { assembleAndPack, DEFAULT_CACHE_DIR, type TreeInputs } from "../os/build.ts";
import { buildInitramfs } from "../os/initramfs.ts";
import { buildKernel } from "../os/kernel.ts";
import { buildBase } from "../os/rootfs.ts";
import { buildAgent } from "./build-agent.ts";

const say = (line: string) => process.stderr.write(`${line}\n`);

async function main(): Promise<number> {
  const tmp = await mkdtemp(join(tmpdir(), "keel-os-repro-"));
  try {
    say("inputs: debian base, kernel, initramfs (cached), agent bundle");
    const base = await buildBase(DEFAULT_CACHE_DIR);
    const kernel = await buildKernel(DEFAULT_CACHE_DIR);
    const initrd = await buildInitramfs(DEFAULT_CACHE_DIR, kernel);
    const agent = await buildAgent(join(tmp, "keel-agent.mjs"));
    // Any file stands for the trust root here: the check is about the bytes, not about trust.
    const trustRoot = join(tmp, "root.json");
    await writeFile(trustRoot, '{"note":"reproducibility check"}\n');
    const inputs: TreeInputs = {
      base,
      vmlinuz: kernel.vmlinuz,
      initrd,
      node: process.execPath,
      agent,
      trustRoot,
      version: "1.0.0",
      fault: "none",
      labels: "",
    };
    const digests: string[] = [];
    for (const [i, umask] of [0o022, 0o077].entries()) {
      const dir = await mkdtemp(join(tmp, `build-${i + 1}-`));
      const started = Date.now();
      say(
        `build ${i + 1}: assemble the root tree and mksquashfs (umask ${umask.toString(8).padStart(3, "0")})`,
      );
      const before = process.umask(umask);
      try {
        const d = await assembleAndPack(dir, inputs, buildImage);
        digests.push(d.sha256);
        say(
          `build ${i + 1}: ${d.size} bytes, sha256 ${d.sha256} (${((Date.now() - started) / 1000).toFixed(1)} s)`,
        );
      } finally {
        process.umask(before);
        await rm(dir, { recursive: true, force: true });
      }
    }
    const same = digests[0] === digests[1];
    process.stdout.write(
      same ? `reproducible: sha256 ${digests[0]}\n` : `NOT reproducible: ${digests.join(" != ")}\n`,
    );
    return same ? 0 : 1;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

process.exitCode = await main();
