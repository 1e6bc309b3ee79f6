// One regional deployment of the Atlassian Bridge: network with fixed egress IPs, data, the five
// functions, the HTTP API, the event rules and the alarms. Nothing here refers to another region.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Annotations, CfnOutput, Duration, Fn, RemovalPolicy, Stack, StackProps, Tags } from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpJwtAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { ConfigError, EVENT_PUBLISHERS, FUNCTIONS, FunctionName, RegionConfig } from './config';
import { acknowledge } from './nag';
import { Routes } from './routes';

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
};

/** Async (EventBridge) invocations: Lambda retries a failed event twice, for up to 6 hours. */
export const ASYNC_RETRY_ATTEMPTS = 2;
export const ASYNC_MAX_EVENT_AGE = Duration.hours(6);

export interface BridgeStackProps extends StackProps {
  readonly config: RegionConfig;
  readonly routes: Routes;
}

export class BridgeStack extends Stack {
  readonly config: RegionConfig;
  readonly functions = new Map<FunctionName, lambda.Function>();
  readonly deadLetterQueues = new Map<FunctionName, sqs.Queue>();
  readonly egressIps: string[] = [];
  readonly egressAllocationIds: string[] = [];
  vpc!: ec2.Vpc;
  functionSecurityGroup!: ec2.SecurityGroup;
  key!: kms.IKey;
  table!: dynamodb.ITable;
  appSecretName!: string;
  appSecretArn!: string;
  bus!: events.EventBus;
  api!: apigwv2.HttpApi;
  apiUrl!: string;
  redirectUri!: string;

  constructor(scope: Construct, id: string, props: BridgeStackProps) {
    super(scope, id, props);
    this.config = props.config;
    const cfg = props.config;
    Tags.of(this).add('project', 'atlassian-bridge');
    Tags.of(this).add('deployment', cfg.deploymentName);
    if (cfg.placeholderAccount) {
      Annotations.of(this).addWarningV2('bridge:placeholder-account',
        `No account given: synthesized for the placeholder account ${cfg.account}. Deploy with credentials ` +
        '(the CLI sets CDK_DEFAULT_ACCOUNT) or -c account=<id>.');
    }

    this.buildKey();
    this.buildNetwork();
    this.buildData();
    this.buildBus();
    this.buildApiShell();
    this.buildFunctions(props.routes);
    this.buildRoutes(props.routes);
    this.buildEventRules(props.routes);
    this.buildAlarms();
    this.buildOutputs();
  }

  private arn(service: string, resource: string): string {
    return `arn:${this.partition}:${service}:${this.region}:${this.account}:${resource}`;
  }

  // ------------------------------------------------------------------------------------------- KMS
  private buildKey(): void {
    const cfg = this.config;
    if (cfg.existingKmsKeyArn) {
      // A key kept from an earlier deployment: its policy (below) came with it.
      this.key = kms.Key.fromKeyArn(this, 'Key', cfg.existingKmsKeyArn);
      return;
    }
    const key = new kms.Key(this, 'Key', {
      description: `${cfg.deploymentName}: tenant credentials (Secrets Manager), table, logs, queues`,
      alias: `alias/${cfg.deploymentName}`,
      enableKeyRotation: true,
      pendingWindow: Duration.days(30),
      // The table and the tenants' secrets are encrypted with it: it outlives the stack.
      removalPolicy: RemovalPolicy.RETAIN,
    });
    // CloudWatch Logs encrypts this deployment's log groups with the key.
    key.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'CloudWatchLogsForThisAccountsLogGroups',
      principals: [new iam.ServicePrincipal(`logs.${this.region}.amazonaws.com`)],
      actions: ['kms:Encrypt', 'kms:Decrypt', 'kms:ReEncryptFrom', 'kms:ReEncryptTo', 'kms:GenerateDataKey',
        'kms:GenerateDataKeyWithoutPlaintext', 'kms:DescribeKey'],
      resources: ['*'],
      conditions: {
        ArnLike: { 'kms:EncryptionContext:aws:logs:arn': this.arn('logs', 'log-group:*') },
      },
    }));
    // EventBridge writes undeliverable events to the (encrypted) dead-letter queues.
    key.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'EventBridgeRulesOfThisBusToDeadLetterQueues',
      principals: [new iam.ServicePrincipal('events.amazonaws.com')],
      actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
      resources: ['*'],
      conditions: {
        ArnLike: { 'aws:SourceArn': this.arn('events', `rule/${cfg.eventBusName}/*`) },
      },
    }));
    this.key = key;
  }

  // --------------------------------------------------------------------------------------- Network
  private buildNetwork(): void {
    const cfg = this.config;
    if (cfg.egressIpAllocations) {
      for (const a of cfg.egressIpAllocations) {
        this.egressAllocationIds.push(a.allocationId);
        this.egressIps.push(a.publicIp);
      }
    } else {
      for (let i = 1; i <= cfg.azCount; i++) {
        // Allocated explicitly and retained: the NAT gateway may be replaced, the address stays. No
        // property here may ever change (a change would replace the EIP and so the address).
        const eip = new ec2.CfnEIP(this, `EgressIp${i}`, {
          domain: 'vpc',
          tags: [{ key: 'Name', value: `${cfg.stackName}-egress-${i}` }],
        });
        eip.applyRemovalPolicy(RemovalPolicy.RETAIN);
        this.egressAllocationIds.push(eip.attrAllocationId);
        this.egressIps.push(eip.ref); // Ref of AWS::EC2::EIP is its public IPv4 address
      }
    }

    const flowLogs = this.logGroup('VpcFlowLogs');
    this.vpc = new ec2.Vpc(this, 'Vpc', {
      ipAddresses: ec2.IpAddresses.cidr(cfg.vpcCidr),
      maxAzs: cfg.azCount,
      natGateways: cfg.azCount,
      natGatewayProvider: ec2.NatProvider.gateway({ eipAllocationIds: this.egressAllocationIds }),
      subnetConfiguration: [
        // Only the NAT gateways live here; they bring their own Elastic IPs.
        { name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24, mapPublicIpOnLaunch: false },
        { name: 'private', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 20 },
      ],
      // Nothing uses the default security group; restricting it would need a custom-resource Lambda.
      restrictDefaultSecurityGroup: false,
      flowLogs: {
        all: { destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogs), trafficType: ec2.FlowLogTrafficType.ALL },
      },
    });
    const privateSubnets = { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS };

    this.functionSecurityGroup = new ec2.SecurityGroup(this, 'FunctionsSecurityGroup', {
      vpc: this.vpc,
      description: `${cfg.stackName} Lambdas: outbound HTTPS (Atlassian, AWS endpoints) and configured Server/DC ports`,
      allowAllOutbound: false,
    });
    this.functionSecurityGroup.addEgressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(443), 'HTTPS: Atlassian and AWS endpoints');
    for (const port of cfg.extraEgressPorts) {
      this.functionSecurityGroup.addEgressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(port), `Server/DC hosts on port ${port}`);
    }

    // AWS APIs stay inside the VPC; only Atlassian traffic leaves through the NAT gateways.
    this.vpc.addGatewayEndpoint('DynamoDbEndpoint', {
      service: ec2.GatewayVpcEndpointAwsService.DYNAMODB,
      subnets: [privateSubnets],
    });
    const endpointSecurityGroup = new ec2.SecurityGroup(this, 'EndpointsSecurityGroup', {
      vpc: this.vpc,
      description: `${cfg.stackName} interface endpoints: HTTPS from the Lambdas only`,
      allowAllOutbound: false,
    });
    endpointSecurityGroup.addIngressRule(this.functionSecurityGroup, ec2.Port.tcp(443), 'HTTPS from the Lambdas');
    const interfaceEndpoints: Array<[string, ec2.InterfaceVpcEndpointAwsService]> = [
      ['SecretsManagerEndpoint', ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER],
      ['KmsEndpoint', ec2.InterfaceVpcEndpointAwsService.KMS],
      ['EventBridgeEndpoint', ec2.InterfaceVpcEndpointAwsService.EVENTBRIDGE],
      ['CloudWatchLogsEndpoint', ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS],
    ];
    for (const [id, service] of interfaceEndpoints) {
      this.vpc.addInterfaceEndpoint(id, {
        service,
        subnets: privateSubnets,
        privateDnsEnabled: true,
        securityGroups: [endpointSecurityGroup],
        open: false,
      });
    }
  }

  // ------------------------------------------------------------------------------------------ Data
  private buildData(): void {
    const cfg = this.config;
    if (cfg.existingTableName) {
      this.table = dynamodb.Table.fromTableAttributes(this, 'Table', {
        tableName: cfg.existingTableName,
        encryptionKey: this.key,
      });
    } else {
      this.table = new dynamodb.Table(this, 'Table', {
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
    }

    // The app secret: {"client_secret": <from Atlassian's developer console>, "state_signing_key":
    // <base64, >= 32 bytes>}. The stack generates the signing key (64 base64-alphabet characters =
    // 48 bytes) and leaves client_secret empty for the operator to fill (README: Deploy).
    if (cfg.oauthClientSecretName) {
      // Taken by name: Secrets Manager appends 6 random characters to a secret's ARN.
      this.appSecretName = cfg.oauthClientSecretName;
      this.appSecretArn = this.arn('secretsmanager', `secret:${cfg.oauthClientSecretName}-??????`);
    } else {
      this.appSecretName = `${cfg.secretPrefix}app/oauth-client`;
      const secret = new secretsmanager.Secret(this, 'OAuthClientSecret', {
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

  private buildBus(): void {
    this.bus = new events.EventBus(this, 'Bus', {
      eventBusName: this.config.eventBusName,
      description: `${this.config.deploymentName}: Report Ready / Action Items Ready in, Page Published / Issues Created / Publish Failed out`,
    });
  }

  // The API exists before the functions: the OAuth redirect URI (a function setting) is its URL.
  private buildApiShell(): void {
    const cfg = this.config;
    this.api = new apigwv2.HttpApi(this, 'Api', {
      apiName: cfg.stackName,
      description: `${cfg.deploymentName} (${this.region}): tenant connections, discovery, publishing`,
      createDefaultStage: false,
    });
    if (cfg.customDomainName) {
      this.apiUrl = `https://${cfg.customDomainName}/`;
      this.redirectUri = `https://${cfg.customDomainName}/v1/oauth/callback`;
    } else {
      this.apiUrl = `${this.api.apiEndpoint}/`;
      this.redirectUri = `${this.api.apiEndpoint}/v1/oauth/callback`;
    }
  }

  // ------------------------------------------------------------------------------------- Functions
  private buildFunctions(routes: Routes): void {
    const cfg = this.config;
    const consumers = new Set(routes.events.map((e) => e.function));
    const missing = FUNCTIONS.filter((f) => !fs.existsSync(path.join(cfg.functionsDir, `${f}.zip`)));
    if (missing.length > 0) {
      throw new ConfigError([`Lambda zips missing in ${cfg.functionsDir}: ${missing.map((f) => `${f}.zip`).join(', ')}. ` +
        'Build them with `make package` at the repository root (or point -c functionsDir=... at them).']);
    }

    const baseEnvironment: Record<string, string> = {
      BRIDGE_TABLE_NAME: this.table.tableName,
      BRIDGE_SECRET_PREFIX: cfg.secretPrefix,
      BRIDGE_KMS_KEY_ID: this.key.keyArn,
      BRIDGE_OAUTH_CLIENT_ID: cfg.oauthClientId,
      BRIDGE_OAUTH_CLIENT_SECRET_NAME: this.appSecretName,
      BRIDGE_OAUTH_REDIRECT_URI: this.redirectUri,
      BRIDGE_ALLOWED_RETURN_URLS: cfg.allowedReturnUrls.join(','),
      BRIDGE_TENANT_CLAIM: cfg.tenantClaim,
      RUST_LOG: cfg.rustLog,
    };
    const tenantSecrets = this.arn('secretsmanager', `secret:${cfg.secretPrefix}tenants/*`);
    const viaServices = (...services: string[]) => ({
      StringEquals: { 'kms:ViaService': services.map((s) => `${s}.${this.region}.amazonaws.com`) },
    });

    for (const name of FUNCTIONS) {
      const id = pascal(name);
      const functionName = `${cfg.deploymentName}-${name}`;
      const logGroup = this.logGroup(`${id}Logs`);
      const role = new iam.Role(this, `${id}Role`, {
        assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
        description: `${functionName}: execution role (this function only)`,
      });

      // Logs: the function's own log group only.
      role.addToPrincipalPolicy(new iam.PolicyStatement({
        sid: 'OwnLogGroup',
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [logGroup.logGroupArn],
      }));
      // VPC: Lambda manages the function's network interfaces with the execution role. Describe* has
      // no resource-level permissions; the writes are held to this account and region.
      role.addToPrincipalPolicy(new iam.PolicyStatement({
        sid: 'VpcNetworkInterfaces',
        actions: ['ec2:CreateNetworkInterface', 'ec2:DeleteNetworkInterface', 'ec2:AssignPrivateIpAddresses',
          'ec2:UnassignPrivateIpAddresses'],
        resources: [this.arn('ec2', '*/*')],
      }));
      role.addToPrincipalPolicy(new iam.PolicyStatement({
        sid: 'VpcDescribe',
        actions: ['ec2:DescribeNetworkInterfaces', 'ec2:DescribeSubnets'],
        resources: ['*'],
      }));
      // DynamoDB: the items this library reads and writes (TransactWriteItems needs the item actions).
      role.addToPrincipalPolicy(new iam.PolicyStatement({
        sid: 'Table',
        actions: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem',
          'dynamodb:Query', 'dynamodb:ConditionCheckItem'],
        resources: [this.table.tableArn],
      }));
      // Secrets: read the app secret (at cold start); the tenants' grants under <prefix>tenants/.
      // Every function may refresh a token pair (store = CreateSecret, else PutSecretValue); only the
      // functions that connect and disconnect delete.
      role.addToPrincipalPolicy(new iam.PolicyStatement({
        sid: 'AppSecret',
        actions: ['secretsmanager:GetSecretValue'],
        resources: [this.appSecretArn],
      }));
      const secretActions = ['secretsmanager:GetSecretValue', 'secretsmanager:CreateSecret',
        'secretsmanager:PutSecretValue'];
      if (name === 'oauth-callback' || name === 'connections') secretActions.push('secretsmanager:DeleteSecret');
      role.addToPrincipalPolicy(new iam.PolicyStatement({
        sid: 'TenantSecrets',
        actions: secretActions,
        resources: [tenantSecrets],
      }));
      // KMS: only through Secrets Manager and DynamoDB, on this deployment's key.
      role.addToPrincipalPolicy(new iam.PolicyStatement({
        sid: 'KeyViaSecretsManagerAndDynamoDb',
        actions: ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey', 'kms:DescribeKey'],
        resources: [this.key.keyArn],
        conditions: viaServices('secretsmanager', 'dynamodb'),
      }));

      const environment = { ...baseEnvironment };
      if (EVENT_PUBLISHERS.includes(name)) {
        environment.BRIDGE_EVENT_BUS_NAME = this.bus.eventBusName;
        environment.BRIDGE_EVENT_SOURCE = cfg.eventSource;
        // A job's claim on an item outlasts any invocation that holds it: a redelivery never takes over
        // an item that a still-running invocation is creating.
        environment.BRIDGE_JOB_LEASE_SECONDS = String(TIMEOUT_SECONDS[name]);
        role.addToPrincipalPolicy(new iam.PolicyStatement({
          sid: 'PublishEvents',
          actions: ['events:PutEvents'],
          resources: [this.bus.eventBusArn],
        }));
      }

      const fn = new lambda.Function(this, `${id}Function`, {
        functionName,
        description: `Atlassian Bridge ${name} (${cfg.deploymentName}, ${this.region})`,
        runtime: lambda.Runtime.PROVIDED_AL2023,
        architecture: lambda.Architecture.ARM_64,
        handler: 'bootstrap',
        code: lambda.Code.fromAsset(path.join(cfg.functionsDir, `${name}.zip`)),
        memorySize: cfg.memoryMb[name],
        timeout: Duration.seconds(TIMEOUT_SECONDS[name]),
        role,
        logGroup,
        vpc: this.vpc,
        vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
        securityGroups: [this.functionSecurityGroup],
        environment,
        environmentEncryption: this.key,
        reservedConcurrentExecutions: cfg.reservedConcurrency[name],
      });
      this.functions.set(name, fn);

      if (consumers.has(name)) {
        // Events that fail after Lambda's retries (and events EventBridge cannot deliver) land here.
        const dlq = this.deadLetterQueue(`${id}DeadLetterQueue`, `${functionName}-dlq`);
        this.deadLetterQueues.set(name, dlq);
        (fn.node.defaultChild as lambda.CfnFunction).deadLetterConfig = { targetArn: dlq.queueArn };
        role.addToPrincipalPolicy(new iam.PolicyStatement({
          sid: 'DeadLetterQueue',
          actions: ['sqs:SendMessage'],
          resources: [dlq.queueArn],
        }));
        role.addToPrincipalPolicy(new iam.PolicyStatement({
          sid: 'KeyViaSqs',
          actions: ['kms:GenerateDataKey', 'kms:Decrypt'],
          resources: [this.key.keyArn],
          conditions: viaServices('sqs'),
        }));
        fn.configureAsyncInvoke({ retryAttempts: ASYNC_RETRY_ATTEMPTS, maxEventAge: ASYNC_MAX_EVENT_AGE });
      }

      const policy = role.node.findChild('DefaultPolicy');
      acknowledge(policy, 'AwsSolutions-IAM5[Resource::*]',
        'ec2:DescribeNetworkInterfaces and ec2:DescribeSubnets support no resource-level permissions (AWS ' +
        'documents "Resource": "*" for them); they are read-only, and Lambda needs them to attach the function to ' +
        'the VPC. Nothing else in this policy has a "*" resource.');
      acknowledge(policy, `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:${this.region}:${this.account}:*/*]`,
        'Lambda creates and deletes the function\'s network interfaces with the execution role; their ids are ' +
        'not known in advance (AWS documents "all resource IDs" for DeleteNetworkInterface). Held to this account ' +
        'and region.');
      acknowledge(policy, `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:secretsmanager:${this.region}:` +
        `${this.account}:secret:${cfg.secretPrefix}tenants/*]`,
        'One secret per tenant grant, created at run time when a tenant connects: the names are unknown at deploy ' +
        'time. The prefix confines the function to this deployment\'s tenant secrets; the app secret is outside it ' +
        'and is read-only.');
    }
  }

  // ---------------------------------------------------------------------------------------- Routes
  private buildRoutes(routes: Routes): void {
    const cfg = this.config;
    const accessLogs = this.logGroup('ApiAccessLogs');
    const authorizer = new HttpJwtAuthorizer('JwtAuthorizer', cfg.jwtIssuer, {
      authorizerName: 'jwt',
      jwtAudience: cfg.jwtAudience,
      identitySource: ['$request.header.Authorization'],
    });
    const integrations = new Map<FunctionName, HttpLambdaIntegration>();
    const integration = (name: FunctionName) => {
      let i = integrations.get(name);
      if (!i) {
        i = new HttpLambdaIntegration(`${pascal(name)}Integration`, this.functions.get(name)!, {
          payloadFormatVersion: apigwv2.PayloadFormatVersion.VERSION_2_0,
        });
        integrations.set(name, i);
      }
      return i;
    };

    const createdRoutes: apigwv2.HttpRoute[] = [];
    const publicRouteKeys: string[] = [];
    for (const r of routes.routes) {
      const [route] = this.api.addRoutes({
        path: r.path,
        methods: [apigwv2.HttpMethod[r.method]],
        integration: integration(r.function),
        authorizer: r.auth === 'jwt' ? authorizer : new apigwv2.HttpNoneAuthorizer(),
      });
      createdRoutes.push(route);
      if (r.auth === 'none') {
        publicRouteKeys.push(`${r.method} ${r.path}`);
        acknowledge(route, 'AwsSolutions-APIG4',
          'Public by design (DESIGN.md): Atlassian\'s consent screen redirects the tenant\'s browser here with no ' +
          'bearer token. The function trusts only its HMAC-signed, expiring, single-use state parameter, and the ' +
          'route has its own tighter throttle.');
      }
    }

    const stage = new apigwv2.HttpStage(this, 'DefaultStage', {
      httpApi: this.api,
      stageName: '$default',
      autoDeploy: true,
      throttle: cfg.apiThrottle,
      accessLogSettings: {
        destination: new apigwv2.LogGroupLogDestination(accessLogs),
        // Route keys and paths only: the query string (the OAuth code and state) is never logged.
        format: apigw.AccessLogFormat.custom(JSON.stringify({
          requestId: '$context.requestId',
          time: '$context.requestTime',
          ip: '$context.identity.sourceIp',
          userAgent: '$context.identity.userAgent',
          routeKey: '$context.routeKey',
          path: '$context.path',
          status: '$context.status',
          protocol: '$context.protocol',
          responseLength: '$context.responseLength',
          responseLatency: '$context.responseLatency',
          integrationStatus: '$context.integrationStatus',
          integrationLatency: '$context.integrationLatency',
          integrationError: '$context.integrationErrorMessage',
          authorizerError: '$context.authorizer.error',
        })),
      },
    });
    if (cfg.customDomainName) {
      new apigwv2.ApiMapping(this, 'DomainMapping', {
        api: this.api,
        stage,
        domainName: new apigwv2.DomainName(this, 'Domain', {
          domainName: cfg.customDomainName,
          certificate: acm.Certificate.fromCertificateArn(this, 'Certificate', cfg.customDomainCertificateArn!),
          securityPolicy: apigwv2.SecurityPolicy.TLS_1_2,
        }),
      });
    }
    // The unauthenticated routes get a tighter throttle than the stage default. (An L1 property that
    // CDK passes through as is: CloudFormation's own capitalized keys.)
    if (publicRouteKeys.length > 0) {
      (stage.node.defaultChild as apigwv2.CfnStage).routeSettings = Object.fromEntries(publicRouteKeys.map((k) => [k, {
        ThrottlingRateLimit: cfg.publicRouteThrottle.rateLimit,
        ThrottlingBurstLimit: cfg.publicRouteThrottle.burstLimit,
      }]));
      for (const route of createdRoutes) stage.node.addDependency(route);
    }
  }

  // ---------------------------------------------------------------------------------------- Events
  private buildEventRules(routes: Routes): void {
    const cfg = this.config;
    for (const rule of routes.events) {
      const fn = this.functions.get(rule.function)!;
      new events.Rule(this, `${pascal(rule.detailType)}To${pascal(rule.function)}Rule`, {
        eventBus: this.bus,
        description: `${rule.detailType} -> ${rule.function}`,
        eventPattern: {
          detailType: [rule.detailType],
          // Never our own events back into ourselves.
          source: rule.source ? [rule.source] : events.Match.anythingBut(cfg.eventSource),
        },
        // Straight to the function (asynchronous invocation). EventBridge retries delivery for up to
        // 24 h; Lambda retries a failed invocation twice; both park what still fails in the DLQ.
        targets: [new targets.LambdaFunction(fn, {
          deadLetterQueue: this.deadLetterQueues.get(rule.function),
          retryAttempts: 185,
          maxEventAge: Duration.hours(24),
        })],
      });
    }
  }

  // ---------------------------------------------------------------------------------------- Alarms
  private buildAlarms(): void {
    const cfg = this.config;
    const topic = cfg.alarmTopicArn ? sns.Topic.fromTopicArn(this, 'AlarmTopic', cfg.alarmTopicArn) : undefined;
    const period = Duration.minutes(5);
    const alarm = (id: string, name: string, description: string, metric: cloudwatch.IMetric, threshold: number,
      periods = 1) => {
      const a = new cloudwatch.Alarm(this, id, {
        alarmName: `${cfg.stackName}-${name}`,
        alarmDescription: description,
        metric,
        threshold,
        evaluationPeriods: periods,
        datapointsToAlarm: periods,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      if (topic) {
        a.addAlarmAction(new cwActions.SnsAction(topic));
        a.addOkAction(new cwActions.SnsAction(topic));
      }
      return a;
    };

    for (const [name, fn] of this.functions) {
      const id = pascal(name);
      alarm(`${id}ErrorsAlarm`, `${name}-errors`, `${name}: invocations ended in an error (5 min)`,
        fn.metricErrors({ period, statistic: 'Sum' }), 1);
      // An HTTP function's throttle is a failed request; a reserved-concurrency event consumer is
      // throttled by design (Lambda queues and retries), so only a sustained throttle alarms.
      const reserved = cfg.reservedConcurrency[name] !== undefined;
      alarm(`${id}ThrottlesAlarm`, `${name}-throttles`,
        reserved ? `${name}: throttled for 15 minutes in a row (reserved concurrency exhausted)` : `${name}: throttled`,
        fn.metricThrottles({ period, statistic: 'Sum' }), 1, reserved ? 3 : 1);
    }
    for (const [name, dlq] of this.deadLetterQueues) {
      alarm(`${pascal(name)}DeadLetterQueueAlarm`, `${name}-dlq-depth`,
        `${name}: events in the dead-letter queue (failed after retries); see README to inspect and redrive`,
        dlq.metricApproximateNumberOfMessagesVisible({ period, statistic: 'Maximum' }), 1);
    }
    alarm('Api5xxAlarm', 'api-5xx', 'HTTP API: 5 or more 5xx answers in 5 minutes',
      this.api.metricServerError({ period, statistic: 'Sum' }), 5);
  }

  // --------------------------------------------------------------------------------------- Outputs
  private buildOutputs(): void {
    const out = (id: string, value: string, description: string) => new CfnOutput(this, id, { value, description });
    out('ApiUrl', this.apiUrl, 'Base URL of the HTTP API');
    out('OAuthRedirectUri', this.redirectUri, 'Register this callback URL in the Atlassian developer console');
    out('EventBusName', this.bus.eventBusName, 'EventBridge bus for Report Ready / Action Items Ready');
    out('EventBusArn', this.bus.eventBusArn, 'EventBridge bus ARN (grant events:PutEvents on it to producers)');
    out('EgressIps', Fn.join(',', this.egressIps), 'Fixed egress IPs (NAT gateways) customers allow-list');
    out('EgressIpAllocationIds', Fn.join(',', this.egressAllocationIds),
      'Elastic IP allocation ids, in AZ order (context egressIpAllocations reuses them)');
    out('TableName', this.table.tableName, 'DynamoDB table');
    out('KmsKeyArn', this.key.keyArn, 'KMS customer key for secrets, table, logs and queues');
    out('OAuthClientSecretName', this.appSecretName, 'Secrets Manager secret the operator fills with the client secret');
  }

  // --------------------------------------------------------------------------------------- helpers
  private logGroup(id: string): logs.LogGroup {
    return new logs.LogGroup(this, id, {
      retention: this.config.logRetentionDays as logs.RetentionDays,
      encryptionKey: this.key,
      removalPolicy: RemovalPolicy.RETAIN,
    });
  }

  private deadLetterQueue(id: string, queueName: string): sqs.Queue {
    const q = new sqs.Queue(this, id, {
      queueName,
      encryption: sqs.QueueEncryption.KMS,
      encryptionMasterKey: this.key,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    return q;
  }
}

/** `publish-page` -> `PublishPage`, `Report Ready` -> `ReportReady`. */
export function pascal(s: string): string {
  return s.split(/[^A-Za-z0-9]+/).filter(Boolean).map((w) => w[0].toUpperCase() + w.slice(1)).join('');
}
