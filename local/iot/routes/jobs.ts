/**
 * Control-plane routes for jobs: create, describe, list, update, cancel, delete, add targets.
 */
import { z } from "zod";
import { jobArn } from "../arns.ts";
import { IotServiceError } from "../errors.ts";
import { jobWindows, SchedulingConfigSchema } from "../maintenance-windows.ts";
import {
  AbortConfigSchema,
  type Job,
  JobStatusSchema,
  PresignedUrlConfigSchema,
  RetryConfigSchema,
  RolloutConfigSchema,
  TimeoutConfigSchema,
} from "../model.ts";
import {
  type ControlPlaneDeps,
  force,
  input,
  jobParam,
  optionalQuery,
  paginate,
  type Route,
  route,
  seconds,
  Text,
  ThingName,
} from "./common.ts";

const CreateJobBody = z.object({
  targets: z.array(z.string()),
  document: z.string().optional(),
  documentSource: z.string().optional(),
  description: Text.optional(),
  targetSelection: z.enum(["SNAPSHOT", "CONTINUOUS"]).optional(),
  jobExecutionsRolloutConfig: RolloutConfigSchema.optional(),
  abortConfig: AbortConfigSchema.optional(),
  timeoutConfig: TimeoutConfigSchema.optional(),
  jobExecutionsRetryConfig: RetryConfigSchema.optional(),
  presignedUrlConfig: PresignedUrlConfigSchema.optional(),
  tags: z.array(z.object({ Key: z.string(), Value: z.string().optional() })).optional(),
  namespaceId: z.string().optional(),
  jobTemplateArn: z.string().optional(),
  documentParameters: z.record(z.string(), z.string()).optional(),
  schedulingConfig: SchedulingConfigSchema.optional(),
});
const AssociateTargetsBody = z.object({
  targets: z.array(z.string()),
  comment: Text.optional(),
});
const UpdateJobBody = z.object({
  description: Text.optional(),
  jobExecutionsRolloutConfig: RolloutConfigSchema.optional(),
  abortConfig: AbortConfigSchema.optional(),
  timeoutConfig: TimeoutConfigSchema.optional(),
  jobExecutionsRetryConfig: RetryConfigSchema.optional(),
  presignedUrlConfig: PresignedUrlConfigSchema.optional(),
});
const CancelJobBody = z.object({
  reasonCode: z.string().optional(),
  comment: Text.optional(),
});

export function jobRoutes(d: ControlPlaneDeps): Route[] {
  const { ctx, engine } = d;
  const jobOut = (j: Job) => ({
    jobArn: jobArn(ctx, j.jobId),
    jobId: j.jobId,
    targetSelection: j.targetSelection,
    status: j.status,
    forceCanceled: j.forceCanceled,
    reasonCode: j.reasonCode,
    comment: j.comment,
    targets: j.targets,
    description: j.description,
    presignedUrlConfig: j.presignedUrlConfig,
    schedulingConfig: j.schedulingConfig,
    jobExecutionsRolloutConfig: j.rolloutConfig,
    abortConfig: j.abortConfig,
    timeoutConfig: j.timeoutConfig,
    jobExecutionsRetryConfig: j.retryConfig,
    createdAt: seconds(j.createdAt),
    lastUpdatedAt: seconds(j.lastUpdatedAt),
    completedAt: seconds(j.completedAt),
    jobProcessDetails: engine.processDetails(j),
    isConcurrent: engine.isConcurrent(j),
  });
  return [
    route("PUT", "/jobs/{jobId}", "CreateJob", (q) => {
      const jobId = jobParam(q);
      const b = input(CreateJobBody, q.body, "request body");
      const unsupported = (["documentSource", "jobTemplateArn", "documentParameters"] as const).filter(
        (k) => b[k] !== undefined,
      );
      if (unsupported.length > 0) {
        throw new IotServiceError(
          "InvalidRequestException",
          `${unsupported.join(", ")} not supported by the local IoT stand-in; pass the document inline`,
        );
      }
      if (b.document === undefined)
        throw new IotServiceError("InvalidRequestException", "document is required");
      // Refuses (InvalidRequestException) a window the stand-in cannot read before anything is created.
      jobWindows(b.schedulingConfig);
      const job = engine.createJob({
        jobId,
        targets: b.targets,
        document: b.document,
        description: b.description,
        targetSelection: b.targetSelection,
        rolloutConfig: b.jobExecutionsRolloutConfig,
        abortConfig: b.abortConfig,
        timeoutConfig: b.timeoutConfig,
        retryConfig: b.jobExecutionsRetryConfig,
        presignedUrlConfig: b.presignedUrlConfig,
        schedulingConfig: b.schedulingConfig,
      });
      return { jobArn: jobArn(ctx, job.jobId), jobId: job.jobId, description: job.description };
    }),
    route("GET", "/jobs/{jobId}", "DescribeJob", (q) => ({ job: jobOut(engine.job(jobParam(q))) })),
    route("GET", "/jobs/{jobId}/job-document", "GetJobDocument", (q) => ({
      document: engine.job(jobParam(q)).document,
    })),
    route("GET", "/jobs", "ListJobs", (q) => {
      const jobs = engine.listJobs({
        status: optionalQuery(q.query, "status", JobStatusSchema),
        targetSelection: optionalQuery(q.query, "targetSelection", z.enum(["SNAPSHOT", "CONTINUOUS"])),
        thingGroupName: optionalQuery(q.query, "thingGroupName", ThingName),
      });
      const { page, nextToken } = paginate(jobs, q.query);
      return {
        jobs: page.map((j) => ({
          jobArn: jobArn(ctx, j.jobId),
          jobId: j.jobId,
          targetSelection: j.targetSelection,
          status: j.status,
          createdAt: seconds(j.createdAt),
          lastUpdatedAt: seconds(j.lastUpdatedAt),
          completedAt: seconds(j.completedAt),
          isConcurrent: engine.isConcurrent(j),
        })),
        nextToken,
      };
    }),
    route("PATCH", "/jobs/{jobId}", "UpdateJob", (q) => {
      const b = input(UpdateJobBody, q.body, "request body");
      engine.updateJob(jobParam(q), {
        description: b.description,
        rolloutConfig: b.jobExecutionsRolloutConfig,
        abortConfig: b.abortConfig,
        timeoutConfig: b.timeoutConfig,
        retryConfig: b.jobExecutionsRetryConfig,
        presignedUrlConfig: b.presignedUrlConfig,
      });
      return {};
    }),
    route("PUT", "/jobs/{jobId}/cancel", "CancelJob", (q) => {
      const b = input(CancelJobBody, q.body, "request body");
      const job = engine.cancelJob(jobParam(q), {
        force: force(q),
        reasonCode: b.reasonCode,
        comment: b.comment,
      });
      return { jobArn: jobArn(ctx, job.jobId), jobId: job.jobId, description: job.description };
    }),
    route("POST", "/jobs/{jobId}/targets", "AssociateTargetsWithJob", (q) => {
      const b = input(AssociateTargetsBody, q.body, "request body");
      const job = engine.associateTargets(jobParam(q), b.targets, b.comment);
      return { jobArn: jobArn(ctx, job.jobId), jobId: job.jobId, description: job.description };
    }),
    route("DELETE", "/jobs/{jobId}", "DeleteJob", (q) => {
      engine.deleteJob(jobParam(q), force(q));
      return {};
    }),
  ];
}
