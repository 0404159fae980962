/** `keel-agent enroll`: the command-line face of device/enrol/api.ts. */
import type { Command } from "commander";
import { CommandFailedError } from "../errors.ts";

interface EnrolFlags {
  config: string;
  fleet: string;
  api: string;
  thing?: string;
  region?: string;
  ca?: string;
  mqttEndpoint?: string;
}

export function registerEnrolCommand(program: Command): void {
  program
    .command("enroll")
    .description(
      "join a fleet: make this node's key here, send only a CSR (signed with the node's AWS identity), write the certificate and agent.json",
    )
    .requiredOption("-c, --config <file>", "agent config (JSON) to update")
    .requiredOption("--fleet <name>", "fleet to join (its allow-list must admit this node's AWS identity)")
    .requiredOption("--api <url>", "the rollout API's URL (the stack's ApiUrl output)")
    .option("--thing <name>", "thing name (default: the host name)")
    .option("--region <region>", "AWS region of the API (default: AWS_REGION)")
    .option("--ca <file>", "CA of the MQTT broker (default: agent.json's mqtt.ca; AWS: Amazon Root CA 1)")
    .option("--mqtt-endpoint <url>", "override the MQTT endpoint the API answers with")
    .action(async (o: EnrolFlags) => {
      const region = o.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION;
      if (!region) throw new CommandFailedError("enroll needs --region or AWS_REGION");
      // Loaded only here: the daemon never pays for the signer's and the credential providers' modules.
      const { nodeCredentials } = await import("./node-credentials.ts");
      const { enrol } = await import("./api.ts");
      const r = await enrol({
        config: o.config,
        fleet: o.fleet,
        api: o.api,
        region,
        credentials: nodeCredentials(),
        thing: o.thing,
        ca: o.ca,
        mqttEndpoint: o.mqttEndpoint,
      });
      if (r.already) {
        console.log(`${r.thingName} is already enrolled with the key in ${r.keyFile}; nothing to do`);
        return;
      }
      console.log(
        [
          `enrolled ${r.thingName} in fleet ${r.fleet}${r.certificateId ? ` (certificate ${r.certificateId.slice(0, 12)}…)` : ""}`,
          `  key:         ${r.keyFile} (${r.newKey ? "made on this node" : "re-used from an earlier attempt"}; it never left the node)`,
          `  certificate: ${r.certFile}`,
          `  config:      ${o.config} (thingName and mqtt updated)`,
          "next: start the agent (systemctl enable --now keel-agent, or keel-agent run -c <config>);",
          "      it takes the fleet's rollouts from now on.",
        ].join("\n"),
      );
    });
}
