/**
 * Control-plane routes for job executions: describe, list by job or thing, cancel, delete.
 */
import { z } from "zod";
import { thingArn } from "../arns.ts";
import { type Execution, ExecutionStatusSchema } from "../model.ts";
import {
  type ControlPlaneDeps,
  force,
  input,
  JobId,
  jobParam,
  optionalQuery,
  paginate,
  QueryInt,
  type Route,
  route,
  seconds,
  thingParam,
} from "./common.ts";

const CancelExecutionBody = z.object({
  expectedVersion: z.number().int().optional(),
  statusDetails: z.record(z.string(), z.string()).optional(),
});

export function executionRoutes(d: ControlPlaneDeps): Route[] {
  const { ctx, engine } = d;
  const execSummary = (e: Execution) => ({
    status: e.status,
    queuedAt: seconds(e.queuedAt),
    startedAt: seconds(e.startedAt),
    lastUpdatedAt: seconds(e.lastUpdatedAt),
    executionNumber: e.executionNumber,
    retryAttempt: e.retryAttempt,
  });
  return [
    route("GET", "/things/{thingName}/jobs/{jobId}", "DescribeJobExecution", (q) => {
      const thing = thingParam(q);
      const e = engine.describeExecution(
        thing,
        jobParam(q),
        optionalQuery(q.query, "executionNumber", QueryInt.pipe(z.number().int().min(0))),
      );
      return {
        execution: {
          jobId: e.jobId,
          status: e.status,
          forceCanceled: e.forceCanceled,
          statusDetails: { detailsMap: e.statusDetails },
          thingArn: thingArn(ctx, thing),
          queuedAt: seconds(e.queuedAt),
          startedAt: seconds(e.startedAt),
          lastUpdatedAt: seconds(e.lastUpdatedAt),
          executionNumber: e.executionNumber,
          versionNumber: e.versionNumber,
          approximateSecondsBeforeTimedOut: engine.approximateSecondsBeforeTimedOut(e),
        },
      };
    }),
    route("GET", "/jobs/{jobId}/things", "ListJobExecutionsForJob", (q) => {
      const job = engine.job(jobParam(q));
      const status = optionalQuery(q.query, "status", ExecutionStatusSchema);
      const all = [...engine.executionsOfJob(job)].filter((e) => status === undefined || e.status === status);
      const { page, nextToken } = paginate(all, q.query);
      return {
        executionSummaries: page.map((e) => ({
          thingArn: thingArn(ctx, e.thingName),
          jobExecutionSummary: execSummary(e),
        })),
        nextToken,
      };
    }),
    route("GET", "/things/{thingName}/jobs", "ListJobExecutionsForThing", (q) => {
      const thing = thingParam(q);
      const status = optionalQuery(q.query, "status", ExecutionStatusSchema);
      const jobId = optionalQuery(q.query, "jobId", JobId);
      const all = engine
        .executionsOfThing(thing)
        .filter(
          (e) => (status === undefined || e.status === status) && (jobId === undefined || e.jobId === jobId),
        )
        .sort((a, b) => b.queuedAt - a.queuedAt);
      const { page, nextToken } = paginate(all, q.query);
      return {
        executionSummaries: page.map((e) => ({ jobId: e.jobId, jobExecutionSummary: execSummary(e) })),
        nextToken,
      };
    }),
    route("PUT", "/things/{thingName}/jobs/{jobId}/cancel", "CancelJobExecution", (q) => {
      const b = input(CancelExecutionBody, q.body, "request body");
      engine.cancelExecution(thingParam(q), jobParam(q), {
        force: force(q),
        expectedVersion: b.expectedVersion,
        statusDetails: b.statusDetails,
      });
      return {};
    }),
    route(
      "DELETE",
      "/things/{thingName}/jobs/{jobId}/executionNumber/{executionNumber}",
      "DeleteJobExecution",
      (q) => {
        const n = input(QueryInt.pipe(z.number().int().min(0)), q.params.executionNumber, "executionNumber");
        engine.deleteExecution(thingParam(q), jobParam(q), n, force(q));
        return {};
      },
    ),
  ];
}
