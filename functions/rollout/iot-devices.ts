/**
 * Device registration in AWS IoT: the thing, its certificate and policy, its bucket group. Apart from
 * the jobs wrapper (iot.ts) so that only the rollout API's bundle, whose role may create things, has
 * these calls; advance-rollout's role may not.
 */
import {
  AddThingToThingGroupCommand,
  AttachPolicyCommand,
  AttachThingPrincipalCommand,
  CreateKeysAndCertificateCommand,
  CreateThingCommand,
  type CreateThingCommandInput,
  DescribeEndpointCommand,
  type IoTClient,
} from "@aws-sdk/client-iot";
import { CloudCallError } from "../errors.ts";
import { checkIotCall, ensureThingGroup } from "./iot.ts";

/** The CreateThing input for a new device: its fleet as an attribute. */
export function createThingInput(thingName: string, fleet: string): CreateThingCommandInput {
  return { thingName, attributePayload: { attributes: { fleet } } };
}

/** What a new device needs to connect: its certificate and key (only ever in this answer), the endpoint. */
export interface DeviceIdentity {
  certificateArn: string;
  certificateId: string | undefined;
  certificatePem: string;
  privateKey: string;
  endpoint: string | undefined;
}

/**
 * Provisions a device: the thing (with its fleet as an attribute), an active certificate bound to it
 * (with the device policy, when the deployment has one), and membership of its bucket group.
 */
export async function provisionThing(
  iot: IoTClient,
  thing: { thingName: string; fleet: string; group: string; policyName: string | undefined },
): Promise<DeviceIdentity> {
  const { thingName, fleet, group, policyName } = thing;
  const input = createThingInput(thingName, fleet);
  checkIotCall("iot:CreateThing", input);
  await iot.send(new CreateThingCommand(input));
  const cert = await iot.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
  if (!cert.certificateArn || !cert.certificatePem || !cert.keyPair?.PrivateKey) {
    throw new CloudCallError("CreateKeysAndCertificate returned no certificate or key");
  }
  if (policyName) {
    await iot.send(new AttachPolicyCommand({ policyName, target: cert.certificateArn }));
  }
  await iot.send(new AttachThingPrincipalCommand({ thingName, principal: cert.certificateArn }));
  await ensureThingGroup(iot, group);
  await iot.send(new AddThingToThingGroupCommand({ thingGroupName: group, thingName }));
  const endpoint = await iot.send(new DescribeEndpointCommand({ endpointType: "iot:Data-ATS" }));
  return {
    certificateArn: cert.certificateArn,
    certificateId: cert.certificateId,
    certificatePem: cert.certificatePem,
    privateKey: cert.keyPair.PrivateKey,
    endpoint: endpoint.endpointAddress,
  };
}
