/**
 * Taking a device out of AWS IoT (`keel fleet remove`) and giving an enrolled device a new certificate.
 * Apart from iot-devices.ts (registration) because both undo what is attached to a thing: its certificates
 * (detached, then INACTIVE, so the broker refuses the key at once) and, on removal, its groups and itself.
 */
import {
  DeleteThingCommand,
  DetachThingPrincipalCommand,
  type IoTClient,
  ListThingGroupsForThingCommand,
  ListThingPrincipalsCommand,
  RemoveThingFromThingGroupCommand,
  UpdateCertificateCommand,
} from "@aws-sdk/client-iot";
import { awsErrorName, CloudCallError } from "../errors.ts";

/** The certificate id at the end of `arn:aws:iot:<region>:<account>:cert/<id>`. */
export function certificateIdOfArn(arn: string): string {
  const id = /:cert\/([0-9a-f]{64})$/.exec(arn)?.[1];
  if (!id) throw new CloudCallError(`principal ${arn} is not a certificate ARN`);
  return id;
}

async function allPages<T>(
  fetchPage: (nextToken: string | undefined) => Promise<{ items: T[]; nextToken?: string | undefined }>,
): Promise<T[]> {
  const out: T[] = [];
  let token: string | undefined;
  do {
    const page = await fetchPage(token);
    out.push(...page.items);
    token = page.nextToken;
  } while (token);
  return out;
}

/** The certificate ARNs attached to a thing; undefined when the thing does not exist. */
export async function thingPrincipals(iot: IoTClient, thingName: string): Promise<string[] | undefined> {
  try {
    return await allPages(async (nextToken) => {
      const r = await iot.send(new ListThingPrincipalsCommand({ thingName, maxResults: 250, nextToken }));
      return { items: r.principals ?? [], nextToken: r.nextToken };
    });
  } catch (err) {
    if (awsErrorName(err) === "ResourceNotFoundException") return undefined;
    throw err;
  }
}

/**
 * Detaches each certificate from the thing and makes it INACTIVE: a broker refuses an INACTIVE
 * certificate at the TLS/CONNECT step, whatever client id it claims.
 */
export async function retireCertificates(
  iot: IoTClient,
  thingName: string,
  arns: string[],
): Promise<string[]> {
  const ids: string[] = [];
  for (const principal of arns) {
    const certificateId = certificateIdOfArn(principal);
    await iot.send(new DetachThingPrincipalCommand({ thingName, principal }));
    await iot.send(new UpdateCertificateCommand({ certificateId, newStatus: "INACTIVE" }));
    ids.push(certificateId);
  }
  return ids;
}

export interface Deprovisioned {
  /** False when AWS IoT had no such thing (a repeat of a finished removal). */
  existed: boolean;
  certificates: string[];
  groups: string[];
}

/**
 * Removes a thing from AWS IoT: its certificates detached and deactivated, its group memberships
 * dropped, the thing deleted. Each step tolerates having been done already, so a removal cut half-way
 * is finished by running it again.
 */
export async function deprovisionThing(iot: IoTClient, thingName: string): Promise<Deprovisioned> {
  const principals = await thingPrincipals(iot, thingName);
  if (principals === undefined) return { existed: false, certificates: [], groups: [] };
  const certificates = await retireCertificates(iot, thingName, principals);
  const groups = await allPages(async (nextToken) => {
    const r = await iot.send(new ListThingGroupsForThingCommand({ thingName, maxResults: 250, nextToken }));
    return {
      items: (r.thingGroups ?? []).flatMap((g) => (g.groupName ? [g.groupName] : [])),
      nextToken: r.nextToken,
    };
  });
  for (const thingGroupName of groups) {
    await iot.send(new RemoveThingFromThingGroupCommand({ thingGroupName, thingName }));
  }
  await iot.send(new DeleteThingCommand({ thingName }));
  return { existed: true, certificates, groups };
}
