// The event path, the only one: the EventBridge bus, one rule per routes.json event straight to its
// function (asynchronous invocation; EventBridge and Lambda both retry), and the dead-letter queue
// of each consuming function, where what still fails after the retries is parked.
import { Duration, Stack } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { FunctionName, RegionConfig } from '../config';
import { Routes } from '../routes';
import { pascal } from './common';

export class Events {
  readonly bus: events.EventBus;
  /** One per function that an event rule targets. */
  readonly deadLetterQueues = new Map<FunctionName, sqs.Queue>();

  /** Resources go into `stack`'s own scope (see common.ts: logical ids). */
  constructor(private readonly stack: Stack, private readonly config: RegionConfig, private readonly routes: Routes,
    key: kms.IKey) {
    this.bus = new events.EventBus(stack, 'Bus', {
      eventBusName: config.eventBusName,
      description: `${config.deploymentName}: Report Ready / Action Items Ready in, Page Published / Issues Created / Publish Failed out`,
    });
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
  }
}
