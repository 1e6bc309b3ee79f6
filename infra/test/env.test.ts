// shared/env.json is the functions' one list of environment variables: each function gets exactly
// the variables it marks set_by_infra for that function, and the synth fails on any other.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { FUNCTIONS } from '../lib/config';
import { checkEnvironment, infraVariables, loadEnvList } from '../lib/env';
import { functionId, resources, synth } from './helpers';

describe('environment variables (shared/env.json)', () => {
  const list = loadEnvList();

  it('every function gets exactly the variables the list has the stack set on it', () => {
    // Without the Marketplace apps configured, their two identifiers are left out (the apps are off).
    const apps = ['BRIDGE_CONNECT_APP_KEY', 'BRIDGE_FORGE_APP_ID'];
    const plain = synth({ regions: 'us-east-1' }).templates.get('us-east-1')!;
    const withApps = synth({ regions: 'us-east-1', connectAppKey: 'com.example.bridge',
      forgeAppId: 'ari:cloud:ecosystem::app/6f0c5b3e-1d2a-4c8e-9b7a-2f1e0d3c4b5a' }).templates.get('us-east-1')!;
    for (const name of FUNCTIONS) {
      const env = resources(plain)[functionId(plain, name)].Properties.Environment.Variables;
      assert.deepEqual(Object.keys(env).sort(), infraVariables(list, name).filter((n) => !apps.includes(n)).sort(), name);
      const full = resources(withApps)[functionId(withApps, name)].Properties.Environment.Variables;
      assert.deepEqual(Object.keys(full).sort(), infraVariables(list, name).sort(), name);
      assert.equal(full.BRIDGE_CONNECT_APP_KEY, 'com.example.bridge');
    }
  });

  it('refuses an environment with a variable the list lacks, or without one it holds', () => {
    const env = Object.fromEntries(infraVariables(list, 'discovery').map((n) => [n, 'x']));
    checkEnvironment(list, 'discovery', env);
    assert.throws(() => checkEnvironment(list, 'discovery', { ...env, BRIDGE_TABEL_NAME: 't' }),
      /not listed for it .*BRIDGE_TABEL_NAME/);
    assert.throws(() => checkEnvironment(list, 'discovery', { ...env, BRIDGE_EVENT_BUS_NAME: 'b' }),
      /not listed for it .*BRIDGE_EVENT_BUS_NAME/, 'only the publishers get the bus');
    const { BRIDGE_TABLE_NAME: _, ...withoutTable } = env;
    assert.throws(() => checkEnvironment(list, 'discovery', withoutTable), /listed but not set: BRIDGE_TABLE_NAME/);
  });

  it('refuses a malformed list', () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'bridge-env-')), 'env.json');
    fs.writeFileSync(file, JSON.stringify({ variables: [
      { name: 'BRIDGE_X', required: 'yes', default: null, functions: ['nope'], set_by_infra: true, description: 'x' },
      { name: 'BRIDGE_X', required: false, default: null, functions: 'all', set_by_infra: true, description: 'x' },
    ] }));
    assert.throws(() => loadEnvList(file), (e: Error) => ['required must be', 'functions must be', 'listed twice']
      .every((p) => e.message.includes(p)));
  });
});
