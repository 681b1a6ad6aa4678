/**
 * Inventory variables as every inventory source (YAML, INI, script) gives them: the
 * connection variables kvmconf reads are type-checked where they are written; every
 * other variable is the user's own.
 */
import { InputError } from '../errors.js';
import { validateAt } from './schema.js';
import { VaultText } from './vault.js';
import type { PathSegment, YamlSource } from './yaml-source.js';

const port = { type: 'integer', minimum: 1, maximum: 65535 };
const text = { type: 'string' };
const address = { type: 'string', minLength: 1 };

/** Connection variables are type-checked; any other variable is the user's own. */
export const VARS_SCHEMA = {
  type: 'object',
  properties: {
    ansible_host: address,
    ansible_ssh_host: address,
    ansible_port: port,
    ansible_ssh_port: port,
    ansible_user: text,
    ansible_ssh_user: text,
    ansible_connection: { enum: ['ssh', 'local'] },
    ansible_ssh_private_key_file: address,
    ansible_private_key_file: address,
    ansible_ssh_common_args: text,
    ansible_ssh_extra_args: text,
    ansible_ssh_timeout: { type: 'number', exclusiveMinimum: 0 },
    ansible_group_priority: { type: 'integer' },
    kvmconf_known_hosts_file: address,
    kvmconf_host_key_checking: { enum: ['strict', 'accept-new', 'off'] },
    kvmconf_proxy_jump: address,
    kvmconf_hypervisor: address,
    kvmconf_domain: address,
    kvmconf_lock_file: { type: 'string', pattern: '^/[A-Za-z0-9_./-]+$' },
    kvmconf_lock_wait: { type: 'integer', minimum: 0 },
  },
} as const;

/** Variables Ansible also accepts as numeric strings (`ansible_port: "2222"`). */
export const NUMERIC_VARS = ['ansible_port', 'ansible_ssh_port', 'ansible_ssh_timeout', 'ansible_group_priority', 'kvmconf_lock_wait'];
/** Variables holding a boolean, which YAML 1.2 leaves as strings when written yes/no. */
export const BOOLEAN_VARS = ['ansible_become', 'ansible_host_key_checking', 'ansible_ssh_host_key_checking'];

export const isMapping = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object' && !Array.isArray(value);
export const kindOf = (value: unknown): string => (value === null ? 'null' : Array.isArray(value) ? 'list' : typeof value === 'object' ? 'mapping' : typeof value);
export const templated = (value: unknown): boolean => typeof value === 'string' && value.includes('{{');

/** Ansible's boolean spellings; undefined when the value is not one. */
export function toBoolean(value: unknown): boolean | undefined {
  if (typeof value === 'boolean') return value;
  if (typeof value === 'number' && (value === 0 || value === 1)) return value === 1;
  if (typeof value !== 'string') return undefined;
  const lower = value.trim().toLowerCase();
  if (['yes', 'true', 'on', 'y', '1'].includes(lower)) return true;
  if (['no', 'false', 'off', 'n', '0'].includes(lower)) return false;
  return undefined;
}

/** Splits a command-line fragment as a POSIX shell would (quotes and backslashes). */
export function shellWords(line: string): string[] | undefined {
  const words: string[] = [];
  let current = '';
  let inWord = false;
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote === "'") {
      if (c === "'") quote = undefined;
      else current += c;
    } else if (quote === '"') {
      if (c === '"') quote = undefined;
      else if (c === '\\' && '"\\$`'.includes(line[i + 1] ?? 'x')) current += line[++i];
      else current += c;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(current);
      current = '';
      inWord = false;
    } else {
      inWord = true;
      if (c === "'" || c === '"') quote = c;
      else if (c === '\\' && i + 1 < line.length) current += line[++i];
      else current += c;
    }
  }
  if (quote) return undefined;
  if (inWord) words.push(current);
  return words;
}

/**
 * Errors of the connection variables in `vars` (written at `path` of `source`): types,
 * quotes of ssh arguments, booleans. Values holding `{{ templates }}` are checked once
 * rendered; numeric strings count as the numbers Ansible reads them as.
 */
export function checkVars(vars: Record<string, unknown>, source: YamlSource, path: PathSegment[]): InputError[] {
  const errors: InputError[] = [];
  const checked = Object.fromEntries(
    Object.entries(vars)
      // Vaulted values are checked once decrypted, when a host's connection is resolved.
      .filter(([, item]) => !templated(item) && !(item instanceof VaultText))
      .map(([key, item]) => [key, NUMERIC_VARS.includes(key) && typeof item === 'string' && /^\d+(\.\d+)?$/.test(item) ? Number(item) : item]),
  );
  errors.push(...validateAt(VARS_SCHEMA, checked, source, path));
  for (const key of ['ansible_ssh_common_args', 'ansible_ssh_extra_args']) {
    const value = checked[key];
    if (typeof value === 'string' && shellWords(value) === undefined) errors.push(new InputError(`'${key}' has an unbalanced quote`, source.locate([...path, key])));
  }
  for (const key of BOOLEAN_VARS) {
    if (key in checked && checked[key] !== null && toBoolean(checked[key]) === undefined) {
      errors.push(new InputError(`'${key}' must be a boolean (true/false or yes/no), not ${JSON.stringify(checked[key])}`, source.locate([...path, key])));
    }
  }
  return errors;
}
