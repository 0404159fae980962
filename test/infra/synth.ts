/**
 * Builds the Keel CDK app the way `cdk synth` does (infra/keel-app.ts, cdk-nag attached) into a temp
 * cloud assembly. esbuild bundling runs once per asset per process, so each test file synthesizes once
 * in beforeAll and every test reads the same template.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CfnElement, type Stack } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import type { IConstruct } from "constructs";
import { createKeelApp, type KeelApp } from "../../infra/keel-app.ts";

export interface Synthesized extends KeelApp {
  readonly template: Template;
  readonly json: TemplateJson;
  readonly outdir: string;
}

export interface TemplateJson {
  Resources: Record<string, { Type: string; Properties?: Record<string, unknown>; [k: string]: unknown }>;
  Outputs?: Record<string, unknown>;
  [k: string]: unknown;
}

export function synthKeel(context: Record<string, unknown> = {}): Synthesized {
  const outdir = mkdtempSync(join(tmpdir(), "keel-cdk-"));
  // No account/region: the template must not depend on who runs the tests.
  const keel = createKeelApp({ context, outdir }, {});
  keel.app.synth();
  const template = Template.fromStack(keel.stack);
  return { ...keel, template, json: template.toJSON() as TemplateJson, outdir };
}

/** Logical id of an L1 resource, or of an L2 construct's default resource. */
export function logicalIdOf(stack: Stack, construct: IConstruct): string {
  const element = CfnElement.isCfnElement(construct) ? construct : construct.node.defaultChild;
  if (!element || !CfnElement.isCfnElement(element))
    throw new Error(`${construct.node.path} has no resource`);
  return stack.resolve(element.logicalId) as string;
}

/** Properties of one resource; throws if the template has no such resource. */
export function propertiesOf(json: TemplateJson, logicalId: string): Record<string, unknown> {
  const r = json.Resources[logicalId];
  if (!r) throw new Error(`template has no resource ${logicalId}`);
  return r.Properties ?? {};
}

/** Resources of one type, as [logicalId, properties] pairs. */
export function resourcesOfType(json: TemplateJson, type: string): Array<[string, Record<string, unknown>]> {
  return Object.entries(json.Resources)
    .filter(([, r]) => r.Type === type)
    .map(([id, r]) => [id, r.Properties ?? {}]);
}
