import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ownedFiles } from '../../src/kit/claims.js';
import { NUMA_BALANCING_FILE, numaBalancing, wantedMode } from './index.js';
import { parseFacts } from '../../src/engine/facts.js';
import { fixture } from '../../test/helpers/paths.js';
import { TWO_NODE_FACTS, normalize, plan, schemaAccepts } from '../../test/helpers/plan.js';

const ONE_NODE = parseFacts(fixture('hugepages', 'facts-debian12-one-node.txt'));
const REAL_OFF = fixture('numa_balancing', 'debian12-one-node-off.txt');
const HEADER = '# Managed by kvmconf (numa_balancing); edits here are overwritten.\n';

test('parse: real probe output of this host (kernel.numa_balancing 0, no owned file)', () => {
  const actual = numaBalancing.parse(REAL_OFF, normalize(numaBalancing, { enabled: false }));
  assert.equal(actual.runtime['kernel.numa_balancing'], '0');
  assert.equal(actual.file, null);
});

test('disabled on a host where it is off: only the owned file to write, and a one-node warning', () => {
  const { changes, warnings, commands } = plan(numaBalancing, { enabled: false }, REAL_OFF, ONE_NODE);
  assert.deepEqual(changes.map((c) => [c.target, c.scope, c.before, c.after]), [[NUMA_BALANCING_FILE, 'persist', null, 'kernel.numa_balancing = 0']]);
  assert.equal(changes[0]!.diff!.after, `${HEADER}kernel.numa_balancing = 0\n`);
  assert.deepEqual(commands(changes[0]!), [`kc_write_file ${NUMA_BALANCING_FILE} 0644 absent '${HEADER}kernel.numa_balancing = 0\n'`]);
  assert.deepEqual(warnings.map((w) => w.message), ['kernel.numa_balancing: this host has 1 NUMA node, so automatic NUMA balancing has no effect here']);
  assert.deepEqual(plan(numaBalancing, { enabled: false }, REAL_OFF, TWO_NODE_FACTS).warnings, [], 'two nodes: no warning');
});

test('enabled: runtime write with read-back, then the file; persist: false touches no file', () => {
  const { changes, commands } = plan(numaBalancing, { enabled: true }, REAL_OFF, TWO_NODE_FACTS);
  assert.deepEqual(changes.map((c) => [c.target, c.scope, c.before, c.after]), [
    ['kernel.numa_balancing', 'runtime', '0', '1'],
    [NUMA_BALANCING_FILE, 'persist', null, 'kernel.numa_balancing = 1'],
  ]);
  assert.deepEqual(commands(changes[0]!), ['kc_set_value /proc/sys/kernel/numa_balancing 1']);
  assert.deepEqual(plan(numaBalancing, { enabled: true, persist: false }, REAL_OFF, TWO_NODE_FACTS).changes.map((c) => c.scope), ['runtime']);
  assert.deepEqual(ownedFiles(numaBalancing.claims!(normalize(numaBalancing, { enabled: true, persist: false }))), []);
  assert.deepEqual(ownedFiles(numaBalancing.claims!(normalize(numaBalancing, { enabled: true }))), [NUMA_BALANCING_FILE]);
});

test('memory tiering modes 2 and 3 are parsed and kept: only the normal-balancing bit moves', () => {
  assert.deepEqual([0, 1, 2, 3].map((mode) => [wantedMode(mode, true), wantedMode(mode, false)]), [[1, 0], [1, 0], [3, 2], [3, 2]]);
  const two = plan(numaBalancing, { enabled: true, persist: false }, fixture('numa_balancing', 'kernel-6.x-memory-tiering-mode-2.txt'), TWO_NODE_FACTS);
  assert.deepEqual(two.changes.map((c) => [c.before, c.after, c.reason]), [['2', '3', 'the memory tiering mode (value 2) is on and is kept']]);
  assert.deepEqual(plan(numaBalancing, { enabled: false }, fixture('numa_balancing', 'kernel-6.x-memory-tiering-mode-2.txt'), TWO_NODE_FACTS).changes.map((c) => c.after), ['kernel.numa_balancing = 2']);
  const three = fixture('numa_balancing', 'kernel-6.x-tiering-and-normal-mode-3-owned-file.txt');
  assert.deepEqual(plan(numaBalancing, { enabled: true }, three, TWO_NODE_FACTS).changes, [], 'no-op: 3 already balances, file says 3');
  assert.deepEqual(plan(numaBalancing, { enabled: false }, three, TWO_NODE_FACTS).changes.map((c) => [c.scope, c.before, c.after]), [
    ['runtime', '3', '2'],
    ['persist', 'kernel.numa_balancing = 3', 'kernel.numa_balancing = 2'],
  ]);
  assert.throws(() => plan(numaBalancing, { enabled: true }, 'runtime kernel.numa_balancing on\n@@owned\n@@file-absent\n', TWO_NODE_FACTS), /reads 'on', which is not a mode number/);
});

test('a kernel without NUMA balancing fails clearly', () => {
  assert.throws(() => plan(numaBalancing, { enabled: false }, fixture('numa_balancing', 'kernel-without-numa-balancing.txt'), TWO_NODE_FACTS), /kernel.numa_balancing is missing .*built without automatic NUMA balancing \(CONFIG_NUMA_BALANCING\)/);
});

test('a later sysctl file that overrides the owned one is reported', () => {
  const { changes, warnings } = plan(numaBalancing, { enabled: false }, fixture('numa_balancing', 'rhel9-two-nodes-on-owned-file-overridden-by-99-sysctl.txt'), TWO_NODE_FACTS);
  assert.deepEqual(changes.map((c) => [c.scope, c.before, c.after]), [['runtime', '1', '0']]);
  assert.deepEqual(warnings.map((w) => w.message), [
    'kernel.numa_balancing: /etc/sysctl.d/99-sysctl.conf is loaded after /etc/sysctl.d/90-kvmconf-numa-balancing.conf and sets 1, so 0 is lost at the next boot; remove it there or rename /etc/sysctl.d/90-kvmconf-numa-balancing.conf to sort later',
  ]);
});

test('schema: hostile and malformed values are rejected', () => {
  for (const enabled of ['1; reboot', '$(reboot)', 'true', 1, 'yes\n', null]) assert.equal(schemaAccepts(numaBalancing, { enabled }), false, JSON.stringify(enabled));
  assert.equal(schemaAccepts(numaBalancing, { enabled: true, file: '/etc/sysctl.d/x.conf' }), false);
  assert.equal(schemaAccepts(numaBalancing, { persist: true }), false);
  assert.equal(schemaAccepts(numaBalancing, { enabled: false, persist: false }), true);
});
