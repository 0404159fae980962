/**
 * The agent's Prometheus metrics (text exposition format 0.0.4) on a local port, as Zincati, kured and the
 * Bottlerocket update operator expose theirs: the state, the last result, what each slot holds, bytes
 * downloaded, how long the last drain took and how long the node waited for a reboot slot.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

type Labels = Record<string, string>;

const escapeLabel = (v: string) => v.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
const labelText = (l: Labels) => {
  const parts = Object.entries(l).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  return parts.length ? `{${parts.join(",")}}` : "";
};

interface Family {
  help: string;
  type: "gauge" | "counter";
  samples: Map<string, { labels: Labels; value: number }>;
}

export class AgentMetrics {
  private readonly families = new Map<string, Family>();

  private family(name: string, type: Family["type"], help: string): Family {
    let f = this.families.get(name);
    if (!f) {
      f = { help, type, samples: new Map() };
      this.families.set(name, f);
    }
    return f;
  }

  private set(name: string, type: Family["type"], help: string, labels: Labels, value: number): void {
    this.family(name, type, help).samples.set(labelText(labels), { labels, value });
  }

  /** One-hot: exactly one state sample is 1. */
  setState(state: string): void {
    const f = this.family("keel_agent_state", "gauge", "Update state machine state (1 = current).");
    f.samples.clear();
    this.set("keel_agent_state", "gauge", f.help, { state }, 1);
  }

  setLastResult(result: string, version: string | null, atMs: number): void {
    const f = this.family(
      "keel_agent_last_result",
      "gauge",
      "Last finished update (value: when, seconds since epoch).",
    );
    f.samples.clear();
    this.set(
      "keel_agent_last_result",
      "gauge",
      f.help,
      { result, version: version ?? "" },
      Math.floor(atMs / 1000),
    );
  }

  setSlot(slot: string, version: string | null, booted: boolean, good: boolean): void {
    const name = "keel_agent_slot_info";
    const f = this.family(name, "gauge", "What each A/B slot holds (1 = good).");
    for (const [k, s] of f.samples) if (s.labels.slot === slot) f.samples.delete(k);
    this.set(name, "gauge", f.help, { slot, version: version ?? "", booted: String(booted) }, good ? 1 : 0);
  }

  addDownloadedBytes(n: number): void {
    const name = "keel_agent_downloaded_bytes_total";
    const cur = this.families.get(name)?.samples.get("")?.value ?? 0;
    this.set(name, "counter", "Image bytes written into the inactive slot.", {}, cur + n);
  }

  observeDrain(seconds: number, result: "drained" | "timeout"): void {
    this.set("keel_agent_drain_duration_seconds", "gauge", "Duration of the last drain.", {}, seconds);
    const name = "keel_agent_drains_total";
    const cur = this.families.get(name)?.samples.get(labelText({ result }))?.value ?? 0;
    this.set(name, "counter", "Drains by outcome.", { result }, cur + 1);
  }

  observeSlotWait(seconds: number): void {
    this.set(
      "keel_agent_reboot_slot_wait_seconds",
      "gauge",
      "Time the last update waited for a reboot slot.",
      {},
      seconds,
    );
  }

  setHoldsSlot(holds: boolean): void {
    this.set(
      "keel_agent_reboot_slot_held",
      "gauge",
      "1 while this node holds a cluster reboot slot.",
      {},
      holds ? 1 : 0,
    );
  }

  render(): string {
    const lines: string[] = [];
    for (const [name, f] of this.families) {
      lines.push(`# HELP ${name} ${f.help}`, `# TYPE ${name} ${f.type}`);
      for (const [labels, s] of f.samples) lines.push(`${name}${labels} ${s.value}`);
    }
    return `${lines.join("\n")}\n`;
  }
}

export interface MetricsServer {
  readonly url: string;
  stop(): Promise<void>;
}

/** GET /metrics on host:port (port 0: any free port, for tests). */
export async function serveMetrics(
  metrics: AgentMetrics,
  o: { host: string; port: number },
): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    if (req.method !== "GET" || (req.url ?? "").split("?")[0] !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found; try /metrics\n");
      return;
    }
    res.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" }).end(metrics.render());
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.port, o.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${o.host.includes(":") ? `[${o.host}]` : o.host}:${port}/metrics`,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
