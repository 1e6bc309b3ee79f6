#!/usr/bin/env node
// CDK app: one stack per region (`cdk synth`, `cdk deploy atlassian-bridge-eu-central-1`, `cdk deploy --all`).
// cdk-nag's AWS Solutions pack runs on every synth: an unacknowledged finding fails it.
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { buildApp } from '../lib/app';
import { ConfigError } from '../lib/config';

const app = new App();
try {
  buildApp(app);
} catch (e) {
  if (e instanceof ConfigError) {
    console.error(e.message);
    process.exit(1);
  }
  throw e;
}
Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
app.synth();
