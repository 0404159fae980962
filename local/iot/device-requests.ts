/**
 * The MQTT jobs API as a device uses it (docs/iot-jobs.md): GetPendingJobExecutions, StartNext,
 * DescribeJobExecution and UpdateJobExecution, each answered on `/accepted` (or refused with a
 * JobsRejection the data plane publishes on `/rejected`). Status changes go through the transition table.
 */
import type { EngineCore } from "./engine-core.ts";
import { JobsRejection, RejectCode } from "./errors.ts";
import { deviceEvent, executionTransition } from "./execution-machine.ts";
import type { Execution, ExecutionStatus } from "./model.ts";
import { executionState, thingsTopic } from "./wire.ts";

export interface UpdateRequest {
  status: ExecutionStatus;
  statusDetails?: Record<string, string>;
  expectedVersion?: number;
  executionNumber?: number;
  includeJobExecutionState?: boolean;
  includeJobDocument?: boolean;
  stepTimeoutInMinutes?: number;
  clientToken?: string;
}

export class DeviceRequests {
  constructor(private readonly core: EngineCore) {}

  getPending(thing: string, clientToken?: string): void {
    this.core.sink.publish(thing, [
      this.core.wire.pendingList(thing, this.core.index.pendingOf(thing), clientToken),
    ]);
  }

  startNext(
    thing: string,
    req: { statusDetails?: Record<string, string>; stepTimeoutInMinutes?: number; clientToken?: string },
  ): void {
    this.core.mutateThing(
      thing,
      () => {
        const head = this.core.index.pendingOf(thing)[0];
        // On a QUEUED head StartNext starts it; on an IN_PROGRESS head it changes nothing.
        if (head?.status === "QUEUED") {
          const job = this.core.job(head.jobId);
          if (req.statusDetails !== undefined) head.statusDetails = { ...req.statusDetails };
          this.core.progress(job, head, req.stepTimeoutInMinutes);
        }
        return head;
      },
      (head) => [
        this.core.wire.executionResponse(
          `${thingsTopic(thing)}/start-next/accepted`,
          head,
          true,
          req.clientToken,
        ),
      ],
    );
  }

  describe(
    thing: string,
    jobId: string,
    req: { executionNumber?: number; includeJobDocument?: boolean; clientToken?: string },
  ): void {
    const topic = `${thingsTopic(thing)}/${jobId}/get`;
    let e: Execution | undefined;
    if (jobId === "$next") {
      e = this.core.index.pendingOf(thing)[0];
    } else {
      e = this.core.index.execution(thing, jobId, req.executionNumber);
      if (!e) {
        throw new JobsRejection(
          RejectCode.ResourceNotFound,
          `No job execution for job ${jobId} on thing ${thing}${req.executionNumber === undefined ? "" : ` with executionNumber ${req.executionNumber}`}`,
        );
      }
      // [unconfirmed] TerminalStateReached's trigger is not documented precisely; the safer reading is to
      // keep answering describes of terminal executions (agents re-sync from them), so it is never sent.
    }
    this.core.sink.publish(thing, [
      this.core.wire.executionResponse(
        `${topic}/accepted`,
        e,
        req.includeJobDocument ?? true,
        req.clientToken,
      ),
    ]);
  }

  update(thing: string, jobId: string, req: UpdateRequest): void {
    const event = deviceEvent(req.status);
    if (event === undefined) {
      // [unconfirmed] code for a device-sent service-only status; InvalidRequest per docs/iot-jobs.md.
      throw new JobsRejection(
        RejectCode.InvalidRequest,
        `Status ${req.status} cannot be set by a device; use IN_PROGRESS, SUCCEEDED, FAILED or REJECTED`,
      );
    }
    const e = this.core.index.execution(thing, jobId, req.executionNumber);
    const job = this.core.jobs.get(jobId);
    if (!e || !job) {
      throw new JobsRejection(
        RejectCode.ResourceNotFound,
        `No job execution for job ${jobId} on thing ${thing}${req.executionNumber === undefined ? "" : ` with executionNumber ${req.executionNumber}`}`,
      );
    }
    if (req.expectedVersion !== undefined && req.expectedVersion !== e.versionNumber) {
      throw new JobsRejection(
        RejectCode.VersionMismatch,
        `expectedVersion ${req.expectedVersion} does not match the current versionNumber ${e.versionNumber}`,
        executionState(e),
      );
    }
    if (executionTransition(e.status, event) === undefined) {
      throw new JobsRejection(
        RejectCode.InvalidStateTransition,
        `Job execution ${jobId} on ${thing} is ${e.status}${e.forceCanceled ? " (force canceled)" : ""}; it cannot become ${req.status}`,
        executionState(e),
      );
    }
    this.core.mutateThing(
      thing,
      () => {
        if (req.statusDetails !== undefined) e.statusDetails = { ...req.statusDetails };
        if (event === "device-in-progress") this.core.progress(job, e, req.stepTimeoutInMinutes);
        else this.core.finish(job, e, event);
        // The state this update left, before any retry re-queues a new execution.
        return { state: executionState(e), document: job.document, presign: job.presignedUrlConfig };
      },
      (r) => [this.core.wire.updateAccepted(`${thingsTopic(thing)}/${jobId}/update/accepted`, r, req)],
    );
  }

  /** The `/rejected` message for a refused request. */
  rejected(thing: string, requestTopic: string, r: JobsRejection, clientToken?: string): void {
    this.core.sink.publish(thing, [this.core.wire.rejected(requestTopic, r, clientToken)]);
  }
}
