import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { rpsXps, queueCommands, renderRule, rulePath, xpsShare } from './index.js';
import { REMOTE_LIB } from '../../src/kit/remote-lib.js';
import { fixture } from '../../test/helpers/paths.js';
import { normalize, plan, schemaAccepts } from '../../test/helpers/plan.js';

const SINGLE = fixture('rps_xps', 'devvm-debian12-eth0-single-queue.probe');
const MULTI = fixture('rps_xps', 'handwritten-rhel9-4-queues-8-cpus.probe');
const keys = (changes: Array<{ target: string; scope: string; before: string | null; after: string | null }>) => changes.map((c) => `${c.target} (${c.scope}) ${c.before} -> ${c.after}`);

test('parse: the real probe of a single-queue virtio NIC (xps_cpus refuses reads there)', () => {
  const state = rpsXps.parse(SINGLE, normalize(rpsXps, { interface: 'eth0', rps_cpus: [0, 1], rps_flow_cnt: 4096, sock_flow_entries: 32768 }));
  assert.equal(state.exists, true);
  assert.deepEqual(state.queues, { 'rx-0/rps_cpus': '0', 'rx-0/rps_flow_cnt': '0', 'tx-0/xps_cpus': null });
  assert.deepEqual(state.online, [0, 1]);
  assert.equal(state.rule, null);
  assert.equal(state.sysctl!.runtime['net.core.rps_sock_flow_entries'], '0');
});

test('plan: RPS on every rx queue, the flow tables, the sysctl, the udev rule and the sysctl.d file; every change carries its commands', () => {
  const { changes, warnings } = plan(rpsXps, { interface: 'eth0', rps_cpus: '0-1', rps_flow_cnt: 4096, sock_flow_entries: 32768 }, SINGLE);
  assert.deepEqual(warnings, []);
  assert.deepEqual(keys(changes), [
    '/sys/class/net/eth0/queues/rx-0/rps_cpus (runtime) (none) -> 0-1',
    '/sys/class/net/eth0/queues/rx-0/rps_flow_cnt (runtime) 0 -> 4096',
    'net.core.rps_sock_flow_entries (runtime) 0 -> 32768',
    '/etc/udev/rules.d/60-kvmconf-rps-xps-eth0.rules (persist) null -> rx-0/rps_cpus=3 rx-0/rps_flow_cnt=4096',
    '/etc/sysctl.d/90-kvmconf-rps.conf (persist) null -> net.core.rps_sock_flow_entries = 32768',
  ]);
  assert.ok(changes.every((c) => c.commands!.length > 0));
  assert.equal(changes[3]!.reason, 'udevd is not running here: the rule applies from the next boot');
  assert.equal(changes[3]!.diff!.after, renderRule('eth0', [{ attr: 'rx-0/rps_cpus', value: '3' }, { attr: 'rx-0/rps_flow_cnt', value: '4096' }]));
  assert.match(changes[3]!.diff!.after, /^ACTION=="add\|move", SUBSYSTEM=="net", KERNEL=="eth0", ATTR\{queues\/rx-0\/rps_cpus\}="3", ATTR\{queues\/rx-0\/rps_flow_cnt\}="4096"$/m);
  assert.throws(() => plan(rpsXps, { interface: 'eth0', xps_cpus: [0, 1] }, SINGLE), /xps_cpus: eth0 has 1 tx queue; the kernel keeps XPS for multi-queue devices/);
});

test('plan: XPS spreads the CPUs over the tx queues; queues already right change nothing', () => {
  assert.deepEqual(xpsShare([0, 1, 2, 3, 4, 5, 6, 7], 1, 4), [1, 5]);
  const { changes, warnings } = plan(rpsXps, { interface: 'ens1f0', xps_cpus: '0-7', rps_cpus: [4, 5, 6, 7] }, MULTI);
  assert.deepEqual(keys(changes).slice(0, 4), [0, 1, 2, 3].map((q) => `/sys/class/net/ens1f0/queues/rx-${q}/rps_cpus (runtime) (none) -> 4-7`));
  assert.equal(changes.length, 5, 'the four xps masks already read 11, 22, 44, 88: only the rule is new');
  assert.match(changes[4]!.diff!.after, /ATTR\{queues\/tx-0\/xps_cpus\}="11", ATTR\{queues\/tx-1\/xps_cpus\}="22", ATTR\{queues\/tx-2\/xps_cpus\}="44", ATTR\{queues\/tx-3\/xps_cpus\}="88"/);
  assert.match(warnings.map((w) => w.message).join('\n'), /after ethtool -L changes that, run kvmconf again/);
  const rule = changes[4]!.diff!.after;
  const converged = MULTI.replace(/rps_cpus 00/g, 'rps_cpus f0').replace('@@rule\n@@file-absent\n', `@@rule\n@@file-present\n${rule}\n@@file-end\n`);
  assert.deepEqual(plan(rpsXps, { interface: 'ens1f0', xps_cpus: '0-7', rps_cpus: [4, 5, 6, 7] }, converged).changes, []);
  assert.equal(rulePath('ens1f0'), '/etc/udev/rules.d/60-kvmconf-rps-xps-ens1f0.rules');
});

test('plan: all is every CPU online when kvmconf runs, for RPS and for XPS alike', () => {
  const explicit = plan(rpsXps, { interface: 'ens1f0', xps_cpus: '0-7', rps_cpus: '0-7' }, MULTI).changes;
  const all = plan(rpsXps, { interface: 'ens1f0', xps_cpus: 'all', rps_cpus: 'all' }, MULTI).changes;
  assert.deepEqual(keys(all), keys(explicit));
  assert.equal(all[0]!.after, '0-7');
  assert.equal(all.at(-1)!.diff!.after, explicit.at(-1)!.diff!.after, 'the rule holds the mask of the CPUs online now');
  assert.throws(() => plan(rpsXps, { interface: 'ens1f0', rps_cpus: 'all' }, MULTI.replace(/^online .*\n/m, '')), /all: the online CPUs could not be read/);
  assert.equal(schemaAccepts(rpsXps, { interface: 'eth0', rps_cpus: 'every' }), false);
});

test('input: sizes the kernel would round are refused; CPUs must be online; the interface must exist', () => {
  assert.throws(() => normalize(rpsXps, { interface: 'eth0', rps_flow_cnt: 1000 }), /1000 is not a power of two; the kernel would use 1024/);
  assert.throws(() => plan(rpsXps, { interface: 'eth0', rps_cpus: [3] }, SINGLE), /rps_cpus: CPU 3 is not online/);
  assert.throws(() => plan(rpsXps, { interface: 'eth1', rps_cpus: [0] }, SINGLE.replace('exists\n', '').replace(/^(q|unreadable) .*\n/gm, '')), /interface eth1 does not exist/);
  for (const bad of [{ interface: 'eth0' }, { interface: 'eth0;x', rps_cpus: [0] }, { interface: 'eth0', rps_cpus: '0-1;x' }, { interface: 'eth0', rps_flow_cnt: -1 }]) {
    assert.equal(schemaAccepts(rpsXps, bad), false, JSON.stringify(bad));
  }
});

test('shell: a mask is read back without commas and leading zeros; a different one fails the step', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvmconf-rps-'));
  const file = path.join(dir, 'rps_cpus');
  const run = (value: string) => spawnSync('sh', ['-c', `${REMOTE_LIB}\n${queueCommands(file, value, true).join('\n')}`], { encoding: 'utf8' });
  fs.writeFileSync(file, '');
  assert.equal(run('2,00000001').status, 0, 'a plain file reads back what was written');
  assert.equal(run('3').status, 0);
  const stuck = spawnSync('sh', ['-c', `${REMOTE_LIB}\n${queueCommands(file, '3', true).slice(1).join('\n')}`], { encoding: 'utf8', input: '' });
  assert.equal(stuck.status, 0);
  fs.writeFileSync(file, '00000000,00000001\n');
  const mismatch = spawnSync('sh', ['-c', `${REMOTE_LIB}\n${queueCommands(file, '3', true).slice(1).join('\n')}`], { encoding: 'utf8' });
  assert.equal(mismatch.status, 1);
  assert.match(mismatch.stderr, /asked for 3, the kernel has 1/);
  fs.rmSync(dir, { recursive: true });
});
