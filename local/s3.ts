/**
 * Local S3: s3rver on 127.0.0.1, objects under the data dir (kept across restarts), the release bucket
 * created at start, and S3's ObjectCreated notifications (Put, Post, multipart completion, Copy) exposed as
 * an in-process event — the trigger the local Lambda wiring turns into register-release invocations.
 */
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import { z } from "zod";
import { LOCAL_CREDENTIALS } from "./contracts.ts";
import { LocalServiceError } from "./errors.ts";
import { LOOPBACK } from "./ports.ts";

/** The key is the object key itself (AWS URL-encodes it in notifications; the local wiring passes it on as is). */
export interface ObjectCreated {
  bucket: string;
  key: string;
  size: number;
}

export interface LocalS3 {
  /** http://127.0.0.1:PORT (use forcePathStyle with the SDK). */
  readonly endpoint: string;
  onObjectCreated(listener: (e: ObjectCreated) => void): () => void;
  stop(): Promise<void>;
}

/** The parts of s3rver 3.x we use (it ships no types). */
interface S3rverInstance {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
  on(event: "event", listener: (e: unknown) => void): void;
}
type S3rverCtor = new (options: Record<string, unknown>) => S3rverInstance;

const require = createRequire(import.meta.url);
const S3rver = require("s3rver") as S3rverCtor;
const { DUMMY_ACCOUNT } = require("s3rver/lib/models/account") as {
  DUMMY_ACCOUNT: { createKeyPair(accessKeyId: string, secretAccessKey: string): void };
};
// s3rver knows one hard-coded key pair (S3RVER/S3RVER); teach it the one every local client signs with.
DUMMY_ACCOUNT.createKeyPair(LOCAL_CREDENTIALS.accessKeyId, LOCAL_CREDENTIALS.secretAccessKey);

export async function startLocalS3(options: {
  directory: string;
  buckets: string[];
  port?: number;
}): Promise<LocalS3> {
  const server = new S3rver({
    address: LOOPBACK,
    port: options.port ?? 0,
    silent: true,
    directory: options.directory,
    // Idempotent: an existing bucket and its objects are kept.
    configureBuckets: options.buckets.map((name) => ({ name })),
    // No virtual-host bucket routing: every client uses path style against 127.0.0.1.
    vhostBuckets: false,
  });
  const listeners = new Set<(e: ObjectCreated) => void>();
  server.on("event", (event) => {
    const created = objectCreated(event);
    if (!created) return;
    for (const l of listeners) l(created);
  });
  let address: AddressInfo;
  try {
    address = await server.run();
  } catch (err) {
    throw new LocalServiceError("s3rver", `cannot start on ${LOOPBACK}:${options.port ?? 0}`, { cause: err });
  }
  return {
    endpoint: `http://${LOOPBACK}:${address.port}`,
    onObjectCreated(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async stop() {
      listeners.clear();
      await server.close();
    },
  };
}

/** The part of an S3 event notification record (as s3rver emits them) that we pass on. */
const S3EventSchema = z.object({
  Records: z
    .array(
      z.object({
        eventName: z.string(),
        s3: z.object({
          bucket: z.object({ name: z.string() }),
          object: z.object({ key: z.string(), size: z.coerce.number().nonnegative().optional() }),
        }),
      }),
    )
    .min(1),
});

/** s3rver emits S3 event notifications ({ Records: [...] }); keep the ObjectCreated ones. */
function objectCreated(event: unknown): ObjectCreated | undefined {
  const parsed = S3EventSchema.safeParse(event);
  const record = parsed.success ? parsed.data.Records[0] : undefined;
  if (!record?.eventName.startsWith("ObjectCreated:")) return undefined;
  return { bucket: record.s3.bucket.name, key: record.s3.object.key, size: record.s3.object.size ?? 0 };
}
