/**
 * The SSH transport against real OpenSSH sshd instances on 127.0.0.1 (started by
 * test/helpers/sshd.ts; needs root and openssh-server), plus the local transport.
 */

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createLocalTransport } from '../../src/transport/local.js';
import { connectSsh } from '../../src/transport/ssh.js';
import { TransportError, type ConnectionSpec, type Transport } from '../../src/transport/types.js';
import { MAX_OUTPUT_BYTES } from '../../src/transport/output.js';
import { freePort, generateKey, run, startSshd, type KeyType, type SshdInstance } from '../helpers/sshd.js';
import { alive } from '../helpers/process.js';

// Keep the tests away from the real ~/.ssh (config, keys, known_hosts) and any agent.
const home = await mkdtemp(join(tmpdir(), 'kvmconf-home-'));
process.env.HOME = home;
delete process.env.SSH_AUTH_SOCK;
delete process.env.KVMCONF_SSH_KEY_PASSPHRASE;

let work: string;
let fileCounter = 0;
/** A fresh path in the test's work directory. */
const path = (name: string): string => join(work, `${++fileCounter}-${name}`);

function specFor(sshd: SshdInstance, knownHostsFile: string, over: Partial<ConnectionSpec> = {}): ConnectionSpec {
  return {
    name: 'hv-test',
    connection: 'ssh',
    host: '127.0.0.1',
    port: sshd.port,
    user: sshd.user,
    privateKeyFiles: [sshd.clientKeyFile],
    knownHostsFile,
    hostKeyChecking: 'strict',
    sshConfigFile: '',
    connectTimeoutMs: 10_000,
    keepaliveIntervalMs: 5_000,
    ...over,
  };
}

async function knownHosts(...lines: string[]): Promise<string> {
  const f = path('known_hosts');
  await writeFile(f, lines.map((l) => `${l}\n`).join(''));
  return f;
}

const MIB = 1024 * 1024;

/** Polls `check` for up to 10 s. */
async function waitFor(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.fail(`timed out waiting: ${what}`);
}

/** Asserts that `promise` rejects with a TransportError of `kind`; returns it. */
async function rejectsWith(promise: Promise<unknown>, kind: TransportError['kind']): Promise<TransportError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof TransportError, `expected a TransportError, got ${String(err)}`);
    assert.equal(err.kind, kind, `expected kind ${kind}, got ${err.kind}: ${err.message}`);
    return err;
  }
  assert.fail(`expected a TransportError of kind ${kind}, but it resolved`);
}

async function fingerprint(pubLine: string): Promise<string> {
  const f = path('key.pub');
  await writeFile(f, `${pubLine}\n`);
  const out = await run('ssh-keygen', ['-l', '-E', 'sha256', '-f', f]);
  const fp = out.split(' ')[1] ?? '';
  assert.ok(fp.startsWith('SHA256:'), out);
  return fp;
}

/** Runs fn with a transport and always closes it. */
async function withTransport<T>(spec: ConnectionSpec, fn: (t: Transport) => Promise<T>): Promise<T> {
  const t = await connectSsh(spec);
  try {
    return await fn(t);
  } finally {
    await t.close();
  }
}

const instances: SshdInstance[] = [];
async function sshd(options: Parameters<typeof startSshd>[0] = {}): Promise<SshdInstance> {
  const s = await startSshd(options);
  instances.push(s);
  return s;
}

let srv: SshdInstance;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'kvmconf-ssh-test-'));
  srv = await sshd({ sudo: 'nopasswd' });
});

after(async () => {
  for (const s of instances) await s.stop();
  await rm(work, { recursive: true, force: true });
  await rm(home, { recursive: true, force: true });
});

describe('ssh transport: commands', () => {
  test('key auth runs a command with stdin, collects stdout/stderr as UTF-8 and the exit code', async () => {
    await withTransport(specFor(srv, await knownHosts(srv.hostKeyLine)), async (t) => {
      assert.equal(t.label, `ssh ${srv.user}@127.0.0.1:${srv.port}`);
      const chunks: string[] = [];
      const r = await t.exec('cat; echo "to stderr ✓" >&2; id -un', {
        stdin: 'héllo wörld\nline two\n',
        onStdout: (c) => chunks.push(c),
      });
      assert.equal(r.stdout, `héllo wörld\nline two\n${srv.user}\n`);
      assert.equal(r.stderr, 'to stderr ✓\n');
      assert.equal(r.code, 0);
      assert.equal(r.signal, undefined);
      assert.equal(chunks.join(''), r.stdout);

      const failed = await t.exec('echo out; exit 7');
      assert.deepEqual({ stdout: failed.stdout, code: failed.code }, { stdout: 'out\n', code: 7 });

      // stdin is closed even when none is given: a reader sees EOF instead of hanging.
      const empty = await t.exec('wc -c', { timeoutMs: 5_000 });
      assert.equal(empty.stdout.trim(), '0');
    });
  });

  test('a host printing without end is stopped at the output limit with a clear error, memory bounded; the connection still works', { timeout: 60_000 }, async () => {
    await withTransport(specFor(srv, await knownHosts(srv.hostKeyLine)), async (t) => {
      const before = process.memoryUsage().rss;
      const err = await rejectsWith(t.exec('echo first; exec yes', { maxOutputBytes: 8 * MIB, timeoutMs: 60_000 }), 'output-limit');
      assert.equal(err.message, `hv-test: host hv-test sent more than ${8 * MIB} bytes of output for one command; the command was stopped`);
      assert.ok(err.partialStdout.startsWith('first\ny\n') && err.partialStdout.length <= 8 * MIB, 'what came before the limit is kept, no more');
      assert.ok(process.memoryUsage().rss - before < 200 * MIB, 'memory stays bounded');
      await rejectsWith(t.exec('exec yes >&2', { maxOutputBytes: MIB, timeoutMs: 60_000 }), 'output-limit');
      assert.equal((await t.exec('echo still here')).stdout, 'still here\n');
      await waitFor(async () => (await t.exec(`pgrep -x -u ${srv.user} yes || true`)).stdout === '', 'the remote command ended');
    });
  });

  test('a command ended by a signal reports code null and the signal', async () => {
    await withTransport(specFor(srv, await knownHosts(srv.hostKeyLine)), async (t) => {
      const r = await t.exec('kill -TERM $$');
      assert.equal(r.code, null);
      assert.equal(r.signal, 'SIGTERM');
    });
  });

  test('execCount counts exec calls on one connection, each on its own channel', async () => {
    await withTransport(specFor(srv, await knownHosts(srv.hostKeyLine)), async (t) => {
      assert.equal(t.execCount, 0);
      const a = await t.exec('echo $SSH_CONNECTION');
      await t.exec('true');
      await assert.rejects(t.exec('sleep 5', { timeoutMs: 50 }));
      assert.equal(t.execCount, 3);
      // Same TCP connection for every exec.
      const b = await t.exec('echo $SSH_CONNECTION');
      assert.equal(b.stdout, a.stdout);
      assert.equal(t.execCount, 4);
      // Concurrent execs share the connection too.
      const [x, y] = await Promise.all([t.exec('echo x'), t.exec('echo y')]);
      assert.deepEqual([x.stdout, y.stdout], ['x\n', 'y\n']);
      assert.equal(t.execCount, 6);
    });
  });

  test('timeoutMs rejects with kind timeout, names the timeout, and the connection stays usable', async () => {
    await withTransport(specFor(srv, await knownHosts(srv.hostKeyLine)), async (t) => {
      const started = Date.now();
      const err = await rejectsWith(t.exec('echo before; sleep 30', { timeoutMs: 400 }), 'timeout');
      const elapsed = Date.now() - started;
      assert.ok(elapsed >= 350 && elapsed < 5_000, `timed out after ${elapsed} ms`);
      assert.match(err.message, /400 ms/);
      assert.match(err.message, /^hv-test: /);
      const again = await t.exec('echo still here');
      assert.equal(again.stdout, 'still here\n');
    });
  });

  test('interrupt() delivers SIGINT to the running remote command', async () => {
    await withTransport(specFor(srv, await knownHosts(srv.hostKeyLine)), async (t) => {
      const script = "trap 'echo got-INT; kill $p 2>/dev/null; exit 42' INT; echo ready; sleep 30 >/dev/null 2>&1 & p=$!; wait $p; echo no-signal";
      const started = Date.now();
      const r = await t.exec(script, {
        timeoutMs: 20_000,
        onStdout: (chunk) => {
          if (chunk.includes('ready')) t.interrupt();
        },
      });
      assert.equal(r.stdout, 'ready\ngot-INT\n');
      assert.equal(r.code, 42);
      assert.ok(Date.now() - started < 10_000);
      // Nothing running: interrupt() is a no-op.
      t.interrupt();
      assert.equal((await t.exec('echo ok')).stdout, 'ok\n');
    });
  });

  test('logged in as root (where sshd refuses signals): interrupt() still reaches the command, and a timeout ends it on the host', async () => {
    const root = await sshd({ clientKeyFile: srv.clientKeyFile, user: 'root' });
    await withTransport(specFor(root, await knownHosts(root.hostKeyLine), { user: 'root' }), async (t) => {
      const script = "trap 'echo got-INT; kill $p 2>/dev/null; exit 42' INT; echo ready; sleep 30 >/dev/null 2>&1 & p=$!; wait $p; echo no-signal";
      const started = Date.now();
      const r = await t.exec(script, { timeoutMs: 20_000, onStdout: (chunk) => chunk.includes('ready') && t.interrupt() });
      assert.equal(r.stdout, 'ready\ngot-INT\n');
      assert.equal(r.code, 42);
      assert.ok(Date.now() - started < 10_000);
      assert.equal(r.stderr, '', 'the group line is not part of the output');

      const marker = `kvmconf-timeout-${process.pid}`;
      await assert.rejects(t.exec(`exec -a ${marker} sleep 300`, { timeoutMs: 1_000 }), /timeout/);
      const running = () => readdirSync('/proc').filter((pid) => /^\d+$/.test(pid)).some((pid) => {
        try {
          return readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith(marker);
        } catch {
          return false;
        }
      });
      await waitFor(() => !running(), 'the timed-out command ended on the host');
      assert.equal((await t.exec('echo fine')).stdout, 'fine\n');
    });
    await root.stop();
  });

  test('a connection dropped mid-exec rejects with kind dropped and the partial stdout', async () => {
    const victim = await sshd({ clientKeyFile: srv.clientKeyFile, user: srv.user });
    const t = await connectSsh(specFor(victim, await knownHosts(victim.hostKeyLine)));
    try {
      const err = await rejectsWith(
        t.exec('echo step-1-done; echo step-2-done; sleep 30', {
          timeoutMs: 20_000,
          onStdout: (chunk) => {
            if (chunk.includes('step-2-done')) victim.dropConnections();
          },
        }),
        'dropped',
      );
      assert.equal(err.partialStdout, 'step-1-done\nstep-2-done\n');
      // Later execs fail at once, as dropped.
      await rejectsWith(t.exec('true'), 'dropped');
    } finally {
      await t.close();
      await victim.stop();
    }
  });

  test('a server that stops answering is detected by keepalives and reported as dropped', async () => {
    const frozen = await sshd({ clientKeyFile: srv.clientKeyFile, user: srv.user });
    const t = await connectSsh(specFor(frozen, await knownHosts(frozen.hostKeyLine), { keepaliveIntervalMs: 200 }));
    try {
      const started = Date.now();
      const err = await rejectsWith(
        t.exec('echo alive; sleep 30', {
          timeoutMs: 20_000,
          onStdout: (chunk) => {
            if (chunk.includes('alive')) frozen.signalConnections('SIGSTOP');
          },
        }),
        'dropped',
      );
      assert.ok(Date.now() - started < 10_000);
      assert.match(err.message, /keepalive/i);
      assert.equal(err.partialStdout, 'alive\n');
    } finally {
      frozen.signalConnections('SIGCONT');
      await t.close();
      await frozen.stop();
    }
  });

  test('close() ends the connection: later execs are refused and the server session ends', async () => {
    const t = await connectSsh(specFor(srv, await knownHosts(srv.hostKeyLine)));
    await t.exec('true');
    assert.ok(srv.sessionPids().length >= 1);
    await t.close();
    await rejectsWith(t.exec('true'), 'dropped');
    await t.close(); // idempotent
    const deadline = Date.now() + 5_000;
    while (srv.sessionPids().length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(srv.sessionPids(), []);
  });

  test('the fixture user can sudo without a password, and with one on stdin', async () => {
    await withTransport(specFor(srv, await knownHosts(srv.hostKeyLine)), async (t) => {
      const r = await t.exec('sudo -n id -u');
      assert.equal(r.stdout, '0\n', r.stderr);
    });
    const pw = await sshd({ sudo: 'password' });
    assert.ok(pw.password);
    await withTransport(specFor(pw, await knownHosts(pw.hostKeyLine)), async (t) => {
      const denied = await t.exec('sudo -n id -u');
      assert.notEqual(denied.code, 0);
      const r = await t.exec("sudo -S -p '' id -u", { stdin: `${pw.password}\n` });
      assert.equal(r.stdout, '0\n', r.stderr);
    });
    await pw.stop();
    assert.equal(await readFile(`/etc/sudoers.d/kvmconf-test-${pw.user}`).catch(() => 'gone'), 'gone');
  });
});

describe('ssh transport: authentication', () => {
  test('ssh-agent: a key held only by a real ssh-agent authenticates with no key files', async () => {
    const sock = path('agent.sock');
    const agent: ChildProcess = spawn('ssh-agent', ['-D', '-a', sock], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      await new Promise<void>((resolve, reject) => {
        let out = '';
        agent.stdout?.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('SSH_AUTH_SOCK')) resolve();
        });
        agent.on('exit', (code) => reject(new Error(`ssh-agent exited with ${code}`)));
      });
      await run('/bin/sh', ['-c', `SSH_AUTH_SOCK='${sock}' ssh-add '${srv.clientKeyFile}'`]);
      const kh = await knownHosts(srv.hostKeyLine);

      // Without the agent, no key file: authentication fails and says what was tried.
      const noAgent = await rejectsWith(connectSsh(specFor(srv, kh, { privateKeyFiles: [] })), 'auth');
      assert.match(noAgent.message, new RegExp(`authentication failed for ${srv.user} \\(tried: nothing: no agent, no key file\\)`));

      process.env.SSH_AUTH_SOCK = sock;
      try {
        await withTransport(specFor(srv, kh, { privateKeyFiles: [] }), async (t) => {
          assert.equal((await t.exec('id -un')).stdout, `${srv.user}\n`);
        });
      } finally {
        delete process.env.SSH_AUTH_SOCK;
      }
    } finally {
      agent.kill('SIGTERM');
    }
  });

  test('a key the server does not accept fails with kind auth naming the user and what was tried', async () => {
    const wrong = path('wrong_ed25519');
    await generateKey(wrong);
    const err = await rejectsWith(
      connectSsh(specFor(srv, await knownHosts(srv.hostKeyLine), { privateKeyFiles: [wrong, path('missing_key')] })),
      'auth',
    );
    assert.match(err.message, new RegExp(`^hv-test: authentication failed for ${srv.user} \\(tried: ${wrong}; skipped: `));
    assert.match(err.message, /missing_key \(not found\)/);
  });

  test('every client key type signs its authentication: RSA (SHA-2), ECDSA P-256/384/521, Ed25519', async () => {
    const keys: Array<[string, KeyType, number | undefined]> = [['rsa', 'rsa', 3072], ['p256', 'ecdsa', 256], ['p384', 'ecdsa', 384], ['p521', 'ecdsa', 521], ['ed', 'ed25519', undefined]];
    const files = keys.map(([name]) => path(`type_${name}`));
    const pubs = await Promise.all(keys.map(([, type, bits], i) => generateKey(files[i]!, type, '', bits)));
    const s = await sshd({ authorizedKeys: pubs });
    try {
      const kh = await knownHosts(s.hostKeyLine);
      for (const file of files) {
        // Twice: the second connection signs with the key object the first one left on the shared parsed key.
        for (let round = 0; round < 2; round++) {
          await withTransport(specFor(s, kh, { privateKeyFiles: [file] }), async (t) => {
            assert.equal((await t.exec('echo ok')).stdout, 'ok\n', `${file}, connection ${round + 1}`);
          });
        }
      }
    } finally {
      await s.stop();
    }
  });

  test('an encrypted key is skipped with a note without a passphrase, and used with KVMCONF_SSH_KEY_PASSPHRASE', async () => {
    const secret = 'correct-horse-battery';
    const enc = path('enc_ed25519');
    const pub = await generateKey(enc, 'ed25519', secret);
    const s = await sshd({ authorizedKeys: [pub] });
    const kh = await knownHosts(s.hostKeyLine);
    const err = await rejectsWith(connectSsh(specFor(s, kh, { privateKeyFiles: [enc] })), 'auth');
    assert.match(err.message, /enc_ed25519 \(encrypted, no passphrase: set KVMCONF_SSH_KEY_PASSPHRASE\)/);

    process.env.KVMCONF_SSH_KEY_PASSPHRASE = 'wrong-one';
    try {
      const bad = await rejectsWith(connectSsh(specFor(s, kh, { privateKeyFiles: [enc] })), 'auth');
      assert.match(bad.message, /does not decrypt it/);
      assert.ok(!bad.message.includes('wrong-one'));
      process.env.KVMCONF_SSH_KEY_PASSPHRASE = secret;
      await withTransport(specFor(s, kh, { privateKeyFiles: [enc] }), async (t) => {
        assert.equal((await t.exec('echo ok')).stdout, 'ok\n');
      });
    } finally {
      delete process.env.KVMCONF_SSH_KEY_PASSPHRASE;
      await s.stop();
    }
  });

  test('default key files under ~/.ssh are tried when none is configured', async () => {
    const s = await sshd({ clientKeyFile: srv.clientKeyFile });
    const kh = await knownHosts(s.hostKeyLine);
    await rejectsWith(connectSsh(specFor(s, kh, { privateKeyFiles: [] })), 'auth');
    await run('/bin/sh', ['-c', `mkdir -p '${home}/.ssh' && cp '${srv.clientKeyFile}' '${home}/.ssh/id_ed25519'`]);
    try {
      await withTransport(specFor(s, kh, { privateKeyFiles: [] }), async (t) => {
        assert.equal((await t.exec('echo ok')).stdout, 'ok\n');
      });
    } finally {
      await rm(join(home, '.ssh', 'id_ed25519'));
      await s.stop();
    }
  });
});

describe('ssh transport: host keys', () => {
  test('strict: an unknown host key is refused with the name, file and SHA256 fingerprint', async () => {
    const kh = await knownHosts('# nothing for this host', '[127.0.0.1]:1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPvmRdBTsxp9VB0k0nHyYdXUz1p1ao4cp9HfvnIgdZkN');
    const err = await rejectsWith(connectSsh(specFor(srv, kh)), 'host-key-unknown');
    const fp = await fingerprint(srv.hostKeyLine.split(' ').slice(1).join(' '));
    assert.match(err.message, new RegExp(`host key for \\[127\\.0\\.0\\.1\\]:${srv.port} is not in ${kh} \\(ssh-ed25519 ${fp.replace(/[+/]/g, '\\$&')}\\)`));
    assert.match(err.message, /ssh-keyscan/);
    assert.match(err.message, /--host-key-checking accept-new/);
    // A missing known_hosts file is unknown too, and is not created in strict mode.
    const missing = path('absent/known_hosts');
    await rejectsWith(connectSsh(specFor(srv, missing)), 'host-key-unknown');
    await assert.rejects(stat(missing));
  });

  test('off: any host key is accepted and nothing is written', async () => {
    const missing = path('off/known_hosts');
    await withTransport(specFor(srv, missing, { hostKeyChecking: 'off' }), async (t) => {
      assert.equal((await t.exec('echo ok')).stdout, 'ok\n');
    });
    await assert.rejects(stat(missing));
  });

  test('accept-new: an unknown key is appended (file 0600, dir 0700), and a second strict connect matches', async () => {
    const dir = path('fresh-ssh-dir');
    const kh = join(dir, 'known_hosts');
    await withTransport(specFor(srv, kh, { hostKeyChecking: 'accept-new' }), async (t) => {
      assert.equal((await t.exec('echo ok')).stdout, 'ok\n');
    });
    assert.equal(await readFile(kh, 'utf8'), `${srv.hostKeyLine}\n`);
    assert.equal((await stat(kh)).mode & 0o777, 0o600);
    assert.equal((await stat(dir)).mode & 0o777, 0o700);
    await withTransport(specFor(srv, kh, { hostKeyChecking: 'strict' }), async (t) => {
      assert.equal((await t.exec('echo again')).stdout, 'again\n');
    });
    // Existing bytes are kept as they are (here: no newline at the end).
    const kh2 = path('known_hosts');
    const before = '# my hosts\r\nother.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPvmRdBTsxp9VB0k0nHyYdXUz1p1ao4cp9HfvnIgdZkN';
    await writeFile(kh2, before);
    await withTransport(specFor(srv, kh2, { hostKeyChecking: 'accept-new' }), async () => undefined);
    assert.equal(await readFile(kh2, 'utf8'), `${before}\n${srv.hostKeyLine}\n`);
  });

  test('a key in a global known_hosts file (GlobalKnownHostsFile) is trusted and never written to; HashKnownHosts hashes what accept-new adds', async () => {
    const global = await knownHosts(srv.hostKeyLine);
    const own = path('known_hosts');
    const config = path('ssh_config');
    await writeFile(config, `Host *\n  GlobalKnownHostsFile ${global}\n  UserKnownHostsFile ${own}\n  HashKnownHosts yes\n`);
    const spec = (over: Partial<ConnectionSpec>) => {
      const { knownHostsFile: _ignored, ...rest } = specFor(srv, own, { sshConfigFile: config, ...over });
      return rest as ConnectionSpec;
    };
    await withTransport(spec({ hostKeyChecking: 'strict' }), async (t) => assert.equal((await t.exec('echo ok')).stdout, 'ok\n'));
    assert.equal(existsSync(own), false, 'nothing written for a key the global file holds');
    assert.equal(await readFile(global, 'utf8'), `${srv.hostKeyLine}\n`);

    await writeFile(config, `Host *\n  UserKnownHostsFile ${own}\n  HashKnownHosts yes\n`);
    await withTransport(spec({ hostKeyChecking: 'accept-new' }), async () => undefined);
    const added = await readFile(own, 'utf8');
    assert.match(added, /^\|1\|[A-Za-z0-9+/=]+\|[A-Za-z0-9+/=]+ ssh-ed25519 /, 'a hashed entry');
    assert.doesNotMatch(added, /127\.0\.0\.1/);
    await withTransport(spec({ hostKeyChecking: 'strict' }), async (t) => assert.equal((await t.exec('echo again')).stdout, 'again\n'));
  });

  test('a changed host key (sshd restarted with another key on the same port) is refused in every mode, off included', async () => {
    const first = await sshd({ clientKeyFile: srv.clientKeyFile, user: srv.user });
    const port = first.port;
    const kh = path('known_hosts');
    await withTransport(specFor(first, kh, { hostKeyChecking: 'accept-new' }), async () => undefined);
    const recorded = await readFile(kh, 'utf8');
    assert.equal(recorded, `${first.hostKeyLine}\n`);
    await first.stop();

    const second = await sshd({ port, clientKeyFile: srv.clientKeyFile, user: srv.user });
    try {
      assert.equal(second.port, port);
      assert.notEqual(second.hostKeyLine, first.hostKeyLine);
      for (const mode of ['accept-new', 'strict', 'off'] as const) {
        const err = await rejectsWith(connectSsh(specFor(second, kh, { hostKeyChecking: mode })), 'host-key-changed');
        assert.match(err.message, /REMOTE HOST IDENTIFICATION HAS CHANGED/);
        assert.match(err.message, new RegExp(`offending entry ${kh}:1\\b`));
        assert.match(err.message, /SHA256:/);
      }
      assert.equal(await readFile(kh, 'utf8'), recorded, 'known_hosts must not change');
    } finally {
      await second.stop();
    }
  });

  test('a hashed known_hosts entry (ssh-keygen -H) matches', async () => {
    const kh = await knownHosts(srv.hostKeyLine);
    await run('ssh-keygen', ['-H', '-f', kh]);
    const hashed = await readFile(kh, 'utf8');
    assert.match(hashed, /^\|1\|[^ |]+\|[^ ]+ ssh-ed25519 /);
    assert.ok(!hashed.includes('127.0.0.1'));
    await withTransport(specFor(srv, kh), async (t) => {
      assert.equal((await t.exec('echo ok')).stdout, 'ok\n');
    });
    // The same hashed entry does not cover another port.
    const other = await sshd({ clientKeyFile: srv.clientKeyFile, user: srv.user });
    try {
      await rejectsWith(connectSsh(specFor(other, kh)), 'host-key-unknown');
    } finally {
      await other.stop();
    }
  });

  test('accept-new writes a hashed entry when the file already holds only hashed entries', async () => {
    const kh = await knownHosts('other.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPvmRdBTsxp9VB0k0nHyYdXUz1p1ao4cp9HfvnIgdZkN');
    await run('ssh-keygen', ['-H', '-f', kh]);
    await withTransport(specFor(srv, kh, { hostKeyChecking: 'accept-new' }), async () => undefined);
    const lines = (await readFile(kh, 'utf8')).trim().split('\n');
    assert.equal(lines.length, 2);
    assert.match(lines[1] ?? '', /^\|1\|/);
    // ssh-keygen finds the new entry under the host's name.
    const found = await run('ssh-keygen', ['-F', `[127.0.0.1]:${srv.port}`, '-f', kh]);
    assert.match(found, /ssh-ed25519/);
    await withTransport(specFor(srv, kh), async () => undefined);
  });

  test('a @revoked key is refused even when also listed as known', async () => {
    const keyPart = srv.hostKeyLine.split(' ').slice(1).join(' ');
    const kh = await knownHosts(srv.hostKeyLine, `@revoked * ${keyPart}`);
    const err = await rejectsWith(connectSsh(specFor(srv, kh, { hostKeyChecking: 'accept-new' })), 'host-key-changed');
    assert.match(err.message, new RegExp(`@revoked in ${kh}:2`));
  });

  test('the host key algorithms known for the host are offered first', async () => {
    const s = await sshd({ hostKeyTypes: ['ed25519', 'rsa', 'ecdsa'], clientKeyFile: srv.clientKeyFile, user: srv.user });
    try {
      const [ed, rsa, ecdsa] = s.hostKeyLines as [string, string, string];
      assert.match(rsa, / ssh-rsa /);
      assert.match(ecdsa, / ecdsa-sha2-nistp256 /);
      // Only the RSA key is known: the server must be asked for it, not for ed25519.
      for (const line of [rsa, ecdsa, ed]) {
        await withTransport(specFor(s, await knownHosts(line)), async (t) => {
          assert.equal((await t.exec('echo ok')).stdout, 'ok\n');
        });
      }
    } finally {
      await s.stop();
    }
  });
});

describe('ssh transport: reaching the host', () => {
  test('a closed port is unreachable with ECONNREFUSED', async () => {
    const port = await freePort();
    const err = await rejectsWith(connectSsh(specFor(srv, await knownHosts(), { port })), 'unreachable');
    assert.match(err.message, new RegExp(`cannot connect to 127\\.0\\.0\\.1:${port}: ECONNREFUSED`));
  });

  test('a server that never speaks SSH is unreachable after connectTimeoutMs', async () => {
    const silent: Server = createServer(() => undefined);
    const sockets = new Set<import('node:net').Socket>();
    silent.on('connection', (s) => sockets.add(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as import('node:net').AddressInfo).port;
    try {
      const started = Date.now();
      const err = await rejectsWith(connectSsh(specFor(srv, await knownHosts(), { port, connectTimeoutMs: 500 })), 'unreachable');
      assert.ok(Date.now() - started < 5_000);
      assert.match(err.message, new RegExp(`cannot connect to 127\\.0\\.0\\.1:${port}: timeout`));
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => silent.close(r));
    }
  });

  test('ProxyJump: the target is reached through a bastion sshd, both host keys checked', async () => {
    const bastion = await sshd({ clientKeyFile: srv.clientKeyFile, logLevel: 'DEBUG1' });
    try {
      const kh = await knownHosts(bastion.hostKeyLine, srv.hostKeyLine);
      const jump = `${bastion.user}@127.0.0.1:${bastion.port}`;
      await withTransport(specFor(srv, kh, { proxyJump: jump }), async (t) => {
        assert.equal(t.label, `ssh ${srv.user}@127.0.0.1:${srv.port} via ${jump}`);
        const r = await t.exec('id -un; cat', { stdin: 'through the bastion\n' });
        assert.equal(r.stdout, `${srv.user}\nthrough the bastion\n`);
        assert.equal(t.execCount, 1);
      });
      // The bastion opened the forwarded connection to the target's port.
      assert.match(bastion.log(), new RegExp(`direct_tcpip: originator .* target 127\\.0\\.0\\.1 port ${srv.port}\\b`));

      // The bastion's host key is verified too.
      const onlyTarget = await knownHosts(srv.hostKeyLine);
      const unknown = await rejectsWith(connectSsh(specFor(srv, onlyTarget, { proxyJump: jump })), 'host-key-unknown');
      assert.match(unknown.message, new RegExp(`bastion host key for \\[127\\.0\\.0\\.1\\]:${bastion.port}`));
      // Authentication at the bastion is checked and reported as such.
      const denied = await rejectsWith(connectSsh(specFor(srv, kh, { proxyJump: `kvmconf-no-such-user@127.0.0.1:${bastion.port}` })), 'auth');
      assert.match(denied.message, new RegExp(`authentication failed for kvmconf-no-such-user at bastion 127\\.0\\.0\\.1:${bastion.port} \\(tried: `));
      // A target port nobody listens on, behind the bastion, is unreachable.
      const closed = await freePort();
      const refused = await rejectsWith(
        connectSsh(specFor(srv, kh, { proxyJump: jump, port: closed })),
        'unreachable',
      );
      assert.match(refused.message, new RegExp(`cannot connect to 127\\.0\\.0\\.1:${closed} via bastion 127\\.0\\.0\\.1:${bastion.port}`));
    } finally {
      await bastion.stop();
    }
  });

  test('ProxyJump from ssh_config, with a Host alias, two hops, and a bastion that refuses forwarding', async () => {
    const b1 = await sshd({ clientKeyFile: srv.clientKeyFile, user: srv.user });
    const b2 = await sshd({ clientKeyFile: srv.clientKeyFile, user: srv.user });
    const noForward = await sshd({ clientKeyFile: srv.clientKeyFile, user: srv.user, config: ['AllowTcpForwarding no'] });
    try {
      const kh = await knownHosts(b1.hostKeyLine, b2.hostKeyLine, noForward.hostKeyLine, srv.hostKeyLine);
      const cfg = path('ssh_config');
      await writeFile(
        cfg,
        [
          'Host hv-alias',
          '  HostName 127.0.0.1',
          `  Port ${srv.port}`,
          `  User ${srv.user}`,
          `  IdentityFile ${srv.clientKeyFile}`,
          `  ProxyJump ${srv.user}@127.0.0.1:${b1.port},127.0.0.1:${b2.port}`,
          `  UserKnownHostsFile ${kh}`,
          'Host hv-blocked',
          '  HostName 127.0.0.1',
          `  Port ${srv.port}`,
          `  User ${srv.user}`,
          `  IdentityFile ${srv.clientKeyFile}`,
          `  ProxyJump 127.0.0.1:${noForward.port}`,
          // Jump hosts get their own ssh_config lookup (by their address), as with OpenSSH.
          'Host *',
          `  UserKnownHostsFile ${kh}`,
          `  User ${srv.user}`,
          `  IdentityFile ${srv.clientKeyFile}`,
          '',
        ].join('\n'),
      );
      const base: ConnectionSpec = {
        name: 'hv-alias',
        connection: 'ssh',
        host: 'hv-alias',
        hostKeyChecking: 'strict',
        sshConfigFile: cfg,
        connectTimeoutMs: 10_000,
        keepaliveIntervalMs: 5_000,
      };
      await withTransport(base, async (t) => {
        assert.equal(t.label, `ssh ${srv.user}@127.0.0.1:${srv.port} via ${srv.user}@127.0.0.1:${b1.port},${srv.user}@127.0.0.1:${b2.port}`);
        assert.equal((await t.exec('echo two hops')).stdout, 'two hops\n');
      });
      const err = await rejectsWith(connectSsh({ ...base, name: 'hv-blocked', host: 'hv-blocked' }), 'unreachable');
      assert.match(err.message, new RegExp(`via bastion 127\\.0\\.0\\.1:${noForward.port}`));
    } finally {
      await b1.stop();
      await b2.stop();
      await noForward.stop();
    }
  });

  test('a drop of the bastion connection drops the target exec with the partial output', async () => {
    const bastion = await sshd({ clientKeyFile: srv.clientKeyFile, user: srv.user });
    try {
      const kh = await knownHosts(bastion.hostKeyLine, srv.hostKeyLine);
      const t = await connectSsh(specFor(srv, kh, { proxyJump: `127.0.0.1:${bastion.port}` }));
      try {
        const err = await rejectsWith(
          t.exec('echo first; sleep 30', { timeoutMs: 20_000, onStdout: (c) => c.includes('first') && bastion.dropConnections() }),
          'dropped',
        );
        assert.equal(err.partialStdout, 'first\n');
      } finally {
        await t.close();
      }
    } finally {
      await bastion.stop();
    }
  });
});

describe('local transport', () => {
  test('runs with /bin/sh -c, feeds stdin, collects output and exit status', async () => {
    const t = createLocalTransport('localhost');
    assert.equal(t.label, 'local');
    const chunks: string[] = [];
    const r = await t.exec('cat; echo "err ✓" >&2; exit 3', { stdin: 'héllo\n', onStdout: (c) => chunks.push(c) });
    assert.deepEqual(r, { stdout: 'héllo\n', stderr: 'err ✓\n', code: 3 });
    assert.equal(chunks.join(''), 'héllo\n');
    assert.equal((await t.exec('wc -c')).stdout.trim(), '0');
    const killed = await t.exec('kill -TERM $$');
    assert.equal(killed.code, null);
    assert.equal(killed.signal, 'SIGTERM');
    assert.equal(t.execCount, 3);
    await t.close();
  });

  test('output past MAX_OUTPUT_BYTES stops the command and its group with a clear error; memory stays bounded', { timeout: 60_000 }, async () => {
    const t = createLocalTransport('localhost');
    const pidFile = path('pid');
    const before = process.memoryUsage().rss;
    const err = await rejectsWith(t.exec(`echo $$ > ${pidFile}; yes | cat`), 'output-limit');
    assert.equal(err.message, `localhost: host localhost sent more than ${MAX_OUTPUT_BYTES} bytes of output for one command; the command was stopped`);
    assert.ok(process.memoryUsage().rss - before < 4 * MAX_OUTPUT_BYTES, 'memory stays bounded');
    const group = Number(await readFile(pidFile, 'utf8'));
    await waitFor(async () => !alive(-group), 'the command and its pipeline ended');
    await t.close();
  });

  test('timeout and interrupt behave like the SSH transport', async () => {
    const t = createLocalTransport('localhost');
    const err = await rejectsWith(t.exec('echo partial; sleep 30', { timeoutMs: 300 }), 'timeout');
    assert.match(err.message, /300 ms/);
    assert.equal(err.partialStdout, 'partial\n');
    const script = "trap 'echo got-INT; kill $p 2>/dev/null; exit 42' INT; echo ready; sleep 30 >/dev/null 2>&1 & p=$!; wait $p";
    const r = await t.exec(script, { timeoutMs: 20_000, onStdout: (c) => c.includes('ready') && t.interrupt() });
    assert.deepEqual({ stdout: r.stdout, code: r.code }, { stdout: 'ready\ngot-INT\n', code: 42 });
    assert.equal(t.execCount, 2);
    await t.close();
  });
});
