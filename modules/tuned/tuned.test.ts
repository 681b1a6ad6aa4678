import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { PlanContext } from '../../src/kit/module.js';
import { changeCommands, claimsOf, diffOf } from '../../test/helpers/plan.js';
import type { HostFacts } from '../../src/kit/host-facts.js';
import { REMOTE_LIB, BACKUP_DIR, writeFileCommand } from '../../src/kit/remote-lib.js';
import { compile } from '../../src/config/schema.js';
import { tuned, conflictWarnings, profileSwitchCommands, ACTIVE_PROFILE_FILE, PROFILE_MODE_FILE, type TunedParams, type TunedState } from './index.js';
import { loadProfiles, parseIni, profileSettings } from './profile.js';
import { moduleFixtures } from '../../test/helpers/paths.js';
import { buildGatherScript, newMark, splitSections } from '../../src/engine/script.js';
import { AWKS, gatherWithAwk, probeWithAwk } from '../../test/helpers/awks.js';

const FIXTURES = moduleFixtures('tuned');
const fixture = (name: string) => fs.readFileSync(path.join(FIXTURES, name), 'utf8');

const facts = { osId: 'debian', osLike: [], kernel: '6.1.0-18-amd64', arch: 'x86_64', systemd: true } as unknown as HostFacts;
const params = (profile = 'virtual-host', service = true): TunedParams => ({ profile, service });
const parse = (name: string) => tuned.parse(fixture(name), params());
type Tasks = PlanContext['claims'];

function run(p: TunedParams, state: TunedState, tasks: Tasks = []) {
  const warnings: string[] = [];
  const changes = diffOf(tuned, p, state, { facts, tasks: [], claims: tasks, warn: (message) => warnings.push(message) });
  return { changes, warnings };
}

const PERSISTS = 'tuned keeps the profile in /etc/tuned/active_profile (mode manual) and loads it at every start, so the switch persists';

describe('tuned parse', () => {
  it('reads the real probe of this Debian 12 machine (tuned 2.20 installed, no daemon, no systemd)', () => {
    const state = parse('debian12-container-no-daemon-virtual-host.probe');
    assert.equal(state.installed, true);
    assert.equal(state.active, null);
    assert.equal(state.systemd, false);
    assert.equal(state.daemon, false);
    assert.equal(state.reapplySysctl, true);
    assert.equal(state.presetFile, '');
    assert.ok(state.available.includes('virtual-host') && state.available.includes('throughput-performance'));
    assert.equal(state.available.length, 37);
    assert.deepEqual(Object.keys(state.profileFiles), ['/usr/lib/tuned/virtual-host/tuned.conf', '/usr/lib/tuned/throughput-performance/tuned.conf']);
  });

  it('reads the daemon\'s D-Bus answers and the profile folders as tuned-adm list would print them (real probe of the lab VM)', () => {
    const state = parse('debian12-vm-running-virtual-guest-dbus.probe');
    assert.deepEqual([state.active, state.postLoaded, state.admNotRunning, state.daemon, state.enabled, state.activeState], ['virtual-guest', null, false, true, 'enabled', 'active']);
    const listed = parse('handwritten-running-virtual-host-manual.probe').available;
    assert.deepEqual(state.available, listed, 'the same 37 profiles, in tuned-adm\'s order');
    assert.deepEqual(run(params(), state).changes.map((c) => [c.target, c.before, c.after]), [['profile', 'virtual-guest', 'virtual-host']]);
  });

  it('reads a running daemon, tuned-adm off, a stopped daemon and a missing tuned', () => {
    const running = parse('handwritten-running-virtual-guest-auto.probe');
    assert.deepEqual([running.active, running.daemon, running.activeState, running.modeFile], ['virtual-guest', true, 'active', 'auto\n']);
    assert.equal(parse('handwritten-running-after-tuned-adm-off.probe').active, null);
    const stopped = parse('handwritten-stopped-disabled-preset.probe');
    assert.deepEqual([stopped.admNotRunning, stopped.enabled, stopped.presetFile], [true, 'disabled', 'virtual-guest\n']);
    assert.equal(parse('handwritten-not-installed.probe').installed, false);
  });
});

describe('tuned profile files', () => {
  it('loads virtual-host with its include, as tuned merges them', () => {
    const state = parse('debian12-container-no-daemon-virtual-host.probe');
    const merged = loadProfiles(['virtual-host'], state.profileFiles);
    assert.deepEqual(merged.loaded.map((p) => p.name), ['throughput-performance', 'virtual-host']);
    const x86 = profileSettings(merged, 'Linux 6.1.0-18-amd64 x86_64');
    assert.deepEqual(x86.filter((s) => s.kind === 'sysctl').map((s) => [s.key, s.value, s.from]), [
      ['vm.dirty_ratio', '40', 'throughput-performance'],
      ['vm.dirty_background_ratio', '5', 'virtual-host'],
      ['vm.swappiness', '10', 'throughput-performance'],
      ['net.core.somaxconn', '>2048', 'throughput-performance'],
    ]);
    assert.deepEqual(x86.filter((s) => s.kind !== 'sysctl'), []);
    // The ThunderX units apply on aarch64 only, and then only on matching CPUs.
    const arm = profileSettings(merged, 'Linux 6.1.0-18-arm64 aarch64');
    assert.deepEqual(arm.filter((s) => s.conditional).map((s) => [s.kind, s.key, s.value]), [
      ['thp', 'transparent_hugepages', 'never'],
      ['sysctl', 'kernel.numa_balancing', '0'],
    ]);
  });

  it('follows /etc overriding /usr/lib, replace, drop, enabled and conditional includes', () => {
    const files = {
      '/etc/tuned/virtual-host/tuned.conf': '[main]\ninclude=virtual-host, -not-there\n[sysctl]\nreplace=1\nvm.swappiness = 5  # ours\n[disk]\nenabled=false\nelevator=bfq\n',
      '/usr/lib/tuned/virtual-host/tuned.conf': '[main]\ninclude=base\n[sysctl]\nvm.dirty_ratio=20\n[disk]\nelevator=none\n',
      '/usr/lib/tuned/base/tuned.conf': '[sysctl]\nkernel.sched_x=1\nvm.a=${f:exec:cat:/x}\nvm.b=${limit}\n[variables]\nlimit=42\n[vm]\ntransparent_hugepage=madvise\ndrop=none\n',
      '/usr/lib/tuned/extra/tuned.conf': '[vm]\ndrop=transparent_hugepage\n',
    };
    const merged = loadProfiles(['virtual-host', 'extra'], files);
    assert.deepEqual(merged.loaded.map((p) => p.file), ['/usr/lib/tuned/base/tuned.conf', '/usr/lib/tuned/virtual-host/tuned.conf', '/etc/tuned/virtual-host/tuned.conf', '/usr/lib/tuned/extra/tuned.conf']);
    const settings = profileSettings(merged, 'Linux x86_64');
    assert.deepEqual(settings.map((s) => [s.kind, s.key, s.value]), [['sysctl', 'vm.swappiness', '5']], 'replace=1 drops the included sysctls; enabled=false turns the disk unit off; drop removes THP');
    const base = profileSettings(loadProfiles(['base'], files), 'Linux x86_64');
    assert.deepEqual(base.map((s) => [s.key, s.value]), [['kernel.sched_x', '1'], ['vm.a', '${f:exec:cat:/x}'], ['vm.b', '42'], ['transparent_hugepages', 'madvise']]);
    assert.throws(() => loadProfiles(['nope'], files), /cannot find tuned profile 'nope'/);
  });

  it('parses tuned.conf like ConfigParser', () => {
    assert.deepEqual(parseIni('# c\n[main]\nsummary=a # b\n; c\n[sysctl]\nx.y = 1 2\n  3\nz=\n'), [
      { name: 'main', options: { summary: 'a' } },
      { name: 'sysctl', options: { 'x.y': '1 2 3', z: '' } },
    ]);
  });
});

describe('tuned diff and commands', () => {
  it('switches a running daemon from its recommended profile, persisting through tuned itself', () => {
    const state = parse('handwritten-running-virtual-guest-auto.probe');
    const { changes, warnings } = run(params(), state);
    assert.deepEqual(warnings, []);
    assert.deepEqual(changes, [{ module: 'tuned', target: 'profile', scope: 'runtime', before: 'virtual-guest', after: 'virtual-host', reason: PERSISTS }]);
    assert.deepEqual(changeCommands(tuned, changes[0]!), [
      'tuned-adm profile virtual-host',
      "kc_got=$(tuned-adm active 2>/dev/null | sed -n 's/^Current active profile: //p')",
      `[ "$kc_got" = virtual-host ] || kc_fail "tuned-adm: asked for profile "virtual-host", tuned reports '$kc_got'"`,
    ]);
  });

  it('is a no-op when the daemon runs the profile in manual mode', () => {
    assert.deepEqual(run(params(), parse('handwritten-running-virtual-host-manual.probe')), { changes: [], warnings: [] });
  });

  it('re-selects the profile when tuned is in auto mode, which would drop it at the next start', () => {
    const state = { ...parse('handwritten-running-virtual-host-manual.probe'), modeFile: 'auto\n' };
    const { changes } = run(params(), state);
    assert.deepEqual(changes.map((c) => [c.target, c.scope, c.before, c.after]), [[ACTIVE_PROFILE_FILE, 'persist', 'virtual-host (auto)', 'virtual-host (manual)']]);
    assert.equal(changeCommands(tuned, changes[0]!)[0], 'tuned-adm profile virtual-host');
  });

  it('turns tuning back on after tuned-adm off', () => {
    const { changes } = run(params(), parse('handwritten-running-after-tuned-adm-off.probe'));
    assert.deepEqual(changes.map((c) => [c.target, c.before, c.after, c.reason]), [['profile', null, 'virtual-host', `tuned runs without a profile (tuned-adm off); ${PERSISTS}`]]);
  });

  it('enables and starts a stopped tuned, then switches its preset', () => {
    const state = parse('handwritten-stopped-disabled-preset.probe');
    const { changes } = run(params(), state);
    assert.deepEqual(changes.map((c) => [c.target, c.scope, c.before, c.after]), [
      ['tuned.service', 'persist', 'disabled', 'enabled'],
      ['tuned.service', 'runtime', 'inactive', 'active'],
      ['profile', 'runtime', 'virtual-guest', 'virtual-host'],
    ]);
    assert.deepEqual(changeCommands(tuned, changes[0]!), ['systemctl enable tuned', `[ "$(systemctl is-enabled tuned)" = enabled ] || kc_fail 'tuned.service is still not enabled'`]);
    assert.deepEqual(changeCommands(tuned, changes[1]!), ['systemctl start tuned', `systemctl is-active --quiet tuned || kc_fail 'tuned did not start: see journalctl -u tuned'`]);
    // Its preset already right: starting it is enough.
    const right = { ...state, presetFile: 'virtual-host\n' };
    assert.deepEqual(run(params(), right).changes.map((c) => c.scope), ['persist', 'runtime']);
  });

  it('stores the preset without starting tuned when service is false', () => {
    const state = parse('debian12-container-no-daemon-virtual-host.probe');
    const p = params('virtual-host', false);
    const { changes } = run(p, state);
    assert.deepEqual(changes.map((c) => [c.target, c.scope, c.before, c.after]), [[ACTIVE_PROFILE_FILE, 'persist', null, 'virtual-host']]);
    assert.deepEqual(changeCommands(tuned, changes[0]!), [writeFileCommand(ACTIVE_PROFILE_FILE, 'virtual-host\n', ''), writeFileCommand(PROFILE_MODE_FILE, 'manual\n', '')]);
    assert.deepEqual(run(p, { ...state, presetFile: 'virtual-host\n', modeFile: 'manual\n' }).changes, []);
  });

  it('fails clearly: not installed, unknown profile, masked unit, no systemd', () => {
    assert.throws(() => run(params(), parse('handwritten-not-installed.probe')), /^Error: tuned is not installed: install the tuned package$/);
    assert.throws(() => run(params('virtual-hots'), parse('handwritten-running-virtual-host-manual.probe')), /unknown tuned profile 'virtual-hots'; available: accelerator-performance, .*virtual-host/);
    assert.throws(() => run(params(), { ...parse('handwritten-stopped-disabled-preset.probe'), enabled: 'masked' }), /masked/);
    assert.throws(() => run(params(), parse('debian12-container-no-daemon-virtual-host.probe')), /does not run systemd/);
    assert.deepEqual(tuned.rules!(params(), { ...facts, systemd: false }).map((d) => d.severity), ['error']);
    assert.deepEqual(tuned.rules!(params('virtual-host', false), { ...facts, systemd: false }), []);
  });

  it('accepts merged profiles and reads back both names', () => {
    const state = parse('handwritten-running-virtual-guest-auto.probe');
    const { changes } = run(params('virtual-host network-latency'), state);
    assert.equal(changes[0]!.after, 'virtual-host network-latency');
    assert.equal(profileSwitchCommands('virtual-host network-latency', null)[0], 'tuned-adm profile virtual-host network-latency');
    assert.match(profileSwitchCommands('virtual-host', 'extra')[2]!, /= 'virtual-host extra' \]/);
  });
});

describe('tuned conflicts with other tasks of the play', () => {
  const custom = {
    '/etc/tuned/kvm-custom/tuned.conf': '[main]\ninclude=virtual-host\n[vm]\ntransparent_hugepages=always\n[disk]\nelevator=bfq\n[sysctl]\nvm.nr_hugepages=512\n[bootloader]\ncmdline=hugepages=512 isolcpus=2-3\n',
  };
  const state = (): TunedState => {
    const base = parse('handwritten-running-virtual-host-manual.probe');
    return { ...base, active: 'kvm-custom', presetFile: 'kvm-custom\n', available: [...base.available, 'kvm-custom'], profileFiles: { ...base.profileFiles, ...custom } };
  };
  const task = (module: string, name: string, p: unknown) => ({ task: name, claims: claimsOf(module, p) });

  it('names both values and which one wins, for every module it can fight', () => {
    const tasks: Tasks = [
      task('sysctl', 'vm tuning', { settings: { 'vm.swappiness': '1', 'vm.dirty_ratio': '40', 'net.core.somaxconn': '4096' }, file: '/etc/sysctl.d/90-kvmconf.conf', persist: true }),
      task('thp', 'no thp', { enabled: 'never', persist: true }),
      task('io_scheduler', 'virtio disks', { devices: 'vd*', scheduler: 'none', persist: true }),
      task('hugepages', 'pool', { nr_hugepages: 1024 }),
      task('kernel_cmdline', 'kernel args', { tokens: ['hugepages=1024', 'transparent_hugepage=never'], absent: [] }),
    ];
    const { changes, warnings } = run(params('kvm-custom'), state(), tasks);
    assert.deepEqual(changes, []);
    assert.equal(warnings.length, 5, warnings.join('\n'));
    assert.equal(warnings[0], "sysctl vm.swappiness: tuned profile 'throughput-performance' sets 10 but task 'vm tuning' sets 1; at boot tuned then re-applies /etc/sysctl.d (reapply_sysctl = 1) and /etc/sysctl.d/90-kvmconf.conf sets 1 again, so 1 wins; kvmconf keeps it at run time too (included by profile kvm-custom)");
    assert.match(warnings[1]!, /^transparent hugepages: tuned profile 'kvm-custom' sets always but task 'no thp' sets never; .*transparent_hugepage=never on the kernel command line.*so never wins once the host has rebooted/);
    assert.match(warnings[2]!, /^I\/O scheduler: tuned profile 'kvm-custom' sets elevator=bfq for all disks but task 'virtio disks' sets none for vd\*; .*bfq wins at boot.*alternate/);
    assert.match(warnings[3]!, /^vm.nr_hugepages: tuned profile 'kvm-custom' sets 512 but task 'pool' asks for 1024/);
    assert.match(warnings[4]!, /^kernel command line hugepages: tuned profile 'kvm-custom' sets hugepages=512 .* but task 'kernel args' wants hugepages=1024/);
  });

  it('stays quiet when the values agree, including tuned’s only-raise form and noop = none', () => {
    const settings = profileSettings(loadProfiles(['kvm-custom'], state().profileFiles), 'Linux x86_64');
    const tasks: Tasks = [
      task('sysctl', 's', { settings: { 'net.core.somaxconn': '4096', 'vm.dirty_background_ratio': '5' }, persist: true }),
      task('thp', 't', { enabled: 'always', persist: false }),
      task('io_scheduler', 'i', { devices: 'vd*', scheduler: 'bfq', persist: true }),
      task('hugepages', 'h', { nr_hugepages: 512 }),
      task('kernel_cmdline', 'k', { tokens: ['hugepages=512'], absent: [] }),
    ];
    assert.deepEqual(conflictWarnings(settings, 'kvm-custom', true, tasks), []);
    const noop = [task('io_scheduler', 'i', { devices: 'vd*', scheduler: 'noop', persist: true })];
    assert.deepEqual(conflictWarnings([{ kind: 'elevator', key: 'elevator', value: 'none', from: 'p', conditional: false, devices: '*' }], 'p', true, noop), []);
    const low = [task('sysctl', 's', { settings: { 'net.core.somaxconn': '128' }, persist: true })];
    assert.equal(conflictWarnings(settings, 'kvm-custom', true, low).length, 1, '128 is below the >2048 floor tuned enforces');
  });

  it('finds [sysfs] paths (globs both ways) and [vm] transparent_hugepage.defrag that a task writes otherwise', () => {
    const files = {
      ...state().profileFiles,
      '/etc/tuned/kvm-sysfs/tuned.conf': '[main]\ninclude=virtual-host\n[vm]\ntransparent_hugepage.defrag=madvise\n[sysfs]\n/sys/kernel/mm/ksm/r[!x]n=1\n/sys/block/vda/queue/scheduler=mq-deadline\n/sys/kernel/mm/ksm/sleep_millisecs=20\n',
    };
    const settings = profileSettings(loadProfiles(['kvm-sysfs'], files), 'Linux x86_64');
    const tasks: Tasks = [
      task('sysfs', 'ksm by hand', { settings: { '/sys/kernel/mm/ksm/run': '2', '/sys/kernel/mm/ksm/sleep_millisecs': '20' }, persist: true }),
      task('thp', 'no thp', { enabled: 'never', defrag: 'never', persist: true }),
      task('io_scheduler', 'virtio disks', { devices: 'vd*', scheduler: 'none', persist: true }),
    ];
    const warnings = conflictWarnings(settings, 'kvm-sysfs', true, tasks);
    assert.equal(warnings.length, 3, warnings.join('\n'));
    assert.match(warnings[0]!, /^sysfs \/sys\/kernel\/mm\/ksm\/run: tuned profile 'kvm-sysfs' sets 1 \(through \/sys\/kernel\/mm\/ksm\/r\[!x\]n\) but task 'ksm by hand' sets 2; .*1 wins at boot.*alternate/);
    assert.match(warnings[1]!, /^sysfs \/sys\/kernel\/mm\/transparent_hugepage\/defrag: tuned profile 'kvm-sysfs' sets madvise but task 'no thp' sets never/);
    assert.match(warnings[2]!, /^sysfs \/sys\/block\/vd\*\/queue\/scheduler: tuned profile 'kvm-sysfs' sets mq-deadline \(through \/sys\/block\/vda\/queue\/scheduler\) but task 'virtio disks' sets none/);
    const agree = [task('io_scheduler', 'i', { devices: 'vd*', scheduler: 'deadline', persist: true }), task('sysfs', 's', { settings: { '/sys/kernel/mm/ksm/runs': '2' }, persist: true })];
    assert.deepEqual(conflictWarnings(settings, 'kvm-sysfs', true, agree), [], 'deadline is mq-deadline; a glob component does not match a longer name');
  });

  it('says tuned wins when it does not re-apply sysctl.d, and that the two alternate without persistence', () => {
    const settings = [{ kind: 'sysctl' as const, key: 'vm.swappiness', value: '10', from: 'p', conditional: false }];
    const persisted = [task('sysctl', 's', { settings: { 'vm.swappiness': '1' }, file: '/etc/sysctl.d/90-kvmconf.conf', persist: true })];
    assert.match(conflictWarnings(settings, 'p', false, persisted)[0]!, /reapply_sysctl = 0\), so tuned's 10 wins at every boot.*alternate/);
    const transient = [task('sysctl', 's', { settings: { 'vm.swappiness': '1' }, persist: false })];
    assert.match(conflictWarnings(settings, 'p', true, transient)[0]!, /the sysctl task does not persist, so tuned's 10 wins/);
  });
});

describe('tuned parameters', () => {
  const validate = compile(tuned.schema);
  it('accepts profile names and merged profiles', () => {
    for (const profile of ['virtual-host', 'virtual-guest', 'virtual-host my_extra.v2']) assert.ok(validate({ profile }), profile);
    assert.deepEqual(tuned.normalize!({ profile: 'virtual-host' }), { profile: 'virtual-host', service: true });
  });
  it('rejects hostile values', () => {
    for (const profile of ['; rm -rf /', '$(reboot)', 'a\nb', 'a  b', ' a', 'a ', "a'b", 'a"b', '../x', '', 'a/b']) {
      assert.equal(validate({ profile }), false, JSON.stringify(profile));
    }
    assert.equal(validate({ profile: 'virtual-host', service: 'yes' }), false);
    assert.equal(validate({}), false);
  });
});

describe('tuned probe on a profile tree', () => {
  /** Profiles under ROOT/{etc,run,usr/lib}/tuned: includes (optional, cyclic, templated, with a slash), a folder named tuned.conf, a file without a final newline. */
  function profileTree(): string {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'kvmconf-tuned-tree-'));
    const conf = (dir: string, text: string) => {
      fs.mkdirSync(path.join(root, dir), { recursive: true });
      fs.writeFileSync(path.join(root, dir, 'tuned.conf'), text);
    };
    conf('etc/tuned/site', '[main]\ninclude=-base, extra;virtual-host\n  include = folder $x/y\n[sysctl]\nvm.x=1');
    conf('usr/lib/tuned/site', '[main]\ninclude=balanced\n');
    conf('etc/tuned/profiles/extra', '[main]\ninclude=site,${f:virt_check:a:b}\n');
    conf('usr/lib/tuned/virtual-host', '[main]\ninclude=throughput-performance\n');
    conf('usr/lib/tuned/throughput-performance', '[sysctl]\nvm.swappiness=10\n');
    conf('usr/lib/tuned/balanced', '[main]\nsummary=b\n');
    fs.mkdirSync(path.join(root, 'etc/tuned/folder/tuned.conf'), { recursive: true });
    return root;
  }
  it('follows includes among regular files, in directory order, alone and in a gather, under every awk', () => {
    const root = profileTree();
    const probe = tuned.probe(params('site')).replace(/\/(etc|run|usr\/lib)\/tuned/g, `${root}/$1/tuned`);
    const mark = newMark();
    const gather = buildGatherScript([{ id: 'tuned', script: probe }], mark);
    for (const awk of AWKS) {
      const alone = spawnSync('/bin/sh', ['-s'], { input: probeWithAwk(probe, awk), encoding: 'utf8' });
      assert.equal(alone.status, 0, alone.stderr);
      const state = tuned.parse(alone.stdout, params('site'));
      assert.deepEqual(Object.keys(state.profileFiles).map((file) => file.slice(root.length)), [
        '/etc/tuned/site/tuned.conf',
        '/usr/lib/tuned/site/tuned.conf',
        '/etc/tuned/profiles/extra/tuned.conf',
        '/usr/lib/tuned/virtual-host/tuned.conf',
        '/usr/lib/tuned/balanced/tuned.conf',
        '/usr/lib/tuned/throughput-performance/tuned.conf',
      ], awk.join(' '));
      assert.equal(state.profileFiles[`${root}/usr/lib/tuned/throughput-performance/tuned.conf`], '[sysctl]\nvm.swappiness=10\n');
      const gathered = spawnSync('/bin/sh', ['-s'], { input: gatherWithAwk(gather, awk), encoding: 'utf8' });
      assert.equal(splitSections(gathered.stdout, mark).get('tuned')?.output, alone.stdout, `${awk.join(' ')}, one awk: ${gathered.stderr}`);
    }
    fs.rmSync(root, { recursive: true, force: true });
  });
});

describe('tuned on this machine', () => {
  const sh = (script: string) => spawnSync('/bin/sh', ['-c', script], { encoding: 'utf8' });

  it('runs the real probe read-only and parses it', () => {
    const result = sh(`(\n${tuned.probe(params())}\n) </dev/null`);
    assert.equal(result.status, 0, result.stderr);
    const state = tuned.parse(result.stdout, params());
    const installed = sh('command -v tuned-adm').status === 0;
    assert.equal(state.installed, installed);
    if (installed) assert.ok(state.available.includes('virtual-host'));
  });

  it('stores the preset atomically (paths pointed at a temp folder)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvmconf-tuned-'));
    const lib = REMOTE_LIB.split(BACKUP_DIR).join(path.join(dir, 'backups'));
    const state = parse('debian12-container-no-daemon-virtual-host.probe');
    const p = params('virtual-host', false);
    const commands = run(p, state).changes.flatMap((change) => changeCommands(tuned, change))
      .map((command) => command.split(ACTIVE_PROFILE_FILE).join(`${dir}/active_profile`).split(PROFILE_MODE_FILE).join(`${dir}/profile_mode`));
    fs.writeFileSync(`${dir}/active_profile`, '');
    fs.writeFileSync(`${dir}/profile_mode`, '');
    const result = sh(`${lib}\n( set -e\n${commands.join('\n')}\n) </dev/null 2>&1`);
    assert.equal(result.status, 0, result.stdout);
    assert.equal(fs.readFileSync(`${dir}/active_profile`, 'utf8'), 'virtual-host\n');
    assert.equal(fs.readFileSync(`${dir}/profile_mode`, 'utf8'), 'manual\n');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('reads the profile back after tuned-adm profile and fails when tuned did not switch', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvmconf-tuned-'));
    // tuned-adm is stubbed by a script first in PATH: a daemon that switches, and one that keeps its old profile.
    const stub = (switches: boolean) => {
      fs.writeFileSync(
        `${dir}/tuned-adm`,
        `#!/bin/sh\ncase "$1" in profile) shift; ${switches ? `echo "$*" > ${dir}/active` : 'true'} ;; active) echo "Current active profile: $(cat ${dir}/active)" ;; esac\n`,
        { mode: 0o755 },
      );
      return `PATH=${dir}:$PATH\n`;
    };
    fs.writeFileSync(`${dir}/active`, 'virtual-guest\n');
    const script = (switches: boolean) => `${REMOTE_LIB}\n${stub(switches)}( set -e\n${profileSwitchCommands('virtual-host', null).join('\n')}\n) </dev/null 2>&1`;
    const stuck = sh(script(false));
    assert.notEqual(stuck.status, 0);
    assert.match(stuck.stdout, /asked for profile virtual-host, tuned reports 'virtual-guest'/);
    const ok = sh(script(true));
    assert.equal(ok.status, 0, ok.stdout);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
