// Deployment settings, read from CDK context (cdk.json, -c key=value) and an optional JSON file.
//
// Every key can be given once for all regions and overridden per region under `regionOverrides`:
//   value(key, region) = regionOverrides[region][key] ?? context[key] ?? configFile[key] ?? default
// `-c` values arrive as strings, so lists also accept "a,b" and objects/lists also accept JSON text.
// Everything is checked here, and every problem is reported at once, before any construct exists.
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The nine Lambda functions, one crate (and one `make package` zip) each. */
export const FUNCTIONS = ['oauth-callback', 'connections', 'discovery', 'publish-page', 'create-issue',
  'keep-alive', 'issue-sync', 'issue-webhook', 'app-lifecycle'] as const;
export type FunctionName = (typeof FUNCTIONS)[number];

/** Functions that publish outgoing events: Page Published, Issues Created, Publish Failed (the
 *  jobs); Egress Abuse Suspected (connections, and oauth-callback for Data Center consents, when a
 *  destination is locked); Connection Expiring and Connection Broken (keep-alive); Issues Updated and
 *  Issue Deleted (issue-sync, and issue-webhook from Jira's deliveries). */
export const EVENT_PUBLISHERS: readonly FunctionName[] = ['oauth-callback', 'publish-page', 'create-issue',
  'connections', 'keep-alive', 'issue-sync', 'issue-webhook'];

/** Functions that run jobs from events, holding a lease on each item (BRIDGE_JOB_LEASE_SECONDS). */
export const JOB_RUNNERS: readonly FunctionName[] = ['publish-page', 'create-issue'];

/** Placeholder account for offline synth (tests, CI); cdk.json holds its AZ context. */
export const PLACEHOLDER_ACCOUNT = '123456789012';

/** The directory holding cdk.json; relative paths in the settings are resolved against it. */
export const INFRA_DIR = path.resolve(__dirname, '..');

export interface EgressIpAllocation {
  readonly allocationId: string;
  readonly publicIp: string;
}

export interface Throttle {
  readonly rateLimit: number;
  readonly burstLimit: number;
}

export interface RegionConfig {
  readonly account: string;
  /** True when no account was given and the placeholder is used (synth only, never deploy). */
  readonly placeholderAccount: boolean;
  readonly region: string;
  readonly deploymentName: string;
  readonly stackName: string;
  readonly functionsDir: string;
  readonly routesFile: string;
  readonly azCount: number;
  readonly vpcCidr: string;
  /** Existing Elastic IPs for the NAT gateways, one per AZ; when absent the stack allocates them. */
  readonly egressIpAllocations?: EgressIpAllocation[];
  readonly extraEgressPorts: number[];
  readonly jwtIssuer: string;
  readonly jwtAudience: string[];
  readonly oauthClientId: string;
  /** An existing app secret (by name); when absent the stack creates `<secretPrefix>app/oauth-client`. */
  readonly oauthClientSecretName?: string;
  readonly allowedReturnUrls: string[];
  readonly tenantClaim: string;
  readonly secretPrefix: string;
  readonly customDomainName?: string;
  readonly customDomainCertificateArn?: string;
  readonly logRetentionDays: number;
  readonly rustLog: string;
  /** A production stack (the default) logs at info, warn or error only; see `rustLog` in README. */
  readonly production: boolean;
  readonly eventBusName: string;
  readonly eventSource: string;
  readonly apiThrottle: Throttle;
  readonly publicRouteThrottle: Throttle;
  /** Jira's webhook deliveries: public too, but a bulk change in Jira sends one per issue at once. */
  readonly webhookRouteThrottle: Throttle;
  /** The Marketplace apps' public routes (Connect lifecycle and configure page, Forge Remote). */
  readonly appRouteThrottle: Throttle;
  /** The Connect (or Connect on Forge) app's key; unset: the deployment is no Connect app. */
  readonly connectAppKey?: string;
  /** The Forge app's id (`ari:cloud:ecosystem::app/<uuid>`); unset: the deployment is no Forge remote. */
  readonly forgeAppId?: string;
  readonly reservedConcurrency: Partial<Record<FunctionName, number>>;
  readonly memoryMb: Record<FunctionName, number>;
  readonly alarmTopicArn?: string;
  /** Reuse a key / table kept from an earlier deployment (see README: tear-down and rebuild). */
  readonly existingKmsKeyArn?: string;
  readonly existingTableName?: string;
}

export const DEFAULT_REGIONS = ['us-east-1', 'eu-central-1'];

/** Memory per function (MB); see README "Sizing" for the measurements behind them. */
export const DEFAULT_MEMORY_MB: Record<FunctionName, number> = {
  'oauth-callback': 256,
  connections: 256,
  discovery: 256,
  'publish-page': 512,
  'create-issue': 256,
  'keep-alive': 256,
  'issue-sync': 256,
  'issue-webhook': 256,
  'app-lifecycle': 256,
};

/** Reserved concurrency where it protects Atlassian's rate limits (the bulk writers). Each tenant may hold at most
 *  BRIDGE_TENANT_SLOTS (default 4) of a function's instances at once (the fair share), so R reserved
 *  instances serve at least R / S tenants at full share; README.md ("Fair shares") has the arithmetic. */
export const DEFAULT_RESERVED_CONCURRENCY: Partial<Record<FunctionName, number>> = {
  'publish-page': 10,
  'create-issue': 10,
  // One run at a time: the hourly schedule's runs are slices of one round (shared/src/keep_alive.rs),
  // and a second concurrent run would only find the run lease taken.
  'keep-alive': 1,
  // Likewise the issue sync: each run resumes the round where the last stopped (shared/src/sync/poll.rs).
  'issue-sync': 1,
};

/** The log levels a production stack may run at (`rustLog`). */
export const PRODUCTION_LOG_LEVELS = ['info', 'warn', 'error'];

/** CloudWatch Logs accepts only these retention periods. */
const RETENTION_DAYS = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
  3288, 3653];

/** Keys that name something inside one region, so they make sense only under regionOverrides. */
const REGIONAL_KEYS = ['egressIpAllocations', 'alarmTopicArn', 'existingKmsKeyArn', 'existingTableName',
  'customDomainName', 'customDomainCertificateArn'];

export const KNOWN_KEYS = ['account', 'regions', 'configFile', 'regionOverrides', 'deploymentName', 'functionsDir',
  'routesFile', 'azCount', 'vpcCidr', 'extraEgressPorts', 'jwtIssuer', 'jwtAudience', 'oauthClientId',
  'oauthClientSecretName', 'allowedReturnUrls', 'tenantClaim', 'secretPrefix', 'logRetentionDays', 'rustLog', 'production',
  'eventBusName', 'eventSource', 'apiThrottle', 'publicRouteThrottle', 'webhookRouteThrottle',
  'appRouteThrottle', 'connectAppKey', 'forgeAppId', 'reservedConcurrency', 'memoryMb',
  ...REGIONAL_KEYS];

/** Anything that reads context: an App, or a plain lookup in tests. */
export type ContextLookup = (key: string) => unknown;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid Atlassian Bridge deployment settings:\n${problems.map((p) => `  - ${p}`).join('\n')}\n` +
      'See infra/README.md, "Context values".');
    this.name = 'ConfigError';
  }
}

export function loadConfig(context: ContextLookup, env: NodeJS.ProcessEnv = process.env): RegionConfig[] {
  const problems: string[] = [];
  const file = readConfigFile(context('configFile'), problems);
  const raw = (key: string): unknown => parseJsonText(context(key) ?? file[key], key, problems);
  const overrides = asObject(raw('regionOverrides'), 'regionOverrides', problems);

  for (const key of [...Object.keys(file)]) {
    if (!KNOWN_KEYS.includes(key) && !key.startsWith('_')) problems.push(`unknown setting "${key}" in the config file`);
  }

  const regions = asStringList(raw('regions'), 'regions', problems) ?? DEFAULT_REGIONS;
  if (regions.length === 0) problems.push('regions: list at least one region');
  for (const r of regions) {
    if (!/^[a-z]{2}(-[a-z]+)+-\d$/.test(r)) problems.push(`regions: "${r}" is not an AWS region name`);
  }
  if (new Set(regions).size !== regions.length) problems.push('regions: a region is listed twice');
  for (const r of Object.keys(overrides)) {
    if (!regions.includes(r)) problems.push(`regionOverrides: "${r}" is not one of the deployed regions (${regions.join(', ')})`);
    const o = asObject(overrides[r], `regionOverrides.${r}`, problems);
    for (const key of Object.keys(o)) {
      if (!KNOWN_KEYS.includes(key) || ['regions', 'configFile', 'regionOverrides', 'account'].includes(key)) {
        problems.push(`regionOverrides.${r}: "${key}" cannot be set per region`);
      }
    }
  }
  for (const key of REGIONAL_KEYS) {
    if (raw(key) !== undefined && regions.length > 1) {
      problems.push(`${key} names something in one region: set it under regionOverrides.<region>, not for all regions`);
    }
  }

  const explicitAccount = asString(raw('account'), 'account', problems) ?? env.CDK_DEFAULT_ACCOUNT;
  const account = explicitAccount ?? PLACEHOLDER_ACCOUNT;
  if (!/^\d{12}$/.test(account)) problems.push(`account: "${account}" is not a 12-digit AWS account id`);

  const configs = regions.map((region) => regionConfig(region, account, explicitAccount === undefined, (key) => {
    const o = overrides[region];
    const v = o && typeof o === 'object' ? (o as Record<string, unknown>)[key] : undefined;
    return v !== undefined ? parseJsonText(v, `regionOverrides.${region}.${key}`, problems) : raw(key);
  }, problems));
  if (problems.length > 0) throw new ConfigError([...new Set(problems)]);
  return configs;
}

function regionConfig(region: string, account: string, placeholderAccount: boolean, get: (key: string) => unknown,
  problems: string[]): RegionConfig {
  const where = (key: string) => `${key} (${region})`;
  const required = <T>(key: string, value: T | undefined): T => {
    if (value === undefined || (Array.isArray(value) && value.length === 0)) {
      problems.push(`${where(key)} is required`);
    }
    return value as T;
  };

  const deploymentName = asString(get('deploymentName'), 'deploymentName', problems) ?? 'atlassian-bridge';
  if (!/^[a-z][a-z0-9-]{0,29}[a-z0-9]$/.test(deploymentName)) {
    problems.push(`deploymentName: "${deploymentName}" must be 2-31 lowercase letters, digits or dashes`);
  }

  const azCount = asInt(get('azCount'), where('azCount'), problems) ?? 2;
  if (azCount !== 2 && azCount !== 3) problems.push(`${where('azCount')} must be 2 or 3`);

  const vpcCidr = asString(get('vpcCidr'), where('vpcCidr'), problems) ?? '10.80.0.0/16';
  if (!/^\d{1,3}(\.\d{1,3}){3}\/(1[6-9]|2[0-2])$/.test(vpcCidr)) {
    problems.push(`${where('vpcCidr')} must be an IPv4 CIDR between /16 and /22`);
  }

  const egressIpAllocations = asAllocations(get('egressIpAllocations'), where('egressIpAllocations'), problems);
  if (egressIpAllocations && egressIpAllocations.length !== azCount) {
    problems.push(`${where('egressIpAllocations')} lists ${egressIpAllocations.length} Elastic IPs but azCount is ` +
      `${azCount}: give one per AZ`);
  }

  const extraEgressPorts = (asIntList(get('extraEgressPorts'), where('extraEgressPorts'), problems) ?? []);
  for (const p of extraEgressPorts) {
    if (p < 1 || p > 65535) problems.push(`${where('extraEgressPorts')}: ${p} is not a TCP port`);
  }

  const jwtIssuer = required('jwtIssuer', asString(get('jwtIssuer'), where('jwtIssuer'), problems));
  if (jwtIssuer !== undefined) checkUrl(jwtIssuer, where('jwtIssuer'), problems);
  const jwtAudience = required('jwtAudience', asStringList(get('jwtAudience'), where('jwtAudience'), problems));
  const oauthClientId = required('oauthClientId', asString(get('oauthClientId'), where('oauthClientId'), problems));
  const allowedReturnUrls = required('allowedReturnUrls',
    asStringList(get('allowedReturnUrls'), where('allowedReturnUrls'), problems));
  for (const u of allowedReturnUrls ?? []) checkUrl(u, where('allowedReturnUrls'), problems);

  const secretPrefix = asString(get('secretPrefix'), where('secretPrefix'), problems) ?? `${deploymentName}/`;
  if (!/^[A-Za-z0-9_+=.@-][A-Za-z0-9/_+=.@-]*\/$/.test(secretPrefix)) {
    problems.push(`${where('secretPrefix')}: "${secretPrefix}" must end with "/" and use only the characters ` +
      'Secrets Manager allows in names, and no wildcard');
  }
  const oauthClientSecretName = asString(get('oauthClientSecretName'), where('oauthClientSecretName'), problems);
  if (oauthClientSecretName !== undefined && !/^[A-Za-z0-9/_+=.@-]+$/.test(oauthClientSecretName)) {
    problems.push(`${where('oauthClientSecretName')}: "${oauthClientSecretName}" is not a secret name`);
  }

  const tenantClaim = asString(get('tenantClaim'), where('tenantClaim'), problems) ?? 'tenant_id';
  const customDomainName = asString(get('customDomainName'), where('customDomainName'), problems);
  const customDomainCertificateArn = asString(get('customDomainCertificateArn'), where('customDomainCertificateArn'),
    problems);
  if ((customDomainName === undefined) !== (customDomainCertificateArn === undefined)) {
    problems.push(`${where('customDomainName')} and customDomainCertificateArn go together`);
  }
  if (customDomainCertificateArn !== undefined) checkArn(customDomainCertificateArn, 'acm', region, account,
    where('customDomainCertificateArn'), problems);

  const production = asBool(get('production'), where('production'), problems) ?? true;
  const rustLog = asString(get('rustLog'), where('rustLog'), problems) ?? 'info';
  // debug and trace filters switch on the HTTP libraries' own logs, which print request headers
  // (Authorization among them) and bodies: a production stack takes a plain level only.
  if (production && !PRODUCTION_LOG_LEVELS.includes(rustLog)) {
    problems.push(`${where('rustLog')}: "${rustLog}" is not allowed in a production stack; use one of ` +
      `${PRODUCTION_LOG_LEVELS.join(', ')} (set production: false for a test stack)`);
  }

  const logRetentionDays = asInt(get('logRetentionDays'), where('logRetentionDays'), problems) ?? 365;
  if (!RETENTION_DAYS.includes(logRetentionDays)) {
    problems.push(`${where('logRetentionDays')} must be one of ${RETENTION_DAYS.join(', ')}`);
  }

  const eventBusName = asString(get('eventBusName'), where('eventBusName'), problems) ?? deploymentName;
  if (!/^[A-Za-z0-9._-]{1,256}$/.test(eventBusName) || eventBusName === 'default') {
    problems.push(`${where('eventBusName')}: "${eventBusName}" is not a custom event bus name`);
  }
  const eventSource = asString(get('eventSource'), where('eventSource'), problems) ?? deploymentName;
  if (eventSource.startsWith('aws.')) problems.push(`${where('eventSource')} must not start with "aws."`);

  const apiThrottle = asThrottle(get('apiThrottle'), where('apiThrottle'), problems) ??
    { rateLimit: 50, burstLimit: 100 };
  const publicRouteThrottle = asThrottle(get('publicRouteThrottle'), where('publicRouteThrottle'), problems) ??
    { rateLimit: 5, burstLimit: 10 };
  // A person bulk-editing 500 issues in Jira sets off 500 deliveries within seconds; each costs the
  // receiver a JWT check and a few ledger reads. Half the API's own limit keeps a flood of forged
  // posts from crowding out the authenticated API, while a bulk change mostly gets through (what
  // is refused, Jira retries, and the poll catches the rest).
  const webhookRouteThrottle = asThrottle(get('webhookRouteThrottle'), where('webhookRouteThrottle'), problems) ??
    { rateLimit: 25, burstLimit: 50 };
  // Installs, uninstalls, configure pages and Forge invocations: a site's admin at a time, plus the
  // Forge app's scheduled trigger and its page's calls; each costs a signature check before anything.
  const appRouteThrottle = asThrottle(get('appRouteThrottle'), where('appRouteThrottle'), problems) ??
    { rateLimit: 10, burstLimit: 20 };
  const connectAppKey = asString(get('connectAppKey'), where('connectAppKey'), problems);
  // Atlassian: an app key is at most 64 characters of letters, digits, '.', '-' and '_'.
  if (connectAppKey !== undefined && !/^[A-Za-z0-9._-]{1,64}$/.test(connectAppKey)) {
    problems.push(`${where('connectAppKey')}: "${connectAppKey}" is not a Connect app key (1-64 of A-Z a-z 0-9 . _ -)`);
  }
  const forgeAppId = asString(get('forgeAppId'), where('forgeAppId'), problems);
  if (forgeAppId !== undefined && !/^ari:cloud:ecosystem::app\/[0-9a-f-]{36}$/.test(forgeAppId)) {
    problems.push(`${where('forgeAppId')}: "${forgeAppId}" is not a Forge app id (ari:cloud:ecosystem::app/<uuid>)`);
  }

  const reservedConcurrency = {
    ...DEFAULT_RESERVED_CONCURRENCY,
    ...asFunctionMap(get('reservedConcurrency'), where('reservedConcurrency'), problems),
  };
  for (const [fn, n] of Object.entries(reservedConcurrency)) {
    if (n === 0) delete reservedConcurrency[fn as FunctionName]; // 0 = no reservation, not "never run"
    else if (n < 0 || n > 1000) problems.push(`${where('reservedConcurrency')}.${fn} must be between 0 and 1000`);
  }
  const memoryMb = { ...DEFAULT_MEMORY_MB, ...asFunctionMap(get('memoryMb'), where('memoryMb'), problems) };
  for (const [fn, mb] of Object.entries(memoryMb)) {
    if (mb < 128 || mb > 10240) problems.push(`${where('memoryMb')}.${fn} must be between 128 and 10240`);
  }

  const alarmTopicArn = asString(get('alarmTopicArn'), where('alarmTopicArn'), problems);
  if (alarmTopicArn !== undefined) checkArn(alarmTopicArn, 'sns', region, account, where('alarmTopicArn'), problems);
  const existingKmsKeyArn = asString(get('existingKmsKeyArn'), where('existingKmsKeyArn'), problems);
  if (existingKmsKeyArn !== undefined) {
    checkArn(existingKmsKeyArn, 'kms', region, account, where('existingKmsKeyArn'), problems);
    if (!/:key\/[0-9a-f-]{36}$/.test(existingKmsKeyArn)) {
      problems.push(`${where('existingKmsKeyArn')} must be a key ARN (arn:...:key/<uuid>), not an alias`);
    }
  }
  const existingTableName = asString(get('existingTableName'), where('existingTableName'), problems);
  if (existingTableName !== undefined && existingKmsKeyArn === undefined) {
    problems.push(`${where('existingTableName')} needs existingKmsKeyArn too: the table is encrypted with that key`);
  }

  return {
    account, placeholderAccount, region, deploymentName,
    stackName: `${deploymentName}-${region}`,
    functionsDir: path.resolve(INFRA_DIR, asString(get('functionsDir'), 'functionsDir', problems) ?? '../dist/arm64'),
    routesFile: path.resolve(INFRA_DIR, asString(get('routesFile'), 'routesFile', problems) ?? '../shared/routes.json'),
    azCount, vpcCidr, egressIpAllocations, extraEgressPorts: [...new Set(extraEgressPorts)].filter((p) => p !== 443),
    jwtIssuer, jwtAudience, oauthClientId, oauthClientSecretName, allowedReturnUrls, tenantClaim, secretPrefix,
    customDomainName, customDomainCertificateArn, logRetentionDays,
    rustLog, production,
    eventBusName, eventSource, apiThrottle, publicRouteThrottle, webhookRouteThrottle, appRouteThrottle,
    connectAppKey, forgeAppId, reservedConcurrency, memoryMb,
    alarmTopicArn,
    existingKmsKeyArn, existingTableName,
  };
}

// ------------------------------------------------------------------------------------------- parsing

function readConfigFile(value: unknown, problems: string[]): Record<string, unknown> {
  if (value === undefined) return {};
  if (typeof value !== 'string') {
    problems.push('configFile must be a path');
    return {};
  }
  const file = path.resolve(INFRA_DIR, value);
  try {
    const parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) return parsed as Record<string, unknown>;
    problems.push(`configFile ${file} must hold a JSON object`);
  } catch (e) {
    problems.push(`configFile ${file}: ${(e as Error).message}`);
  }
  return {};
}

/** `-c key=[...]` and `-c key={...}` arrive as text. */
function parseJsonText(value: unknown, key: string, problems: string[]): unknown {
  if (typeof value !== 'string') return value;
  const t = value.trim();
  if (!t.startsWith('[') && !t.startsWith('{')) return value;
  try {
    return JSON.parse(t);
  } catch (e) {
    problems.push(`${key}: not valid JSON (${(e as Error).message})`);
    return undefined;
  }
}

function asString(v: unknown, key: string, problems: string[]): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string' && v.trim() !== '') return v.trim();
  problems.push(`${key} must be a non-empty string`);
  return undefined;
}

function asBool(v: unknown, key: string, problems: string[]): boolean | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'boolean') return v;
  if (v === 'true' || v === 'false') return v === 'true';
  problems.push(`${key} must be true or false`);
  return undefined;
}

function asStringList(v: unknown, key: string, problems: string[]): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return v.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (Array.isArray(v) && v.every((s) => typeof s === 'string')) return v.map((s) => s.trim()).filter((s) => s !== '');
  problems.push(`${key} must be a list of strings (a JSON list or "a,b")`);
  return undefined;
}

function asInt(v: unknown, key: string, problems: string[]): number | undefined {
  if (v === undefined || v === null) return undefined;
  const n = typeof v === 'string' && /^\d+$/.test(v.trim()) ? Number(v) : v;
  if (typeof n === 'number' && Number.isInteger(n)) return n;
  problems.push(`${key} must be a whole number`);
  return undefined;
}

function asIntList(v: unknown, key: string, problems: string[]): number[] | undefined {
  if (v === undefined || v === null) return undefined;
  const items = typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter((s) => s !== '')
    : typeof v === 'number' ? [v] : v;
  if (!Array.isArray(items)) {
    problems.push(`${key} must be a list of whole numbers`);
    return undefined;
  }
  const out: number[] = [];
  for (const item of items) {
    const n = asInt(item, key, problems);
    if (n !== undefined) out.push(n);
  }
  return out;
}

function asObject(v: unknown, key: string, problems: string[]): Record<string, unknown> {
  if (v === undefined || v === null) return {};
  if (typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  problems.push(`${key} must be an object`);
  return {};
}

function asThrottle(v: unknown, key: string, problems: string[]): Throttle | undefined {
  if (v === undefined || v === null) return undefined;
  const o = asObject(v, key, problems);
  const rateLimit = asInt(o.rateLimit, `${key}.rateLimit`, problems);
  const burstLimit = asInt(o.burstLimit, `${key}.burstLimit`, problems);
  if (rateLimit === undefined || burstLimit === undefined || rateLimit < 1 || burstLimit < 1) {
    problems.push(`${key} must be {"rateLimit": N, "burstLimit": N} with N >= 1`);
    return undefined;
  }
  return { rateLimit, burstLimit };
}

function asFunctionMap(v: unknown, key: string, problems: string[]): Partial<Record<FunctionName, number>> {
  const o = asObject(v, key, problems);
  const out: Partial<Record<FunctionName, number>> = {};
  for (const [fn, n] of Object.entries(o)) {
    if (!(FUNCTIONS as readonly string[]).includes(fn)) {
      problems.push(`${key}: "${fn}" is not one of the functions (${FUNCTIONS.join(', ')})`);
      continue;
    }
    const i = asInt(n, `${key}.${fn}`, problems);
    if (i !== undefined) out[fn as FunctionName] = i;
  }
  return out;
}

function asAllocations(v: unknown, key: string, problems: string[]): EgressIpAllocation[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) {
    problems.push(`${key} must be a list of {"allocationId": "eipalloc-...", "publicIp": "a.b.c.d"}`);
    return undefined;
  }
  const out: EgressIpAllocation[] = [];
  for (const item of v) {
    const o = asObject(item, key, problems);
    const allocationId = typeof o.allocationId === 'string' ? o.allocationId : '';
    const publicIp = typeof o.publicIp === 'string' ? o.publicIp : '';
    if (!/^eipalloc-[0-9a-f]{8,17}$/.test(allocationId)) {
      problems.push(`${key}: "${allocationId}" is not an Elastic IP allocation id (eipalloc-...)`);
    }
    if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(publicIp) || publicIp.split('.').some((x) => Number(x) > 255)) {
      problems.push(`${key}: "${publicIp}" is not an IPv4 address (give the allocation's public IP with its id)`);
    }
    out.push({ allocationId, publicIp });
  }
  if (new Set(out.map((a) => a.allocationId)).size !== out.length) problems.push(`${key}: an allocation is listed twice`);
  return out;
}

function checkUrl(value: string, key: string, problems: string[]): void {
  try {
    const u = new URL(value);
    if (u.protocol !== 'https:') problems.push(`${key}: "${value}" must be an https URL`);
  } catch {
    problems.push(`${key}: "${value}" is not an absolute URL`);
  }
}

function checkArn(value: string, service: string, region: string, account: string, key: string,
  problems: string[]): void {
  const parts = value.split(':');
  if (parts.length < 6 || parts[0] !== 'arn' || parts[2] !== service) {
    problems.push(`${key}: "${value}" is not an ${service} ARN`);
  } else if (parts[3] !== region) {
    problems.push(`${key}: "${value}" is in ${parts[3]}, not ${region}: each region's stack uses its own`);
  } else if (parts[4] !== account && account !== PLACEHOLDER_ACCOUNT) {
    problems.push(`${key}: "${value}" belongs to account ${parts[4]}, not ${account}`);
  }
}
