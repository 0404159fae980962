/**
 * Device registration in AWS IoT: the thing, its certificate and policy, its bucket group. Apart from
 * the jobs wrapper (iot.ts) so that only the rollout API's bundle, whose role may create things, has
 * these calls; advance-rollout's role may not.
 */
import {
  AddThingToThingGroupCommand,
  AttachPolicyCommand,
  AttachThingPrincipalCommand,
  CreateCertificateFromCsrCommand,
  CreateKeysAndCertificateCommand,
  CreateThingCommand,
  type CreateThingCommandInput,
  DescribeEndpointCommand,
  type IoTClient,
} from "@aws-sdk/client-iot";
import { CloudCallError } from "../errors.ts";
import { checkIotCall, ensureThingGroup } from "./iot.ts";
import { retireCertificates, thingPrincipals } from "./iot-deregistration.ts";

/** The CreateThing input for a new device: its fleet as an attribute. */
export function createThingInput(thingName: string, fleet: string): CreateThingCommandInput {
  return { thingName, attributePayload: { attributes: { fleet } } };
}

/**
 * What a new device needs to connect: its certificate, the endpoint, and — only when the cloud made the key
 * (no CSR) — the private key, which exists only in this answer.
 */
export interface DeviceIdentity {
  certificateArn: string;
  certificateId: string | undefined;
  certificatePem: string;
  privateKey?: string;
  endpoint: string | undefined;
}

/**
 * A new certificate for an existing thing, for the key of `csr`: the enrolment of a node whose first
 * answer was lost (a power cut after the API issued it). The thing's other certificates are retired, so
 * it keeps exactly one that works.
 */
export async function reissueCertificate(
  iot: IoTClient,
  thing: { thingName: string; policyName: string | undefined; csr: string },
): Promise<DeviceIdentity> {
  const { thingName, policyName } = thing;
  const old = (await thingPrincipals(iot, thingName)) ?? [];
  const cert = await createCertificate(iot, thing.csr);
  if (policyName) {
    await iot.send(new AttachPolicyCommand({ policyName, target: cert.certificateArn }));
  }
  await iot.send(new AttachThingPrincipalCommand({ thingName, principal: cert.certificateArn }));
  await retireCertificates(iot, thingName, old);
  const endpoint = await iot.send(new DescribeEndpointCommand({ endpointType: "iot:Data-ATS" }));
  return { ...cert, endpoint: endpoint.endpointAddress };
}

/** A certificate for the CSR's key when there is one (the key stays on the node), else a new key pair. */
async function createCertificate(
  iot: IoTClient,
  csr: string | undefined,
): Promise<Omit<DeviceIdentity, "endpoint">> {
  if (csr !== undefined) {
    const input = { certificateSigningRequest: csr, setAsActive: true };
    checkIotCall("iot:CreateCertificateFromCsr", input);
    const cert = await iot.send(new CreateCertificateFromCsrCommand(input));
    if (!cert.certificateArn || !cert.certificatePem) {
      throw new CloudCallError("CreateCertificateFromCsr returned no certificate");
    }
    return {
      certificateArn: cert.certificateArn,
      certificateId: cert.certificateId,
      certificatePem: cert.certificatePem,
    };
  }
  const cert = await iot.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
  if (!cert.certificateArn || !cert.certificatePem || !cert.keyPair?.PrivateKey) {
    throw new CloudCallError("CreateKeysAndCertificate returned no certificate or key");
  }
  return {
    certificateArn: cert.certificateArn,
    certificateId: cert.certificateId,
    certificatePem: cert.certificatePem,
    privateKey: cert.keyPair.PrivateKey,
  };
}

/**
 * Provisions a device: the thing (with its fleet as an attribute), an active certificate bound to it
 * (with the device policy, when the deployment has one), and membership of its bucket group. With a CSR
 * the certificate is for the node's own key (CreateCertificateFromCsr); the caller has verified the CSR.
 */
export async function provisionThing(
  iot: IoTClient,
  thing: { thingName: string; fleet: string; group: string; policyName: string | undefined; csr?: string },
): Promise<DeviceIdentity> {
  const { thingName, fleet, group, policyName } = thing;
  const input = createThingInput(thingName, fleet);
  checkIotCall("iot:CreateThing", input);
  await iot.send(new CreateThingCommand(input));
  const cert = await createCertificate(iot, thing.csr);
  if (policyName) {
    await iot.send(new AttachPolicyCommand({ policyName, target: cert.certificateArn }));
  }
  await iot.send(new AttachThingPrincipalCommand({ thingName, principal: cert.certificateArn }));
  await ensureThingGroup(iot, group);
  await iot.send(new AddThingToThingGroupCommand({ thingGroupName: group, thingName }));
  const endpoint = await iot.send(new DescribeEndpointCommand({ endpointType: "iot:Data-ATS" }));
  return { ...cert, endpoint: endpoint.endpointAddress };
}
