/**
 * The one DynamoDB table (releases, rollouts, audit). Its key shape comes from
 * functions/table-definition.ts, the same definition the local cloud uses, so both worlds agree.
 */
import { RemovalPolicy } from "aws-cdk-lib";
import * as dynamodb from "aws-cdk-lib/aws-dynamodb";
import { Construct } from "constructs";
import { TABLE_KEY_SCHEMA } from "../../functions/table-definition.ts";

export interface StateTableProps {
  readonly removalPolicy: RemovalPolicy;
  /**
   * Physical table name.
   * @default - a name CloudFormation generates
   */
  readonly tableName?: string;
}

export class StateTable extends Construct {
  readonly table: dynamodb.Table;

  constructor(scope: Construct, id: string, props: StateTableProps) {
    super(scope, id);
    const k = TABLE_KEY_SCHEMA;
    const string = dynamodb.AttributeType.STRING;
    this.table = new dynamodb.Table(this, "Table", {
      tableName: props.tableName,
      partitionKey: { name: k.partitionKey, type: string },
      sortKey: { name: k.sortKey, type: string },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      removalPolicy: props.removalPolicy,
      // A retained table also refuses a stray delete-table call; rollout history and audit live here.
      deletionProtection: props.removalPolicy === RemovalPolicy.RETAIN,
    });
    this.table.addGlobalSecondaryIndex({
      indexName: k.gsi1.name,
      partitionKey: { name: k.gsi1.partitionKey, type: string },
      sortKey: { name: k.gsi1.sortKey, type: string },
      projectionType: dynamodb.ProjectionType.ALL,
    });
  }
}
