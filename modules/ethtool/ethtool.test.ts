import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ownedFiles } from '../../src/kit/claims.js';
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ethtool, parseChannels, renderRule, rulePath, type EthtoolParams, type EthtoolState } from './index.js';
import { REMOTE_LIB } from '../../src/kit/remote-lib.js';
import { compile } from '../../src/config/schema.js';
import type { PlanContext } from '../../src/kit/module.js';
import { changeCommands, diffOf } from '../../test/helpers/plan.js';
import { fixture as readFixture } from '../../test/helpers/paths.js';

const fixture = (name: string) => readFixture('ethtool', name);

const FOUR_OF_ONE = `Channel parameters for enp1s0:
Pre-set maximums:
RX:		0
TX:		0
Other:		0
Combined:	4
Current hardware settings:
RX:		0
TX:		0
Other:		0
Combined:	1
`;

const context = (warnings: string[] = []): PlanContext => ({ facts: {} as PlanContext['facts'], tasks: [], claims: [], warn: (w) => warnings.push(w) });
const params = (raw: Partial<EthtoolParams> & { interface: string; combined: number }) => ethtool.normalize!(raw);

function probeOutput(blocks: Record<string, string>, rule: string | null = null): string {
  const ifaces = Object.entries(blocks).map(([name, out]) => `@@iface ${name}\n${out}@@iface-end\n`).join('');
  return `ethtool=/usr/sbin/ethtool\n${ifaces}@@rule\n${rule === null ? '@@file-absent\n' : `@@file-present\n${rule}\n@@file-end\n`}`;
}

test('ethtool -l output: recorded virtio NIC, older ethtool with 0 for n/a, and no channel support', () => {
  assert.deepEqual(parseChannels(fixture('debian12-virtio-eth0-1-of-1.txt')), { maxCombined: 1, combined: 1 });
  assert.deepEqual(parseChannels(FOUR_OF_ONE), { maxCombined: 4, combined: 1 });
  assert.equal(parseChannels(fixture('debian12-lo-unsupported.txt')), null);
});

test('the probe runs for real and reads this machine', () => {
  const p = params({ interface: 'eth*', combined: 1 });
  const out = spawnSync('/bin/sh', ['-c', ethtool.probe(p)], { encoding: 'utf8' }).stdout;
  const state = ethtool.parse(out, p);
  assert.ok(Object.keys(state.interfaces).every((name) => name.startsWith('eth')));
  assert.equal(state.rule, null);
});

test('plan: runtime and persist changes, then no-op', () => {
  const p = params({ interface: 'enp1s0', combined: 4 });
  const state = ethtool.parse(probeOutput({ enp1s0: FOUR_OF_ONE }), p);
  const changes = diffOf(ethtool, p, state, context());
  assert.deepEqual(changes.map((c) => `${c.scope} ${c.target} ${c.before} -> ${c.after}`), [
    'runtime enp1s0:combined 1 -> 4',
    `persist ${rulePath('enp1s0')} null -> combined 4 on add`,
  ]);
  const done = ethtool.parse(probeOutput({ enp1s0: FOUR_OF_ONE.replace(/Combined:\t1/, 'Combined:\t4') }, renderRule('enp1s0', 4, '/usr/sbin/ethtool')), p);
  assert.deepEqual(diffOf(ethtool, p, done, context()), []);
});

test('above the pre-set maximum is an error naming the maximum; a NIC without channels is an error by name', () => {
  const p = params({ interface: 'enp1s0', combined: 8 });
  assert.throws(() => diffOf(ethtool, p, ethtool.parse(probeOutput({ enp1s0: FOUR_OF_ONE }), p), context()), /combined 8 is above the pre-set maximum 4/);
  const lo = params({ interface: 'lo', combined: 1 });
  assert.throws(() => diffOf(ethtool, lo, ethtool.parse(probeOutput({ lo: 'netlink error: Operation not supported\n' }), lo), context()), /lo: the driver has no combined channels/);
  const none = params({ interface: 'en*', combined: 1 });
  assert.throws(() => diffOf(ethtool, none, ethtool.parse(probeOutput({}), none), context()), /no network interface matches 'en\*'/);
});

test('the udev rule: exact content, file name for globs, sorted after 80-net-setup-link', () => {
  assert.equal(renderRule('en*', 4, '/usr/sbin/ethtool'), [
    '# Managed by kvmconf (ethtool); edits here are overwritten.',
    'ACTION=="add", SUBSYSTEM=="net", NAME=="en*", RUN+="/usr/sbin/ethtool -L $name combined 4"',
    'ACTION=="add", SUBSYSTEM=="net", NAME=="", KERNEL=="en*", RUN+="/usr/sbin/ethtool -L $name combined 4"',
    '',
  ].join('\n'));
  assert.equal(rulePath('en*'), '/etc/udev/rules.d/81-kvmconf-ethtool-enall.rules');
  assert.deepEqual(ownedFiles(ethtool.claims!(params({ interface: 'eth0', combined: 2 }))), ['/etc/udev/rules.d/81-kvmconf-ethtool-eth0.rules']);
  assert.deepEqual(ownedFiles(ethtool.claims!(params({ interface: 'eth0', combined: 2, persist: false }))), []);
});

function runWithFakeEthtool(commands: string[], grants: number): ReturnType<typeof spawnSync> {
  const dir = mkdtempSync(join(tmpdir(), 'kvmconf-ethtool-'));
  const fake = String.raw`
ethtool() {
  if [ "$1" = -L ]; then echo ${grants} > ${dir}/current; return 0; fi
  printf 'Channel parameters for %s:\nPre-set maximums:\nCombined:\t4\nCurrent hardware settings:\nCombined:\t%s\n' "$2" "$(cat ${dir}/current 2>/dev/null || echo 1)"
}`;
  return spawnSync('/bin/sh', ['-c', `${REMOTE_LIB}\n${fake}\n( set -e\n${commands.join('\n')}\n)`], { encoding: 'utf8' });
}

test('runtime commands set and read back; a device that grants less fails with both numbers', () => {
  const p = params({ interface: 'enp1s0', combined: 4 });
  const state: EthtoolState = ethtool.parse(probeOutput({ enp1s0: FOUR_OF_ONE }), p);
  const [change] = diffOf(ethtool, p, state, context()).filter((c) => c.scope === 'runtime');
  assert.equal(change!.target, 'enp1s0:combined');
  const commands = changeCommands(ethtool, change!);
  assert.equal(commands[0], 'ethtool -L enp1s0 combined 4');
  assert.equal(runWithFakeEthtool(commands, 4).status, 0);
  const short = runWithFakeEthtool(commands, 2);
  assert.notEqual(short.status, 0);
  assert.match(String(short.stderr), /enp1s0:combined: asked for 4 combined channels, the device has 2/);
});

test('persist command writes the owned rule atomically', () => {
  const p = params({ interface: 'enp1s0', combined: 4 });
  const state = ethtool.parse(probeOutput({ enp1s0: FOUR_OF_ONE }), p);
  const [change] = diffOf(ethtool, p, state, context()).filter((c) => c.scope === 'persist');
  const [command] = changeCommands(ethtool, change!);
  assert.match(command!, /^kc_write_file \/etc\/udev\/rules\.d\/81-kvmconf-ethtool-enp1s0\.rules 0644 absent '# Managed by kvmconf/);
});

test('schema rejects hostile interface names', () => {
  const validate = compile(ethtool.schema);
  for (const bad of ["eth0'", 'eth0;reboot', '$(reboot)', 'a\nb', '../x', 'eth0 eth1', 'averyveryverylongname0']) {
    assert.equal(validate({ interface: bad, combined: 2 }), false, bad);
  }
  assert.equal(validate({ interface: 'en*', combined: 2 }), true);
  assert.equal(validate({ interface: 'eth0', combined: 0 }), false);
});

test('fewer channels than the hypervisor queues (the virtio maximum) warn that queues stay idle', () => {
  const p = params({ interface: 'enp1s0', combined: 2 });
  const warnings: string[] = [];
  diffOf(ethtool, p, ethtool.parse(probeOutput({ enp1s0: FOUR_OF_ONE }), p), context(warnings));
  assert.deepEqual(warnings, ['enp1s0: 2 combined channels for the 4 queues the hypervisor gives this NIC; the other queues stay idle']);
});
