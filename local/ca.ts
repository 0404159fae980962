/**
 * The local certificate authority: what AWS IoT Core's CreateKeysAndCertificate does, on one machine. One CA
 * (EC P-256) per `.keel/ca/` directory, created on first use and reused on every later start so that device
 * certificates issued before a restart stay valid. It also issues the TLS server certificate the brokers
 * present (127.0.0.1 and localhost) and the client certificate of the privileged service (the IoT stand-in).
 *
 * Keys and certificates are made in-process (node:crypto keys and signatures, local/x509.ts encoding): no child
 * process per device, so registering a 1,000-device fleet costs about a millisecond per certificate, not a fork
 * of openssl each.
 */
import {
  createHash,
  createPrivateKey,
  generateKeyPair,
  type KeyObject,
  randomBytes,
  X509Certificate,
} from "node:crypto";
import { appendFile, mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { z } from "zod";
import { parseJsonText, parseWith } from "../core/parse.ts";
import type { CertificateAuthority, IssuedCertificate } from "./contracts.ts";
import { LocalCaError } from "./errors.ts";
import { buildCertificate, buildCrl, type DistinguishedName, derToPem, publicKeyOf } from "./x509.ts";

const generateEcKeyPair = promisify(generateKeyPair);
/** Long enough that no local setup ever sees one expire (AWS IoT device certificates run to 2049). */
const VALIDITY_YEARS = 25;
const CA_NAME: DistinguishedName = { commonName: "Keel Local CA", organization: "Keel" };
/** Whoever holds this certificate is the IoT service itself: brokers let it publish and subscribe anywhere. */
export const SERVICE_COMMON_NAME = "keel-iot-service";
/** The MQTT client id the service connects with (AWS IoT's own service is not a client; ours is). */
export const SERVICE_CLIENT_ID = "keel-iot-service";

export interface TlsIdentity {
  cert: string;
  key: string;
}

export interface LocalCertificateAuthority extends CertificateAuthority {
  readonly dir: string;
  /** Presented by the brokers; valid for 127.0.0.1 and localhost. */
  readonly server: TlsIdentity;
  /** The privileged client (the IoT stand-in); brokers recognise it by `certificateId`. */
  readonly serviceClient: TlsIdentity & { certificateId: string; commonName: string };
  /**
   * The subject CN of a certificate this CA issued. Each device certificate gets a unique CN so that a broker
   * that names clients by certificate subject (mosquitto's use_identity_as_username) can tell them apart.
   */
  commonNameOf(certificateId: string): string | undefined;
  /** Ids of every device certificate this CA has issued (the service and server certificates excluded). */
  issuedCertificateIds(): string[];
  /**
   * A CRL (PEM) revoking the given certificates, so a TLS server that checks it refuses them at the
   * handshake. Ids this CA did not issue are ignored.
   */
  revocationList(revokedCertificateIds: Iterable<string>): string;
}

/** What a broker hands the IoT stand-in so it can connect as the privileged service (RunningBroker.serviceClient). */
export function serviceClientOf(ca: Pick<LocalCertificateAuthority, "caCertPem" | "serviceClient">): {
  cert: string;
  key: string;
  ca: string;
  clientId: string;
} {
  return {
    cert: ca.serviceClient.cert,
    key: ca.serviceClient.key,
    ca: ca.caCertPem,
    clientId: SERVICE_CLIENT_ID,
  };
}

/** AWS IoT's certificate id: lower-case hex SHA-256 of the certificate's DER bytes. */
export function certificateIdOf(der: Uint8Array): string {
  return createHash("sha256").update(der).digest("hex");
}

/** The certificate id of a PEM certificate. */
export function certificateIdOfPem(pem: string): string {
  return certificateIdOf(new X509Certificate(pem).raw);
}

const IssuedLine = z.object({
  certificateId: z.string().regex(/^[0-9a-f]{64}$/),
  commonName: z.string().min(1),
  serial: z.string().regex(/^[0-9a-f]+$/),
});
type IssuedLine = z.infer<typeof IssuedLine>;

const FILES = {
  caKey: "ca.key.pem",
  caCert: "ca.cert.pem",
  serverKey: "server.key.pem",
  serverCert: "server.cert.pem",
  serviceKey: "service.key.pem",
  serviceCert: "service.cert.pem",
  /** One JSON line per issued device certificate: certificateId, subject CN, serial. */
  issued: "issued.jsonl",
} as const;

/** Opens the CA in `dir`, creating it (and the server and service identities) the first time. */
export async function openCertificateAuthority(dir: string): Promise<LocalCertificateAuthority> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new LocalCaError(dir, "cannot create the directory", { cause: err });
  }
  const root = await loadOrCreateRoot(dir);
  const server = await loadOrCreateLeaf(dir, root, FILES.serverKey, FILES.serverCert, "server");
  const service = await loadOrCreateLeaf(dir, root, FILES.serviceKey, FILES.serviceCert, "service");
  const issued = await loadIssued(dir);
  const serviceCertificateId = certificateIdOfPem(service.cert);

  return {
    dir,
    caCertPem: root.certPem,
    caFile: join(dir, FILES.caCert),
    server,
    serviceClient: { ...service, certificateId: serviceCertificateId, commonName: SERVICE_COMMON_NAME },
    commonNameOf: (certificateId) =>
      certificateId === serviceCertificateId ? SERVICE_COMMON_NAME : issued.get(certificateId)?.commonName,
    issuedCertificateIds: () => [...issued.keys()],
    revocationList(revokedCertificateIds) {
      const now = new Date();
      const revoked = [];
      for (const id of revokedCertificateIds) {
        const entry = issued.get(id);
        if (entry) revoked.push({ serial: Buffer.from(entry.serial, "hex"), date: now });
      }
      const { notBefore, notAfter } = validity();
      const der = buildCrl({
        issuer: CA_NAME,
        signingKey: root.key,
        thisUpdate: notBefore,
        nextUpdate: notAfter,
        revoked,
      });
      return derToPem("X509 CRL", der);
    },
    async issueDeviceCertificate(): Promise<IssuedCertificate> {
      const { privateKey, publicKey } = await generateEcKeyPair("ec", { namedCurve: "P-256" });
      const cert = await issueDevice(publicKey);
      return {
        ...cert,
        privateKeyPem: exportKeyPem(privateKey),
        publicKeyPem: publicKey.export({ format: "pem", type: "spki" }).toString(),
      };
    },
    issueCertificateForKey: (publicKey) => issueDevice(publicKey),
  };

  /** A device certificate for `publicKey`, recorded in issued.jsonl (so CRLs and brokers know its CN). */
  async function issueDevice(
    publicKey: KeyObject,
  ): Promise<{ certificateId: string; certificatePem: string }> {
    // Unique and unguessable, so it can name the client in a broker's config without colliding.
    const commonName = `keel-device-${randomBytes(12).toString("hex")}`;
    const leaf = issueLeafFor(root, publicKey, commonName, "client");
    const certificateId = certificateIdOf(leaf.der);
    const entry: IssuedLine = {
      certificateId,
      commonName,
      serial: Buffer.from(leaf.serial).toString("hex"),
    };
    try {
      await appendFile(join(dir, FILES.issued), `${JSON.stringify(entry)}\n`);
    } catch (err) {
      throw new LocalCaError(dir, `cannot record issued certificate ${certificateId}`, { cause: err });
    }
    issued.set(certificateId, entry);
    return { certificateId, certificatePem: leaf.cert };
  }
}

interface Root {
  certPem: string;
  key: KeyObject;
  publicKey: KeyObject;
}

async function loadOrCreateRoot(dir: string): Promise<Root> {
  const existing = await readPair(dir, FILES.caKey, FILES.caCert);
  if (existing) {
    const key = importKey(dir, existing.key);
    return { certPem: existing.cert, key, publicKey: publicKeyOf(key) };
  }
  const { privateKey, publicKey } = await generateEcKeyPair("ec", { namedCurve: "P-256" });
  const { notBefore, notAfter } = validity();
  const der = buildCertificate({
    serial: serial(),
    subject: CA_NAME,
    issuer: CA_NAME,
    notBefore,
    notAfter,
    publicKey,
    issuerPublicKey: publicKey,
    signingKey: privateKey,
    role: "ca",
  });
  const certPem = derToPem("CERTIFICATE", der);
  // Key first, certificate last: a crash in between leaves no certificate without its key.
  await writeAtomic(dir, FILES.caKey, exportKeyPem(privateKey), 0o600);
  await writeAtomic(dir, FILES.caCert, certPem, 0o644);
  return { certPem, key: privateKey, publicKey };
}

async function loadOrCreateLeaf(
  dir: string,
  root: Root,
  keyFile: string,
  certFile: string,
  kind: "server" | "service",
): Promise<TlsIdentity> {
  const existing = await readPair(dir, keyFile, certFile);
  if (existing) return existing;
  const leaf =
    kind === "server"
      ? await issueLeaf(root, "localhost", "server")
      : await issueLeaf(root, SERVICE_COMMON_NAME, "client");
  await writeAtomic(dir, keyFile, leaf.key, 0o600);
  await writeAtomic(dir, certFile, leaf.cert, 0o644);
  return { cert: leaf.cert, key: leaf.key };
}

async function issueLeaf(
  root: Root,
  commonName: string,
  role: "server" | "client",
): Promise<{ cert: string; key: string }> {
  const { privateKey, publicKey } = await generateEcKeyPair("ec", { namedCurve: "P-256" });
  return { ...issueLeafFor(root, publicKey, commonName, role), key: exportKeyPem(privateKey) };
}

/** A leaf for a key made elsewhere: here, or on a node that sent only its CSR (CreateCertificateFromCsr). */
function issueLeafFor(
  root: Root,
  publicKey: KeyObject,
  commonName: string,
  role: "server" | "client",
): { cert: string; der: Uint8Array; serial: Uint8Array } {
  const { notBefore, notAfter } = validity();
  const serialNumber = serial();
  const der = buildCertificate({
    serial: serialNumber,
    subject: { commonName },
    issuer: CA_NAME,
    notBefore,
    notAfter,
    publicKey,
    issuerPublicKey: root.publicKey,
    signingKey: root.key,
    role,
    ...(role === "server" ? { altNames: { dns: ["localhost"], ip: ["127.0.0.1"] } } : {}),
  });
  return { cert: derToPem("CERTIFICATE", der), der, serial: serialNumber };
}

async function readPair(dir: string, keyFile: string, certFile: string): Promise<TlsIdentity | undefined> {
  const [key, cert] = await Promise.all([
    readOptional(join(dir, keyFile)),
    readOptional(join(dir, certFile)),
  ]);
  if (key === undefined && cert === undefined) return undefined;
  if (key === undefined || cert === undefined) {
    throw new LocalCaError(
      dir,
      `${key === undefined ? keyFile : certFile} is missing while ${key === undefined ? certFile : keyFile} exists; ` +
        "remove both to issue a new pair (certificates issued from the old one stop working)",
    );
  }
  try {
    new X509Certificate(cert);
  } catch (err) {
    throw new LocalCaError(dir, `${certFile} is not a PEM certificate`, { cause: err });
  }
  return { key, cert };
}

async function loadIssued(dir: string): Promise<Map<string, IssuedLine>> {
  const text = (await readOptional(join(dir, FILES.issued))) ?? "";
  const issued = new Map<string, IssuedLine>();
  const lines = text.split("\n");
  // A last line without its newline is an append torn by a crash: that certificate was never handed out.
  lines.pop();
  for (const [i, line] of lines.entries()) {
    if (!line.trim()) continue;
    const what = `${join(dir, FILES.issued)} line ${i + 1}`;
    const entry = parseWith(IssuedLine, parseJsonText(line, what), what);
    issued.set(entry.certificateId, entry);
  }
  return issued;
}

function importKey(dir: string, keyPem: string): KeyObject {
  try {
    const key = createPrivateKey(keyPem);
    if (key.asymmetricKeyType !== "ec") throw new Error(`key type is ${key.asymmetricKeyType}`);
    return key;
  } catch (err) {
    throw new LocalCaError(dir, `${FILES.caKey} is not an EC private key`, { cause: err });
  }
}

function exportKeyPem(key: KeyObject): string {
  return key.export({ format: "pem", type: "pkcs8" }).toString();
}

function serial(): Uint8Array {
  const bytes = randomBytes(16);
  // Serial numbers are positive, at most 20 octets and unique per CA (RFC 5280 §4.1.2.2): 15 random octets
  // under a non-zero first octet.
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x01;
  return bytes;
}

function validity(): { notBefore: Date; notAfter: Date } {
  const now = Date.now();
  // An hour of slack so that a certificate is valid at once even if clocks differ slightly.
  const notBefore = new Date(now - 3600_000);
  const notAfter = new Date(now);
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + VALIDITY_YEARS);
  return { notBefore, notAfter };
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    if (err instanceof Error && "code" in err && err.code === "ENOENT") return undefined;
    throw err;
  }
}

async function writeAtomic(dir: string, file: string, content: string, mode: number): Promise<void> {
  const path = join(dir, file);
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    await writeFile(tmp, content, { mode });
    await rename(tmp, path);
  } catch (err) {
    throw new LocalCaError(dir, `cannot write ${file}`, { cause: err });
  }
}
