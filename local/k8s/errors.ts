/**
 * Named errors of the Kubernetes API stand-in. An API refusal carries the HTTP code and the `reason` the
 * real API server puts in its `Status` object (NotFound, Conflict, TooManyRequests, …), so kubectl and
 * @kubernetes/client-node react to it exactly as they would to a real cluster.
 */
import { KeelError } from "../../core/errors.ts";

export const STATUS_REASON = {
  BadRequest: 400,
  Unauthorized: 401,
  NotFound: 404,
  MethodNotAllowed: 405,
  NotAcceptable: 406,
  AlreadyExists: 409,
  Conflict: 409,
  UnsupportedMediaType: 415,
  Invalid: 422,
  TooManyRequests: 429,
  InternalError: 500,
} as const;
export type StatusReason = keyof typeof STATUS_REASON;

/** Something the API refuses; sent as a `Status` object with `code` and `reason`. */
export class KubeApiError extends KeelError {
  override name = "KubeApiError";
  readonly code: number;
  constructor(
    readonly reason: StatusReason,
    message: string,
    readonly details?: Record<string, unknown>,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.code = STATUS_REASON[reason];
  }
}

/** The stand-in's persisted cluster state cannot be read back. */
export class KubeStateError extends KeelError {
  override name = "KubeStateError";
  constructor(
    readonly path: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${path}: ${message}`, options);
  }
}

export const notFound = (resource: string, name: string, group = "") =>
  new KubeApiError("NotFound", `${resource}${group ? `.${group}` : ""} "${name}" not found`, {
    name,
    group,
    kind: resource,
  });
