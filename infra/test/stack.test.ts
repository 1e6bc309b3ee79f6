// CDK assertions over the two default regional stacks (the real shared/routes.json), and over a
// variant whose routes file lists both DESIGN.md events.
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ASYNC_MAX_EVENT_AGE, ASYNC_RETRY_ATTEMPTS, TIMEOUT_SECONDS } from '../lib/bridge-stack';
import { CJK_FONT_FILE } from '../lib/constructs/functions';
import { INVOCATION_FAILURE } from '../lib/constructs/events';
import { DEFAULT_MEMORY_MB, DEFAULT_RESERVED_CONCURRENCY, FUNCTIONS } from '../lib/config';
import {
  asList, flatten, functionId, iamStatements, ofType, realRoutes, refTarget, resources, routesWithDesignEvents, synth,
} from './helpers';

const REGIONS = ['us-east-1', 'eu-central-1'];
const main = synth();
const withEvents = synth({ routesFile: routesWithDesignEvents(), regions: 'eu-central-1' });

function each(fn: (region: string, t: ReturnType<typeof main.templates.get> & object) => void): void {
  for (const region of REGIONS) fn(region, main.templates.get(region)!);
}

describe('the app', () => {
  it('has one stack per default region, named after it, in that region', () => {
    assert.deepEqual(main.stacks.map((s) => s.stackName), REGIONS.map((r) => `atlassian-bridge-${r}`));
    assert.deepEqual(main.stacks.map((s) => s.region), REGIONS);
  });

  it('keeps each region\'s resources in that region (no stack names another region)', () => {
    for (const region of REGIONS) {
      const text = JSON.stringify(main.templates.get(region)!.toJSON());
      for (const other of REGIONS.filter((r) => r !== region)) assert.ok(!text.includes(other), `${region} mentions ${other}`);
    }
  });
});

describe('network', () => {
  it('spans 2 AZs with a public and a private subnet in each', () => each((_, t) => {
    t.resourceCountIs('AWS::EC2::VPC', 1);
    const subnets = ofType(t, 'AWS::EC2::Subnet');
    assert.equal(subnets.length, 4);
    assert.equal(new Set(subnets.map(([, s]) => JSON.stringify(s.Properties.AvailabilityZone))).size, 2);
    assert.ok(subnets.every(([, s]) => s.Properties.MapPublicIpOnLaunch === false), 'no subnet hands out public IPs');
  }));

  it('has one NAT gateway per AZ, each on a retained Elastic IP that the outputs list', () => each((_, t) => {
    const res = resources(t);
    const nats = ofType(t, 'AWS::EC2::NatGateway');
    assert.equal(nats.length, 2);
    const outputIps = t.toJSON().Outputs.EgressIps.Value['Fn::Join'][1].map(refTarget);
    const outputAllocations = t.toJSON().Outputs.EgressIpAllocationIds.Value['Fn::Join'][1];
    const eipIds = nats.map(([, nat]) => {
      const alloc = nat.Properties.AllocationId;
      assert.deepEqual(Object.keys(alloc), ['Fn::GetAtt']);
      assert.equal(alloc['Fn::GetAtt'][1], 'AllocationId');
      const eipId = alloc['Fn::GetAtt'][0];
      const eip = res[eipId];
      assert.equal(eip.Type, 'AWS::EC2::EIP');
      assert.equal(eip.DeletionPolicy, 'Retain', `${eipId} survives stack deletion`);
      assert.equal(eip.UpdateReplacePolicy, 'Retain', `${eipId} survives replacement`);
      assert.ok(outputIps.includes(eipId), `${eipId} is in the EgressIps output`);
      assert.ok(outputAllocations.some((a: any) => refTarget(a) === eipId));
      return eipId;
    });
    assert.equal(new Set(eipIds).size, 2, 'each NAT gateway has its own Elastic IP');
    assert.equal(ofType(t, 'AWS::EC2::EIP').length, 2, 'no other Elastic IPs');
    assert.equal(outputIps.length, 2);
  }));

  it('keeps AWS traffic on VPC endpoints: DynamoDB (gateway); Secrets Manager, KMS, EventBridge, Logs (interface)', () => each((region, t) => {
    const endpoints = ofType(t, 'AWS::EC2::VPCEndpoint').map(([, e]) => e.Properties);
    const service = (e: any) => flatten(e.ServiceName).replace('${AWS::Region}', region);
    const gateway = endpoints.filter((e) => e.VpcEndpointType === 'Gateway').map(service);
    assert.deepEqual(gateway, [`com.amazonaws.${region}.dynamodb`]);
    const iface = endpoints.filter((e) => e.VpcEndpointType === 'Interface');
    assert.deepEqual(iface.map(service).sort(), ['events', 'kms', 'logs', 'secretsmanager'].map((s) => `com.amazonaws.${region}.${s}`));
    for (const e of iface) {
      assert.equal(e.PrivateDnsEnabled, true);
      assert.equal(e.SubnetIds.length, 2);
    }
  }));

  it('lets the functions out on 443 only, and lets nothing in', () => each((_, t) => {
    const sgId = functionSecurityGroupIds(t);
    assert.equal(sgId.size, 1, 'all functions share one security group');
    const sg = resources(t)[[...sgId][0]].Properties;
    assert.deepEqual(sg.SecurityGroupEgress.map((e: any) => [e.CidrIp, e.IpProtocol, e.FromPort, e.ToPort]),
      [['0.0.0.0/0', 'tcp', 443, 443]]);
    assert.equal(sg.SecurityGroupIngress, undefined);
    const ingressToIt = ofType(t, 'AWS::EC2::SecurityGroupIngress').filter(([, r]) => refTarget(r.Properties.GroupId) === [...sgId][0]);
    assert.equal(ingressToIt.length, 0);
  }));

  it('logs VPC flows', () => each((_, t) => {
    t.hasResourceProperties('AWS::EC2::FlowLog', { ResourceType: 'VPC', TrafficType: 'ALL', LogDestinationType: 'cloud-watch-logs' });
  }));
});

describe('functions', () => {
  it('deploys the five functions on arm64 and provided.al2023, each from its own zip', () => each((_, t) => {
    const fns = ofType(t, 'AWS::Lambda::Function');
    assert.equal(fns.length, FUNCTIONS.length);
    for (const name of FUNCTIONS) {
      const p = resources(t)[functionId(t, name)].Properties;
      assert.equal(p.Runtime, 'provided.al2023');
      assert.deepEqual(p.Architectures, ['arm64']);
      assert.equal(p.Handler, 'bootstrap');
      assert.equal(p.MemorySize, DEFAULT_MEMORY_MB[name]);
      assert.equal(p.Timeout, TIMEOUT_SECONDS[name]);
    }
    const keys = fns.map(([, f]) => JSON.stringify(f.Properties.Code.S3Key));
    assert.equal(new Set(keys).size, FUNCTIONS.length, 'one asset per function');
  }));

  it('puts every function in the private subnets (default route through a NAT gateway, no public IPs)', () => each((_, t) => {
    const res = resources(t);
    const privateSubnets = new Set<string>();
    for (const [id, s] of ofType(t, 'AWS::EC2::Subnet')) {
      const assoc = ofType(t, 'AWS::EC2::SubnetRouteTableAssociation').find(([, a]) => refTarget(a.Properties.SubnetId) === id)!;
      const table = refTarget(assoc[1].Properties.RouteTableId);
      const defaultRoute = ofType(t, 'AWS::EC2::Route').find(([, r]) => refTarget(r.Properties.RouteTableId) === table &&
        r.Properties.DestinationCidrBlock === '0.0.0.0/0')!;
      const viaNat = defaultRoute[1].Properties.NatGatewayId !== undefined && defaultRoute[1].Properties.GatewayId === undefined;
      if (viaNat && s.Properties.MapPublicIpOnLaunch === false) privateSubnets.add(id);
    }
    assert.equal(privateSubnets.size, 2);
    for (const [id, f] of ofType(t, 'AWS::Lambda::Function')) {
      const subnets = f.Properties.VpcConfig.SubnetIds.map(refTarget);
      assert.ok(subnets.length === 2 && subnets.every((s: string) => privateSubnets.has(s)), `${id} is in the private subnets only`);
      assert.equal(res[subnets[0]].Type, 'AWS::EC2::Subnet');
    }
  }));

  it('gives each function its own role, log group (365 days, KMS) and encrypted environment', () => each((_, t) => {
    const res = resources(t);
    const roles = new Set<string>();
    const keyId = ofType(t, 'AWS::KMS::Key')[0][0];
    for (const name of FUNCTIONS) {
      const p = res[functionId(t, name)].Properties;
      roles.add(refTarget(p.Role)!);
      const logGroup = res[refTarget(p.LoggingConfig.LogGroup)!];
      assert.equal(logGroup.Type, 'AWS::Logs::LogGroup');
      assert.equal(logGroup.Properties.RetentionInDays, 365);
      assert.equal(refTarget(logGroup.Properties.KmsKeyId), keyId);
      assert.equal(refTarget(p.KmsKeyArn), keyId);
    }
    assert.equal(roles.size, FUNCTIONS.length);
    for (const role of roles) {
      const users = ofType(t, 'AWS::Lambda::Function').filter(([, f]) => refTarget(f.Properties.Role) === role);
      assert.equal(users.length, 1, `${role} serves one function`);
      assert.equal(res[role].Properties.ManagedPolicyArns, undefined, 'no AWS managed policies');
    }
  }));

  it('sets the configuration every function reads', () => each((_, t) => {
    const res = resources(t);
    const keyId = ofType(t, 'AWS::KMS::Key')[0][0];
    const tableId = ofType(t, 'AWS::DynamoDB::Table')[0][0];
    const apiId = ofType(t, 'AWS::ApiGatewayV2::Api')[0][0];
    for (const name of FUNCTIONS) {
      const env = res[functionId(t, name)].Properties.Environment.Variables;
      assert.equal(refTarget(env.BRIDGE_TABLE_NAME), tableId);
      assert.equal(env.BRIDGE_SECRET_PREFIX, 'atlassian-bridge/');
      assert.equal(refTarget(env.BRIDGE_KMS_KEY_ID), keyId);
      assert.equal(env.BRIDGE_OAUTH_CLIENT_ID, 'test-client-id');
      assert.equal(env.BRIDGE_OAUTH_CLIENT_SECRET_NAME, 'atlassian-bridge/app/oauth-client');
      assert.equal(flatten(env.BRIDGE_OAUTH_REDIRECT_URI), `\${${apiId}.ApiEndpoint}/v1/oauth/callback`);
      assert.equal(env.BRIDGE_ALLOWED_RETURN_URLS, 'https://app.example.test/integrations/atlassian');
      assert.equal(env.BRIDGE_TENANT_CLAIM, 'tenant_id');
      // The namespace the alarms and the dashboard read (one per deployment).
      assert.equal(env.BRIDGE_METRICS_NAMESPACE, 'AtlassianBridge/atlassian-bridge');
      assert.equal(env.RUST_LOG, 'info');
      const jobs = name === 'publish-page' || name === 'create-issue';
      // connections reports a locked destination (Egress Abuse Suspected); keep-alive expiring and
      // broken connections; issue-sync and issue-webhook the issues' states.
      const publisher = jobs || name === 'connections' || name === 'keep-alive' || name === 'issue-sync' ||
        name === 'issue-webhook' || name === 'oauth-callback';
      // The functions that register, refresh or receive Jira's dynamic webhooks know the receiver's URL.
      const hooks = ['oauth-callback', 'connections', 'keep-alive', 'issue-webhook'].includes(name);
      assert.equal(env.BRIDGE_JIRA_WEBHOOK_URL === undefined ? undefined : flatten(env.BRIDGE_JIRA_WEBHOOK_URL),
        hooks ? `\${${apiId}.ApiEndpoint}/v1/webhooks/jira` : undefined, `${name}: BRIDGE_JIRA_WEBHOOK_URL`);
      assert.equal(env.BRIDGE_EVENT_BUS_NAME !== undefined, publisher, `${name}: BRIDGE_EVENT_BUS_NAME`);
      assert.equal(env.BRIDGE_EVENT_SOURCE, publisher ? 'atlassian-bridge' : undefined);
      if (publisher) {
        assert.equal(refTarget(env.BRIDGE_EVENT_BUS_NAME), ofType(t, 'AWS::Events::EventBus')[0][0]);
      }
      assert.equal(env.BRIDGE_JOB_LEASE_SECONDS, jobs ? String(TIMEOUT_SECONDS[name]) : undefined, name);
    }
  }));

  it('gives publish-page, and only it, the fonts layer (both architectures) and the CJK font\'s path in it', () => each((_, t) => {
    const [[layerId, layer], ...others] = ofType(t, 'AWS::Lambda::LayerVersion');
    assert.equal(others.length, 0, 'one layer');
    assert.deepEqual(layer.Properties.CompatibleArchitectures, ['arm64', 'x86_64']);
    assert.equal(layer.Properties.LicenseInfo, 'OFL-1.1');
    for (const name of FUNCTIONS) {
      const p = resources(t)[functionId(t, name)].Properties;
      const fonts = name === 'publish-page';
      assert.deepEqual((p.Layers ?? []).map(refTarget), fonts ? [layerId] : [], `${name}: layers`);
      assert.equal(p.Environment.Variables.BRIDGE_CJK_FONT_PATH,
        fonts ? `/opt/${CJK_FONT_FILE}` : undefined, `${name}: BRIDGE_CJK_FONT_PATH`);
    }
    // The path the Rust code falls back to is the same file.
    assert.equal(`/opt/${CJK_FONT_FILE}`, '/opt/fonts/NotoSansCJK-Regular.ttc');
  }));

  it('reserves concurrency for the bulk writers to Atlassian only', () => each((_, t) => {
    for (const name of FUNCTIONS) {
      const p = resources(t)[functionId(t, name)].Properties;
      assert.equal(p.ReservedConcurrentExecutions, DEFAULT_RESERVED_CONCURRENCY[name], name);
    }
  }));
});

describe('data', () => {
  it('has a retained KMS customer key with rotation', () => each((_, t) => {
    const [[, key]] = ofType(t, 'AWS::KMS::Key');
    assert.equal(key.Properties.EnableKeyRotation, true);
    assert.equal(key.DeletionPolicy, 'Retain');
  }));

  it('has the table: on demand, PITR, deletion protection, the customer key, TTL, pk/sk, retained', () => each((_, t) => {
    const [[, table]] = ofType(t, 'AWS::DynamoDB::Table');
    const p = table.Properties;
    assert.equal(p.BillingMode, 'PAY_PER_REQUEST');
    assert.equal(p.PointInTimeRecoverySpecification.PointInTimeRecoveryEnabled, true);
    assert.equal(p.DeletionProtectionEnabled, true);
    assert.equal(p.SSESpecification.SSEEnabled, true);
    assert.equal(p.SSESpecification.SSEType, 'KMS');
    assert.equal(refTarget(p.SSESpecification.KMSMasterKeyId), ofType(t, 'AWS::KMS::Key')[0][0]);
    assert.deepEqual(p.TimeToLiveSpecification, { AttributeName: 'ttl', Enabled: true });
    assert.deepEqual(p.KeySchema, [{ AttributeName: 'pk', KeyType: 'HASH' }, { AttributeName: 'sk', KeyType: 'RANGE' }]);
    assert.deepEqual(p.AttributeDefinitions, [{ AttributeName: 'pk', AttributeType: 'S' }, { AttributeName: 'sk', AttributeType: 'S' },
      { AttributeName: 'sweep_pk', AttributeType: 'S' }, { AttributeName: 'sweep_sk', AttributeType: 'S' }]);
    // The keep-alive sweep's sparse index (shared/src/store/dynamo/mod.rs).
    assert.deepEqual(p.GlobalSecondaryIndexes, [{ IndexName: 'sweep',
      KeySchema: [{ AttributeName: 'sweep_pk', KeyType: 'HASH' }, { AttributeName: 'sweep_sk', KeyType: 'RANGE' }],
      Projection: { ProjectionType: 'ALL' } }]);
    assert.equal(table.DeletionPolicy, 'Retain');
  }));

  it('creates the app secret under the prefix, with the customer key and a generated signing key', () => each((_, t) => {
    const [[, secret]] = ofType(t, 'AWS::SecretsManager::Secret');
    assert.equal(secret.Properties.Name, 'atlassian-bridge/app/oauth-client');
    assert.equal(refTarget(secret.Properties.KmsKeyId), ofType(t, 'AWS::KMS::Key')[0][0]);
    assert.deepEqual(JSON.parse(secret.Properties.GenerateSecretString.SecretStringTemplate), { client_secret: '' });
    assert.equal(secret.Properties.GenerateSecretString.GenerateStringKey, 'state_signing_key');
    assert.ok(secret.Properties.GenerateSecretString.PasswordLength >= 44, '>= 32 bytes once base64-decoded');
    assert.equal(secret.Properties.GenerateSecretString.ExcludePunctuation, true, 'base64 alphabet only');
    assert.equal(secret.DeletionPolicy, 'Retain');
  }));
});

describe('IAM', () => {
  it('grants nothing on "*" for secrets, the table or the key', () => each((region, t) => {
    const tableId = ofType(t, 'AWS::DynamoDB::Table')[0][0];
    const keyId = ofType(t, 'AWS::KMS::Key')[0][0];
    const secretId = ofType(t, 'AWS::SecretsManager::Secret')[0][0];
    const tenantSecrets = `arn:\${AWS::Partition}:secretsmanager:${region}:123456789012:secret:atlassian-bridge/tenants/*`;
    const appSecrets = `arn:\${AWS::Partition}:secretsmanager:${region}:123456789012:secret:atlassian-bridge/apps/*`;
    let checked = 0;
    for (const { holder, statement } of iamStatements(t)) {
      const actions = asList<string>(statement.Action);
      assert.ok(!actions.some((a) => a === '*' || /^[a-z0-9-]+:\*$/.test(a)), `${holder}: no service-wide action`);
      const touches = (svc: string) => actions.some((a) => a.startsWith(`${svc}:`));
      const res = asList<any>(statement.Resource);
      if (touches('secretsmanager')) {
        checked++;
        for (const r of res) {
          assert.ok(refTarget(r) === secretId || flatten(r) === tenantSecrets || flatten(r) === appSecrets,
            `${holder}: secret resource ${flatten(r)}`);
        }
      }
      if (touches('dynamodb')) {
        checked++;
        for (const r of res) {
          // The table, or (only for the sweeps' Query: keep-alive, issue-sync) its sweep index.
          const index = flatten(r) === `\${${tableId}.Arn}/index/sweep` &&
            (holder.startsWith('KeepAlive') || holder.startsWith('IssueSync')) &&
            asList<string>(statement.Action).join() === 'dynamodb:Query';
          assert.ok(index || refTarget(r) === tableId, `${holder}: table resource ${flatten(r)}`);
        }
      }
      if (touches('kms')) {
        checked++;
        for (const r of res) assert.equal(refTarget(r), keyId, `${holder}: key resource ${flatten(r)}`);
        assert.ok(statement.Condition?.StringEquals?.['kms:ViaService'], `${holder}: KMS only through a service`);
      }
      for (const r of res) if (r === '*') assert.deepEqual(actions.sort(), ['ec2:DescribeNetworkInterfaces', 'ec2:DescribeSubnets']);
    }
    assert.ok(checked >= FUNCTIONS.length * 3);
  }));

  /** Every IAM action granted to the role of function `name`. */
  const actionsOf = (t: Parameters<typeof resources>[0], name: string): string[] => {
    const res = resources(t);
    const role = refTarget(res[functionId(t, name)].Properties.Role);
    return iamStatements(t).filter(({ holder }) => asList<any>(res[holder]?.Properties?.Roles).some((r) => refTarget(r) === role))
      .flatMap(({ statement }) => asList<string>(statement.Action));
  };

  it('lets only the connect/disconnect functions delete tenant secrets, and only app-lifecycle write installations\' secrets',
    () => each((region, t) => {
    const appSecrets = `arn:\${AWS::Partition}:secretsmanager:${region}:123456789012:secret:atlassian-bridge/apps/*`;
    const res = resources(t);
    for (const name of FUNCTIONS) {
      const actions = actionsOf(t, name);
      assert.equal(actions.includes('secretsmanager:DeleteSecret'),
        ['oauth-callback', 'connections', 'app-lifecycle'].includes(name), name);
      const role = refTarget(res[functionId(t, name)].Properties.Role);
      const onApps = iamStatements(t)
        .filter(({ holder }) => asList<any>(res[holder]?.Properties?.Roles).some((r) => refTarget(r) === role))
        .filter(({ statement }) => asList<any>(statement.Resource).some((r) => flatten(r) === appSecrets))
        .flatMap(({ statement }) => asList<string>(statement.Action)).sort();
      assert.deepEqual(onApps, name === 'app-lifecycle'
        ? ['secretsmanager:CreateSecret', 'secretsmanager:DeleteSecret', 'secretsmanager:GetSecretValue',
          'secretsmanager:PutSecretValue']
        : ['secretsmanager:GetSecretValue'], name);
      assert.ok(actions.includes('secretsmanager:GetSecretValue'), `${name} reads the app secret at cold start`);
      assert.equal(actions.includes('events:PutEvents'),
        ['oauth-callback', 'publish-page', 'create-issue', 'connections', 'keep-alive', 'issue-sync', 'issue-webhook']
          .includes(name), name);
    }
  }));

  it('lets only keep-alive and issue-sync scan the table (their one-off backfills)', () => each((_, t) => {
    for (const name of FUNCTIONS) {
      assert.equal(actionsOf(t, name).includes('dynamodb:Scan'), name === 'keep-alive' || name === 'issue-sync', name);
    }
  }));

  it('lets only create-issue (its lookup cache) and issue-sync (keys to items, the outbox) batch-read and batch-write the table', () => each((_, t) => {
    for (const name of FUNCTIONS) {
      const actions = actionsOf(t, name);
      for (const batch of ['dynamodb:BatchGetItem', 'dynamodb:BatchWriteItem']) {
        assert.equal(actions.includes(batch), name === 'create-issue' || name === 'issue-sync', `${name}: ${batch}`);
      }
    }
  }));
});

describe('HTTP API', () => {
  it('has a JWT authorizer with the configured issuer and audience', () => each((_, t) => {
    t.resourceCountIs('AWS::ApiGatewayV2::Authorizer', 1);
    t.hasResourceProperties('AWS::ApiGatewayV2::Authorizer', {
      AuthorizerType: 'JWT',
      IdentitySource: ['$request.header.Authorization'],
      JwtConfiguration: { Issuer: 'https://auth.example.test/', Audience: ['atlassian-bridge'] },
    });
  }));

  it('creates exactly the routes of shared/routes.json, each to its function', () => each((_, t) => {
    const res = resources(t);
    const expected = realRoutes().routes.map((r) => `${r.method} ${r.path} -> ${r.function}`).sort();
    const actual = ofType(t, 'AWS::ApiGatewayV2::Route').map(([, r]) => {
      const integration = res[refTarget(r.Properties.Target['Fn::Join'][1][1])!];
      const fnId = refTarget(integration.Properties.IntegrationUri)!;
      const fnName = String(res[fnId].Properties.FunctionName).replace(/^atlassian-bridge-/, '');
      assert.equal(integration.Properties.PayloadFormatVersion, '2.0');
      return `${r.Properties.RouteKey} -> ${fnName}`;
    }).sort();
    assert.deepEqual(actual, expected);
  }));

  /** The Marketplace apps' public routes: Connect's descriptor, lifecycle and configure page, Forge Remote. */
  const APP_ROUTES = ['GET /connect/atlassian-connect.json', 'GET /connect/configure', 'POST /connect/installed',
    'POST /connect/link', 'POST /connect/uninstalled', 'POST /forge/lifecycle', 'POST /forge/link',
    'POST /forge/scheduled'];

  it('leaves the OAuth callback, the Jira webhook receiver and the apps\' routes, and only them, unauthenticated',
    () => each((_, t) => {
    const routes = ofType(t, 'AWS::ApiGatewayV2::Route').map(([, r]) => r.Properties);
    const open = routes.filter((r) => r.AuthorizationType !== 'JWT').map((r) => r.RouteKey).sort();
    assert.deepEqual(open, [...APP_ROUTES, 'GET /v1/oauth/callback', 'POST /v1/webhooks/jira'].sort());
    for (const key of open) assert.equal(routes.find((r) => r.RouteKey === key).AuthorizationType, 'NONE');
    const authorizer = ofType(t, 'AWS::ApiGatewayV2::Authorizer')[0][0];
    for (const r of routes.filter((x) => x.AuthorizationType === 'JWT')) assert.equal(refTarget(r.AuthorizerId), authorizer);
  }));

  it('throttles (tighter on the public routes) and writes JSON access logs without query strings', () => each((_, t) => {
    const [[, stage]] = ofType(t, 'AWS::ApiGatewayV2::Stage');
    const p = stage.Properties;
    assert.equal(p.StageName, '$default');
    assert.deepEqual(p.DefaultRouteSettings, { ThrottlingBurstLimit: 100, ThrottlingRateLimit: 50 });
    assert.deepEqual(p.RouteSettings, {
      'GET /v1/oauth/callback': { ThrottlingBurstLimit: 10, ThrottlingRateLimit: 5 },
      'POST /v1/webhooks/jira': { ThrottlingBurstLimit: 50, ThrottlingRateLimit: 25 },
      ...Object.fromEntries(APP_ROUTES.map((k) => [k, { ThrottlingBurstLimit: 20, ThrottlingRateLimit: 10 }])),
    });
    const logGroup = resources(t)[refTarget(p.AccessLogSettings.DestinationArn)!];
    assert.equal(logGroup.Type, 'AWS::Logs::LogGroup');
    const format = JSON.parse(p.AccessLogSettings.Format);
    assert.equal(format.requestId, '$context.requestId');
    assert.ok(!JSON.stringify(format).includes('querystring') && !JSON.stringify(format).includes('rawQueryString'));
    const routes = ofType(t, 'AWS::ApiGatewayV2::Route').map(([id]) => id);
    assert.ok(routes.every((r) => asList(stage.DependsOn).includes(r)), 'the stage waits for the routes it configures');
  }));
});

describe('events', () => {
  it('has the bus, and exactly the rules of shared/routes.json and one for each consumer\'s failure records', () => each((_, t) => {
    t.resourceCountIs('AWS::Events::EventBus', 1);
    t.hasResourceProperties('AWS::Events::EventBus', { Name: 'atlassian-bridge' });
    const rules = ofType(t, 'AWS::Events::Rule').map(([, r]) => r.Properties.EventPattern['detail-type'][0]).sort();
    const consumers = new Set(realRoutes().events.map((e) => e.function));
    const expected = [...realRoutes().events.map((e) => e.detail_type), ...[...consumers].map(() => INVOCATION_FAILURE)];
    assert.deepEqual(rules, expected.sort());
  }));

  const t = withEvents.templates.get('eu-central-1')!;
  const res = resources(t);
  it('delivers Action Items Deferred to create-issue from our own source only (the rest of a 202 issue job)', () => {
    const [[, rule]] = ofType(t, 'AWS::Events::Rule').filter(([, r]) => r.Properties.EventPattern['detail-type'][0] === 'Action Items Deferred');
    assert.deepEqual(rule.Properties.EventPattern.source, ['atlassian-bridge']);
    assert.equal(refTarget(rule.Properties.Targets[0].Arn), functionId(t, 'create-issue'));
    assert.ok(rule.Properties.Targets[0].DeadLetterConfig, 'a part that still fails lands in the DLQ');
  });
  for (const [detailType, fn] of [['Report Issues Created', 'publish-page'], ['Page Published', 'create-issue']]) {
    it(`delivers ${detailType} to ${fn} from our own source only (the links between a report's page and its issues)`, () => {
      const [[, rule]] = ofType(t, 'AWS::Events::Rule').filter(([, r]) => r.Properties.EventPattern['detail-type'][0] === detailType);
      assert.deepEqual(rule.Properties.EventPattern.source, ['atlassian-bridge']);
      assert.equal(refTarget(rule.Properties.Targets[0].Arn), functionId(t, fn));
      assert.ok(rule.Properties.Targets[0].DeadLetterConfig, 'a delivery that still fails lands in the DLQ');
    });
  }
  for (const fn of ['publish-page', 'create-issue']) {
    it(`sends ${fn}'s dead-lettered events to the bus as Lambda's records, and brings its own records back to it`, () => {
      const fnId = functionId(t, fn);
      const [[, invokeConfig]] = ofType(t, 'AWS::Lambda::EventInvokeConfig').filter(([, c]) => refTarget(c.Properties.FunctionName) === fnId);
      const busId = ofType(t, 'AWS::Events::EventBus')[0][0];
      const destination = invokeConfig.Properties.DestinationConfig.OnFailure.Destination;
      assert.equal(refTarget(destination), busId, 'the on-failure destination is the bus');
      // Lambda puts the record with the function's role.
      const policies = ofType(t, 'AWS::IAM::Policy').filter(([, p]) => p.Properties.Roles.some((r: any) => refTarget(r) === refTarget(res[fnId].Properties.Role)));
      const statements = policies.flatMap(([, p]) => p.Properties.PolicyDocument.Statement);
      assert.ok(statements.some((st: any) => asList(st.Action).includes('events:PutEvents') && refTarget(st.Resource) === busId));
      const records = ofType(t, 'AWS::Events::Rule').filter(([, r]) => r.Properties.EventPattern['detail-type'][0] === INVOCATION_FAILURE &&
        refTarget(r.Properties.Targets[0].Arn) === fnId);
      assert.equal(records.length, 1, 'one rule brings the function its own records');
      const [[, rule]] = records;
      assert.deepEqual(rule.Properties.EventPattern.source, ['lambda']);
      const arns = rule.Properties.EventPattern.detail.requestContext.functionArn;
      assert.equal(refTarget(arns[0]), fnId, 'only this function\'s records');
      assert.ok(rule.Properties.Targets[0].DeadLetterConfig, 'a record that cannot be delivered lands in the DLQ');
    });
  }
  it('gives the scheduled functions no on-failure destination (no job to report)', () => {
    for (const fn of ['keep-alive', 'issue-sync']) {
      const fnId = functionId(t, fn);
      const configs = ofType(t, 'AWS::Lambda::EventInvokeConfig').filter(([, c]) => refTarget(c.Properties.FunctionName) === fnId);
      assert.ok(configs.every(([, c]) => !c.Properties.DestinationConfig), fn);
    }
  });
  for (const [detailType, fn] of [['Report Ready', 'publish-page'], ['Action Items Ready', 'create-issue']]) {
    it(`delivers ${detailType} to ${fn}: retry policy and a KMS-encrypted DLQ on the rule and the function`, () => {
      const fnId = functionId(t, fn);
      const [[, rule]] = ofType(t, 'AWS::Events::Rule').filter(([, r]) => r.Properties.EventPattern['detail-type'][0] === detailType);
      assert.deepEqual(rule.Properties.EventPattern.source, [{ 'anything-but': ['atlassian-bridge'] }], 'never our own events');
      assert.equal(refTarget(rule.Properties.EventBusName), ofType(t, 'AWS::Events::EventBus')[0][0]);
      const [target] = rule.Properties.Targets;
      assert.equal(refTarget(target.Arn), fnId);
      assert.deepEqual(target.RetryPolicy, { MaximumEventAgeInSeconds: 86400, MaximumRetryAttempts: 185 });
      const dlqId = refTarget(target.DeadLetterConfig.Arn)!;
      const dlq = res[dlqId];
      assert.equal(dlq.Type, 'AWS::SQS::Queue');
      assert.equal(refTarget(dlq.Properties.KmsMasterKeyId), ofType(t, 'AWS::KMS::Key')[0][0]);
      assert.equal(dlq.Properties.MessageRetentionPeriod, 14 * 24 * 3600);
      assert.equal(refTarget(res[fnId].Properties.DeadLetterConfig.TargetArn), dlqId, 'failed async invocations land there too');
      const [[, invokeConfig]] = ofType(t, 'AWS::Lambda::EventInvokeConfig').filter(([, c]) => refTarget(c.Properties.FunctionName) === fnId);
      assert.equal(invokeConfig.Properties.MaximumRetryAttempts, ASYNC_RETRY_ATTEMPTS);
      assert.equal(invokeConfig.Properties.MaximumEventAgeInSeconds, ASYNC_MAX_EVENT_AGE.toSeconds());
      // EventBridge may write to the queue (queue policy) and encrypt for it (key policy).
      const [[, queuePolicy]] = ofType(t, 'AWS::SQS::QueuePolicy').filter(([, q]) => q.Properties.Queues.some((x: any) => refTarget(x) === dlqId));
      assert.ok(queuePolicy.Properties.PolicyDocument.Statement.some((s: any) => s.Principal?.Service === 'events.amazonaws.com' &&
        s.Condition?.ArnEquals?.['aws:SourceArn']));
      const [[, key]] = ofType(t, 'AWS::KMS::Key');
      assert.ok(key.Properties.KeyPolicy.Statement.some((s: any) => s.Principal?.Service === 'events.amazonaws.com' &&
        flatten(s.Condition.ArnLike['aws:SourceArn']).endsWith(':rule/atlassian-bridge/*')));
    });
  }
});

describe('schedules', () => {
  it('runs the keep-alive sweep hourly through EventBridge Scheduler, with retries and a dead-letter queue', () => each((region, t) => {
    const res = resources(t);
    const schedules = ofType(t, 'AWS::Scheduler::Schedule');
    assert.equal(schedules.length, 2, 'keep-alive, issue-sync');
    const [, schedule] = schedules.find(([, s]) => s.Properties.Name === 'atlassian-bridge-keep-alive')!;
    const p = schedule.Properties;
    assert.equal(p.Name, 'atlassian-bridge-keep-alive');
    assert.equal(p.ScheduleExpression, 'rate(1 hour)');
    assert.deepEqual(p.FlexibleTimeWindow, { Mode: 'OFF' });
    assert.equal(p.State, 'ENABLED');
    const fnId = functionId(t, 'keep-alive');
    assert.equal(refTarget(p.Target.Arn), fnId);
    assert.deepEqual(JSON.parse(p.Target.Input), { sweep: 'scheduled' });
    assert.deepEqual(p.Target.RetryPolicy, { MaximumRetryAttempts: 3, MaximumEventAgeInSeconds: 3300 });
    const dlqId = refTarget(p.Target.DeadLetterConfig.Arn)!;
    assert.equal(res[dlqId].Type, 'AWS::SQS::Queue');
    assert.equal(refTarget(res[dlqId].Properties.KmsMasterKeyId), ofType(t, 'AWS::KMS::Key')[0][0]);
    assert.equal(refTarget(res[fnId].Properties.DeadLetterConfig.TargetArn), dlqId, 'failed runs land there too');
    assert.equal(res[fnId].Properties.ReservedConcurrentExecutions, 1, 'one run at a time');
    assert.equal(res[fnId].Properties.Timeout, 300);

    // Its own role: only the scheduler of this account and schedule may assume it ...
    const roleId = refTarget(p.Target.RoleArn)!;
    const [trust] = res[roleId].Properties.AssumeRolePolicyDocument.Statement;
    assert.deepEqual(trust.Principal, { Service: 'scheduler.amazonaws.com' });
    assert.equal(trust.Condition.StringEquals['aws:SourceAccount'], '123456789012');
    assert.ok(flatten(trust.Condition.ArnEquals['aws:SourceArn']).endsWith(`:scheduler:${region}:123456789012:schedule/default/atlassian-bridge-keep-alive`));
    // ... and it may invoke that one function and write that one queue (through the key), nothing else.
    const granted = iamStatements(t).filter(({ holder }) => refTarget(res[holder]?.Properties?.Roles?.[0]) === roleId)
      .map(({ statement }) => [asList<string>(statement.Action).join(','), asList<any>(statement.Resource).map(refTarget).join(',')]);
    assert.deepEqual(granted, [['lambda:InvokeFunction', fnId], ['sqs:SendMessage', dlqId],
      ['kms:GenerateDataKey,kms:Decrypt', ofType(t, 'AWS::KMS::Key')[0][0]]]);
  }));

  it('runs the issue sync every five minutes, one run at a time, deliveries older than four minutes dropped to its queue', () => each((_, t) => {
    const res = resources(t);
    const [, schedule] = ofType(t, 'AWS::Scheduler::Schedule').find(([, s]) => s.Properties.Name === 'atlassian-bridge-issue-sync')!;
    const p = schedule.Properties;
    assert.equal(p.ScheduleExpression, 'rate(5 minutes)');
    assert.deepEqual(JSON.parse(p.Target.Input), { sync: 'scheduled' });
    assert.deepEqual(p.Target.RetryPolicy, { MaximumRetryAttempts: 3, MaximumEventAgeInSeconds: 240 });
    const fnId = functionId(t, 'issue-sync');
    assert.equal(refTarget(p.Target.Arn), fnId);
    const dlqId = refTarget(p.Target.DeadLetterConfig.Arn)!;
    assert.equal(refTarget(res[fnId].Properties.DeadLetterConfig.TargetArn), dlqId, 'failed runs land there too');
    assert.equal(res[fnId].Properties.ReservedConcurrentExecutions, 1, 'one run at a time');
    assert.equal(res[fnId].Properties.Timeout, 300);
    // Alarms on its failed runs and on its queue.
    const alarms = ofType(t, 'AWS::CloudWatch::Alarm').map(([, a]) => a.Properties);
    assert.ok(alarms.some((a) => a.MetricName === 'Errors' && refTarget(a.Dimensions[0].Value) === fnId));
    assert.ok(alarms.some((a) => a.MetricName === 'ApproximateNumberOfMessagesVisible' &&
      a.Dimensions.some((d: any) => flatten(d.Value).includes(dlqId))));
    // Its table access: the sweep index's Query, batch reads and writes, the backfill's Scan.
    const role = refTarget(res[fnId].Properties.Role);
    const actions = iamStatements(t).filter(({ holder }) => asList<any>(res[holder]?.Properties?.Roles).some((r) => refTarget(r) === role))
      .flatMap(({ statement }) => asList<string>(statement.Action));
    for (const action of ['dynamodb:Query', 'dynamodb:BatchGetItem', 'dynamodb:BatchWriteItem', 'dynamodb:Scan',
      'dynamodb:UpdateItem', 'dynamodb:PutItem', 'dynamodb:ConditionCheckItem', 'events:PutEvents']) {
      assert.ok(actions.includes(action), action);
    }
  }));
});

describe('alarms', () => {
  const alarms = (t: any) => ofType(t, 'AWS::CloudWatch::Alarm').map(([, a]) => a.Properties);
  it('alarm on each function\'s errors and throttles, and on 5xx at the API', () => each((_, t) => {
    const all = alarms(t);
    for (const name of FUNCTIONS) {
      const fnId = functionId(t, name);
      for (const metric of ['Errors', 'Throttles']) {
        assert.ok(all.some((a) => a.MetricName === metric && a.Namespace === 'AWS/Lambda' &&
          refTarget(a.Dimensions[0].Value) === fnId), `${name} ${metric}`);
      }
    }
    const apiId = ofType(t, 'AWS::ApiGatewayV2::Api')[0][0];
    assert.ok(all.some((a) => a.MetricName === '5xx' && a.Namespace === 'AWS/ApiGateway' && refTarget(a.Dimensions[0].Value) === apiId));
    assert.ok(all.every((a) => a.AlarmActions === undefined), 'no topic configured: no actions');
  }));

  // The functions' EMF metrics (shared/src/metrics.rs): names and dimensions as the code emits them.
  const ns = 'AtlassianBridge/atlassian-bridge';
  const metricsOf = (a: any) => (a.Metrics ?? []).filter((q: any) => q.MetricStat).map((q: any) => q.MetricStat.Metric);
  it('alarm on jobs failed for good in each job function', () => each((_, t) => {
    for (const fn of ['publish-page', 'create-issue']) {
      const a = alarms(t).find((x) => x.MetricName === 'JobsFailed' && x.Namespace === ns &&
        JSON.stringify(x.Dimensions) === JSON.stringify([{ Name: 'Function', Value: fn }]));
      assert.ok(a, fn);
      assert.equal(a.Statistic, 'Sum');
      assert.equal(a.Threshold, 5);
    }
  }));

  it('alarm on the share of 429s per product, over enough requests', () => each((region, t) => {
    for (const product of ['jira', 'confluence']) {
      const a = alarms(t).find((x) => x.AlarmName === `atlassian-bridge-${region}-${product}-429-rate`);
      assert.ok(a, product);
      const used = metricsOf(a);
      assert.deepEqual(used.map((m: any) => m.MetricName).sort(), ['AtlassianLatency', 'AtlassianThrottled']);
      for (const m of used) {
        assert.equal(m.Namespace, ns);
        assert.deepEqual(m.Dimensions, [{ Name: 'Product', Value: product }]);
      }
      const expression = a.Metrics.find((q: any) => q.Expression).Expression;
      assert.match(expression, /IF\(requests >= 20, 100 \* FILL\(throttled, 0\) \/ requests, 0\)/);
      assert.equal(a.Threshold, 10);
      assert.equal(a.EvaluationPeriods, 3);
    }
  }));

  it('alarm on any failed token refresh, summed over every function', () => each((_, t) => {
    const a = alarms(t).find((x) => String(x.AlarmName).endsWith('-token-refresh-failures'));
    assert.ok(a);
    const used = metricsOf(a);
    assert.deepEqual(used.map((m: any) => m.Dimensions[0].Value).sort(), [...FUNCTIONS].sort());
    assert.ok(used.every((m: any) => m.MetricName === 'TokenRefreshFailures' && m.Namespace === ns));
    assert.equal(a.Threshold, 1);
  }));

  it('never use a tenant as a dimension', () => each((_, t) => {
    const dims = JSON.stringify(ofType(t, 'AWS::CloudWatch::Alarm').map(([, x]) => x.Properties));
    assert.ok(!/"Name":"(tenant|Tenant)/.test(dims));
  }));

  it('alarm on each dead-letter queue\'s depth', () => {
    const t = withEvents.templates.get('eu-central-1')!;
    const queues = ofType(t, 'AWS::SQS::Queue').map(([id]) => id);
    assert.equal(queues.length, 4, 'publish-page, create-issue, keep-alive, issue-sync');
    for (const q of queues) {
      assert.ok(alarms(t).some((a) => a.MetricName === 'ApproximateNumberOfMessagesVisible' &&
        a.Dimensions.some((d: any) => flatten(d.Value).includes(q)) && a.Threshold === 1));
    }
  });
});

describe('dashboard', () => {
  it('graphs the EMF metrics of the deployment\'s namespace', () => each((region, t) => {
    const boards = ofType(t, 'AWS::CloudWatch::Dashboard');
    assert.equal(boards.length, 1);
    assert.equal(boards[0][1].Properties.DashboardName, `atlassian-bridge-${region}`);
    const body = flatten(boards[0][1].Properties.DashboardBody);
    for (const metric of ['JobsStarted', 'JobsSucceeded', 'JobsFailed', 'JobsRetried', 'ItemsCreated', 'ItemsFailed',
      'PagesPublished', 'AtlassianLatency', 'AtlassianThrottled', 'TokenRefreshes', 'TokenRefreshFailures',
      'RefreshLeaseWait', 'TenantSlotWait', 'TenantSlotRefused', 'JobLeaseWait']) {
      assert.ok(body.includes(`"${metric}"`), metric);
    }
    assert.ok(body.includes('AtlassianBridge/atlassian-bridge'));
    assert.ok(body.includes('{AtlassianBridge/atlassian-bridge,Function,ErrorCode} MetricName=\\"JobsFailed\\"'), body.slice(0, 300));
    assert.ok(!/"tenant"/i.test(body), 'no tenant on the dashboard');
  }));
});

describe('outputs', () => {
  it('give the API URL, bus name, egress IPs, table name and KMS key ARN', () => each((_, t) => {
    const o = t.toJSON().Outputs;
    const apiId = ofType(t, 'AWS::ApiGatewayV2::Api')[0][0];
    assert.equal(flatten(o.ApiUrl.Value), `\${${apiId}.ApiEndpoint}/`);
    assert.equal(refTarget(o.EventBusName.Value), ofType(t, 'AWS::Events::EventBus')[0][0]);
    assert.equal(refTarget(o.TableName.Value), ofType(t, 'AWS::DynamoDB::Table')[0][0]);
    assert.deepEqual(o.KmsKeyArn.Value, { 'Fn::GetAtt': [ofType(t, 'AWS::KMS::Key')[0][0], 'Arn'] });
    assert.equal(o.EgressIps.Value['Fn::Join'][0], ',');
    assert.ok(flatten(o.OAuthRedirectUri.Value).endsWith('/v1/oauth/callback'));
    assert.equal(o.OAuthClientSecretName.Value, 'atlassian-bridge/app/oauth-client');
  }));
});

function functionSecurityGroupIds(t: any): Set<string> {
  return new Set(ofType(t, 'AWS::Lambda::Function').flatMap(([, f]) => f.Properties.VpcConfig.SecurityGroupIds.map(
    (g: any) => refTarget(g)!)));
}
