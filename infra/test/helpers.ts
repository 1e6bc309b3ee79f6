// Shared by the tests: synthesize the app in-process (offline, placeholder account, placeholder zips)
// and small readers over the synthesized CloudFormation.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { BridgeStack } from '../lib/bridge-stack';
import { buildApp } from '../lib/app';
import { INFRA_DIR } from '../lib/config';

export const FIXTURE_CONFIG = 'test/fixtures/config.json';
export const ROUTES_FILE = path.resolve(INFRA_DIR, '../shared/routes.json');

/** The events DESIGN.md names; the event tests make sure both are wired even before routes.json lists them. */
export const DESIGN_EVENTS = [
  { detail_type: 'Report Ready', function: 'publish-page' },
  { detail_type: 'Action Items Ready', function: 'create-issue' },
];

/** cdk.json's context (the AZ entries for the placeholder account), as the CLI would pass it. */
function cdkJsonContext(): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(path.join(INFRA_DIR, 'cdk.json'), 'utf8')).context ?? {};
}

export interface Synth {
  app: App;
  stacks: BridgeStack[];
  templates: Map<string, Template>;
}

export function synth(context: Record<string, unknown> = {}, env: NodeJS.ProcessEnv = {}): Synth {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'bridge-cdk-'));
  const app = new App({ outdir, context: { ...cdkJsonContext(), configFile: FIXTURE_CONFIG, ...context } });
  const stacks = buildApp(app, env);
  app.synth();
  const templates = new Map(stacks.map((s) => [s.region, Template.fromStack(s)]));
  return { app, stacks, templates };
}

/** The deploy configuration the READMEs' `cdk deploy` line uses. */
export const EXAMPLE_CONFIG = 'config/example.json';

/** Context for a synth from config/example.json: the file, plus what the CLI would have besides it:
 *  the zips (a build product; the file names ../dist/arm64) and the AZs that a first synth with
 *  credentials looks up for the example's account (and keeps in cdk.context.json). */
export function exampleContext(): Record<string, unknown> {
  const account = JSON.parse(fs.readFileSync(path.join(INFRA_DIR, EXAMPLE_CONFIG), 'utf8')).account;
  const azs = (r: string) => ['a', 'b', 'c'].map((x) => `${r}${x}`);
  return {
    configFile: EXAMPLE_CONFIG,
    functionsDir: 'test/fixtures/functions',
    [`availability-zones:account=${account}:region=us-east-1`]: azs('us-east-1'),
    [`availability-zones:account=${account}:region=eu-central-1`]: azs('eu-central-1'),
  };
}

/** A routes file: the real routes.json, with DESIGN.md's events added where it lacks them. */
export function routesWithDesignEvents(): string {
  const doc = JSON.parse(fs.readFileSync(ROUTES_FILE, 'utf8'));
  for (const e of DESIGN_EVENTS) {
    if (!doc.events.some((x: { detail_type: string }) => x.detail_type === e.detail_type)) doc.events.push(e);
  }
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'bridge-routes-')), 'routes.json');
  fs.writeFileSync(file, JSON.stringify(doc));
  return file;
}

export function realRoutes(): { routes: Array<{ method: string; path: string; function: string; auth: string }>;
  events: Array<{ detail_type: string; function: string }> } {
  return JSON.parse(fs.readFileSync(ROUTES_FILE, 'utf8'));
}

// --------------------------------------------------------------------------- template readers

export type Resource = { Type: string; Properties?: any; DeletionPolicy?: string; UpdateReplacePolicy?: string;
  DependsOn?: string[] };
export type Resources = Record<string, Resource>;

export function resources(t: Template): Resources {
  return t.toJSON().Resources as Resources;
}

export function ofType(t: Template, type: string): Array<[string, Resource]> {
  return Object.entries(resources(t)).filter(([, r]) => r.Type === type);
}

/** `{Ref: X}` or `{Fn::GetAtt: [X, ...]}` -> X. */
export function refTarget(v: any): string | undefined {
  if (v && typeof v === 'object') {
    if (typeof v.Ref === 'string') return v.Ref;
    if (Array.isArray(v['Fn::GetAtt'])) return v['Fn::GetAtt'][0];
  }
  return undefined;
}

export function asList<T>(v: T | T[] | undefined): T[] {
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

/** Every IAM statement in the template, with the logical id of the policy or role holding it. */
export function iamStatements(t: Template): Array<{ holder: string; statement: any }> {
  const out: Array<{ holder: string; statement: any }> = [];
  for (const [id, r] of Object.entries(resources(t))) {
    if (r.Type === 'AWS::IAM::Policy' || r.Type === 'AWS::IAM::ManagedPolicy') {
      for (const s of asList(r.Properties.PolicyDocument.Statement)) out.push({ holder: id, statement: s });
    }
    if (r.Type === 'AWS::IAM::Role') {
      for (const p of asList<any>(r.Properties.Policies)) {
        for (const s of asList(p.PolicyDocument.Statement)) out.push({ holder: id, statement: s });
      }
    }
  }
  return out;
}

/** The function's logical id for a function name (`connections` -> ConnectionsFunctionXXXXXXXX). */
export function functionId(t: Template, name: string): string {
  const found = ofType(t, 'AWS::Lambda::Function').filter(([, r]) => String(r.Properties.FunctionName).endsWith(`-${name}`));
  if (found.length !== 1) throw new Error(`expected one function named *-${name}, found ${found.length}`);
  return found[0][0];
}

/** Join an `Fn::Join` of literals and references into a readable string (`${Ref}` for references). */
export function flatten(v: any): string {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object') {
    if (v['Fn::Join']) return (v['Fn::Join'][1] as any[]).map(flatten).join(v['Fn::Join'][0]);
    if (v.Ref) return `\${${v.Ref}}`;
    if (v['Fn::GetAtt']) return `\${${v['Fn::GetAtt'].join('.')}}`;
  }
  return JSON.stringify(v);
}
