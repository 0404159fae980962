/**
 * The objects the Kubernetes stand-in keeps, and zod schemas for every body a client may send. Objects are
 * loose (unknown fields are kept and returned, as the API server keeps them); the fields Keel and kubectl
 * rely on are typed and checked.
 */
import { z } from "zod";

/** RFC 1123 subdomain: what Kubernetes accepts as most object names. */
export const NameSchema = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, "must be a lowercase RFC 1123 subdomain");

const StringMap = z.record(z.string(), z.string());

export const ObjectMetaSchema = z.looseObject({
  name: NameSchema,
  namespace: z.string().optional(),
  uid: z.string().optional(),
  resourceVersion: z.string().optional(),
  creationTimestamp: z.string().optional(),
  deletionTimestamp: z.string().optional(),
  deletionGracePeriodSeconds: z.number().int().min(0).optional(),
  labels: StringMap.optional(),
  annotations: StringMap.optional(),
  ownerReferences: z
    .array(
      z.looseObject({
        apiVersion: z.string(),
        kind: z.string(),
        name: z.string(),
        uid: z.string(),
        controller: z.boolean().optional(),
      }),
    )
    .optional(),
});
export type ObjectMeta = z.infer<typeof ObjectMetaSchema>;

const ConditionSchema = z.looseObject({
  type: z.string().min(1),
  status: z.enum(["True", "False", "Unknown"]),
  lastHeartbeatTime: z.string().optional(),
  lastTransitionTime: z.string().optional(),
  reason: z.string().optional(),
  message: z.string().optional(),
});
export type Condition = z.infer<typeof ConditionSchema>;

export const NodeSchema = z.looseObject({
  apiVersion: z.literal("v1").optional(),
  kind: z.literal("Node").optional(),
  metadata: ObjectMetaSchema,
  spec: z
    .looseObject({
      unschedulable: z.boolean().optional(),
      taints: z
        .array(
          z.looseObject({ key: z.string().min(1), effect: z.string().min(1), value: z.string().optional() }),
        )
        .optional(),
    })
    .default({}),
  status: z
    .looseObject({
      conditions: z.array(ConditionSchema).optional(),
      nodeInfo: z
        .looseObject({
          bootID: z.string().optional(),
          kubeletVersion: z.string().optional(),
          osImage: z.string().optional(),
        })
        .optional(),
    })
    .default({}),
});
export type Node = z.infer<typeof NodeSchema>;

export const PodSchema = z.looseObject({
  metadata: ObjectMetaSchema,
  spec: z.looseObject({
    nodeName: z.string().optional(),
    terminationGracePeriodSeconds: z.number().int().min(0).optional(),
    volumes: z.array(z.looseObject({ name: z.string() })).optional(),
    containers: z.array(z.looseObject({ name: z.string(), image: z.string() })).min(1),
  }),
  status: z
    .looseObject({
      phase: z.enum(["Pending", "Running", "Succeeded", "Failed", "Unknown"]),
      conditions: z.array(ConditionSchema).optional(),
    })
    .default({ phase: "Pending" }),
});
export type Pod = z.infer<typeof PodSchema>;

const IntOrPercent = z.union([z.number().int().min(0), z.string().regex(/^\d{1,3}%$/, "must be N or N%")]);

export const LabelSelectorSchema = z.looseObject({ matchLabels: StringMap.optional() });

export const PdbSchema = z.looseObject({
  metadata: ObjectMetaSchema,
  spec: z
    .looseObject({
      minAvailable: IntOrPercent.optional(),
      maxUnavailable: IntOrPercent.optional(),
      selector: LabelSelectorSchema,
    })
    .refine((s) => (s.minAvailable === undefined) !== (s.maxUnavailable === undefined), {
      message: "exactly one of minAvailable and maxUnavailable",
    }),
});
export type Pdb = z.infer<typeof PdbSchema>;

/** DaemonSets and ReplicaSets: only what the stand-in's controllers need. */
export const WorkloadSchema = z.looseObject({
  metadata: ObjectMetaSchema,
  spec: z.looseObject({
    replicas: z.number().int().min(0).optional(),
    selector: LabelSelectorSchema,
    template: z.looseObject({
      metadata: z.looseObject({ labels: StringMap.optional() }).optional(),
      spec: z.looseObject({}),
    }),
  }),
});
export type Workload = z.infer<typeof WorkloadSchema>;

/** MicroTime as the API writes it: RFC 3339 with microseconds. */
const MicroTime = z.string().regex(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$/);

export const LeaseSchema = z.looseObject({
  apiVersion: z.literal("coordination.k8s.io/v1").optional(),
  kind: z.literal("Lease").optional(),
  metadata: ObjectMetaSchema,
  spec: z
    .looseObject({
      holderIdentity: z.string().max(1024).nullable().optional(),
      leaseDurationSeconds: z.number().int().min(1).nullable().optional(),
      acquireTime: MicroTime.nullable().optional(),
      renewTime: MicroTime.nullable().optional(),
      leaseTransitions: z.number().int().min(0).nullable().optional(),
    })
    .default({}),
});
export type Lease = z.infer<typeof LeaseSchema>;

export const DeleteOptionsSchema = z.looseObject({
  gracePeriodSeconds: z.number().int().min(0).nullable().optional(),
  preconditions: z.looseObject({ uid: z.string().optional() }).optional(),
});

export const EvictionSchema = z.looseObject({
  apiVersion: z.enum(["policy/v1", "policy/v1beta1"]),
  kind: z.literal("Eviction"),
  metadata: z.looseObject({ name: NameSchema, namespace: z.string().optional() }),
  deleteOptions: DeleteOptionsSchema.nullable().optional(),
});

export const isReady = (conditions: Condition[] | undefined): boolean =>
  conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;

/** The controller reference of a pod, if any. */
export const controllerOf = (m: ObjectMeta) => m.ownerReferences?.find((r) => r.controller === true);

/** RFC 3339 with microseconds, as metav1.MicroTime serialises. */
export const microTime = (ms: number): string => new Date(ms).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
export const rfc3339 = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
