/**
 * Seams inside the local cloud, so the IoT Jobs stand-in (local/iot/) and the transport (CA, brokers,
 * s3rver, dynalite: local/*.ts) can be built and tested apart.
 */

/** A device certificate issued by the local CA, as CreateKeysAndCertificate returns it. */
export interface IssuedCertificate {
  /** As in AWS IoT: lower-case hex SHA-256 of the certificate's DER bytes (64 characters). */
  certificateId: string;
  certificatePem: string;
  privateKeyPem: string;
  publicKeyPem: string;
}

export interface CertificateAuthority {
  readonly caCertPem: string;
  /** Path of the CA certificate on disk (written to `.keel/local.json` as `caFile`). */
  readonly caFile: string;
  issueDeviceCertificate(): Promise<IssuedCertificate>;
}

/**
 * What the brokers ask the IoT registry (owned by the stand-in) on every connect, publish and subscribe.
 * AWS IoT semantics: a device connects with a certificate that is ACTIVE and attached to the thing whose
 * name is the MQTT client id; it may then use only `$aws/things/<thing>/jobs/...` (DESIGN.md, device policy).
 */
export interface DeviceAuthority {
  /** null when allowed; otherwise the reason the connection is refused. */
  checkConnect(certificateId: string, clientId: string): string | null;
  /** Registry changes (attach, detach, certificate status) that a broker with static config must reload. */
  onChange(listener: () => void): () => void;
  /** Snapshot for brokers that need static config: active certificates and the things each is attached to. */
  listActiveCertificates(): Array<{ certificateId: string; things: string[] }>;
}

/** Topic rule shared by both brokers: a device may publish and subscribe only under its own jobs topics. */
export function deviceMayUseTopic(thingName: string, topic: string): boolean {
  // Wildcards after the prefix stay inside the thing's own namespace; a wildcard in the thing position
  // cannot match the literal prefix, so `$aws/things/+/jobs/#` is refused.
  return topic.startsWith(`$aws/things/${thingName}/jobs/`);
}

/** A running MQTT broker with mutual TLS; the stand-in connects to it with the service identity. */
export interface RunningBroker {
  readonly kind: "aedes" | "mosquitto";
  /** mqtts://127.0.0.1:PORT */
  readonly url: string;
  /** TLS options (cert, key, ca) for the privileged service client the stand-in uses. */
  readonly serviceClient: { cert: string; key: string; ca: string; clientId: string };
  stop(): Promise<void>;
}

/** Local clock with an optional time scale (`--time-scale 60` makes a minute pass in a second). */
export interface Clock {
  now(): number; // epoch milliseconds, scaled
  setTimeout(fn: () => void, ms: number): { cancel(): void }; // ms in scaled time
}
