import { defineConfig } from "vitest/config";
import { BaseSequencer, type TestSpecification } from "vitest/node";

/**
 * The VM suite is the run's longest file by far (≈ 20 of ≈ 22 minutes) and mostly one QEMU on one core:
 * it must start first, so every other file runs beside it. Left to Vitest, a fresh clone (no timings
 * cached) orders files by size, and the small VM file started minutes late, after the rest had begun.
 */
class VmFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const vm = (f: TestSpecification) => f.moduleId.endsWith("test/vm/node.test.ts");
    return [...sorted.filter(vm), ...sorted.filter((f) => !vm(f))];
  }
}

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // The VM suite (test/vm/node.test.ts: QEMU boots, a Debian build on a cold cache) is part of the run;
    // KEEL_SKIP_VM=1 leaves it out (e.g. on a machine without the Debian tools).
    // test/vm/build-input.test.ts (no VM) always runs.
    exclude:
      process.env.KEEL_SKIP_VM === "1"
        ? ["**/node_modules/**", "test/vm/node.test.ts"]
        : ["**/node_modules/**"],
    // Tests start real servers (s3rver, dynalite, brokers) and real tools (mksquashfs); give them room
    // but never assert on wall-clock time.
    testTimeout: 60_000,
    hookTimeout: 180_000,
    pool: "forks",
    // Two files at a time even on a 2-core machine (Vitest would use one): the VM suite spends its time in
    // one QEMU process (one vCPU, TCG), so the rest of the suite runs beside it instead of after it.
    maxWorkers: 2,
    sequence: { sequencer: VmFirstSequencer },
    reporters: ["default"],
  },
});
