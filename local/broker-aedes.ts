/**
 * The default local MQTT broker: aedes in-process behind node:tls with mutual TLS, enforcing what AWS IoT
 * Core enforces for a Keel device (docs/architecture.md, device IoT policy):
 * - the TLS handshake needs a client certificate signed by the local CA (requestCert + rejectUnauthorized);
 * - CONNECT is refused unless the certificate is ACTIVE and attached to the thing named by the client id
 *   (DeviceAuthority.checkConnect, owned by the IoT registry);
 * - a device may publish and subscribe only under `$aws/things/<its thing>/jobs/` (deviceMayUseTopic);
 * - a claim certificate may use only the provisioning topics its policy allows; its requests are routed to
 *   the stand-in with its identity and the answers reach its connection only (local/provisioning-topics.ts);
 * - the service client (the IoT stand-in's own certificate) may use any topic.
 */
import { createServer, type Server, type TLSSocket } from "node:tls";
import { Aedes, type AuthenticateError, type Client } from "aedes";
import { certificateIdOf, type LocalCertificateAuthority, serviceClientOf } from "./ca.ts";
import type { DeviceAuthority, RunningBroker } from "./contracts.ts";
import { deviceMayUseTopic } from "./contracts.ts";
import { LocalServiceError } from "./errors.ts";
import { LOOPBACK } from "./ports.ts";
import { inboundTopic, parseOutboundTopic } from "./provisioning-topics.ts";

export interface BrokerOptions {
  ca: Pick<LocalCertificateAuthority, "caCertPem" | "server" | "serviceClient">;
  authority: DeviceAuthority;
  /** 0 (default) picks a free port. */
  port?: number;
}

/** MQTT CONNACK return code 5 (3.1.1) / reason 0x87 (5.0): not authorized. */
const NOT_AUTHORIZED = 5;

export async function startAedesBroker(options: BrokerOptions): Promise<RunningBroker> {
  const { ca, authority } = options;
  const serviceId = ca.serviceClient.certificateId;
  /** Connected device clients by client id (the service excluded), to re-check them when the registry changes. */
  const devices = new Map<string, { client: Client; certificateId: string }>();
  const services = new WeakSet<Client>();
  /** Provisioning answers (by payload buffer, which aedes passes along unchanged) → the one client to get them. */
  const answerFor = new WeakMap<Buffer, string>();
  const claimOf = (client: Client) => {
    const id = devices.get(client.id)?.certificateId;
    return id === undefined ? undefined : authority.claimAccess?.(id);
  };

  const broker = await Aedes.createBroker({
    authenticate(client, _username, _password, done) {
      const certificateId = peerCertificateId(client);
      if (certificateId === serviceId) {
        services.add(client);
        return done(null, true);
      }
      const reason = certificateId
        ? authority.checkConnect(certificateId, client.id)
        : "no client certificate was presented";
      if (reason !== null) return done(refusal(reason), false);
      devices.set(client.id, { client, certificateId: certificateId ?? "" });
      done(null, true);
    },
    authorizePublish(client, packet, done) {
      // client is null for messages the broker itself publishes.
      if (!client) return done(null);
      if (services.has(client)) {
        const answer = parseOutboundTopic(packet.topic);
        if (answer) {
          packet.topic = answer.awsTopic;
          answerFor.set(packet.payload as Buffer, answer.clientId);
        }
        return done(null);
      }
      const claim = claimOf(client);
      if (claim?.publish.includes(packet.topic)) {
        packet.topic = inboundTopic(devices.get(client.id)?.certificateId ?? "", client.id, packet.topic);
        return done(null);
      }
      // A claim certificate gets the provisioning topics only, never a thing's, whatever its client id.
      if (!claim && deviceMayUseTopic(client.id, packet.topic)) return done(null);
      // As AWS IoT does for a policy violation, the publish is refused and aedes closes the connection.
      done(new Error(`client ${client.id} may not publish to ${packet.topic}`));
    },
    authorizeSubscribe(client, subscription, done) {
      const claim = services.has(client) ? undefined : claimOf(client);
      if (
        services.has(client) ||
        (claim
          ? claim.subscribe.includes(subscription.topic)
          : deviceMayUseTopic(client.id, subscription.topic))
      ) {
        return done(null, subscription);
      }
      // A null subscription makes SUBACK carry the failure code (0x80) for that filter.
      done(null, null);
    },
    authorizeForward(client, packet) {
      const only = answerFor.get(packet.payload as Buffer);
      return only === undefined || only === client.id ? packet : null;
    },
  });
  broker.on("clientDisconnect", (client) => {
    if (devices.get(client.id)?.client === client) devices.delete(client.id);
  });

  // A certificate made inactive or detached stops working at once: drop connections that no longer pass.
  const unsubscribe = authority.onChange(() => {
    for (const [clientId, { client, certificateId }] of devices) {
      if (authority.checkConnect(certificateId, clientId) !== null) {
        devices.delete(clientId);
        client.close();
      }
    }
  });

  const server: Server = createServer(
    {
      key: ca.server.key,
      cert: ca.server.cert,
      ca: ca.caCertPem,
      requestCert: true,
      rejectUnauthorized: true,
    },
    (socket) => broker.handle(socket),
  );
  // Handshake failures (no certificate, another CA) are the client's problem, not the broker's.
  server.on("tlsClientError", () => {});
  const port = await new Promise<number>((resolve, reject) => {
    server.once("error", (err) => reject(new LocalServiceError("aedes", "cannot listen", { cause: err })));
    server.listen(options.port ?? 0, LOOPBACK, () => {
      const address = server.address();
      resolve(typeof address === "object" && address ? address.port : 0);
    });
  });

  return {
    kind: "aedes",
    url: `mqtts://${LOOPBACK}:${port}`,
    serviceClient: serviceClientOf(ca),
    settled: async () => {},
    async stop() {
      unsubscribe();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Open MQTT connections keep the server from closing: close the broker (and its clients) too.
        broker.close();
      });
    },
  };
}

function peerCertificateId(client: Client): string | undefined {
  const socket = client.conn as Partial<TLSSocket>;
  const raw =
    typeof socket.getPeerCertificate === "function" ? socket.getPeerCertificate(false)?.raw : undefined;
  return raw && raw.length > 0 ? certificateIdOf(raw) : undefined;
}

function refusal(reason: string): AuthenticateError {
  return Object.assign(new Error(reason), { returnCode: NOT_AUTHORIZED as AuthenticateError["returnCode"] });
}
