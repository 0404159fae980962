/**
 * The IoT Jobs conformance suite (test/local/iot/conformance.ts) through startLocalCloud with aedes: devices
 * over mutual TLS with their own certificates (CreateKeysAndCertificate + AttachThingPrincipal), observers
 * with the service identity, and restarts of the whole local cloud on the same directory.
 */

import { makeCloudEnv } from "../cloud-env.ts";
import { defineConformanceSuite } from "./conformance.ts";

defineConformanceSuite("local cloud, aedes over mutual TLS", () => makeCloudEnv("aedes"));
