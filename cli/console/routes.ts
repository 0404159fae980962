/**
 * The console proxy's allow-list: the only rollout API routes and methods the browser may reach, each with
 * the zod schemas for its path parameters, query and body, and for the API's answer. Anything else — device
 * registration (its answer holds a private key), unknown paths, other methods — is refused here and never
 * reaches the API. Answers keep fields the console does not know yet (loose objects), so a newer API
 * (pagination cursors, a fleet's target release) passes through unchanged.
 */
import { z } from "zod";
import { RolloutIdSchema } from "../../core/job-document.ts";
import { parseWith } from "../../core/parse.ts";
import { FleetNameSchema } from "../../functions/rollout/model.ts";
import {
  ActionBodySchema,
  CreateRolloutBodySchema,
  FleetStatusSchema,
  NoQuerySchema,
  ReleaseSchema as ReleaseRecordSchema,
  RolloutSchema,
  RolloutViewSchema,
} from "../../functions/rollout-api/contract.ts";
import { ConsoleRequestError } from "./errors.ts";

/** Paging parameters the API may take on its list routes; passed through only when well-formed. */
export const PageQuerySchema = z.strictObject({
  cursor: z
    .string()
    .min(1)
    .max(2048)
    .regex(/^[A-Za-z0-9._~+/=-]+$/, "may contain only URL-safe base64 characters")
    .optional(),
  limit: z
    .string()
    .regex(/^[1-9]\d{0,3}$/, "must be a whole number from 1 to 9999")
    .optional(),
});

export const FleetAnswerSchema = FleetStatusSchema.extend({
  things: z.array(FleetStatusSchema.shape.things.element.loose()),
}).loose();

export const ConsoleAnswerSchemas = {
  rollouts: z.looseObject({ rollouts: z.array(RolloutSchema.loose()) }),
  rollout: RolloutViewSchema.loose(),
  releases: z.looseObject({ releases: z.array(ReleaseRecordSchema.loose()) }),
  fleet: FleetAnswerSchema,
};

interface RouteSpec {
  method: "GET" | "POST";
  /** Path segments after /api/; `:name` is a parameter checked by `params[name]`. */
  path: readonly string[];
  params?: Record<string, z.ZodType<string>>;
  query: z.ZodType<Record<string, string | undefined>>;
  body?: z.ZodType;
  answer: z.ZodType;
}

const rolloutAction = (action: "pause" | "resume" | "abort"): RouteSpec => ({
  method: "POST",
  path: ["rollouts", ":id", action],
  params: { id: RolloutIdSchema },
  query: NoQuerySchema,
  body: ActionBodySchema,
  answer: RolloutSchema.loose(),
});

export const ROUTES: readonly RouteSpec[] = [
  { method: "GET", path: ["rollouts"], query: PageQuerySchema, answer: ConsoleAnswerSchemas.rollouts },
  {
    method: "POST",
    path: ["rollouts"],
    query: NoQuerySchema,
    body: CreateRolloutBodySchema,
    answer: RolloutSchema.loose(),
  },
  {
    method: "GET",
    path: ["rollouts", ":id"],
    params: { id: RolloutIdSchema },
    query: PageQuerySchema,
    answer: ConsoleAnswerSchemas.rollout,
  },
  rolloutAction("pause"),
  rolloutAction("resume"),
  rolloutAction("abort"),
  { method: "GET", path: ["releases"], query: NoQuerySchema, answer: ConsoleAnswerSchemas.releases },
  {
    method: "GET",
    path: ["fleets", ":fleet"],
    params: { fleet: FleetNameSchema },
    query: PageQuerySchema,
    answer: ConsoleAnswerSchemas.fleet,
  },
];

/** A browser request that passed the allow-list: what to send to the API and how to read its answer. */
export interface ProxyCall {
  method: "GET" | "POST";
  /** API path with encoded parameters and the checked query, e.g. `/rollouts/r1/pause`. */
  path: string;
  body: unknown;
  answer: z.ZodType;
}

function matchPath(spec: RouteSpec, segments: readonly string[]): Record<string, string> | undefined {
  if (spec.path.length !== segments.length) return undefined;
  const params: Record<string, string> = {};
  for (const [i, part] of spec.path.entries()) {
    const seg = segments[i] ?? "";
    if (part.startsWith(":")) params[part.slice(1)] = seg;
    else if (part !== seg) return undefined;
  }
  return params;
}

function decodeSegments(apiPath: string): string[] {
  try {
    return apiPath.split("/").filter(Boolean).map(decodeURIComponent);
  } catch (err) {
    throw new ConsoleRequestError(400, `malformed path ${apiPath}`, { cause: err });
  }
}

/**
 * Checks one browser request against the allow-list: `apiPath` is the part after `/api`, `body` the parsed
 * JSON body (undefined when there is none). Throws ConsoleRequestError (404 unknown route, 405 method not
 * allowed) or SchemaError (400, naming each bad field).
 */
export function checkRequest(
  method: string,
  apiPath: string,
  query: URLSearchParams,
  body: unknown,
): ProxyCall {
  const segments = decodeSegments(apiPath);
  const candidates = ROUTES.map((spec) => ({ spec, params: matchPath(spec, segments) })).filter(
    (c) => c.params !== undefined,
  );
  if (candidates.length === 0) throw new ConsoleRequestError(404, `the console does not proxy ${apiPath}`);
  const hit = candidates.find((c) => c.spec.method === method);
  if (!hit?.params) {
    const allowed = candidates.map((c) => c.spec.method).join(", ");
    throw new ConsoleRequestError(405, `${method} ${apiPath} is not allowed (allowed: ${allowed})`);
  }
  const { spec, params } = hit;
  for (const [name, schema] of Object.entries(spec.params ?? {}))
    parseWith(schema, params[name], `${name} in the path`);
  const q = parseWith(spec.query, Object.fromEntries(query), "query");
  if (spec.body) parseWith(spec.body, body ?? {}, `${method} ${apiPath} body`);
  else if (body !== undefined) throw new ConsoleRequestError(400, `${method} ${apiPath} takes no body`);
  const path = `/${segments.map(encodeURIComponent).join("/")}`;
  const search = new URLSearchParams(
    Object.entries(q).filter((e): e is [string, string] => e[1] !== undefined),
  ).toString();
  // The body goes on as the browser sent it (checked above); the API applies its own defaults.
  return { method: spec.method, path: search ? `${path}?${search}` : path, body, answer: spec.answer };
}
