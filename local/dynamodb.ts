/**
 * Local DynamoDB: dynalite on 127.0.0.1, persistent under the data dir (LevelDB at `path`), with the one
 * table the functions use created from functions/table-definition.ts when it does not exist yet.
 */
import { createRequire } from "node:module";
import type { AddressInfo, Server } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import {
  CreateTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  ResourceInUseException,
} from "@aws-sdk/client-dynamodb";
import { createTableInput } from "../functions/table-definition.ts";
import { LOCAL_CREDENTIALS, LOCAL_REGION } from "./contracts.ts";
import { LocalServiceError } from "./errors.ts";
import { LOOPBACK } from "./ports.ts";

export interface LocalDynamoDb {
  /** http://127.0.0.1:PORT */
  readonly endpoint: string;
  stop(): Promise<void>;
}

type Dynalite = (options: Record<string, unknown>) => Server;
const dynalite = createRequire(import.meta.url)("dynalite") as Dynalite;

export async function startLocalDynamoDb(options: {
  path: string;
  table: string;
  port?: number;
}): Promise<LocalDynamoDb> {
  // Tables become ACTIVE at once: nothing local should wait half a second per table change.
  const server = dynalite({ path: options.path, createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  const port = await new Promise<number>((resolve, reject) => {
    server.once("error", (err) => reject(new LocalServiceError("dynalite", "cannot listen", { cause: err })));
    server.listen(options.port ?? 0, LOOPBACK, () => resolve((server.address() as AddressInfo).port));
  });
  const endpoint = `http://${LOOPBACK}:${port}`;
  const stop = () =>
    new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
  const client = new DynamoDBClient({ endpoint, region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS });
  try {
    await client.send(new CreateTableCommand(createTableInput(options.table)));
  } catch (err) {
    // Already there from an earlier start: the data dir kept it, with its items.
    if (!(err instanceof ResourceInUseException)) {
      await stop().catch(() => {});
      throw new LocalServiceError("dynalite", `cannot create table ${options.table}`, { cause: err });
    }
  }
  try {
    await untilActive(client, options.table);
  } catch (err) {
    await stop().catch(() => {});
    throw err;
  } finally {
    client.destroy();
  }
  return { endpoint, stop };
}

/**
 * dynalite turns a new table ACTIVE on the next tick (createTableMs 0). The SDK's waiter would sleep its
 * 20 s minimum delay if its first look came a moment too early, so poll briefly instead.
 */
async function untilActive(client: DynamoDBClient, table: string): Promise<void> {
  for (let attempt = 0; attempt < 500; attempt++) {
    const { Table } = await client.send(new DescribeTableCommand({ TableName: table }));
    if (Table?.TableStatus === "ACTIVE") return;
    await sleep(10);
  }
  throw new LocalServiceError("dynalite", `table ${table} did not become ACTIVE`);
}
