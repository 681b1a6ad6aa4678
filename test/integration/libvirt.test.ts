/**
 * libvirt_domain against a real libvirtd on this machine (test/helpers/libvirtd.ts):
 * a 64 MiB TCG guest with a raw disk, a virtio-scsi controller and a user-mode NIC
 * (no host network) is defined and started; the module's probe and commands run for
 * real through /bin/sh with the remote library. Fails (never skips) without libvirtd.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { libvirtDomain } from '../../modules/libvirt_domain/index.js';
import type { DomainParams } from '../../modules/libvirt_domain/params.js';
import type { DomainProbeState } from '../../modules/libvirt_domain/probe.js';
import { buildApplyScript, newMark, parseApplyOutput } from '../../src/engine/script.js';
import type { HostFacts } from '../../src/kit/host-facts.js';
import { parseFacts, FACTS_PROBE } from '../../src/engine/facts.js';
import type { Change } from '../../src/kit/module.js';
import { changeCommands, diffOf } from '../helpers/plan.js';
import { startLibvirtd, virsh, type Libvirtd } from '../helpers/libvirtd.js';
import { emulatorThread, parseQemuThreads, qemuThreadsScript, testDomainXml, vcpuThread } from '../helpers/test-domain.js';

const NAME = `kvmconf-it-${randomBytes(3).toString('hex')}`;
let daemon: Libvirtd | undefined;
let dir = '';
let facts: HostFacts;

function sh(script: string): string {
  const result = spawnSync('/bin/sh', ['-c', script], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`sh failed: ${result.stderr}`);
  return result.stdout;
}

before(() => {
  daemon = startLibvirtd();
  dir = mkdtempSync(join(tmpdir(), 'kvmconf-libvirt-it-'));
  chmodSync(dir, 0o755); // qemu runs as libvirt-qemu: it must reach the disk file
  writeFileSync(join(dir, 'disk.raw'), Buffer.alloc(1024 * 1024));
  writeFileSync(join(dir, 'domain.xml'), testDomainXml(NAME, join(dir, 'disk.raw')));
  virsh('define', '--file', join(dir, 'domain.xml'));
  virsh('start', '--domain', NAME);
  facts = parseFacts(sh(FACTS_PROBE));
});

after(() => {
  spawnSync('virsh', ['-c', 'qemu:///system', 'destroy', '--domain', NAME]);
  spawnSync('virsh', ['-c', 'qemu:///system', 'undefine', '--domain', NAME]);
  if (dir) rmSync(dir, { recursive: true, force: true });
  daemon?.stop();
});

function params(extra: Record<string, unknown> = {}): DomainParams {
  const first = facts.cpusOnline[0]!;
  const last = facts.cpusOnline[facts.cpusOnline.length - 1]!;
  return libvirtDomain.normalize!({
    name: NAME,
    cputune: { vcpupin: { 0: String(first), 1: String(last) }, emulatorpin: String(first) },
    numatune: { nodeset: '0' },
    // No hard_limit: libvirt then raises the qemu process's RLIMIT_MEMLOCK, which a container without CAP_SYS_RESOURCE refuses at start.
    memtune: { soft_limit_kib: 524288 },
    blkiotune: { weight: 500 },
    disks: [{ target: 'vda', cache: 'none', io: 'native', iotune: { total_iops_sec: 1000 } }],
    interfaces: [{ match: { index: 0 }, model: 'virtio' }],
    scsi_queues: 2,
    ...extra,
  });
}

function plan(p: DomainParams): { actual: DomainProbeState; changes: Change[]; warnings: string[] } {
  const actual = libvirtDomain.parse(sh(libvirtDomain.probe(p)), p);
  const warnings: string[] = [];
  const errors = (libvirtDomain.rules?.(p, facts) ?? []).filter((d) => d.severity === 'error');
  assert.deepEqual(errors, []);
  const changes = diffOf(libvirtDomain, p, actual, { facts, tasks: [], claims: [], warn: (w) => warnings.push(w) });
  return { actual, changes, warnings };
}

function apply(p: DomainParams, actual: DomainProbeState, changes: Change[]): void {
  const steps = changes.filter((c) => c.scope !== 'pending').map((change) => ({ label: change.target, commands: changeCommands(libvirtDomain, change) }));
  const mark = newMark();
  const result = spawnSync('/bin/sh', ['-s'], { input: buildApplyScript(steps, mark), encoding: 'utf8' });
  const { outcomes } = parseApplyOutput(result.stdout, mark, steps);
  for (const outcome of outcomes) assert.equal(outcome.status, 'ok', `${outcome.label}: ${outcome.output}`);
}

const summary = (changes: Change[]) => changes.map((c) => `${c.scope} ${c.target.replace(`${NAME}/`, '')}`).sort();

const qemuThreads = () => parseQemuThreads(sh(qemuThreadsScript(NAME)));

test('a running domain: plan splits persist, runtime and pending; apply converges to pending only', () => {
  const p = params();
  const first = plan(p);
  assert.deepEqual(summary(first.changes), [
    'pending controller[scsi0].queues', 'pending disk[vda].cache', 'pending disk[vda].io',
    'persist config',
    'runtime blkiotune.weight', 'runtime cputune.emulatorpin', 'runtime cputune.vcpupin[0]', 'runtime cputune.vcpupin[1]',
    'runtime disk[vda].iotune.total_iops_sec', 'runtime memtune.soft_limit', 'runtime numatune.nodeset',
  ].sort());
  apply(p, first.actual, first.changes);
  const second = plan(p);
  assert.deepEqual(summary(second.changes), ['pending controller[scsi0].queues', 'pending disk[vda].cache', 'pending disk[vda].io']);
  const inactive = virsh('dumpxml', '--inactive', '--domain', NAME);
  assert.match(inactive, /<driver name='qemu' type='raw' cache='none' io='native'\/>/);
  assert.match(inactive, /<vcpupin vcpu='1' cpuset='\d+'\/>/);
  assert.match(inactive, /<mac address=/, 'the MAC libvirt generated is kept');
});

test('the kernel enforces the pinning on the qemu threads', () => {
  const threads = qemuThreads();
  const first = facts.cpusOnline[0]!;
  const last = facts.cpusOnline[facts.cpusOnline.length - 1]!;
  assert.deepEqual(vcpuThread(threads, 0)?.cpus, [first]);
  assert.deepEqual(vcpuThread(threads, 1)?.cpus, [last]);
  assert.deepEqual(emulatorThread(threads)?.cpus, [first], 'emulator thread pinned');
  const view = libvirtDomain.parse(sh(libvirtDomain.probe(libvirtDomain.factsParams!)), libvirtDomain.factsParams!);
  const seen = view.host.running.find((d) => d.name === NAME);
  assert.equal(seen?.libvirt.vcpupin['1'], String(last));
  assert.ok(seen?.kernel.some((t) => /^CPU 1\//.test(t.comm) && t.cpus === String(last)));
});

test('restart: true restarts the guest and leaves nothing pending', () => {
  const p = params({ restart: true, force_restart: true, restart_timeout: 2 });
  const first = plan(p);
  assert.deepEqual(summary(first.changes), ['runtime restart']);
  apply(p, first.actual, first.changes);
  assert.deepEqual(plan(p).changes, []);
  assert.match(virsh('dumpxml', '--domain', NAME), /<driver name='qemu' type='raw' cache='none' io='native'\/>/);
});

test('a graceful restart that times out fails without destroying the guest', () => {
  const p = params({ restart: true, restart_timeout: 1, scsi_queues: 1 });
  const first = plan(p);
  assert.deepEqual(summary(first.changes), ['persist config', 'runtime restart']);
  const steps = first.changes.filter((c) => c.scope !== 'pending').map((change) => ({ label: change.target, commands: changeCommands(libvirtDomain, change) }));
  const mark = newMark();
  const result = spawnSync('/bin/sh', ['-s'], { input: buildApplyScript(steps, mark), encoding: 'utf8' });
  const failed = parseApplyOutput(result.stdout, mark, steps).outcomes.find((o) => o.status === 'failed');
  assert.match(failed?.output ?? '', /did not shut down within 1 s/);
  assert.match(virsh('domstate', '--domain', NAME), /running/, 'the guest (no OS) ignores ACPI shutdown and is not destroyed');
});

test('a live step refuses a domain restarted since it was read, as the define step refuses a changed config', () => {
  const p = params({ cputune: { vcpupin: { 0: String(facts.cpusOnline[facts.cpusOnline.length - 1]!) } } });
  const pinnedFirst = params({ cputune: { vcpupin: { 0: String(facts.cpusOnline[0]!) } } });
  apply(pinnedFirst, plan(pinnedFirst).actual, plan(pinnedFirst).changes);
  const planned = plan(p);
  const live = planned.changes.filter((c) => c.scope === 'runtime');
  assert.ok(live.length, 'a live change is planned');
  virsh('destroy', '--domain', NAME);
  virsh('start', '--domain', NAME);
  const steps = live.map((change) => ({ label: change.target, commands: changeCommands(libvirtDomain, change) }));
  const mark = newMark();
  const result = spawnSync('/bin/sh', ['-s'], { input: buildApplyScript(steps, mark), encoding: 'utf8' });
  const failed = parseApplyOutput(result.stdout, mark, steps).outcomes.find((o) => o.status === 'failed');
  assert.match(failed?.output ?? '', /the running domain changed since it was read \(restarted or replaced\)/);
});

test('one virsh per domain: names with quotes, backslashes and semicolons reach virsh intact', () => {
  // Names no task could select (the schema refuses them) still get listed and read on a host that has them.
  const odd = [`${NAME} it's "odd"; x`, `${NAME} back\\slash`];
  const xmlName = (name: string) => name.replace(/&/g, '&amp;').replace(/'/g, '&apos;').replace(/"/g, '&quot;');
  for (const [index, name] of odd.entries()) {
    const file = join(dir, `odd-${index}.xml`);
    writeFileSync(file, testDomainXml('ODD', join(dir, 'disk.raw')).replace('<name>ODD</name>', `<name>${xmlName(name)}</name>`));
    virsh('define', '--file', file);
  }
  try {
    const p = libvirtDomain.normalize!({ pattern: `${NAME}*` });
    const script = libvirtDomain.probe(p);
    const actual = libvirtDomain.parse(sh(script), p);
    const byName = new Map(actual.domains.map((d) => [d.name, d]));
    for (const name of odd) {
      const domain = byName.get(name);
      assert.equal(domain?.state, 'shut off', name);
      assert.match(domain?.inactive ?? '', new RegExp(`<name>${xmlName(name).replace(/[\\^$.*+?()[\]{}|]/g, '\\$&')}</name>`));
      assert.equal(domain?.live, null, `${name}: a shut-off domain has no live part`);
    }
    const running = byName.get(NAME);
    assert.equal(running?.state, 'running');
    assert.match(running?.live ?? '', /<domain type='qemu' id='\d+'>/);
    assert.deepEqual(Object.keys(running?.tools ?? {}).sort(), ['blkiotune', 'dommemstat', 'emulatorpin', 'memtune', 'numatune', 'schedinfo', 'vcpupin']);
    // The running domain's pinning in the facts too (its reads share one virsh run).
    assert.ok(Object.keys(actual.host.running.find((d) => d.name === NAME)?.libvirt.vcpupin ?? {}).length > 0);
    // virsh processes: one list for the facts, one per running domain, one list, one per defined domain.
    const trace = join(dir, 'trace');
    const traced = spawnSync('strace', ['-f', '-qq', '-e', 'trace=execve', '-o', trace, '/bin/sh', '-c', script], { encoding: 'utf8', maxBuffer: 64 << 20 });
    assert.equal(traced.status, 0, `strace (apt-get install strace): ${traced.stderr}`);
    const virshRuns = sh(`grep -c 'execve("[^"]*/virsh"' ${trace} || true`).trim();
    // Counted from the traced run's own output: the other libvirt test file defines and
    // undefines its domains on the same daemon meanwhile, so a separate `virsh list` races.
    const seen = libvirtDomain.parse(traced.stdout, p);
    assert.ok(seen.domains.length >= 3 && seen.host.running.length >= 1, 'the traced run read the domains');
    assert.equal(Number(virshRuns), 2 + seen.domains.length + seen.host.running.length);
  } finally {
    for (const name of odd) spawnSync('virsh', ['-c', 'qemu:///system', 'undefine', '--domain', name]);
  }
});
