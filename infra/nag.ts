/**
 * Helpers for cdk-nag v3 acknowledgements (Validations.of(x).acknowledge). cdk-nag names an IAM5 finding
 * by the resource as synthesized, e.g. `Resource::<StateTable962DE04C.Arn>/index/*`; these build that
 * name from the construct so an acknowledgement follows the resource it is about.
 */
import { type CfnResource, Stack, Validations } from "aws-cdk-lib";
import type { IConstruct } from "constructs";

export function acknowledge(scope: IConstruct, id: string, reason: string): void {
  Validations.of(scope).acknowledge({ id, reason });
}

/** `Resource::<LogicalId.Arn><suffix>`: how cdk-nag writes `Fn::GetAtt [LogicalId, Arn]` + suffix. */
export function arnFinding(resource: CfnResource, suffix: string): string {
  const logicalId: unknown = Stack.of(resource).resolve(resource.logicalId);
  return `AwsSolutions-IAM5[Resource::<${String(logicalId)}.Arn>${suffix}]`;
}
