/**
 * The AWS IoT Jobs stand-in: registry + jobs engine + control plane (HTTP) + data plane (MQTT), persisted
 * under dataDir. The registry (and so `authority`) is ready as soon as this resolves, before start(),
 * because brokers authorize devices against it.
 */
import type { IotEvent, IotStandIn, IotStandInOptions, RunningBroker } from "../contracts.ts";
import { startControlPlane } from "./control-plane.ts";
import { DataPlane } from "./data-plane.ts";
import { FleetProvisioning, type HookInput } from "./fleet-provisioning.ts";
import { JobsEngine } from "./jobs-engine.ts";
import type { PersistedState } from "./model.ts";
import { createPresigner } from "./presign.ts";
import { ProvisioningPlane } from "./provisioning-plane.ts";
import { Registry } from "./registry.ts";
import { createStateStore } from "./store.ts";

/** Structured JSON log lines on stderr (DESIGN: logs are structured JSON). */
function log(msg: string, fields?: Record<string, unknown>): void {
  process.stderr.write(`${JSON.stringify({ level: "warn", component: "iot-standin", msg, ...fields })}\n`);
}

export async function createIotStandIn(opts: IotStandInOptions): Promise<IotStandIn> {
  const ctx = { region: opts.region, account: opts.account };
  let engine: JobsEngine | undefined;
  const listeners = new Set<(e: IotEvent) => void>();
  const apiCalls: Record<string, number> = {};
  const apiCallsByJob: Record<string, Record<string, number>> = {};

  const snapshot = (): PersistedState => {
    const e = engine?.snapshot() ?? { jobs: [], executions: [] };
    return {
      version: 1,
      things: [...registry.things.values()],
      groups: [...registry.groups.values()],
      certificates: [...registry.certificates.values()],
      jobs: e.jobs,
      executions: e.executions,
      eventConfig: engine?.eventConfig ?? { JOB: false, JOB_EXECUTION: false },
      provisioning: provisioning.snapshot(),
    };
  };
  const store = createStateStore(opts.dataDir, snapshot);
  const saved = store.load();
  const registry = new Registry(() => opts.clock.now(), saved);
  registry.hooks.dirty = () => store.markDirty();
  const lambdas = new Map<string, (input: HookInput) => Promise<unknown>>();
  const provisioning = new FleetProvisioning(
    ctx,
    opts.clock,
    registry,
    opts.ca,
    async (arn, input) => {
      const handler = lambdas.get(arn);
      if (!handler) throw new Error(`no local Lambda serves ${arn}`);
      return handler(input);
    },
    () => {
      store.markDirty();
      registry.claimPoliciesChanged();
    },
    log,
    saved?.provisioning,
  );
  registry.claimPolicy = (id) => provisioning.claimAccess(id);
  const provisioningPlane = new ProvisioningPlane(provisioning, log);

  const dataPlane = new DataPlane(() => {
    if (!engine) throw new Error("jobs engine used before it exists");
    return engine;
  }, log);
  engine = new JobsEngine(
    ctx,
    opts.clock,
    registry,
    createPresigner(opts.s3),
    {
      publish: (thing, messages) => dataPlane.publishFor(thing, messages),
      event: (e) => {
        for (const l of listeners) {
          try {
            l(e);
          } catch (err) {
            log("event listener failed", { topic: e.topic, error: String(err) });
          }
        }
        // On MQTT only once enabled with UpdateEventConfigurations (docs/iot-jobs.md); in-process listeners always hear them.
        const type = e.payload.eventType === "JOB" ? "JOB" : "JOB_EXECUTION";
        if (engine?.eventConfig[type]) dataPlane.publishRaw(e.topic, e.payload);
      },
    },
    () => store.markDirty(),
    saved,
  );
  const jobs = engine;

  let controlPlane: { endpoint: string; close(): Promise<void> } | undefined;
  let broker: RunningBroker | undefined;
  let stopped = false;

  return {
    authority: registry.authority,
    async start(b, options) {
      if (controlPlane) throw new Error("the IoT stand-in is already started");
      broker = b;
      await dataPlane.connect(b);
      await provisioningPlane.connect(b);
      controlPlane = await startControlPlane(
        {
          ctx,
          registry,
          engine: jobs,
          ca: opts.ca,
          brokerAddress: () => {
            const url = new URL(broker?.url ?? "mqtt://127.0.0.1");
            return url.host;
          },
          setEventConfig: (c) => {
            if (c.JOB !== undefined) jobs.eventConfig.JOB = c.JOB;
            if (c.JOB_EXECUTION !== undefined) jobs.eventConfig.JOB_EXECUTION = c.JOB_EXECUTION;
            store.markDirty();
          },
          countCall: (op, jobId) => {
            apiCalls[op] = (apiCalls[op] ?? 0) + 1;
            if (jobId !== undefined) {
              const perJob = apiCallsByJob[jobId] ?? {};
              perJob[op] = (perJob[op] ?? 0) + 1;
              apiCallsByJob[jobId] = perJob;
            }
          },
          log,
          provisioning,
        },
        options?.port ?? 0,
      );
      // Timers resume only once devices can hear what they cause.
      jobs.resumeTimers();
      return { endpoint: controlPlane.endpoint };
    },
    onEvent(listener) {
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },
    stats() {
      return {
        apiCalls: { ...apiCalls },
        apiCallsByJob: Object.fromEntries(Object.entries(apiCallsByJob).map(([j, c]) => [j, { ...c }])),
        mqttMessagesIn: dataPlane.stats.in,
        mqttMessagesOut: dataPlane.stats.out,
      };
    },
    injectFaults(rule) {
      dataPlane.injectFaults(rule);
    },
    registerLambda(arn, handler) {
      lambdas.set(arn, handler);
      return () => {
        if (lambdas.get(arn) === handler) lambdas.delete(arn);
      };
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      jobs.stopTimers();
      await controlPlane?.close();
      await dataPlane.close();
      await provisioningPlane.close();
      await store.flush();
    },
  };
}
