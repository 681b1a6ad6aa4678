/**
 * The engine against a real OpenSSH sshd on 127.0.0.1: become through real sudo,
 * one exec per phase, timeouts, a connection cut mid-apply, host key refusal.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync, existsSync, statSync, chmodSync, readdirSync, unlinkSync } from 'node:fs';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sshInventory, startSshd, type SshdInstance } from '../helpers/sshd.js';
import { TEST_MODULES } from '../helpers/file-module.js';
import { loadInventory } from '../../src/config/inventory.js';
import { loadPlaybook } from '../../src/config/playbook.js';
import { runPlaybook, type RunOptions } from '../../src/engine/runner.js';
import { MAX_OUTPUT_BYTES } from '../../src/transport/output.js';
import { defineModule, type Module } from '../../src/kit/module.js';
import { catFileProbe, parseFileBlock } from '../../src/kit/remote-lib.js';
import { sh } from '../../src/kit/shell.js';

const work = mkdtempSync(join(tmpdir(), 'kvmconf-engine-'));
chmodSync(work, 0o700); // only root (through sudo) can write here
let sudoOk: SshdInstance;
let sudoPassword: SshdInstance;

before(async () => {
  sudoOk = await startSshd({ sudo: 'nopasswd' });
  sudoPassword = await startSshd({ sudo: 'password' });
});
after(async () => {
  await sudoOk?.stop();
  await sudoPassword?.stop();
});

const inventoryFor = (name: string, server: SshdInstance, knownHosts?: string): string => sshInventory(work, server, { name, ...(knownHosts !== undefined && { knownHosts }) });

function playbookFor(task: string): string {
  const file = join(mkdtempSync(join(work, 'pb-')), 'site.yaml');
  writeFileSync(file, `- hosts: all\n  become: true\n  tasks:\n    - ${task}\n`);
  return file;
}

function options(mode: 'check' | 'apply', extra: Partial<RunOptions> = {}): RunOptions {
  return {
    mode, forks: 4, commandTimeoutMs: 30_000, detailedExitCode: false, toolVersion: 'test',
    connection: { hostKeyChecking: 'strict', connectTimeoutMs: 10_000, keepaliveIntervalMs: 5_000 },
    ...extra,
  };
}

async function run(playbook: string, inventory: string, mode: 'check' | 'apply', extra: Partial<RunOptions> = {}) {
  return runPlaybook(loadPlaybook(playbook, TEST_MODULES), loadInventory(inventory), TEST_MODULES, options(mode, extra));
}

test('check, apply, re-apply through sudo: one exec per phase, nothing written by check', async () => {
  const target = join(work, 'owned.conf');
  const inventory = inventoryFor('hv1', sudoOk);
  const playbook = playbookFor(`test_file: {path: ${target}, content: "tuned\\n"}`);

  const check = await run(playbook, inventory, 'check');
  assert.equal(check.hosts[0]!.status, 'changed', check.hosts[0]!.error);
  assert.equal(check.exitCode, 2);
  assert.equal(check.hosts[0]!.execCount, 1, 'check is one gather');
  assert.equal(existsSync(target), false, 'check wrote nothing');

  const apply = await run(playbook, inventory, 'apply');
  assert.equal(apply.hosts[0]!.status, 'changed', apply.hosts[0]!.error);
  assert.equal(apply.hosts[0]!.execCount, 3, 'gather + apply + verify');
  assert.equal(readFileSync(target, 'utf8'), 'tuned\n');
  assert.equal(statSync(target).uid, 0, 'written as root through sudo');
  assert.deepEqual(
    check.hosts[0]!.tasks.flatMap((t) => t.changes.map((c) => [c.target, c.scope])),
    apply.hosts[0]!.tasks.flatMap((t) => t.changes.map((c) => [c.target, c.scope])),
    'check predicted exactly what apply did',
  );

  const again = await run(playbook, inventory, 'apply', { detailedExitCode: true });
  assert.equal(again.hosts[0]!.status, 'ok');
  assert.equal(again.exitCode, 0);
  assert.equal(again.hosts[0]!.execCount, 1, 'nothing to apply: gather only');
});

test('sudo that wants a password is a clear per-host error', async () => {
  const report = await run(playbookFor(`test_file: {path: ${join(work, 'never.conf')}, content: x}`), inventoryFor('hv2', sudoPassword), 'check');
  assert.equal(report.hosts[0]!.status, 'failed');
  assert.match(report.hosts[0]!.error!, /become failed: sudo: a password is required .*passwordless sudo/);
  assert.equal(report.exitCode, 1);
});

test('a command timeout fails the host, naming the timeout', async () => {
  const report = await run(playbookFor(`test_file: {path: ${join(work, 't.conf')}, content: x, probe_sleep: 5}`), inventoryFor('hv3', sudoOk), 'check', { commandTimeoutMs: 1000 });
  assert.equal(report.hosts[0]!.status, 'failed');
  assert.match(report.hosts[0]!.error!, /tim(e|ed) ?out/i);
});

test('a connection cut mid-apply reports the steps that ran; a re-run converges', async () => {
  const target = join(work, 'dropped.conf');
  const inventory = inventoryFor('hv4', sudoOk);
  const playbook = playbookFor(`test_file: {path: ${target}, content: "after drop\\n", slow: true}`);
  const watcher = setInterval(() => {
    if (existsSync(`${target}.started`)) {
      clearInterval(watcher);
      sudoOk.dropConnections();
    }
  }, 50);
  const cut = await run(playbook, inventory, 'apply');
  clearInterval(watcher);
  const host = cut.hosts[0]!;
  assert.equal(host.status, 'failed');
  assert.match(host.error!, /dropped|closed|lost/i);
  assert.deepEqual(host.steps!.map((s) => s.status), ['failed', 'not-run']);
  assert.equal(existsSync(target), false);

  const rerun = await run(playbookFor(`test_file: {path: ${target}, content: "after drop\\n"}`), inventory, 'apply');
  assert.equal(rerun.hosts[0]!.status, 'changed', rerun.hosts[0]!.error);
  assert.equal(readFileSync(target, 'utf8'), 'after drop\n');
});

/** True while a process runs with exactly these arguments (the probe's `sleep N` tells a phase of the run). */
function running(args: string[]): boolean {
  const cmdline = args.join('\0') + '\0';
  return readdirSync('/proc').some((pid) => {
    try {
      return /^\d+$/.test(pid) && readFileSync(`/proc/${pid}/cmdline`, 'latin1') === cmdline;
    } catch {
      return false; // gone in between
    }
  });
}

/** Calls `action` once `condition` holds, polling; returns a stop function. */
function when(condition: () => boolean, action: () => void): () => void {
  const timer = setInterval(() => {
    if (!condition()) return;
    clearInterval(timer);
    action();
  }, 20);
  return () => clearInterval(timer);
}

test('sudo refused to the apply after the gather ran: every change reported not run, nothing written', async () => {
  const target = join(work, 'revoked.conf');
  const sudoers = `/etc/sudoers.d/kvmconf-test-${sudoOk.user}`;
  const rule = readFileSync(sudoers, 'utf8');
  // The gather's probe sleeps 3 s as root: sudo has already let it in when the rule goes.
  const stop = when(() => running(['sleep', '3']), () => unlinkSync(sudoers));
  try {
    const report = await run(playbookFor(`test_file: {path: ${target}, content: "x\\n", probe_sleep: 3}`), inventoryFor('hv-revoked', sudoOk), 'apply');
    const host = report.hosts[0]!;
    assert.equal(host.status, 'failed');
    assert.match(host.error!, /^become failed: sudo: /);
    assert.deepEqual(host.tasks.flatMap((task) => task.changes.map((change) => change.status)), ['not-run'], 'an apply report never says planned');
    assert.deepEqual(host.steps!.map((step) => step.status), ['not-run']);
    assert.equal(existsSync(target), false);
  } finally {
    stop();
    writeFileSync(sudoers, rule, { mode: 0o440 });
  }
});

test('a connection cut during the verify: the changes stay reported applied, the host failed naming the verify', async () => {
  const target = join(work, 'verify-cut.conf');
  // The probe sleeps 3 s in the gather and again in the verify, which starts once the file is written.
  const stop = when(() => existsSync(target) && running(['sleep', '3']), () => sudoOk.dropConnections());
  try {
    const report = await run(playbookFor(`test_file: {path: ${target}, content: "x\\n", probe_sleep: 3}`), inventoryFor('hv-verify-cut', sudoOk), 'apply');
    const host = report.hosts[0]!;
    assert.equal(host.status, 'failed');
    assert.match(host.error!, /^every step ran, but the verify failed: .*(dropped|closed|lost)/i);
    assert.deepEqual(host.tasks.flatMap((task) => task.changes.map((change) => change.status)), ['applied']);
    assert.deepEqual(host.steps!.map((step) => step.status), ['ok']);
    assert.equal(readFileSync(target, 'utf8'), 'x\n');
  } finally {
    stop();
  }
});

test('an unknown host key makes the host unreachable and the others still run', async () => {
  const good = inventoryFor('good', sudoOk);
  const goodText = readFileSync(good, 'utf8');
  const bad = inventoryFor('bad', sudoOk, '');
  const both = join(mkdtempSync(join(work, 'inv-')), 'inventory.yaml');
  writeFileSync(both, goodText + readFileSync(bad, 'utf8').replace(/^all:\n  hosts:\n/, ''));
  const report = await run(playbookFor(`test_file: {path: ${join(work, 'k.conf')}, content: x}`), both, 'check');
  const byHost = Object.fromEntries(report.hosts.map((h) => [h.host, h]));
  assert.equal(byHost.good!.status, 'changed', byHost.good!.error);
  assert.equal(byHost.bad!.status, 'unreachable');
  assert.match(byHost.bad!.error!, /host key .* is not in/);
  assert.equal(report.exitCode, 1);
});

test('a host whose commands print without end fails at the output limit, naming itself and the limit; memory stays bounded', { timeout: 120_000 }, async () => {
  const flood = await startSshd({ config: ['ForceCommand exec yes'] });
  try {
    const before = process.memoryUsage().rss;
    const report = await run(playbookFor(`test_file: {path: ${join(work, 'flood.conf')}, content: x}`), inventoryFor('flood', flood), 'check');
    const host = report.hosts[0]!;
    assert.equal(host.status, 'failed', 'reached, then failed: not unreachable');
    assert.equal(host.error, `host flood sent more than ${MAX_OUTPUT_BYTES} bytes of output for one command; the command was stopped`);
    assert.equal(report.exitCode, 1);
    assert.ok(process.memoryUsage().rss - before < 4 * MAX_OUTPUT_BYTES, 'memory stays bounded');
  } finally {
    await flood.stop();
  }
});

test('two applies on one host at once: the second waits for the lock, then fails naming the first, and changes nothing', async () => {
  const lock = join(work, 'apply.lock');
  const inventory = sshInventory(work, sudoOk, { name: 'hv-lock', vars: `      kvmconf_lock_file: ${lock}\n      kvmconf_lock_wait: 3\n` });
  const first = join(work, 'first.conf');
  const second = join(work, 'second.conf');
  const holding = run(playbookFor(`test_file: {path: ${first}, content: "first\\n", slow: 8}`), inventory, 'apply');
  while (!existsSync(`${first}.started`)) await new Promise((resolve) => setTimeout(resolve, 50));
  const refused = await run(playbookFor(`test_file: {path: ${second}, content: "second\\n"}`), inventory, 'apply');
  assert.equal(refused.hosts[0]!.status, 'failed');
  assert.match(refused.hosts[0]!.error!, /another kvmconf run is applying to this host: \S+@\S+ \(kvmconf pid \d+, since [0-9T:.-]+Z\); nothing was changed \(waited 3 s\)/);
  assert.equal(existsSync(second), false, 'the second run wrote nothing');
  const held = await holding;
  assert.equal(held.hosts[0]!.status, 'changed', held.hosts[0]!.error);
  const after = await run(playbookFor(`test_file: {path: ${second}, content: "second\\n"}`), inventory, 'apply');
  assert.equal(after.hosts[0]!.status, 'changed', 'the lock is free once the first run ended');
});

/** A counter the "kernel" grants only up to `cap` of, read back like a hugepage pool, summed up for the report. */
const poolModule = defineModule<{ path: string; count: number; cap: number }, number>({
  name: 'test_pool',
  summary: 'a pool granted up to a cap (tests only)',
  schema: { type: 'object', additionalProperties: false, required: ['path', 'count', 'cap'], properties: { path: { type: 'string' }, count: { type: 'integer' }, cap: { type: 'integer' } } },
  probe: (params) => catFileProbe(params.path),
  parse: (output) => Number(parseFileBlock(output) ?? 0),
  diff: (params, actual) =>
    actual === params.count ? [] : [{
      module: 'test_pool', target: params.path, scope: 'runtime', before: String(actual), after: String(params.count),
      commands: [sh`echo ${Math.min(params.count, params.cap)} > ${params.path}`, sh`[ "$(cat ${params.path})" -eq ${params.count} ]`],
    }],
  reportSummary: (params, actual) => ({ hugepages: [{ node: 0, sizeKiB: 2048, requested: params.count, granted: actual }] }),
});

test('the report sums up each host from its latest gather: current in check mode, read back after apply, also after a failed step', async () => {
  const modules = new Map<string, Module>([...TEST_MODULES, ['test_pool', poolModule as Module]]);
  const path = join(work, 'pool');
  const inventory = inventoryFor('hv-pool', sudoOk);
  const runPool = (count: number, mode: 'check' | 'apply') =>
    runPlaybook(loadPlaybook(playbookFor(`test_pool: {path: ${path}, count: ${count}, cap: 3}`), modules), loadInventory(inventory), modules, options(mode));
  const granted = (report: Awaited<ReturnType<typeof runPool>>) => report.hosts[0]!.hugepages?.map((pool) => `${pool.granted} of ${pool.requested}`);

  assert.deepEqual(granted(await runPool(2, 'check')), ['0 of 2'], 'check: what the host has now');
  const applied = await runPool(2, 'apply');
  assert.equal(applied.hosts[0]!.status, 'changed', applied.hosts[0]!.error);
  assert.deepEqual(granted(applied), ['2 of 2'], 'read back by the verify gather');
  const short = await runPool(5, 'apply');
  assert.equal(short.hosts[0]!.status, 'failed');
  assert.equal(short.hosts[0]!.execCount, 3, 'gather, apply, read back');
  assert.deepEqual(granted(short), ['3 of 5'], 'what the host has after the failed step, not what was planned from');
});

test('an apply that waited for the lock plans again from what the holder left: the same playbook then has nothing to do', async () => {
  const lock = join(work, 'replan.lock');
  const inventory = sshInventory(work, sudoOk, { name: 'hv-replan', vars: `      kvmconf_lock_file: ${lock}\n      kvmconf_lock_wait: 30\n` });
  const target = join(work, 'replan.conf');
  const playbook = playbookFor(`test_file: {path: ${target}, content: "both\\n", slow: 3}`);
  const holding = run(playbook, inventory, 'apply');
  while (!existsSync(`${target}.started`)) await new Promise((resolve) => setTimeout(resolve, 50));
  // Planned while the first run holds the lock: the same write, from the same old state.
  const waiting = await run(playbook, inventory, 'apply');
  const held = await holding;
  assert.equal(held.hosts[0]!.status, 'changed', held.hosts[0]!.error);
  const host = waiting.hosts[0]!;
  assert.equal(host.status, 'ok', `${host.error}: a plan made before the holder's apply is never run`);
  assert.deepEqual(host.tasks.flatMap((task) => task.changes), []);
  assert.equal(host.execCount, 3, 'gather, the apply that waited and ran nothing, gather again');
  assert.equal(waiting.exitCode, 0);
  assert.equal(readFileSync(target, 'utf8'), 'both\n');
});

/** A TCP server on 127.0.0.1 that accepts, sends `greeting` (maybe nothing) and then never speaks again. */
async function stallingServer(greeting: string): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    if (greeting) socket.write(greeting);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const close = async (): Promise<void> => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  };
  return { port: (server.address() as AddressInfo).port, close };
}

test('hosts that stall the handshake, silent after accepting or after the banner, are unreachable within the connect timeout; the other host finishes', async () => {
  const silent = await stallingServer('');
  const banner = await stallingServer('SSH-2.0-OpenSSH_9.2p1 stalled\r\n');
  try {
    const stalled = (name: string, port: number): string => `    ${name}:\n      ansible_host: 127.0.0.1\n      ansible_port: ${port}\n`;
    const inventory = join(mkdtempSync(join(work, 'inv-')), 'inventory.yaml');
    writeFileSync(inventory, readFileSync(inventoryFor('answers', sudoOk), 'utf8') + stalled('silent', silent.port) + stalled('banner', banner.port));
    const connectTimeoutMs = 2_000;
    const started = Date.now();
    const report = await run(playbookFor(`test_file: {path: ${join(work, 'stall.conf')}, content: x}`), inventory, 'check', {
      connection: { hostKeyChecking: 'strict', connectTimeoutMs, keepaliveIntervalMs: 5_000 },
    });
    const byHost = Object.fromEntries(report.hosts.map((h) => [h.host, h]));
    assert.equal(byHost.answers!.status, 'changed', byHost.answers!.error);
    for (const [name, port] of [['silent', silent.port], ['banner', banner.port]] as const) {
      const host = byHost[name]!;
      assert.equal(host.status, 'unreachable', `${name}: ${host.error}`);
      assert.equal(host.error, `cannot connect to 127.0.0.1:${port}: timeout, no SSH handshake within ${connectTimeoutMs} ms`);
      assert.ok(host.durationMs < connectTimeoutMs + 2_000, `${name} gave up after ${host.durationMs} ms`);
    }
    assert.ok(Date.now() - started < connectTimeoutMs + 10_000, 'the run was not held up by the stalled hosts');
    assert.equal(report.exitCode, 1);
  } finally {
    await silent.close();
    await banner.close();
  }
});
