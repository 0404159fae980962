/** The rollout API Lambda (Function URL, payload v2) as a factory over its environment. */
import { parseWith } from "../../core/parse.ts";
import type { HandlerOptions } from "../clients.ts";
import { createApiDeps } from "../deps.ts";
import type { Env } from "../env.ts";
import { errorFields } from "../log.ts";
import {
  bodyOf,
  callerOf,
  errorResponse,
  FunctionUrlEventSchema,
  type HttpResponse,
  identityOf,
  json,
} from "./http.ts";
import { handleRequest } from "./routes.ts";

export function createRolloutApiHandler(env: Env, options: HandlerOptions = {}) {
  const deps = createApiDeps(env, options);
  return async (event: unknown): Promise<HttpResponse> => {
    try {
      const e = parseWith(FunctionUrlEventSchema, event, "Function URL event");
      const caller = callerOf(e);
      const method = e.requestContext.http.method;
      const { status, value } = await handleRequest(deps, {
        method,
        rawPath: e.rawPath,
        rawQueryString: e.rawQueryString ?? "",
        body: () => bodyOf(e),
        caller,
        identity: identityOf(e),
      });
      deps.log.info("request", { method, path: e.rawPath, status, caller });
      return json(status, value);
    } catch (err) {
      const mapped = errorResponse(err);
      if (mapped) {
        deps.log.info("request refused", { status: mapped.statusCode, ...errorFields(err) });
        return mapped;
      }
      deps.log.error("request failed", errorFields(err));
      return json(500, { error: "internal error; see the function's logs" });
    }
  };
}
