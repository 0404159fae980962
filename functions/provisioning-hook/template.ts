/**
 * Keel's fleet provisioning template and claim policy, one per fleet (docs/fleets.md#fleet-provisioning-by-claim).
 * The same text goes to AWS (infra/) and to the local stand-in, so what is tested is what is deployed.
 *
 * The device sends its thing name as the `ThingName` parameter; the pre-provisioning hook decides whether
 * that name may join the fleet and answers the fleet's bucket group in `BucketGroup` (a template cannot
 * compute a SHA-256 bucket itself). The thing gets the fleet as an attribute, as `keel fleet register`
 * gives it; the certificate becomes ACTIVE with the device policy attached.
 */
import {
  AttachPolicyCommand,
  CreateKeysAndCertificateCommand,
  CreatePolicyCommand,
  CreateProvisioningTemplateCommand,
  type IoTClient,
  ResourceAlreadyExistsException,
} from "@aws-sdk/client-iot";
import { claimPolicyNameOf, templateNameOf } from "./names.ts";

/** The template body: thing from `ThingName`, its bucket group from the hook, ACTIVE cert, device policy. */
export function provisioningTemplateBody(fleet: string, devicePolicyName: string | undefined): string {
  return JSON.stringify({
    Parameters: {
      ThingName: { Type: "String" },
      BucketGroup: { Type: "String" },
      "AWS::IoT::Certificate::Id": { Type: "String" },
    },
    Resources: {
      thing: {
        Type: "AWS::IoT::Thing",
        Properties: {
          ThingName: { Ref: "ThingName" },
          AttributePayload: { fleet },
          ThingGroups: [{ Ref: "BucketGroup" }],
        },
      },
      certificate: {
        Type: "AWS::IoT::Certificate",
        Properties: { CertificateId: { Ref: "AWS::IoT::Certificate::Id" }, Status: "ACTIVE" },
      },
      ...(devicePolicyName
        ? { policy: { Type: "AWS::IoT::Policy", Properties: { PolicyName: devicePolicyName } } }
        : {}),
    },
    DeviceConfiguration: { fleet },
  });
}

/**
 * The claim certificate's policy: connect, CreateCertificateFromCsr and this fleet's template only
 * (never CreateKeysAndCertificate: a node's key is made on the node), and nothing else.
 */
export function claimPolicyDocument(
  arn: { partition?: string; region: string; account: string },
  fleet: string,
): string {
  const base = `arn:${arn.partition ?? "aws"}:iot:${arn.region}:${arn.account}`;
  const topics = [
    "$aws/certificates/create-from-csr/json",
    `$aws/provisioning-templates/${templateNameOf(fleet)}/provision/json`,
  ];
  return JSON.stringify({
    Version: "2012-10-17",
    Statement: [
      { Effect: "Allow", Action: "iot:Connect", Resource: `${base}:client/*` },
      {
        Effect: "Allow",
        Action: ["iot:Publish", "iot:Receive"],
        Resource: topics.flatMap((t) => [`${base}:topic/${t}`, `${base}:topic/${t}/*`]),
      },
      { Effect: "Allow", Action: "iot:Subscribe", Resource: topics.map((t) => `${base}:topicfilter/${t}/*`) },
    ],
  });
}

/**
 * Creates the fleet's claim policy and provisioning template when they do not exist (local cloud; in AWS
 * the stack declares them). Idempotent.
 */
export async function ensureFleetProvisioning(
  iot: IoTClient,
  p: {
    fleet: string;
    region: string;
    account: string;
    hookArn: string;
    provisioningRoleArn: string;
    devicePolicyName?: string;
  },
): Promise<{ templateName: string; claimPolicyName: string }> {
  const templateName = templateNameOf(p.fleet);
  const claimPolicyName = claimPolicyNameOf(p.fleet);
  await ignoreExisting(
    iot.send(
      new CreatePolicyCommand({
        policyName: claimPolicyName,
        policyDocument: claimPolicyDocument(p, p.fleet),
      }),
    ),
  );
  await ignoreExisting(
    iot.send(
      new CreateProvisioningTemplateCommand({
        templateName,
        description: `Keel: nodes of fleet ${p.fleet} enrol by claim`,
        templateBody: provisioningTemplateBody(p.fleet, p.devicePolicyName),
        enabled: true,
        provisioningRoleArn: p.provisioningRoleArn,
        preProvisioningHook: { targetArn: p.hookArn },
        type: "FLEET_PROVISIONING",
      }),
    ),
  );
  return { templateName, claimPolicyName };
}

/** A claim certificate for the fleet: ACTIVE, with only the claim policy attached. Its key is in the answer only. */
export async function createClaimCertificate(
  iot: IoTClient,
  fleet: string,
): Promise<{ certificateId: string; certificateArn: string; certificatePem: string; privateKey: string }> {
  const cert = await iot.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
  if (!cert.certificateArn || !cert.certificateId || !cert.certificatePem || !cert.keyPair?.PrivateKey) {
    throw new Error("CreateKeysAndCertificate returned no certificate or key");
  }
  await iot.send(
    new AttachPolicyCommand({ policyName: claimPolicyNameOf(fleet), target: cert.certificateArn }),
  );
  return {
    certificateId: cert.certificateId,
    certificateArn: cert.certificateArn,
    certificatePem: cert.certificatePem,
    privateKey: cert.keyPair.PrivateKey,
  };
}

async function ignoreExisting(call: Promise<unknown>): Promise<void> {
  try {
    await call;
  } catch (err) {
    if (!(err instanceof ResourceAlreadyExistsException)) throw err;
  }
}
