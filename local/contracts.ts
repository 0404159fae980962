/**
 * Seams inside the local cloud, so the IoT Jobs stand-in (local/iot/) and the transport (CA, brokers,
 * s3rver, dynalite: local/*.ts) can be built and tested apart.
 */

import type { KeyObject } from "node:crypto";
import type { HookInput } from "./iot/fleet-provisioning.ts";
import type { KubeStandIn } from "./k8s/standin.ts";
import type { ClaimAccess } from "./provisioning-topics.ts";

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
  /** CreateCertificateFromCsr: a device certificate for a key that stays where it was made (core/csr.ts). */
  issueCertificateForKey(publicKey: KeyObject): Promise<{ certificateId: string; certificatePem: string }>;
}

/**
 * What the brokers ask the IoT registry (owned by the stand-in) on every connect, publish and subscribe.
 * AWS IoT semantics: a device connects with a certificate that is ACTIVE and attached to the thing whose
 * name is the MQTT client id; it may then use only `$aws/things/<thing>/jobs/...` (docs/architecture.md, device policy).
 */
export interface DeviceAuthority {
  /** null when allowed; otherwise the reason the connection is refused. */
  checkConnect(certificateId: string, clientId: string): string | null;
  /** Registry changes (attach, detach, certificate status) that a broker with static config must reload. */
  onChange(listener: () => void): () => void;
  /** Snapshot for brokers that need static config: active certificates and the things each is attached to. */
  listActiveCertificates(): Array<{ certificateId: string; things: string[] }>;
  /**
   * For an ACTIVE claim certificate (attached to no thing, with a policy allowing fleet provisioning): the
   * provisioning topics it may use (docs/fleets.md#fleet-provisioning-by-claim). undefined for any other.
   */
  claimAccess?(certificateId: string): ClaimAccess | undefined;
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
  /**
   * Resolves once every registry change made so far is enforced for new connections. aedes asks the registry
   * on each CONNECT (nothing to wait for); mosquitto reloads a generated ACL file and CRL after each change.
   */
  settled?(): Promise<void>;
  stop(): Promise<void>;
}

/** Local clock with an optional time scale (`--time-scale 60` makes a minute pass in a second). */
export interface Clock {
  now(): number; // epoch milliseconds, scaled
  setTimeout(fn: () => void, ms: number): { cancel(): void }; // ms in scaled time
}

/** Dummy credentials every local client uses; the local services accept any signature made with them. */
export const LOCAL_CREDENTIALS = { accessKeyId: "KEELLOCAL", secretAccessKey: "keel-local-secret" } as const;
export const LOCAL_REGION = "us-east-1";
export const LOCAL_ACCOUNT = "000000000000";

/** Job and job-execution events, the same payloads AWS publishes on `$aws/events/...` (docs/iot-jobs.md). */
export interface IotEvent {
  topic: string;
  payload: Record<string, unknown>;
}

export interface IotStandInOptions {
  /** Where the registry, certificates records, jobs and executions persist (survive a restart). */
  dataDir: string;
  region: string;
  account: string;
  clock: Clock;
  ca: CertificateAuthority;
  /** The local S3 that presigned-URL placeholders are presigned against. */
  s3: { endpoint: string; region: string; credentials: { accessKeyId: string; secretAccessKey: string } };
}

export interface IotStandInStats {
  /** Control-plane calls per operation name (CreateJob, DescribeJob, …). */
  apiCalls: Record<string, number>;
  /** The same, per job id, for calls whose path names a job. */
  apiCallsByJob: Record<string, Record<string, number>>;
  mqttMessagesIn: number;
  mqttMessagesOut: number;
}

/**
 * A service fault to inject (local mode only, for resilience tests and demos): the data plane answers the
 * next `count` matching requests on `/rejected` with `code` (docs/iot-jobs.md: agents retry these) and changes
 * no state. Unset fields match anything.
 */
export interface FaultRule {
  thing?: string;
  operation?: "get" | "start-next" | "describe" | "update";
  /** Only updates asking for this status. */
  status?: string;
  code: "InternalError" | "RequestThrottled";
  count: number;
}

/** The AWS IoT Jobs stand-in: registry + jobs engine + control plane (HTTP) + data plane (MQTT). */
export interface IotStandIn {
  /** Ready before start(): the brokers need it to authorize devices. */
  readonly authority: DeviceAuthority;
  /** Connects to the broker as the service and serves the control plane; returns its http://127.0.0.1:PORT. */
  start(broker: RunningBroker, options?: { port?: number }): Promise<{ endpoint: string }>;
  /** In-process subscription to job / job-execution events (also published on MQTT once enabled). */
  onEvent(listener: (e: IotEvent) => void): () => void;
  stats(): IotStandInStats;
  /** Fault injection (local only); rules are consumed in the order they were added. */
  injectFaults?(rule: FaultRule): void;
  /**
   * Serves a Lambda ARN in-process (fleet provisioning's pre-provisioning hook, as a template names it);
   * a hook ARN with no handler refuses provisioning. Returns the unregistration.
   */
  registerLambda?(functionArn: string, handler: (input: HookInput) => Promise<unknown>): () => void;
  stop(): Promise<void>;
}

/** `.keel/local.json` */
export interface LocalCloudInfo {
  region: string;
  account: string;
  s3: string;
  dynamodb: string;
  iot: string;
  mqtt: string;
  caFile: string;
  api: string;
  bucket: string;
  table: string;
  /** kubeconfig for the Kubernetes API stand-in (docs/kubernetes.md): `kubectl --kubeconfig <it> get nodes`. */
  kubeconfig?: string;
}

export interface LocalCloud {
  readonly info: LocalCloudInfo;
  readonly ca: CertificateAuthority;
  readonly clock: Clock;
  readonly iot: IotStandIn;
  readonly broker: RunningBroker;
  /** The Kubernetes API stand-in: the simulated fleet's cluster (local/k8s/). */
  readonly kube?: KubeStandIn;
  /** s3rver ObjectCreated notifications (the trigger for register-release). */
  onObjectCreated(listener: (e: { bucket: string; key: string; size: number }) => void): () => void;
  stop(): Promise<void>;
}
