/**
 * Passwords against the real OpenSSH sshd and the real sudo on 127.0.0.1: sudo's password
 * (ansible_become_password, vaulted or not, and --ask-become-pass), become_user, and SSH
 * password logins (ansible_ssh_pass, --ask-pass). While each run goes on, every process's
 * arguments and environment are sampled: the password must never be in them, nor in any
 * output or report.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sshInventory, startSshd, type SshdInstance } from '../helpers/sshd.js';
import { TEST_MODULES } from '../helpers/file-module.js';
import { kvmconf } from '../helpers/cli-run.js';
import { loadInventory } from '../../src/config/inventory.js';
import { loadPlaybook } from '../../src/config/playbook.js';
import { useVaultSecrets } from '../../src/config/vault.js';
import { runPlaybook, type RunOptions } from '../../src/engine/runner.js';

const work = mkdtempSync(join(tmpdir(), 'kvmconf-become-'));
chmodSync(work, 0o755);
let sudoPassword: SshdInstance;
let sudoFree: SshdInstance;
let passwordOnly: SshdInstance;

before(async () => {
  sudoPassword = await startSshd({ sudo: 'password' });
  sudoFree = await startSshd({ sudo: 'nopasswd' });
  // Keys are refused here: only the password gets in.
  passwordOnly = await startSshd({ sudo: 'password', config: ['PasswordAuthentication yes', 'AuthenticationMethods password'] });
});
after(async () => {
  await sudoPassword?.stop();
  await sudoFree?.stop();
  await passwordOnly?.stop();
});

/** Samples every process's arguments and environment until stopped; returns those holding `secret`. */
function watchProcesses(secret: string): () => string[] {
  // Keyed by process and file: a process read while it execs may show two command lines.
  const seen = new Map<string, string>();
  const sample = (): void => {
    for (const pid of readdirSync('/proc').filter((entry) => /^\d+$/.test(entry))) {
      for (const file of ['cmdline', 'environ']) {
        try {
          if (readFileSync(`/proc/${pid}/${file}`).includes(secret) && !seen.has(`${pid} ${file}`)) {
            seen.set(`${pid} ${file}`, `${pid} ${file}: ${readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ')}`);
          }
        } catch {
          // the process ended
        }
      }
    }
  };
  const timer = setInterval(sample, 5);
  return () => {
    clearInterval(timer);
    return [...seen.values()];
  };
}

/** One host on `server` with `vars`; without `key`, the key file named does not exist (only a password can log in). */
const inventoryFor = (server: SshdInstance, vars: string, key = true): string =>
  sshInventory(work, server, { vars, ...(!key && { keyFile: join(work, 'no-such-key') }) });

function playbookFor(task: string, play = '  become: true\n'): string {
  const file = join(mkdtempSync(join(work, 'pb-')), 'site.yaml');
  writeFileSync(file, `- hosts: all\n${play}  tasks:\n    - ${task}\n`);
  return file;
}

const options = (mode: 'check' | 'apply'): RunOptions => ({
  mode, forks: 2, commandTimeoutMs: 60_000, detailedExitCode: false, toolVersion: 'test',
  connection: { hostKeyChecking: 'strict', connectTimeoutMs: 10_000, keepaliveIntervalMs: 5_000 },
});

const run = (playbook: string, inventory: string, mode: 'check' | 'apply') => runPlaybook(loadPlaybook(playbook, TEST_MODULES), loadInventory(inventory), TEST_MODULES, options(mode));

test('the process watcher sees a secret on a command line (so its silence below means something)', async () => {
  const watching = watchProcesses('canary-3f9a');
  // The shell waits on its builtin `read` and starts no child: dash vforks a command, and a
  // vfork child shows its parent's command line until it execs, a second holder now and then.
  await new Promise((resolve) => {
    const child = spawn('sh', ['-c', 'read line', 'canary-3f9a'], { stdio: ['pipe', 'ignore', 'ignore'] });
    child.on('exit', resolve);
    setTimeout(() => child.stdin.end('\n'), 300);
  });
  assert.equal(watching().length, 1);
});

test('ansible_become_password: sudo gets it on standard input; the file is written as root; no process shows it', async () => {
  const password = sudoPassword.password!;
  const target = join(work, 'as-root.conf');
  const watching = watchProcesses(password);
  const inventory = inventoryFor(sudoPassword, `      ansible_become_password: '${password}'\n`);
  const apply = await run(playbookFor(`test_file: {path: ${target}, content: "tuned\\n"}`), inventory, 'apply');
  const holders = watching();
  assert.equal(apply.hosts[0]!.status, 'changed', apply.hosts[0]!.error);
  assert.equal(statSync(target).uid, 0, 'written as root through sudo');
  assert.equal(apply.hosts[0]!.execCount, 3, 'gather + apply + verify: one exec each, password or not');
  assert.deepEqual(holders, [], 'no process argument list or environment holds the password');
  assert.doesNotMatch(JSON.stringify(apply), new RegExp(password.replace(/[^\w]/g, '.')), 'the report does not hold it');
});

test('become_user: the scripts run as that user', async () => {
  const dir = mkdtempSync(join(work, 'nobody-'));
  chmodSync(dir, 0o777);
  const target = join(dir, 'as-nobody.conf');
  const inventory = inventoryFor(sudoPassword, `      ansible_become_password: '${sudoPassword.password}'\n`);
  const apply = await run(playbookFor(`test_file: {path: ${target}, content: "x\\n"}`, '  become: true\n  become_user: nobody\n'), inventory, 'apply');
  assert.equal(apply.hosts[0]!.status, 'changed', apply.hosts[0]!.error);
  assert.equal(statSync(target).uid, Number(execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).trim()));
});

test('a wrong sudo password fails the host clearly, without echoing any password', async () => {
  const inventory = inventoryFor(sudoPassword, `      ansible_become_password: 'not the password'\n`);
  const started = Date.now();
  const check = await run(playbookFor(`test_file: {path: ${join(work, 'never.conf')}, content: x}`), inventory, 'check');
  assert.equal(check.hosts[0]!.status, 'failed');
  assert.match(check.hosts[0]!.error!, /become failed: sudo: .*incorrect password.*ansible_become_password/);
  assert.doesNotMatch(check.hosts[0]!.error!, /not the password/);
  assert.ok(Date.now() - started < 30_000, 'sudo gives up without waiting for a terminal');
});

test('passwordless sudo with a password given: the password line is never run as a command', async () => {
  const target = join(work, 'nopasswd.conf');
  const inventory = inventoryFor(sudoFree, `      ansible_become_password: 'echo INJECTED > ${join(work, 'injected')}'\n`);
  const apply = await run(playbookFor(`test_file: {path: ${target}, content: "ok\\n"}`), inventory, 'apply');
  assert.equal(apply.hosts[0]!.status, 'changed', apply.hosts[0]!.error);
  assert.throws(() => statSync(join(work, 'injected')), /ENOENT/);
});

test('a vaulted ansible_become_password is decrypted for sudo', async () => {
  const passFile = join(work, 'vault-pass');
  writeFileSync(passFile, 'vault key\n');
  const encrypted = execFileSync('ansible-vault', ['encrypt_string', '--vault-password-file', passFile, '--name', 'ansible_become_password', '--', sudoPassword.password!], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const inventory = inventoryFor(sudoPassword, encrypted.trimEnd().split('\n').map((line) => `      ${line}`).join('\n') + '\n');
  useVaultSecrets([{ id: 'default', password: Buffer.from('vault key') }]);
  const target = join(work, 'vaulted.conf');
  const apply = await run(playbookFor(`test_file: {path: ${target}, content: "v\\n"}`), inventory, 'apply');
  assert.equal(apply.hosts[0]!.status, 'changed', apply.hosts[0]!.error);
  assert.equal(statSync(target).uid, 0);
});

test('the CLI: --ask-become-pass and --ask-pass read standard input; the password is in no output, report or process', async () => {
  const password = passwordOnly.password!;
  const playbook = playbookFor('sysctl: {settings: {kernel.ostype: Linux}, file: /etc/sysctl.d/90-kvmconf-become-test.conf}');
  const inventory = inventoryFor(passwordOnly, '', false);
  const watching = watchProcesses(password);
  const run = await kvmconf(['apply', playbook, '-i', inventory, '--check', '-k', '-K'], undefined, `${password}\n\n`);
  const holders = watching();
  assert.notEqual(run.report?.hosts?.[0]?.status, undefined, run.stderr);
  assert.notEqual(run.report.hosts[0].status, 'unreachable', run.report.hosts[0].error);
  assert.notEqual(run.report.hosts[0].status, 'failed', run.report.hosts[0].error);
  assert.match(passwordOnly.log(), /Accepted password for/);
  assert.deepEqual(holders, []);
  for (const text of [run.stdout, run.stderr, JSON.stringify(run.report)]) assert.equal(text.includes(password), false);

  const refused = await kvmconf(['apply', playbook, '-i', inventory, '--check', '-k'], undefined, 'wrong\n');
  assert.equal(refused.report.hosts[0].status, 'unreachable');
  assert.match(refused.report.hosts[0].error, /authentication failed .*password/);
});

test('ansible_ssh_pass logs in where keys are refused', async () => {
  const inventory = inventoryFor(passwordOnly, `      ansible_ssh_pass: '${passwordOnly.password}'\n      ansible_become_password: '${passwordOnly.password}'\n`, false);
  const apply = await run(playbookFor(`test_file: {path: ${join(work, 'by-password.conf')}, content: "p\\n"}`), inventory, 'apply');
  assert.equal(apply.hosts[0]!.status, 'changed', apply.hosts[0]!.error);
});
