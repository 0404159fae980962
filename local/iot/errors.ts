/**
 * Named errors of the IoT Jobs stand-in. Control-plane failures carry the AWS error shape name and HTTP
 * status (docs/iot-jobs.md) so the real SDK raises the same exception classes; data-plane failures carry the
 * `/rejected` code (docs/iot-jobs.md).
 */
import { KeelError } from "../../core/errors.ts";

/** HTTP status per control-plane error type (docs/iot-jobs.md). */
export const ERROR_STATUS = {
  InvalidRequestException: 400,
  ThrottlingException: 400,
  UnauthorizedException: 401,
  ResourceNotFoundException: 404,
  CertificateStateException: 406,
  ResourceAlreadyExistsException: 409,
  ConflictException: 409,
  InvalidStateTransitionException: 409,
  VersionConflictException: 409,
  LimitExceededException: 410,
  InternalFailureException: 500,
  ServiceUnavailableException: 503,
  UnknownOperationException: 404,
} as const;
export type IotErrorType = keyof typeof ERROR_STATUS;

/** A control-plane error: sent as `x-amzn-ErrorType: <errorType>` with `{"message"}`. */
export class IotServiceError extends KeelError {
  override name = "IotServiceError";
  readonly status: number;
  constructor(
    readonly errorType: IotErrorType,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.status = ERROR_STATUS[errorType];
  }
}

export const RejectCode = {
  InvalidTopic: "InvalidTopic",
  InvalidJson: "InvalidJson",
  InvalidRequest: "InvalidRequest",
  InvalidStateTransition: "InvalidStateTransition",
  ResourceNotFound: "ResourceNotFound",
  VersionMismatch: "VersionMismatch",
  InternalError: "InternalError",
  RequestThrottled: "RequestThrottled",
  TerminalStateReached: "TerminalStateReached",
} as const;
export type RejectCode = (typeof RejectCode)[keyof typeof RejectCode];

export interface ExecutionStateWire {
  status: string;
  statusDetails: Record<string, string>;
  versionNumber: number;
}

/** A data-plane request the service refuses: published on `.../rejected` (docs/iot-jobs.md). */
export class JobsRejection extends KeelError {
  override name = "JobsRejection";
  constructor(
    readonly code: RejectCode,
    message: string,
    /** Only for InvalidStateTransition and VersionMismatch (docs/iot-jobs.md). */
    readonly executionState?: ExecutionStateWire,
  ) {
    super(message);
  }
}

/** The stand-in's own state on disk could not be read or written. */
export class IotStoreError extends KeelError {
  override name = "IotStoreError";
  constructor(
    readonly path: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${path}: ${message}`, options);
  }
}

/**
 * A fleet provisioning request the service refuses: published on `.../rejected` as AWS's ErrorResponse
 * `{statusCode, errorCode, errorMessage}` (docs/fleets.md#fleet-provisioning-by-claim); nothing changes.
 */
export class ProvisioningRejection extends KeelError {
  override name = "ProvisioningRejection";
  constructor(
    readonly statusCode: 400 | 403 | 404 | 429 | 500,
    readonly errorCode: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
