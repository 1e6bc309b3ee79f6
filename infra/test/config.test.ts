// Context handling: the optional settings change the stack as documented, and bad settings fail
// before anything is built, all problems at once.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig, PLACEHOLDER_ACCOUNT } from '../lib/config';
import { parseRoutes } from '../lib/routes';
import { asList, flatten, functionId, iamStatements, ofType, refTarget, resources, synth } from './helpers';

const REQUIRED = {
  jwtIssuer: 'https://auth.example.test/', jwtAudience: 'atlassian-bridge', oauthClientId: 'id',
  allowedReturnUrls: 'https://app.example.test/',
};
const config = (ctx: Record<string, unknown>, env: NodeJS.ProcessEnv = {}) => loadConfig((k) => ctx[k], env);
const problems = (ctx: Record<string, unknown>): string[] => {
  try {
    config(ctx);
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    return (e as ConfigError).problems;
  }
  assert.fail('expected a ConfigError');
};

describe('context parsing', () => {
  it('defaults: the US and the EU, 2 AZs, settings derived from the deployment name', () => {
    const [us, eu] = config(REQUIRED);
    assert.deepEqual([us.region, eu.region], ['us-east-1', 'eu-central-1']);
    assert.equal(us.stackName, 'atlassian-bridge-us-east-1');
    assert.equal(us.azCount, 2);
    assert.equal(us.secretPrefix, 'atlassian-bridge/');
    assert.equal(us.eventBusName, 'atlassian-bridge');
    assert.equal(us.tenantClaim, 'tenant_id');
    assert.ok(us.functionsDir.endsWith(path.join('dist', 'arm64')));
  });

  it('takes the account from the CLI\'s environment, else the placeholder (synth only)', () => {
    assert.equal(config(REQUIRED, { CDK_DEFAULT_ACCOUNT: '210987654321' })[0].account, '210987654321');
    const [c] = config(REQUIRED);
    assert.equal(c.account, PLACEHOLDER_ACCOUNT);
    assert.equal(c.placeholderAccount, true);
  });

  it('reads -c strings: lists as "a,b" or JSON, numbers, objects as JSON', () => {
    const [c] = config({
      ...REQUIRED, regions: 'eu-central-1', azCount: '3', extraEgressPorts: '8443,8090',
      jwtAudience: '["a","b"]', reservedConcurrency: '{"create-issue": 0, "discovery": 4}',
      regionOverrides: '{"eu-central-1": {"oauthClientId": "eu-client"}}',
    });
    assert.deepEqual([c.region, c.azCount, c.extraEgressPorts, c.jwtAudience], ['eu-central-1', 3, [8443, 8090], ['a', 'b']]);
    assert.deepEqual(c.reservedConcurrency, { 'publish-page': 10, 'keep-alive': 1, 'issue-sync': 1, discovery: 4 },
      '0 removes a reservation');
    assert.equal(c.oauthClientId, 'eu-client');
  });

  it('overrides per region', () => {
    const [us, eu] = config({ ...REQUIRED, regionOverrides: { 'eu-central-1': { azCount: 3, tenantClaim: 'org' } } });
    assert.deepEqual([us.azCount, eu.azCount, us.tenantClaim, eu.tenantClaim], [2, 3, 'tenant_id', 'org']);
  });

  it('reports every problem at once', () => {
    const p = problems({ azCount: 4, regions: 'us-east-1,mars-1', extraEgressPorts: '70000' });
    for (const expected of ['jwtIssuer (us-east-1) is required', 'jwtAudience (us-east-1) is required',
      'oauthClientId (us-east-1) is required', 'allowedReturnUrls (us-east-1) is required', 'azCount (us-east-1) must be 2 or 3',
      'regions: "mars-1" is not an AWS region name', 'extraEgressPorts (us-east-1): 70000 is not a TCP port']) {
      assert.ok(p.some((x) => x.startsWith(expected)), `missing: ${expected}\n${p.join('\n')}`);
    }
  });

  it('refuses regional settings for all regions at once, and ARNs from another region', () => {
    assert.ok(problems({ ...REQUIRED, alarmTopicArn: 'arn:aws:sns:us-east-1:123456789012:t' })
      .some((p) => p.startsWith('alarmTopicArn names something in one region')));
    assert.ok(problems({ ...REQUIRED, regionOverrides: { 'eu-central-1': { alarmTopicArn: 'arn:aws:sns:us-east-1:123456789012:t' } } })
      .some((p) => p.includes('is in us-east-1, not eu-central-1')));
  });

  it('wants one existing Elastic IP per AZ, with its address', () => {
    const eips = [{ allocationId: 'eipalloc-0123456789abcdef0', publicIp: '203.0.113.10' }];
    assert.ok(problems({ ...REQUIRED, regions: 'us-east-1', egressIpAllocations: eips })
      .some((p) => p.includes('lists 1 Elastic IPs but azCount is 2')));
    assert.ok(problems({ ...REQUIRED, regions: 'us-east-1', egressIpAllocations: [{ allocationId: 'eipalloc-0123456789abcdef0' }, eips[0]] })
      .some((p) => p.includes('is not an IPv4 address')));
  });

  it('refuses http URLs, secret prefixes with wildcards, unknown functions and unknown keys', () => {
    const p = problems({ ...REQUIRED, jwtIssuer: 'http://x/', secretPrefix: 'a*/', memoryMb: { nope: 256 }, configFile: writeJson({ tpyo: 1 }) });
    for (const expected of ['jwtIssuer (us-east-1): "http://x/" must be an https URL', 'secretPrefix (us-east-1): "a*/" must end',
      'memoryMb (us-east-1): "nope" is not one of the functions', 'unknown setting "tpyo" in the config file']) {
      assert.ok(p.some((x) => x.startsWith(expected)), `missing: ${expected}\n${p.join('\n')}`);
    }
  });

  it('refuses a reused table without its key', () => {
    assert.ok(problems({ ...REQUIRED, regions: 'us-east-1', existingTableName: 't' }).some((p) => p.includes('needs existingKmsKeyArn')));
  });
});

describe('routes.json parsing', () => {
  it('refuses unknown functions, bad auth and duplicates', () => {
    assert.throws(() => parseRoutes({ routes: [{ method: 'GET', path: '/x', function: 'nope', auth: 'jwt' }] }), /nope/);
    assert.throws(() => parseRoutes({ routes: [{ method: 'GET', path: '/x', function: 'discovery', auth: 'maybe' }] }), /auth/);
    const r = { method: 'GET', path: '/x', function: 'discovery', auth: 'jwt' };
    assert.throws(() => parseRoutes({ routes: [r, r] }), /listed twice/);
    assert.throws(() => parseRoutes({ routes: [], events: [{ detail_type: 'X', function: 'nope' }] }), /nope/);
  });
});

describe('optional settings', () => {
  it('missing zips fail the synth and say how to build them', () => {
    assert.throws(() => synth({ regions: 'us-east-1', functionsDir: fs.mkdtempSync(path.join(os.tmpdir(), 'empty-')) }),
      /Lambda zips missing .*oauth-callback\.zip.*make package/s);
  });

  it('3 AZs: three NAT gateways on three retained Elastic IPs', () => {
    const t = synth({ regions: 'eu-central-1', azCount: 3 }).templates.get('eu-central-1')!;
    assert.equal(ofType(t, 'AWS::EC2::NatGateway').length, 3);
    assert.equal(ofType(t, 'AWS::EC2::EIP').filter(([, e]) => e.DeletionPolicy === 'Retain').length, 3);
    assert.equal(ofType(t, 'AWS::EC2::Subnet').length, 6);
    for (const [, f] of ofType(t, 'AWS::Lambda::Function')) assert.equal(f.Properties.VpcConfig.SubnetIds.length, 3);
  });

  it('existing Elastic IPs (a rebuild): no new ones, the NAT gateways use them, the outputs list them', () => {
    const eips = [{ allocationId: 'eipalloc-0123456789abcdef0', publicIp: '203.0.113.10' },
      { allocationId: 'eipalloc-0fedcba9876543210', publicIp: '203.0.113.11' }];
    const t = synth({ regions: 'us-east-1', egressIpAllocations: eips }).templates.get('us-east-1')!;
    assert.equal(ofType(t, 'AWS::EC2::EIP').length, 0);
    assert.deepEqual(ofType(t, 'AWS::EC2::NatGateway').map(([, n]) => n.Properties.AllocationId).sort(), eips.map((e) => e.allocationId));
    const o = t.toJSON().Outputs;
    assert.equal(o.EgressIps.Value, '203.0.113.10,203.0.113.11');
    assert.equal(o.EgressIpAllocationIds.Value, 'eipalloc-0123456789abcdef0,eipalloc-0fedcba9876543210');
  });

  it('extra egress ports for Server/DC hosts open only those ports', () => {
    const t = synth({ regions: 'us-east-1', extraEgressPorts: '8443,8090' }).templates.get('us-east-1')!;
    const fnSg = refTarget(ofType(t, 'AWS::Lambda::Function')[0][1].Properties.VpcConfig.SecurityGroupIds[0])!;
    const egress = resources(t)[fnSg].Properties.SecurityGroupEgress.map((e: any) => `${e.CidrIp}:${e.FromPort}-${e.ToPort}`).sort();
    assert.deepEqual(egress, ['0.0.0.0/0:443-443', '0.0.0.0/0:8090-8090', '0.0.0.0/0:8443-8443']);
  });

  it('a rebuild on kept resources: existing key, table and app secret are used, not created', () => {
    const key = 'arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555';
    const t = synth({ regions: 'us-east-1', existingKmsKeyArn: key, existingTableName: 'kept-table',
      oauthClientSecretName: 'atlassian-bridge/app/oauth-client' }).templates.get('us-east-1')!;
    for (const type of ['AWS::KMS::Key', 'AWS::DynamoDB::Table', 'AWS::SecretsManager::Secret']) assert.equal(ofType(t, type).length, 0, type);
    const env = resources(t)[functionId(t, 'connections')].Properties.Environment.Variables;
    assert.equal(env.BRIDGE_KMS_KEY_ID, key);
    assert.equal(env.BRIDGE_TABLE_NAME, 'kept-table');
    assert.equal(env.BRIDGE_OAUTH_CLIENT_SECRET_NAME, 'atlassian-bridge/app/oauth-client');
    const resourcesOf = (prefix: string) => iamStatements(t).filter(({ statement }) => asList<string>(statement.Action)
      .some((a) => a.startsWith(prefix))).flatMap(({ statement }) => asList<any>(statement.Resource).map(flatten));
    assert.deepEqual([...new Set(resourcesOf('kms:'))], [key]);
    // The kept table and (for the keep-alive sweep only) its sweep index.
    assert.deepEqual([...new Set(resourcesOf('dynamodb:'))], ['arn:${AWS::Partition}:dynamodb:us-east-1:123456789012:table/kept-table',
      'arn:${AWS::Partition}:dynamodb:us-east-1:123456789012:table/kept-table/index/sweep']);
    assert.ok(resourcesOf('secretsmanager:').includes(
      'arn:${AWS::Partition}:secretsmanager:us-east-1:123456789012:secret:atlassian-bridge/app/oauth-client-??????'));
  });

  it('a custom domain becomes the API URL and the OAuth redirect URI', () => {
    const t = synth({ regions: 'eu-central-1', regionOverrides: { 'eu-central-1': {
      customDomainName: 'bridge-eu.example.test',
      customDomainCertificateArn: 'arn:aws:acm:eu-central-1:123456789012:certificate/abc',
    } } }).templates.get('eu-central-1')!;
    t.hasResourceProperties('AWS::ApiGatewayV2::DomainName', { DomainName: 'bridge-eu.example.test',
      DomainNameConfigurations: [{ SecurityPolicy: 'TLS_1_2', EndpointType: 'REGIONAL',
        CertificateArn: 'arn:aws:acm:eu-central-1:123456789012:certificate/abc' }] });
    t.resourceCountIs('AWS::ApiGatewayV2::ApiMapping', 1);
    const env = resources(t)[functionId(t, 'oauth-callback')].Properties.Environment.Variables;
    assert.equal(env.BRIDGE_OAUTH_REDIRECT_URI, 'https://bridge-eu.example.test/v1/oauth/callback');
    assert.equal(t.toJSON().Outputs.ApiUrl.Value, 'https://bridge-eu.example.test/');
    // The execute-api URL would be a second way in, around the domain: off.
    t.hasResourceProperties('AWS::ApiGatewayV2::Api', { DisableExecuteApiEndpoint: true });
  });

  it('without a custom domain the execute-api URL is the API URL, so it stays on', () => {
    const t = synth({ regions: 'eu-central-1' }).templates.get('eu-central-1')!;
    const [[, api]] = ofType(t, 'AWS::ApiGatewayV2::Api');
    assert.equal(api.Properties.DisableExecuteApiEndpoint, false);
  });

  it('a production stack logs at info, warn or error only; a test stack may log more', () => {
    for (const level of ['info', 'warn', 'error']) assert.equal(config({ ...REQUIRED, rustLog: level })[0].rustLog, level);
    for (const level of ['debug', 'trace', 'info,reqwest=trace', 'bridge=debug']) {
      assert.ok(problems({ ...REQUIRED, rustLog: level }).some((p) => p.includes('not allowed in a production stack')),
        level);
    }
    assert.equal(config({ ...REQUIRED, rustLog: 'debug', production: 'false' })[0].rustLog, 'debug');
    assert.ok(problems({ ...REQUIRED, production: 'maybe' }).some((p) => p.includes('production (us-east-1) must be true or false')));
  });

  it('the KMS key lets CloudWatch Logs use it for this deployment\'s log groups only', () => {
    const t = synth({ regions: 'us-east-1', deploymentName: 'acme-bridge' }).templates.get('us-east-1')!;
    const [[, key]] = ofType(t, 'AWS::KMS::Key');
    const logs = key.Properties.KeyPolicy.Statement.find((s: any) => s.Sid === 'CloudWatchLogsForThisDeploymentsLogGroups');
    assert.equal(flatten(logs.Condition.ArnLike['kms:EncryptionContext:aws:logs:arn']),
      'arn:${AWS::Partition}:logs:us-east-1:123456789012:log-group:/acme-bridge/*');
    const groups = ofType(t, 'AWS::Logs::LogGroup');
    assert.ok(groups.length >= 6);
    for (const [id, group] of groups) {
      assert.ok(String(group.Properties.LogGroupName).startsWith('/acme-bridge/'), id);
      assert.ok(group.Properties.KmsKeyId, id);
    }
  });

  it('an SNS topic from context receives every alarm', () => {
    const topic = 'arn:aws:sns:us-east-1:123456789012:ops';
    const t = synth({ regions: 'us-east-1', alarmTopicArn: topic }).templates.get('us-east-1')!;
    const alarms = ofType(t, 'AWS::CloudWatch::Alarm');
    assert.ok(alarms.length > 0);
    for (const [, a] of alarms) {
      assert.deepEqual(a.Properties.AlarmActions, [topic]);
      assert.deepEqual(a.Properties.OKActions, [topic]);
    }
  });
});

function writeJson(doc: unknown): string {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'bridge-config-')), 'config.json');
  fs.writeFileSync(file, JSON.stringify(doc));
  return file;
}
