/**
 * `keel`, the operator CLI. Each command group lives in cli/commands/<group>.ts and exports
 * `register(program)`; add one import and one call below per group.
 */
import { Command } from "commander";

const program = new Command("keel")
  .description("Keel: sign KeelOS images, publish releases and roll them out to fleets in waves")
  .showHelpAfterError()
  .configureOutput({ outputError: (s, write) => write(s) });

// command groups: register(program) each
const groups: Array<(p: Command) => void> = [];
for (const register of groups) register(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  console.error(`keel: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
