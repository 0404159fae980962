/**
 * The terminal states' handlers: settle the bootloader for the outcome, then report it (report.ts builds
 * what is sent) and return to Idle. Each is idempotent: a restart re-runs it and re-sends the report.
 */
import { terminalReport } from "../report.ts";
import type { StateContext, StateHandler, StateResult } from "./context.ts";

async function report(ctx: StateContext, state: Parameters<typeof terminalReport>[0]): Promise<StateResult> {
  const r = terminalReport(state, ctx.job, ctx.booted);
  if (r) await ctx.report(r);
  return { event: "reported" };
}

export const committed: StateHandler = {
  name: "commit",
  async run(ctx) {
    const { job } = ctx;
    const boot = await ctx.boot.readState();
    if (!boot.slots[job.target].good) await ctx.boot.markGood(job.target);
    for (const hook of ctx.config.hooks.postCommit) {
      await ctx
        .runHook(hook)
        .catch((err: unknown) => ctx.logger.error("post-commit hook failed", { hook, error: err }));
    }
    return report(ctx, "Committed");
  },
};

export const rolledBack: StateHandler = {
  name: "rolled-back",
  async run(ctx) {
    const boot = await ctx.boot.readState();
    if (!boot.slots[ctx.booted].good || boot.slots[ctx.job.target].bootable) {
      await ctx.boot.markGoodAndBad(ctx.booted, ctx.job.target);
    }
    return report(ctx, "RolledBack");
  },
};

export const rejected: StateHandler = { name: "rejected", run: (ctx) => report(ctx, "Rejected") };
export const failed: StateHandler = { name: "failed", run: (ctx) => report(ctx, "Failed") };
export const cancelled: StateHandler = { name: "cancelled", run: (ctx) => report(ctx, "Cancelled") };
