/**
 * The bucket group a provisioned thing joins must exist (AWS IoT refuses a template naming a missing group).
 * Its own module, so the hook's role allows only CreateThingGroup (functions/rollout/iot.ts would bring the
 * whole jobs API into its bundle and its role).
 */
import { CreateThingGroupCommand, type IoTClient } from "@aws-sdk/client-iot";

/** Creates the group; an existing one (any properties) is fine, as the template only adds to it. */
export async function ensureGroup(iot: IoTClient, name: string): Promise<void> {
  try {
    await iot.send(new CreateThingGroupCommand({ thingGroupName: name }));
  } catch (err) {
    if (!(err instanceof Error) || err.name !== "ResourceAlreadyExistsException") throw err;
  }
}
