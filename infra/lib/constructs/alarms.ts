// The alarms: each function's errors and throttles, each dead-letter queue's depth, the API's 5xx;
// and on the functions' own EMF metrics (shared/src/metrics.rs): jobs failed for good, the share of
// Atlassian requests answered 429 per product, failed token refreshes. With alarmTopicArn they
// notify that topic (alarm and OK).
import { Duration, Stack } from 'aws-cdk-lib';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { FUNCTIONS, FunctionName, RegionConfig } from '../config';
import { metricsNamespace, pascal } from './common';

/** The functions that run jobs (events and the synchronous publish/issue routes). */
export const JOB_FUNCTIONS: FunctionName[] = ['publish-page', 'create-issue'];
/** The products whose Atlassian requests are metrics (`Product` dimension). */
export const PRODUCTS = ['jira', 'confluence'];
/** The 429 alarm's threshold: this percentage of a product's requests answered 429 in 5 minutes… */
export const THROTTLED_PERCENT = 10;
/** …over at least this many requests (a handful of requests, one of them throttled, is no signal). */
export const THROTTLED_MIN_REQUESTS = 20;

/** A metric of the functions' EMF namespace. */
export function bridgeMetric(config: RegionConfig, name: string, dimensions: Record<string, string>,
  statistic = 'Sum', period = Duration.minutes(5)): cloudwatch.Metric {
  return new cloudwatch.Metric({ namespace: metricsNamespace(config), metricName: name, dimensionsMap: dimensions,
    statistic, period });
}

export interface AlarmsProps {
  readonly config: RegionConfig;
  readonly functions: Map<FunctionName, lambda.Function>;
  readonly deadLetterQueues: Map<FunctionName, sqs.Queue>;
  readonly api: apigwv2.HttpApi;
}

export class Alarms {
  /** Resources go into `stack`'s own scope (see common.ts: logical ids). */
  constructor(stack: Stack, props: AlarmsProps) {
    const cfg = props.config;
    const topic = cfg.alarmTopicArn ? sns.Topic.fromTopicArn(stack, 'AlarmTopic', cfg.alarmTopicArn) : undefined;
    const period = Duration.minutes(5);
    const alarm = (id: string, name: string, description: string, metric: cloudwatch.IMetric, threshold: number,
      periods = 1) => {
      const a = new cloudwatch.Alarm(stack, id, {
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

    for (const [name, fn] of props.functions) {
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
    for (const [name, dlq] of props.deadLetterQueues) {
      alarm(`${pascal(name)}DeadLetterQueueAlarm`, `${name}-dlq-depth`,
        `${name}: events in the dead-letter queue (failed after retries); see README to inspect and redrive`,
        dlq.metricApproximateNumberOfMessagesVisible({ period, statistic: 'Maximum' }), 1);
    }
    alarm('Api5xxAlarm', 'api-5xx', 'HTTP API: 5 or more 5xx answers in 5 minutes',
      props.api.metricServerError({ period, statistic: 'Sum' }), 5);

    // The functions' own metrics (EMF; README "Metrics (CloudWatch EMF)"). A job failed for good
    // is a customer's page or issue that will not appear without someone acting.
    for (const name of JOB_FUNCTIONS) {
      alarm(`${pascal(name)}JobsFailedAlarm`, `${name}-jobs-failed`,
        `${name}: 5 or more jobs failed for good in 5 minutes (JobsFailed by ErrorCode says why; Logs Insights finds the tenants)`,
        bridgeMetric(cfg, 'JobsFailed', { Function: name }), 5);
    }
    // Atlassian throttling a product: sustained, it delays every tenant's jobs of that product.
    for (const product of PRODUCTS) {
      const rate = new cloudwatch.MathExpression({
        expression: `IF(requests >= ${THROTTLED_MIN_REQUESTS}, 100 * FILL(throttled, 0) / requests, 0)`,
        usingMetrics: {
          throttled: bridgeMetric(cfg, 'AtlassianThrottled', { Product: product }),
          requests: bridgeMetric(cfg, 'AtlassianLatency', { Product: product }, 'SampleCount'),
        },
        period,
        label: `${product}: % of requests answered 429`,
      });
      alarm(`${pascal(product)}ThrottledAlarm`, `${product}-429-rate`,
        `${product}: ${THROTTLED_PERCENT}% or more of Atlassian requests answered 429 for 15 minutes (at least ${THROTTLED_MIN_REQUESTS} requests per 5 minutes)`,
        rate, THROTTLED_PERCENT, 3);
    }
    // A failed refresh is a grant that may need a new consent: any, summed over the functions.
    const refreshFailures: Record<string, cloudwatch.IMetric> = {};
    FUNCTIONS.forEach((name, i) => {
      refreshFailures[`f${i}`] = bridgeMetric(cfg, 'TokenRefreshFailures', { Function: name });
    });
    alarm('TokenRefreshFailuresAlarm', 'token-refresh-failures',
      'Token refreshes failed (any function, 5 min): Atlassian refused a grant (reconnect needed) or its token endpoint failed',
      new cloudwatch.MathExpression({
        expression: `SUM([${Object.keys(refreshFailures).map((m) => `FILL(${m}, 0)`).join(', ')}])`,
        usingMetrics: refreshFailures,
        period,
        label: 'token refresh failures',
      }), 1);
  }
}
