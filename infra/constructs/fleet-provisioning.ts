/**
 * Fleet provisioning by claim (docs/fleets.md#fleet-provisioning-by-claim): the pre-provisioning hook Lambda
 * that AWS IoT may invoke (and nobody else), and the role AWS IoT provisions a thing with. The fleets'
 * templates and claim policies are made by the rollout API, once per fleet (its role may create only
 * `keel-*` templates and `keel-claim-*` policies, and pass only this role).
 */
import { Stack, Token } from "aws-cdk-lib";
import * as iam from "aws-cdk-lib/aws-iam";
import type * as iot from "aws-cdk-lib/aws-iot";
import { Construct } from "constructs";
import { acknowledge } from "../nag.ts";
import { KeelFunction, type KeelFunctionProps } from "./keel-function.ts";

export interface FleetProvisioningProps {
  readonly hook: Omit<KeelFunctionProps, "description">;
  /** The device policy the templates attach to a new certificate. */
  readonly devicePolicy: iot.CfnPolicy;
}

export class FleetProvisioning extends Construct {
  readonly hook: KeelFunction;
  /** AWS IoT assumes it to create the thing, activate the certificate and attach the device policy. */
  readonly provisioningRole: iam.Role;

  constructor(scope: Construct, id: string, props: FleetProvisioningProps) {
    super(scope, id);
    const stack = Stack.of(this);
    this.hook = new KeelFunction(this, "Hook", {
      ...props.hook,
      description: "Keel: pre-provisioning hook — which nodes may enrol by claim",
    });
    // Only AWS IoT of this account may invoke it (confused deputy).
    this.hook.function.addPermission("IotInvoke", {
      principal: new iam.ServicePrincipal("iot.amazonaws.com"),
      sourceAccount: stack.account,
    });

    this.provisioningRole = new iam.Role(this, "ProvisioningRole", {
      assumedBy: new iam.ServicePrincipal("iot.amazonaws.com").withConditions({
        StringEquals: { "aws:SourceAccount": stack.account },
      }),
      description:
        "AWS IoT provisions a node enrolling by claim with this role: its thing, group membership, certificate and device policy",
    });
    const arn = (resource: string, name: string) =>
      stack.formatArn({ service: "iot", resource, resourceName: name });
    const statements: Array<[string[], string[]]> = [
      [
        ["iot:CreateThing", "iot:DescribeThing", "iot:AddThingToThingGroup"],
        [arn("thing", "*"), arn("thinggroup", "*")],
      ],
      [["iot:DescribeThingGroup"], [arn("thinggroup", "*")]],
      [["iot:AttachThingPrincipal"], [arn("thing", "*")]],
      [["iot:DescribeCertificate", "iot:UpdateCertificate"], [arn("cert", "*")]],
      [["iot:AttachPolicy"], [arn("cert", "*"), arn("policy", props.devicePolicy.ref)]],
    ];
    for (const [actions, resources] of statements) {
      this.provisioningRole.addToPolicy(new iam.PolicyStatement({ actions, resources }));
    }
    const region = Token.isUnresolved(stack.region) ? "<AWS::Region>" : stack.region;
    const account = Token.isUnresolved(stack.account) ? "<AWS::AccountId>" : stack.account;
    const why: Record<string, string> = {
      thing: "the thing a node enrols as is named by the node at enrolment time",
      thinggroup: "a fleet's bucket group (<fleet>-bNN) is chosen by the hook at enrolment time",
      cert: "the node's certificate is created from its CSR at enrolment time",
    };
    for (const [kind, reason] of Object.entries(why)) {
      acknowledge(
        this.provisioningRole,
        `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iot:${region}:${account}:${kind}/*]`,
        `Fleet provisioning: ${reason}.`,
      );
    }
  }
}
