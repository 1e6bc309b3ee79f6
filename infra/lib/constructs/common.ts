// Helpers the stack's parts share.
//
// Logical ids: every part (network, data, functions, api, events, alarms) creates its resources in
// the stack's own scope, not under a construct of its own, so the construct paths, and with them the
// CloudFormation logical ids, are those of the single-file stack this was split from. Deployed
// stacks update in place; nothing is replaced. test/logical-ids.test.ts holds them to a snapshot.
import { RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import { RegionConfig } from '../config';

/** `arn:<partition>:<service>:<region>:<account>:<resource>` in the stack's account and region. */
export function arn(stack: Stack, service: string, resource: string): string {
  return `arn:${stack.partition}:${service}:${stack.region}:${stack.account}:${resource}`;
}

/** Every log group of the deployment is named under this prefix, so the KMS key policy can name
 * them (and only them) in its `aws:logs:arn` encryption-context condition. */
export function logGroupPrefix(config: RegionConfig): string {
  return `/${config.deploymentName}/`;
}

/** A log group encrypted with the deployment's key, kept on tear-down. */
export function logGroup(stack: Stack, id: string, config: RegionConfig, key: kms.IKey): logs.LogGroup {
  return new logs.LogGroup(stack, id, {
    logGroupName: `${logGroupPrefix(config)}${id}`,
    retention: config.logRetentionDays as logs.RetentionDays,
    encryptionKey: key,
    removalPolicy: RemovalPolicy.RETAIN,
  });
}

/** The CloudWatch namespace of the functions' EMF metrics (BRIDGE_METRICS_NAMESPACE): one per
 * deployment, so two deployments in one account never add up in the alarms and the dashboard. */
export function metricsNamespace(config: RegionConfig): string {
  return `AtlassianBridge/${config.deploymentName}`;
}

/** `publish-page` -> `PublishPage`, `Report Ready` -> `ReportReady`. */
export function pascal(s: string): string {
  return s.split(/[^A-Za-z0-9]+/).filter(Boolean).map((w) => w[0].toUpperCase() + w.slice(1)).join('');
}
