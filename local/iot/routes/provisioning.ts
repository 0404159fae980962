/**
 * Control-plane routes of fleet provisioning (docs/fleets.md#fleet-provisioning-by-claim): provisioning
 * templates, and the IoT policies that say what a claim certificate may do. Limits are core/aws-limits.ts's,
 * checked before these handlers run.
 */
import { z } from "zod";
import type { FleetProvisioning } from "../fleet-provisioning.ts";
import { input, type Req, type Route, route, Text } from "./common.ts";

const CreateTemplateBody = z.object({
  templateName: Text,
  description: Text.optional(),
  templateBody: Text,
  enabled: z.boolean().optional(),
  provisioningRoleArn: Text,
  preProvisioningHook: z.object({ targetArn: Text, payloadVersion: Text.optional() }).optional(),
  tags: z.array(z.object({ Key: Text, Value: Text })).optional(),
  type: Text.optional(),
});
const CreatePolicyBody = z.object({
  policyDocument: Text,
  tags: z.array(z.object({ Key: Text, Value: Text })).optional(),
});
const AttachPolicyBody = z.object({ target: Text });

const templateParam = (r: Req): string => input(Text, r.params.templateName, "templateName");
const policyParam = (r: Req): string => input(Text, r.params.policyName, "policyName");

export function provisioningRoutes(p: FleetProvisioning): Route[] {
  return [
    route("POST", "/provisioning-templates", "CreateProvisioningTemplate", (q) => {
      const { tags: _tags, ...body } = input(CreateTemplateBody, q.body, "request body");
      return p.createTemplate(body);
    }),
    route("GET", "/provisioning-templates/{templateName}", "DescribeProvisioningTemplate", (q) =>
      p.describeTemplate(templateParam(q)),
    ),
    route("DELETE", "/provisioning-templates/{templateName}", "DeleteProvisioningTemplate", (q) => {
      p.deleteTemplate(templateParam(q));
      return {};
    }),
    route("POST", "/policies/{policyName}", "CreatePolicy", (q) =>
      p.createPolicy(policyParam(q), input(CreatePolicyBody, q.body, "request body").policyDocument),
    ),
    route("PUT", "/target-policies/{policyName}", "AttachPolicy", (q) => {
      p.attachPolicy(policyParam(q), input(AttachPolicyBody, q.body, "request body").target);
      return {};
    }),
  ];
}
