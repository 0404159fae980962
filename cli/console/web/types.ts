/**
 * The shapes the console's proxy answers with (checked on the server against the API's own schemas; these
 * are the same types, imported as types only so nothing of the server side is bundled). Fields the API may
 * add later — a fleet's target release, a device's slot and last report — are optional here.
 */
import type { FleetStatus } from "../../../functions/rollout-api/contract.ts";

export type { DeviceOutcome, Rollout, Wave, WaveCounts } from "../../../functions/rollout/model.ts";
export type {
  Release as ReleaseRecord,
  RolloutView,
} from "../../../functions/rollout-api/contract.ts";

export type FleetThing = FleetStatus["things"][number] & {
  slot?: string;
  lastSeen?: string;
  updatedAt?: string;
};

export type FleetAnswer = Omit<FleetStatus, "things"> & {
  things: FleetThing[];
  targetRelease?: string | { version: string };
  nextCursor?: string;
};
