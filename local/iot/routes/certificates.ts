/**
 * Control-plane routes for certificates and the principals attached to things.
 */
import { z } from "zod";
import { parseCsr } from "../../../core/csr.ts";
import { CsrError } from "../../../core/errors.ts";
import { certificateArn, parseCertificateArn } from "../arns.ts";
import { IotServiceError } from "../errors.ts";
import {
  type ControlPlaneDeps,
  input,
  optionalQuery,
  QueryBool,
  type Req,
  type Route,
  route,
  thingParam,
} from "./common.ts";

export function certificateRoutes(d: ControlPlaneDeps): Route[] {
  const { ctx, registry } = d;
  const principal = (r: Req): string => {
    const raw = r.headers["x-amzn-principal"];
    const arn = Array.isArray(raw) ? raw[0] : raw;
    const id = arn === undefined ? undefined : parseCertificateArn(ctx, arn);
    if (!id) {
      throw new IotServiceError(
        "InvalidRequestException",
        `principal must be a certificate ARN arn:aws:iot:${ctx.region}:${ctx.account}:cert/<certificateId>`,
      );
    }
    return id;
  };
  return [
    route("POST", "/keys-and-certificate", "CreateKeysAndCertificate", async (q) => {
      const active = optionalQuery(q.query, "setAsActive", QueryBool) ?? false;
      const issued = await d.ca.issueDeviceCertificate();
      const c = registry.addCertificate(issued, active);
      // The private key is returned once and never stored, as in AWS IoT.
      return {
        certificateArn: certificateArn(ctx, c.certificateId),
        certificateId: c.certificateId,
        certificatePem: issued.certificatePem,
        keyPair: { PublicKey: issued.publicKeyPem, PrivateKey: issued.privateKeyPem },
      };
    }),
    route("POST", "/certificates", "CreateCertificateFromCsr", async (q) => {
      // The length limit (4096) is core/aws-limits.ts's, checked before this runs; the content is ours.
      const b = input(z.object({ certificateSigningRequest: z.string() }), q.body, "request body");
      let publicKey: ReturnType<typeof parseCsr>["publicKey"];
      try {
        ({ publicKey } = parseCsr(b.certificateSigningRequest));
      } catch (err) {
        if (!(err instanceof CsrError)) throw err;
        throw new IotServiceError(
          "InvalidRequestException",
          `The certificate signing request is not valid: ${err.issues[0]?.message}`,
          { cause: err },
        );
      }
      const active = optionalQuery(q.query, "setAsActive", QueryBool) ?? false;
      // The certificate is for the CSR's key: only whoever holds that private key can use it.
      const issued = await d.ca.issueCertificateForKey(publicKey);
      const c = registry.addCertificate(issued, active);
      return {
        certificateArn: certificateArn(ctx, c.certificateId),
        certificateId: c.certificateId,
        certificatePem: issued.certificatePem,
      };
    }),
    route("PUT", "/things/{thingName}/principals", "AttachThingPrincipal", (q) => {
      registry.attachPrincipal(thingParam(q), principal(q));
      return {};
    }),
    route("DELETE", "/things/{thingName}/principals", "DetachThingPrincipal", (q) => {
      registry.detachPrincipal(thingParam(q), principal(q));
      return {};
    }),
    route("PUT", "/certificates/{certificateId}", "UpdateCertificate", (q) => {
      const id = input(z.string().regex(/^[0-9a-f]{64}$/), q.params.certificateId, "certificateId");
      const status = optionalQuery(q.query, "newStatus", z.enum(["ACTIVE", "INACTIVE", "REVOKED"]));
      if (!status) throw new IotServiceError("InvalidRequestException", "newStatus is required");
      registry.updateCertificate(id, status);
      return {};
    }),
  ];
}
