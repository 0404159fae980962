/**
 * The one DynamoDB table (single-table design) shared by the functions, the CDK stack and the local cloud,
 * so all three create it the same way. Items: pk/sk strings; gsi1 for listings.
 */
export const TABLE_KEY_SCHEMA = {
  partitionKey: "pk",
  sortKey: "sk",
  gsi1: { name: "gsi1", partitionKey: "gsi1pk", sortKey: "gsi1sk" },
} as const;

/** CreateTable input for the local cloud (dynalite) and tests; infra/ mirrors it in CDK. */
export function createTableInput(tableName: string) {
  const k = TABLE_KEY_SCHEMA;
  return {
    TableName: tableName,
    BillingMode: "PAY_PER_REQUEST" as const,
    AttributeDefinitions: [
      { AttributeName: k.partitionKey, AttributeType: "S" as const },
      { AttributeName: k.sortKey, AttributeType: "S" as const },
      { AttributeName: k.gsi1.partitionKey, AttributeType: "S" as const },
      { AttributeName: k.gsi1.sortKey, AttributeType: "S" as const },
    ],
    KeySchema: [
      { AttributeName: k.partitionKey, KeyType: "HASH" as const },
      { AttributeName: k.sortKey, KeyType: "RANGE" as const },
    ],
    GlobalSecondaryIndexes: [
      {
        IndexName: k.gsi1.name,
        KeySchema: [
          { AttributeName: k.gsi1.partitionKey, KeyType: "HASH" as const },
          { AttributeName: k.gsi1.sortKey, KeyType: "RANGE" as const },
        ],
        Projection: { ProjectionType: "ALL" as const },
      },
    ],
  };
}
