/**
 * Resolution of the OpenSSH client settings kvmconf honours for a host, from
 * ~/.ssh/config (or another file). Precedence: explicit values (from the
 * inventory or the command line) win over ssh_config, which wins over the
 * built-in defaults.
 */

import { homedir, hostname as localHostname, userInfo } from 'node:os';
import { basename, dirname, isAbsolute, join } from 'node:path';
import SSHConfig from 'ssh-config';
import type { HostKeyChecking } from './types.js';
import { listDirectory, readText } from './file-cache.js';

/** What the caller already knows; every field left undefined may come from ssh_config. */
export interface SshConfigQuery {
  /** Address or alias as written in the inventory. */
  host: string;
  port?: number;
  user?: string;
  privateKeyFiles?: string[];
  knownHostsFile?: string;
  hostKeyChecking?: HostKeyChecking;
  proxyJump?: string;
  /** ssh_config file to read (default ~/.ssh/config; '' disables ssh_config). */
  sshConfigFile?: string;
  connectTimeoutMs?: number;
  keepaliveIntervalMs?: number;
}

export interface ResolvedSshConfig {
  /** The name as given (an alias, possibly). */
  host: string;
  /** The address to connect to: ssh_config HostName, else `host`. */
  hostName: string;
  port: number;
  user: string;
  /** Keys to try, in order: the query's privateKeyFiles, then ssh_config IdentityFile (expanded). */
  identityFiles: string[];
  /** `[user@]host[:port][,...]` of the bastion(s), from the query or ssh_config ProxyJump. */
  proxyJump?: string;
  connectTimeoutMs: number;
  keepaliveIntervalMs: number;
  keepaliveCountMax: number;
  /** known_hosts files to read; new keys are written to the first one. */
  knownHostsFiles: string[];
  /** GlobalKnownHostsFile (default /etc/ssh/ssh_known_hosts{,2}): matched, never written. */
  globalKnownHostsFiles: string[];
  hostKeyChecking: HostKeyChecking;
  /** ssh_config HashKnownHosts, when set. */
  hashKnownHosts?: boolean;
  /** ssh_config IdentityAgent: a socket path, 'none', or undefined for SSH_AUTH_SOCK. */
  identityAgent?: string;
  /** ssh_config ProxyCommand (not supported by the SSH transport; reported as a config error). */
  proxyCommand?: string;
  /** The ssh_config file that was read, if any. */
  configFile?: string;
}

export const SSH_DEFAULTS = {
  port: 22,
  connectTimeoutMs: 15_000,
  keepaliveIntervalMs: 15_000,
  keepaliveCountMax: 3,
  hostKeyChecking: 'strict' as HostKeyChecking,
};

/** Key files tried when neither the inventory nor ssh_config names one (those that exist). */
export function defaultIdentityFiles(home = homedir()): string[] {
  return ['id_ed25519', 'id_ecdsa', 'id_rsa'].map((f) => join(home, '.ssh', f));
}

let userName: string | undefined;

/** The name of the user this process runs as (looked up once: it does not change). */
export function localUserName(): string {
  if (userName === undefined) {
    try {
      userName = userInfo().username;
    } catch {
      userName = process.env.USER ?? process.env.LOGNAME ?? 'root';
    }
  }
  return userName;
}

interface TokenContext {
  home: string;
  localUser: string;
  remoteUser: string;
  hostName: string;
  originalHost: string;
  port: number;
}

/** Expands a leading `~` / `~/` and the ssh_config tokens %% %d %u %r %h %n %p %l %i. */
export function expandPath(value: string, ctx: TokenContext): string {
  let v = value;
  if (v === '~') v = ctx.home;
  else if (v.startsWith('~/')) v = join(ctx.home, v.slice(2));
  return v.replace(/%(.)/g, (whole, t: string) => {
    switch (t) {
      case '%':
        return '%';
      case 'd':
        return ctx.home;
      case 'u':
        return ctx.localUser;
      case 'r':
        return ctx.remoteUser;
      case 'h':
        return ctx.hostName;
      case 'n':
        return ctx.originalHost;
      case 'p':
        return String(ctx.port);
      case 'l':
        return localHostname().split('.')[0] ?? '';
      case 'i':
        return String(process.getuid?.() ?? '');
      default:
        return whole;
    }
  });
}

function wildcardToRegExp(pattern: string): RegExp {
  let re = '';
  for (const ch of pattern) {
    if (ch === '*') re += '[^/]*';
    else if (ch === '?') re += '[^/]';
    else re += ch.replace(/[\\^$.|+()[\]{}]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** Files an Include argument names: relative to ~/.ssh, `~` expanded, wildcards in the last component. */
async function includeTargets(arg: string, home: string): Promise<string[]> {
  let p = arg.startsWith('~/') ? join(home, arg.slice(2)) : arg;
  if (!isAbsolute(p)) p = join(home, '.ssh', p);
  const base = basename(p);
  if (!/[*?]/.test(base)) return [p];
  const dir = dirname(p);
  try {
    const re = wildcardToRegExp(base);
    return listDirectory(dir)
      .filter((f) => re.test(f))
      .sort()
      .map((f) => join(dir, f));
  } catch {
    return [];
  }
}

/**
 * Reads an ssh_config file with its `Include`s inlined where they appear (an
 * approximation of OpenSSH, which evaluates included files in the context of the
 * enclosing Host/Match block; inlining gives the same result for the usual
 * layouts). Missing included files are skipped, as OpenSSH does.
 */
export async function readSshConfigText(file: string, home = homedir(), depth = 0): Promise<string> {
  const text = readText(file);
  if (depth > 16) return text;
  const out: string[] = [];
  for (const line of text.split(/\r?\n/)) {
    const m = /^\s*include(?:\s*=\s*|\s+)(.+?)\s*$/i.exec(line);
    if (!m?.[1]) {
      out.push(line);
      continue;
    }
    for (const arg of m[1].split(/\s+/).map((a) => a.replace(/^"(.*)"$/, '$1'))) {
      for (const target of await includeTargets(arg, home)) {
        try {
          out.push(await readSshConfigText(target, home, depth + 1));
        } catch {
          // unreadable include: ignored
        }
      }
    }
  }
  return out.join('\n');
}

function first(v: string | string[] | undefined): string | undefined {
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v[0] : v;
}

function list(v: string | string[] | undefined): string[] {
  if (v === undefined) return [];
  return Array.isArray(v) ? v : v.split(/\s+/).filter((s) => s !== '');
}

function unquote(v: string): string {
  return v.length >= 2 && v.startsWith('"') && v.endsWith('"') ? v.slice(1, -1) : v;
}

function seconds(v: string | undefined, what: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`ssh_config ${what} "${v}" is not a number of seconds`);
  return n * 1000;
}

/** Maps ssh_config StrictHostKeyChecking to the engine's modes ('ask' cannot prompt, so it is strict). */
export function hostKeyCheckingFromConfig(v: string | undefined): HostKeyChecking | undefined {
  switch (v?.toLowerCase()) {
    case undefined:
      return undefined;
    case 'yes':
    case 'ask':
      return 'strict';
    case 'accept-new':
      return 'accept-new';
    case 'no':
    case 'off':
      return 'off';
    default:
      throw new Error(`ssh_config StrictHostKeyChecking "${v}" is not one of yes, ask, accept-new, no, off`);
  }
}

export interface ResolveOptions {
  /** Home directory for `~`, %d and the default paths (default: os.homedir()). */
  home?: string;
  /** The system-wide ssh_config read after the user's, as ssh does ('' : none). */
  systemConfigFile?: string;
  /** Known-hosts files every user trusts, read for matching, never written. */
  globalKnownHostsFiles?: string[];
}

export const SYSTEM_SSH_CONFIG = '/etc/ssh/ssh_config';
export const GLOBAL_KNOWN_HOSTS = ['/etc/ssh/ssh_known_hosts', '/etc/ssh/ssh_known_hosts2'];

/** An ssh_config file's text, or undefined when it does not exist and need not. */
async function configText(file: string, home: string, required: boolean): Promise<string | undefined> {
  try {
    return await readSshConfigText(file, home);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || required) throw new Error(`cannot read ssh_config ${file}: ${(err as Error).message}`);
    return undefined;
  }
}

/**
 * Resolves the settings for one host. `Match exec` criteria are not evaluated
 * (no shell commands run while reading configuration); every other Host/Match
 * rule applies with OpenSSH's first-value-wins semantics.
 */
/** Every host of a run reads the same files: parsed once per text (compute() leaves the result as it is). */
const parsedConfigs = new Map<string, ReturnType<typeof SSHConfig.parse>>();
function parsedConfig(text: string): ReturnType<typeof SSHConfig.parse> {
  let parsed = parsedConfigs.get(text);
  if (!parsed) {
    if (parsedConfigs.size >= 16) parsedConfigs.clear();
    parsed = SSHConfig.parse(text);
    parsedConfigs.set(text, parsed);
  }
  return parsed;
}

export async function resolveSshConfig(query: SshConfigQuery, options: ResolveOptions = {}): Promise<ResolvedSshConfig> {
  const home = options.home ?? homedir();
  const localUser = localUserName();
  const configFile = query.sshConfigFile ?? join(home, '.ssh', 'config');
  let computed: Record<string, string | string[]> = {};
  // The default file may be absent; an explicitly named one must exist. As with ssh -F,
  // a named file replaces the system one too.
  const userText = configFile === '' ? undefined : await configText(configFile, home, query.sshConfigFile !== undefined);
  const readFrom = userText === undefined ? undefined : configFile;
  const systemFile = query.sshConfigFile === undefined ? (options.systemConfigFile ?? SYSTEM_SSH_CONFIG) : '';
  const systemText = systemFile === '' ? undefined : await configText(systemFile, home, false);
  if (userText !== undefined || systemText !== undefined) {
    // One text in ssh's reading order (first value wins): `Host *` ends the user file's last block.
    const parsed = parsedConfig([userText ?? '', systemText ?? ''].join('\nHost *\n'));
    const matchOpts = query.user !== undefined ? { Host: query.host, User: query.user } : { Host: query.host };
    computed = parsed.compute(matchOpts, { ignoreCase: true, matchExec: false });
  }
  const get = (k: string): string | undefined => {
    const v = first(computed[k.toLowerCase()]);
    return v === undefined ? undefined : unquote(v);
  };

  const hostName = get('HostName') !== undefined ? expandHostName(get('HostName') as string, query.host) : query.host;
  const portText = get('Port');
  let port = query.port;
  if (port === undefined && portText !== undefined) {
    port = Number(portText);
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`ssh_config Port "${portText}" is not a port number`);
  }
  port ??= SSH_DEFAULTS.port;
  const user = query.user ?? get('User') ?? localUser;
  const ctx: TokenContext = { home, localUser, remoteUser: user, hostName, originalHost: query.host, port };

  const identityFiles: string[] = [];
  for (const f of query.privateKeyFiles ?? []) identityFiles.push(expandPath(f, ctx));
  for (const f of list(computed['identityfile'])) {
    if (f.toLowerCase() === 'none') continue;
    const p = expandPath(unquote(f), ctx);
    if (!identityFiles.includes(p)) identityFiles.push(p);
  }

  let proxyJump = query.proxyJump ?? get('ProxyJump');
  if (proxyJump !== undefined && (proxyJump === '' || proxyJump.toLowerCase() === 'none')) proxyJump = undefined;

  const knownHostsFiles =
    query.knownHostsFile !== undefined
      ? [expandPath(query.knownHostsFile, ctx)]
      : computed['userknownhostsfile'] !== undefined
        ? list(computed['userknownhostsfile']).map((f) => expandPath(unquote(f), ctx))
        : [join(home, '.ssh', 'known_hosts')];

  const globalKnownHostsFiles =
    computed['globalknownhostsfile'] !== undefined
      ? list(computed['globalknownhostsfile']).map((f) => expandPath(unquote(f), ctx))
      : (options.globalKnownHostsFiles ?? GLOBAL_KNOWN_HOSTS);
  const hashText = get('HashKnownHosts')?.toLowerCase();
  const proxyCommand = get('ProxyCommand');
  const identityAgent = get('IdentityAgent');
  const countMax = get('ServerAliveCountMax');

  const resolved: ResolvedSshConfig = {
    host: query.host,
    hostName,
    port,
    user,
    identityFiles,
    connectTimeoutMs: query.connectTimeoutMs ?? seconds(get('ConnectTimeout'), 'ConnectTimeout') ?? SSH_DEFAULTS.connectTimeoutMs,
    keepaliveIntervalMs:
      query.keepaliveIntervalMs ?? seconds(get('ServerAliveInterval'), 'ServerAliveInterval') ?? SSH_DEFAULTS.keepaliveIntervalMs,
    keepaliveCountMax: countMax !== undefined && /^\d+$/.test(countMax) ? Number(countMax) : SSH_DEFAULTS.keepaliveCountMax,
    knownHostsFiles,
    globalKnownHostsFiles,
    hostKeyChecking: query.hostKeyChecking ?? hostKeyCheckingFromConfig(get('StrictHostKeyChecking')) ?? SSH_DEFAULTS.hostKeyChecking,
  };
  if (proxyJump !== undefined) resolved.proxyJump = proxyJump;
  if (hashText === 'yes' || hashText === 'no') resolved.hashKnownHosts = hashText === 'yes';
  if (proxyCommand !== undefined && proxyCommand.toLowerCase() !== 'none') resolved.proxyCommand = proxyCommand;
  if (identityAgent !== undefined) {
    resolved.identityAgent =
      identityAgent.toLowerCase() === 'none' || identityAgent === 'SSH_AUTH_SOCK' ? identityAgent : expandPath(identityAgent, ctx);
  }
  if (readFrom !== undefined) resolved.configFile = readFrom;
  return resolved;
}

/** HostName may contain %h (the name given) and %%. */
function expandHostName(value: string, host: string): string {
  return value.replace(/%([%h])/g, (_w, t: string) => (t === '%' ? '%' : host));
}

/** One hop of a ProxyJump list: `[user@]host[:port]` (IPv6 as `[addr]:port`). */
export interface JumpHost {
  user?: string;
  host: string;
  port?: number;
}

/** Parses ssh's ProxyJump value: comma-separated `[user@]host[:port]` hops, first hop first. */
export function parseProxyJump(value: string): JumpHost[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((hop) => {
      let rest = hop.replace(/^ssh:\/\//, '');
      const jump: JumpHost = { host: '' };
      const at = rest.lastIndexOf('@');
      if (at >= 0) {
        jump.user = rest.slice(0, at);
        rest = rest.slice(at + 1);
      }
      let portText: string | undefined;
      const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(rest);
      if (v6?.[1]) {
        jump.host = v6[1];
        portText = v6[2];
      } else {
        const colon = rest.lastIndexOf(':');
        if (colon >= 0 && rest.indexOf(':') === colon) {
          jump.host = rest.slice(0, colon);
          portText = rest.slice(colon + 1);
        } else {
          jump.host = rest;
        }
      }
      if (portText !== undefined) {
        const port = Number(portText);
        if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`ProxyJump "${hop}": bad port "${portText}"`);
        jump.port = port;
      }
      if (jump.host === '' || jump.user === '') throw new Error(`ProxyJump "${hop}" is not [user@]host[:port]`);
      return jump;
    });
}
