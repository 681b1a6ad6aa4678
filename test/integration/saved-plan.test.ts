/**
 * Saved plans against a real OpenSSH sshd: a plan made on two hosts, one host's owned
 * file changed behind kvmconf's back, then the plan applied: that host is refused with
 * nothing written, the other gets exactly the plan's commands, and the plan is stale after.
 * After a module reload that finishes a saved plan the host is only verified, never planned again.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSshd, type SshdInstance } from '../helpers/sshd.js';
import { TEST_MODULES } from '../helpers/file-module.js';
import { defineModule, type Module } from '../../src/kit/module.js';
import { catFileProbe, parseFileBlock, writeFileCommand } from '../../src/kit/remote-lib.js';
import { quote } from '../../src/kit/shell.js';
import { loadInventory } from '../../src/config/inventory.js';
import { loadPlaybook } from '../../src/config/playbook.js';
import { runPlaybook, type RunOptions } from '../../src/engine/runner.js';
import { connect } from '../../src/transport/connect.js';
import type { Transport } from '../../src/transport/types.js';
import { buildPlan, readPlan, savedHosts, writePlan, type PlanFile } from '../../src/plan/plan-file.js';

const work = mkdtempSync(join(tmpdir(), 'kvmconf-plan-'));
chmodSync(work, 0o700);
let sshd: SshdInstance;

before(async () => {
  sshd = await startSshd({ sudo: 'nopasswd' });
});
after(async () => {
  await sshd?.stop();
});

/** Two inventory hosts on the one sshd, each owning its own file. */
function inventory(files: Record<string, string>): string {
  writeFileSync(join(work, 'known_hosts'), sshd.hostKeyLine + '\n');
  const hosts = Object.entries(files).map(([name, file]) =>
    `    ${name}:\n      ansible_host: 127.0.0.1\n      ansible_port: ${sshd.port}\n      ansible_user: ${sshd.user}\n` +
      `      ansible_ssh_private_key_file: ${sshd.clientKeyFile}\n      kvmconf_known_hosts_file: ${join(work, 'known_hosts')}\n      owned: ${file}\n`);
  const path = join(work, 'inventory.yaml');
  writeFileSync(path, `all:\n  hosts:\n${hosts.join('')}`);
  return path;
}

/** Every script each host received, by host label, through the real transport. */
const scripts = new Map<string, string[]>();
async function recordingConnect(spec: Parameters<typeof connect>[0]): Promise<Transport> {
  const transport = await connect(spec);
  const sent = scripts.get(spec.name) ?? [];
  scripts.set(spec.name, sent);
  return new Proxy(transport, {
    get(target, property) {
      if (property === 'exec') return (command: string, options?: { stdin?: string }) => (sent.push(options?.stdin ?? ''), target.exec(command, options));
      const value = Reflect.get(target, property);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

function options(extra: Partial<RunOptions>): RunOptions {
  return {
    mode: 'apply', forks: 2, commandTimeoutMs: 30_000, detailedExitCode: false, toolVersion: 'test', connectTransport: recordingConnect,
    connection: { hostKeyChecking: 'strict', connectTimeoutMs: 10_000, keepaliveIntervalMs: 5_000 },
    ...extra,
  };
}

test('a plan refuses the host changed since, runs exactly its commands on the other, and is stale after', async () => {
  const files = { hva: join(work, 'a.conf'), hvb: join(work, 'b.conf') };
  for (const file of Object.values(files)) writeFileSync(file, 'before\n');
  const inventoryFile = inventory(files);
  const playbookFile = join(work, 'site.yaml');
  writeFileSync(playbookFile, '- hosts: all\n  become: true\n  tasks:\n    - test_file: {path: "{{ owned }}", content: "planned\\n"}\n');
  const playbook = loadPlaybook(playbookFile, TEST_MODULES);
  const run = (extra: Partial<RunOptions>) => runPlaybook(playbook, loadInventory(inventoryFile), TEST_MODULES, options(extra));

  const check = await run({ mode: 'check', fingerprint: true });
  assert.deepEqual(check.hosts.map((host) => [host.host, host.status]), [['hva', 'changed'], ['hvb', 'changed']], JSON.stringify(check.hosts.map((h) => h.error)));
  const planFile = join(work, 'plan.json');
  writePlan(planFile, buildPlan(check, playbook.plays, { toolVersion: 'test', playbook: playbookFile, inventory: [inventoryFile], extraVars: {} }));
  const plan: PlanFile = readPlan(planFile);
  assert.equal(plan.hosts[0]!.fingerprint!.files[files.hva], plan.hosts[1]!.fingerprint!.files[files.hvb], 'both planned from the same content');

  writeFileSync(files.hvb, 'edited by hand\n');
  scripts.clear();
  const apply = await run({ savedPlan: savedHosts(plan) });
  const [hva, hvb] = apply.hosts;
  assert.equal(hva!.status, 'changed', hva!.error);
  assert.equal(readFileSync(files.hva, 'utf8'), 'planned\n');
  const [, applyScript] = scripts.get('hva')!;
  const planned = plan.hosts[0]!.tasks.flatMap((task) => task.changes.map((change) => change.commands!));
  assert.ok(planned.length > 0);
  for (const commands of planned) assert.ok(applyScript!.includes(`set -e\n${commands.join('\n')}\n)`), 'each planned step ran with exactly its planned commands');

  assert.equal(hvb!.status, 'failed');
  assert.match(hvb!.error!, new RegExp(`state changed since the plan was made: task .test_file.: the state it was planned from changed; ${files.hvb} changed \\(sha256 [0-9a-f]{12} -> [0-9a-f]{12}\\); nothing was changed on this host`));
  assert.equal(hvb!.execCount, 1, 'gather only');
  assert.equal(readFileSync(files.hvb, 'utf8'), 'edited by hand\n');
  assert.equal(apply.exitCode, 1);

  const again = await run({ savedPlan: savedHosts(plan) });
  assert.deepEqual(again.hosts.map((host) => host.status), ['failed', 'failed']);
  assert.match(again.hosts[0]!.error!, /state changed since the plan was made/);
  assert.equal(again.hosts[0]!.execCount, 1, 'a stale plan writes nothing');
  assert.equal(readFileSync(files.hva, 'utf8'), 'planned\n');
});

/**
 * A file whose change waits for a module reload while `PATH.busy` exists, as vhost_net's
 * option waits for its guests to stop; without the marker it is written at once.
 */
const reloadModule = defineModule<{ path: string; content: string }, { busy: boolean; content: string | null }>({
  name: 'test_reload',
  summary: 'a file that waits for a module reload while it is busy (tests only)',
  schema: { type: 'object', additionalProperties: false, required: ['path', 'content'], properties: { path: { type: 'string', pattern: '^/[A-Za-z0-9_./-]+$' }, content: { type: 'string' } } },
  claims: (params) => [{ kind: 'file', path: params.path }],
  probe: (params) => `if [ -e ${quote(`${params.path}.busy`)} ]; then echo busy; else echo idle; fi\n${catFileProbe(params.path)}`,
  parse: (output) => ({ busy: output.startsWith('busy\n'), content: parseFileBlock(output.slice(output.indexOf('\n') + 1)) }),
  diff: (params, actual) => {
    if (actual.content === params.content) return [];
    const change = { module: 'test_reload', target: params.path, before: actual.content, after: params.content };
    return actual.busy
      ? [{ ...change, scope: 'pending', pendingOn: 'module-reload' }]
      : [{ ...change, scope: 'persist', commands: [writeFileCommand(params.path, params.content, actual.content, '0600')] }];
  },
});
const RELOAD_MODULES = new Map<string, Module>([...TEST_MODULES, ['test_reload', reloadModule as Module]]);

/** One host whose file waits for a reload; the play's guests command stands for stopping the guests (it runs `hook`). */
async function reloadPlan(name: string, hook: (file: string) => string, guests = (file: string) => `{policy: command, command: ${JSON.stringify(hook(file))}, uri: "nowhere:///none"}`) {
  const file = join(work, `${name}.conf`);
  writeFileSync(file, 'before');
  writeFileSync(`${file}.busy`, '');
  const inventoryFile = inventory({ [name]: file });
  const playbookFile = join(work, `${name}.yaml`);
  writeFileSync(playbookFile, `- hosts: all\n  become: true\n  reload: pending\n  guests: ${guests(file)}\n  tasks:\n    - test_reload: {path: "{{ owned }}", content: planned}\n`);
  const playbook = loadPlaybook(playbookFile, RELOAD_MODULES);
  const run = (extra: Partial<RunOptions>) => runPlaybook(playbook, loadInventory(inventoryFile), RELOAD_MODULES, options(extra));
  const check = await run({ mode: 'check', fingerprint: true });
  assert.equal(check.hosts[0]!.status, 'pending', check.hosts[0]!.error);
  const plan = buildPlan(check, playbook.plays, { toolVersion: 'test', playbook: playbookFile, inventory: [inventoryFile], extraVars: {} });
  scripts.clear();
  return { file, run, plan, check, sent: () => scripts.get(name) ?? [] };
}

test('a saved plan holds a reload that stopping guests cannot finish, before touching them; the check that made it says so', async () => {
  // A libvirt URI that reaches no daemon: the fresh run below must not shut down this machine's domains.
  const { file, run, plan, check, sent } = await reloadPlan('hvh', () => '', () => '{policy: shutdown, timeout: 5, uri: "nowhere:///none"}');
  assert.equal(check.hosts[0]!.finish?.status, 'held', 'the reviewed check predicts the hold');
  assert.match(check.hosts[0]!.finish!.reason!, /^a saved plan holds no module reload/);
  const apply = await run({ savedPlan: savedHosts(plan) });
  const host = apply.hosts[0]!;
  assert.deepEqual({ status: host.status, finish: host.finish?.status, reason: host.finish?.reason }, { status: 'pending', finish: 'held', reason: check.hosts[0]!.finish!.reason });
  assert.equal(apply.exitCode, 3);
  assert.ok(!sent().some((script) => /virsh/.test(script)), 'no domain was listed or shut down');
  assert.equal(readFileSync(file, 'utf8'), 'before');
  // Without a saved plan the same play goes on to the guests (to list them with virsh).
  const fresh = (await run({})).hosts[0]!;
  assert.doesNotMatch(fresh.finish?.reason ?? '', /saved plan/);
  assert.ok(sent().some((script) => /virsh/.test(script)), 'a fresh apply lists the domains');
});

test('after the reload that finishes a saved plan the host is only verified: what is left fails it, nothing outside the plan runs', async () => {
  const { file, run, plan, sent } = await reloadPlan('hvr', (path) => `rm -f ${path}.busy`);
  const apply = await run({ savedPlan: savedHosts(plan) });
  const host = apply.hosts[0]!;
  assert.equal(host.status, 'failed');
  assert.equal(host.finish?.action, 'reload');
  assert.match(host.error!, new RegExp(`^reload: the reload pass failed: the host still differs from the saved plan, which holds nothing more to run \\(nothing outside it was run\\): test_reload ${file} is before, wanted planned \\(persist\\)$`));
  assert.equal(readFileSync(file, 'utf8'), 'before', 'the write a fresh plan would make after the reload is not in the saved plan');
  assert.ok(sent().length >= 3 && !sent().some((script) => script.includes(`kc_write_file ${file}`)), 'no step beyond the plan was sent');
  assert.equal(apply.exitCode, 1);
});

test('a saved plan whose reload makes its pending change true finishes; a fresh apply plans again after the reload', async () => {
  const saved = await reloadPlan('hvs', (path) => `rm -f ${path}.busy && printf planned > ${path}`);
  const done = (await saved.run({ savedPlan: savedHosts(saved.plan) })).hosts[0]!;
  assert.equal(done.status, 'changed', done.error);
  assert.equal(done.finish?.status, 'done');
  assert.deepEqual(done.tasks[0]!.changes.map((change) => [change.target, change.status]), [[saved.file, 'applied']]);
  assert.ok(!saved.sent().some((script) => script.includes(`kc_write_file ${saved.file}`)));

  const fresh = await reloadPlan('hvt', (path) => `rm -f ${path}.busy`);
  const applied = (await fresh.run({})).hosts[0]!;
  assert.equal(applied.status, 'changed', applied.error);
  assert.equal(readFileSync(fresh.file, 'utf8'), 'planned', 'without a saved plan the pass after the reload plans and writes');
});
