/**
 * AWS IoT fleet provisioning's MQTT topics (docs/fleets.md#fleet-provisioning-by-claim), and how the local
 * brokers route them. AWS answers a provisioning request "through the same MQTT connection used to publish
 * the request", and tells the pre-provisioning hook which claim certificate and client id asked. A plain
 * broker knows neither, so both brokers do the routing themselves:
 * - a claim client's request on an AWS topic is re-published to the stand-in as
 *   `$keel/provisioning/in/<claim certificate id>/<client id>/<AWS topic>`;
 * - the stand-in answers on `$keel/provisioning/out/<client id>/<AWS response topic>`, and the broker
 *   delivers that message to that one connection only, under the AWS response topic.
 * Only the service identity may use `$keel/...`; devices never see these topics.
 */

/** The request topics of the fleet provisioning MQTT API (JSON payloads; CBOR is not served locally). */
export const CREATE_KEYS_TOPIC = "$aws/certificates/create/json";
export const CREATE_FROM_CSR_TOPIC = "$aws/certificates/create-from-csr/json";
export const provisionTopic = (templateName: string): string =>
  `$aws/provisioning-templates/${templateName}/provision/json`;

const IN_PREFIX = "$keel/provisioning/in/";
const OUT_PREFIX = "$keel/provisioning/out/";
/** What the stand-in subscribes to. */
export const INBOUND_FILTER = `${IN_PREFIX}#`;

/**
 * Client ids a claim certificate may connect with: they become one topic level of the routing topics, so
 * `/`, `+`, `#` and anything outside this set are refused at CONNECT (AWS allows 128 characters).
 */
export const CLAIM_CLIENT_ID = /^[A-Za-z0-9_.:-]{1,128}$/;

/** What a claim certificate's attached policies let it do (computed by the IoT registry). */
export interface ClaimAccess {
  /** Request topics it may publish to. */
  publish: string[];
  /** Topic filters it may subscribe to (the `/accepted` and `/rejected` answers of those requests). */
  subscribe: string[];
}

export const inboundTopic = (certificateId: string, clientId: string, awsTopic: string): string =>
  `${IN_PREFIX}${certificateId}/${clientId}/${awsTopic}`;

export const outboundTopic = (clientId: string, awsTopic: string): string =>
  `${OUT_PREFIX}${clientId}/${awsTopic}`;

/** The parts of an inbound routing topic; undefined for anything else. */
export function parseInboundTopic(
  topic: string,
): { certificateId: string; clientId: string; awsTopic: string } | undefined {
  if (!topic.startsWith(IN_PREFIX)) return undefined;
  const [certificateId, clientId, ...rest] = topic.slice(IN_PREFIX.length).split("/");
  if (!certificateId || !/^[0-9a-f]{64}$/.test(certificateId)) return undefined;
  if (!clientId || !CLAIM_CLIENT_ID.test(clientId) || rest.length === 0) return undefined;
  return { certificateId, clientId, awsTopic: rest.join("/") };
}

/** The target client and AWS topic of an outbound routing topic; undefined for anything else. */
export function parseOutboundTopic(topic: string): { clientId: string; awsTopic: string } | undefined {
  if (!topic.startsWith(OUT_PREFIX)) return undefined;
  const [clientId, ...rest] = topic.slice(OUT_PREFIX.length).split("/");
  if (!clientId || !CLAIM_CLIENT_ID.test(clientId) || rest.length === 0) return undefined;
  return { clientId, awsTopic: rest.join("/") };
}
