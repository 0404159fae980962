/**
 * Which AWS API calls a function makes, read from the code that is actually bundled: esbuild resolves
 * the handler's import graph (as NodejsFunction does), and every `XxxCommand` imported from an AWS SDK
 * client in those files is one call the function's role must allow.
 */
import { readFileSync } from "node:fs";
import * as esbuild from "esbuild";

export interface SdkCall {
  readonly client: string;
  readonly command: string;
  readonly file: string;
}

const IMPORT = /import\s*\{([^}]*)\}\s*from\s*["'](@aws-sdk\/[^"']+)["']/g;

export async function sdkCallsOf(entry: string): Promise<SdkCall[]> {
  const result = await esbuild.build({
    entryPoints: [entry],
    bundle: true,
    write: false,
    metafile: true,
    packages: "external",
    platform: "node",
    format: "esm",
    logLevel: "silent",
  });
  const calls: SdkCall[] = [];
  for (const file of Object.keys(result.metafile.inputs)) {
    for (const m of readFileSync(file, "utf8").matchAll(IMPORT)) {
      const [, names = "", client = ""] = m;
      for (const raw of names.split(",")) {
        const name = raw.trim();
        // `type XCommandOutput` and the like carry no call.
        if (name.startsWith("type ") || !name.endsWith("Command")) continue;
        calls.push({ client, command: name.replace(/ as .*$/, "").replace(/Command$/, ""), file });
      }
    }
  }
  return calls;
}

/** DynamoDB document-client commands → the IAM action DynamoDB authorizes them with. */
const DYNAMODB_DOC: Record<string, string[]> = {
  Get: ["dynamodb:GetItem"],
  Put: ["dynamodb:PutItem"],
  Update: ["dynamodb:UpdateItem"],
  Delete: ["dynamodb:DeleteItem"],
  Query: ["dynamodb:Query"],
  Scan: ["dynamodb:Scan"],
  BatchGet: ["dynamodb:BatchGetItem"],
  BatchWrite: ["dynamodb:BatchWriteItem"],
  // Transactions are authorized per item action (DynamoDB developer guide, "IAM with transactions").
  TransactWrite: [
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:ConditionCheckItem",
  ],
  TransactGet: ["dynamodb:GetItem"],
};

/** S3 commands → IAM actions (HeadObject is authorized as GetObject, ListObjectsV2 as ListBucket). */
const S3: Record<string, string[]> = {
  GetObject: ["s3:GetObject"],
  HeadObject: ["s3:GetObject"],
  ListObjectsV2: ["s3:ListBucket"],
  PutObject: ["s3:PutObject"],
};

/** The IAM actions a call needs; throws for a call this table does not know yet (add it here). */
export function iamActionsFor(call: SdkCall): string[] {
  const known =
    call.client === "@aws-sdk/client-iot"
      ? [`iot:${call.command}`]
      : call.client === "@aws-sdk/lib-dynamodb"
        ? DYNAMODB_DOC[call.command]
        : call.client === "@aws-sdk/client-s3"
          ? S3[call.command]
          : call.client === "@aws-sdk/client-dynamodb"
            ? [`dynamodb:${call.command}`]
            : undefined;
  if (!known)
    throw new Error(`no IAM mapping for ${call.client} ${call.command}Command (used in ${call.file})`);
  return known;
}
