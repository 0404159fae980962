/**
 * AWS IoT has no grant* helpers, so the IoT actions each function may call are listed here as data, one
 * row per action, each scoped to the narrowest resource IoT authorizes it on (Service Authorization
 * Reference, "Actions defined by AWS IoT"). test/infra/policies.test.ts checks that this table is
 * exactly what each bundled function calls — nothing missing, nothing extra.
 */
import { Stack, Token } from "aws-cdk-lib";
import * as iam from "aws-cdk-lib/aws-iam";
import { acknowledge } from "./nag.ts";

/** Rollout job ids are derived as `keel-<rollout>-w<n>` (docs/architecture.md). */
export const JOB_ID_PATTERN = "keel-*";

type IotResource = "job" | "thing" | "thinggroup" | "cert" | "policy" | "provisioningtemplate" | "none";

/** The resource name each kind is scoped to, and why a wildcard there is the narrowest choice. */
const RESOURCES: Record<IotResource, { resourceName: string; why: string }> = {
  job: { resourceName: JOB_ID_PATTERN, why: "only Keel's derived job ids (keel-<rollout>-w<n>)" },
  thing: { resourceName: "*", why: "devices are registered and targeted by name at run time" },
  thinggroup: {
    resourceName: "*",
    why: "fleet bucket groups (<fleet>-bNN) and operator-named groups are chosen at run time",
  },
  cert: { resourceName: "*", why: "a new device certificate's id is known only after it is created" },
  policy: { resourceName: "keel-claim-*", why: "only fleets' claim policies, named keel-claim-<fleet>" },
  provisioningtemplate: {
    resourceName: "keel-*",
    why: "only fleets' provisioning templates, named keel-<fleet> (docs/fleets.md#fleet-provisioning-by-claim)",
  },
  none: { resourceName: "*", why: "the action has no resource-level permissions" },
};

export const IOT_ACTIONS = {
  rolloutApi: {
    // Rollouts: the first wave's job is created when the rollout starts; abort cancels the current one.
    CreateJob: ["job", "thing", "thinggroup"],
    CancelJob: ["job"],
    DescribeJob: ["job"],
    CreateThingGroup: ["thinggroup"],
    // Finds a wave's existing bucket groups in one call per fleet instead of one per group.
    ListThingGroups: ["none"],
    // A thing group that already exists when created with other properties, and named target groups.
    DescribeThingGroup: ["thinggroup"],
    DescribeThing: ["thing"],
    // Device registration (POST /fleets/{fleet}/things).
    CreateThing: ["thing"],
    AddThingToThingGroup: ["thing", "thinggroup"],
    CreateKeysAndCertificate: ["none"],
    AttachPolicy: ["cert"],
    AttachThingPrincipal: ["thing"],
    DescribeEndpoint: ["none"],
    // Enrolment (register --csr, POST /fleets/{fleet}/enrolments): a certificate for the node's own key.
    CreateCertificateFromCsr: ["none"],
    // Removal (DELETE /fleets/{fleet}/things/{thing}) and re-enrolment: retire the thing's certificates,
    // leave its groups, delete it.
    ListThingPrincipals: ["thing"],
    DetachThingPrincipal: ["thing"],
    UpdateCertificate: ["cert"],
    ListThingGroupsForThing: ["thing"],
    RemoveThingFromThingGroup: ["thing", "thinggroup"],
    DeleteThing: ["thing"],
    // Fleet provisioning by claim (POST /fleets/{fleet}/claim-certificates): the fleet's policy and template, once.
    CreatePolicy: ["policy"],
    CreateProvisioningTemplate: ["provisioningtemplate"],
  },
  advanceRollout: {
    CreateJob: ["job", "thing", "thinggroup"],
    CancelJob: ["job"],
    DescribeJob: ["job"],
    CreateThingGroup: ["thinggroup"],
    ListThingGroups: ["none"],
    DescribeThingGroup: ["thinggroup"],
    DescribeThing: ["thing"],
  },
  // The pre-provisioning hook makes sure the bucket group its answer names exists.
  provisioningHook: {
    CreateThingGroup: ["thinggroup"],
  },
} as const satisfies Record<string, Record<string, readonly IotResource[]>>;

export type IotGrantee = keyof typeof IOT_ACTIONS;

/** Adds one statement per IoT action to the role and acknowledges each wildcard with its reason. */
export function grantIot(role: iam.Role, who: IotGrantee): void {
  const stack = Stack.of(role);
  // cdk-nag names a finding by the ARN as synthesized: pseudo parameters as <AWS::…>, literals as is.
  const region = Token.isUnresolved(stack.region) ? "<AWS::Region>" : stack.region;
  const account = Token.isUnresolved(stack.account) ? "<AWS::AccountId>" : stack.account;
  const acknowledged = new Set<string>();
  for (const [action, kinds] of Object.entries(IOT_ACTIONS[who])) {
    const resources = kinds.map((k) =>
      k === "none"
        ? "*"
        : stack.formatArn({ service: "iot", resource: k, resourceName: RESOURCES[k].resourceName }),
    );
    role.addToPolicy(new iam.PolicyStatement({ actions: [`iot:${action}`], resources }));
    for (const k of kinds) {
      const finding =
        k === "none"
          ? "Resource::*"
          : `Resource::arn:<AWS::Partition>:iot:${region}:${account}:${k}/${RESOURCES[k].resourceName}`;
      if (acknowledged.has(finding)) continue;
      acknowledged.add(finding);
      acknowledge(
        role,
        `AwsSolutions-IAM5[${finding}]`,
        `AWS IoT ${k === "none" ? "actions without resource types" : `${k} resources`}: ${RESOURCES[k].why}.`,
      );
    }
  }
}
