/**
 * Test helpers for the transport: a small in-memory IoT registry that plays the DeviceAuthority part of the
 * IoT stand-in, and MQTT.js connections over mutual TLS that report how the broker answered.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt, { type MqttClient } from "mqtt";
import type { DeviceAuthority } from "../../local/contracts.ts";

/** Certificates, their status and the things they are attached to: what checkConnect needs. */
export class TestRegistry implements DeviceAuthority {
  private readonly certs = new Map<string, { active: boolean; things: Set<string> }>();
  private readonly listeners = new Set<() => void>();

  register(certificateId: string, active = true): void {
    this.certs.set(certificateId, { active, things: new Set() });
    this.changed();
  }
  attach(certificateId: string, thing: string): void {
    this.certs.get(certificateId)?.things.add(thing);
    this.changed();
  }
  setActive(certificateId: string, active: boolean): void {
    const cert = this.certs.get(certificateId);
    if (cert) cert.active = active;
    this.changed();
  }
  checkConnect(certificateId: string, clientId: string): string | null {
    const cert = this.certs.get(certificateId);
    if (!cert) return `unknown certificate ${certificateId}`;
    if (!cert.active) return `certificate ${certificateId} is not ACTIVE`;
    if (!cert.things.has(clientId))
      return `certificate ${certificateId} is not attached to thing ${clientId}`;
    return null;
  }
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  listActiveCertificates(): Array<{ certificateId: string; things: string[] }> {
    return [...this.certs]
      .filter(([, c]) => c.active)
      .map(([certificateId, c]) => ({ certificateId, things: [...c.things] }));
  }
  private changed(): void {
    for (const l of this.listeners) l();
  }
}

export interface TlsClientIdentity {
  ca: string;
  cert?: string;
  key?: string;
}

export type ConnectOutcome = { connected: true; client: MqttClient } | { connected: false; error: string };

/** Connects once (no reconnect) and reports whether the broker accepted the connection. */
export function connectDevice(
  url: string,
  clientId: string,
  identity: TlsClientIdentity,
): Promise<ConnectOutcome> {
  const client = mqtt.connect(url, {
    clientId,
    ca: identity.ca,
    ...(identity.cert && identity.key ? { cert: identity.cert, key: identity.key } : {}),
    reconnectPeriod: 0,
    connectTimeout: 10_000,
    clean: true,
  });
  return new Promise((resolve) => {
    client.once("connect", () => resolve({ connected: true, client }));
    const fail = (error: string) => {
      client.end(true);
      resolve({ connected: false, error });
    };
    client.once("error", (err) => fail(err.message));
    client.once("close", () => fail("connection closed before CONNACK"));
  });
}

/** Resolves when the broker closes this (already connected) client. */
export function closedByBroker(client: MqttClient): Promise<void> {
  return new Promise((resolve) => {
    if (!client.connected) return resolve();
    client.once("close", () => resolve());
  });
}

/** Collects messages per topic for a connected client. */
export function collect(client: MqttClient): Array<{ topic: string; payload: string }> {
  const seen: Array<{ topic: string; payload: string }> = [];
  client.on("message", (topic, payload) => seen.push({ topic, payload: payload.toString() }));
  return seen;
}

/** Resolves on the first message on `topic` (a barrier: everything sent before it has arrived). */
export function nextMessage(client: MqttClient, topic: string): Promise<string> {
  return new Promise((resolve) => {
    const onMessage = (t: string, payload: Buffer) => {
      if (t !== topic) return;
      client.off("message", onMessage);
      resolve(payload.toString());
    };
    client.on("message", onMessage);
  });
}

export async function tempDir(prefix: string): Promise<{ path: string; remove(): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), `keel-${prefix}-`));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}
