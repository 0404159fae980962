/**
 * AWS SDK clients built from the validated environment. In AWS the endpoints are unset and the default
 * credential chain applies; locally the wiring points them at s3rver, dynalite and the IoT stand-in.
 */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { IoTClient } from "@aws-sdk/client-iot";
import { S3Client } from "@aws-sdk/client-s3";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import type { Env } from "./env.ts";

export interface Clients {
  s3: S3Client;
  ddb: DynamoDBDocumentClient;
  iot: IoTClient;
}

export function createClients(env: Env): Clients {
  const credentials =
    env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY
      ? {
          accessKeyId: env.AWS_ACCESS_KEY_ID,
          secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
          ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}),
        }
      : undefined;
  const base = { region: env.AWS_REGION, ...(credentials ? { credentials } : {}) };
  return {
    // s3rver serves path-style URLs only.
    s3: new S3Client({
      ...base,
      ...(env.S3_ENDPOINT ? { endpoint: env.S3_ENDPOINT, forcePathStyle: true } : {}),
    }),
    ddb: DynamoDBDocumentClient.from(
      new DynamoDBClient({ ...base, ...(env.DYNAMODB_ENDPOINT ? { endpoint: env.DYNAMODB_ENDPOINT } : {}) }),
      { marshallOptions: { removeUndefinedValues: true } },
    ),
    iot: new IoTClient({ ...base, ...(env.IOT_ENDPOINT ? { endpoint: env.IOT_ENDPOINT } : {}) }),
  };
}

/** Options the local wiring passes to the handler factories: its scaled clock, and clients it closes. */
export interface HandlerOptions {
  now?: () => number;
  clients?: Clients;
  /** The tags of an IAM role, for enrolment allow-lists with tag rules (locally: the local IAM table). */
  roleTags?: RoleTagsLookup;
}

/** Tags of the role `roleName` in `account`; undefined when they cannot be known (the rule does not match). */
export type RoleTagsLookup = (
  account: string,
  roleName: string,
) => Promise<Record<string, string> | undefined>;

export function destroyClients(c: Clients): void {
  c.s3.destroy();
  c.ddb.destroy();
  c.iot.destroy();
}
