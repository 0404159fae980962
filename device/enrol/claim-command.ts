/** The `enroll-claim` verb of keel-agent (device/enrol/claim.ts does the work). */
import type { Command } from "commander";
import { createLogger } from "../logger.ts";
import { enrolByClaim } from "./claim.ts";

interface ClaimFlags {
  config: string;
  fleet: string;
  thingName: string;
  endpoint: string;
  ca: string;
  claimCert: string;
  claimKey: string;
  template?: string;
  identityDir?: string;
}

export function registerClaimEnrolCommand(program: Command): void {
  program
    .command("enroll-claim")
    .description(
      "enrol this node by AWS IoT fleet provisioning: its key is made here, only a CSR leaves it; completes agent.json",
    )
    .requiredOption("-c, --config <file>", "agent config (JSON) to complete with thingName and mqtt")
    .requiredOption("--fleet <fleet>", "the fleet to join")
    .requiredOption("--thing-name <name>", "this node's thing name (the fleet's claim rule must allow it)")
    .requiredOption("--endpoint <url>", "mqtts://host:port of AWS IoT (or the local broker)")
    .requiredOption("--ca <file>", "CA certificate of the broker (PEM)")
    .requiredOption("--claim-cert <file>", "the fleet's claim certificate (PEM)")
    .requiredOption("--claim-key <file>", "the claim certificate's private key (PEM)")
    .option("--template <name>", "provisioning template (default keel-<fleet>)")
    .option(
      "--identity-dir <dir>",
      "where the node's key and certificate go (default identity/ next to the config)",
    )
    .action(async (o: ClaimFlags) => {
      const log = createLogger({ fields: { thing: o.thingName } });
      const r = await enrolByClaim({ ...o, log });
      console.log(
        r.already
          ? `${r.thingName} was already enrolled; agent.json is complete`
          : `${r.thingName} enrolled in fleet ${o.fleet}; start the agent with keel-agent run -c ${o.config}`,
      );
    });
}
