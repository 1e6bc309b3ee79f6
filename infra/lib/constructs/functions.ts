// The functions: one execution role each (its own log group, the table, the app secret, the
// tenants' secrets, the key only through Secrets Manager and DynamoDB), in the private subnets, with
// the environment shared/env.json lists for them. Event consumers get a dead-letter queue and
// Lambda's async retry policy.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Duration, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as destinations from 'aws-cdk-lib/aws-lambda-destinations';
import { ConfigError, EVENT_PUBLISHERS, FUNCTIONS, FunctionName, JOB_RUNNERS, RegionConfig } from '../config';
import { checkEnvironment, loadEnvList } from '../env';
import { acknowledge } from '../nag';
import { arn, logGroup, metricsNamespace, pascal } from './common';
import { Data, SWEEP_INDEX } from './data';
import { Events } from './events';
import { Network } from './network';

/** Lambda timeouts. API Gateway HTTP APIs end an integration after 30 s (a hard limit), so Lambda
 *  ends the HTTP-only functions at 29 s: no invocation outlives the caller who got an error. The two
 *  functions that also consume events get longer: a report page (parent lookup, create-or-update,
 *  PDF upload) or 50 issues in bulk may wait out Atlassian 429s; an HTTP call to them still ends
 *  at 30 s at the gateway, while the function finishes and records the result (idempotent). */
export const TIMEOUT_SECONDS: Record<FunctionName, number> = {
  'oauth-callback': 29,
  connections: 29,
  discovery: 29,
  'publish-page': 120,
  'create-issue': 120,
  // The keep-alive sweep runs a slice of the day's round for up to five minutes each hour (each
  // connection's check takes at most 30 s; eight run at once): see README "Keep-alive sweep".
  'keep-alive': 300,
  // The issue sync visits tenants for up to five minutes every five minutes (each visit at most
  // 60 s, eight at once), resuming where the last run stopped: see README "Issue sync".
  'issue-sync': 300,
  // Jira's webhook deliveries: verify, look up, record; Jira waits for the answer and retries a failure.
  'issue-webhook': 29,
  // Connect lifecycle callbacks and Forge Remote invocations: Forge ends an invocation after 25 s
  // (events after 5 s), so nothing here may outlive it; long work goes to the event bus.
  'app-lifecycle': 25,
};

/** Functions that register, refresh or receive Jira's dynamic webhooks (shared/env.json). */
const WEBHOOK_USERS: readonly FunctionName[] = ['oauth-callback', 'connections', 'keep-alive', 'issue-webhook'];

/** The fonts layer (a directory in functionsDir that `make package` fills): the CJK font collection
 *  publish-page's PDF summaries draw Chinese, Japanese and Korean with, 19 MB, too large for the
 *  function's zip (README "Fonts and scripts"). Lambda extracts a layer into /opt. */
export const FONTS_LAYER_DIR = 'fonts-layer';
export const CJK_FONT_FILE = 'fonts/NotoSansCJK-Regular.ttc';
/** The functions that render PDFs, so get the layer and `BRIDGE_CJK_FONT_PATH`. */
const FONT_USERS: readonly FunctionName[] = ['publish-page'];

/** Async (EventBridge) invocations: Lambda retries a failed event twice, for up to 6 hours. */
export const ASYNC_RETRY_ATTEMPTS = 2;
export const ASYNC_MAX_EVENT_AGE = Duration.hours(6);

export interface FunctionsProps {
  readonly config: RegionConfig;
  readonly network: Network;
  readonly data: Data;
  readonly events: Events;
  /** The API's OAuth callback URL (`BRIDGE_OAUTH_REDIRECT_URI`). */
  readonly redirectUri: string;
  /** The API's public receiver of Jira's dynamic webhooks (`BRIDGE_JIRA_WEBHOOK_URL`). */
  readonly webhookUrl: string;
  /** The API's public base URL without a trailing slash (`BRIDGE_PUBLIC_BASE_URL`). */
  readonly publicBaseUrl: string;
}

export class Functions {
  readonly functions = new Map<FunctionName, lambda.Function>();

  /** Resources go into `stack`'s own scope (see common.ts: logical ids). */
  constructor(stack: Stack, props: FunctionsProps) {
    const { config: cfg, network, data, events } = props;
    const missing = FUNCTIONS.filter((f) => !fs.existsSync(path.join(cfg.functionsDir, `${f}.zip`)));
    if (missing.length > 0) {
      throw new ConfigError([`Lambda zips missing in ${cfg.functionsDir}: ${missing.map((f) => `${f}.zip`).join(', ')}. ` +
        'Build them with `make package` at the repository root (or point -c functionsDir=... at them).']);
    }
    const fontsDir = path.join(cfg.functionsDir, FONTS_LAYER_DIR);
    if (!fs.existsSync(path.join(fontsDir, CJK_FONT_FILE))) {
      throw new ConfigError([`The fonts layer is missing: no ${CJK_FONT_FILE} in ${fontsDir}. ` +
        'Build it with `make package` at the repository root (or point -c functionsDir=... at it).']);
    }
    // Architecture-independent data, one version per deployment and region.
    const fontsLayer = new lambda.LayerVersion(stack, 'FontsLayer', {
      layerVersionName: `${cfg.deploymentName}-fonts`,
      description: 'Noto Sans CJK (SIL OFL 1.1): the CJK font of the PDF summaries',
      code: lambda.Code.fromAsset(fontsDir),
      compatibleArchitectures: [lambda.Architecture.ARM_64, lambda.Architecture.X86_64],
      compatibleRuntimes: [lambda.Runtime.PROVIDED_AL2023],
      license: 'OFL-1.1',
    });
    const envList = loadEnvList();

    const baseEnvironment: Record<string, string> = {
      BRIDGE_TABLE_NAME: data.table.tableName,
      BRIDGE_SECRET_PREFIX: cfg.secretPrefix,
      BRIDGE_KMS_KEY_ID: data.key.keyArn,
      BRIDGE_OAUTH_CLIENT_ID: cfg.oauthClientId,
      BRIDGE_OAUTH_CLIENT_SECRET_NAME: data.appSecretName,
      BRIDGE_OAUTH_REDIRECT_URI: props.redirectUri,
      BRIDGE_ALLOWED_RETURN_URLS: cfg.allowedReturnUrls.join(','),
      BRIDGE_TENANT_CLAIM: cfg.tenantClaim,
      BRIDGE_METRICS_NAMESPACE: metricsNamespace(cfg),
      // The Marketplace apps: every function that opens a session may sign for a Connect
      // installation (the app key is the JWTs' iss) or call with a Forge app system token.
      BRIDGE_PUBLIC_BASE_URL: props.publicBaseUrl,
      ...(cfg.connectAppKey ? { BRIDGE_CONNECT_APP_KEY: cfg.connectAppKey } : {}),
      ...(cfg.forgeAppId ? { BRIDGE_FORGE_APP_ID: cfg.forgeAppId } : {}),
      RUST_LOG: cfg.rustLog,
    };
    const unsetApps = [...(cfg.connectAppKey ? [] : ['BRIDGE_CONNECT_APP_KEY']),
      ...(cfg.forgeAppId ? [] : ['BRIDGE_FORGE_APP_ID'])];
    const tenantSecrets = arn(stack, 'secretsmanager', `secret:${cfg.secretPrefix}tenants/*`);
    // One secret per Connect or Forge installation (its shared secret, or its latest app system token).
    const appSecrets = arn(stack, 'secretsmanager', `secret:${cfg.secretPrefix}apps/*`);
    const viaServices = (...services: string[]) => ({
      StringEquals: { 'kms:ViaService': services.map((s) => `${s}.${stack.region}.amazonaws.com`) },
    });

    for (const name of FUNCTIONS) {
      const id = pascal(name);
      const functionName = `${cfg.deploymentName}-${name}`;
      const functionLogs = logGroup(stack, `${id}Logs`, cfg, data.key);
      const role = new iam.Role(stack, `${id}Role`, {
        assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
        description: `${functionName}: execution role (this function only)`,
      });

      // Logs: the function's own log group only.
      role.addToPrincipalPolicy(new iam.PolicyStatement({
        sid: 'OwnLogGroup',
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [functionLogs.logGroupArn],
      }));
      // VPC: Lambda manages the function's network interfaces with the execution role. Describe* has
      // no resource-level permissions; the writes are held to this account and region.
      role.addToPrincipalPolicy(new iam.PolicyStatement({
        sid: 'VpcNetworkInterfaces',
        actions: ['ec2:CreateNetworkInterface', 'ec2:DeleteNetworkInterface', 'ec2:AssignPrivateIpAddresses',
          'ec2:UnassignPrivateIpAddresses'],
        resources: [arn(stack, 'ec2', '*/*')],
      }));
      role.addToPrincipalPolicy(new iam.PolicyStatement({
        sid: 'VpcDescribe',
        actions: ['ec2:DescribeNetworkInterfaces', 'ec2:DescribeSubnets'],
        resources: ['*'],
      }));
      // DynamoDB: the items this library reads and writes (TransactWriteItems needs the item actions).
      // create-issue also reads and writes its lookup cache in batches (BatchGetItem/BatchWriteItem).
      const tableActions = ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem',
        'dynamodb:Query', 'dynamodb:ConditionCheckItem'];
      // The issue sync maps issue keys to items (BatchGetItem) and deletes published outbox entries
      // (BatchWriteItem); its state-and-outbox transactions need only the item actions above.
      if (name === 'create-issue' || name === 'issue-sync') tableActions.push('dynamodb:BatchGetItem', 'dynamodb:BatchWriteItem');
      // keep-alive backfills the sweep index, and issue-sync the tenants it follows, once per deployment
      // with a resumable scan (items written before the index existed); nothing else scans the table.
      if (name === 'keep-alive' || name === 'issue-sync') tableActions.push('dynamodb:Scan');
      role.addToPrincipalPolicy(new iam.PolicyStatement({
        sid: 'Table',
        actions: tableActions,
        resources: [data.table.tableArn],
      }));
      if (name === 'keep-alive' || name === 'issue-sync') {
        // Only the sweeps page every tenant's connections (keep-alive) or enrolled tenants (issue-sync),
        // through the sparse `sweep` index.
        role.addToPrincipalPolicy(new iam.PolicyStatement({
          sid: 'SweepIndex',
          actions: ['dynamodb:Query'],
          resources: [`${data.table.tableArn}/index/${SWEEP_INDEX}`],
        }));
      }
      // Secrets: read the app secret (at cold start); the tenants' grants under <prefix>tenants/.
      // Every function may refresh a token pair (store = CreateSecret, else PutSecretValue); only the
      // functions that connect and disconnect delete.
      role.addToPrincipalPolicy(new iam.PolicyStatement({
        sid: 'AppSecret',
        actions: ['secretsmanager:GetSecretValue'],
        resources: [data.appSecretArn],
      }));
      const secretActions = ['secretsmanager:GetSecretValue', 'secretsmanager:CreateSecret',
        'secretsmanager:PutSecretValue'];
      if (name === 'oauth-callback' || name === 'connections') secretActions.push('secretsmanager:DeleteSecret');
      role.addToPrincipalPolicy(new iam.PolicyStatement({
        sid: 'TenantSecrets',
        actions: secretActions,
        resources: [tenantSecrets],
      }));
      // Installations' secrets: only app-lifecycle writes them (installs, reinstalls, fresh Forge
      // tokens) and deletes them (uninstalls); every other function reads them to call Atlassian.
      role.addToPrincipalPolicy(new iam.PolicyStatement({
        sid: 'InstallationSecrets',
        actions: name === 'app-lifecycle'
          ? ['secretsmanager:GetSecretValue', 'secretsmanager:CreateSecret', 'secretsmanager:PutSecretValue',
            'secretsmanager:DeleteSecret']
          : ['secretsmanager:GetSecretValue'],
        resources: [appSecrets],
      }));
      // KMS: only through Secrets Manager and DynamoDB, on this deployment's key.
      role.addToPrincipalPolicy(new iam.PolicyStatement({
        sid: 'KeyViaSecretsManagerAndDynamoDb',
        actions: ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey', 'kms:DescribeKey'],
        resources: [data.key.keyArn],
        conditions: viaServices('secretsmanager', 'dynamodb'),
      }));

      const environment = { ...baseEnvironment };
      if (EVENT_PUBLISHERS.includes(name)) {
        environment.BRIDGE_EVENT_BUS_NAME = events.bus.eventBusName;
        environment.BRIDGE_EVENT_SOURCE = cfg.eventSource;
        role.addToPrincipalPolicy(new iam.PolicyStatement({
          sid: 'PublishEvents',
          actions: ['events:PutEvents'],
          resources: [events.bus.eventBusArn],
        }));
      }
      if (WEBHOOK_USERS.includes(name)) {
        // Where Jira delivers the webhooks these functions register (consent, settings, the hourly
        // refresh) and the one that receives them.
        environment.BRIDGE_JIRA_WEBHOOK_URL = props.webhookUrl;
      }
      if (JOB_RUNNERS.includes(name)) {
        // A job's claim on an item outlasts any invocation that holds it: a redelivery never takes over
        // an item that a still-running invocation is creating.
        environment.BRIDGE_JOB_LEASE_SECONDS = String(TIMEOUT_SECONDS[name]);
      }
      if (FONT_USERS.includes(name)) environment.BRIDGE_CJK_FONT_PATH = `/opt/${CJK_FONT_FILE}`;
      checkEnvironment(envList, name, environment, unsetApps);

      const fn = new lambda.Function(stack, `${id}Function`, {
        functionName,
        description: `Atlassian Bridge ${name} (${cfg.deploymentName}, ${stack.region})`,
        runtime: lambda.Runtime.PROVIDED_AL2023,
        architecture: lambda.Architecture.ARM_64,
        handler: 'bootstrap',
        code: lambda.Code.fromAsset(path.join(cfg.functionsDir, `${name}.zip`)),
        layers: FONT_USERS.includes(name) ? [fontsLayer] : undefined,
        memorySize: cfg.memoryMb[name],
        timeout: Duration.seconds(TIMEOUT_SECONDS[name]),
        role,
        logGroup: functionLogs,
        vpc: network.vpc,
        vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
        securityGroups: [network.functionSecurityGroup],
        environment,
        environmentEncryption: data.key,
        reservedConcurrentExecutions: cfg.reservedConcurrency[name],
      });
      this.functions.set(name, fn);

      const dlq = events.deadLetterQueues.get(name);
      if (dlq) {
        // An event consumer: failed async invocations go to its dead-letter queue after Lambda's retries.
        (fn.node.defaultChild as lambda.CfnFunction).deadLetterConfig = { targetArn: dlq.queueArn };
        role.addToPrincipalPolicy(new iam.PolicyStatement({
          sid: 'DeadLetterQueue',
          actions: ['sqs:SendMessage'],
          resources: [dlq.queueArn],
        }));
        role.addToPrincipalPolicy(new iam.PolicyStatement({
          sid: 'KeyViaSqs',
          actions: ['kms:GenerateDataKey', 'kms:Decrypt'],
          resources: [data.key.keyArn],
          conditions: viaServices('sqs'),
        }));
        fn.configureAsyncInvoke({
          retryAttempts: ASYNC_RETRY_ATTEMPTS,
          maxEventAge: ASYNC_MAX_EVENT_AGE,
          // Besides the DLQ (which keeps the event for a redrive), an event consumer's failed event
          // goes to the bus as Lambda's invocation record, where a rule (events.ts) brings it back
          // to the function to tell the SaaS once. Lambda puts the record with the function's
          // role: the destination grants it events:PutEvents on the bus.
          onFailure: events.consumers.has(name) ? new destinations.EventBridgeDestination(events.bus) : undefined,
        });
      }

      const policy = role.node.findChild('DefaultPolicy');
      acknowledge(policy, 'AwsSolutions-IAM5[Resource::*]',
        'ec2:DescribeNetworkInterfaces and ec2:DescribeSubnets support no resource-level permissions (AWS ' +
        'documents "Resource": "*" for them); they are read-only, and Lambda needs them to attach the function to ' +
        'the VPC. Nothing else in this policy has a "*" resource.');
      acknowledge(policy, `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:${stack.region}:${stack.account}:*/*]`,
        'Lambda creates and deletes the function\'s network interfaces with the execution role; their ids are ' +
        'not known in advance (AWS documents "all resource IDs" for DeleteNetworkInterface). Held to this account ' +
        'and region.');
      acknowledge(policy, `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:secretsmanager:${stack.region}:` +
        `${stack.account}:secret:${cfg.secretPrefix}tenants/*]`,
        'One secret per tenant grant, created at run time when a tenant connects: the names are unknown at deploy ' +
        'time. The prefix confines the function to this deployment\'s tenant secrets; the app secret is outside it ' +
        'and is read-only.');
      acknowledge(policy, `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:secretsmanager:${stack.region}:` +
        `${stack.account}:secret:${cfg.secretPrefix}apps/*]`,
        'One secret per Connect or Forge installation, created when a site installs the app: the names are unknown ' +
        'at deploy time. Only app-lifecycle may write or delete them; the other functions only read them.');
    }
  }
}
