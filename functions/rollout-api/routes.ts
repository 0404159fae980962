/** The rollout API's routes, as data: method, path, parameter schemas, operation (docs/api.md). */

import { z } from "zod";
import type { ApiDeps } from "../deps.ts";
import { createClaimCert, setClaimRule } from "./claim.ts";
import {
  type AuditList,
  AuditQuerySchema,
  DEFAULT_PAGE_LIMIT,
  FleetPathSchema,
  FleetThingPathSchema,
  NoQuerySchema,
  PageQuerySchema,
  RolloutActionPathSchema,
  RolloutPathSchema,
} from "./contract.ts";
import { decodeCursor, nextCursorOf } from "./cursor.ts";
import { enrol, getEnrolmentPolicy, putEnrolmentPolicy, removeThing } from "./enrolment.ts";
import { setTarget } from "./fleet-target.ts";
import { getFleetWindows, putFleetWindows } from "./fleet-windows.ts";
import { fleetStatus, registerThing } from "./fleets.ts";
import { retryRollout } from "./retry.ts";
import { changeRollout, createRollout, getRollout, limitOf, listRollouts } from "./rollouts.ts";
import { dispatch, type Request, type Result, route } from "./router.ts";

const NoParams = z.strictObject({});

/** An audit entry's sort key: `<at>#<12 hex digits>`. */
const AuditKeySchema = z.string().regex(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z#[0-9a-f]{12}$/);

export const ROUTES = [
  route({
    method: "POST",
    path: "/rollouts",
    params: NoParams,
    query: NoQuerySchema,
    handle: (deps, r) => createRollout(deps, r.body(), r.caller),
  }),
  route({
    method: "GET",
    path: "/rollouts",
    params: NoParams,
    query: PageQuerySchema,
    handle: (deps, r) => listRollouts(deps, r.query),
  }),
  route({
    method: "GET",
    path: "/rollouts/:id",
    params: RolloutPathSchema,
    query: PageQuerySchema,
    handle: (deps, r) => getRollout(deps, r.params.id, r.query),
  }),
  // Before /rollouts/:id/:action, which would take "retry" for an action it does not know.
  route({
    method: "POST",
    path: "/rollouts/:id/retry",
    params: RolloutPathSchema,
    query: NoQuerySchema,
    handle: (deps, r) => retryRollout(deps, r.params.id, r.body(), r.caller),
  }),
  route({
    method: "POST",
    path: "/rollouts/:id/:action",
    params: RolloutActionPathSchema,
    query: NoQuerySchema,
    handle: (deps, r) => changeRollout(deps, r.params.id, r.params.action, r.body(), r.caller),
  }),
  route({
    method: "GET",
    path: "/releases",
    params: NoParams,
    query: NoQuerySchema,
    handle: async (deps) => ({ status: 200, value: { releases: await deps.store.listReleases() } }),
  }),
  route({
    method: "GET",
    path: "/fleets/:fleet",
    params: FleetPathSchema,
    query: PageQuerySchema,
    handle: (deps, r) => fleetStatus(deps, r.params.fleet, r.query),
  }),
  route({
    method: "POST",
    path: "/fleets/:fleet/things",
    params: FleetPathSchema,
    query: NoQuerySchema,
    handle: (deps, r) => registerThing(deps, r.params.fleet, r.body(), r.caller),
  }),
  route({
    method: "GET",
    path: "/audit",
    params: NoParams,
    query: AuditQuerySchema,
    handle: async (deps, { query: q }) => {
      const before = q.cursor ? decodeCursor(q.cursor, AuditKeySchema, "GET /audit") : undefined;
      const page = await deps.store.listAuditPage(q, limitOf(q, DEFAULT_PAGE_LIMIT), before);
      const value: AuditList = {
        entries: page.items.map(({ key: _key, ...e }) => e),
        ...nextCursorOf(page.next),
      };
      return { status: 200, value };
    },
  }),
  // Maintenance windows (issue 12, "windows").
  route({
    method: "GET",
    path: "/fleets/:fleet/windows",
    params: FleetPathSchema,
    query: NoQuerySchema,
    handle: (deps, r) => getFleetWindows(deps, r.params.fleet),
  }),
  route({
    method: "PUT",
    path: "/fleets/:fleet/windows",
    params: FleetPathSchema,
    query: NoQuerySchema,
    handle: (deps, r) => putFleetWindows(deps, r.params.fleet, r.body(), r.caller),
  }),
  // Enrolment (issue 12): the fleet's allow-list, nodes enrolling themselves, removing a device.
  route({
    method: "PUT",
    path: "/fleets/:fleet/enrolment",
    params: FleetPathSchema,
    query: NoQuerySchema,
    handle: (deps, r) => putEnrolmentPolicy(deps, r.params.fleet, r.body(), r.caller),
  }),
  route({
    method: "GET",
    path: "/fleets/:fleet/enrolment",
    params: FleetPathSchema,
    query: NoQuerySchema,
    handle: (deps, r) => getEnrolmentPolicy(deps, r.params.fleet),
  }),
  route({
    method: "POST",
    path: "/fleets/:fleet/enrolments",
    params: FleetPathSchema,
    query: NoQuerySchema,
    handle: (deps, r) => enrol(deps, r.params.fleet, r.body(), r.identity),
  }),
  route({
    method: "DELETE",
    path: "/fleets/:fleet/things/:thing",
    params: FleetThingPathSchema,
    query: NoQuerySchema,
    handle: (deps, r) => removeThing(deps, r.params.fleet, r.params.thing, r.caller),
  }),
  // Fleet provisioning by claim (issue 12) -------------------------------------------------------------
  route({
    method: "POST",
    path: "/fleets/:fleet/claim-rule",
    params: FleetPathSchema,
    query: NoQuerySchema,
    handle: (deps, r) => setClaimRule(deps, r.params.fleet, r.body(), r.caller),
  }),
  route({
    method: "POST",
    path: "/fleets/:fleet/claim-certificates",
    params: FleetPathSchema,
    query: NoQuerySchema,
    handle: (deps, r) => createClaimCert(deps, r.params.fleet, r.caller),
  }),
  // Fleet target and convergence (issue 12).
  route({
    method: "PUT",
    path: "/fleets/:fleet/target",
    params: FleetPathSchema,
    query: NoQuerySchema,
    handle: (deps, r) => setTarget(deps, r.params.fleet, r.body(), r.caller),
  }),
] as const;

export function handleRequest(deps: ApiDeps, req: Request): Promise<Result> {
  return dispatch(ROUTES, deps, req);
}
