// One regional deployment of the Atlassian Bridge, composed of its parts (lib/constructs/): data
// (key, table, app secret), network with fixed egress IPs, events (bus, rules, dead-letter queues),
// the HTTP API, the six functions, the schedules, the alarms and the dashboard. Nothing here refers to another region.
//
// Every part builds into this stack's own scope, so the logical ids are those of the one-file stack
// it was split from (constructs/common.ts; test/logical-ids.test.ts keeps them).
import { Annotations, CfnOutput, Fn, Stack, StackProps, Tags } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { RegionConfig } from './config';
import { Alarms } from './constructs/alarms';
import { Api } from './constructs/api';
import { Dashboard } from './constructs/dashboard';
import { Data } from './constructs/data';
import { Events } from './constructs/events';
import { Functions } from './constructs/functions';
import { Network } from './constructs/network';
import { Schedules } from './constructs/schedules';
import { Routes } from './routes';

export { ASYNC_MAX_EVENT_AGE, ASYNC_RETRY_ATTEMPTS, TIMEOUT_SECONDS } from './constructs/functions';
export { pascal } from './constructs/common';

export interface BridgeStackProps extends StackProps {
  readonly config: RegionConfig;
  readonly routes: Routes;
}

export class BridgeStack extends Stack {
  readonly config: RegionConfig;
  readonly data: Data;
  readonly network: Network;
  readonly events: Events;
  readonly api: Api;
  readonly functions: Functions;

  constructor(scope: Construct, id: string, props: BridgeStackProps) {
    super(scope, id, props);
    const cfg = this.config = props.config;
    Tags.of(this).add('project', 'atlassian-bridge');
    Tags.of(this).add('deployment', cfg.deploymentName);
    if (cfg.placeholderAccount) {
      Annotations.of(this).addWarningV2('bridge:placeholder-account',
        `No account given: synthesized for the placeholder account ${cfg.account}. Deploy with credentials ` +
        '(the CLI sets CDK_DEFAULT_ACCOUNT) or -c account=<id>.');
    }

    this.data = new Data(this, cfg);
    this.network = new Network(this, cfg, this.data.key);
    this.events = new Events(this, cfg, props.routes, this.data.key);
    // The API exists before the functions: the OAuth redirect URI (a function setting) is its URL.
    this.api = new Api(this, cfg, this.data.key);
    this.functions = new Functions(this, {
      config: cfg, network: this.network, data: this.data, events: this.events, redirectUri: this.api.redirectUri,
      webhookUrl: this.api.webhookUrl,
      publicBaseUrl: this.api.publicBaseUrl,
    });
    this.api.addRoutes(props.routes, this.functions.functions);
    this.events.addRules(this.functions.functions);
    new Schedules(this, {
      config: cfg, routes: props.routes, functions: this.functions.functions,
      deadLetterQueues: this.events.deadLetterQueues, key: this.data.key,
    });
    new Alarms(this, {
      config: cfg, functions: this.functions.functions, deadLetterQueues: this.events.deadLetterQueues,
      api: this.api.api,
    });
    new Dashboard(this, { config: cfg, functions: this.functions.functions });
    this.outputs();
  }

  private outputs(): void {
    const out = (id: string, value: string, description: string) => new CfnOutput(this, id, { value, description });
    out('ApiUrl', this.api.apiUrl, 'Base URL of the HTTP API');
    out('OAuthRedirectUri', this.api.redirectUri, 'Register this callback URL in the Atlassian developer console');
    out('EventBusName', this.events.bus.eventBusName, 'EventBridge bus for Report Ready / Action Items Ready');
    out('EventBusArn', this.events.bus.eventBusArn, 'EventBridge bus ARN (grant events:PutEvents on it to producers)');
    out('EgressIps', Fn.join(',', this.network.egressIps), 'Fixed egress IPs (NAT gateways) customers allow-list');
    out('EgressIpAllocationIds', Fn.join(',', this.network.egressAllocationIds),
      'Elastic IP allocation ids, in AZ order (context egressIpAllocations reuses them)');
    out('TableName', this.data.table.tableName, 'DynamoDB table');
    out('KmsKeyArn', this.data.key.keyArn, 'KMS customer key for secrets, table, logs and queues');
    out('OAuthClientSecretName', this.data.appSecretName, 'Secrets Manager secret the operator fills with the client secret');
  }
}
