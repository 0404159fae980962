/**
 * `schedulingConfig.maintenanceWindows` on a job (docs/iot-jobs.md): the job's executions are created
 * (rolled out) only inside one of its windows, as AWS IoT does; outside them the rollout waits and carries
 * on when the next window opens. A window's `startTime` is an AWS cron expression in UTC,
 * `cron(minute hour day-of-month month day-of-week year)`, with `?` for the day field left open and
 * weekdays 1–7 = SUN–SAT; the lengths and the 1–1430 minute duration are checked by core/aws-limits.ts
 * before this runs. The stand-in takes no `startTime`/`endTime` for the job itself (a job here starts
 * when it is created) and only `*` for the year.
 */
import { z } from "zod";
import { parseCron } from "../../core/cron.ts";
import { CronError } from "../../core/errors.ts";
import { type MaintenanceWindow, type WindowState, windowState } from "../../core/maintenance-window.ts";
import { IotServiceError } from "./errors.ts";

export const AwsMaintenanceWindowSchema = z.object({
  startTime: z.string(),
  durationInMinutes: z.number().int(),
});
export const SchedulingConfigSchema = z.object({
  startTime: z.string().optional(),
  endTime: z.string().optional(),
  endBehavior: z.string().optional(),
  maintenanceWindows: z.array(AwsMaintenanceWindowSchema).optional(),
});
export type SchedulingConfig = z.infer<typeof SchedulingConfigSchema>;

const invalid = (message: string) => new IotServiceError("InvalidRequestException", message);

/** AWS weekday numbers (1 = SUN) → five-field cron's (0 = SUN); step sizes after `/` stay as they are. */
const awsWeekdays = (field: string) =>
  field.replace(/(?<![/\d])([1-7])(?!\d)/g, (d) => String(Number(d) - 1));

/** An AWS `cron(…)` start time as a five-field cron in UTC; InvalidRequestException when it is not one. */
export function windowFromAws(w: { startTime: string; durationInMinutes: number }): MaintenanceWindow {
  const m = /^cron\((.*)\)$/.exec(w.startTime.trim());
  const fields = m?.[1]?.trim().split(/\s+/) ?? [];
  if (fields.length !== 6) {
    throw invalid(
      `maintenanceWindows startTime ${JSON.stringify(w.startTime)} is not cron(minute hour day-of-month month day-of-week year)`,
    );
  }
  const [minute, hour, day, month, weekday, year] = fields as [
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  if (year !== "*")
    throw invalid(
      `maintenanceWindows startTime ${w.startTime}: the local stand-in takes only * for the year`,
    );
  if ((day === "?") === (weekday === "?")) {
    throw invalid(
      `maintenanceWindows startTime ${w.startTime}: exactly one of day-of-month and day-of-week must be ?`,
    );
  }
  const cron = [
    minute,
    hour,
    day === "?" ? "*" : day,
    month,
    weekday === "?" ? "*" : awsWeekdays(weekday),
  ].join(" ");
  try {
    parseCron(cron);
  } catch (err) {
    if (err instanceof CronError)
      throw invalid(`maintenanceWindows startTime ${w.startTime}: ${err.problem}`);
    throw err;
  }
  return { cron, durationMinutes: w.durationInMinutes, timeZone: "UTC" };
}

/** The job's windows as the calculator takes them; refuses what the stand-in does not do. */
export function jobWindows(cfg: SchedulingConfig | undefined): MaintenanceWindow[] {
  if (!cfg) return [];
  if (cfg.startTime !== undefined || cfg.endTime !== undefined || cfg.endBehavior !== undefined) {
    throw invalid(
      "schedulingConfig startTime, endTime and endBehavior are not supported by the local IoT stand-in; maintenanceWindows are",
    );
  }
  return (cfg.maintenanceWindows ?? []).map(windowFromAws);
}

/** Whether the job may roll out now; a job without windows always may. */
export function jobWindowState(cfg: SchedulingConfig | undefined, now: number): WindowState {
  return windowState(jobWindows(cfg), now);
}
