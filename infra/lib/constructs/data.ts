// The deployment's data: the KMS key, the DynamoDB table and the app secret (OAuth client secret and
// state signing key). All three outlive the stack (RETAIN), or are taken back from an earlier one.
import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { RegionConfig } from '../config';
import { acknowledge } from '../nag';
import { arn, logGroupPrefix } from './common';

/** The sparse index the keep-alive sweep pages connections through (shared/src/store/dynamo/mod.rs). */
export const SWEEP_INDEX = 'sweep';

export class Data {
  readonly key: kms.IKey;
  readonly table: dynamodb.ITable;
  readonly appSecretName: string;
  readonly appSecretArn: string;

  /** Resources go into `stack`'s own scope (see common.ts: logical ids). */
  constructor(stack: Stack, config: RegionConfig) {
    this.key = buildKey(stack, config);

    const cfg = config;
    if (cfg.existingTableName) {
      // A kept table must carry the `sweep` index already (README: tear-down and rebuild).
      this.table = dynamodb.Table.fromTableAttributes(stack, 'Table', {
        tableName: cfg.existingTableName,
        encryptionKey: this.key,
        globalIndexes: [SWEEP_INDEX],
      });
    } else {
      const table = new dynamodb.Table(stack, 'Table', {
        partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
        sortKey: { name: 'sk', type: dynamodb.AttributeType.STRING },
        billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
        pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
        deletionProtection: true,
        encryption: dynamodb.TableEncryption.CUSTOMER_MANAGED,
        encryptionKey: this.key,
        timeToLiveAttribute: 'ttl',
        removalPolicy: RemovalPolicy.RETAIN,
      });
      // The keep-alive sweep's sparse index: only connection items carry its keys
      // (shared/src/store/dynamo/mod.rs), so it pages every tenant's connections without a scan.
      table.addGlobalSecondaryIndex({
        indexName: SWEEP_INDEX,
        partitionKey: { name: 'sweep_pk', type: dynamodb.AttributeType.STRING },
        sortKey: { name: 'sweep_sk', type: dynamodb.AttributeType.STRING },
        projectionType: dynamodb.ProjectionType.ALL,
      });
      this.table = table;
    }

    // The app secret: {"client_secret": <from Atlassian's developer console>, "state_signing_key":
    // <base64, >= 32 bytes>}. The stack generates the signing key (64 base64-alphabet characters =
    // 48 bytes) and leaves client_secret empty for the operator to fill (README: Deploy).
    if (cfg.oauthClientSecretName) {
      // Taken by name: Secrets Manager appends 6 random characters to a secret's ARN.
      this.appSecretName = cfg.oauthClientSecretName;
      this.appSecretArn = arn(stack, 'secretsmanager', `secret:${cfg.oauthClientSecretName}-??????`);
    } else {
      this.appSecretName = `${cfg.secretPrefix}app/oauth-client`;
      const secret = new secretsmanager.Secret(stack, 'OAuthClientSecret', {
        secretName: this.appSecretName,
        description: `${cfg.deploymentName}: Atlassian OAuth 2.0 (3LO) client secret and the OAuth state signing key`,
        encryptionKey: this.key,
        generateSecretString: {
          secretStringTemplate: JSON.stringify({ client_secret: '' }),
          generateStringKey: 'state_signing_key',
          passwordLength: 64,
          excludePunctuation: true,
          includeSpace: false,
        },
        // Kept on tear-down like the table; a rebuild takes it back by name (oauthClientSecretName).
        removalPolicy: RemovalPolicy.RETAIN,
      });
      acknowledge(secret, 'AwsSolutions-SMG4', 'The OAuth client secret is issued and rotated in Atlassian\'s ' +
        'developer console, by a person; there is nothing a rotation Lambda could call. The operator stores the new ' +
        'value (README: rotate the OAuth client secret). The state signing key only signs 10-minute OAuth states.');
      this.appSecretArn = secret.secretArn;
    }
  }
}

function buildKey(stack: Stack, cfg: RegionConfig): kms.IKey {
  if (cfg.existingKmsKeyArn) {
    // A key kept from an earlier deployment: its policy (below) came with it.
    return kms.Key.fromKeyArn(stack, 'Key', cfg.existingKmsKeyArn);
  }
  const key = new kms.Key(stack, 'Key', {
    description: `${cfg.deploymentName}: tenant credentials (Secrets Manager), table, logs, queues`,
    alias: `alias/${cfg.deploymentName}`,
    enableKeyRotation: true,
    pendingWindow: Duration.days(30),
    // The table and the tenants' secrets are encrypted with it: it outlives the stack.
    removalPolicy: RemovalPolicy.RETAIN,
  });
  // CloudWatch Logs encrypts this deployment's log groups with the key, and no other log group of
  // the account (their names all start with the deployment's prefix, see logGroup()).
  key.addToResourcePolicy(new iam.PolicyStatement({
    sid: 'CloudWatchLogsForThisDeploymentsLogGroups',
    principals: [new iam.ServicePrincipal(`logs.${stack.region}.amazonaws.com`)],
    actions: ['kms:Encrypt', 'kms:Decrypt', 'kms:ReEncryptFrom', 'kms:ReEncryptTo', 'kms:GenerateDataKey',
      'kms:GenerateDataKeyWithoutPlaintext', 'kms:DescribeKey'],
    resources: ['*'],
    conditions: {
      ArnLike: { 'kms:EncryptionContext:aws:logs:arn': arn(stack, 'logs', `log-group:${logGroupPrefix(cfg)}*`) },
    },
  }));
  // EventBridge writes undeliverable events to the (encrypted) dead-letter queues.
  key.addToResourcePolicy(new iam.PolicyStatement({
    sid: 'EventBridgeRulesOfThisBusToDeadLetterQueues',
    principals: [new iam.ServicePrincipal('events.amazonaws.com')],
    actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
    resources: ['*'],
    conditions: {
      ArnLike: { 'aws:SourceArn': arn(stack, 'events', `rule/${cfg.eventBusName}/*`) },
    },
  }));
  return key;
}
