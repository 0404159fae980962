/**
 * The one place our Lambda defaults live (docs/style.md): Node.js 22 on arm64, bundled and minified
 * with esbuild at synth, structured JSON logs into a log group this stack owns (so retention and removal
 * follow the stack's props), and a role that can write only to that log group — no AWS managed policy.
 */
import { Duration, type RemovalPolicy } from "aws-cdk-lib";
import * as iam from "aws-cdk-lib/aws-iam";
import * as lambda from "aws-cdk-lib/aws-lambda";
import { LogLevel, NodejsFunction, OutputFormat } from "aws-cdk-lib/aws-lambda-nodejs";
import * as logs from "aws-cdk-lib/aws-logs";
import { Construct } from "constructs";
import { acknowledge } from "../nag.ts";

export interface KeelFunctionProps {
  /** Absolute path of the TypeScript module that exports `handler`. */
  readonly entry: string;
  /** What the function does, shown in the Lambda console. */
  readonly description: string;
  /** Environment variables (the handler validates them at load, see functions/env.ts). */
  readonly environment: Readonly<Record<string, string>>;
  /** How long the function's log group keeps events. */
  readonly logRetention: logs.RetentionDays;
  /** What happens to the log group when the stack is deleted. */
  readonly removalPolicy: RemovalPolicy;
  /**
   * Maximum run time of one invocation.
   * @default - 30 seconds
   */
  readonly timeout?: Duration;
  /**
   * Memory size in MB (also scales CPU).
   * @default - 256
   */
  readonly memorySize?: number;
}

export class KeelFunction extends Construct {
  readonly function: NodejsFunction;
  readonly role: iam.Role;
  readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: KeelFunctionProps) {
    super(scope, id);

    this.logGroup = new logs.LogGroup(this, "Logs", {
      retention: props.logRetention,
      removalPolicy: props.removalPolicy,
    });
    // Our own role instead of the default one, which would attach AWSLambdaBasicExecutionRole
    // (logs:* on every log group in the account): this one may write only to its own log group.
    this.role = new iam.Role(this, "Role", {
      assumedBy: new iam.ServicePrincipal("lambda.amazonaws.com"),
      description: `Execution role of ${id}`,
    });
    this.logGroup.grantWrite(this.role);

    this.function = new NodejsFunction(this, "Function", {
      entry: props.entry,
      handler: "handler",
      description: props.description,
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize: props.memorySize ?? 256,
      timeout: props.timeout ?? Duration.seconds(30),
      role: this.role,
      logGroup: this.logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      environment: { ...props.environment, NODE_OPTIONS: "--enable-source-maps" },
      bundling: {
        minify: true,
        // Only problems, not esbuild's bundle-size summary, in `cdk synth` output.
        logLevel: LogLevel.WARNING,
        sourceMap: true,
        sourcesContent: false,
        target: "node22",
        // Our code is ES modules (import.meta, top-level await); the banner gives bundled CommonJS
        // dependencies the `require` they expect inside an ES module.
        format: OutputFormat.ESM,
        mainFields: ["module", "main"],
        banner:
          "import { createRequire as __keelCreateRequire } from 'node:module'; const require = __keelCreateRequire(import.meta.url);",
        // Bundle the AWS SDK too: the functions run against the exact client versions they were tested
        // with, not whatever the runtime happens to ship.
        bundleAwsSDK: true,
        externalModules: [],
      },
    });
    acknowledge(
      this.function,
      "AwsSolutions-L1",
      "nodejs22.x is the runtime Keel's functions are specified, bundled (target node22) and tested for; it is a supported Lambda runtime, and moving to a newer one is a deliberate, tested change.",
    );
    // The role must exist with its log permissions before the function can log its first line.
    this.function.node.addDependency(this.role);
  }
}
