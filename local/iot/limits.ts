/**
 * The stand-in refuses what AWS refuses, from the one table in core/aws-limits.ts (docs/aws-limits.md):
 * every control-plane request is checked before its handler runs (InvalidRequestException, HTTP 400, and
 * nothing changes), every MQTT jobs request before the engine sees it (`InvalidRequest` on `/rejected`).
 */
import {
  checkIotInput,
  type IotLimitViolation,
  type IotOperation,
  iotFieldLimit,
} from "../../core/aws-limits.ts";
import { IotServiceError, JobsRejection, RejectCode } from "./errors.ts";

/** AWS's own wording: "1 validation error detected: …". */
function describe(violations: readonly IotLimitViolation[]): string {
  const n = violations.length;
  return `${n} validation error${n === 1 ? "" : "s"} detected: ${violations.map((v) => v.message).join("; ")}`;
}

/** Query strings and path labels are text on the wire; the model types them, so they are typed here first. */
function typedWireValue(operation: IotOperation, member: string, text: string): unknown {
  const type = iotFieldLimit(operation, member)?.type;
  if ((type === "integer" || type === "long") && /^-?\d+$/.test(text)) return Number(text);
  if (type === "double" && text.trim() !== "" && Number.isFinite(Number(text))) return Number(text);
  if (type === "boolean" && (text === "true" || text === "false")) return text === "true";
  return text;
}

/** Members the SDK sends in headers rather than the path, query or body. */
const HEADER_MEMBERS: Readonly<Record<string, string>> = { principal: "x-amzn-principal" };

export interface ControlPlaneRequest {
  params: Record<string, string>;
  query: URLSearchParams;
  body: unknown;
  headers: Record<string, string | string[] | undefined>;
}

/** A control-plane operation the table knows (`CreateJob` for `iot:CreateJob`). */
export type ControlPlaneOperation = IotOperation extends infer O
  ? O extends `iot:${infer Name}`
    ? Name
    : never
  : never;

/** Throws InvalidRequestException naming every broken constraint of `op`; changes nothing. */
export function enforceControlPlaneLimits(op: ControlPlaneOperation, req: ControlPlaneRequest): void {
  const operation: IotOperation = `iot:${op}`;
  const input: Record<string, unknown> =
    req.body !== null && typeof req.body === "object" && !Array.isArray(req.body) ? { ...req.body } : {};
  for (const [name, value] of req.query) input[name] = typedWireValue(operation, name, value);
  for (const [member, header] of Object.entries(HEADER_MEMBERS)) {
    const raw = req.headers[header];
    const value = Array.isArray(raw) ? raw[0] : raw;
    if (value !== undefined && iotFieldLimit(operation, member)) input[member] = value;
  }
  for (const [name, value] of Object.entries(req.params))
    input[name] = typedWireValue(operation, name, value);
  const violations = checkIotInput(operation, input);
  if (violations.length > 0) throw new IotServiceError("InvalidRequestException", describe(violations));
}

/** The MQTT jobs operations and their iot-jobs-data model names. */
export const DATA_PLANE_OPERATIONS = {
  get: "iot-jobs-data:GetPendingJobExecutions",
  "start-next": "iot-jobs-data:StartNextPendingJobExecution",
  describe: "iot-jobs-data:DescribeJobExecution",
  update: "iot-jobs-data:UpdateJobExecution",
} as const satisfies Record<string, IotOperation>;

/** Throws the `InvalidRequest` rejection for an MQTT request whose body (plus topic labels) breaks the table. */
export function enforceDataPlaneLimits(
  op: keyof typeof DATA_PLANE_OPERATIONS,
  labels: { thingName: string; jobId?: string },
  body: unknown,
): void {
  if (body === null || typeof body !== "object" || Array.isArray(body)) return;
  const violations = checkIotInput(DATA_PLANE_OPERATIONS[op], { ...body, ...labels });
  if (violations.length > 0) throw new JobsRejection(RejectCode.InvalidRequest, describe(violations));
}
