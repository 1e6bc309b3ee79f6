// The event path, the only one: the EventBridge bus, one rule per routes.json event straight to its
// function (asynchronous invocation; EventBridge and Lambda both retry), and the dead-letter queue
// of each consuming function, where what still fails after the retries is parked. Each consumer's
// on-failure destination is the bus too (functions.ts): Lambda puts its record of the parked event
// there, and a rule per consumer brings the record back to it, which tells the SaaS once (a
// `Publish Failed` with `retryable: false`, code `retries_exhausted`; README "Fault campaign").
import { Duration, Stack } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { FunctionName, RegionConfig } from '../config';
import { Routes } from '../routes';
import { pascal } from './common';

/** The detail-type of Lambda's on-failure record on an EventBridge destination. */
export const INVOCATION_FAILURE = 'Lambda Function Invocation Result - Failure';

export class Events {
  readonly bus: events.EventBus;
  /** One per function that an event rule targets. */
  readonly deadLetterQueues = new Map<FunctionName, sqs.Queue>();
  /** The functions an event rule targets: their on-failure destination is the bus. */
  readonly consumers: ReadonlySet<FunctionName>;

  /** Resources go into `stack`'s own scope (see common.ts: logical ids). */
  constructor(private readonly stack: Stack, private readonly config: RegionConfig, private readonly routes: Routes,
    key: kms.IKey) {
    this.bus = new events.EventBus(stack, 'Bus', {
      eventBusName: config.eventBusName,
      description: `${config.deploymentName}: Report Ready / Action Items Ready in, Page Published / Issues Created / Publish Failed out`,
    });
    this.consumers = new Set(routes.events.map((e) => e.function));
    // Event consumers, and scheduled functions (the Scheduler's undeliverable invocations and the
    // function's failed asynchronous ones land in the same queue).
    for (const name of new Set([...routes.events.map((e) => e.function), ...routes.schedules.map((s) => s.function)])) {
      // Events that fail after Lambda's retries (and events EventBridge cannot deliver) land here.
      this.deadLetterQueues.set(name, new sqs.Queue(stack, `${pascal(name)}DeadLetterQueue`, {
        queueName: `${config.deploymentName}-${name}-dlq`,
        encryption: sqs.QueueEncryption.KMS,
        encryptionMasterKey: key,
        enforceSSL: true,
        retentionPeriod: Duration.days(14),
      }));
    }
  }

  /** The rules, once the functions exist. */
  addRules(functions: Map<FunctionName, lambda.Function>): void {
    for (const rule of this.routes.events) {
      const fn = functions.get(rule.function)!;
      new events.Rule(this.stack, `${pascal(rule.detailType)}To${pascal(rule.function)}Rule`, {
        eventBus: this.bus,
        description: `${rule.detailType} -> ${rule.function}`,
        eventPattern: {
          detailType: [rule.detailType],
          // Never our own events back into ourselves, except the one rule that exists for that
          // (an issue job's deferred parts, finished by the function that deferred them).
          source: rule.own ? [this.config.eventSource]
            : rule.source ? [rule.source] : events.Match.anythingBut(this.config.eventSource),
        },
        // Straight to the function (asynchronous invocation). EventBridge retries delivery for up to
        // 24 h; Lambda retries a failed invocation twice; both park what still fails in the DLQ.
        targets: [new targets.LambdaFunction(fn, {
          deadLetterQueue: this.deadLetterQueues.get(rule.function),
          retryAttempts: 185,
          maxEventAge: Duration.hours(24),
        })],
      });
    }
    for (const name of this.consumers) {
      const fn = functions.get(name)!;
      // Lambda's record of one of this function's events that failed for good (its on-failure
      // destination): source `lambda`, the function's (qualified) ARN in the record. See
      // https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html
      new events.Rule(this.stack, `${pascal(name)}InvocationFailuresRule`, {
        eventBus: this.bus,
        description: `Lambda's records of ${name}'s dead-lettered events -> ${name} (one terminal Publish Failed each)`,
        eventPattern: {
          source: ['lambda'],
          detailType: [INVOCATION_FAILURE],
          detail: { requestContext: { functionArn: [fn.functionArn, { prefix: `${fn.functionArn}:` }] } },
        },
        targets: [new targets.LambdaFunction(fn, {
          deadLetterQueue: this.deadLetterQueues.get(name),
          retryAttempts: 185,
          maxEventAge: Duration.hours(24),
        })],
      });
    }
  }
}
