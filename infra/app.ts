/** CDK entry point (cdk.json: `npx tsx infra/app.ts`). Settings come from `-c key=value`; see settings.ts. */
import { SchemaError } from "../core/errors.ts";
import { createKeelApp } from "./keel-app.ts";

try {
  createKeelApp().app.synth();
} catch (err) {
  // A bad -c value is the operator's to fix: say which and why, without a stack trace.
  if (!(err instanceof SchemaError)) throw err;
  console.error(err.message);
  process.exitCode = 1;
}
