import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // The VM suite (QEMU boots, a Debian build on a cold cache) runs with `npm run test:vm` until it has
    // proven reliable on CI machines; test/vm/build-input.test.ts (no VM) stays in `npm test`.
    exclude:
      process.env.KEEL_VM_TESTS === "1"
        ? ["**/node_modules/**"]
        : ["**/node_modules/**", "test/vm/node.test.ts"],
    // Tests start real servers (s3rver, dynalite, brokers) and real tools (mksquashfs); give them room
    // but never assert on wall-clock time.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    reporters: ["default"],
  },
});
