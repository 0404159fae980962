/** The register-release Lambda as a factory over its environment, so the local wiring can build it too. */
import { z } from "zod";
import { parseWith } from "../../core/parse.ts";
import { createClients, type HandlerOptions } from "../clients.ts";
import type { Env } from "../env.ts";
import { createLogger, errorFields } from "../log.ts";
import { Store } from "../store.ts";
import { registerRelease } from "./register.ts";

/** The parts of an S3 event notification we use (S3 event message structure, version 2.x). */
export const S3EventSchema = z.object({
  Records: z.array(
    z.object({
      eventName: z.string(),
      s3: z.object({
        bucket: z.object({ name: z.string() }),
        object: z.object({ key: z.string(), size: z.number().optional() }),
      }),
    }),
  ),
});

/** S3 event keys are URL-encoded with `+` for spaces. */
export const decodeS3Key = (key: string) => decodeURIComponent(key.replace(/\+/g, " "));

export function createRegisterReleaseHandler(env: Env, options: HandlerOptions = {}) {
  const { s3, ddb } = options.clients ?? createClients(env);
  const log = createLogger("register-release", env.LOG_LEVEL);
  const deps = {
    s3,
    store: new Store(ddb, env.TABLE_NAME),
    bucket: env.BUCKET_NAME,
    now: options.now ?? Date.now,
    log,
  };
  return async (event: unknown) => {
    const parsed = parseWith(S3EventSchema, event, "S3 event");
    const results = [];
    for (const r of parsed.Records) {
      if (!r.eventName.startsWith("ObjectCreated:")) continue;
      if (r.s3.bucket.name !== env.BUCKET_NAME) {
        log.warn("event for another bucket", { bucket: r.s3.bucket.name });
        continue;
      }
      try {
        results.push(await registerRelease(deps, decodeS3Key(r.s3.object.key)));
      } catch (err) {
        log.error("register-release failed", { key: r.s3.object.key, ...errorFields(err) });
        throw err;
      }
    }
    return {
      registered: results.filter((x) => x !== null).map((x) => ({ version: x.version, status: x.status })),
    };
  };
}
