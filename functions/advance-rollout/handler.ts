/** Lambda entry point (infra bundles this file): environment read once, at load. */
import { parseEnv } from "../env.ts";
import { createAdvanceRolloutHandler } from "./app.ts";

export const handler = createAdvanceRolloutHandler(parseEnv(process.env));
