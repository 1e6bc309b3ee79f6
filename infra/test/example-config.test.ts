// config/example.json, the deploy configuration the READMEs' `cdk deploy` line uses: it holds every
// context value, synthesizes as it stands (two regions, one of them rebuilt on kept resources), and
// infra/README.md documents every value.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { INFRA_DIR, KNOWN_KEYS } from '../lib/config';
import { EXAMPLE_CONFIG, exampleContext, functionId, ofType, resources, synth } from './helpers';

const example = JSON.parse(fs.readFileSync(path.join(INFRA_DIR, EXAMPLE_CONFIG), 'utf8'));

describe('config/example.json', () => {
  it('holds every context value (configFile aside: it names the file)', () => {
    const given = new Set([...Object.keys(example),
      ...Object.values(example.regionOverrides as Record<string, object>).flatMap((o) => Object.keys(o))]);
    const missing = KNOWN_KEYS.filter((k) => k !== 'configFile' && !given.has(k));
    assert.deepEqual(missing, []);
  });

  it('synthesizes: both regions in the example account, us-east-1 fresh, eu-central-1 on kept resources', () => {
    const { stacks, templates } = synth(exampleContext());
    assert.deepEqual(stacks.map((s) => [s.stackName, s.account, s.region]), [
      ['atlassian-bridge-us-east-1', '111122223333', 'us-east-1'],
      ['atlassian-bridge-eu-central-1', '111122223333', 'eu-central-1']]);
    const [us, eu] = [templates.get('us-east-1')!, templates.get('eu-central-1')!];
    for (const type of ['AWS::KMS::Key', 'AWS::DynamoDB::Table', 'AWS::SecretsManager::Secret', 'AWS::EC2::EIP']) {
      assert.ok(ofType(us, type).length > 0, `us-east-1 creates ${type}`);
      assert.equal(ofType(eu, type).length, 0, `eu-central-1 reuses ${type}`);
    }
    const euEnv = resources(eu)[functionId(eu, 'connections')].Properties.Environment.Variables;
    assert.equal(euEnv.BRIDGE_TABLE_NAME, example.regionOverrides['eu-central-1'].existingTableName);
    assert.equal(euEnv.BRIDGE_OAUTH_REDIRECT_URI, 'https://bridge-eu.example.com/v1/oauth/callback');
    us.hasResourceProperties('AWS::ApiGatewayV2::DomainName', { DomainName: 'bridge-us.example.com' });
    for (const [, a] of ofType(us, 'AWS::CloudWatch::Alarm')) {
      assert.deepEqual(a.Properties.AlarmActions, ['arn:aws:sns:us-east-1:111122223333:atlassian-bridge-alarms']);
    }
  });

  it('both READMEs document every context value and deploy with this file', () => {
    const section = (file: string, from: string, to: string) => {
      const text = fs.readFileSync(path.join(INFRA_DIR, file), 'utf8');
      return text.slice(text.indexOf(from), text.indexOf(to, text.indexOf(from)));
    };
    const tableKeys = (text: string) => new Set([...text.matchAll(/^\| (.+?) \|/gm)]
      .flatMap((m) => [...m[1].matchAll(/`(\w+)`/g)].map((k) => k[1])));
    const line = `npx cdk deploy --all -c configFile=${EXAMPLE_CONFIG}`;
    for (const [file, text, keys] of [
      ['infra/README.md', section('README.md', '### Context values', '### Deploy one region or all'), KNOWN_KEYS],
      ['README.md', section('../README.md', '## Deploy', '## Packaging'), KNOWN_KEYS.filter((k) => k !== 'configFile')],
    ] as const) {
      const documented = tableKeys(text);
      assert.deepEqual(keys.filter((k) => !documented.has(k)), [], `${file}: context values missing from the table`);
    }
    assert.ok(section('../README.md', '## Deploy', '## Packaging').includes(line), `README.md, Deploy: ${line}`);
    assert.ok(section('README.md', '## Deploy', '## Tests').includes(line), `infra/README.md, Deploy: ${line}`);
  });
});
