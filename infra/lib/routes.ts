// shared/routes.json: the HTTP routes, EventBridge rules and EventBridge Scheduler schedules. The local gateway (tests/gateway) routes
// from the same file, so the deployed API and the local one cannot drift apart.
import * as fs from 'node:fs';
import { FUNCTIONS, FunctionName } from './config';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH';
const METHODS: readonly string[] = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH'];

export interface Route {
  readonly method: HttpMethod;
  readonly path: string;
  readonly function: FunctionName;
  /** `jwt`: the API's JWT authorizer; `none`: public (only the OAuth callback). */
  readonly auth: 'jwt' | 'none';
}

export interface EventRule {
  readonly detailType: string;
  readonly function: FunctionName;
  /** When set, only events from this source match; otherwise any source but our own. */
  readonly source?: string;
  /** The bridge's own event (an issue job's deferred part): only our own source matches. */
  readonly own?: boolean;
}

/** An EventBridge Scheduler schedule: invokes `function` with `input` at `expression`. */
export interface Schedule {
  readonly name: string;
  readonly function: FunctionName;
  readonly expression: string;
  readonly input: Record<string, unknown>;
}

export interface Routes {
  readonly routes: Route[];
  readonly events: EventRule[];
  readonly schedules: Schedule[];
}

export function loadRoutes(file: string): Routes {
  let doc: unknown;
  try {
    doc = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`cannot read routes file ${file}: ${(e as Error).message}`);
  }
  return parseRoutes(doc, file);
}

export function parseRoutes(doc: unknown, file = 'routes.json'): Routes {
  const problems: string[] = [];
  const d = (doc ?? {}) as { routes?: unknown; events?: unknown; schedules?: unknown };
  const isFunction = (f: unknown): f is FunctionName => (FUNCTIONS as readonly unknown[]).includes(f);

  const routes: Route[] = [];
  const keys = new Set<string>();
  for (const [i, raw] of (Array.isArray(d.routes) ? d.routes : []).entries()) {
    const r = (raw ?? {}) as Record<string, unknown>;
    const at = `routes[${i}]`;
    if (typeof r.method !== 'string' || !METHODS.includes(r.method)) problems.push(`${at}: method ${String(r.method)}`);
    if (typeof r.path !== 'string' || !/^\/[A-Za-z0-9._~{}+\-/]*$/.test(r.path)) {
      problems.push(`${at}: path ${String(r.path)}`);
    }
    if (!isFunction(r.function)) problems.push(`${at}: function ${String(r.function)} is not one of ${FUNCTIONS.join(', ')}`);
    if (r.auth !== 'jwt' && r.auth !== 'none') problems.push(`${at}: auth must be "jwt" or "none"`);
    const key = `${String(r.method)} ${String(r.path)}`;
    if (keys.has(key)) problems.push(`${at}: ${key} is listed twice`);
    keys.add(key);
    routes.push({ method: r.method as HttpMethod, path: r.path as string, function: r.function as FunctionName,
      auth: r.auth as 'jwt' | 'none' });
  }
  if (!Array.isArray(d.routes)) problems.push('"routes" must be a list');

  const events: EventRule[] = [];
  const detailTypes = new Set<string>();
  for (const [i, raw] of (Array.isArray(d.events) ? d.events : []).entries()) {
    const e = (raw ?? {}) as Record<string, unknown>;
    const at = `events[${i}]`;
    if (typeof e.detail_type !== 'string' || e.detail_type.trim() === '') problems.push(`${at}: detail_type`);
    if (!isFunction(e.function)) problems.push(`${at}: function ${String(e.function)} is not one of ${FUNCTIONS.join(', ')}`);
    if (e.source !== undefined && e.source !== null && typeof e.source !== 'string') problems.push(`${at}: source`);
    if (e.own !== undefined && typeof e.own !== 'boolean') problems.push(`${at}: own`);
    if (e.own === true && typeof e.source === 'string') problems.push(`${at}: own and source exclude each other`);
    const key = `${String(e.detail_type)} ${String(e.function)}`;
    if (detailTypes.has(key)) problems.push(`${at}: ${key} is listed twice`);
    detailTypes.add(key);
    events.push({ detailType: e.detail_type as string, function: e.function as FunctionName,
      source: typeof e.source === 'string' ? e.source : undefined, own: e.own === true });
  }
  if (d.events !== undefined && !Array.isArray(d.events)) problems.push('"events" must be a list');

  const schedules: Schedule[] = [];
  const names = new Set<string>();
  for (const [i, raw] of (Array.isArray(d.schedules) ? d.schedules : []).entries()) {
    const s = (raw ?? {}) as Record<string, unknown>;
    const at = `schedules[${i}]`;
    if (typeof s.name !== 'string' || !/^[a-z0-9-]{1,40}$/.test(s.name)) problems.push(`${at}: name ${String(s.name)}`);
    if (!isFunction(s.function)) problems.push(`${at}: function ${String(s.function)} is not one of ${FUNCTIONS.join(', ')}`);
    // EventBridge Scheduler's rate() and cron() forms (at() is one-off: not a schedule of ours).
    if (typeof s.expression !== 'string' || !/^(rate|cron)\(.+\)$/.test(s.expression)) {
      problems.push(`${at}: expression ${String(s.expression)} must be rate(...) or cron(...)`);
    }
    if (s.input === null || typeof s.input !== 'object' || Array.isArray(s.input)) problems.push(`${at}: input must be an object`);
    if (names.has(String(s.name))) problems.push(`${at}: ${String(s.name)} is listed twice`);
    names.add(String(s.name));
    schedules.push({ name: s.name as string, function: s.function as FunctionName, expression: s.expression as string,
      input: (s.input ?? {}) as Record<string, unknown> });
  }
  if (d.schedules !== undefined && !Array.isArray(d.schedules)) problems.push('"schedules" must be a list');

  if (problems.length > 0) throw new Error(`${file} is malformed:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  return { routes, events, schedules };
}
