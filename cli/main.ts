/**
 * `keel`, the operator CLI. Each command group lives in cli/commands/<group>.ts and exports
 * `register(program)`; add one import and one call below per group.
 */
import { Command } from "commander";
import { register as auditGroup } from "./commands/audit.ts";
import { register as consoleGroup } from "./commands/console.ts";
import { register as devGroup } from "./commands/dev.ts";
import { register as fleetGroup } from "./commands/fleet.ts";
import { register as keysGroup } from "./commands/keys.ts";
import { register as osGroup } from "./commands/os.ts";
import { register as publishGroup } from "./commands/publish.ts";
import { register as releaseGroup } from "./commands/release.ts";
import { register as releasesGroup } from "./commands/releases.ts";
import { register as rolloutGroup } from "./commands/rollout.ts";
import { register as rootGroup } from "./commands/root.ts";

const program = new Command("keel")
  .description("Keel: sign KeelOS images, publish releases and roll them out to fleets in waves")
  .showHelpAfterError()
  .configureOutput({ outputError: (s, write) => write(s) });

// command groups: register(program) each
const groups: Array<(p: Command) => void> = [
  keysGroup,
  rootGroup,
  releaseGroup,
  devGroup,
  publishGroup,
  releasesGroup,
  rolloutGroup,
  fleetGroup,
  auditGroup,
  consoleGroup,
  osGroup,
];
for (const register of groups) register(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  console.error(`keel: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
