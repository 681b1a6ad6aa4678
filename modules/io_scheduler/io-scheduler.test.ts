import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ownedFiles } from '../../src/kit/claims.js';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { PlanContext } from '../../src/kit/module.js';
import { changeCommands, diffOf } from '../../test/helpers/plan.js';
import type { HostFacts } from '../../src/kit/host-facts.js';
import { REMOTE_LIB, BACKUP_DIR, writeFileCommand } from '../../src/kit/remote-lib.js';
import { compile } from '../../src/config/schema.js';
import {
  ioScheduler, globMatch, selects, sanitisePattern, rulePath, renderRule, ruleCommands, parseSchedulerLine, RELOAD_COMMAND,
  type IoSchedulerParams, type IoSchedulerState,
} from './index.js';
import { moduleFixtures } from '../../test/helpers/paths.js';

const FIXTURES = moduleFixtures('io_scheduler');
const fixture = (name: string) => fs.readFileSync(path.join(FIXTURES, name), 'utf8');

const facts = { osId: 'debian', osLike: [], kernel: '6.1.0-18-amd64', arch: 'x86_64', systemd: true } as unknown as HostFacts;
const params = (devices: string, scheduler: string, persist = true): IoSchedulerParams => ({ devices, scheduler, persist });
const parse = (name: string, p: IoSchedulerParams) => ioScheduler.parse(fixture(name), p);

function run(p: IoSchedulerParams, state: IoSchedulerState) {
  const warnings: string[] = [];
  const ctx: PlanContext = { facts, tasks: [], claims: [], warn: (message) => warnings.push(message) };
  return { changes: diffOf(ioScheduler, p, state, ctx), warnings };
}

describe('io_scheduler parse', () => {
  it('reads the real probe of this machine: bracket format, no queue for zram, no rule file', () => {
    const state = parse('debian12-vm-vd-star.probe', params('vd*', 'mq-deadline'));
    assert.match(state.kernel, /^6\./);
    assert.deepEqual(state.devices.find((d) => d.name === 'vda'), { name: 'vda', selected: 'mq-deadline', available: ['none', 'mq-deadline', 'kyber', 'bfq'], supportsScheduler: true });
    assert.ok(!state.devices.some((d) => d.name === 'zram0'));
    assert.equal(state.file, null);
  });

  it('reads a bare `none` as a queue without scheduler support', () => {
    assert.deepEqual(parseSchedulerLine('md0', 'none'), { name: 'md0', selected: 'none', available: ['none'], supportsScheduler: false });
    assert.deepEqual(parseSchedulerLine('sda', 'noop [deadline] cfq '), { name: 'sda', selected: 'deadline', available: ['noop', 'deadline', 'cfq'], supportsScheduler: true });
  });
});

describe('io_scheduler device patterns', () => {
  it('matches like udev KERNEL== globs', () => {
    assert.ok(globMatch('vd*', 'vda'));
    assert.ok(globMatch('vd?', 'vdb'));
    assert.ok(!globMatch('vd?', 'vdaa'));
    assert.ok(globMatch('nvme*n*', 'nvme0n1'));
    assert.ok(globMatch('sd[a-c]', 'sdb'));
    assert.ok(!globMatch('sd[a-c]', 'sdd'));
    assert.ok(!globMatch('sda', 'sdab'));
    assert.ok(globMatch('dm-0', 'dm-0'));
  });

  it('leaves loop, ram, zram and dm devices to patterns that name them', () => {
    assert.ok(!selects('*', 'loop0'));
    assert.ok(!selects('*', 'dm-1'));
    assert.ok(selects('*', 'vda'));
    assert.ok(selects('loop*', 'loop3'));
    assert.ok(selects('dm-*', 'dm-1'));
  });

  it('names the owned rule file after a sanitised pattern', () => {
    assert.equal(sanitisePattern('vd*'), 'vd_star');
    assert.equal(sanitisePattern('nvme*n*'), 'nvme_star_n_star');
    assert.equal(sanitisePattern('sd[a-c]'), 'sd_a-c');
    assert.equal(sanitisePattern('vd?'), 'vd_q');
    assert.equal(rulePath('vd*'), '/etc/udev/rules.d/60-kvmconf-io-scheduler-vd_star.rules');
    assert.deepEqual(ownedFiles(ioScheduler.claims!(params('vd*', 'none'))), ['/etc/udev/rules.d/60-kvmconf-io-scheduler-vd_star.rules']);
    assert.deepEqual(ownedFiles(ioScheduler.claims!(params('vd*', 'none', false))), []);
  });
});

describe('io_scheduler diff and commands', () => {
  const RULE = '# Managed by kvmconf (io_scheduler); edits here are overwritten.\nACTION=="add|change", SUBSYSTEM=="block", ENV{DEVTYPE}=="disk", KERNEL=="vd*", ATTR{queue/scheduler}="none"\n';

  it('plans runtime and persist separately on this machine, with exact commands', () => {
    const p = params('vd*', 'none');
    const state = parse('debian12-vm-vd-star.probe', p);
    const { changes, warnings } = run(p, state);
    const path = '/etc/udev/rules.d/60-kvmconf-io-scheduler-vd_star.rules';
    assert.deepEqual(warnings, []);
    assert.deepEqual(changes, [
      { module: 'io_scheduler', target: '/sys/block/vda/queue/scheduler', scope: 'runtime', before: 'mq-deadline', after: 'none' },
      {
        module: 'io_scheduler', target: path, scope: 'persist', before: null, after: 'none',
        reason: 'udevd is not running here: the rule applies from the next boot',
        diff: { before: '', after: RULE, beforeHeader: path, afterHeader: path },
      },
    ]);
    assert.equal(renderRule('vd*', 'none'), RULE);
    assert.deepEqual(changeCommands(ioScheduler, changes[0]!), ['kc_set_choice /sys/block/vda/queue/scheduler none']);
    assert.deepEqual(changeCommands(ioScheduler, changes[1]!), [writeFileCommand(path, RULE, null), RELOAD_COMMAND]);
    // Converged: nothing to do.
    const converged: IoSchedulerState = { ...state, file: RULE, devices: state.devices.map((d) => (d.name === 'vda' ? { ...d, selected: 'none' } : d)) };
    assert.deepEqual(run(p, converged).changes, []);
  });

  it('maps noop to none and deadline to mq-deadline on multi-queue kernels, and says so', () => {
    const state = parse('debian12-vm-vd-star.probe', params('vd*', 'noop'));
    const { changes } = run(params('vd*', 'noop', false), state);
    assert.deepEqual(changes, [{ module: 'io_scheduler', target: '/sys/block/vda/queue/scheduler', scope: 'runtime', before: 'mq-deadline', after: 'none', reason: 'noop is called none on multi-queue kernels' }]);
    const persisted = run(params('vd*', 'deadline'), state).changes;
    assert.equal(persisted.length, 1, 'vda already runs mq-deadline');
    assert.match(persisted[0]!.diff!.after, /ATTR\{queue\/scheduler\}="mq-deadline"/);
    assert.equal(persisted[0]!.reason, 'deadline is called mq-deadline on multi-queue kernels; udevd is not running here: the rule applies from the next boot');
    assert.throws(() => run(params('vd*', 'cfq'), state), /cfq does not exist on multi-queue kernels/);
  });

  it('keeps the legacy names on a single-queue kernel (RHEL 7)', () => {
    const p = params('sd*', 'deadline', false);
    const state = parse('handwritten-rhel7-single-queue.probe', p);
    assert.deepEqual(run(p, state).changes, [{ module: 'io_scheduler', target: '/sys/block/sdb/queue/scheduler', scope: 'runtime', before: 'cfq', after: 'deadline' }]);
    assert.throws(() => run(params('sd*', 'none', false), state), /sda: the kernel does not offer the none scheduler \(choices: noop, deadline, cfq\)/);
  });

  it('warns, without failing, when no device matches; the rule is still written', () => {
    const p = params('nvme*n*', 'none');
    const { changes, warnings } = run(p, parse('debian12-vm-vd-star.probe', p));
    assert.deepEqual(warnings, ["no block device with a scheduler matches 'nvme*n*' on this host; the udev rule still applies to disks that appear later"]);
    assert.deepEqual(changes.map((c) => c.scope), ['persist']);
  });

  it('fails with the choices when a scheduler is neither offered nor loadable, and loads a loadable one', () => {
    const state = parse('handwritten-debian12-nvme-overrides.probe', params('sda', 'kyber'));
    assert.throws(() => run(params('sda', 'kyber', false), state), /sda: the kernel does not offer the kyber scheduler \(choices: mq-deadline, none\) and modprobe cannot load it/);
    assert.deepEqual(run(params('sda', 'bfq', false), state).changes, [
      { module: 'io_scheduler', target: '/sys/block/sda/queue/scheduler', scope: 'runtime', before: 'mq-deadline', after: 'bfq', reason: 'the kernel loads the bfq module when it is selected' },
    ]);
    assert.throws(() => run(params('md*', 'mq-deadline', false), state), /md0: this queue cannot use an I\/O scheduler/);
    assert.deepEqual(run(params('md*', 'none', false), state).changes, []);
  });

  it('reports a later udev rule that undoes the scheduler, ignoring earlier and hidden ones', () => {
    const p = params('nvme*n*', 'none');
    const state = parse('handwritten-debian12-nvme-overrides.probe', p);
    const { changes, warnings } = run(p, state);
    assert.deepEqual(warnings, [
      '/etc/udev/rules.d/99-local-scheduler.rules is applied after /etc/udev/rules.d/60-kvmconf-io-scheduler-nvme_star_n_star.rules and sets queue/scheduler to kyber for the disks it matches (ACTION=="add|change", KERNEL=="nvme*n*", ATTR{queue/scheduler}="kyber"), so it may undo none at boot',
    ]);
    assert.deepEqual(changes.map((c) => [c.target, c.before, c.after]), [
      ['/sys/block/nvme1n1/queue/scheduler', 'mq-deadline', 'none'],
      ['/etc/udev/rules.d/60-kvmconf-io-scheduler-nvme_star_n_star.rules', 'kyber', 'none'],
    ]);
    assert.equal(changes[1]!.reason, undefined, 'udevd runs: no note');
  });

  it('does nothing for the facts view', () => {
    const state = parse('debian12-vm-vd-star.probe', params('vd*', 'none'));
    assert.deepEqual(run(ioScheduler.factsParams!, state).changes, []);
  });
});

describe('io_scheduler parameters', () => {
  const validate = compile(ioScheduler.schema);
  it('accepts names and globs', () => {
    for (const devices of ['vda', 'vd*', 'sd[a-z]', 'nvme*n*', 'dm-0', 'vd?']) assert.ok(validate({ devices, scheduler: 'none' }), devices);
    assert.deepEqual(ioScheduler.normalize!({ devices: 'vd*', scheduler: 'noop' }), { devices: 'vd*', scheduler: 'noop', persist: true });
  });
  it('rejects hostile values', () => {
    for (const devices of ['; rm -rf /', '$(reboot)', 'vd*\n', 'vd"', "vd'", '../sda', 'VDA', '', 'vd*|sd*', 'vd a']) {
      assert.equal(validate({ devices, scheduler: 'none' }), false, JSON.stringify(devices));
    }
    for (const scheduler of ['none; reboot', 'foo', '', 1]) assert.equal(validate({ devices: 'vd*', scheduler }), false, String(scheduler));
    assert.equal(validate({ devices: 'vd*' }), false);
    assert.equal(validate({ devices: 'vd*', scheduler: 'none', extra: 1 }), false);
  });
});

describe('io_scheduler on this machine', () => {
  const sh = (script: string) => spawnSync('/bin/sh', ['-c', script], { encoding: 'utf8' });

  it('runs the real probe read-only and parses it', () => {
    const p = params('*', 'mq-deadline');
    const result = sh(`(\n${ioScheduler.probe(p)}\n) </dev/null`);
    assert.equal(result.status, 0, result.stderr);
    const state = ioScheduler.parse(result.stdout, p);
    for (const device of state.devices) assert.ok(device.available.includes(device.selected), device.name);
    const live = fs.readdirSync('/sys/block').filter((name) => fs.existsSync(`/sys/block/${name}/queue/scheduler`));
    assert.deepEqual(state.devices.map((d) => d.name).sort(), live.sort());
  });

  it('switches a loop device scheduler for real and reads it back', (t) => {
    const file = '/sys/block/loop0/queue/scheduler';
    if (!fs.existsSync(file)) return t.skip('no loop0 here');
    try {
      fs.writeFileSync(file, fs.readFileSync(file, 'utf8').match(/\[([^\]]+)\]/)![1]!);
    } catch {
      return t.skip('loop0 scheduler is not writable here');
    }
    const probe = (p: IoSchedulerParams) => ioScheduler.parse(sh(`(\n${ioScheduler.probe(p)}\n) </dev/null`).stdout, p);
    const before = probe(params('loop0', 'none', false)).devices.find((d) => d.name === 'loop0')!;
    const target = before.selected === 'mq-deadline' ? 'none' : 'mq-deadline';
    if (!before.available.includes(target)) return t.skip(`loop0 does not offer ${target}`);
    const apply = (p: IoSchedulerParams) => {
      const state = probe(p);
      const changes = run(p, state).changes;
      const commands = changes.flatMap((change) => changeCommands(ioScheduler, change));
      const result = sh(`${REMOTE_LIB}\n( set -e\n${commands.join('\n')}\n) </dev/null 2>&1`);
      assert.equal(result.status, 0, result.stdout);
      return changes;
    };
    try {
      assert.equal(apply(params('loop0', target, false)).length, 1);
      assert.equal(probe(params('loop0', target, false)).devices.find((d) => d.name === 'loop0')!.selected, target);
      assert.deepEqual(apply(params('loop0', target, false)), [], 'a second run changes nothing');
    } finally {
      apply(params('loop0', before.selected, false));
    }
    assert.equal(probe(params('loop0', 'none', false)).devices.find((d) => d.name === 'loop0')!.selected, before.selected);
    // A scheduler the kernel refuses fails the step with the kernel's answer.
    const refused = sh(`${REMOTE_LIB}\n( set -e\nkc_set_choice ${file} no-such-scheduler\n) </dev/null 2>&1`);
    assert.notEqual(refused.status, 0);
    assert.match(refused.stdout, /the kernel refused 'no-such-scheduler'/);
  });

  it('writes the rule file atomically and tolerates a missing udevd', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvmconf-io-'));
    const lib = REMOTE_LIB.split(BACKUP_DIR).join(path.join(dir, 'backups'));
    const file = path.join(dir, 'rules.d', '60-kvmconf-io-scheduler-vd_star.rules');
    const content = renderRule('vd*', 'none');
    const result = sh(`${lib}\n( set -e\n${ruleCommands(file, content, null).join('\n')}\n) </dev/null 2>&1`);
    assert.equal(result.status, 0, result.stdout);
    assert.equal(fs.readFileSync(file, 'utf8'), content);
    if (!fs.existsSync('/run/udev/control')) assert.match(result.stdout, /udevd is not running here/);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
