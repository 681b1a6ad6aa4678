/**
 * Inventories in Ansible's shapes (YAML, INI, scripts, folders; see inventory-sources.ts),
 * so an existing Ansible inventory works unchanged, and how each host is reached: its
 * connection variables resolved against the command line's defaults.
 */
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { InputError, type SourceLocation } from '../errors.js';
import type { ConnectionSpec, HostKeyChecking } from '../transport/types.js';
import { shellWords, toBoolean } from './inventory-vars.js';
import { revealed, VaultText } from './vault.js';
import { hasTemplate, render } from './template.js';
import { Secret } from '../secret.js';
import type { Become } from '../engine/become.js';

export { loadInventory } from './inventory-sources.js';
export { shellWords, VARS_SCHEMA } from './inventory-vars.js';

export interface InventoryHost {
  name: string;
  /** Variables after applying every layer of precedence. */
  vars: Record<string, unknown>;
  /** Every group the host is in, directly or through a child group; sorted, includes 'all'. */
  groups: string[];
  /** Folder of the inventory file: relative paths in vars resolve against it (default: cwd). */
  inventoryDir?: string;
  /** Where a variable of `vars` was written (file, line), for errors found at connect time. */
  origin?: (name: string) => SourceLocation | undefined;
}

export interface InventoryGroup {
  name: string;
  /** Every host of the group, including those of its descendants, in inventory order. */
  hosts: string[];
  /** Hosts listed under the group itself, as `ansible-inventory --list` shows them. */
  directHosts: string[];
  /** Direct child groups, in order of appearance. */
  children: string[];
  /** Variables written for the group in the inventory sources (not group_vars files). */
  vars: Record<string, unknown>;
}

export interface Inventory {
  /** The sources, comma-separated, for messages. */
  file: string;
  /** In order of first appearance in the inventory file. */
  hosts: Map<string, InventoryHost>;
  /** `all` and `ungrouped` first, then in order of first appearance. */
  groups: Map<string, InventoryGroup>;
}

export interface ConnectionDefaults {
  hostKeyChecking: HostKeyChecking;
  /**
   * The mode was given on the command line: inventory values never change it. Otherwise
   * an inventory may strengthen it silently, and weaken it only with a warning.
   */
  hostKeyCheckingExplicit?: boolean;
  knownHostsFile?: string;
  connectTimeoutMs: number;
  keepaliveIntervalMs: number;
  privateKeyFile?: string;
  user?: string;
  /** --ask-pass: the login password of hosts whose inventory gives none. */
  password?: Secret;
  /** -e variables: they win over the inventory's connection variables. */
  extraVars?: Record<string, unknown>;
}

/**
 * `--local`: this machine, reached without SSH, as an explicit inventory (Ansible's
 * `-i localhost, -c local`). Never used unless asked for.
 */
export function localInventory(): Inventory {
  const host: InventoryHost = { name: 'localhost', vars: { ansible_connection: 'local' }, groups: ['all', 'local'], inventoryDir: process.cwd() };
  return {
    file: '--local',
    hosts: new Map([[host.name, host]]),
    groups: new Map([
      ['all', { name: 'all', hosts: ['localhost'], directHosts: [], children: ['ungrouped', 'local'], vars: {} }],
      ['ungrouped', { name: 'ungrouped', hosts: [], directHosts: [], children: [], vars: {} }],
      ['local', { name: 'local', hosts: ['localhost'], directHosts: ['localhost'], children: [], vars: {} }],
    ]),
  };
}

interface SshArgs {
  proxyJump?: string;
  hostKeyChecking?: HostKeyChecking;
  /** Which variable carried the StrictHostKeyChecking option. */
  hostKeyCheckingVar?: string;
  knownHostsFile?: string;
}

/** What kvmconf honours from ssh options: -J, and -o ProxyJump, StrictHostKeyChecking, UserKnownHostsFile. */
function parseSshArgs(words: string[]): SshArgs {
  const found: SshArgs = {};
  const option = (text: string): void => {
    const match = /^\s*([A-Za-z]+)\s*(?:=\s*|\s+)(.*?)\s*$/.exec(text);
    if (!match) return;
    const key = match[1]!.toLowerCase();
    const value = match[2]!;
    // ssh keeps the first value it is given for an option; so do we.
    if (key === 'proxyjump') found.proxyJump ??= value;
    else if (key === 'userknownhostsfile') found.knownHostsFile ??= value.split(/\s+/)[0];
    else if (key === 'stricthostkeychecking') {
      // Ansible users write `-o StrictHostKeyChecking=no` to skip host key checks.
      const lower = value.toLowerCase();
      const mode: HostKeyChecking | undefined = ['no', 'off', 'false'].includes(lower) ? 'off' : lower === 'accept-new' ? 'accept-new' : ['yes', 'ask', 'true', 'on'].includes(lower) ? 'strict' : undefined;
      if (mode) found.hostKeyChecking ??= mode;
    }
  };
  for (let i = 0; i < words.length; i++) {
    const word = words[i]!;
    if (word === '-J') found.proxyJump ??= words[++i];
    else if (word.startsWith('-J')) found.proxyJump ??= word.slice(2);
    else if (word === '-o') option(words[++i] ?? '');
    else if (word.startsWith('-o')) option(word.slice(2));
  }
  return found;
}

function expandHome(path: string): string {
  return path === '~' ? homedir() : path.startsWith('~/') ? join(homedir(), path.slice(2)) : path;
}

interface HostKeySetting {
  mode: HostKeyChecking;
  /** The variable that asked for it, as the user wrote it, for warnings. */
  source: string;
}

/** What the host's variables ask of host key checking, with the variable that asks. */
function inventoryHostKeyChecking(vars: Record<string, unknown>, args: SshArgs, fail: (message: string, name: string) => InputError): HostKeySetting | undefined {
  const checking = vars.kvmconf_host_key_checking;
  if (checking !== undefined && checking !== null) {
    if (checking !== 'strict' && checking !== 'accept-new' && checking !== 'off') throw fail(`kvmconf_host_key_checking must be strict, accept-new or off, not ${typeof checking === 'string' ? `'${checking}'` : JSON.stringify(checking)}`, 'kvmconf_host_key_checking');
    return { mode: checking, source: `kvmconf_host_key_checking: ${checking}` };
  }
  let found: HostKeySetting | undefined;
  for (const name of ['ansible_host_key_checking', 'ansible_ssh_host_key_checking']) {
    if (vars[name] === undefined || vars[name] === null) continue;
    const flag = toBoolean(vars[name]);
    if (flag === undefined) throw fail(`${name} must be a boolean, not ${JSON.stringify(vars[name])}`, name);
    if (!flag) found ??= { mode: 'off', source: `${name}: ${JSON.stringify(vars[name])}` };
  }
  if (found) return found;
  return args.hostKeyChecking && { mode: args.hostKeyChecking, source: `StrictHostKeyChecking in ${args.hostKeyCheckingVar}` };
}

const STRENGTH: Record<HostKeyChecking, number> = { off: 0, 'accept-new': 1, strict: 2 };

/**
 * The host key checking of one host. Inventory data (a group_vars file, a dynamic
 * inventory script) can come from anywhere, so it never changes a mode the command line
 * gave, and it weakens the default only with a warning naming the host and variable.
 * Whatever the mode, the transport refuses a key that differs from a recorded one.
 */
export function hostKeyChecking(hostName: string, asked: HostKeySetting | undefined, defaults: ConnectionDefaults): { mode: HostKeyChecking; warnings: string[] } {
  const mode = defaults.hostKeyChecking;
  if (!asked || asked.mode === mode) return { mode, warnings: [] };
  if (defaults.hostKeyCheckingExplicit) {
    const ignored = STRENGTH[asked.mode] < STRENGTH[mode] ? [`host '${hostName}': ${asked.source} ignored: --host-key-checking ${mode} was given`] : [];
    return { mode, warnings: ignored };
  }
  if (STRENGTH[asked.mode] > STRENGTH[mode]) return { mode: asked.mode, warnings: [] };
  return {
    mode: asked.mode,
    warnings: [`host '${hostName}': host key checking weakened to '${asked.mode}' by the inventory (${asked.source}); a changed host key is still refused`],
  };
}

/**
 * Ansible connection variables kvmconf does not act on, and why: each is a warning naming
 * the host and the variable (never its value: some are secrets), not a silent no-op.
 */
const UNSUPPORTED_VARS: Record<string, { allowed?: unknown[]; why: string }> = {
  ansible_become_method: { allowed: ['sudo'], why: 'kvmconf becomes the user with sudo only' },
  ansible_become_exe: { why: 'kvmconf runs sudo' },
  ansible_become_flags: { why: 'kvmconf runs sudo -n, or sudo -S when given a password' },
};

function unsupportedVars(host: InventoryHost): string[] {
  return Object.entries(UNSUPPORTED_VARS)
    .filter(([name, { allowed }]) => host.vars[name] !== undefined && host.vars[name] !== null && !allowed?.includes(host.vars[name]))
    .map(([name, { allowed, why }]) => `host '${host.name}': ${name}${allowed ? ` other than ${allowed.join(' or ')}` : ''} is not supported and is ignored: ${why}`);
}

/**
 * How to reach a host: its connection variables, with the command line's values as
 * defaults for whatever the inventory leaves out. Warnings (a weakened host key
 * check) are appended to `warnings` when given.
 */
export function connectionSpec(host: InventoryHost, defaults: ConnectionDefaults, warnings?: string[]): ConnectionSpec {
  // -e beats every inventory variable, connection variables included, as in Ansible.
  const vars = defaults.extraVars ? { ...host.vars, ...defaults.extraVars } : host.vars;
  const dir = host.inventoryDir ?? process.cwd();
  const origin = (name: string): SourceLocation | undefined =>
    defaults.extraVars && Object.prototype.hasOwnProperty.call(defaults.extraVars, name) ? { file: '-e', path: name } : host.origin?.(name);
  const fail = (message: string, name?: string): InputError => new InputError(`host '${host.name}': ${message}`, name === undefined ? undefined : origin(name));
  // A vaulted value is a secret: errors say what is wrong with it, never what it is.
  const shown = (name: string, value: unknown): string => (vars[name] instanceof VaultText ? 'the vaulted value' : JSON.stringify(value));
  /** The variable as it will be used: decrypted, and rendered when it holds `{{ templates }}`. */
  const valueOf = (name: string): unknown => {
    const value = revealed(vars[name], `host '${host.name}': ${name}`);
    return hasTemplate(value) ? render(value, vars, origin(name) ?? { file: host.name, path: name }) : value;
  };
  const text = (...names: string[]): string | undefined => {
    for (const name of names) {
      const value = valueOf(name);
      if (value === undefined || value === null) continue;
      if (typeof value !== 'string' || value === '') throw fail(`${name} must be a non-empty string, not ${shown(name, value)}`, name);
      return value;
    }
    return undefined;
  };
  const number = (name: string, valid: (n: number) => boolean, expected: string): number | undefined => {
    const value = valueOf(name);
    if (value === undefined || value === null) return undefined;
    const parsed = typeof value === 'string' && /^\d+(\.\d+)?$/.test(value) ? Number(value) : value;
    if (typeof parsed !== 'number' || !valid(parsed)) throw fail(`${name} must be ${expected}, not ${shown(name, value)}`, name);
    return parsed;
  };
  const inventoryPath = (path: string): string => resolve(dir, expandHome(path));

  const connection = text('ansible_connection') ?? 'ssh';
  if (connection !== 'ssh' && connection !== 'local') throw fail(`ansible_connection must be ssh or local, not '${connection}'`, 'ansible_connection');
  const isPort = (n: number): boolean => Number.isInteger(n) && n >= 1 && n <= 65535;
  const port = number('ansible_port', isPort, 'a port number 1..65535') ?? number('ansible_ssh_port', isPort, 'a port number 1..65535');
  const timeout = number('ansible_ssh_timeout', (n) => n > 0, 'a number of seconds');

  const args: SshArgs = {};
  for (const name of ['ansible_ssh_common_args', 'ansible_ssh_extra_args']) {
    const value = text(name);
    if (value === undefined) continue;
    const split = shellWords(value);
    if (!split) throw fail(`${name} has an unbalanced quote: ${value}`, name);
    const found = parseSshArgs(split);
    // ssh keeps the first value it is given for an option; so do we.
    args.proxyJump ??= found.proxyJump;
    args.knownHostsFile ??= found.knownHostsFile;
    if (found.hostKeyChecking && !args.hostKeyChecking) Object.assign(args, { hostKeyChecking: found.hostKeyChecking, hostKeyCheckingVar: name });
  }

  const hostKey = hostKeyChecking(host.name, inventoryHostKeyChecking(vars, args, fail), defaults);
  warnings?.push(...hostKey.warnings, ...unsupportedVars(host));
  const hostKeyCheckingMode = hostKey.mode;

  const keyFile = text('ansible_ssh_private_key_file', 'ansible_private_key_file');
  const privateKeyFiles = keyFile !== undefined ? [inventoryPath(keyFile)] : defaults.privateKeyFile !== undefined ? [resolve(expandHome(defaults.privateKeyFile))] : undefined;
  const knownHosts = text('kvmconf_known_hosts_file') ?? args.knownHostsFile;
  const knownHostsFile = knownHosts !== undefined ? inventoryPath(knownHosts) : defaults.knownHostsFile;
  let proxyJump = text('kvmconf_proxy_jump') ?? args.proxyJump;
  if (proxyJump?.toLowerCase() === 'none' || proxyJump === '') proxyJump = undefined;
  const user = text('ansible_user', 'ansible_ssh_user') ?? defaults.user;
  const passwordText = text('ansible_ssh_pass', 'ansible_ssh_password', 'ansible_password');
  const password = passwordText !== undefined ? new Secret(passwordText) : defaults.password;

  return {
    name: host.name,
    connection,
    host: text('ansible_host', 'ansible_ssh_host') ?? host.name,
    ...(port !== undefined && { port }),
    ...(user !== undefined && { user }),
    ...(privateKeyFiles !== undefined && { privateKeyFiles }),
    ...(password !== undefined && { password }),
    ...(knownHostsFile !== undefined && { knownHostsFile }),
    hostKeyChecking: hostKeyCheckingMode,
    ...(proxyJump !== undefined && { proxyJump }),
    connectTimeoutMs: timeout !== undefined ? Math.round(timeout * 1000) : defaults.connectTimeoutMs,
    keepaliveIntervalMs: defaults.keepaliveIntervalMs,
  };
}

/** The host's `ansible_become`, if set: plays and the CLI decide when it is not. */
export function becomeDefault(host: Pick<InventoryHost, 'name' | 'vars'>): boolean | undefined {
  const value = revealed(host.vars.ansible_become, `host '${host.name}': ansible_become`);
  if (value === undefined || value === null) return undefined;
  const flag = toBoolean(value);
  if (flag === undefined) throw new InputError(`host '${host.name}': ansible_become must be a boolean, not ${JSON.stringify(value)}`);
  return flag;
}

const USER_NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$/;

/**
 * How a host's scripts run: as the login user (undefined), or through sudo as
 * ansible_become_user / the play's become_user (root by default), with the sudo password
 * of ansible_become_password (vaulted or not) or --ask-become-pass. `vars` are the host's
 * merged variables (inventory, play, extra vars), so `-e ansible_become_user=x` wins.
 */
export function becomeFor(hostName: string, vars: Record<string, unknown>, play: { become: boolean; becomeUser?: string }, askedPassword?: Secret): Become | undefined {
  const fail = (message: string): InputError => new InputError(`host '${hostName}': ${message}`);
  const value = (name: string): unknown => revealed(vars[name], `host '${hostName}': ${name}`);
  if (!(play.become || becomeDefault({ name: hostName, vars }))) return undefined;
  const user = value('ansible_become_user') ?? play.becomeUser ?? 'root';
  if (typeof user !== 'string' || !USER_NAME.test(user)) throw fail(`ansible_become_user must be a user name, not ${JSON.stringify(user)}`);
  const passwordName = ['ansible_become_password', 'ansible_become_pass', 'ansible_sudo_pass'].find((name) => vars[name] !== undefined && vars[name] !== null);
  if (passwordName === undefined) return { user, ...(askedPassword && { password: askedPassword }) };
  const password = value(passwordName);
  // The password travels as one line of the script's input (become.ts).
  if (typeof password !== 'string' || password === '' || /[\n\r\0]/.test(password)) throw fail(`${passwordName} must be one line of text`);
  return { user, password: new Secret(password) };
}
