/**
 * The SSH transport: one ssh2 connection per host (optionally through ProxyJump
 * bastions), one session channel per exec, host keys checked against known_hosts,
 * authentication with ssh-agent and key files.
 */

import { createHash, createPrivateKey, randomBytes, sign, type KeyObject } from 'node:crypto';
import type { Duplex } from 'node:stream';
import ssh2 from 'ssh2';
import type {
  AnyAuthMethod,
  AuthenticationType,
  Client as SshClient,
  ClientChannel,
  ConnectConfig,
  NextAuthHandler,
  ParsedKey,
  ServerHostKeyAlgorithm,
} from 'ssh2';
import {
  appendKnownHost,
  fingerprintSha256,
  hostKeyAlgorithmsFor,
  hostKeyName,
  keyBlobType,
  knownKeyTypes,
  matchHostKey,
  readKnownHosts,
  type KnownHostsEntry,
} from './known-hosts.js';
import { defaultIdentityFiles, parseProxyJump, resolveSshConfig, type ResolvedSshConfig } from './ssh-config.js';
import { TransportError, type ConnectionSpec, type ExecOptions, type ExecResult, type HostKeyChecking, type Transport } from './types.js';
import { CommandOutput, summarizeCommand } from './output.js';
import { readParsed } from './file-cache.js';
import type { Secret } from '../secret.js';

const { Client, utils } = ssh2;

/** Environment variable holding the passphrase for encrypted key files (never printed). */
export const PASSPHRASE_ENV = 'KVMCONF_SSH_KEY_PASSPHRASE';

/** One way of authenticating, tried in order. */
interface Credential {
  /** `agent`, the key file path or `password`: shown in the auth failure message. */
  label: string;
  /** The SSH method it needs the server to accept. */
  kind: AuthenticationType;
  method(username: string): AnyAuthMethod;
}

interface Credentials {
  list: Credential[];
  /** Key files that were not usable, with the reason (never the key or passphrase). */
  skipped: string[];
}

/** Everything needed to open one hop (a bastion or the target). */
interface Hop {
  role: 'bastion' | 'target';
  resolved: ResolvedSshConfig;
  hostKeyChecking: HostKeyChecking;
  /** Names the host key is looked up under: the HostName form first, then the name given. */
  names: string[];
  knownHosts: Array<{ file: string; entries: KnownHostsEntry[] }>;
  credentials: Credentials;
  /** `TYPE SHA256:...` of the key the host presented, once connected. */
  presentedKey?: string;
}

function errnoCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

function endpoint(r: ResolvedSshConfig): string {
  return `${r.hostName}:${r.port}`;
}

/** Reads the agent setting and the key files, in the order they will be tried. */
async function loadCredentials(resolved: ResolvedSshConfig): Promise<Credentials> {
  const list: Credential[] = [];
  const skipped: string[] = [];

  const agentSetting = resolved.identityAgent;
  const agent =
    agentSetting === undefined || agentSetting === 'SSH_AUTH_SOCK'
      ? process.env.SSH_AUTH_SOCK
      : agentSetting.toLowerCase() === 'none'
        ? undefined
        : agentSetting;
  if (agent) list.push({ label: 'agent', kind: 'publickey', method: (username) => ({ type: 'agent', username, agent }) });

  const explicit = resolved.identityFiles;
  const files = [...explicit, ...defaultIdentityFiles().filter((f) => !explicit.includes(f))];
  const passphrase = process.env[PASSPHRASE_ENV];
  // The parse depends on the passphrase too; its hash names the cached result, never the passphrase itself.
  const kind = `private key ${passphrase ? createHash('sha256').update(passphrase).digest('hex') : ''}`;
  for (const file of files) {
    let read: ParsedKey | string;
    try {
      read = readParsed(file, kind, (data) => privateKey(data, passphrase));
    } catch (err) {
      // Default key files that do not exist are simply not tried.
      if (explicit.includes(file)) skipped.push(`${file} (${errnoCode(err) === 'ENOENT' ? 'not found' : errnoCode(err) ?? 'unreadable'})`);
      continue;
    }
    if (typeof read === 'string') {
      skipped.push(`${file} (${read})`);
      continue;
    }
    const key = read;
    list.push({ label: file, kind: 'publickey', method: (username) => ({ type: 'publickey', username, key }) });
  }
  return { list, skipped };
}

/** A key file's private key, or why it cannot be used. */
function privateKey(data: Buffer, passphrase: string | undefined): ParsedKey | string {
  let parsed = utils.parseKey(data);
  if (parsed instanceof Error && /passphrase|encrypted/i.test(parsed.message)) {
    if (passphrase === undefined || passphrase === '') return `encrypted, no passphrase: set ${PASSPHRASE_ENV}`;
    parsed = utils.parseKey(data, passphrase);
    if (parsed instanceof Error) return `encrypted, the passphrase in ${PASSPHRASE_ENV} does not decrypt it`;
  }
  if (parsed instanceof Error) return 'not a key ssh2 can read';
  const key: ParsedKey | undefined = Array.isArray(parsed) ? (parsed as ParsedKey[])[0] : parsed;
  return key && key.isPrivateKey() ? signingWithKeyObject(key) : 'not a private key';
}

/** The digest each key type signs with when ssh2 names none (RSA's comes with its signature algorithm). */
const DEFAULT_DIGEST: Record<string, string | null> = {
  'ssh-ed25519': null,
  'ecdsa-sha2-nistp256': 'sha256',
  'ecdsa-sha2-nistp384': 'sha384',
  'ecdsa-sha2-nistp521': 'sha512',
  'ssh-rsa': 'sha1',
};

/**
 * ssh2 signs with the key's PEM text, which OpenSSL 3 decodes again for every signature
 * (about 2 ms, one per connection); a KeyObject decoded once signs the same way, ten
 * times faster. The parsed key is shared by every host that uses the file.
 */
function signingWithKeyObject(key: ParsedKey): ParsedKey {
  const digest = DEFAULT_DIGEST[key.type];
  if (digest === undefined) return key;
  let object: KeyObject;
  try {
    object = createPrivateKey(key.getPrivatePEM());
  } catch {
    return key;
  }
  // As ssh2's own sign: a failure is returned, not thrown.
  key.sign = ((data: Buffer | string, algo?: string): Buffer | Error => {
    try {
      return sign(algo || digest, typeof data === 'string' ? Buffer.from(data) : data, object);
    } catch (err) {
      return err as Error;
    }
  }) as ParsedKey['sign'];
  return key;
}

/**
 * ansible_ssh_pass / --ask-pass: tried after the keys, as `password` and as
 * `keyboard-interactive` (the same password for every prompt, as ssh with sshpass does).
 */
function passwordCredentials(password: Secret): Credential[] {
  return [
    { label: 'password', kind: 'password', method: (username) => ({ type: 'password', username, password: password.reveal() }) },
    {
      label: 'keyboard-interactive',
      kind: 'keyboard-interactive',
      method: (username) => ({ type: 'keyboard-interactive', username, prompt: (_name, _instructions, _lang, prompts, finish) => finish(prompts.map(() => password.reveal())) }),
    },
  ];
}

async function planHop(role: Hop['role'], resolved: ResolvedSshConfig, hostKeyChecking: HostKeyChecking, name: string, password?: Secret): Promise<Hop> {
  if (resolved.proxyCommand !== undefined && role === 'target' && resolved.proxyJump === undefined) {
    throw new TransportError('config', name, `ssh_config sets ProxyCommand for ${resolved.host}, which is not supported: use ProxyJump`);
  }
  const names = [...new Set([hostKeyName(resolved.hostName, resolved.port), hostKeyName(resolved.host, resolved.port)])];
  const knownHosts: Hop['knownHosts'] = [];
  // Read in every mode, 'off' included: a key that differs from a recorded one is refused always.
  // The user's files first: a new key is appended to the first of them, never to a global one.
  for (const file of [...resolved.knownHostsFiles, ...resolved.globalKnownHostsFiles]) {
    try {
      knownHosts.push({ file, entries: (await readKnownHosts(file)).entries });
    } catch (err) {
      throw new TransportError('config', name, `cannot read known_hosts file ${file}: ${(err as Error).message}`);
    }
  }
  const credentials = await loadCredentials(resolved);
  if (password) credentials.list.push(...passwordCredentials(password));
  return { role, resolved, hostKeyChecking, names, knownHosts, credentials };
}

/**
 * Checks the presented host key; returns the error to fail with, or undefined to accept.
 * With accept-new, an unknown key is appended to the first known_hosts file; with off,
 * an unknown key is accepted and not recorded. A changed or revoked key is refused in
 * every mode: no setting makes kvmconf talk to a host that may be an impostor.
 */
async function checkHostKey(hop: Hop, key: Buffer, name: string): Promise<TransportError | undefined> {
  const who = hop.role === 'bastion' ? 'bastion ' : '';
  const display = hop.names[0] as string;
  const desc = `${keyBlobType(key)} ${fingerprintSha256(key)}`;
  let matched = false;
  const changed: string[] = [];
  for (const { file, entries } of hop.knownHosts) {
    const r = matchHostKey(entries, hop.names, key);
    if (r === 'match') matched = true;
    else if (r === 'unknown') continue;
    else if ('revoked' in r) {
      return new TransportError(
        'host-key-changed',
        name,
        `the ${who}host key for ${display} (${desc}) is marked @revoked in ${file}:${r.revoked}; refusing to connect`,
      );
    } else changed.push(...r.changed.map((line) => `${file}:${line}`));
  }
  if (matched) return undefined;
  const file = hop.resolved.knownHostsFiles[0] ?? 'known_hosts';
  if (changed.length > 0) {
    return new TransportError(
      'host-key-changed',
      name,
      `REMOTE HOST IDENTIFICATION HAS CHANGED for ${who}${display}: it presented ${desc}, ` +
        `which differs from the known key (offending entry ${changed.join(', ')}). ` +
        `Someone could be intercepting the connection, or the host was reinstalled: verify the new key, ` +
        `then remove the old entry with: ssh-keygen -R '${display}' -f ${file}`,
    );
  }
  if (hop.hostKeyChecking === 'off') return undefined;
  if (hop.hostKeyChecking === 'accept-new') {
    try {
      await appendKnownHost(file, display, key, hop.resolved.hashKnownHosts);
    } catch (err) {
      return new TransportError('config', name, `cannot add the ${who}host key for ${display} to ${file}: ${(err as Error).message}`);
    }
    return undefined;
  }
  const portArg = hop.resolved.port === 22 ? '' : `-p ${hop.resolved.port} `;
  return new TransportError(
    'host-key-unknown',
    name,
    `${who}host key for ${display} is not in ${searched(hop).join(', ') || file} (${desc}); ` +
      `add it with ssh-keyscan ${portArg}${hop.resolved.hostName} >> ${file} after checking the fingerprint, ` +
      `or pass --host-key-checking accept-new`,
  );
}

/** The known_hosts files to name in a message: the user's, and the global ones that hold keys. */
function searched(hop: Hop): string[] {
  const own = hop.resolved.knownHostsFiles.length;
  return hop.knownHosts.filter((known, index) => index < own || known.entries.length > 0).map((known) => known.file);
}

type ErrorWithLevel = Error & { level?: string; code?: string | number };

/** Clients whose connection has closed (so close() does not wait for a 'close' that already happened). */
const closedClients = new WeakSet<SshClient>();

/** Opens and authenticates one hop, directly or over `sock` (a channel forwarded by the previous hop). */
function connectHop(hop: Hop, name: string, sock: Duplex | undefined, via: string): Promise<SshClient> {
  const r = hop.resolved;
  const who = hop.role === 'bastion' ? 'bastion ' : '';
  const where = `${who}${endpoint(r)}${via}`;
  return new Promise((resolve, reject) => {
    const client = new Client();
    client.once('close', () => closedClients.add(client));
    let settled = false;
    let hostKeyError: TransportError | undefined;
    let authExhausted = false;
    const tried: string[] = [];
    const agentErrors: string[] = [];
    let next = 0;

    const fail = (err: TransportError): void => {
      if (settled) return;
      settled = true;
      client.removeListener('ready', onReady);
      // Keep an error listener: ssh2 may still emit while tearing down.
      client.on('error', () => undefined);
      client.end();
      client.destroy();
      reject(err);
    };
    const onReady = (): void => {
      if (settled) return;
      settled = true;
      resolve(client);
    };

    // methodsLeft is null on the first call, then what the server still accepts.
    let serverMethods: AuthenticationType[] | null = null;
    const authHandler = (methodsLeft: AuthenticationType[] | null, _partial: boolean | null, cb: NextAuthHandler): void => {
      serverMethods = methodsLeft;
      while (methodsLeft && next < hop.credentials.list.length && !methodsLeft.includes(hop.credentials.list[next]!.kind)) next++;
      const cred = hop.credentials.list[next++];
      if (!cred) {
        authExhausted = true;
        cb(false as unknown as AuthenticationType);
        return;
      }
      tried.push(cred.label);
      cb(cred.method(r.user));
    };

    client.on('ready', onReady);
    client.on('error', (err: ErrorWithLevel) => {
      if (settled) return;
      if (hostKeyError) return fail(hostKeyError);
      switch (err.level) {
        case 'agent':
          // The agent could not be used; ssh2 goes on with the next method.
          agentErrors.push(err.message);
          return;
        case 'client-authentication': {
          if (!authExhausted) return; // a signing failure for one key; the next one is tried
          const skipped = hop.credentials.skipped.length > 0 ? `; skipped: ${hop.credentials.skipped.join(', ')}` : '';
          const agentNote = agentErrors.length > 0 ? `; agent error: ${agentErrors[0]}` : '';
          const usable = new Set(hop.credentials.list.map((c) => c.kind));
          const accepts = serverMethods && !serverMethods.some((m) => usable.has(m)) ? `; the server accepts only: ${serverMethods.join(', ')}` : '';
          return fail(
            new TransportError(
              'auth',
              name,
              `authentication failed for ${r.user}${hop.role === 'bastion' ? ` at ${where}` : ''} (tried: ${tried.length > 0 ? tried.join(', ') : 'nothing: no agent, no key file'}${skipped}${agentNote}${accepts})`,
            ),
          );
        }
        case 'client-timeout':
          return fail(new TransportError('unreachable', name, `cannot connect to ${where}: timeout, no SSH handshake within ${r.connectTimeoutMs} ms`));
        case 'client-socket':
          return fail(new TransportError('unreachable', name, `cannot connect to ${where}: ${typeof err.code === 'string' ? err.code : err.message}`));
        case 'client-dns':
          return fail(new TransportError('unreachable', name, `cannot resolve ${who}${r.hostName}: ${typeof err.code === 'string' ? err.code : err.message}`));
        default:
          return fail(new TransportError('unreachable', name, `cannot connect to ${where}: ${err.message}`));
      }
    });
    client.on('close', () => {
      if (!settled) fail(hostKeyError ?? new TransportError('unreachable', name, `cannot connect to ${where}: connection closed during the SSH handshake`));
    });

    const knownTypes = hop.knownHosts.flatMap((k) => knownKeyTypes(k.entries, hop.names));
    const config: ConnectConfig = {
      username: r.user,
      readyTimeout: r.connectTimeoutMs,
      keepaliveInterval: r.keepaliveIntervalMs,
      keepaliveCountMax: r.keepaliveCountMax,
      authHandler: authHandler as unknown as ConnectConfig['authHandler'],
      hostVerifier: (key: Buffer, verify: (valid: boolean) => void): void => {
        hop.presentedKey = `${keyBlobType(key)} ${fingerprintSha256(key)}`;
        checkHostKey(hop, key, name).then(
          (err) => {
            hostKeyError = err;
            verify(err === undefined);
          },
          (err: unknown) => {
            hostKeyError = new TransportError('config', name, `host key check failed: ${(err as Error).message}`);
            verify(false);
          },
        );
      },
    };
    if (knownTypes.length > 0) {
      config.algorithms = { serverHostKey: hostKeyAlgorithmsFor(knownTypes) as ServerHostKeyAlgorithm[] };
    }
    if (sock) config.sock = sock;
    else {
      config.host = r.hostName;
      config.port = r.port;
    }
    try {
      client.connect(config);
      skipHostKeyProofs(client);
    } catch (err) {
      fail(new TransportError('config', name, `cannot connect to ${where}: ${(err as Error).message}`));
    }
  });
}

type GlobalRequestHandler = (protocol: unknown, name: string, wantReply: boolean, data: unknown) => void;

/**
 * OpenSSH servers announce all their host keys after authentication (hostkeys-00), and ssh2
 * answers every announcement by asking the server to sign each key and verifying the
 * signatures: one more round trip, one signature per host key on the target and one
 * verification on the controller, per connection. kvmconf checks the one key of the key
 * exchange against known_hosts and never learns keys from the announcement, so it is
 * ignored (OpenSSH sends it without asking for a reply). Reaches into ssh2's protocol
 * handlers (ssh2 is pinned); when they are not where expected, nothing changes.
 */
function skipHostKeyProofs(client: SshClient): void {
  const handlers = (client as unknown as { _protocol?: { _handlers?: Record<string, GlobalRequestHandler> } })._protocol?._handlers;
  const original = handlers?.GLOBAL_REQUEST;
  if (!handlers || typeof original !== 'function') return;
  handlers.GLOBAL_REQUEST = (protocol, name, wantReply, data) => {
    if (name === 'hostkeys-00@openssh.com' && !wantReply) return;
    original(protocol, name, wantReply, data);
  };
}

function forwardOut(client: SshClient, r: ResolvedSshConfig, name: string, bastion: string): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    client.forwardOut('127.0.0.1', 0, r.hostName, r.port, (err, stream) => {
      if (err) reject(new TransportError('unreachable', name, `cannot connect to ${endpoint(r)} via bastion ${bastion}: ${err.message}`));
      else resolve(stream as unknown as Duplex);
    });
  });
}

/** One exec in flight. */
interface Running {
  channel?: ClientChannel;
  /** The remote command's process group, once its first stderr line said it. */
  group?: number;
  /** A signal asked for before the group was known (stdout and stderr race in sshd). */
  pendingSignal?: 'INT' | 'TERM';
  drop(reason: string): void;
}

/**
 * OpenSSH refuses `signal` requests in a root login's session (no privilege separation
 * after authentication there: "session signalling requires privilege separation"), so
 * Ctrl-C and timeouts would leave the command running. Every command first tells its
 * process group (the login shell is the session leader: its pid is the group) on
 * stderr, and for a root login the signal is also sent with kill(1) on a new channel.
 */
const GROUP_TAG = `kvmconf-group-${randomBytes(6).toString('hex')}`;

const GROUP_LINE = new RegExp(`^${GROUP_TAG} (\\d+)$`);

function reportGroup(command: string): string {
  return `printf '%s %s\\n' ${GROUP_TAG} "$$" >&2; ${command}`;
}

/** Reads the group line off the front of stderr, passing the rest on (end() flushes a short unfinished head). */
function groupReader(state: Running, take: (chunk: Buffer) => void, onGroup: () => void): { write: (chunk: Buffer) => void; end: () => void } {
  let head: Buffer | undefined = Buffer.alloc(0);
  const settle = (final: boolean): void => {
    if (head === undefined) return;
    const end = head.indexOf(10);
    if (end < 0 && head.length < 200 && !final) return;
    const line = end < 0 ? '' : head.subarray(0, end).toString('latin1');
    const match = GROUP_LINE.exec(line);
    if (match) {
      state.group = Number(match[1]);
      onGroup();
    }
    const rest = match ? head.subarray(end + 1) : head;
    head = undefined;
    if (rest.length) take(rest);
  };
  return {
    write: (chunk) => {
      if (head === undefined) return take(chunk);
      head = Buffer.concat([head, chunk]);
      settle(false);
    },
    end: () => settle(true),
  };
}

class SshTransport implements Transport {
  readonly label: string;
  hostKey: string | undefined;
  private count = 0;
  private closed = false;
  private lastError: string | undefined;
  private readonly running = new Set<Running>();

  constructor(
    private readonly name: string,
    private readonly client: SshClient,
    /** Bastion connections, first hop first. */
    private readonly bastions: SshClient[],
    label: string,
    /** Logged in as root: signals go through kill(1) as well (see GROUP_TAG). */
    private readonly rootLogin = false,
  ) {
    this.label = label;
    client.on('error', (err: Error) => {
      this.lastError = err.message;
    });
    client.on('close', () => {
      this.closed = true;
      const reason = this.lastError ? ` (${this.lastError})` : '';
      for (const r of [...this.running]) r.drop(reason);
    });
    for (const b of bastions) {
      b.on('error', (err: Error) => {
        this.lastError = `bastion: ${err.message}`;
      });
    }
  }

  get execCount(): number {
    return this.count;
  }

  exec(command: string, options: ExecOptions = {}): Promise<ExecResult> {
    this.count++;
    const name = this.name;
    if (this.closed) {
      return Promise.reject(new TransportError('dropped', name, `the connection is closed${this.lastError ? ` (${this.lastError})` : ''}`));
    }
    return new Promise<ExecResult>((resolve, reject) => {
      let exit: { code: number | null; signal?: string } | undefined;
      let done = false;
      let timer: NodeJS.Timeout | undefined;

      const finish = (settle: () => void): void => {
        if (done) return;
        done = true;
        if (timer) clearTimeout(timer);
        this.running.delete(state);
        settle();
      };
      const state: Running = {
        drop: (reason) => finish(() => reject(new TransportError('dropped', name, `connection lost while a command was running${reason}`, output.end().stdout))),
      };
      this.running.add(state);

      const stopChannel = (): void => {
        const ch = state.channel;
        if (!ch) return;
        this.signal(state, 'TERM');
        ch.close();
      };
      const output = new CommandOutput(name, options, () => done, (error) => {
        finish(() => reject(error));
        stopChannel();
      });

      if (options.timeoutMs !== undefined && options.timeoutMs > 0) {
        const ms = options.timeoutMs;
        timer = setTimeout(() => {
          finish(() => reject(new TransportError('timeout', name, `command exceeded its timeout of ${ms} ms: ${summarizeCommand(command)}`, output.end().stdout)));
          stopChannel();
        }, ms);
      }

      const onChannel = (err: Error | undefined, channel: ClientChannel): void => {
        if (err) {
          finish(() =>
            reject(new TransportError('dropped', name, this.closed ? `the connection is closed` : `cannot open a session channel: ${err.message}`)),
          );
          return;
        }
        if (done) {
          // Timed out (or dropped) before the channel opened.
          channel.close();
          return;
        }
        state.channel = channel;
        channel.on('data', output.takeStdout);
        const stderr = groupReader(state, output.takeStderr, () => state.pendingSignal && this.signal(state, state.pendingSignal, false));
        channel.stderr.on('data', stderr.write);
        channel.on('exit', (code: number | null, signal?: string) => {
          exit = signal ? { code: null, signal } : { code: code ?? null };
        });
        channel.on('close', () => {
          if (done) return;
          stderr.end();
          if (exit) {
            const { stdout, stderr } = output.end();
            const result: ExecResult = { stdout, stderr, code: exit.code };
            if (exit.signal !== undefined) result.signal = exit.signal;
            finish(() => resolve(result));
          } else {
            // A channel closed without an exit status: the connection is going away.
            // Let the connection's close handler report it if it is; otherwise say so here.
            setImmediate(() => state.drop(this.closed ? (this.lastError ? ` (${this.lastError})` : '') : ' (the channel closed without an exit status)'));
          }
        });
        channel.on('error', () => undefined);
        channel.end(options.stdin ?? '');
      };
      try {
        this.client.exec(reportGroup(command), onChannel);
      } catch (err) {
        // ssh2 throws 'Not connected' when the socket is gone but 'close' has not been emitted yet.
        finish(() => reject(new TransportError('dropped', name, `the connection is closed (${(err as Error).message})`)));
      }
    });
  }

  interrupt(): void {
    for (const r of this.running) this.signal(r, 'INT');
  }

  /** The signal through SSH, and for a root login (where sshd refuses it) through kill(1) too. */
  private signal(running: Running, name: 'INT' | 'TERM', throughSsh = true): void {
    if (running.channel && throughSsh) sendSignal(running.channel, name);
    if (!this.rootLogin || this.closed) return;
    if (running.group === undefined) {
      running.pendingSignal = name;
      return;
    }
    try {
      // A control channel, not a round trip of the run: it is not counted in execCount.
      this.client.exec(`kill -${name} -- -${running.group} 2>/dev/null`, (err, channel) => {
        if (err) return;
        channel.on('error', () => undefined).resume();
        channel.stderr.resume();
        channel.end();
      });
    } catch {
      // The connection is going away; so is the command.
    }
  }

  async close(): Promise<void> {
    await endClient(this.client);
    this.closed = true;
    for (const b of [...this.bastions].reverse()) await endClient(b);
  }
}

/**
 * Sends a `signal` channel request (RFC 4254 6.9; sshd delivers it to the command's
 * process group). ssh2's channel.signal() silently does nothing once the channel's
 * writable side has ended, i.e. after stdin was fed and closed, which is every exec
 * here; SSH itself allows the request after EOF, so it is sent through the channel's
 * protocol object (ssh2 1.x internals, checked at run time; falls back to signal()).
 */
function sendSignal(channel: ClientChannel, name: 'INT' | 'TERM'): void {
  const ch = channel as unknown as {
    outgoing?: { id?: unknown; state?: unknown };
    _client?: { _protocol?: { signal?: unknown } };
  };
  const protocol = ch._client?._protocol;
  const out = ch.outgoing;
  try {
    if (protocol && typeof protocol.signal === 'function' && out && typeof out.id === 'number') {
      if (out.state === 'open' || out.state === 'eof') (protocol.signal as (id: number, sig: string) => void).call(protocol, out.id, name);
    } else {
      channel.signal(name);
    }
  } catch {
    // the channel is closing: nothing left to signal
  }
}

function endClient(client: SshClient): Promise<void> {
  if (closedClients.has(client)) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      client.destroy();
      resolve();
    }, 2000);
    timer.unref();
    client.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    client.on('error', () => undefined);
    client.end();
  });
}


/**
 * Connects to `spec.host` over SSH, through `spec.proxyJump` (or ssh_config ProxyJump)
 * bastions if any, and returns a Transport that runs commands on that connection.
 */
export async function connectSsh(spec: ConnectionSpec): Promise<Transport> {
  const name = spec.name;
  const common = {
    hostKeyChecking: spec.hostKeyChecking,
    connectTimeoutMs: spec.connectTimeoutMs,
    keepaliveIntervalMs: spec.keepaliveIntervalMs,
    ...(spec.privateKeyFiles !== undefined ? { privateKeyFiles: spec.privateKeyFiles } : {}),
    ...(spec.knownHostsFile !== undefined ? { knownHostsFile: spec.knownHostsFile } : {}),
    ...(spec.sshConfigFile !== undefined ? { sshConfigFile: spec.sshConfigFile } : {}),
  };
  let target: ResolvedSshConfig;
  const hops: Hop[] = [];
  try {
    target = await resolveSshConfig({
      ...common,
      host: spec.host,
      ...(spec.port !== undefined ? { port: spec.port } : {}),
      ...(spec.user !== undefined ? { user: spec.user } : {}),
      ...(spec.proxyJump !== undefined ? { proxyJump: spec.proxyJump } : {}),
    });
    for (const jump of target.proxyJump !== undefined ? parseProxyJump(target.proxyJump) : []) {
      const resolved = await resolveSshConfig({
        ...common,
        host: jump.host,
        ...(jump.port !== undefined ? { port: jump.port } : {}),
        ...(jump.user !== undefined ? { user: jump.user } : {}),
      });
      hops.push(await planHop('bastion', resolved, spec.hostKeyChecking, name));
    }
  } catch (err) {
    if (err instanceof TransportError) throw err;
    throw new TransportError('config', name, (err as Error).message);
  }
  hops.push(await planHop('target', target, spec.hostKeyChecking, name, spec.password));

  const clients: SshClient[] = [];
  try {
    let via = '';
    for (const hop of hops) {
      const prev = clients[clients.length - 1];
      const previousHop = hops[clients.length - 1];
      const sock = prev && previousHop ? await forwardOut(prev, hop.resolved, name, endpoint(previousHop.resolved)) : undefined;
      clients.push(await connectHop(hop, name, sock, via));
      via = ` via bastion ${endpoint(hop.resolved)}`;
    }
  } catch (err) {
    for (const c of clients.reverse()) c.end();
    throw err;
  }
  const client = clients.pop() as SshClient;
  const bastionLabel = hops.length > 1 ? ` via ${hops.slice(0, -1).map((h) => `${h.resolved.user}@${endpoint(h.resolved)}`).join(',')}` : '';
  const transport = new SshTransport(name, client, clients, `ssh ${target.user}@${endpoint(target)}${bastionLabel}`, target.user === 'root');
  transport.hostKey = hops[hops.length - 1]!.presentedKey;
  return transport;
}
