/**
 * The local CA: certificate ids as AWS IoT computes them, chains that node's TLS and OpenSSL (mosquitto's
 * library) accept, a server certificate for 127.0.0.1, reuse across restarts, and CRLs OpenSSL honours.
 */
import { execFile } from "node:child_process";
import { createHash, createPrivateKey, X509Certificate } from "node:crypto";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  certificateIdOfPem,
  type LocalCertificateAuthority,
  openCertificateAuthority,
} from "../../local/ca.ts";
import { LocalCaError } from "../../local/errors.ts";
import { tempDir } from "./helpers.ts";

const run = promisify(execFile);

describe("local CA", () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let ca: LocalCertificateAuthority;

  beforeAll(async () => {
    dir = await tempDir("ca");
    ca = await openCertificateAuthority(join(dir.path, "ca"));
  });
  afterAll(() => dir?.remove());

  it("issues a device certificate whose id is the SHA-256 of its DER, signed by the CA, with its EC key", async () => {
    const issued = await ca.issueDeviceCertificate();
    const cert = new X509Certificate(issued.certificatePem);
    expect(issued.certificateId).toBe(createHash("sha256").update(cert.raw).digest("hex"));
    expect(issued.certificateId).toMatch(/^[0-9a-f]{64}$/);
    expect(cert.verify(new X509Certificate(ca.caCertPem).publicKey)).toBe(true);
    expect(cert.checkPrivateKey(createPrivateKey(issued.privateKeyPem))).toBe(true);
    expect(cert.publicKey.export({ format: "pem", type: "spki" })).toBe(issued.publicKeyPem);
    expect(cert.publicKey.asymmetricKeyDetails?.namedCurve).toBe("prime256v1");
    expect(cert.ca).toBe(false);
    expect(ca.commonNameOf(issued.certificateId)).toBe(cert.subject.replace(/^CN=/, ""));
  });

  it("gives every device certificate its own subject CN and id", async () => {
    const a = await ca.issueDeviceCertificate();
    const b = await ca.issueDeviceCertificate();
    expect(a.certificateId).not.toBe(b.certificateId);
    expect(ca.commonNameOf(a.certificateId)).not.toBe(ca.commonNameOf(b.certificateId));
  });

  it("issues chains OpenSSL verifies for their purpose: client for devices and service, server for 127.0.0.1", async () => {
    const issued = await ca.issueDeviceCertificate();
    const files = {
      dev: join(dir.path, "dev.pem"),
      server: join(dir.path, "server.pem"),
      service: join(dir.path, "svc.pem"),
    };
    await writeFile(files.dev, issued.certificatePem);
    await writeFile(files.server, ca.server.cert);
    await writeFile(files.service, ca.serviceClient.cert);
    await run("openssl", ["verify", "-CAfile", ca.caFile, "-purpose", "sslclient", files.dev, files.service]);
    await run("openssl", [
      "verify",
      "-CAfile",
      ca.caFile,
      "-purpose",
      "sslserver",
      "-verify_ip",
      "127.0.0.1",
      files.server,
    ]);
    expect(new X509Certificate(ca.server.cert).checkHost("localhost")).toBe("localhost");
    expect(ca.serviceClient.certificateId).toBe(certificateIdOfPem(ca.serviceClient.cert));
  });

  it("writes CRLs that OpenSSL honours: revoked certificates fail, others pass", async () => {
    const revoked = await ca.issueDeviceCertificate();
    const kept = await ca.issueDeviceCertificate();
    const crl = join(dir.path, "crl.pem");
    await writeFile(crl, ca.revocationList([revoked.certificateId, "f".repeat(64)]));
    await writeFile(join(dir.path, "revoked.pem"), revoked.certificatePem);
    await writeFile(join(dir.path, "kept.pem"), kept.certificatePem);
    const verify = (file: string) =>
      run("openssl", ["verify", "-crl_check", "-CAfile", ca.caFile, "-CRLfile", crl, join(dir.path, file)]);
    await verify("kept.pem");
    await expect(verify("revoked.pem")).rejects.toThrow(/revoked/);
  });

  it("reuses the CA, the server and service identities and the issued records when reopened", async () => {
    const issued = await ca.issueDeviceCertificate();
    const again = await openCertificateAuthority(ca.dir);
    expect(again.caCertPem).toBe(ca.caCertPem);
    expect(again.server).toEqual(ca.server);
    expect(again.serviceClient).toEqual(ca.serviceClient);
    expect(again.commonNameOf(issued.certificateId)).toBe(ca.commonNameOf(issued.certificateId));
    expect(again.issuedCertificateIds()).toContain(issued.certificateId);
  });

  it("refuses a CA directory whose key is missing instead of silently issuing a new CA", async () => {
    const broken = join(dir.path, "broken");
    await openCertificateAuthority(broken);
    await rm(join(broken, "ca.key.pem"));
    await expect(openCertificateAuthority(broken)).rejects.toThrow(LocalCaError);
    await expect(openCertificateAuthority(broken)).rejects.toThrow(/ca.key.pem is missing/);
  });
});
