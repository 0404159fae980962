/**
 * `keel console [--local] [--port N]`: the web console (cli/console/) on 127.0.0.1, signing every API
 * request on this machine with the operator's credentials exactly as the other commands do. Runs until
 * Ctrl-C. See docs/console.md.
 */
import { type Command, InvalidArgumentError } from "commander";
import {
  ApiClient,
  addTargetOptions,
  type CloudTarget,
  resolveTarget,
  type TargetFlags,
} from "../api-client.ts";
import { startConsole } from "../console/server.ts";
import { durationOption } from "../inputs.ts";
import { untilStopSignal } from "./dev.ts";

export const DEFAULT_CONSOLE_PORT = 4780;

export function portOption(v: string): number {
  const n = Number(v.trim());
  if (!/^\d+$/.test(v.trim()) || n > 65535)
    throw new InvalidArgumentError("expected a port number 0–65535 (0: any free port)");
  return n;
}

export function describeTarget(t: Pick<CloudTarget, "kind" | "apiUrl" | "region">, stack?: string): string {
  return t.kind === "local" ? `local cloud (${t.apiUrl})` : `stack ${stack ?? "Keel"} in ${t.region}`;
}

export function register(program: Command): void {
  addTargetOptions(
    program
      .command("console")
      .description(
        "serve the web console on 127.0.0.1: rollouts, fleets and releases, with pause/resume/abort/start",
      )
      .option(
        "--port <n>",
        `port on 127.0.0.1 (default ${DEFAULT_CONSOLE_PORT}; 0: any free port)`,
        portOption,
      )
      .option("--poll <duration>", "how often the page refreshes (default 2s)", durationOption),
  ).action(async (flags: TargetFlags & { port?: number; poll?: number }) => {
    const target = await resolveTarget(flags);
    // Bundling the web app takes a moment on a slow machine: say what is happening meanwhile.
    process.stderr.write("keel console: bundling the web app and starting the server…\n");
    const server = await startConsole({
      api: new ApiClient(target),
      port: flags.port ?? DEFAULT_CONSOLE_PORT,
      target: describeTarget(target, flags.stack),
      ...(flags.poll ? { pollMs: Math.max(250, Math.round(flags.poll * 1000)) } : {}),
    });
    process.stdout.write(
      `Keel console for the ${describeTarget(target, flags.stack)}:\n  ${server.url}\nOpen that URL (it carries this run's access token). Press Ctrl-C to stop.\n`,
    );
    await untilStopSignal();
    await server.close();
    process.exit(0);
  });
}
