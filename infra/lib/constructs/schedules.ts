// The EventBridge Scheduler schedules of routes.json (the keep-alive sweep, hourly; the issue sync,
// every five minutes): each with its
// own execution role that may invoke only its function and write only its dead-letter queue, a
// retry policy, and that queue for invocations the Scheduler could not deliver.
import { Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { FunctionName, RegionConfig } from '../config';
import { Routes } from '../routes';
import { arn, pascal } from './common';

/** Delivery retries: an invocation older than its schedule's period less a minute (55 minutes for an
 *  hourly one) is dropped (to the queue) rather than run on top of the next one. Each run resumes
 *  its round anyway. */
export const SCHEDULE_RETRY_ATTEMPTS = 3;
export const SCHEDULE_MAX_EVENT_AGE_SECONDS = 55 * 60;

/** The period of a `rate(N unit)` expression in seconds (`undefined` for cron expressions). */
export function ratePeriodSeconds(expression: string): number | undefined {
  const m = /^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$/.exec(expression);
  if (!m) return undefined;
  const unit = m[2].startsWith('minute') ? 60 : m[2].startsWith('hour') ? 3600 : 86400;
  return Number(m[1]) * unit;
}

/** The oldest a delivery may be: the period less a minute, at least a minute, at most 55 minutes. */
export function maxEventAgeSeconds(expression: string): number {
  const period = ratePeriodSeconds(expression);
  if (period === undefined) return SCHEDULE_MAX_EVENT_AGE_SECONDS;
  return Math.max(60, Math.min(SCHEDULE_MAX_EVENT_AGE_SECONDS, period - 60));
}

export interface SchedulesProps {
  readonly config: RegionConfig;
  readonly routes: Routes;
  readonly functions: Map<FunctionName, lambda.Function>;
  readonly deadLetterQueues: Map<FunctionName, sqs.Queue>;
  readonly key: kms.IKey;
}

export class Schedules {
  /** Resources go into `stack`'s own scope (see common.ts: logical ids). */
  constructor(stack: Stack, props: SchedulesProps) {
    const cfg = props.config;
    for (const schedule of props.routes.schedules) {
      const id = pascal(schedule.name);
      const name = `${cfg.deploymentName}-${schedule.name}`;
      const fn = props.functions.get(schedule.function)!;
      const dlq = props.deadLetterQueues.get(schedule.function)!;
      // Only this account's schedule of this name may use the role (the confused-deputy conditions).
      const role = new iam.Role(stack, `${id}ScheduleRole`, {
        assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', {
          conditions: {
            StringEquals: { 'aws:SourceAccount': stack.account },
            ArnEquals: { 'aws:SourceArn': arn(stack, 'scheduler', `schedule/default/${name}`) },
          },
        }),
        description: `${name}: EventBridge Scheduler invokes ${schedule.function} (this schedule only)`,
      });
      role.addToPrincipalPolicy(new iam.PolicyStatement({
        sid: 'InvokeItsFunction',
        actions: ['lambda:InvokeFunction'],
        resources: [fn.functionArn],
      }));
      role.addToPrincipalPolicy(new iam.PolicyStatement({
        sid: 'DeadLetterQueue',
        actions: ['sqs:SendMessage'],
        resources: [dlq.queueArn],
      }));
      role.addToPrincipalPolicy(new iam.PolicyStatement({
        sid: 'KeyViaSqs',
        actions: ['kms:GenerateDataKey', 'kms:Decrypt'],
        resources: [props.key.keyArn],
        conditions: { StringEquals: { 'kms:ViaService': `sqs.${stack.region}.amazonaws.com` } },
      }));
      new scheduler.CfnSchedule(stack, `${id}Schedule`, {
        name,
        description: `${schedule.function}: ${schedule.expression} (shared/routes.json)`,
        scheduleExpression: schedule.expression,
        state: 'ENABLED',
        flexibleTimeWindow: { mode: 'OFF' },
        target: {
          arn: fn.functionArn,
          roleArn: role.roleArn,
          input: JSON.stringify(schedule.input),
          retryPolicy: {
            maximumRetryAttempts: SCHEDULE_RETRY_ATTEMPTS,
            maximumEventAgeInSeconds: maxEventAgeSeconds(schedule.expression),
          },
          deadLetterConfig: { arn: dlq.queueArn },
        },
      });
    }
  }
}
