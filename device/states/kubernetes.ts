/**
 * The Kubernetes states and the cluster's part in the existing ones (docs/kubernetes.md). On a node whose
 * agent.json has a `kubernetes` section, a cloud job goes
 *   Verifying → AcquiringRebootSlot (health gate + reboot slot) → Draining (cordon + evictions) → Activating,
 * Rebooting re-checks the cordon and the slot right before the reboot, HealthChecking adds the Node's Ready
 * condition with a new bootID, and the terminal states uncordon and give the slot back. Without the section
 * (and for standalone installs, which have no cluster job to coordinate) every wrapper is a pass-through.
 */
import { describeError } from "../../core/errors.ts";
import { DrainTimeoutError, RebootPreconditionError } from "../kubernetes/errors.ts";
import type { StateContext, StateHandler, StateResult } from "./context.ts";

/** The reason a drain timeout is reported with; the blocking pods follow it (report.ts splits them off). */
export const DRAIN_TIMEOUT = "drain-timeout";

const clusterOf = (ctx: StateContext) => (ctx.job.standalone === null ? ctx.cluster : undefined);

/** Verifying: on a cluster node, `verified` leads to the reboot slot instead of straight to activation. */
export function inCluster(verify: StateHandler): StateHandler {
  return {
    name: verify.name,
    async run(ctx) {
      const r = await verify.run(ctx);
      return clusterOf(ctx) && "event" in r && r.event === "verified" ? { event: "verified-in-cluster" } : r;
    },
  };
}

export const acquiringRebootSlot: StateHandler = {
  name: "reboot-slot",
  async run(ctx) {
    const cluster = clusterOf(ctx);
    if (!cluster) return { event: "fail", reason: "no kubernetes section in agent.json" };
    let last = "";
    await cluster.waitForSlot(ctx.signal, (why) => {
      if (why === last) return;
      last = why;
      ctx.logger.info("waiting for a reboot slot", { why });
      ctx.progress({ step: "waiting-for-reboot-slot", waitingFor: why.slice(0, 200) });
    });
    ctx.logger.info("reboot slot taken");
    return { event: "slot-taken" };
  },
};

export const draining: StateHandler = {
  name: "drain",
  async run(ctx) {
    const cluster = clusterOf(ctx);
    if (!cluster) return { event: "fail", reason: "no kubernetes section in agent.json" };
    try {
      const r = await cluster.cordonAndDrain(ctx.signal);
      ctx.logger.info("drained", { ...r });
      return { event: "drained" };
    } catch (err) {
      if (!(err instanceof DrainTimeoutError)) throw err;
      // Give everything back before the job ends: the cluster moves on without this node's update.
      await cluster.finish();
      ctx.logger.warn("drain timed out; uncordoned and gave the reboot slot back", {
        blocking: err.blocking,
      });
      return {
        event: "drain-timeout",
        reason: `${DRAIN_TIMEOUT}: ${err.blocking.map((b) => `${b.pod} (${b.reason})`).join(", ")}`,
      };
    }
  },
};

/** Rebooting: right before the reboot, still cordoned and still our slot; otherwise give the new slot up. */
export function withRebootRecheck(rebooting: StateHandler): StateHandler {
  return {
    name: rebooting.name,
    async run(ctx) {
      const cluster = clusterOf(ctx);
      if (!cluster) return rebooting.run(ctx);
      try {
        return await rebooting.run({
          ...ctx,
          reboot: async () => {
            await cluster.beforeReboot();
            return ctx.reboot();
          },
        });
      } catch (err) {
        if (err instanceof RebootPreconditionError) return { event: "fail", reason: describeError(err) };
        throw err;
      }
    },
  };
}

/** HealthChecking: the configured checks, then the Node Ready with a new bootID, within the same deadline. */
export function withNodeReady(healthChecking: StateHandler): StateHandler {
  return {
    name: healthChecking.name,
    async run(ctx) {
      const cluster = clusterOf(ctx);
      const started = ctx.clock.now();
      const r = await healthChecking.run(ctx);
      if (!cluster || !("event" in r) || r.event !== "healthy") return r;
      const seconds = ctx.job.parsed?.policy.healthDeadlineSeconds ?? ctx.config.healthDeadlineSeconds;
      const left = Math.max(0, seconds * 1000 - (ctx.clock.now() - started));
      const ready = await cluster.nodeReady(left, ctx.stopSignal, { newBoot: true });
      return ready.ok ? r : { event: "unhealthy", reason: ready.reason };
    },
  };
}

/**
 * Terminal states: uncordon and give the slot back before reporting. After a commit or a rollback this must
 * happen (retried until it does; a rollback first waits for the good slot's Node to be Ready); after a
 * failure or a cancel it is best effort, since the slot's lease expires on its own.
 */
export function releasingCluster(
  terminal: StateHandler,
  mode: "commit" | "rolled-back" | "best-effort",
): StateHandler {
  return {
    name: terminal.name,
    async run(ctx): Promise<StateResult> {
      const cluster = clusterOf(ctx);
      if (cluster) {
        if (mode === "rolled-back") {
          const ready = await cluster.nodeReady(ctx.config.healthDeadlineSeconds * 1000, ctx.stopSignal, {
            newBoot: false,
          });
          if (!ready.ok)
            ctx.logger.warn("node not Ready after the rollback; releasing anyway", { reason: ready.reason });
        }
        if (mode === "best-effort") {
          await cluster
            .finish()
            .catch((err: unknown) => ctx.logger.warn("could not uncordon or release", { error: err }));
        } else {
          await cluster.finish();
        }
      }
      return terminal.run(ctx);
    },
  };
}
