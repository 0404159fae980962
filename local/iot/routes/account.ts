/**
 * Control-plane routes for account settings: the data endpoint and event configurations.
 */
import { z } from "zod";
import { IotServiceError } from "../errors.ts";
import { type ControlPlaneDeps, input, type Route, route } from "./common.ts";

const EventConfigBody = z.object({
  eventConfigurations: z.record(z.string(), z.object({ Enabled: z.boolean().optional() })).optional(),
});

export function accountRoutes(d: ControlPlaneDeps): Route[] {
  const { engine } = d;
  return [
    route("GET", "/endpoint", "DescribeEndpoint", (q) => {
      const type = q.query.get("endpointType") ?? "iot:Data";
      if (type !== "iot:Data-ATS" && type !== "iot:Data") {
        throw new IotServiceError(
          "InvalidRequestException",
          `endpointType ${type} is not served locally; use iot:Data-ATS (the MQTT broker)`,
        );
      }
      return { endpointAddress: d.brokerAddress() };
    }),
    route("PATCH", "/event-configurations", "UpdateEventConfigurations", (q) => {
      const b = input(EventConfigBody, q.body, "request body");
      const c = b.eventConfigurations ?? {};
      d.setEventConfig({ JOB: c.JOB?.Enabled, JOB_EXECUTION: c.JOB_EXECUTION?.Enabled });
      return {};
    }),
    route("GET", "/event-configurations", "DescribeEventConfigurations", () => ({
      eventConfigurations: {
        JOB: { Enabled: engine.eventConfig.JOB },
        JOB_EXECUTION: { Enabled: engine.eventConfig.JOB_EXECUTION },
      },
    })),
  ];
}
