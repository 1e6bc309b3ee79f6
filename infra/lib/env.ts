// shared/env.json: the functions' environment variables, defined once (the Rust config's tests, the
// local stack and README.md's table read the same file). The functions construct sets on each
// function exactly the variables the list marks `set_by_infra` for it, and fails the synth otherwise.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FUNCTIONS, FunctionName, INFRA_DIR } from './config';

export const ENV_LIST_FILE = path.resolve(INFRA_DIR, '../shared/env.json');

export interface EnvVariable {
  readonly name: string;
  readonly required: boolean;
  readonly default: string | null;
  readonly functions: 'all' | FunctionName[];
  readonly setByInfra: boolean;
  readonly description: string;
}

export function loadEnvList(file = ENV_LIST_FILE): EnvVariable[] {
  const doc = JSON.parse(fs.readFileSync(file, 'utf8')) as { variables?: unknown };
  if (!Array.isArray(doc.variables)) throw new Error(`${file}: "variables" must be a list`);
  const problems: string[] = [];
  const seen = new Set<string>();
  const out = doc.variables.map((raw: Record<string, unknown>, i: number): EnvVariable => {
    const at = `${file}: variables[${i}]`;
    const name = raw.name;
    if (typeof name !== 'string' || !/^[A-Z][A-Z0-9_]*$/.test(name)) problems.push(`${at}: name`);
    else if (seen.has(name)) problems.push(`${at}: ${name} is listed twice`);
    else seen.add(name);
    if (typeof raw.required !== 'boolean') problems.push(`${at}: required must be true or false`);
    if (raw.default !== null && typeof raw.default !== 'string') problems.push(`${at}: default must be a string or null`);
    const fns = raw.functions;
    if (fns !== 'all' && !(Array.isArray(fns) && fns.length > 0 &&
      fns.every((f) => (FUNCTIONS as readonly unknown[]).includes(f)))) {
      problems.push(`${at}: functions must be "all" or a list of ${FUNCTIONS.join(', ')}`);
    }
    if (typeof raw.set_by_infra !== 'boolean') problems.push(`${at}: set_by_infra must be true or false`);
    if (typeof raw.description !== 'string' || raw.description === '') problems.push(`${at}: description`);
    return { name: name as string, required: raw.required as boolean, default: raw.default as string | null,
      functions: fns as EnvVariable['functions'], setByInfra: raw.set_by_infra as boolean,
      description: raw.description as string };
  });
  if (problems.length > 0) throw new Error(`${file} is malformed:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  return out;
}

export function appliesTo(v: EnvVariable, fn: FunctionName): boolean {
  return v.functions === 'all' || v.functions.includes(fn);
}

/** The names the stack must set on `fn`. */
export function infraVariables(list: EnvVariable[], fn: FunctionName): string[] {
  return list.filter((v) => v.setByInfra && appliesTo(v, fn)).map((v) => v.name);
}

/** Throws unless `environment` holds exactly the variables the list has the stack set on `fn`, but
 *  for those in `unset`: optional settings the deployment leaves out (an app it is not). */
export function checkEnvironment(list: EnvVariable[], fn: FunctionName, environment: Record<string, string>,
  unset: readonly string[] = []): void {
  const wanted = new Set(infraVariables(list, fn));
  const given = Object.keys(environment);
  const unknown = given.filter((n) => !wanted.has(n));
  const missing = [...wanted].filter((n) => !given.includes(n) && !unset.includes(n));
  if (unknown.length > 0 || missing.length > 0) {
    throw new Error(`${fn}'s environment does not match ${path.relative(path.resolve(INFRA_DIR, '..'), ENV_LIST_FILE)}` +
      (unknown.length > 0 ? `; not listed for it (with set_by_infra): ${unknown.join(', ')}` : '') +
      (missing.length > 0 ? `; listed but not set: ${missing.join(', ')}` : ''));
  }
}
