// The logical ids deployed stacks hold. CloudFormation replaces a resource whose logical id changes
// (a new Elastic IP, table or key is an outage or data loss), so refactors keep them: the parts in
// lib/constructs/ build into the stack's own scope. A deliberate change regenerates the snapshot:
// BLESS=1 npm test, then review the diff of test/fixtures/logical-ids.json.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { resources, synth } from './helpers';

const SNAPSHOT = path.join(__dirname, 'fixtures', 'logical-ids.json');
const variants: Record<string, Record<string, unknown>> = {
  default: {},
  'all-options': { configFile: 'test/fixtures/config-all-options.json' },
};

describe('logical ids', () => {
  const actual: Record<string, Record<string, string[]>> = {};
  for (const [name, context] of Object.entries(variants)) {
    const { stacks, templates } = synth(context);
    actual[name] = Object.fromEntries(stacks.map((s) => [s.stackName,
      Object.keys(resources(templates.get(s.region)!)).filter((id) => id !== 'CDKMetadata').sort()]));
  }
  if (process.env.BLESS) {
    const doc = JSON.parse(fs.readFileSync(SNAPSHOT, 'utf8'));
    fs.writeFileSync(SNAPSHOT, `${JSON.stringify({ _comment: doc._comment, ...actual }, null, 1)}\n`);
  }
  const expected = JSON.parse(fs.readFileSync(SNAPSHOT, 'utf8'));
  for (const name of Object.keys(variants)) {
    it(`${name}: every resource keeps its logical id (test/fixtures/logical-ids.json)`, () => {
      assert.deepEqual(actual[name], expected[name]);
    });
  }
});
