/**
 * Nodes that join a running dev environment's fleet later (docs/fleets.md#target-release-and-convergence):
 * new ones registered and powered on from the factory image, or, with `reuse`, nodes stopped earlier
 * powered on again from their own disks (an offline node that comes back). They join the environment's
 * fleet, broker and trust root; the caller stops them.
 */
import { DEMO_RELEASES, type DevEnvironment, imagePath, SIM_HARDWARE } from "./environment.ts";
import { type SimulatedFleet, startFleet } from "./fleet.ts";

export async function startMoreNodes(
  env: DevEnvironment,
  o: { thingPrefix: string; devices: number; reuse?: boolean; healthDeadlineSeconds?: number },
): Promise<SimulatedFleet> {
  const fleet = env.fleet.fleet;
  const factory = DEMO_RELEASES[0] ?? { version: "1.0.0", counter: 1 };
  return startFleet({
    dir: env.paths.fleet,
    fleet,
    devices: o.devices,
    thingPrefix: o.thingPrefix,
    mqtt: { endpoint: env.info.mqtt, ca: env.info.caFile },
    trustRoot: env.paths.rootFile,
    factoryImage: imagePath(env.paths, factory.version),
    factory: { version: factory.version, releaseCounter: factory.counter },
    hardware: SIM_HARDWARE,
    register: (thing) => env.tooling.registerThing(fleet, thing, factory.version),
    registrationsSettled: async () => env.cloud.broker.settled?.(),
    reuse: o.reuse ?? false,
    logger: env.agentLogger,
    ...(o.healthDeadlineSeconds ? { healthDeadlineSeconds: o.healthDeadlineSeconds } : {}),
  });
}
