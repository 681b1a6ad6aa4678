/**
 * Test fixture: a real OpenSSH sshd (/usr/sbin/sshd, Debian's openssh-server)
 * listening on 127.0.0.1 on a free port, with its own temporary directory, host
 * key(s), authorized_keys and (by default) a throwaway local user. Runs as root,
 * as the tests do in CI. If sshd cannot be started the fixture throws with the
 * reason: tests fail, they are never skipped.
 */

import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export const SSHD = '/usr/sbin/sshd';

export type KeyType = 'ed25519' | 'ecdsa' | 'rsa';

export interface SshdOptions {
  /** Listen on this port (e.g. a second instance replacing a stopped one); default: a free port. */
  port?: number;
  /** Host key types to generate; the first is the one in `hostKeyLine`. Default ['ed25519']. */
  hostKeyTypes?: KeyType[];
  /** Authorize this existing user (not created nor removed); default: a throwaway user is created. */
  user?: string;
  /** Authorize this existing private key (its `.pub` must sit beside it) instead of generating one. */
  clientKeyFile?: string;
  /** More public key lines for authorized_keys. */
  authorizedKeys?: string[];
  /** Let the user run sudo, without a password or with one (returned as `password`). */
  sudo?: 'nopasswd' | 'password';
  /** Extra sshd_config lines. */
  config?: string[];
  /** sshd LogLevel (default VERBOSE; INFO or more verbose: readiness is read from the log). */
  logLevel?: string;
  /**
   * Sessions see the user's ~/.bashrc as an empty file (sshd runs in a mount namespace
   * of its own). Debian's bash sources ~/.bashrc for every command sshd runs, so on a
   * machine whose root .bashrc does real work (pyenv's init takes a lock shared by every
   * session) a benchmark would measure that file instead of the tools.
   */
  emptyBashrc?: boolean;
}

export interface SshdInstance {
  host: '127.0.0.1';
  port: number;
  /** The instance's temporary directory (removed by stop()). */
  dir: string;
  /** known_hosts line for [127.0.0.1]:port with the first host key. */
  hostKeyLine: string;
  /** known_hosts lines for every host key. */
  hostKeyLines: string[];
  /** Private key authorized for `user`. */
  clientKeyFile: string;
  clientPublicKey: string;
  user: string;
  /** The user's sudo password when `sudo: 'password'`. */
  password?: string;
  /** Everything sshd logged so far (it runs with -e). */
  log(): string;
  /** Per-connection sshd processes (children of the listener). */
  sessionPids(): number[];
  /** SIGKILLs every process under the listener: each client sees its connection drop. */
  dropConnections(): void;
  /** Sends a signal to every process under the listener (e.g. SIGSTOP: connections go silent). */
  signalConnections(signal: NodeJS.Signals): void;
  /** Stops sshd and its sessions, removes the user, the sudoers drop-in and the directory. */
  stop(): Promise<void>;
}

/** Runs a program; throws with its stderr on failure. */
export async function run(file: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(file, args, { encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${file} ${args.join(' ')} failed: ${stderr || err.message}`));
      else resolve(stdout);
    });
    // A program that exits without reading its stdin must not turn into an EPIPE error.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(input ?? '');
  });
}

/** Generates a key pair with ssh-keygen (`path` and `path.pub`), optionally encrypted; `bits` as `ssh-keygen -b` (default 2048 for RSA). */
export async function generateKey(path: string, type: KeyType = 'ed25519', passphrase = '', bits?: number): Promise<string> {
  const size = bits ?? (type === 'rsa' ? 2048 : undefined);
  const args = ['-q', '-t', type, ...(size ? ['-b', String(size)] : []), '-N', passphrase, '-C', `kvmconf-test-${type}`, '-f', path];
  await execFileP('ssh-keygen', args);
  return (await readFile(`${path}.pub`, 'utf8')).trim();
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

interface ProcInfo {
  pid: number;
  ppid: number;
  uid: number;
}

function processes(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const uidLine = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${d}/status`, 'utf8'));
      out.push({ pid: Number(d), ppid, uid: uidLine ? Number(uidLine[1]) : -1 });
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

function descendants(root: number): number[] {
  const procs = processes();
  const found: number[] = [];
  let frontier = [root];
  while (frontier.length > 0) {
    const kids = procs.filter((p) => frontier.includes(p.ppid)).map((p) => p.pid);
    found.push(...kids);
    frontier = kids;
  }
  return found;
}

function killPids(pids: number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

/** Cleanups still to run if the test process exits without calling stop(). */
const pendingCleanups = new Set<() => void>();
process.on('exit', () => {
  for (const c of pendingCleanups) {
    try {
      c();
    } catch {
      // best effort at exit
    }
  }
});

/** The user's ~/.bashrc when there is one (from the passwd database). */
function homeBashrc(user: string): string | undefined {
  const home = execFileSync('getent', ['passwd', user], { encoding: 'utf8' }).split(':')[5];
  const file = home ? join(home, '.bashrc') : undefined;
  return file && existsSync(file) ? file : undefined;
}

export async function startSshd(options: SshdOptions = {}): Promise<SshdInstance> {
  if (!existsSync(SSHD)) throw new Error(`${SSHD} not found: install Debian's openssh-server package`);
  if (process.getuid?.() !== 0) throw new Error('the sshd fixture must run as root (it starts sshd and creates a test user)');

  const dir = await mkdtemp(join(tmpdir(), 'kvmconf-sshd-'));
  // sshd reads authorized_keys as the user: the directory must be traversable.
  await chmod(dir, 0o755);
  // Privilege separation directory Debian's sshd requires.
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 });

  let createdUser: string | undefined;
  let sudoersFile: string | undefined;
  let child: ChildProcess | undefined;
  const cleanupSync = (): void => {
    if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      killPids(descendants(child.pid), 'SIGKILL');
      killPids([child.pid], 'SIGKILL');
    }
    if (createdUser) {
      const uid = userId(createdUser);
      if (uid !== undefined) killPids(processes().filter((p) => p.uid === uid).map((p) => p.pid), 'SIGKILL');
      try {
        execFileSync('userdel', ['-f', createdUser], { stdio: 'ignore' });
      } catch {
        // best effort
      }
    }
    if (sudoersFile && existsSync(sudoersFile)) unlinkSync(sudoersFile);
    rmSync(dir, { recursive: true, force: true });
  };
  pendingCleanups.add(cleanupSync);

  try {
    // Host keys.
    const hostKeyTypes = options.hostKeyTypes ?? ['ed25519'];
    const hostKeyFiles: string[] = [];
    const hostPubs: string[] = [];
    for (const t of hostKeyTypes) {
      const f = join(dir, `ssh_host_${t}_key`);
      hostPubs.push(await generateKey(f, t));
      hostKeyFiles.push(f);
    }

    // Client key.
    let clientKeyFile = options.clientKeyFile;
    let clientPublicKey: string;
    if (clientKeyFile) {
      clientPublicKey = (await readFile(`${clientKeyFile}.pub`, 'utf8')).trim();
    } else {
      clientKeyFile = join(dir, 'client_ed25519');
      clientPublicKey = await generateKey(clientKeyFile, 'ed25519');
    }
    const authorizedKeys = join(dir, 'authorized_keys');
    await writeFile(authorizedKeys, [clientPublicKey, ...(options.authorizedKeys ?? [])].join('\n') + '\n', { mode: 0o644 });
    await chmod(authorizedKeys, 0o644);

    // User.
    let user = options.user;
    let password: string | undefined;
    if (!user) {
      user = `kvt${randomBytes(4).toString('hex')}`;
      const home = join(dir, 'home');
      // '*' as password: no password login, but the account is not "locked" for sshd.
      await run('useradd', ['-M', '-d', home, '-s', '/bin/sh', '-p', '*', user]);
      createdUser = user;
      await mkdir(home, { mode: 0o755 });
      const uid = userId(user);
      if (uid === undefined) throw new Error(`useradd ${user} did not create the user`);
      await chown(home, uid, uid);
    }
    if (options.sudo) {
      if (options.sudo === 'password') {
        if (!createdUser) throw new Error(`sudo: 'password' needs a throwaway user (it sets the user's password)`);
        password = randomBytes(9).toString('base64url');
        await run('chpasswd', [], `${user}:${password}\n`);
      }
      sudoersFile = `/etc/sudoers.d/kvmconf-test-${user}`;
      const rule = options.sudo === 'nopasswd' ? `${user} ALL=(ALL:ALL) NOPASSWD: ALL` : `${user} ALL=(ALL:ALL) ALL`;
      await writeFile(sudoersFile, `${rule}\n`, { mode: 0o440 });
      await chmod(sudoersFile, 0o440);
      await run('visudo', ['-c', '-q', '-f', sudoersFile]);
    }

    const bashrc = options.emptyBashrc ? homeBashrc(user) : undefined;
    const emptyFile = join(dir, 'empty');
    if (bashrc) await writeFile(emptyFile, '', { mode: 0o644 });
    const configFile = join(dir, 'sshd_config');
    const writeConfig = async (port: number): Promise<void> => {
      // sshd keeps the first value of a keyword: the caller's lines come first.
      const lines = [
        ...(options.config ?? []),
        `Port ${port}`,
        'ListenAddress 127.0.0.1',
        ...hostKeyFiles.map((f) => `HostKey ${f}`),
        `AuthorizedKeysFile ${authorizedKeys}`,
        'StrictModes no',
        'UsePAM no',
        'PubkeyAuthentication yes',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'PermitRootLogin prohibit-password',
        'AllowTcpForwarding yes',
        'PrintMotd no',
        'PidFile none',
        `LogLevel ${options.logLevel ?? 'VERBOSE'}`,
      ];
      await writeFile(configFile, lines.join('\n') + '\n', { mode: 0o644 });
    };

    let log = '';
    let port = 0;
    for (let attempt = 0; ; attempt++) {
      port = options.port ?? (await freePort());
      await writeConfig(port);
      log = '';
      const started = await new Promise<{ ok: true } | { ok: false; reason: string }>((resolve) => {
        const sshd = [SSHD, '-D', '-e', '-f', configFile];
        const argv = bashrc ? ['unshare', '--mount', '--propagation', 'private', '--', '/bin/sh', '-c', 'mount --bind "$0" "$1" && shift && exec "$@"', emptyFile, bashrc, ...sshd] : sshd;
        const proc = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
        child = proc;
        const timer = setTimeout(() => resolve({ ok: false, reason: `sshd did not report listening within 15 s` }), 15_000);
        proc.stderr?.setEncoding('utf8');
        proc.stderr?.on('data', (d: string) => {
          log += d;
          if (log.includes(`Server listening on 127.0.0.1 port ${port}.`)) {
            clearTimeout(timer);
            resolve({ ok: true });
          }
        });
        proc.on('error', (err) => {
          clearTimeout(timer);
          resolve({ ok: false, reason: `cannot run ${SSHD}: ${err.message}` });
        });
        proc.on('exit', (code, signal) => {
          clearTimeout(timer);
          resolve({ ok: false, reason: `sshd exited (${signal ?? code})` });
        });
      });
      if (started.ok) break;
      if (child?.exitCode === null) killPids(child.pid !== undefined ? [child.pid] : [], 'SIGKILL');
      const inUse = /Address already in use/.test(log);
      if (!(inUse && options.port === undefined && attempt < 3)) {
        throw new Error(`cannot start sshd on 127.0.0.1:${port}: ${started.reason}\n${log.trim()}`);
      }
    }

    const proc = child as ChildProcess;
    const hostKeyLines = hostPubs.map((pub) => `[127.0.0.1]:${port} ${pub.split(' ').slice(0, 2).join(' ')}`);
    let stopped = false;
    const instance: SshdInstance = {
      host: '127.0.0.1',
      port,
      dir,
      hostKeyLine: hostKeyLines[0] as string,
      hostKeyLines,
      clientKeyFile,
      clientPublicKey,
      user,
      log: () => log,
      sessionPids: () => (proc.pid === undefined ? [] : processes().filter((p) => p.ppid === proc.pid).map((p) => p.pid)),
      dropConnections: () => instance.signalConnections('SIGKILL'),
      signalConnections: (signal) => {
        if (proc.pid !== undefined) killPids(descendants(proc.pid), signal);
      },
      stop: async () => {
        if (stopped) return;
        stopped = true;
        if (proc.pid !== undefined && proc.exitCode === null && proc.signalCode === null) {
          const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
          killPids(descendants(proc.pid), 'SIGKILL');
          killPids([proc.pid], 'SIGTERM');
          await exited;
        }
        if (createdUser) {
          const uid = userId(createdUser);
          if (uid !== undefined) killPids(processes().filter((p) => p.uid === uid).map((p) => p.pid), 'SIGKILL');
          await run('userdel', ['-f', createdUser]);
        }
        if (sudoersFile) await rm(sudoersFile, { force: true });
        await rm(dir, { recursive: true, force: true });
        pendingCleanups.delete(cleanupSync);
      },
    };
    if (password !== undefined) instance.password = password;
    return instance;
  } catch (err) {
    cleanupSync();
    pendingCleanups.delete(cleanupSync);
    throw err;
  }
}

function userId(user: string): number | undefined {
  try {
    const line = readFileSync('/etc/passwd', 'utf8')
      .split('\n')
      .find((l) => l.startsWith(`${user}:`));
    return line ? Number(line.split(':')[2]) : undefined;
  } catch {
    return undefined;
  }
}

export interface InventoryOptions {
  /** Inventory name of the host (default `hv`). */
  name?: string;
  /** known_hosts content (default: the server's first host key). */
  knownHosts?: string;
  /** Key file to log in with (default: the key the server authorizes). */
  keyFile?: string;
  /** More host variables, as indented YAML lines. */
  vars?: string;
}

/** A YAML inventory (in a new folder under `parent`, its known_hosts beside it) of one host reaching `server`. */
export function sshInventory(parent: string, server: SshdInstance, options: InventoryOptions = {}): string {
  const dir = mkdtempSync(join(parent, 'inv-'));
  writeFileSync(join(dir, 'known_hosts'), options.knownHosts ?? server.hostKeyLine + '\n');
  const file = join(dir, 'inventory.yaml');
  writeFileSync(
    file,
    `all:\n  hosts:\n    ${options.name ?? 'hv'}:\n      ansible_host: 127.0.0.1\n      ansible_port: ${server.port}\n      ansible_user: ${server.user}\n` +
      `      ansible_ssh_private_key_file: ${options.keyFile ?? server.clientKeyFile}\n      kvmconf_known_hosts_file: ${join(dir, 'known_hosts')}\n${options.vars ?? ''}`,
  );
  return file;
}
