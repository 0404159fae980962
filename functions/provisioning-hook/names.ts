/**
 * Names of Keel's fleet provisioning resources (docs/fleets.md#fleet-provisioning-by-claim), apart from the
 * code that creates them so the hook's bundle carries no AWS calls it does not make.
 */

/** The provisioning template's name for a fleet (AWS: at most 36 of [0-9A-Za-z_-]). */
export function templateNameOf(fleet: string): string {
  const name = `keel-${fleet}`;
  if (!/^[0-9A-Za-z_-]{1,36}$/.test(name)) {
    throw new RangeError(`fleet ${fleet} cannot name a provisioning template (${name}: 36 of [0-9A-Za-z_-])`);
  }
  return name;
}

/** The fleet a Keel template serves, from the template ARN the hook is given; undefined if not Keel's. */
export function fleetOfTemplateArn(templateArn: string): string | undefined {
  return /^arn:aws[a-z-]*:iot:[^:]+:\d{12}:provisioningtemplate\/keel-([0-9A-Za-z_-]+)$/.exec(
    templateArn,
  )?.[1];
}

export const claimPolicyNameOf = (fleet: string): string => `keel-claim-${fleet}`;
