// Builds every regional stack into an App. bin/app.ts (the CDK CLI's entry) and the tests share it.
import { App } from 'aws-cdk-lib';
import { BridgeStack } from './bridge-stack';
import { loadConfig } from './config';
import { loadRoutes } from './routes';

export function buildApp(app: App, env: NodeJS.ProcessEnv = process.env): BridgeStack[] {
  const configs = loadConfig((key) => app.node.tryGetContext(key), env);
  return configs.map((config) => new BridgeStack(app, config.stackName, {
    stackName: config.stackName,
    env: { account: config.account, region: config.region },
    description: `Atlassian Bridge (${config.deploymentName}) in ${config.region}: Lambdas, HTTP API, events, data, ` +
      'fixed egress IPs',
    config,
    routes: loadRoutes(config.routesFile),
    terminationProtection: false,
  }));
}
