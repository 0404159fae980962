/**
 * Fleet provisioning over MQTT (docs/fleets.md#fleet-provisioning-by-claim): a second service connection
 * that hears the requests the brokers route from claim clients (`$keel/provisioning/in/...`, carrying the
 * claim certificate id and client id) and publishes each answer to the asking connection only
 * (`$keel/provisioning/out/<client id>/...`, local/provisioning-topics.ts).
 */
import type { MqttClient } from "mqtt";
import { describeError } from "../../core/errors.ts";
import type { RunningBroker } from "../contracts.ts";
import { INBOUND_FILTER, outboundTopic, parseInboundTopic } from "../provisioning-topics.ts";
import type { FleetProvisioning } from "./fleet-provisioning.ts";
import { connectServiceClient } from "./service-client.ts";

/** Its own client id: the data plane's session stays untouched. */
const CLIENT_ID_SUFFIX = "-provisioning";

export class ProvisioningPlane {
  private client: MqttClient | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  readonly stats = { in: 0, out: 0 };

  constructor(
    private readonly provisioning: FleetProvisioning,
    private readonly log: (msg: string, fields?: Record<string, unknown>) => void,
  ) {}

  async connect(broker: RunningBroker): Promise<void> {
    // Requests are answered once; after a restart a device simply asks again (a clean session).
    const client = await connectServiceClient(broker, {
      clientIdSuffix: CLIENT_ID_SUFFIX,
      clean: true,
      subscribe: INBOUND_FILTER,
      onMessage: (topic, payload) => this.onMessage(topic, payload),
      onError: (c, err) => {
        if (this.client === c) this.log("provisioning mqtt client error", { error: err.message });
      },
    });
    this.client = client;
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.inFlight]);
    const c = this.client;
    this.client = undefined;
    if (c) await c.endAsync();
  }

  private onMessage(topic: string, payload: Buffer): void {
    const route = parseInboundTopic(topic);
    if (!route) return;
    this.stats.in++;
    const work = this.provisioning
      .handle(route.certificateId, route.clientId, route.awsTopic, payload)
      .then((answer) => {
        this.stats.out++;
        this.client?.publish(outboundTopic(route.clientId, answer.topic), JSON.stringify(answer.payload), {
          qos: 1,
        });
      })
      .catch((err) => this.log("provisioning answer failed", { topic, error: describeError(err) }));
    this.inFlight.add(work);
    void work.finally(() => this.inFlight.delete(work));
  }
}
