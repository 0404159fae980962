/**
 * The default local MQTT broker: aedes in-process behind node:tls with mutual TLS, enforcing what AWS IoT
 * Core enforces for a Keel device (docs/architecture.md, device IoT policy):
 * - the TLS handshake needs a client certificate signed by the local CA (requestCert + rejectUnauthorized);
 * - CONNECT is refused unless the certificate is ACTIVE and attached to the thing named by the client id
 *   (DeviceAuthority.checkConnect, owned by the IoT registry);
 * - a device may publish and subscribe only under `$aws/things/<its thing>/jobs/` (deviceMayUseTopic);
 * - the service client (the IoT stand-in's own certificate) may use any topic.
 */
import { createServer, type Server, type TLSSocket } from "node:tls";
import { Aedes, type AuthenticateError, type Client } from "aedes";
import { certificateIdOf, type LocalCertificateAuthority, serviceClientOf } from "./ca.ts";
import type { DeviceAuthority, RunningBroker } from "./contracts.ts";
import { deviceMayUseTopic } from "./contracts.ts";
import { LocalServiceError } from "./errors.ts";
import { LOOPBACK } from "./ports.ts";

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
      if (!client || services.has(client) || deviceMayUseTopic(client.id, packet.topic)) return done(null);
      // As AWS IoT does for a policy violation, the publish is refused and aedes closes the connection.
      done(new Error(`client ${client.id} may not publish to ${packet.topic}`));
    },
    authorizeSubscribe(client, subscription, done) {
      if (services.has(client) || deviceMayUseTopic(client.id, subscription.topic)) {
        return done(null, subscription);
      }
      // A null subscription makes SUBACK carry the failure code (0x80) for that filter.
      done(null, null);
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
