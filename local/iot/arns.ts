/** ARNs as AWS IoT spells them (docs/iot-jobs.md): things, thing groups, jobs, certificates. */
export interface ArnContext {
  region: string;
  account: string;
}

const prefix = (c: ArnContext): string => `arn:aws:iot:${c.region}:${c.account}`;
export const thingArn = (c: ArnContext, name: string): string => `${prefix(c)}:thing/${name}`;
export const thingGroupArn = (c: ArnContext, name: string): string => `${prefix(c)}:thinggroup/${name}`;
export const jobArn = (c: ArnContext, jobId: string): string => `${prefix(c)}:job/${jobId}`;
export const certificateArn = (c: ArnContext, id: string): string => `${prefix(c)}:cert/${id}`;

/** `thing/<name>` or `thinggroup/<name>` of this account and region; undefined for anything else. */
export function parseTargetArn(
  c: ArnContext,
  arn: string,
): { kind: "thing" | "thinggroup"; name: string } | undefined {
  const m = /^arn:aws:iot:([^:]+):([^:]+):(thing|thinggroup)\/([a-zA-Z0-9:_-]{1,128})$/.exec(arn);
  if (!m || m[1] !== c.region || m[2] !== c.account) return undefined;
  return { kind: m[3] as "thing" | "thinggroup", name: m[4] as string };
}

/** The certificate id in `arn:aws:iot:<region>:<account>:cert/<id>`; undefined for anything else. */
export function parseCertificateArn(c: ArnContext, arn: string): string | undefined {
  const m = /^arn:aws:iot:([^:]+):([^:]+):cert\/([0-9a-f]{64})$/.exec(arn);
  if (!m || m[1] !== c.region || m[2] !== c.account) return undefined;
  return m[3];
}
