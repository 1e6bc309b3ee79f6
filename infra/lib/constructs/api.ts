// The HTTP API: routes from routes.json to the functions, the JWT authorizer, the $default stage
// (throttles, access logs without query strings) and the optional custom domain.
import { Stack } from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpJwtAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { FunctionName, RegionConfig } from '../config';
import { acknowledge } from '../nag';
import { Routes } from '../routes';
import { logGroup, pascal } from './common';

export class Api {
  readonly api: apigwv2.HttpApi;
  /** Base URL of the API, ending in `/` (the custom domain when there is one). */
  readonly apiUrl: string;
  /** The OAuth callback URL, a function setting: the API exists before the functions. */
  readonly redirectUri: string;
  /** Where Jira delivers dynamic webhooks (the public `POST /v1/webhooks/jira`). */
  readonly webhookUrl: string;
  /** The API's base URL without a trailing slash: the Marketplace apps' `baseUrl`. */
  readonly publicBaseUrl: string;

  /** Resources go into `stack`'s own scope (see common.ts: logical ids). */
  constructor(private readonly stack: Stack, private readonly config: RegionConfig, private readonly key: kms.IKey) {
    const cfg = config;
    this.api = new apigwv2.HttpApi(stack, 'Api', {
      apiName: cfg.stackName,
      description: `${cfg.deploymentName} (${stack.region}): tenant connections, discovery, publishing`,
      createDefaultStage: false,
      // With a custom domain, the default execute-api URL would be a second way in that skips
      // whatever the domain adds (WAF, mTLS, logging at the edge): switch it off.
      disableExecuteApiEndpoint: cfg.customDomainName !== undefined,
    });
    if (cfg.customDomainName) {
      this.apiUrl = `https://${cfg.customDomainName}/`;
      this.redirectUri = `https://${cfg.customDomainName}/v1/oauth/callback`;
      this.webhookUrl = `https://${cfg.customDomainName}/v1/webhooks/jira`;
      this.publicBaseUrl = `https://${cfg.customDomainName}`;
    } else {
      this.apiUrl = `${this.api.apiEndpoint}/`;
      this.redirectUri = `${this.api.apiEndpoint}/v1/oauth/callback`;
      this.webhookUrl = `${this.api.apiEndpoint}/v1/webhooks/jira`;
      this.publicBaseUrl = this.api.apiEndpoint;
    }
  }

  /** The routes, stage and domain, once the functions exist. */
  addRoutes(routes: Routes, functions: Map<FunctionName, lambda.Function>): void {
    const { stack, config: cfg } = this;
    const accessLogs = logGroup(stack, 'ApiAccessLogs', cfg, this.key);
    const authorizer = new HttpJwtAuthorizer('JwtAuthorizer', cfg.jwtIssuer, {
      authorizerName: 'jwt',
      jwtAudience: cfg.jwtAudience,
      identitySource: ['$request.header.Authorization'],
    });
    const integrations = new Map<FunctionName, HttpLambdaIntegration>();
    const integration = (name: FunctionName) => {
      let i = integrations.get(name);
      if (!i) {
        i = new HttpLambdaIntegration(`${pascal(name)}Integration`, functions.get(name)!, {
          payloadFormatVersion: apigwv2.PayloadFormatVersion.VERSION_2_0,
        });
        integrations.set(name, i);
      }
      return i;
    };

    const createdRoutes: apigwv2.HttpRoute[] = [];
    const publicRouteKeys: string[] = [];
    for (const r of routes.routes) {
      const [route] = this.api.addRoutes({
        path: r.path,
        methods: [apigwv2.HttpMethod[r.method]],
        integration: integration(r.function),
        authorizer: r.auth === 'jwt' ? authorizer : new apigwv2.HttpNoneAuthorizer(),
      });
      createdRoutes.push(route);
      if (r.auth === 'none') {
        publicRouteKeys.push(`${r.method} ${r.path}`);
        acknowledge(route, 'AwsSolutions-APIG4', publicReason(r.path));
      }
    }

    const stage = new apigwv2.HttpStage(stack, 'DefaultStage', {
      httpApi: this.api,
      stageName: '$default',
      autoDeploy: true,
      throttle: cfg.apiThrottle,
      accessLogSettings: {
        destination: new apigwv2.LogGroupLogDestination(accessLogs),
        // Route keys and paths only: the query string (the OAuth code and state) is never logged.
        format: apigw.AccessLogFormat.custom(JSON.stringify({
          requestId: '$context.requestId',
          time: '$context.requestTime',
          ip: '$context.identity.sourceIp',
          userAgent: '$context.identity.userAgent',
          routeKey: '$context.routeKey',
          path: '$context.path',
          status: '$context.status',
          protocol: '$context.protocol',
          responseLength: '$context.responseLength',
          responseLatency: '$context.responseLatency',
          integrationStatus: '$context.integrationStatus',
          integrationLatency: '$context.integrationLatency',
          integrationError: '$context.integrationErrorMessage',
          authorizerError: '$context.authorizer.error',
        })),
      },
    });
    if (cfg.customDomainName) {
      new apigwv2.ApiMapping(stack, 'DomainMapping', {
        api: this.api,
        stage,
        domainName: new apigwv2.DomainName(stack, 'Domain', {
          domainName: cfg.customDomainName,
          certificate: acm.Certificate.fromCertificateArn(stack, 'Certificate', cfg.customDomainCertificateArn!),
          securityPolicy: apigwv2.SecurityPolicy.TLS_1_2,
        }),
      });
    }
    // The unauthenticated routes get a tighter throttle than the stage default. (An L1 property that
    // CDK passes through as is: CloudFormation's own capitalized keys.)
    if (publicRouteKeys.length > 0) {
      const throttleOf = (key: string) => key === 'POST /v1/webhooks/jira' ? cfg.webhookRouteThrottle
        : isAppRoute(key.split(' ')[1]) ? cfg.appRouteThrottle : cfg.publicRouteThrottle;
      (stage.node.defaultChild as apigwv2.CfnStage).routeSettings = Object.fromEntries(publicRouteKeys.map((k) => [k, {
        ThrottlingRateLimit: throttleOf(k).rateLimit,
        ThrottlingBurstLimit: throttleOf(k).burstLimit,
      }]));
      for (const route of createdRoutes) stage.node.addDependency(route);
    }
  }
}

/** The Marketplace apps' public routes (`/connect/...`, `/forge/...`). */
export function isAppRoute(path: string): boolean {
  return path.startsWith('/connect/') || path.startsWith('/forge/');
}

/** Why a route without our authorizer is public, for cdk-nag. */
function publicReason(path: string): string {
  if (path === '/v1/webhooks/jira') {
    return 'Public by design: Jira delivers dynamic webhooks with its own bearer JWT, which no authorizer of ours ' +
      'can check. The function verifies it (HS256 with the OAuth client secret, expiry) before reading the ' +
      'body, and the route has its own throttle, below the API\'s.';
  }
  if (path === '/connect/atlassian-connect.json') {
    return 'Public by design: Atlassian reads the Connect app descriptor without credentials. It holds only ' +
      'the app key, base URL, scopes and module URLs, built from configuration; the route has its own throttle.';
  }
  if (path.startsWith('/connect/')) {
    return 'Public by design (DESIGN.md): Atlassian signs its Connect lifecycle callbacks (RS256 with its install ' +
      'keys) and its requests to the app (HS256 with the installation\'s shared secret, bound to the request by ' +
      'qsh), which no authorizer of ours can check. The function verifies the JWT before reading anything, and ' +
      'the route has its own throttle.';
  }
  if (path.startsWith('/forge/')) {
    return 'Public by design (DESIGN.md): Forge calls its remote with a Forge Invocation Token (RS256, Forge\'s ' +
      'JWKS, audience = our app id), which no authorizer of ours can check. The function verifies it before ' +
      'reading anything, and the route has its own throttle.';
  }
  return 'Public by design (DESIGN.md): Atlassian\'s consent screen redirects the tenant\'s browser here with no ' +
    'bearer token. The function trusts only its HMAC-signed, expiring, single-use state parameter, and the ' +
    'route has its own tighter throttle.';
}
