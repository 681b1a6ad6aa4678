/**
 * The Ansible settings kvmconf shares with Ansible, found where Ansible finds them:
 * the first of $ANSIBLE_CONFIG, ./ansible.cfg, ~/.ansible.cfg, /etc/ansible/ansible.cfg
 * (only one file is read, as in Ansible), then the ANSIBLE_* environment variables,
 * which win over the file. kvmconf's own command-line flags win over both (shared.ts).
 *
 * As in Ansible, ./ansible.cfg in a world-writable directory is ignored: anyone could
 * have put it there, and it can name the inventory and switch host key checking off.
 */
import { statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { InputError, type SourceLocation } from '../errors.js';
import { readInputFile } from './input-file.js';

export interface AnsibleSetting<T> {
  value: T;
  /** Where it was set: `FILE:LINE` or the environment variable's name, for messages. */
  origin: string;
}

export interface AnsibleConfig {
  /** The file read, if any. */
  file?: string;
  inventory?: AnsibleSetting<string[]>;
  remoteUser?: AnsibleSetting<string>;
  privateKeyFile?: AnsibleSetting<string>;
  hostKeyChecking?: AnsibleSetting<boolean>;
  forks?: AnsibleSetting<number>;
  timeout?: AnsibleSetting<number>;
  vaultPasswordFile?: AnsibleSetting<string>;
  /** `label@source` entries, as --vault-id takes them. */
  vaultIdentityList?: AnsibleSetting<string[]>;
  /** Why a file was passed over (a world-writable folder). */
  warnings: string[];
}

type Key = Exclude<keyof AnsibleConfig, 'file' | 'warnings'>;
type Kind = 'pathlist' | 'path' | 'list' | 'string' | 'boolean' | 'integer';

/** [defaults] key, environment variable, value type; relative paths resolve against the file's folder. */
const SETTINGS: Array<{ key: Key; ini: string; env: string; kind: Kind }> = [
  { key: 'inventory', ini: 'inventory', env: 'ANSIBLE_INVENTORY', kind: 'pathlist' },
  { key: 'remoteUser', ini: 'remote_user', env: 'ANSIBLE_REMOTE_USER', kind: 'string' },
  { key: 'privateKeyFile', ini: 'private_key_file', env: 'ANSIBLE_PRIVATE_KEY_FILE', kind: 'path' },
  { key: 'hostKeyChecking', ini: 'host_key_checking', env: 'ANSIBLE_HOST_KEY_CHECKING', kind: 'boolean' },
  { key: 'forks', ini: 'forks', env: 'ANSIBLE_FORKS', kind: 'integer' },
  { key: 'timeout', ini: 'timeout', env: 'ANSIBLE_TIMEOUT', kind: 'integer' },
  { key: 'vaultPasswordFile', ini: 'vault_password_file', env: 'ANSIBLE_VAULT_PASSWORD_FILE', kind: 'path' },
  { key: 'vaultIdentityList', ini: 'vault_identity_list', env: 'ANSIBLE_VAULT_IDENTITY_LIST', kind: 'list' },
];

const expandHome = (path: string, home: string): string => (path === '~' ? home : path.startsWith('~/') ? join(home, path.slice(2)) : path);

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** The ansible.cfg Ansible would read, and any file passed over for safety. */
export function findAnsibleConfig(env: NodeJS.ProcessEnv, cwd: string, home: string): { file?: string; warnings: string[] } {
  const warnings: string[] = [];
  const fromEnv = env.ANSIBLE_CONFIG ? expandHome(env.ANSIBLE_CONFIG, home) : undefined;
  if (fromEnv) {
    const file = isFile(fromEnv) ? fromEnv : join(fromEnv, 'ansible.cfg');
    if (isFile(file)) return { file: resolve(cwd, file), warnings };
  }
  const local = join(cwd, 'ansible.cfg');
  if (isFile(local)) {
    if ((statSync(cwd).mode & 0o002) === 0) return { file: local, warnings };
    warnings.push(`${local} ignored: ${cwd} is world-writable (as Ansible does)`);
  }
  for (const file of [join(home, '.ansible.cfg'), '/etc/ansible/ansible.cfg']) if (isFile(file)) return { file, warnings };
  return { warnings };
}

/** The [defaults] section of an ansible.cfg, as Python's configparser reads it (`;` inline comments). */
export function parseDefaults(text: string, file: string): Map<string, { value: string; line: number }> {
  const values = new Map<string, { value: string; line: number }>();
  let section: string | undefined;
  let last: string | undefined;
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = index + 1;
    if (/^\s*([#;]|$)/.test(raw)) return;
    // An indented line continues the previous value, as in configparser.
    if (/^\s/.test(raw) && last !== undefined && section === 'defaults') {
      const entry = values.get(last)!;
      entry.value = `${entry.value}\n${raw.trim()}`;
      return;
    }
    const header = /^\[([^\]]+)\]\s*$/.exec(raw.trim());
    if (header) {
      [section, last] = [header[1]!.trim(), undefined];
      return;
    }
    const pair = /^([^=:]+?)\s*[=:]\s*(.*)$/.exec(raw.trim());
    if (!pair) throw new InputError(`cannot read line '${raw.trim()}': expected key = value`, { file, line });
    if (section === undefined) throw new InputError('a setting before any [section]', { file, line });
    if (section !== 'defaults') return;
    last = pair[1]!.toLowerCase();
    values.set(last, { value: pair[2]!.replace(/\s+;.*$/, ''), line });
  });
  return values;
}

function typed(kind: Kind, text: string, base: string, home: string, where: SourceLocation | string): unknown {
  const fail = (expected: string): InputError =>
    typeof where === 'string' ? new InputError(`${where} must be ${expected}, not '${text}'`) : new InputError(`'${text}' is not ${expected}`, where);
  const path = (item: string): string => resolve(base, expandHome(item.trim(), home));
  if (kind === 'pathlist') return text.split(',').map((item) => item.trim()).filter(Boolean).map(path);
  if (kind === 'path') return path(text);
  if (kind === 'list') return text.split(',').map((item) => item.trim()).filter(Boolean);
  if (kind === 'string') return text;
  if (kind === 'integer') {
    if (!/^\s*\d+\s*$/.test(text) || Number(text) < 1) throw fail('a whole number of at least 1');
    return Number(text);
  }
  const lower = text.trim().toLowerCase();
  if (['yes', 'true', 'on', 'y', 't', '1'].includes(lower)) return true;
  if (['no', 'false', 'off', 'n', 'f', '0'].includes(lower)) return false;
  throw fail('a boolean (True or False)');
}

/** The settings of the ansible.cfg Ansible would read and of the environment, checked. */
export function loadAnsibleConfig(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd(), home = homedir()): AnsibleConfig {
  const { file, warnings } = findAnsibleConfig(env, cwd, home);
  const config: AnsibleConfig = { warnings, ...(file && { file }) };
  const set = (key: Key, value: unknown, origin: string): void => {
    (config as unknown as Record<string, AnsibleSetting<unknown>>)[key] = { value, origin };
  };
  if (file) {
    const defaults = parseDefaults(readInputFile(file), file);
    for (const setting of SETTINGS) {
      const found = defaults.get(setting.ini);
      if (found && found.value !== '') set(setting.key, typed(setting.kind, found.value, dirname(file), home, { file, line: found.line, path: setting.ini }), `${file}:${found.line}`);
    }
  }
  for (const setting of SETTINGS) {
    const value = env[setting.env];
    if (value) set(setting.key, typed(setting.kind, value, cwd, home, setting.env), setting.env);
  }
  return config;
}
