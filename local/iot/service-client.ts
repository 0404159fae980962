/**
 * The stand-in's own MQTT connections to the broker (the jobs data plane, fleet provisioning): the broker's
 * service identity (mutual TLS in the local cloud; plain in-process brokers in the stand-in's own tests),
 * reconnecting, subscribed to what the caller serves.
 */
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import type { RunningBroker } from "../contracts.ts";

export interface ServiceClientOptions {
  /** Appended to the broker's service client id, so each connection keeps its own session. */
  clientIdSuffix?: string;
  /** false: a persistent session, so requests published while the stand-in restarts arrive afterwards. */
  clean: boolean;
  subscribe: string | string[];
  onMessage: (topic: string, payload: Buffer) => void;
  /** Called with the connection an error came from (errors of a connection being replaced are noise). */
  onError: (client: MqttClient, err: Error) => void;
}

export async function connectServiceClient(
  broker: RunningBroker,
  o: ServiceClientOptions,
): Promise<MqttClient> {
  const sc = broker.serviceClient;
  const options: IClientOptions = {
    clientId: `${sc.clientId}${o.clientIdSuffix ?? ""}`,
    clean: o.clean,
    reconnectPeriod: 500,
    connectTimeout: 10_000,
  };
  if (sc.cert) Object.assign(options, { cert: sc.cert, key: sc.key, ca: sc.ca, rejectUnauthorized: true });
  const client = await mqtt.connectAsync(broker.url, options);
  client.on("message", o.onMessage);
  client.on("error", (err) => o.onError(client, err));
  await client.subscribeAsync(o.subscribe, { qos: 1 });
  return client;
}
