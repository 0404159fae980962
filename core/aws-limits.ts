/**
 * The input constraints AWS IoT puts on every operation Keel calls, as ONE table of data, and small pure
 * helpers that check an input against it. The IoT stand-in (local/iot) refuses what breaks a row with
 * InvalidRequestException, and the rollout API refuses at its edge anything that would later fail in AWS.
 * docs/aws-limits.md says where each row comes from and how to add one.
 *
 * Rows are transcribed from the AWS service models (iot 2015-05-28, iot-jobs-data 2017-09-29): `min`/`max`
 * are value bounds for numbers and length bounds (UTF-16 code units, as Java counts them) for strings,
 * lists and maps; `pattern` is the model's Java regular expression verbatim (AWS requires the WHOLE value
 * to match). Limits that the models state only in their documentation text (decimals, 32 KB documents,
 * 10 statusDetails pairs, 1–10080 minutes) carry that text in `stated`.
 *
 * Paths use the model's notation: `a.b` nested member, `a[]` list element, `a{key}` / `a{value}` map
 * entries. Violations name concrete paths: `criteriaList[0].thresholdPercentage`, `statusDetails.k` for a
 * map value and `statusDetails{k}` for a map key.
 */
import type { z } from "zod";

export type IotMemberType =
  | "string"
  | "integer"
  | "long"
  | "double"
  | "boolean"
  | "blob"
  | "list"
  | "map"
  | "structure";

export interface IotFieldLimit {
  readonly path: string;
  readonly type: IotMemberType;
  readonly required?: true;
  /** Numbers: smallest value. Strings, lists, maps: shortest length / fewest entries. */
  readonly min?: number;
  /** Numbers: largest value. Strings, lists, maps: longest length / most entries. */
  readonly max?: number;
  /** The model's Java regular expression, verbatim; the whole value must match. */
  readonly pattern?: string;
  readonly enum?: readonly string[];
  /** Digits allowed after the decimal point (stated in the documentation of doubles). */
  readonly maxDecimals?: number;
  /** Largest UTF-8 encoding in bytes (stated limits such as "job document ≤ 32 KB"). */
  readonly maxUtf8Bytes?: number;
  /** Values accepted although outside [min, max] (UpdateJobExecution's stepTimeoutInMinutes -1). */
  readonly sentinels?: readonly number[];
  /** Where a limit not expressed as a model constraint comes from (documentation text). */
  readonly stated?: string;
}

export interface IotOperationLimits {
  readonly method: string;
  readonly path: string;
  readonly fields: readonly IotFieldLimit[];
}

// ---- Shapes shared by several operations (one row each, reused by reference). ----

const JOB_ID = { type: "string", required: true, min: 1, max: 64, pattern: "[a-zA-Z0-9_-]+" } as const;
const NAME_128 = { type: "string", min: 1, max: 128, pattern: "[a-zA-Z0-9:_-]+" } as const;
const THING_NAME = { ...NAME_128, required: true } as const;
const NAMESPACE_ID = { type: "string", pattern: "[a-zA-Z0-9_-]+" } as const;
const MAX_RESULTS = { type: "integer", min: 1, max: 250 } as const;
const COMMENT = { type: "string", max: 2028, pattern: "[^\\p{C}]+" } as const;
const TARGET_SELECTION = { type: "string", enum: ["CONTINUOUS", "SNAPSHOT"] } as const;
const ARN_1600 = { type: "string", min: 1, max: 1600, pattern: "^arn:[!-~]+$" } as const;
const ROLE_ARN = { type: "string", min: 20, max: 2048 } as const;
export const EXECUTION_STATUS_VALUES = [
  "QUEUED",
  "IN_PROGRESS",
  "SUCCEEDED",
  "FAILED",
  "TIMED_OUT",
  "REJECTED",
  "REMOVED",
  "CANCELED",
] as const;
const STEP_TIMEOUT_STATED = "step timeouts are 1 to 10080 minutes (7 days)";
const IN_PROGRESS_TIMEOUT_STATED = "The timeout interval can be anywhere between 1 minute and 7 days";

/** Rows for the members under `prefix` (one definition of a nested shape, used by several operations). */
function under(prefix: string, rows: readonly IotFieldLimit[]): IotFieldLimit[] {
  return rows.map((r) => ({ ...r, path: `${prefix}${r.path}` }));
}

const TAGS: readonly IotFieldLimit[] = [
  { path: "tags", type: "list" },
  { path: "tags[]", type: "structure" },
  {
    path: "tags[].Key",
    type: "string",
    required: true,
    min: 1,
    max: 128,
    pattern: "^([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)$",
  },
  { path: "tags[].Value", type: "string", min: 0, max: 256 },
];

const STATUS_DETAILS: readonly IotFieldLimit[] = [
  { path: "statusDetails", type: "map", max: 10, stated: "You can specify at most 10 name/value pairs." },
  { path: "statusDetails{key}", ...NAME_128 },
  {
    path: "statusDetails{value}",
    type: "string",
    min: 1,
    max: 1024,
    pattern: "[^\\p{C}]+",
    stated: "The maximum length of the value in the name/value pair is 1,024 characters.",
  },
];

const ATTRIBUTES: readonly IotFieldLimit[] = [
  { path: "attributePayload", type: "structure" },
  { path: "attributePayload.attributes", type: "map" },
  { path: "attributePayload.attributes{key}", type: "string", max: 128, pattern: "[a-zA-Z0-9_.,@/:#-]+" },
  {
    path: "attributePayload.attributes{value}",
    type: "string",
    max: 800,
    pattern: "[a-zA-Z0-9_.,@/:#=\\[\\]-]*",
  },
  { path: "attributePayload.merge", type: "boolean" },
];

const PRESIGNED_URL_CONFIG: readonly IotFieldLimit[] = [
  { path: "presignedUrlConfig", type: "structure" },
  { path: "presignedUrlConfig.roleArn", ...ROLE_ARN },
  {
    path: "presignedUrlConfig.expiresInSec",
    type: "long",
    min: 60,
    max: 3600,
    stated: "Valid values are 60 - 3600",
  },
];

const ROLLOUT_CONFIG: readonly IotFieldLimit[] = [
  { path: "jobExecutionsRolloutConfig", type: "structure" },
  {
    path: "jobExecutionsRolloutConfig.maximumPerMinute",
    type: "integer",
    min: 1,
    max: 1000,
    stated: "maximumPerMinute: 1 to 1000 (AWS IoT Jobs limits)",
  },
  { path: "jobExecutionsRolloutConfig.exponentialRate", type: "structure" },
  {
    path: "jobExecutionsRolloutConfig.exponentialRate.baseRatePerMinute",
    type: "integer",
    required: true,
    min: 1,
    max: 1000,
  },
  {
    path: "jobExecutionsRolloutConfig.exponentialRate.incrementFactor",
    type: "double",
    required: true,
    min: 1.1,
    max: 5,
    maxDecimals: 1,
    stated: "supports up to one digit after the decimal (for example, 1.5, but not 1.55)",
  },
  {
    path: "jobExecutionsRolloutConfig.exponentialRate.rateIncreaseCriteria",
    type: "structure",
    required: true,
  },
  {
    path: "jobExecutionsRolloutConfig.exponentialRate.rateIncreaseCriteria.numberOfNotifiedThings",
    type: "integer",
    min: 1,
  },
  {
    path: "jobExecutionsRolloutConfig.exponentialRate.rateIncreaseCriteria.numberOfSucceededThings",
    type: "integer",
    min: 1,
  },
];

const ABORT_CONFIG: readonly IotFieldLimit[] = [
  { path: "abortConfig", type: "structure" },
  { path: "abortConfig.criteriaList", type: "list", required: true, min: 1 },
  { path: "abortConfig.criteriaList[]", type: "structure" },
  {
    path: "abortConfig.criteriaList[].failureType",
    type: "string",
    required: true,
    enum: ["FAILED", "REJECTED", "TIMED_OUT", "ALL"],
  },
  { path: "abortConfig.criteriaList[].action", type: "string", required: true, enum: ["CANCEL"] },
  {
    path: "abortConfig.criteriaList[].thresholdPercentage",
    type: "double",
    required: true,
    max: 100,
    maxDecimals: 2,
    stated: "supports up to two digits after the decimal (for example, 10.9 and 10.99, but not 10.999)",
  },
  { path: "abortConfig.criteriaList[].minNumberOfExecutedThings", type: "integer", required: true, min: 1 },
];

const TIMEOUT_CONFIG: readonly IotFieldLimit[] = [
  { path: "timeoutConfig", type: "structure" },
  {
    path: "timeoutConfig.inProgressTimeoutInMinutes",
    type: "long",
    min: 1,
    max: 10080,
    stated: IN_PROGRESS_TIMEOUT_STATED,
  },
];

const RETRY_CONFIG: readonly IotFieldLimit[] = [
  { path: "jobExecutionsRetryConfig", type: "structure" },
  { path: "jobExecutionsRetryConfig.criteriaList", type: "list", required: true, min: 1, max: 2 },
  { path: "jobExecutionsRetryConfig.criteriaList[]", type: "structure" },
  {
    path: "jobExecutionsRetryConfig.criteriaList[].failureType",
    type: "string",
    required: true,
    enum: ["FAILED", "TIMED_OUT", "ALL"],
  },
  {
    path: "jobExecutionsRetryConfig.criteriaList[].numberOfRetries",
    type: "integer",
    required: true,
    min: 0,
    max: 10,
  },
];

/** MQTT requests carry a clientToken; AWS bounds it like the iot-jobs-data model's ClientToken shape. */
const CLIENT_TOKEN: IotFieldLimit = {
  path: "clientToken",
  type: "string",
  min: 1,
  max: 64,
  pattern: "^[\\x21-\\x7E]+$",
  stated: "clientToken of MQTT requests: the iot-jobs-data ClientToken shape (1-64 printable ASCII)",
};

const THING_GROUP_MEMBERSHIP: readonly IotFieldLimit[] = [
  { path: "thingGroupName", ...NAME_128 },
  { path: "thingGroupArn", type: "string" },
  { path: "thingName", ...NAME_128 },
  { path: "thingArn", type: "string" },
];

/**
 * THE table: every IoT operation Keel calls (and every one the local stand-in serves), keyed
 * `<service model>:<operation>`. Path labels, query parameters and body members are all listed as
 * members, as the models do.
 */
export const IOT_LIMITS = {
  "iot:CreateJob": {
    method: "PUT",
    path: "/jobs/{jobId}",
    fields: [
      { path: "jobId", ...JOB_ID },
      { path: "targets", type: "list", required: true, min: 1 },
      { path: "targets[]", type: "string", max: 2048 },
      { path: "documentSource", type: "string", min: 1, max: 1350 },
      {
        path: "document",
        type: "string",
        max: 32768,
        maxUtf8Bytes: 32768,
        stated: "job documents are at most 32 KB (AWS IoT Jobs limits)",
      },
      { path: "description", ...COMMENT },
      ...PRESIGNED_URL_CONFIG,
      { path: "targetSelection", ...TARGET_SELECTION },
      ...ROLLOUT_CONFIG,
      ...ABORT_CONFIG,
      ...TIMEOUT_CONFIG,
      ...TAGS,
      { path: "namespaceId", ...NAMESPACE_ID },
      { path: "jobTemplateArn", ...ARN_1600 },
      ...RETRY_CONFIG,
      { path: "documentParameters", type: "map" },
      { path: "documentParameters{key}", type: "string", min: 1, max: 128, pattern: "[a-zA-Z0-9_-]+" },
      { path: "documentParameters{value}", type: "string", min: 1, max: 30720, pattern: "[^\\p{C}]+" },
      { path: "schedulingConfig", type: "structure" },
      { path: "schedulingConfig.startTime", type: "string", min: 1, max: 64 },
      { path: "schedulingConfig.endTime", type: "string", min: 1, max: 64 },
      {
        path: "schedulingConfig.endBehavior",
        type: "string",
        enum: ["STOP_ROLLOUT", "CANCEL", "FORCE_CANCEL"],
      },
      { path: "schedulingConfig.maintenanceWindows", type: "list" },
      { path: "schedulingConfig.maintenanceWindows[]", type: "structure" },
      {
        path: "schedulingConfig.maintenanceWindows[].startTime",
        type: "string",
        required: true,
        min: 1,
        max: 256,
      },
      {
        path: "schedulingConfig.maintenanceWindows[].durationInMinutes",
        type: "integer",
        required: true,
        min: 1,
        max: 1430,
      },
      {
        path: "destinationPackageVersions",
        type: "list",
        max: 25,
        stated: "Up to 25 package version ARNs are allowed.",
      },
      { path: "destinationPackageVersions[]", ...ARN_1600 },
    ],
  },
  "iot:UpdateJob": {
    method: "PATCH",
    path: "/jobs/{jobId}",
    fields: [
      { path: "jobId", ...JOB_ID },
      { path: "description", ...COMMENT },
      ...PRESIGNED_URL_CONFIG,
      ...ROLLOUT_CONFIG,
      ...ABORT_CONFIG,
      ...TIMEOUT_CONFIG,
      { path: "namespaceId", ...NAMESPACE_ID },
      ...RETRY_CONFIG,
    ],
  },
  "iot:CancelJob": {
    method: "PUT",
    path: "/jobs/{jobId}/cancel",
    fields: [
      { path: "jobId", ...JOB_ID },
      { path: "reasonCode", type: "string", max: 128, pattern: "[\\p{Upper}\\p{Digit}_]+" },
      { path: "comment", ...COMMENT },
      { path: "force", type: "boolean" },
    ],
  },
  "iot:DescribeJob": {
    method: "GET",
    path: "/jobs/{jobId}",
    fields: [
      { path: "jobId", ...JOB_ID },
      { path: "beforeSubstitution", type: "boolean" },
    ],
  },
  "iot:GetJobDocument": {
    method: "GET",
    path: "/jobs/{jobId}/job-document",
    fields: [
      { path: "jobId", ...JOB_ID },
      { path: "beforeSubstitution", type: "boolean" },
    ],
  },
  "iot:DeleteJob": {
    method: "DELETE",
    path: "/jobs/{jobId}",
    fields: [
      { path: "jobId", ...JOB_ID },
      { path: "force", type: "boolean" },
      { path: "namespaceId", ...NAMESPACE_ID },
    ],
  },
  "iot:AssociateTargetsWithJob": {
    method: "POST",
    path: "/jobs/{jobId}/targets",
    fields: [
      { path: "jobId", ...JOB_ID },
      { path: "targets", type: "list", required: true, min: 1 },
      { path: "targets[]", type: "string", max: 2048 },
      { path: "comment", ...COMMENT },
      { path: "namespaceId", ...NAMESPACE_ID },
    ],
  },
  "iot:ListJobs": {
    method: "GET",
    path: "/jobs",
    fields: [
      {
        path: "status",
        type: "string",
        enum: ["IN_PROGRESS", "CANCELED", "COMPLETED", "DELETION_IN_PROGRESS", "SCHEDULED"],
      },
      { path: "targetSelection", ...TARGET_SELECTION },
      { path: "maxResults", ...MAX_RESULTS },
      { path: "nextToken", type: "string" },
      { path: "thingGroupName", ...NAME_128 },
      { path: "thingGroupId", type: "string", min: 1, max: 128, pattern: "[a-zA-Z0-9\\-]+" },
      { path: "namespaceId", ...NAMESPACE_ID },
    ],
  },
  "iot:ListJobExecutionsForJob": {
    method: "GET",
    path: "/jobs/{jobId}/things",
    fields: [
      { path: "jobId", ...JOB_ID },
      { path: "status", type: "string", enum: EXECUTION_STATUS_VALUES },
      { path: "maxResults", ...MAX_RESULTS },
      { path: "nextToken", type: "string" },
    ],
  },
  "iot:ListJobExecutionsForThing": {
    method: "GET",
    path: "/things/{thingName}/jobs",
    fields: [
      { path: "thingName", ...THING_NAME },
      { path: "status", type: "string", enum: EXECUTION_STATUS_VALUES },
      { path: "namespaceId", ...NAMESPACE_ID },
      { path: "maxResults", ...MAX_RESULTS },
      { path: "nextToken", type: "string" },
      { path: "jobId", type: "string", min: 1, max: 64, pattern: "[a-zA-Z0-9_-]+" },
    ],
  },
  "iot:DescribeJobExecution": {
    method: "GET",
    path: "/things/{thingName}/jobs/{jobId}",
    fields: [
      { path: "jobId", ...JOB_ID },
      { path: "thingName", ...THING_NAME },
      { path: "executionNumber", type: "long" },
    ],
  },
  "iot:CancelJobExecution": {
    method: "PUT",
    path: "/things/{thingName}/jobs/{jobId}/cancel",
    fields: [
      { path: "jobId", ...JOB_ID },
      { path: "thingName", ...THING_NAME },
      { path: "force", type: "boolean" },
      { path: "expectedVersion", type: "long" },
      ...STATUS_DETAILS,
    ],
  },
  "iot:DeleteJobExecution": {
    method: "DELETE",
    path: "/things/{thingName}/jobs/{jobId}/executionNumber/{executionNumber}",
    fields: [
      { path: "jobId", ...JOB_ID },
      { path: "thingName", ...THING_NAME },
      { path: "executionNumber", type: "long", required: true },
      { path: "force", type: "boolean" },
      { path: "namespaceId", ...NAMESPACE_ID },
    ],
  },
  "iot:CreateThing": {
    method: "POST",
    path: "/things/{thingName}",
    fields: [
      { path: "thingName", ...THING_NAME },
      { path: "thingTypeName", ...NAME_128 },
      ...ATTRIBUTES,
      { path: "billingGroupName", ...NAME_128 },
    ],
  },
  "iot:DescribeThing": {
    method: "GET",
    path: "/things/{thingName}",
    fields: [{ path: "thingName", ...THING_NAME }],
  },
  "iot:ListThings": {
    method: "GET",
    path: "/things",
    fields: [
      { path: "nextToken", type: "string" },
      { path: "maxResults", ...MAX_RESULTS },
      { path: "attributeName", type: "string", max: 128, pattern: "[a-zA-Z0-9_.,@/:#-]+" },
      { path: "attributeValue", type: "string", max: 800, pattern: "[a-zA-Z0-9_.,@/:#=\\[\\]-]*" },
      { path: "thingTypeName", ...NAME_128 },
      { path: "usePrefixAttributeValue", type: "boolean" },
    ],
  },
  "iot:DeleteThing": {
    method: "DELETE",
    path: "/things/{thingName}",
    fields: [
      { path: "thingName", ...THING_NAME },
      { path: "expectedVersion", type: "long" },
    ],
  },
  "iot:CreateThingGroup": {
    method: "POST",
    path: "/thing-groups/{thingGroupName}",
    fields: [
      { path: "thingGroupName", ...NAME_128, required: true },
      { path: "parentGroupName", ...NAME_128 },
      { path: "thingGroupProperties", type: "structure" },
      {
        path: "thingGroupProperties.thingGroupDescription",
        type: "string",
        max: 2028,
        pattern: "[\\p{Graph}\\x20]*",
      },
      ...under("thingGroupProperties.", ATTRIBUTES),
      ...TAGS,
    ],
  },
  "iot:DescribeThingGroup": {
    method: "GET",
    path: "/thing-groups/{thingGroupName}",
    fields: [{ path: "thingGroupName", ...NAME_128, required: true }],
  },
  "iot:ListThingGroups": {
    method: "GET",
    path: "/thing-groups",
    fields: [
      { path: "nextToken", type: "string" },
      { path: "maxResults", ...MAX_RESULTS },
      { path: "parentGroup", ...NAME_128 },
      { path: "namePrefixFilter", ...NAME_128 },
      { path: "recursive", type: "boolean" },
    ],
  },
  "iot:ListThingsInThingGroup": {
    method: "GET",
    path: "/thing-groups/{thingGroupName}/things",
    fields: [
      { path: "thingGroupName", ...NAME_128, required: true },
      { path: "recursive", type: "boolean" },
      { path: "nextToken", type: "string" },
      { path: "maxResults", ...MAX_RESULTS },
    ],
  },
  "iot:ListThingGroupsForThing": {
    method: "GET",
    path: "/things/{thingName}/thing-groups",
    fields: [
      { path: "thingName", ...THING_NAME },
      { path: "nextToken", type: "string" },
      { path: "maxResults", ...MAX_RESULTS },
    ],
  },
  "iot:AddThingToThingGroup": {
    method: "PUT",
    path: "/thing-groups/addThingToThingGroup",
    fields: [...THING_GROUP_MEMBERSHIP, { path: "overrideDynamicGroups", type: "boolean" }],
  },
  "iot:RemoveThingFromThingGroup": {
    method: "PUT",
    path: "/thing-groups/removeThingFromThingGroup",
    fields: THING_GROUP_MEMBERSHIP,
  },
  "iot:CreateKeysAndCertificate": {
    method: "POST",
    path: "/keys-and-certificate",
    fields: [{ path: "setAsActive", type: "boolean" }],
  },
  "iot:CreateCertificateFromCsr": {
    method: "POST",
    path: "/certificates",
    fields: [
      {
        path: "certificateSigningRequest",
        type: "string",
        required: true,
        min: 1,
        max: 4096,
        pattern: "[\\s\\S]*",
      },
      { path: "setAsActive", type: "boolean" },
    ],
  },
  "iot:UpdateCertificate": {
    method: "PUT",
    path: "/certificates/{certificateId}",
    fields: [
      {
        path: "certificateId",
        type: "string",
        required: true,
        min: 64,
        max: 64,
        pattern: "(0x)?[a-fA-F0-9]+",
      },
      {
        path: "newStatus",
        type: "string",
        required: true,
        enum: [
          "ACTIVE",
          "INACTIVE",
          "REVOKED",
          "PENDING_TRANSFER",
          "REGISTER_INACTIVE",
          "PENDING_ACTIVATION",
        ],
      },
    ],
  },
  "iot:AttachThingPrincipal": {
    method: "PUT",
    path: "/things/{thingName}/principals",
    fields: [
      { path: "thingName", ...THING_NAME },
      { path: "principal", type: "string", required: true },
      { path: "thingPrincipalType", type: "string", enum: ["EXCLUSIVE_THING", "NON_EXCLUSIVE_THING"] },
    ],
  },
  // ListThingPrincipals (iot 2015-05-28: ListThingPrincipalsRequest): `keel fleet remove` finds the
  // certificates to detach and deactivate.
  "iot:ListThingPrincipals": {
    method: "GET",
    path: "/things/{thingName}/principals",
    fields: [
      { path: "nextToken", type: "string" },
      { path: "maxResults", ...MAX_RESULTS },
      { path: "thingName", ...THING_NAME },
    ],
  },
  "iot:DetachThingPrincipal": {
    method: "DELETE",
    path: "/things/{thingName}/principals",
    fields: [
      { path: "thingName", ...THING_NAME },
      { path: "principal", type: "string", required: true },
    ],
  },
  "iot:AttachPolicy": {
    method: "PUT",
    path: "/target-policies/{policyName}",
    fields: [
      { path: "policyName", type: "string", required: true, min: 1, max: 128, pattern: "[\\w+=,.@-]+" },
      { path: "target", type: "string", required: true },
    ],
  },
  "iot:UpdateEventConfigurations": {
    method: "PATCH",
    path: "/event-configurations",
    fields: [
      { path: "eventConfigurations", type: "map" },
      {
        path: "eventConfigurations{key}",
        type: "string",
        enum: [
          "THING",
          "THING_GROUP",
          "THING_TYPE",
          "THING_GROUP_MEMBERSHIP",
          "THING_GROUP_HIERARCHY",
          "THING_TYPE_ASSOCIATION",
          "JOB",
          "JOB_EXECUTION",
          "POLICY",
          "CERTIFICATE",
          "CA_CERTIFICATE",
        ],
      },
      { path: "eventConfigurations{value}", type: "structure" },
      { path: "eventConfigurations{value}.Enabled", type: "boolean" },
    ],
  },
  "iot:DescribeEventConfigurations": { method: "GET", path: "/event-configurations", fields: [] },
  "iot:DescribeEndpoint": {
    method: "GET",
    path: "/endpoint",
    fields: [{ path: "endpointType", type: "string", max: 128, pattern: "[\\s\\S]*" }],
  },
  "iot:CreateProvisioningTemplate": {
    method: "POST",
    path: "/provisioning-templates",
    fields: [
      { path: "templateName", type: "string", required: true, min: 1, max: 36, pattern: "^[0-9A-Za-z_-]+$" },
      { path: "description", type: "string", min: 0, max: 500, pattern: "[^\\p{C}]*" },
      { path: "templateBody", type: "string", required: true, min: 0, max: 10240, pattern: "[\\s\\S]*" },
      { path: "enabled", type: "boolean" },
      { path: "provisioningRoleArn", ...ROLE_ARN, required: true },
      { path: "preProvisioningHook", type: "structure" },
      { path: "preProvisioningHook.payloadVersion", type: "string", min: 10, max: 32, pattern: "^[0-9-]+$" },
      { path: "preProvisioningHook.targetArn", type: "string", required: true, max: 2048 },
      ...TAGS,
      { path: "type", type: "string", enum: ["FLEET_PROVISIONING", "JITP"] },
    ],
  },
  // ---- Fleet provisioning by claim (docs/fleets.md#fleet-provisioning-by-claim): the template's name as
  // CreateProvisioningTemplate takes it; the policy as the IoT service model declares CreatePolicy.
  "iot:DescribeProvisioningTemplate": {
    method: "GET",
    path: "/provisioning-templates/{templateName}",
    fields: [
      { path: "templateName", type: "string", required: true, min: 1, max: 36, pattern: "^[0-9A-Za-z_-]+$" },
    ],
  },
  "iot:DeleteProvisioningTemplate": {
    method: "DELETE",
    path: "/provisioning-templates/{templateName}",
    fields: [
      { path: "templateName", type: "string", required: true, min: 1, max: 36, pattern: "^[0-9A-Za-z_-]+$" },
    ],
  },
  "iot:CreatePolicy": {
    method: "POST",
    path: "/policies/{policyName}",
    fields: [
      { path: "policyName", type: "string", required: true, min: 1, max: 128, pattern: "[\\w+=,.@-]+" },
      { path: "policyDocument", type: "string", required: true, max: 404600, pattern: "[\\s\\S]*" },
      ...TAGS,
    ],
  },
  // ---- Jobs data plane (iot-jobs-data); the MQTT jobs API takes the same fields as JSON, plus clientToken.
  "iot-jobs-data:GetPendingJobExecutions": {
    method: "GET",
    path: "/things/{thingName}/jobs",
    fields: [{ path: "thingName", ...THING_NAME }, CLIENT_TOKEN],
  },
  "iot-jobs-data:DescribeJobExecution": {
    method: "GET",
    path: "/things/{thingName}/jobs/{jobId}",
    fields: [
      { path: "jobId", type: "string", required: true, pattern: "[a-zA-Z0-9_-]+|^\\$next" },
      { path: "thingName", ...THING_NAME },
      { path: "includeJobDocument", type: "boolean" },
      { path: "executionNumber", type: "long" },
      CLIENT_TOKEN,
    ],
  },
  "iot-jobs-data:StartNextPendingJobExecution": {
    method: "PUT",
    path: "/things/{thingName}/jobs/$next",
    fields: [
      { path: "thingName", ...THING_NAME },
      ...STATUS_DETAILS,
      { path: "stepTimeoutInMinutes", type: "long", min: 1, max: 10080, stated: STEP_TIMEOUT_STATED },
      CLIENT_TOKEN,
    ],
  },
  "iot-jobs-data:UpdateJobExecution": {
    method: "POST",
    path: "/things/{thingName}/jobs/{jobId}",
    fields: [
      { path: "jobId", ...JOB_ID },
      { path: "thingName", ...THING_NAME },
      { path: "status", type: "string", required: true, enum: EXECUTION_STATUS_VALUES },
      ...STATUS_DETAILS,
      {
        path: "stepTimeoutInMinutes",
        type: "long",
        min: 1,
        max: 10080,
        sentinels: [-1],
        stated: `${STEP_TIMEOUT_STATED}; -1 cancels the step timer`,
      },
      { path: "expectedVersion", type: "long" },
      { path: "includeJobExecutionState", type: "boolean" },
      { path: "includeJobDocument", type: "boolean" },
      { path: "executionNumber", type: "long" },
      CLIENT_TOKEN,
    ],
  },
  "iot-jobs-data:StartCommandExecution": {
    method: "POST",
    path: "/command-executions",
    fields: [
      { path: "targetArn", type: "string", required: true, max: 2048 },
      { path: "commandArn", type: "string", required: true },
      { path: "parameters", type: "map", min: 1 },
      { path: "parameters{key}", type: "string", min: 1, max: 192, pattern: "^[.$a-zA-Z0-9_-]+$" },
      { path: "parameters{value}", type: "structure" },
      { path: "parameters{value}.S", type: "string", min: 1 },
      { path: "parameters{value}.B", type: "boolean" },
      { path: "parameters{value}.I", type: "integer" },
      { path: "parameters{value}.L", type: "long" },
      { path: "parameters{value}.D", type: "double" },
      { path: "parameters{value}.BIN", type: "blob", min: 1 },
      { path: "parameters{value}.UL", type: "string", min: 1, max: 20, pattern: "^[0-9]*$" },
      { path: "executionTimeoutSeconds", type: "long", min: 1 },
      { ...CLIENT_TOKEN, stated: undefined },
    ],
  },
} as const satisfies Record<string, IotOperationLimits>;

export type IotOperation = keyof typeof IOT_LIMITS;

// ---- Checking ----

export type IotLimitKind =
  | "required"
  | "type"
  | "pattern"
  | "length"
  | "range"
  | "enum"
  | "decimals"
  | "size"
  | "bytes";

/** One broken constraint: where (concrete path), which kind, and the limit as the table states it. */
export interface IotLimitViolation {
  readonly operation: IotOperation;
  readonly path: string;
  readonly kind: IotLimitKind;
  /** The limit, e.g. `max=64`, `pattern=[a-zA-Z0-9_-]+`, `decimals<=2`, `utf8<=32768`. */
  readonly limit: string;
  readonly message: string;
}

/**
 * Java character classes the models use that JavaScript lacks (all appear inside `[...]`): Java's POSIX
 * classes are US-ASCII unless UNICODE_CHARACTER_CLASS is set, which AWS does not document.
 */
const JAVA_CLASSES: ReadonlyArray<readonly [string, string]> = [
  ["\\p{Upper}", "A-Z"],
  ["\\p{Digit}", "0-9"],
  ["\\p{Graph}", "\\x21-\\x7E"],
];

/** The model's Java pattern as a JavaScript RegExp that must match the WHOLE value (Java `matches`). */
export function compileIotPattern(javaPattern: string): RegExp {
  let src = javaPattern;
  for (const [java, js] of JAVA_CLASSES) src = src.split(java).join(js);
  return new RegExp(`^(?:${src})$`, "u");
}

const compiled = new Map<string, RegExp>();
function patternOf(javaPattern: string): RegExp {
  let re = compiled.get(javaPattern);
  if (!re) {
    re = compileIotPattern(javaPattern);
    compiled.set(javaPattern, re);
  }
  return re;
}

/** The table's rows for one operation. */
export function iotLimitsOf(operation: IotOperation): readonly IotFieldLimit[] {
  return IOT_LIMITS[operation].fields;
}

/** The row for one member path (model notation), or undefined. */
export function iotFieldLimit(operation: IotOperation, path: string): IotFieldLimit | undefined {
  return iotLimitsOf(operation).find((r) => r.path === path);
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** Digits after the decimal point of a finite number as JavaScript prints it (1e-7 has 7). */
export function decimalsOf(n: number): number {
  const [mantissa = "", exp] = String(Math.abs(n)).split("e");
  const frac = mantissa.split(".")[1]?.length ?? 0;
  return Math.max(0, frac - Number(exp ?? 0));
}

function describeValue(v: unknown): string {
  if (typeof v === "string") return v.length > 40 ? `${JSON.stringify(v.slice(0, 40))}…` : JSON.stringify(v);
  return JSON.stringify(v) ?? String(v);
}

class Checker {
  readonly out: IotLimitViolation[] = [];
  constructor(
    readonly operation: IotOperation,
    readonly rows: readonly IotFieldLimit[],
  ) {}

  private add(path: string, kind: IotLimitKind, limit: string, what: string): void {
    this.out.push({
      operation: this.operation,
      path,
      kind,
      limit,
      message: `${path || "(input)"}: ${what} (${limit})`,
    });
  }

  /** Rows one level below model path `prefix` (members of a structure). */
  private children(prefix: string): IotFieldLimit[] {
    const lead = prefix === "" ? "" : `${prefix}.`;
    return this.rows.filter((r) => r.path.startsWith(lead) && !/[.[{]/.test(r.path.slice(lead.length)));
  }

  private row(path: string): IotFieldLimit | undefined {
    return this.rows.find((r) => r.path === path);
  }

  /** Checks `value` found at concrete path `at` against the row(s) for model path `model`. */
  walk(model: string, value: unknown, at: string): void {
    const row = this.row(model);
    if (row && !this.checkRow(row, value, at)) return;
    if (Array.isArray(value)) {
      value.forEach((el, i) => {
        this.walk(`${model}[]`, el, `${at}[${i}]`);
      });
    } else if (isRecord(value) && (row?.type === "map" || this.row(`${model}{key}`))) {
      const keyRow = this.row(`${model}{key}`);
      for (const [k, v] of Object.entries(value)) {
        if (keyRow) this.checkRow(keyRow, k, `${at}{${k}}`);
        this.walk(`${model}{value}`, v, `${at}.${k}`);
      }
    } else if (isRecord(value)) {
      for (const child of this.children(model)) {
        const name = child.path.slice(model === "" ? 0 : model.length + 1);
        const v = value[name];
        const childAt = at === "" ? name : `${at}.${name}`;
        if (v === undefined || v === null) {
          if (child.required) this.add(childAt, "required", "required", "is required");
        } else this.walk(child.path, v, childAt);
      }
    }
  }

  /** False when the value has the wrong type (its nested members are then not checked). */
  private checkRow(row: IotFieldLimit, v: unknown, at: string): boolean {
    const typeOk = {
      string: typeof v === "string",
      integer: Number.isInteger(v),
      long: Number.isInteger(v),
      double: typeof v === "number" && Number.isFinite(v),
      boolean: typeof v === "boolean",
      blob: typeof v === "string" || v instanceof Uint8Array,
      list: Array.isArray(v),
      map: isRecord(v),
      structure: isRecord(v),
    }[row.type];
    if (!typeOk) {
      this.add(at, "type", `type=${row.type}`, `must be ${row.type === "integer" ? "an" : "a"} ${row.type}`);
      return false;
    }
    if (typeof v === "number") this.checkNumber(row, v, at);
    else if (typeof v === "string") this.checkString(row, v, at);
    else {
      const size = Array.isArray(v)
        ? v.length
        : isRecord(v) && row.type === "map"
          ? Object.keys(v).length
          : -1;
      const unit = Array.isArray(v) ? "items" : "entries";
      if (size >= 0 && row.min !== undefined && size < row.min)
        this.add(at, "size", `min=${row.min}`, `has ${size} ${unit}, at least ${row.min} needed`);
      if (size >= 0 && row.max !== undefined && size > row.max)
        this.add(at, "size", `max=${row.max}`, `has ${size} ${unit}, at most ${row.max} allowed`);
    }
    return true;
  }

  private checkNumber(row: IotFieldLimit, v: number, at: string): void {
    if (row.sentinels?.includes(v)) return;
    if (row.min !== undefined && v < row.min)
      this.add(at, "range", `min=${row.min}`, `${v} is below ${row.min}`);
    if (row.max !== undefined && v > row.max)
      this.add(at, "range", `max=${row.max}`, `${v} is above ${row.max}`);
    if (row.maxDecimals !== undefined && decimalsOf(v) > row.maxDecimals)
      this.add(
        at,
        "decimals",
        `decimals<=${row.maxDecimals}`,
        `${v} has more than ${row.maxDecimals} digit(s) after the decimal point`,
      );
  }

  private checkString(row: IotFieldLimit, v: string, at: string): void {
    if (row.min !== undefined && v.length < row.min)
      this.add(at, "length", `min=${row.min}`, `is ${v.length} characters, at least ${row.min} needed`);
    if (row.max !== undefined && v.length > row.max)
      this.add(at, "length", `max=${row.max}`, `is ${v.length} characters, at most ${row.max} allowed`);
    if (row.maxUtf8Bytes !== undefined) {
      const bytes = Buffer.byteLength(v, "utf8");
      if (bytes > row.maxUtf8Bytes)
        this.add(
          at,
          "bytes",
          `utf8<=${row.maxUtf8Bytes}`,
          `is ${bytes} bytes, at most ${row.maxUtf8Bytes} allowed`,
        );
    }
    if (row.enum && !row.enum.includes(v))
      this.add(
        at,
        "enum",
        `enum=${row.enum.join("|")}`,
        `${describeValue(v)} is not one of ${row.enum.join(", ")}`,
      );
    // Java's matcher runs on the whole value, an empty one included (`[^\p{C}]+` refuses "").
    if (row.pattern !== undefined && !patternOf(row.pattern).test(v))
      this.add(at, "pattern", `pattern=${row.pattern}`, `${describeValue(v)} does not match`);
  }
}

/**
 * Every violation of `operation`'s constraints in `input` (path labels, query parameters and body members
 * together, named as the model names them). An empty list means AWS would accept the input's shape.
 */
export function checkIotInput(operation: IotOperation, input: Record<string, unknown>): IotLimitViolation[] {
  const c = new Checker(operation, iotLimitsOf(operation));
  c.walk("", input, "");
  return c.out;
}

/** Violations of one member (model path such as `abortConfig.criteriaList[].thresholdPercentage`). */
export function checkIotField(operation: IotOperation, path: string, value: unknown): IotLimitViolation[] {
  const c = new Checker(operation, iotLimitsOf(operation));
  c.walk(path, value, path);
  return c.out;
}

/** One line naming every violation, for error messages. */
export function formatIotViolations(violations: readonly IotLimitViolation[]): string {
  return violations.map((v) => v.message).join("; ");
}

/**
 * A zod `superRefine` callback enforcing one member's row: `schema.superRefine(iotFieldRefinement(
 * "iot:CancelJob", "comment"))`. Each violation becomes a custom issue whose message names the limit.
 */
export function iotFieldRefinement(
  operation: IotOperation,
  path: string,
): (value: unknown, ctx: z.RefinementCtx) => void {
  if (!iotFieldLimit(operation, path)) throw new RangeError(`no ${operation} limit for ${path}`);
  return (value, ctx) => {
    for (const v of checkIotField(operation, path, value)) {
      ctx.addIssue({
        code: "custom",
        message: `AWS IoT ${operation} refuses this: ${v.message}`,
        input: value,
      });
    }
  };
}
