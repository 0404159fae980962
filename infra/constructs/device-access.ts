/**
 * What a device may touch (docs/security.md): its own MQTT client id and its own Jobs topics, plus the
 * release objects IoT presigns for it. Nothing here grants `*`.
 */
import { type CfnResource, Stack } from "aws-cdk-lib";
import * as iam from "aws-cdk-lib/aws-iam";
import * as iot from "aws-cdk-lib/aws-iot";
import type * as s3 from "aws-cdk-lib/aws-s3";
import { Construct } from "constructs";
import { acknowledge, arnFinding } from "../nag.ts";
import { RELEASES_PREFIX } from "./release-bucket.ts";

/** IoT policy variable for the thing bound to the connecting certificate. */
// biome-ignore lint/suspicious/noTemplateCurlyInString: an IoT policy variable, substituted by AWS IoT, not by JS.
export const THING_NAME_VARIABLE = "${iot:Connection.Thing.ThingName}";

export interface DeviceAccessProps {
  readonly bucket: s3.IBucket;
  /**
   * Name of the device IoT policy (the API attaches it to every new device certificate).
   * @default - a name CloudFormation generates
   */
  readonly devicePolicyName?: string;
}

export class DeviceAccess extends Construct {
  /** Role AWS IoT assumes to presign the job document's `${aws:iot:s3-presigned-url:…}` placeholders. */
  readonly presignRole: iam.Role;
  readonly devicePolicy: iot.CfnPolicy;

  constructor(scope: Construct, id: string, props: DeviceAccessProps) {
    super(scope, id);

    this.presignRole = new iam.Role(this, "PresignRole", {
      // Confused-deputy guard: IoT may assume this role only on behalf of this account.
      assumedBy: new iam.ServicePrincipal("iot.amazonaws.com").withConditions({
        StringEquals: { "aws:SourceAccount": Stack.of(this).account },
      }),
      description:
        "AWS IoT presigns job-document URLs with this role: it can read signed releases and trust roots, nothing else",
    });
    // Hand-written rather than bucket.grantRead: grantRead would add s3:List* and s3:GetBucket*, and a
    // presigned URL needs only GetObject on the release objects and the trust roots a job points devices
    // to (job documents carry rootUrls so devices can walk root N → N+1; roots are signed public metadata).
    this.presignRole.addToPolicy(
      new iam.PolicyStatement({
        actions: ["s3:GetObject"],
        resources: [
          props.bucket.arnForObjects(`${RELEASES_PREFIX}*`),
          props.bucket.arnForObjects("trust/root.*.json"),
        ],
      }),
    );
    acknowledge(
      this.presignRole,
      arnFinding(props.bucket.node.defaultChild as CfnResource, `/${RELEASES_PREFIX}*`),
      "Presigned URLs are for the release objects, named by version under releases/, and the signed trust roots; the role can read nothing else.",
    );
    acknowledge(
      this.presignRole,
      arnFinding(props.bucket.node.defaultChild as CfnResource, "/trust/root.*.json"),
      "Job documents point devices at newer signed trust roots (trust/root.<n>.json) to walk the chain forward; the pattern matches only those files.",
    );

    const stack = Stack.of(this);
    const iotArn = (resource: string, resourceName: string) =>
      stack.formatArn({ service: "iot", resource, resourceName });
    const jobsTopics = `$aws/things/${THING_NAME_VARIABLE}/jobs/*`;
    const document = {
      Version: "2012-10-17",
      Statement: [
        {
          // Client id = thing name, and only for a certificate attached to that thing.
          Effect: "Allow",
          Action: ["iot:Connect"],
          Resource: [iotArn("client", THING_NAME_VARIABLE)],
          Condition: { Bool: { "iot:Connection.Thing.IsAttached": "true" } },
        },
        {
          Effect: "Allow",
          Action: ["iot:Publish", "iot:Receive"],
          Resource: [iotArn("topic", jobsTopics)],
        },
        {
          Effect: "Allow",
          Action: ["iot:Subscribe"],
          Resource: [iotArn("topicfilter", jobsTopics)],
        },
      ],
    };
    this.devicePolicy = new iot.CfnPolicy(this, "DevicePolicy", {
      policyName: props.devicePolicyName,
      policyDocument: document,
    });
  }
}
