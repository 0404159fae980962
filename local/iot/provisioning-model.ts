/**
 * Fleet provisioning's persisted records (docs/fleets.md#fleet-provisioning-by-claim): provisioning
 * templates and IoT policies. zod schemas, because they are read back from disk after a restart.
 * Ownership tokens are not persisted: a restart spends them all, which only makes a device start over.
 */
import { z } from "zod";

export const ProvisioningTemplateSchema = z.object({
  templateName: z.string(),
  templateId: z.string(),
  description: z.string().optional(),
  templateBody: z.string(),
  enabled: z.boolean(),
  provisioningRoleArn: z.string(),
  preProvisioningHook: z.object({ targetArn: z.string(), payloadVersion: z.string().optional() }).optional(),
  createdAt: z.number(),
});
export type ProvisioningTemplate = z.infer<typeof ProvisioningTemplateSchema>;
export const IotPolicySchema = z.object({
  policyName: z.string(),
  policyDocument: z.string(),
  /** Certificate ids it is attached to. */
  targets: z.array(z.string()),
});
export type IotPolicy = z.infer<typeof IotPolicySchema>;
export const ProvisioningStateSchema = z.object({
  templates: z.array(ProvisioningTemplateSchema),
  policies: z.array(IotPolicySchema),
});
export type ProvisioningState = z.infer<typeof ProvisioningStateSchema>;
