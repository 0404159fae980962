/** Lambda entry point (infra bundles this file): environment read once, at load. */
import { parseEnv } from "../env.ts";
import { createRolloutApiHandler } from "./app.ts";

export const handler = createRolloutApiHandler(parseEnv(process.env));
