/**
 * Lambda Function URL events (payload format 2.0) in and out: the parts we read, and JSON responses with
 * the status our named errors map to (400 schema issues, 403, 404, 405, 409, 413, 500).
 */
import { z } from "zod";
import { SchemaError } from "../../core/errors.ts";
import { parseJsonText } from "../../core/parse.ts";
import {
  ConflictError,
  ForbiddenError,
  MethodNotAllowedError,
  NotFoundError,
  PayloadTooLargeError,
} from "../errors.ts";

export const FunctionUrlEventSchema = z.object({
  rawPath: z.string(),
  rawQueryString: z.string().optional(),
  headers: z.record(z.string(), z.string()).optional(),
  body: z.string().optional(),
  isBase64Encoded: z.boolean().optional(),
  requestContext: z.object({
    http: z.object({ method: z.string(), path: z.string().optional() }),
    requestId: z.string().optional(),
    authorizer: z
      .object({
        iam: z
          .object({
            accessKey: z.string().optional(),
            accountId: z.string().optional(),
            callerId: z.string().optional(),
            userArn: z.string().optional(),
            userId: z.string().optional(),
          })
          .optional(),
      })
      .optional(),
  }),
});
export type FunctionUrlEvent = z.infer<typeof FunctionUrlEventSchema>;

export interface HttpResponse {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
}

export function json(statusCode: number, value: unknown): HttpResponse {
  return { statusCode, headers: { "content-type": "application/json" }, body: JSON.stringify(value) };
}

/** The caller as AWS_IAM auth identified it: the user/role ARN, else the access key. */
export function callerOf(e: FunctionUrlEvent): string {
  const iam = e.requestContext.authorizer?.iam;
  return iam?.userArn ?? iam?.callerId ?? iam?.accessKey ?? "unknown";
}

/** Who signed the request, as IAM auth established it; undefined when the event carries no IAM identity. */
export interface CallerIdentity {
  /** The principal: `arn:aws:sts::<account>:assumed-role/<role>/<session>` for a node's instance role. */
  arn: string;
  account: string | undefined;
}

export function identityOf(e: FunctionUrlEvent): CallerIdentity | undefined {
  const iam = e.requestContext.authorizer?.iam;
  if (!iam?.userArn) return undefined;
  return { arn: iam.userArn, account: iam.accountId };
}

/** The request body as JSON; an absent body is `{}` so optional bodies (pause, abort) need none. */
export function bodyOf(e: FunctionUrlEvent): unknown {
  if (e.body === undefined || e.body === "") return {};
  const text = e.isBase64Encoded ? Buffer.from(e.body, "base64") : e.body;
  return parseJsonText(text, "request body");
}

export function errorResponse(err: unknown): HttpResponse | null {
  if (err instanceof SchemaError) return json(400, { error: err.message, issues: err.issues });
  if (err instanceof ForbiddenError) return json(403, { error: err.message });
  if (err instanceof NotFoundError) return json(404, { error: err.message });
  if (err instanceof MethodNotAllowedError) return json(405, { error: err.message });
  if (err instanceof ConflictError) return json(409, { error: err.message });
  if (err instanceof PayloadTooLargeError) return json(413, { error: err.message });
  return null;
}
