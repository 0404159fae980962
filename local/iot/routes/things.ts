/**
 * Control-plane routes for the registry: things and thing groups (CreateThing … ListThingGroupsForThing).
 */
import { z } from "zod";
import { parseTargetArn, thingArn, thingGroupArn } from "../arns.ts";
import { IotServiceError } from "../errors.ts";
import type { Thing } from "../model.ts";
import {
  Attributes,
  type ControlPlaneDeps,
  groupParam,
  input,
  optionalQuery,
  paginate,
  QueryBool,
  QueryInt,
  type Req,
  type Route,
  route,
  seconds,
  Text,
  ThingName,
  thingParam,
} from "./common.ts";

const CreateThingBody = z.object({
  thingTypeName: z.string().optional(),
  attributePayload: z.object({ attributes: Attributes.optional(), merge: z.boolean().optional() }).optional(),
  billingGroupName: z.string().optional(),
});
const CreateThingGroupBody = z.object({
  parentGroupName: ThingName.optional(),
  thingGroupProperties: z
    .object({
      thingGroupDescription: Text.optional(),
      attributePayload: z
        .object({ attributes: Attributes.optional(), merge: z.boolean().optional() })
        .optional(),
    })
    .optional(),
  tags: z.array(z.object({ Key: z.string(), Value: z.string().optional() })).optional(),
});
const MembershipBody = z
  .object({
    thingGroupName: ThingName.optional(),
    thingGroupArn: z.string().optional(),
    thingName: ThingName.optional(),
    thingArn: z.string().optional(),
    overrideDynamicGroups: z.boolean().optional(),
  })
  .refine(
    (b) => b.thingGroupName !== undefined || b.thingGroupArn !== undefined,
    "thingGroupName is required",
  )
  .refine((b) => b.thingName !== undefined || b.thingArn !== undefined, "thingName is required");

export function thingRoutes(d: ControlPlaneDeps): Route[] {
  const { ctx, registry } = d;
  const thingOut = (t: Thing) => ({
    thingName: t.thingName,
    thingArn: thingArn(ctx, t.thingName),
    thingTypeName: t.thingTypeName,
    attributes: t.attributes,
    version: t.version,
  });
  const nameFromArn = (arn: string | undefined, kind: "thing" | "thinggroup"): string => {
    const t = arn === undefined ? undefined : parseTargetArn(ctx, arn);
    if (!t || t.kind !== kind)
      throw new IotServiceError("InvalidRequestException", `${arn} is not a ${kind} ARN`);
    return t.name;
  };
  const membership = (r: Req): { group: string; thing: string } => {
    const b = input(MembershipBody, r.body, "request body");
    const group = b.thingGroupName ?? nameFromArn(b.thingGroupArn, "thinggroup");
    const thing = b.thingName ?? nameFromArn(b.thingArn, "thing");
    return { group, thing };
  };
  return [
    route("POST", "/things/{thingName}", "CreateThing", (q) => {
      const b = input(CreateThingBody, q.body, "request body");
      const t = registry.createThing({
        thingName: thingParam(q),
        thingTypeName: b.thingTypeName,
        attributes: b.attributePayload?.attributes,
      });
      return { thingName: t.thingName, thingArn: thingArn(ctx, t.thingName), thingId: t.thingId };
    }),
    route("GET", "/things/{thingName}", "DescribeThing", (q) => {
      const t = registry.thing(thingParam(q));
      return { defaultClientId: t.thingName, thingId: t.thingId, ...thingOut(t) };
    }),
    route("GET", "/things", "ListThings", (q) => {
      const attrName = q.query.get("attributeName");
      const attrValue = q.query.get("attributeValue");
      const type = q.query.get("thingTypeName");
      const all = [...registry.things.values()]
        .filter(
          (t) =>
            attrName === null ||
            (attrName in t.attributes && (attrValue === null || t.attributes[attrName] === attrValue)),
        )
        .filter((t) => type === null || t.thingTypeName === type)
        .sort((a, b) => a.thingName.localeCompare(b.thingName));
      const { page, nextToken } = paginate(all, q.query);
      return { things: page.map(thingOut), nextToken };
    }),
    route("DELETE", "/things/{thingName}", "DeleteThing", (q) => {
      registry.deleteThing(thingParam(q), optionalQuery(q.query, "expectedVersion", QueryInt));
      return {};
    }),
    route("PUT", "/thing-groups/addThingToThingGroup", "AddThingToThingGroup", (q) => {
      const m = membership(q);
      registry.addThingToThingGroup(m.group, m.thing);
      return {};
    }),
    route("PUT", "/thing-groups/removeThingFromThingGroup", "RemoveThingFromThingGroup", (q) => {
      const m = membership(q);
      registry.removeThingFromThingGroup(m.group, m.thing);
      return {};
    }),
    route("POST", "/thing-groups/{thingGroupName}", "CreateThingGroup", (q) => {
      const b = input(CreateThingGroupBody, q.body, "request body");
      const g = registry.createThingGroup({
        groupName: groupParam(q),
        parentGroupName: b.parentGroupName,
        description: b.thingGroupProperties?.thingGroupDescription,
        attributes: b.thingGroupProperties?.attributePayload?.attributes,
      });
      return {
        thingGroupName: g.groupName,
        thingGroupArn: thingGroupArn(ctx, g.groupName),
        thingGroupId: g.groupId,
      };
    }),
    route("GET", "/thing-groups/{thingGroupName}", "DescribeThingGroup", (q) => {
      const g = registry.group(groupParam(q));
      return {
        thingGroupName: g.groupName,
        thingGroupId: g.groupId,
        thingGroupArn: thingGroupArn(ctx, g.groupName),
        version: g.version,
        thingGroupProperties: {
          thingGroupDescription: g.description,
          attributePayload: { attributes: g.attributes },
        },
        thingGroupMetadata: {
          parentGroupName: g.parentGroupName,
          rootToParentThingGroups: registry
            .ancestors(g.groupName)
            .reverse()
            .map((a) => ({ groupName: a, groupArn: thingGroupArn(ctx, a) })),
          creationDate: seconds(g.createdAt),
        },
        status: "ACTIVE",
      };
    }),
    route("GET", "/thing-groups", "ListThingGroups", (q) => {
      const groups = registry.listThingGroups({
        parentGroup: optionalQuery(q.query, "parentGroup", ThingName),
        namePrefixFilter: q.query.get("namePrefixFilter") ?? undefined,
        recursive: optionalQuery(q.query, "recursive", QueryBool),
      });
      const { page, nextToken } = paginate(groups, q.query);
      return {
        thingGroups: page.map((g) => ({ groupName: g.groupName, groupArn: thingGroupArn(ctx, g.groupName) })),
        nextToken,
      };
    }),
    route("GET", "/thing-groups/{thingGroupName}/things", "ListThingsInThingGroup", (q) => {
      const recursive = optionalQuery(q.query, "recursive", QueryBool) ?? false;
      const { page, nextToken } = paginate(registry.thingsInGroup(groupParam(q), recursive), q.query);
      return { things: page, nextToken };
    }),
    route("GET", "/things/{thingName}/thing-groups", "ListThingGroupsForThing", (q) => {
      const t = registry.thing(thingParam(q));
      const { page, nextToken } = paginate([...t.groups].sort(), q.query);
      return { thingGroups: page.map((g) => ({ groupName: g, groupArn: thingGroupArn(ctx, g) })), nextToken };
    }),
  ];
}
