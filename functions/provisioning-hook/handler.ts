/** Lambda entry point (infra bundles this file): environment read once, at load. */
import { parseEnv } from "../env.ts";
import { createProvisioningHookHandler } from "./app.ts";

export const handler = createProvisioningHookHandler(parseEnv(process.env));
