/** Lambda entry point (infra bundles this file): environment read once, at load. */
import { parseEnv } from "../env.ts";
import { createRegisterReleaseHandler } from "./app.ts";

export const handler = createRegisterReleaseHandler(parseEnv(process.env));
