/**
 * Builds the CDK app: one KeelStack named and configured from context, with cdk-nag's AwsSolutionsChecks
 * attached as a policy-validation plugin so every synth is checked (docs/deploying.md).
 */
import { App, type AppProps, type Environment, Validations } from "aws-cdk-lib";
import { AwsSolutionsChecks } from "cdk-nag";
import { KeelStack } from "./keel-stack.ts";
import { settingsFromContext } from "./settings.ts";

export interface KeelApp {
  readonly app: App;
  readonly stack: KeelStack;
}

/**
 * @param env account and region to pin the stack to; by default those the CDK CLI found in the
 *   credentials (CDK_DEFAULT_*), or none — environment-agnostic — when it found none.
 */
export function createKeelApp(
  props: AppProps = {},
  env: Environment = { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
): KeelApp {
  const app = new App(props);
  const { stackName, settings } = settingsFromContext(app.node);
  const stack = new KeelStack(app, stackName, {
    ...settings,
    description: "Keel: signed OS image releases and staged rollouts through AWS IoT Jobs",
    // Synth works offline either way; deploy resolves an agnostic stack against the CLI's credentials.
    env,
  });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return { app, stack };
}
