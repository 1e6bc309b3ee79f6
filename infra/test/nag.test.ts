// cdk-nag's AWS Solutions pack over the app (the same pack bin/app.ts runs on every `cdk synth`):
// no unacknowledged finding, errors or warnings, and no acknowledgment that nothing needs.
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks, NagPack } from 'cdk-nag';
import { IConstruct } from 'constructs';
import { exampleContext, routesWithDesignEvents, synth } from './helpers';

/** Findings cdk-nag suppressed because of an acknowledgment: "<construct path> <rule id>". */
const acknowledgedFindings = new Set<string>();
const proto = NagPack.prototype as unknown as { isAcknowledged(node: IConstruct, id: string): boolean };
const isAcknowledged = proto.isAcknowledged;
proto.isAcknowledged = function (node: IConstruct, id: string): boolean {
  const yes = isAcknowledged.call(this, node, id);
  if (yes) acknowledgedFindings.add(`${node.node.path} ${id}`);
  return yes;
};

function acknowledgments(app: App): Array<{ path: string; id: string; reason: string }> {
  return app.node.findAll().flatMap((c) => c.node.metadata
    .filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
    .flatMap((m) => Object.entries(m.data as Record<string, string>).map(([id, reason]) => ({
      path: c.node.path, id: id.replace(/^annotation::/i, ''), reason,
    }))));
}

const variants: Array<[string, Record<string, unknown>]> = [
  ['the default stacks (both regions)', {}],
  ['both DESIGN.md events, 3 AZs, extra ports, custom domain, SNS', {
    routesFile: routesWithDesignEvents(), regions: 'eu-central-1', azCount: 3, extraEgressPorts: '8443',
    regionOverrides: { 'eu-central-1': {
      customDomainName: 'bridge.example.test',
      customDomainCertificateArn: 'arn:aws:acm:eu-central-1:123456789012:certificate/abc',
      alarmTopicArn: 'arn:aws:sns:eu-central-1:123456789012:ops',
    } },
  }],
  ['a rebuild on kept Elastic IPs, key, table and app secret', {
    regions: 'us-east-1',
    egressIpAllocations: [{ allocationId: 'eipalloc-0123456789abcdef0', publicIp: '203.0.113.10' },
      { allocationId: 'eipalloc-0fedcba9876543210', publicIp: '203.0.113.11' }],
    existingKmsKeyArn: 'arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555',
    existingTableName: 'kept-table', oauthClientSecretName: 'atlassian-bridge/app/oauth-client',
  }],
  ['config/example.json, the documented deploy configuration', exampleContext()],
];

describe('cdk-nag AwsSolutionsChecks', () => {
  for (const [name, context] of variants) {
    it(`${name}: no unacknowledged finding; every acknowledgment is needed and says why`, () => {
      const { app } = synth(context);
      acknowledgedFindings.clear();
      const report = new AwsSolutionsChecks(app, { verbose: true }).validateScope(app);
      const violations = report.violations.map((v) => `${v.severity} ${v.ruleName}: ${v.description}\n    ` +
        v.violatingResources.map((r) => r.constructPath).join('\n    '));
      assert.deepEqual(violations, []);

      const acks = acknowledgments(app).filter((a) => a.id.startsWith('AwsSolutions-')); // not CDK's own
      assert.ok(acks.length > 0);
      for (const a of acks) {
        assert.ok(a.reason.length >= 60, `${a.path} ${a.id}: the reason explains`);
        const used = [...acknowledgedFindings].some((f) => f.endsWith(` ${a.id}`) &&
          (f.startsWith(`${a.path}/`) || f.startsWith(`${a.path} `)));
        assert.ok(used, `${a.path} acknowledges ${a.id}, which nothing there triggers: remove it`);
      }
    });
  }

  it('runs on every cdk synth (bin/app.ts registers the pack)', async () => {
    const source = await import('node:fs').then((fs) => fs.readFileSync(`${__dirname}/../bin/app.ts`, 'utf8'));
    assert.match(source, /Validations\.of\(app\)\.addPlugins\(new AwsSolutionsChecks\(app/);
  });
});
