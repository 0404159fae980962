/**
 * Runs one simulated node through reboots in-process: when the agent asks to reboot, the runner stops
 * it, lets the simulated firmware pick a slot (mutating the env as the loader would), points the command
 * line at it and starts a fresh agent, as the fleet simulator does. A `broken` slot never gets as far as
 * starting the agent: the runner power-cycles again, and the firmware has to fall back on its own.
 */
import type { Agent } from "../../../device/agent.ts";
import type { Slot } from "../../../device/boot/types.ts";
import type { State } from "../../../device/state-machine.ts";
import { type TestNode, waitFor } from "./node.ts";

export class NodeRunner {
  agent: Agent | null = null;
  readonly states: State[] = [];
  readonly boots: string[] = [];
  private rebooting: Promise<void> | null = null;

  constructor(
    private readonly node: TestNode,
    private readonly options: { broken?: Slot } = {},
  ) {}

  async start(): Promise<void> {
    const agent = this.node.agent({
      onTransition: (_from, _event, to) => this.states.push(to),
      reboot: async () => {
        // Reboot from outside the agent's own call stack, as the OS would.
        this.rebooting = new Promise((resolve) => setImmediate(() => void this.reboot().then(resolve)));
      },
    });
    this.agent = agent;
    await agent.start();
  }

  private async reboot(): Promise<void> {
    await this.agent?.stop();
    this.agent = null;
    for (let i = 0; i < 5; i++) {
      const r = await this.node.powerOn();
      this.boots.push(r);
      if (r !== this.options.broken) break;
    }
    await this.start();
  }

  /** Waits until the agent is back in Idle after at least one transition, across reboots. */
  async untilIdle(timeoutMs = 30_000): Promise<void> {
    await waitFor(
      () => this.states.at(-1) === "Idle" && this.agent !== null && !this.agent.awaitingReboot,
      timeoutMs,
    );
  }

  async stop(): Promise<void> {
    await this.rebooting;
    await this.agent?.stop();
    this.agent = null;
  }
}
