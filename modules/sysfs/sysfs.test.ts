import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { sysfs, readValue } from './index.js';
import { REMOTE_LIB } from '../../src/kit/remote-lib.js';
import { fixture } from '../../test/helpers/paths.js';
import { plan, schemaAccepts } from '../../test/helpers/plan.js';

const PROBE = fixture('sysfs', 'devvm-debian12-thp-ksm.probe');
const WANT = {
  '/sys/kernel/mm/transparent_hugepage/enabled': 'never', '/sys/kernel/mm/ksm/sleep_millisecs': 20,
  '/sys/block/vda/queue/scheduler': 'none', '/sys/block/vda/queue/read_ahead_kb': 256,
};

test('parse: bracket choice files read by their selected word (real probe output)', () => {
  const state = sysfs.parse(PROBE, sysfs.normalize!({ settings: WANT }));
  assert.deepEqual(state.values['/sys/kernel/mm/transparent_hugepage/enabled'], { current: 'madvise', choice: true, choices: ['always', 'madvise', 'never'] });
  assert.deepEqual(state.values['/sys/block/vda/queue/scheduler'], { current: 'mq-deadline', choice: true, choices: ['none', 'mq-deadline', 'kyber', 'bfq'] });
  assert.deepEqual(state.values['/sys/kernel/mm/ksm/sleep_millisecs'], { current: '10', choice: false, choices: [] });
  assert.equal(state.values['/sys/kernel/mm/nope'], null);
  assert.deepEqual(readValue('[none] mq-deadline\n'), { current: 'none', choice: true, choices: ['none', 'mq-deadline'] });
});

test('plan: runtime writes (choices selected, plain values set) with read-back, then the tmpfiles.d file', () => {
  const { changes } = plan(sysfs, { settings: WANT }, PROBE);
  assert.deepEqual(changes.map((c) => `${c.target} (${c.scope}) ${c.before} -> ${c.after}`), [
    '/sys/kernel/mm/transparent_hugepage/enabled (runtime) madvise -> never',
    '/sys/kernel/mm/ksm/sleep_millisecs (runtime) 10 -> 20',
    '/sys/block/vda/queue/scheduler (runtime) mq-deadline -> none',
    '/sys/block/vda/queue/read_ahead_kb (runtime) 8192 -> 256',
    '/etc/tmpfiles.d/kvmconf-sysfs-settings.conf (persist) null -> /sys/kernel/mm/transparent_hugepage/enabled=never; /sys/kernel/mm/ksm/sleep_millisecs=20; /sys/block/vda/queue/scheduler=none; /sys/block/vda/queue/read_ahead_kb=256',
  ]);
  assert.deepEqual(changes.slice(0, 4).map((c) => c.commands), [
    ['kc_set_choice /sys/kernel/mm/transparent_hugepage/enabled never'], ['kc_set_value /sys/kernel/mm/ksm/sleep_millisecs 20'],
    ['kc_set_choice /sys/block/vda/queue/scheduler none'], ['kc_set_value /sys/block/vda/queue/read_ahead_kb 256'],
  ]);
  const content = changes[4]!.diff!.after;
  assert.match(content, /^w \/sys\/block\/vda\/queue\/scheduler - - - - none$/m);
  const converged = PROBE.replace('always [madvise] never', 'always madvise [never]').replace('sleep_millisecs 10', 'sleep_millisecs 20')
    .replace('none [mq-deadline] kyber bfq', '[none] mq-deadline kyber bfq').replace('read_ahead_kb 8192', 'read_ahead_kb 256')
    .replace('@@owned\n@@file-absent\n', `@@owned\n@@file-present\n${content}\n@@file-end\n`);
  assert.deepEqual(plan(sysfs, { settings: WANT }, converged).changes, []);
});

test('plan and input errors: absent attribute, a word that is not a choice, unsafe paths and values', () => {
  assert.throws(() => plan(sysfs, { settings: { '/sys/kernel/mm/nope': 1 } }, PROBE), /\/sys\/kernel\/mm\/nope: no such sysfs attribute/);
  assert.throws(() => plan(sysfs, { settings: { '/sys/block/vda/queue/scheduler': 'cfq' } }, PROBE), /'cfq' is not one of its choices \(none, mq-deadline, kyber, bfq\)/);
  for (const bad of [
    { settings: { '/proc/sys/vm/swappiness': 1 } }, { settings: { '/sys/../etc/passwd': 1 } }, { settings: { '/sys/block/*/queue/scheduler': 'none' } },
    { settings: { '/sys/kernel/mm/ksm/run': '%m' } }, { settings: { '/sys/kernel/mm/ksm/run': "1'; reboot" } }, { settings: {} },
  ]) assert.equal(schemaAccepts(sysfs, bad), false, JSON.stringify(bad));
  assert.equal(schemaAccepts(sysfs, { settings: { '/sys/bus/pci/devices/0000:00:02.0/power/control': 'on' }, name: 'pci-power' }), true);
});

test('shell: a choice file is read back by its bracket', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvmconf-sysfs-'));
  const file = path.join(dir, 'scheduler');
  fs.writeFileSync(file, '[mq-deadline] none\n');
  const run = spawnSync('sh', ['-c', `${REMOTE_LIB}\nkc_set_choice '${file}' none`], { encoding: 'utf8' });
  // A plain file keeps what was written, with no bracket: the read-back refuses it.
  assert.equal(run.status, 1);
  assert.match(run.stderr, /asked for 'none', the kernel selected ''/);
  fs.rmSync(dir, { recursive: true });
});
