import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ownedFiles } from '../../src/kit/claims.js';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KSM_TMPFILES, ksm, mergeAcrossNodesCommands, runCommand } from './index.js';
import { parseFacts } from '../../src/engine/facts.js';
import { buildApplyScript, newMark, parseApplyOutput } from '../../src/engine/script.js';
import { fixture } from '../../test/helpers/paths.js';
import { TWO_NODE_FACTS, normalize, plan, schemaAccepts } from '../../test/helpers/plan.js';

const ONE_NODE = parseFacts(fixture('hugepages', 'facts-debian12-one-node.txt'));
const STOPPED = fixture('ksm', 'debian12-stopped-no-systemd.txt');
const SHARED = fixture('ksm', 'debian12-running-pages-shared.txt');
const RHEL = fixture('ksm', 'rhel9-two-nodes-ksmtuned-running-pages-shared.txt');
const NO_UNITS = fixture('ksm', 'debian12-systemd-no-ksm-units.txt');
const CONVERGED = fixture('ksm', 'two-nodes-converged-owned-tmpfiles.txt');

function applySteps(steps: string[][]) {
  const mark = newMark();
  const labelled = steps.map((commands, index) => ({ label: `step ${index}`, commands }));
  const result = spawnSync('/bin/sh', ['-s'], { input: buildApplyScript(labelled, mark), encoding: 'utf8' });
  return parseApplyOutput(result.stdout, mark, labelled).outcomes;
}

test('parse: real probe output of this host, stopped and with pages shared (no systemd here)', () => {
  const stopped = ksm.parse(STOPPED, normalize(ksm, { run: 'stop' }));
  assert.equal(stopped.present, true);
  assert.deepEqual([stopped.values.run, stopped.values.merge_across_nodes, stopped.values.pages_shared], ['0', '1', '0']);
  assert.deepEqual(stopped.units, { systemd: false, units: {} });
  assert.equal(stopped.tmpfiles, null);
  const shared = ksm.parse(SHARED, normalize(ksm, { run: 'stop' }));
  assert.deepEqual([shared.values.run, shared.values.pages_shared, shared.values.pages_sharing, shared.values.full_scans], ['1', '714', '2268', '1']);
});

test('no-op: KSM stopped, merge_across_nodes 0, units stopped and disabled, owned file in place', () => {
  const { changes, warnings } = plan(ksm, { run: 'stop', merge_across_nodes: 0 }, CONVERGED, TWO_NODE_FACTS);
  assert.deepEqual(changes, []);
  assert.deepEqual(warnings, []);
  assert.deepEqual(plan(ksm, { run: 'stop', merge_across_nodes: false }, CONVERGED, TWO_NODE_FACTS).changes, [], 'false is 0');
});

test('RHEL with ksmtuned running and pages shared: units stopped and disabled, unmerge-ordered merge_across_nodes, run, owned file', () => {
  const { changes, warnings, commands } = plan(ksm, { run: 'stop', merge_across_nodes: false }, RHEL, TWO_NODE_FACTS);
  assert.deepEqual(changes.map((c) => [c.target, c.scope, c.before, c.after]), [
    ['ksm.service', 'runtime', 'started', 'stopped'],
    ['ksm.service', 'persist', 'enabled', 'disabled'],
    ['ksmtuned.service', 'runtime', 'started', 'stopped'],
    ['ksmtuned.service', 'persist', 'enabled', 'disabled'],
    ['/sys/kernel/mm/ksm/merge_across_nodes', 'runtime', '1', '0'],
    ['/sys/kernel/mm/ksm/run', 'runtime', 'run', 'stop'],
    [KSM_TMPFILES, 'persist', null, 'merge_across_nodes=0; run=0'],
  ]);
  assert.deepEqual(warnings, [], 'no "pages stay merged" warning: the merge_across_nodes change unmerges them');
  assert.equal(changes[4]!.reason, 'every shared page is unmerged first (run=2; 20480 pages shared now), then run is set to stop (0)');
  assert.deepEqual(commands(changes[0]!), [
    'systemctl stop ksm.service',
    'kc_got=$(systemctl is-active ksm.service) || true',
    `[ "$kc_got" = inactive ] || [ "$kc_got" = failed ] || kc_fail 'ksm.service: asked stopped, systemd reports' "$kc_got"`,
  ]);
  assert.deepEqual(commands(changes[3]!), [
    'systemctl disable ksmtuned.service',
    'kc_got=$(systemctl is-enabled ksmtuned.service) || true',
    `[ "$kc_got" != enabled ] && [ "$kc_got" != enabled-runtime ] || kc_fail 'ksmtuned.service: asked disabled, systemd reports' "$kc_got"`,
  ]);
  assert.deepEqual(commands(changes[4]!), [
    'kc_run=$(cat /sys/kernel/mm/ksm/run)',
    'kc_write_value /sys/kernel/mm/ksm/run 2',
    `kc_i=0; while [ "$(cat /sys/kernel/mm/ksm/pages_shared)" != 0 ]; do if [ "$kc_i" -ge 60 ]; then kc_write_value /sys/kernel/mm/ksm/run "$kc_run"; ` +
      `kc_fail 'KSM still shares' "$(cat /sys/kernel/mm/ksm/pages_shared)" 'pages after 60 s of unmerging (run=2), so merge_across_nodes cannot change; run set back to' "$kc_run"; fi; sleep 1; kc_i=$((kc_i + 1)); done`,
    `if ! (kc_set_value /sys/kernel/mm/ksm/merge_across_nodes 0); then kc_write_value /sys/kernel/mm/ksm/run "$kc_run"; kc_fail 'merge_across_nodes was not changed; run set back to' "$kc_run"; fi`,
    'kc_set_value /sys/kernel/mm/ksm/run 0',
  ]);
  assert.deepEqual(commands(changes[5]!), ['kc_set_value /sys/kernel/mm/ksm/run 0']);
  assert.equal(
    changes[6]!.diff!.after,
    '# Managed by kvmconf (ksm); written to sysfs at every boot by systemd-tmpfiles.\nw /sys/kernel/mm/ksm/merge_across_nodes - - - - 0\nw /sys/kernel/mm/ksm/run - - - - 0\n',
    'merge_across_nodes first, run last',
  );
  assert.match(commands(changes[6]!)[0]!, /^kc_write_file \/etc\/tmpfiles.d\/kvmconf-ksm.conf 0644 absent /);
});

test('merge_across_nodes alone sets run back to what it was; with run given, to the wanted value', () => {
  assert.equal(mergeAcrossNodesCommands('1', null).at(-1), 'kc_set_value /sys/kernel/mm/ksm/run "$kc_run"');
  assert.equal(mergeAcrossNodesCommands('0', '1', '/tmp/x', 5).at(-1), 'kc_set_value /tmp/x/sys/kernel/mm/ksm/run 1');
  const { changes, commands } = plan(ksm, { merge_across_nodes: 0, persist: false }, SHARED, TWO_NODE_FACTS);
  assert.deepEqual(changes.map((c) => [c.target, c.before, c.after]), [['/sys/kernel/mm/ksm/merge_across_nodes', '1', '0']]);
  assert.match(changes[0]!.reason!, /then run is set to its current value \(1\)/);
  assert.equal(commands(changes[0]!).at(-1), 'kc_set_value /sys/kernel/mm/ksm/run "$kc_run"');
});

test('run: stop with pages shared warns that they stay merged; unmerge writes 2; stop is met by 2', () => {
  const stop = plan(ksm, { run: 'stop' }, SHARED, ONE_NODE);
  assert.deepEqual(stop.changes.map((c) => [c.target, c.scope, c.before, c.after]), [
    ['/sys/kernel/mm/ksm/run', 'runtime', 'run', 'stop'],
    [KSM_TMPFILES, 'persist', null, 'run=0'],
  ]);
  assert.deepEqual(stop.warnings.map((w) => w.message), ['run: stop leaves 714 pages merged (2268 sharing them) until run: unmerge; stopping KSM or its services does not unshare them']);
  const unmerge = plan(ksm, { run: 'unmerge', persist: false }, SHARED, ONE_NODE);
  assert.deepEqual(unmerge.changes.map((c) => [c.target, c.before, c.after]), [['/sys/kernel/mm/ksm/run', 'run', 'unmerge']]);
  assert.deepEqual(unmerge.commands(unmerge.changes[0]!), ['kc_set_value /sys/kernel/mm/ksm/run 2']);
  assert.deepEqual(unmerge.warnings, []);
  const unmerged = STOPPED.replace('ksm run 0', 'ksm run 2');
  assert.deepEqual(plan(ksm, { run: 'stop', persist: false }, unmerged, ONE_NODE).changes, []);
  assert.deepEqual(plan(ksm, { run: 'unmerge', persist: false }, STOPPED, ONE_NODE).changes.map((c) => [c.before, c.after]), [['stop', 'unmerge']]);
  assert.equal(runCommand('run', '/tmp/fake'), 'kc_set_value /tmp/fake/sys/kernel/mm/ksm/run 1');
});

test('Debian with systemd but no KSM units: each missing unit is a warning, not a failure', () => {
  const { changes, warnings } = plan(ksm, { run: 'stop' }, NO_UNITS, TWO_NODE_FACTS);
  assert.deepEqual(changes.map((c) => c.target), [KSM_TMPFILES]);
  assert.deepEqual(warnings.map((w) => w.message), [
    'ksm.service does not exist on this host; nothing to do for it (Debian and Ubuntu ship no KSM units)',
    'ksmtuned.service does not exist on this host; nothing to do for it (Debian and Ubuntu ship no KSM units)',
  ]);
});

test('services: started enables and starts the units and reads them back; unmanaged leaves them', () => {
  const { changes, commands } = plan(ksm, { run: 'run', services: 'started', persist: false }, CONVERGED, TWO_NODE_FACTS);
  assert.deepEqual(changes.map((c) => [c.target, c.scope, c.before, c.after]), [
    ['ksm.service', 'runtime', 'stopped', 'started'],
    ['ksm.service', 'persist', 'disabled', 'enabled'],
    ['ksmtuned.service', 'runtime', 'stopped', 'started'],
    ['ksmtuned.service', 'persist', 'disabled', 'enabled'],
    ['/sys/kernel/mm/ksm/run', 'runtime', 'stop', 'run'],
  ]);
  assert.deepEqual(commands(changes[1]!), [
    'systemctl enable ksm.service',
    'kc_got=$(systemctl is-enabled ksm.service) || true',
    `[ "$kc_got" = enabled ] || kc_fail 'ksm.service: asked enabled, systemd reports' "$kc_got"`,
  ]);
  assert.deepEqual(plan(ksm, { run: 'run', persist: false }, RHEL, TWO_NODE_FACTS).changes, [], 'run: run leaves the units alone by default');
});

test('a kernel without KSM, or without NUMA (no merge_across_nodes), fails clearly', () => {
  assert.throws(() => plan(ksm, { run: 'stop' }, fixture('ksm', 'kernel-without-ksm.txt'), ONE_NODE), /KSM is not built into this kernel \(no \/sys\/kernel\/mm\/ksm; CONFIG_KSM is off\)/);
  const noNuma = fixture('ksm', 'kernel-without-numa-no-merge-across-nodes.txt');
  assert.throws(() => plan(ksm, { merge_across_nodes: 0 }, noNuma, ONE_NODE), /merge_across_nodes is missing: this kernel is built without NUMA support/);
  assert.deepEqual(plan(ksm, { run: 'stop', persist: false }, noNuma, ONE_NODE).changes, []);
});

test('rules: one NUMA node makes merge_across_nodes a no-op warning; ksmtuned fights run: stop; no systemd', () => {
  const rules = (raw: unknown, facts = TWO_NODE_FACTS) => ksm.rules!(normalize(ksm, raw), facts).map((d) => `${d.severity}: ${d.message}`);
  assert.deepEqual(rules({ merge_across_nodes: 0, services: 'unmanaged' }), []);
  assert.deepEqual(rules({ merge_across_nodes: 0, services: 'unmanaged' }, ONE_NODE), ['warning: merge_across_nodes: this host has 1 NUMA node, so the setting has no effect here']);
  assert.deepEqual(rules({ run: 'unmerge', services: 'started' }), ['error: services: started with run: unmerge: ksmtuned turns KSM back on by itself; use services: stopped']);
  assert.deepEqual(rules({ run: 'run', services: 'started' }), ['warning: ksmtuned starts and stops KSM by itself depending on free memory, so run may read 0 later and show as drift']);
  assert.deepEqual(rules({ run: 'stop' }, ONE_NODE), ['warning: this host does not run systemd: the ksm and ksmtuned services are not managed']);
});

test('normalize: services default to stopped only when KSM is stopped; ownedFiles follow persist', () => {
  assert.deepEqual(normalize(ksm, { run: 'unmerge' }), { run: 'unmerge', services: 'stopped', persist: true });
  assert.deepEqual(normalize(ksm, { run: 'run', merge_across_nodes: true }), { run: 'run', merge_across_nodes: '1', services: 'unmanaged', persist: true });
  assert.deepEqual(ownedFiles(ksm.claims!(normalize(ksm, { run: 'stop' }))), [KSM_TMPFILES]);
  assert.deepEqual(ownedFiles(ksm.claims!(normalize(ksm, { run: 'stop', persist: false }))), []);
});

test('schema: hostile and malformed values are rejected', () => {
  for (const run of ['stop; reboot', '$(reboot)', '0', 0, 'stop\n', "'stop'"]) assert.equal(schemaAccepts(ksm, { run }), false, JSON.stringify(run));
  for (const merge of [2, '0', 'false', -1, '0; rm -rf /']) assert.equal(schemaAccepts(ksm, { merge_across_nodes: merge }), false, JSON.stringify(merge));
  assert.equal(schemaAccepts(ksm, { services: 'disabled' }), false);
  assert.equal(schemaAccepts(ksm, { run: 'stop', sleep_millisecs: 10 }), false);
  assert.equal(schemaAccepts(ksm, { persist: true }), false, 'nothing to do');
  assert.equal(schemaAccepts(ksm, { run: 'stop', merge_across_nodes: 0, services: 'stopped', persist: false }), true);
});

// ---------------------------------------------------------------- the commands' shell logic

/**
 * A fake /sys/kernel/mm/ksm driven by a "kernel" loop: run=2 unshares every page,
 * run=1 shares them again, and a merge_across_nodes change seen while pages are shared
 * is recorded as the EBUSY the real kernel would answer.
 */
const FAKE_KSM = String.raw`
last_m=$(cat merge_across_nodes)
while [ ! -e stop ]; do
  r=$(cat run); s=$(cat pages_shared); m=$(cat merge_across_nodes)
  if [ "$m" != "$last_m" ]; then
    [ "$s" = 0 ] || echo "EBUSY: merge_across_nodes written while $s pages were shared" >> violations
    last_m=$m
  fi
  if [ "$r" = 2 ] && [ "$s" != 0 ]; then echo 0 > pages_shared; fi
  # merging resumes only while run is 1: a run=2 written since r was read undoes it, as the kernel's lock would
  if [ "$r" = 1 ] && [ "$s" = 0 ]; then echo 714 > pages_shared; [ "$(cat run)" = 1 ] || echo 0 > pages_shared; fi
  sleep 0.02
done`;

function fakeKsm(run: string, shared: string) {
  const root = mkdtempSync(join(tmpdir(), 'kvmconf-ksm-'));
  const dir = join(root, 'sys/kernel/mm/ksm');
  mkdirSync(dir, { recursive: true });
  for (const [name, value] of [['run', run], ['merge_across_nodes', '1'], ['pages_shared', shared]] as Array<[string, string]>) writeFileSync(join(dir, name), `${value}\n`);
  const read = (name: string) => readFileSync(join(dir, name), 'utf8').trim();
  const violations = () => (existsSync(join(dir, 'violations')) ? readFileSync(join(dir, 'violations'), 'utf8') : '');
  return { root, dir, read, violations };
}

async function withKernel<T>(dir: string, body: () => T): Promise<T> {
  rmSync(join(dir, 'stop'), { force: true });
  const kernel = spawn('/bin/sh', ['-c', FAKE_KSM], { cwd: dir, stdio: 'ignore' });
  try {
    return body();
  } finally {
    writeFileSync(join(dir, 'stop'), '');
    await new Promise((resolve) => kernel.once('exit', resolve));
  }
}

test('shell: merge_across_nodes is written only after unmerging brings pages_shared to 0, then run is set back (fake sysfs)', async () => {
  const fake = fakeKsm('1', '714');
  try {
    const [outcome] = await withKernel(fake.dir, () => applySteps([mergeAcrossNodesCommands('0', null, fake.root)]));
    assert.equal(outcome!.status, 'ok', outcome!.output);
    assert.equal(fake.read('merge_across_nodes'), '0');
    assert.equal(fake.read('run'), '1', 'run set back to its previous value');
    assert.equal(fake.violations(), '');

    const [again] = await withKernel(fake.dir, () => applySteps([mergeAcrossNodesCommands('1', '0', fake.root)]));
    assert.equal(again!.status, 'ok', again!.output);
    assert.deepEqual([fake.read('merge_across_nodes'), fake.read('run')], ['1', '0'], 'run set to the wanted value');
    assert.equal(fake.violations(), '');
  } finally {
    rmSync(fake.root, { recursive: true, force: true });
  }
});

test('shell: the fake kernel catches the wrong order (write first, unmerge after), so the test above can fail', async () => {
  const fake = fakeKsm('1', '714');
  try {
    const naive = [`kc_set_value ${fake.dir}/merge_across_nodes 0`, 'sleep 0.2', `kc_set_value ${fake.dir}/run 2`, 'sleep 0.2'];
    await withKernel(fake.dir, () => applySteps([naive]));
    assert.match(fake.violations(), /EBUSY: merge_across_nodes written while 714 pages were shared/);
  } finally {
    rmSync(fake.root, { recursive: true, force: true });
  }
});

test('shell: pages that never unmerge fail the step with the count after the bound; nothing written, run set back', () => {
  const fake = fakeKsm('1', '714');
  try {
    const [outcome] = applySteps([mergeAcrossNodesCommands('0', null, fake.root, 1)]);
    assert.equal(outcome!.status, 'failed');
    assert.match(outcome!.output, /kvmconf: KSM still shares 714 pages after 1 s of unmerging \(run=2\), so merge_across_nodes cannot change; run set back to 1/);
    assert.deepEqual([fake.read('merge_across_nodes'), fake.read('run')], ['1', '1']);
  } finally {
    rmSync(fake.root, { recursive: true, force: true });
  }
});

test('shell: a refused merge_across_nodes write sets run back before failing', () => {
  const fake = fakeKsm('1', '0');
  try {
    rmSync(join(fake.dir, 'merge_across_nodes'));
    mkdirSync(join(fake.dir, 'merge_across_nodes')); // any write fails, as EBUSY would
    const [outcome] = applySteps([mergeAcrossNodesCommands('0', '0', fake.root)]);
    assert.equal(outcome!.status, 'failed');
    assert.match(outcome!.output, /kvmconf: the kernel refused '0' for .*merge_across_nodes/);
    assert.match(outcome!.output, /kvmconf: merge_across_nodes was not changed; run set back to 1/);
    assert.equal(fake.read('run'), '1');
  } finally {
    rmSync(fake.root, { recursive: true, force: true });
  }
});
