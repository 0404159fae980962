/** The conformance suite against the stand-in on a plain in-process aedes broker (no TLS). */
import { defineConformanceSuite } from "./conformance.ts";
import { makePlainEnv } from "./helpers.ts";

defineConformanceSuite("plain aedes", makePlainEnv);
