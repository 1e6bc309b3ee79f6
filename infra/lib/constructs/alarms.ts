// The alarms: each function's errors and throttles, each dead-letter queue's depth, the API's 5xx;
// with alarmTopicArn they notify that topic (alarm and OK).
import { Duration, Stack } from 'aws-cdk-lib';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { FunctionName, RegionConfig } from '../config';
import { pascal } from './common';

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
  }
}
