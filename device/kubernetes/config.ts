/**
 * The `kubernetes` section of agent.json (off when absent). Validated with zod like the rest of the config;
 * every duration has a unit in its name and a bound.
 */
import { z } from "zod";

const NodeNameSchema = z
  .string()
  .min(1)
  .max(253)
  .regex(
    /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/,
    "must be a lowercase RFC 1123 name, as Kubernetes node names are",
  );

export const KubernetesConfigSchema = z.strictObject({
  /** Path of a kubeconfig; omit to use the in-cluster service account (KUBERNETES_SERVICE_HOST and the token). */
  kubeconfig: z.string().min(1).optional(),
  /** This node's name in the cluster (defaults to the IoT thing name, lowercased). */
  nodeName: NodeNameSchema.optional(),
  /** Where the reboot-slot Leases live; the RBAC in deploy/kubernetes/ grants leases in this namespace only. */
  namespace: NodeNameSchema.default("keel-system"),
  /** Cluster-wide reboot budget: at most this many nodes unavailable (rebooting, NotReady or cordoned). */
  maxUnavailable: z.number().int().min(1).max(1000).default(1),
  /** A holder that stops renewing loses its slot after this long; renewed every third of it. */
  leaseDurationSeconds: z.number().int().min(2).max(86_400).default(600),
  /** Give up draining after this long: uncordon, give the slot back, activate nothing, FAILED drain-timeout. */
  drainTimeoutSeconds: z.number().int().min(1).max(86_400).default(900),
  /** Grace period passed to evictions; omit to use each pod's own terminationGracePeriodSeconds. */
  podGracePeriodSeconds: z.number().int().min(0).max(3600).optional(),
  /** At least this long between one node's reboot and the next in the cluster (recorded on the slot Leases). */
  minSecondsBetweenReboots: z.number().int().min(0).max(86_400).default(0),
  /** How often to look again while waiting for a slot, and the first backoff after a PDB refusal (429). */
  pollIntervalMs: z.number().int().min(10).max(600_000).default(5000),
  /** Backoff cap after repeated PDB refusals. */
  maxBackoffMs: z.number().int().min(10).max(600_000).default(30_000),
});
export type KubernetesConfig = z.output<typeof KubernetesConfigSchema>;

export const MetricsConfigSchema = z.strictObject({
  /** Prometheus text format on http://host:port/metrics. */
  port: z.number().int().min(0).max(65535),
  /** Loopback by default: a scraper on the node (or a port-forward) reads it. */
  host: z.string().min(1).default("127.0.0.1"),
});
export type MetricsConfig = z.output<typeof MetricsConfigSchema>;

/** The node name the agent uses in the cluster. */
export const nodeNameOf = (k: KubernetesConfig, thingName: string): string =>
  k.nodeName ?? thingName.toLowerCase().replace(/[^a-z0-9.-]/g, "-");
