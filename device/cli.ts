/**
 * keel-agent, the device CLI (bin/keel-agent.mjs loads this file through tsx):
 *   run --config agent.json            the daemon: IoT Jobs over MQTT, install, reboot, commit or roll back
 *   install RELEASE.json [--image F|U] the same pipeline without the cloud; exit 0 once the slot is set to be tried
 *   install --resume                   finish a standalone install cut by a power loss or a kill
 *   abandon                            drop a standalone install cut before activation; stay on this slot
 *   status [--json]                    booted slot, both slots' versions, pending state, last result
 *   mark-good                          commit the running slot
 *   rollback                           go back to the committed good slot (cancels a pending trial)
 *   enroll --fleet F --api URL         join a fleet with a key made here and only a CSR sent (device/enrol/api.ts)
 *   enroll-claim --fleet F ...         enrol by fleet provisioning with the fleet's claim certificate
 * Logs are JSON lines on stderr; command output (status) goes to stdout.
 */
import { basename, dirname, join } from "node:path";
import cliProgress from "cli-progress";
import { Command } from "commander";
import { describeError } from "../core/errors.ts";
import { parseJsonText } from "../core/parse.ts";
import { parseReleaseEnvelope } from "../core/verify.ts";
import { Agent, readBootedSlot } from "./agent.ts";
import { createBootControl } from "./boot/factory.ts";
import { type AgentConfig, type ConfigFlags, loadAgentConfig } from "./config.ts";
import { registerEnrolCommand } from "./enrol/api-command.ts";
import { registerClaimEnrolCommand } from "./enrol/claim-command.ts";
import { CommandFailedError } from "./errors.ts";
import { createLogger } from "./logger.ts";

interface ConfigOptions {
  config: string;
  thingName?: string;
  stateDir?: string;
  cmdline?: string;
  mqttEndpoint?: string;
}

function withConfigOptions(cmd: Command): Command {
  return cmd
    .requiredOption("-c, --config <file>", "agent config (JSON)")
    .option("--thing-name <name>", "override thingName")
    .option("--state-dir <dir>", "override stateDir")
    .option("--cmdline <file>", "override cmdline (where keel.slot=A|B is read)")
    .option("--mqtt-endpoint <url>", "override mqtt.endpoint");
}

async function configFrom(o: ConfigOptions): Promise<AgentConfig> {
  const flags: ConfigFlags = {
    thingName: o.thingName,
    stateDir: o.stateDir,
    cmdline: o.cmdline,
    mqttEndpoint: o.mqttEndpoint,
  };
  return loadAgentConfig(o.config, flags);
}

function makeAgent(config: AgentConfig, extra: Partial<ConstructorParameters<typeof Agent>[0]> = {}): Agent {
  const logger = createLogger({ level: config.log.level, fields: { thing: config.thingName } });
  return new Agent({ config, boot: createBootControl(config.bootloader), logger, ...extra });
}

const MIB = 1024 * 1024;

/**
 * Crash-test hook (test/device/crash.test.ts): with KEEL_AGENT_TEST_PAUSE_AT=<State> or byte:<N>, the
 * process freezes (announcing it on stderr) right after that state is persisted, or once N bytes are in
 * the slot, so the test can SIGKILL it at exactly that point. Unset in production: no effect.
 */
function testPauseHooks(): Pick<ConstructorParameters<typeof Agent>[0], "onTransition" | "onBytes"> {
  const at = process.env.KEEL_AGENT_TEST_PAUSE_AT;
  if (!at) return {};
  const freeze = (where: string) => {
    process.stderr.write(`${JSON.stringify({ msg: "test pause", at: where })}\n`);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
  };
  const byte = /^byte:(\d+)$/.exec(at);
  if (byte) {
    const n = Number(byte[1]);
    return { onBytes: (done) => (done >= n ? freeze(at) : undefined) };
  }
  return { onTransition: (_from, _event, to) => (to === at ? freeze(at) : undefined) };
}

/** A byte progress bar on a terminal; nothing when stderr is not one (services, pipes, tests). */
function byteProgress(label: string): { update(done: number, total: number): void; stop(): void } {
  if (!process.stderr.isTTY) return { update() {}, stop() {} };
  let bar: cliProgress.SingleBar | null = null;
  return {
    update(done, total) {
      if (!bar) {
        bar = new cliProgress.SingleBar(
          {
            stream: process.stderr,
            format: `${label} [{bar}] {percentage}% | {mib} MiB | ETA {eta_formatted}`,
            fps: 10,
          },
          cliProgress.Presets.shades_classic,
        );
        bar.start(total, 0, { mib: "0.0" });
      }
      bar.update(done, { mib: (done / MIB).toFixed(1) });
    },
    stop() {
      bar?.stop();
    },
  };
}

const program = new Command("keel-agent")
  .description("keel-agent: installs signed KeelOS releases into the inactive slot and commits or rolls back")
  .showHelpAfterError();

withConfigOptions(
  program.command("run").description("run the agent: take IoT jobs, install, reboot, report"),
).action(async (o: ConfigOptions) => {
  const config = await configFrom(o);
  const agent = makeAgent(config, testPauseHooks());
  const shutdown = () => {
    void agent.stop().then(() => process.exit(0));
  };
  process.once("SIGTERM", shutdown);
  process.once("SIGINT", shutdown);
  await agent.start();
  await agent.done();
});

withConfigOptions(
  program
    .command("install [release]")
    .description("install a signed release without the cloud; exit 0 once the new slot is set to be tried")
    .option("--image <file|url>", "the image (default: the manifest's image file name next to the manifest)")
    .option("--resume", "finish the standalone install a power loss or kill cut short"),
).action(async (release: string | undefined, o: ConfigOptions & { image?: string; resume?: boolean }) => {
  const config = await configFrom(o);
  if (o.resume && (release !== undefined || o.image !== undefined)) {
    throw new CommandFailedError("install --resume takes no release or image: it finishes the saved one");
  }
  if (!o.resume && release === undefined) throw new CommandFailedError("install needs a release manifest");
  const bar = byteProgress("installing");
  const agent = makeAgent(config, {
    connect: false,
    onBytes: (d, t) => bar.update(d, t),
    ...testPauseHooks(),
  });
  let r: { state: string; reason: string | null };
  if (o.resume) {
    r = await agent.resumeStandalone().finally(() => bar.stop());
  } else {
    const manifest = release as string;
    let image = o.image;
    if (image === undefined) {
      // Only to find the default file name: the manifest is verified by the pipeline itself.
      const { readFile } = await import("node:fs/promises");
      const env = parseReleaseEnvelope(
        parseJsonText(await readFile(manifest), `release manifest ${manifest}`),
      );
      image = join(dirname(manifest), basename(env.signed.image.key));
    }
    r = await agent.installStandalone(manifest, image).finally(() => bar.stop());
  }
  if (r.state === "Rebooting") {
    const s = await agent.status();
    console.log(
      `slot ${s.job?.target ?? "?"} holds ${s.job?.version ?? "the release"} and will be tried on the next boot; reboot to switch`,
    );
    return;
  }
  if (r.state === "Committed") {
    console.log("this release already runs in the booted slot; nothing to install");
    return;
  }
  throw new CommandFailedError(
    `install ${r.state === "Rejected" ? "refused" : "failed"}: ${r.reason ?? r.state}`,
  );
});

withConfigOptions(
  program
    .command("abandon")
    .description("drop a standalone install cut before activation; the running slot stays the boot slot"),
).action(async (o: ConfigOptions) => {
  const config = await configFrom(o);
  const r = await makeAgent(config, { connect: false }).abandon();
  console.log(`install abandoned (it was in state ${r.state}); slot ${r.target} will not be booted`);
});

withConfigOptions(
  program.command("status").description("booted slot, both slots, pending state, last result"),
)
  .option("--json", "machine-readable output")
  .action(async (o: ConfigOptions & { json?: boolean }) => {
    const config = await configFrom(o);
    const s = await makeAgent(config, { connect: false }).status();
    if (o.json) {
      console.log(JSON.stringify(s, null, 2));
      return;
    }
    const slotLine = (x: "A" | "B") => {
      const i = s.slots[x];
      const health =
        s.trial === x
          ? x === s.booted
            ? "on trial"
            : "pending trial"
          : i.good
            ? "good"
            : i.bootable
              ? "bootable"
              : "not bootable";
      const flags = [x === s.booted ? "booted" : "", health].filter(Boolean).join(", ");
      return `slot ${x}: ${i.version ?? "unknown"}${i.releaseCounter !== null ? ` (counter ${i.releaseCounter})` : ""} [${flags}]`;
    };
    console.log(`booted:  slot ${s.booted}`);
    console.log(slotLine("A"));
    console.log(slotLine("B"));
    console.log(`next boot: ${s.bootNext ?? "none"}`);
    console.log(
      `state:   ${s.state}${s.job ? ` (job ${s.job.jobId ?? "standalone"}, ${s.job.version ?? "?"} → slot ${s.job.target}, ${s.job.offset} bytes written)` : ""}`,
    );
    const t = s.job?.transfer;
    if (t) {
      // Delta updates (docs/delta.md): what the network carried vs what the node already had.
      const saved = t.size > 0 ? Math.max(0, Math.round((1 - t.fetched / t.size) * 100)) : 0;
      console.log(`image:   ${t.method}, fetched ${t.fetched} of ${t.size} bytes (${saved} % saved)`);
    }
    const l = s.lastResult;
    console.log(
      `last:    ${l ? `${l.state} ${l.version ?? ""} at ${l.at}${l.reason ? ` — ${l.reason}` : ""}` : "none"}`,
    );
  });

withConfigOptions(program.command("mark-good").description("commit the running slot as good")).action(
  async (o: ConfigOptions) => {
    const config = await configFrom(o);
    const booted = await readBootedSlot(config.cmdline);
    await createBootControl(config.bootloader).markGood(booted);
    console.log(`slot ${booted} marked good`);
  },
);

withConfigOptions(
  program
    .command("rollback")
    .description("go back to the committed good slot (cancels a pending update's trial)"),
).action(async (o: ConfigOptions) => {
  const config = await configFrom(o);
  const r = await makeAgent(config, { connect: false }).rollback();
  if (r.cancelled) console.log(`pending update to ${r.cancelled} cancelled`);
  console.log(`slot ${r.slot} will boot next${r.reboot ? "; reboot to switch" : ""}`);
});

registerEnrolCommand(program);
registerClaimEnrolCommand(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  console.error(`keel-agent: ${describeError(err)}`);
  process.exit(1);
});
