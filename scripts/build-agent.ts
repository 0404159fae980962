/**
 * Builds the shipped device agent: device/cli.ts and everything it imports (mqtt, zod, commander, …)
 * bundled into ONE ES module, `dist/keel-agent.mjs`, run as `node keel-agent.mjs <command>`.
 * A node runs no TypeScript loader: bin/keel-agent.mjs (tsx at run time) is for development only; tsx
 * alone costs ~37 MB of RSS at start-up, which the issue 4 memory budget (< 100 MB) cannot afford.
 *
 *   npm run build:agent                      → dist/keel-agent.mjs
 *   npx tsx scripts/build-agent.ts OUT.mjs   → OUT.mjs (tests and the benchmark build into a temp dir)
 */
import { chmod } from "node:fs/promises";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { build } from "esbuild";

const ROOT = resolve(import.meta.dirname, "..");
export const DEFAULT_AGENT_BUNDLE = resolve(ROOT, "dist/keel-agent.mjs");

/**
 * Node flags the agent runs with: in the bundle's shebang and in device/keel-agent.service's ExecStart
 * (test/device/bundle.test.ts holds the two together; bench/install.bench.ts measures with them).
 * V8 grows the young generation up to 16 MB per semi-space as scavenges add up, so a longer install
 * (4 GiB vs 1 GiB) ended with ~10 MB more RSS. The agent's own young garbage is small and already
 * collected every MiB streamed (device/install/memory.ts), so a 1 MB cap adds hardly any scavenge and
 * keeps the peak flat whatever the image size.
 */
export const AGENT_NODE_FLAGS: readonly string[] = ["--max-semi-space-size=1"];

export async function buildAgent(outfile: string = DEFAULT_AGENT_BUNDLE): Promise<string> {
  await build({
    entryPoints: [resolve(ROOT, "device/cli.ts")],
    outfile,
    bundle: true,
    platform: "node",
    target: "node20",
    format: "esm",
    // Minifying would save ~1 MB of file and ~3 MB of RSS; readable stack traces in the journal are worth
    // more while the agent stays ~20 MB under its memory budget.
    minify: false,
    sourcemap: false,
    legalComments: "inline",
    logLevel: "warning",
    banner: {
      js: [
        // env -S (coreutils ≥ 8.30) passes the flags when the file is run directly (/usr/bin/keel-agent).
        `#!/usr/bin/env -S node ${AGENT_NODE_FLAGS.join(" ")}`,
        // Some bundled CommonJS packages call require() for Node built-ins; an ES module has none.
        'import { createRequire as __keelCreateRequire } from "node:module";',
        "const require = __keelCreateRequire(import.meta.url);",
      ].join("\n"),
    },
  });
  await chmod(outfile, 0o755);
  return outfile;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const out = await buildAgent(process.argv[2] ? resolve(process.argv[2]) : undefined);
  console.log(`built ${out}`);
}
