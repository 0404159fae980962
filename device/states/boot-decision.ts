/**
 * The handlers after activation (docs/agent.md): reboot into the new slot, check its health, or go back
 * to the old one. None of them gives up: the driver retries their (idempotent) work on an error, since
 * from here on the boot decision must be finished whatever happens.
 */
import { describeError } from "../../core/errors.ts";
import type { StateHandler } from "./context.ts";

export const rebooting: StateHandler = {
  name: "reboot",
  async run(ctx) {
    const { job } = ctx;
    if (ctx.booted === job.target) return { event: "booted-trial" };
    const state = await ctx.boot.readState();
    if (state.next !== job.target) {
      // We run the old slot and the loader will not try the new one: it was tried and fell back.
      return { event: "booted-old", reason: "new slot never came up" };
    }
    for (const hook of ctx.config.hooks.preReboot) {
      try {
        await ctx.runHook(hook);
      } catch (err) {
        return { event: "fail", reason: `pre-reboot hook failed: ${describeError(err)}` };
      }
    }
    return ctx.reboot();
  },
};

export const healthChecking: StateHandler = {
  name: "health",
  async run(ctx) {
    const { job } = ctx;
    if (ctx.booted !== job.target) return { event: "booted-old", reason: "new slot never came up" };
    const seconds = job.parsed?.policy.healthDeadlineSeconds ?? ctx.config.healthDeadlineSeconds;
    const r = await ctx.checkHealth(seconds * 1000);
    return r.ok ? { event: "healthy" } : { event: "unhealthy", reason: r.reason };
  },
};

export const rollingBack: StateHandler = {
  name: "rollback",
  async run(ctx) {
    const { job } = ctx;
    if (ctx.booted === job.from) return { event: "booted-old" };
    await ctx.boot.markBad(job.target);
    await ctx.boot.forceSlot(job.from);
    return ctx.reboot();
  },
};
