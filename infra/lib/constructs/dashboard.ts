// The deployment's CloudWatch dashboard: the functions' own EMF metrics (shared/src/metrics.rs) —
// jobs and how they ended, items and pages, failures by error code, Atlassian latency and 429s per
// product, token refreshes, lease and slot waits — beside Lambda's errors. Tenants are not on it
// (they are a property of the EMF lines, not a dimension): README "Metrics (CloudWatch EMF)" has
// the Logs Insights query for one tenant.
import { Duration, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { FUNCTIONS, FunctionName, RegionConfig } from '../config';
import { JOB_FUNCTIONS, PRODUCTS, bridgeMetric } from './alarms';
import { metricsNamespace } from './common';

export interface DashboardProps {
  readonly config: RegionConfig;
  readonly functions: Map<FunctionName, lambda.Function>;
}

export class Dashboard {
  readonly dashboard: cloudwatch.Dashboard;

  /** Resources go into `stack`'s own scope (see common.ts: logical ids). */
  constructor(stack: Stack, props: DashboardProps) {
    const cfg = props.config;
    const period = Duration.minutes(5);
    const m = (name: string, dims: Record<string, string>, statistic = 'Sum', label?: string) => {
      const metric = bridgeMetric(cfg, name, dims, statistic, period);
      return label ? metric.with({ label }) : metric;
    };
    const graph = (title: string, left: cloudwatch.IMetric[], width = 12) =>
      new cloudwatch.GraphWidget({ title, left, width, height: 6, period });

    const jobs = JOB_FUNCTIONS.map((fn) => graph(`${fn}: jobs`, [
      m('JobsStarted', { Function: fn }, 'Sum', 'started'),
      m('JobsSucceeded', { Function: fn }, 'Sum', 'succeeded'),
      m('JobsRetried', { Function: fn }, 'Sum', 'retried'),
      m('JobsFailed', { Function: fn }, 'Sum', 'failed for good'),
    ]));
    const namespace = metricsNamespace(cfg);
    // Failures by code: every code that occurred, found by search (codes are a fixed list in
    // shared/src/error.rs, so the search stays small).
    const byCode = (metric: string) => new cloudwatch.GraphWidget({
      title: `${metric} by error code`, width: 12, height: 6, period,
      left: [new cloudwatch.MathExpression({
        expression: `SEARCH('{${namespace},Function,ErrorCode} MetricName="${metric}"', 'Sum', ${period.toSeconds()})`,
        label: '', period,
      })],
    });
    const work = graph('Items and pages', [
      m('ItemsCreated', { Function: 'create-issue' }, 'Sum', 'issues created'),
      m('ItemsFailed', { Function: 'create-issue' }, 'Sum', 'items failed for good'),
      m('PagesPublished', { Function: 'publish-page' }, 'Sum', 'pages published'),
    ]);
    const latency = PRODUCTS.map((product) => graph(`${product}: Atlassian latency (ms)`, [
      m('AtlassianLatency', { Product: product }, 'p50', 'p50'),
      m('AtlassianLatency', { Product: product }, 'p99', 'p99'),
    ], 8));
    const throttled = graph('Atlassian 429s and requests', PRODUCTS.flatMap((product) => [
      m('AtlassianThrottled', { Product: product }, 'Sum', `${product} 429s`),
      m('AtlassianLatency', { Product: product }, 'SampleCount', `${product} requests`),
    ]), 8);
    const perFunction = (name: string, statistic: string) =>
      FUNCTIONS.map((fn) => m(name, { Function: fn }, statistic, fn));
    const refreshes = graph('Token refreshes', [
      ...perFunction('TokenRefreshes', 'Sum').map((x) => x.with({ label: `${x.label} ok` })),
      ...perFunction('TokenRefreshFailures', 'Sum').map((x) => x.with({ label: `${x.label} failed` })),
    ]);
    const waits = graph('Lease and slot waits (ms, p99)', [
      ...perFunction('RefreshLeaseWait', 'p99').map((x) => x.with({ label: `${x.label} refresh lease` })),
      ...JOB_FUNCTIONS.map((fn) => m('TenantSlotWait', { Function: fn }, 'p99', `${fn} tenant slot`)),
      ...JOB_FUNCTIONS.map((fn) => m('JobLeaseWait', { Function: fn }, 'p99', `${fn} job lease`)),
    ]);
    const refused = graph('Fair-share refusals', JOB_FUNCTIONS.map((fn) =>
      m('TenantSlotRefused', { Function: fn }, 'Sum', fn)));
    const errors = graph('Lambda errors', [...props.functions].map(([name, fn]) =>
      fn.metricErrors({ period, statistic: 'Sum', label: name })), 24);

    this.dashboard = new cloudwatch.Dashboard(stack, 'Dashboard', {
      dashboardName: `${cfg.stackName}`,
      widgets: [
        jobs,
        [byCode('JobsFailed'), byCode('JobsRetried')],
        [work, refused],
        [...latency, throttled],
        [refreshes, waits],
        [errors],
      ],
    });
  }
}
