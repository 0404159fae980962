/**
 * Whether a verified release may be installed on this device: the job (director) and the manifest
 * (repository) must name the same version, the device's hardware must be listed, and version and
 * releaseCounter must move forward (anti-rollback). Pure functions over plain data.
 */
import { AcceptanceCode, AcceptanceError, ImageMismatchError } from "./errors.ts";
import type { ReleaseSigned } from "./schemas.ts";
import { compareVersions } from "./version.ts";

export interface InstalledRelease {
  version: string;
  releaseCounter: number;
}

export interface AcceptanceInput {
  release: ReleaseSigned;
  /** What the device runs now; null on a node that has never recorded a release. */
  installed: InstalledRelease | null;
  hardware: string;
  /** The version the job document names, when a job asked for this install. */
  jobVersion?: string | undefined;
}

declare const accepted: unique symbol;

/**
 * The verdict on a release that passed every check. Only checkAcceptance makes one (the brand exists in
 * types only), and the device advances its trusted time only from one (TrustStore.advanceTime): a
 * release that was refused for any reason can never move the clock.
 */
export type Acceptance = {
  readonly kind: "upgrade" | "same-release";
  readonly release: ReleaseSigned;
  readonly [accepted]: true;
};

const accept = (kind: Acceptance["kind"], release: ReleaseSigned) => ({ kind, release }) as Acceptance;

export function checkAcceptance({ release, installed, hardware, jobVersion }: AcceptanceInput): Acceptance {
  if (jobVersion !== undefined && jobVersion !== release.version) {
    throw new AcceptanceError(
      AcceptanceCode.VersionMismatch,
      `job asks for version ${jobVersion} but the signed manifest is for ${release.version}`,
    );
  }
  if (!release.compatible.includes(hardware)) {
    throw new AcceptanceError(
      AcceptanceCode.Incompatible,
      `hardware ${hardware} is not in the release's compatible list [${release.compatible.join(", ")}]`,
    );
  }
  if (installed === null) return accept("upgrade", release);
  if (release.releaseCounter < installed.releaseCounter) {
    throw new AcceptanceError(
      AcceptanceCode.Downgrade,
      `releaseCounter ${release.releaseCounter} is below the installed ${installed.releaseCounter} (${installed.version})`,
    );
  }
  const order = compareVersions(release.version, installed.version);
  if (release.releaseCounter === installed.releaseCounter) {
    if (order === 0) return accept("same-release", release);
    throw new AcceptanceError(
      AcceptanceCode.EqualCounter,
      `releaseCounter ${release.releaseCounter} equals the installed release's (${installed.version}) but the version is ${release.version}`,
    );
  }
  if (order <= 0) {
    throw new AcceptanceError(
      AcceptanceCode.Downgrade,
      `version ${release.version} is not newer than the installed ${installed.version}`,
    );
  }
  return accept("upgrade", release);
}

/** The bytes are the release only when both size and SHA-256 match the signed manifest. */
export function checkImageDigest(
  expected: { size: number; sha256: string },
  actual: { size: number; sha256: string },
): void {
  if (actual.size !== expected.size) throw new ImageMismatchError("size", expected.size, actual.size);
  if (actual.sha256 !== expected.sha256)
    throw new ImageMismatchError("sha256", expected.sha256, actual.sha256);
}
