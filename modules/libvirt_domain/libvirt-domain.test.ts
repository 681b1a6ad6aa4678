import { test } from 'node:test';
import assert from 'node:assert/strict';
import { libvirtDomain } from './index.js';
import { fixture as readFixture } from '../../test/helpers/paths.js';
import type { DomainParams } from './params.js';
import type { DomainProbeState } from './probe.js';
import { parseEmulatorpin, parseFields, parseVcpupin } from './probe.js';
import { buildLeaves, readCachetunes } from './leafset.js';
import { ABSENT } from './leaves.js';
import { parseXml, serializeXml } from './domain-xml.js';
import { compile } from '../../src/config/schema.js';
import { contentSha } from '../../src/kit/remote-lib.js';
import type { HostFacts } from '../../src/kit/host-facts.js';
import { type Change, type Diagnostic, type PlanContext } from '../../src/kit/module.js';
import { changeCommands, diffOf } from '../../test/helpers/plan.js';

const fixture = (name: string) => readFixture('libvirt_domain', name);
const RECORDED = 'debian12-libvirt9-probe-running-and-shutoff.txt';
const OLD = 'rhel7-libvirt4-probe-running.txt';

const FACTS = {
  cpusOnline: [0, 1, 2, 3], numaNodes: [{ id: 0, cpus: [0, 1], memTotalKiB: 1, memFreeKiB: 1 }, { id: 1, cpus: [2, 3], memTotalKiB: 1, memFreeKiB: 1 }],
  hugepageSizesKiB: [2048, 1048576], threadSiblings: {}, resctrl: [],
} as unknown as HostFacts;

const norm = (raw: Record<string, unknown>): DomainParams => libvirtDomain.normalize!(raw);
const state = (file: string, params: DomainParams): DomainProbeState => libvirtDomain.parse(fixture(file), params);

/** Another task of the play that grows a hugepage pool. */
const POOL: PlanContext['claims'][number] = { task: 'pool', claims: [{ kind: 'hugepage-pool', sizeKiB: 2048, node: null, count: 64 }] };

function plan(raw: Record<string, unknown>, file = RECORDED, tasks: PlanContext['tasks'] = [], claims: PlanContext['claims'] = []): { changes: Change[]; warnings: string[]; params: DomainParams; actual: DomainProbeState } {
  const params = norm(raw);
  const actual = state(file, params);
  const warnings: string[] = [];
  const changes = diffOf(libvirtDomain, params, actual, { facts: FACTS, tasks, claims, warn: (w) => warnings.push(w) });
  return { changes, warnings, params, actual };
}
const brief = (changes: Change[]) => changes.map((c) => `${c.scope} ${c.target} ${c.before} -> ${c.after}`);
const errorsOf = (d: Diagnostic[]) => d.filter((x) => x.severity === 'error').map((x) => x.message);

/** kc-tuned as it is defined, written the way a user would (other units, orders and cpuset forms). */
const TUNED_AS_IS = {
  name: 'kc-tuned',
  vcpu: { count: 4, current: 2, placement: 'static' },
  cputune: { vcpupin: { 1: '1', 0: '0' }, emulatorpin: '0,1', shares: 2048 },
  numatune: { mode: 'preferred', nodeset: '0' },
  cpu: { topology: { sockets: 2, cores: 2, threads: 1 }, numa: [{ id: 1, cpus: '2,3', memory_kib: 65536 }, { id: 0, cpus: '0-1', memory_kib: 65536 }] },
  memory_backing: { nosharepages: true },
  memtune: { hard_limit_kib: 524288, soft_limit_kib: 262144 },
  interfaces: [{ match: { mac: '52:54:00:12:34:56' }, model: 'virtio' }],
  disks: [{ target: 'vda', cache: 'none', io: 'native', iotune: { total_iops_sec: 500 } }],
  scsi_queues: 2,
  blkiotune: { weight: 300 },
};

test('parse reads the recorded probe: host facts, a running and a shut-off domain', () => {
  const actual = state(RECORDED, norm({ pattern: 'kc-*' }));
  assert.deepEqual(actual.host.cpusOnline, [0, 1]);
  assert.equal(actual.host.virsh, true);
  assert.deepEqual(actual.host.hugepages.map((p) => p.sizeKiB).sort(), [1048576, 2048]);
  assert.equal(actual.host.defaultHugepageKiB, 2048);
  const [probe, tuned] = actual.domains;
  assert.equal(probe?.state, 'running');
  assert.match(probe?.live ?? '', /<domain type='qemu' id='\d+'>/);
  assert.deepEqual(Object.keys(probe?.tools ?? {}).sort(), ['blkdeviotune vda', 'blkiotune', 'emulatorpin', 'memtune', 'numatune', 'schedinfo', 'vcpupin']);
  assert.equal(tuned?.state, 'shut off');
  assert.equal(tuned?.live, null);
  assert.match(tuned?.inactive ?? '', /<vcpu placement='static' current='2'>4<\/vcpu>/);
  const running = actual.host.running.find((d) => d.name === 'kc-probe');
  assert.ok(running?.kernel.some((t) => /^CPU 0\//.test(t.comm)));
  assert.equal(running?.libvirt.numaMode, 'strict');
});

test('virsh tool output parsers read the recorded and the old (libvirt 4) table forms', () => {
  assert.deepEqual(parseVcpupin(fixture('kc-probe.vcpupin.txt')), { 0: '1', 1: '0-1' });
  assert.deepEqual(parseVcpupin('VCPU: CPU Affinity\n------\n   0: 0,1,2\n   1: 3\n'), { 0: '0-2', 1: '3' });
  assert.equal(parseEmulatorpin(fixture('kc-probe.emulatorpin.txt')), '0-1');
  assert.equal(parseFields(fixture('kc-probe.memtune.txt')).swap_hard_limit, 'unlimited');
  assert.equal(parseFields(fixture('kc-probe.schedinfo.txt')).cpu_shares, '1024');
  assert.equal(parseFields(fixture('kc-probe.blkdeviotune-vda.txt')).total_iops_sec, '0');
});

test('no-op: a domain already as asked gives no change (units, order, cpuset forms, defaults, MAC case)', () => {
  const { changes, warnings } = plan(TUNED_AS_IS);
  assert.deepEqual(changes, []);
  assert.deepEqual(warnings, []);
});

test('a shut-off domain gets only a persist change, whose diff touches only owned lines', () => {
  const { changes } = plan({ ...TUNED_AS_IS, cputune: { vcpupin: { 0: '1' } }, memtune: { hard_limit_kib: 1048576 }, vcpu: { current: 3 } });
  assert.deepEqual(brief(changes), ['persist kc-tuned/config vcpu.current=2, cputune.vcpupin[0]=0, memtune.hard_limit=524288 -> vcpu.current=3, cputune.vcpupin[0]=1, memtune.hard_limit=1048576']);
  const diff = changes[0]!.diff!;
  const before = diff.before.split('\n');
  const after = diff.after.split('\n');
  assert.equal(before.length, after.length);
  const changed = after.filter((line, i) => line !== before[i]);
  assert.deepEqual(changed, ['    <hard_limit unit="KiB">1048576</hard_limit>', '  <vcpu placement="static" current="3">4</vcpu>', '    <vcpupin vcpu="0" cpuset="1"/>']);
});

test('every setting family plans a change on the recorded shut-off domain', () => {
  const { changes } = plan({
    name: 'kc-tuned', vcpu: { cpuset: '0-1', placement: 'auto' }, cputune: { period: 100000, quota: 50000 }, numatune: { placement: 'auto' },
    cpu: { mode: 'host-passthrough', topology: { sockets: 1, cores: 4, threads: 1 }, numa: [{ id: 0, cpus: '0-3', memory_kib: 131072 }] },
    memory_backing: { hugepages: { size: '2M' }, locked: true, nosharepages: false }, memtune: { hard_limit_kib: 262144, swap_hard_limit_kib: 524288 },
    interfaces: [{ match: { index: 0 }, rx_frames: 7, model: 'e1000' }], disks: [{ target: 'vda', cache: 'writeback', io: 'threads', iotune: { total_iops_sec: 0, read_bytes_sec: 1000000 } }],
    scsi_queues: 4, blkiotune: { devices: [{ path: '/dev/sda', weight: 400 }] },
  }, RECORDED, [], [POOL]);
  const persist = changes.find((c) => c.scope === 'persist')!;
  for (const key of ['vcpu.placement', 'vcpu.cpuset', 'cputune.period', 'cputune.quota', 'numatune.placement', 'numatune.nodeset', 'cpu.mode', 'cpu.topology', 'cpu.numa', 'memory_backing.hugepages',
    'memory_backing.locked', 'memory_backing.nosharepages', 'memtune.swap_hard_limit', 'interface[#0].rx_frames', 'interface[#0].model', 'disk[vda].cache', 'disk[vda].io',
    'disk[vda].iotune.total_iops_sec', 'disk[vda].iotune.read_bytes_sec', 'controller[scsi0].queues', 'blkiotune.device[/dev/sda]']) {
    assert.match(persist.after!, new RegExp(`${key.replace(/[[\]./]/g, '\\$&')}=`), key);
  }
  const xml = persist.diff!.after;
  assert.match(xml, /<cpu mode="host-passthrough">/);
  assert.doesNotMatch(xml, /qemu64/, 'the custom model goes with mode=custom');
  assert.match(xml, /<hugepages>\n\s+<page size="2048" unit="KiB"\/>\n\s+<\/hugepages>\n\s+<locked\/>/);
  assert.doesNotMatch(xml, /nosharepages|total_iops_sec/);
  assert.match(xml, /<memory placement="auto" mode="preferred"\/>|<memory mode="preferred" placement="auto"\/>/);
  assert.match(xml, /<coalesce>\n\s+<rx>\n\s+<frames max="7"\/>/);
  assert.match(xml, /<device>\n\s+<path>\/dev\/sda<\/path>\n\s+<weight>400<\/weight>/);
  assert.match(xml, /<cell id="0" cpus="0-3" memory="131072" unit="KiB"\/>/);
  assert.doesNotMatch(xml, /<cell id="1"/);
  assert.match(xml, /<address type="pci" domain="0x0000" bus="0x00" slot="0x02" function="0x0"\/>/, 'addresses kept');
});

test('a running domain: live-capable settings are runtime changes, the rest pending on guest restart', () => {
  const { changes } = plan({
    name: 'kc-probe', vcpu: { current: 2 }, cputune: { vcpupin: { 0: '0' }, emulatorpin: '1', shares: 512 }, memtune: { soft_limit_kib: 262144 },
    blkiotune: { weight: 200 }, disks: [{ target: 'vda', cache: 'none', iotune: { write_iops_sec: 300 } }], numatune: { nodeset: '0' }, cpu: { mode: 'host-model' },
  });
  assert.deepEqual(brief(changes).filter((c) => !c.startsWith('persist')), [
    'runtime kc-probe/cputune.vcpupin[0] 1 -> 0',
    'runtime kc-probe/cputune.emulatorpin 0-1 -> 1',
    'runtime kc-probe/cputune.shares 1024 -> 512',
    'runtime kc-probe/numatune.nodeset null -> 0',
    'runtime kc-probe/memtune.soft_limit unlimited -> 262144',
    'runtime kc-probe/disk[vda].iotune.write_iops_sec 0 -> 300',
    'runtime kc-probe/blkiotune.weight 100 -> 200',
    'pending kc-probe/cpu.mode custom -> host-model',
    'pending kc-probe/disk[vda].cache null -> none',
  ]);
  assert.ok(changes.filter((c) => c.scope === 'pending').every((c) => c.pendingOn === 'guest-restart' && c.reason));
});

test('restart: true turns the pending settings into one restart change; the shut-off domain needs none', () => {
  const { changes } = plan({ pattern: 'kc-*', restart: true, disks: [{ target: 'vda', cache: 'none' }] });
  assert.deepEqual(brief(changes), [
    'persist kc-probe/config disk[vda].cache=(unset) -> disk[vda].cache=none',
    'runtime kc-probe/restart running -> restarted',
  ]);
  assert.match(changes[1]!.reason!, /disk\[vda\]\.cache .*fails rather than destroy/);
});

test('vCPUs: raised live up to the maximum, never lowered live; the maximum waits for a restart', () => {
  const probe = fixture(RECORDED).replaceAll("<vcpu placement='static'>2</vcpu>", "<vcpu placement='static' current='1'>2</vcpu>");
  const params = norm({ name: 'kc-probe', vcpu: { current: 2 } });
  const actual = libvirtDomain.parse(probe, params);
  const changes = diffOf(libvirtDomain, params, actual, { facts: FACTS, tasks: [], claims: [], warn: () => undefined });
  assert.ok(brief(changes).includes('runtime kc-probe/vcpu.current 1 -> 2'), brief(changes).join('\n'));
  assert.deepEqual(brief(plan({ name: 'kc-probe', vcpu: { count: 2, current: 1 } }).changes).slice(1), ['pending kc-probe/vcpu.current 2 -> 1']);
  assert.deepEqual(brief(plan({ name: 'kc-probe', vcpu: { count: 3 } }).changes).slice(1), ['pending kc-probe/vcpu.count 2 -> 3', 'pending kc-probe/vcpu.current 2 -> 3']);
});

test('a memory mode change keeps the nodeset pending; host-model live as custom does not flap', () => {
  const { changes } = plan({ name: 'web1', numatune: { mode: 'preferred', nodeset: '1' }, cpu: { mode: 'host-model' } }, OLD);
  assert.deepEqual(brief(changes).slice(1), ['pending web1/numatune.nodeset 0 -> 1', 'pending web1/numatune.mode strict -> preferred']);
  assert.match(changes[1]!.reason!, /only in restrictive mode \(it runs in strict mode\)/);
  assert.match(changes[2]!.reason!, /cannot change the memory mode of a running domain/);
  assert.deepEqual(plan({ name: 'web1', cpu: { mode: 'host-model', topology: { sockets: 1, cores: 2, threads: 1 } } }, OLD).changes, []);
});

test('older libvirt shapes: old vcpupin table, no dies attribute, upper-case MAC, interface matched by live target', () => {
  const { changes } = plan({ name: 'web1', cputune: { vcpupin: { 0: '0', 1: '1' } }, interfaces: [{ match: { target: 'vnet3' }, queues: 2 }] }, OLD);
  assert.deepEqual(brief(changes).slice(1), [
    'runtime web1/cputune.vcpupin[0] 0-3 -> 0',
    'runtime web1/cputune.vcpupin[1] 0-3 -> 1',
    'pending web1/interface[vnet3].queues 1 -> 2',
  ]);
  assert.match(changes[0]!.diff!.after, /<mac address="52:54:00:AB:CD:EF"\/>\n\s+<source bridge="br0"\/>\n\s+<model type="virtio"\/>\n\s+<driver queues="2"\/>/);
});

test('persist commands: sha guard, define from a temp file, read-back by xpath (every xpath in one virsh run)', () => {
  const { changes, actual } = plan({ name: 'kc-tuned', cputune: { vcpupin: { 0: '1' } } });
  const commands = changeCommands(libvirtDomain, changes[0]!);
  const sha = contentSha(actual.domains.find((d) => d.name === 'kc-tuned')!.inactive);
  assert.match(commands[0]!, /^kc_lv_field\(\)/);
  assert.ok(commands[1]!.startsWith(`kc_lv_define qemu:///system kc-tuned ${sha} '<domain type="qemu">`));
  assert.deepEqual(commands.slice(2), [
    'if virsh help dumpxml 2>/dev/null | grep -q -e --xpath; then',
    `  kc_lv_xps qemu:///system kc-tuned @@kc-xp-${sha.slice(0, 16)}@ '/domain/cputune/vcpupin[@vcpu='\\''0'\\'']/@cpuset'`,
    `  kc_lv_xp '/domain/cputune/vcpupin[@vcpu='\\''0'\\'']/@cpuset' 1 '(absent)'`,
    `else echo 'this virsh has no dumpxml --xpath: the owned settings are checked by the verify pass'; fi`,
  ]);
});

test('runtime and restart commands are exact', () => {
  const running = plan({ name: 'kc-probe', cputune: { vcpupin: { 0: '0' } }, memtune: { soft_limit_kib: 262144 }, restart: true, force_restart: true, restart_timeout: 30, disks: [{ target: 'vda', cache: 'none' }] });
  const byTarget = (t: string) => changeCommands(libvirtDomain, running.changes.find((c) => c.target === t)!);
  const guard = /^kc_lv_same qemu:\/\/\/system kc-probe [0-9a-f-]{36} 3$/;
  assert.match(byTarget('kc-probe/cputune.vcpupin[0]')[1]!, guard, 'a live step first checks the domain still runs as the instance that was read');
  assert.match(byTarget('kc-probe/restart')[1]!, guard);
  assert.deepEqual(byTarget('kc-probe/cputune.vcpupin[0]').slice(2), [
    'virsh -c qemu:///system vcpupin --domain kc-probe --vcpu 0 --cpulist 0 --live </dev/null',
    `kc_lv_check 'kc-probe vCPU 0 pinning' 0 "$(virsh -c qemu:///system vcpupin --domain kc-probe --vcpu 0 --live </dev/null | awk -v v=0 '{sub(/:$/, "", $1)} $1 == v {print $2}')"`,
  ]);
  assert.deepEqual(byTarget('kc-probe/memtune.soft_limit').slice(2), [
    'virsh -c qemu:///system memtune --domain kc-probe --soft-limit 262144 --live </dev/null',
    `kc_lv_check 'kc-probe memtune soft_limit' 262144 "$(virsh -c qemu:///system memtune --domain kc-probe --live </dev/null | kc_lv_field soft_limit)"`,
  ]);
  assert.equal(byTarget('kc-probe/restart')[2], 'kc_lv_restart qemu:///system kc-probe 30 1');
});

test('rules: offline CPUs, missing nodes, page sizes, min_guarantee, iotune combinations, cells, vcpu counts', () => {
  const rules = (raw: Record<string, unknown>) => errorsOf(libvirtDomain.rules!(norm({ name: 'g1', ...raw }), FACTS));
  assert.deepEqual(rules({ cputune: { vcpupin: { 0: '7' } } }), ['g1: cputune.vcpupin[0]: CPU 7 is not online on this host (online: 0-3)']);
  assert.deepEqual(rules({ numatune: { nodeset: '0-2' } }), ['g1: numatune.nodeset: NUMA node 2 does not exist on this host (nodes: 0-1)']);
  assert.match(rules({ memory_backing: { hugepages: { size_kib: 1048576 } } }).join(), /^$/);
  assert.match(errorsOf(libvirtDomain.rules!(norm({ name: 'g1', memory_backing: { hugepages: { size: '1G' } } }), { ...FACTS, hugepageSizesKiB: [2048] })).join(), /no 1048576 KiB pages.*pdpe1gb/);
  assert.match(rules({ memtune: { min_guarantee_kib: 4096 } }).join(), /min_guarantee_kib is not supported by libvirt's QEMU driver/);
  assert.match(rules({ disks: [{ target: 'vda', iotune: { total_iops_sec: 1, read_iops_sec: 1 } }] }).join(), /total_iops_sec cannot be combined/);
  assert.match(rules({ cpu: { numa: [{ id: 0, cpus: '0-1', memory_kib: 1024 }, { id: 1, cpus: '1-2', memory_kib: 1024 }] } }).join(), /vCPU 1 is in cell 0 and cell 1/);
  assert.match(rules({ vcpu: { count: 2, current: 3 } }).join(), /vcpu.current 3 is above vcpu.count 2/);
  const warnings = libvirtDomain.rules!(norm({ name: 'g1', cputune: { vcpupin: { 0: '0', 1: '1' }, emulatorpin: '2' } }), FACTS).filter((d) => d.severity === 'warning');
  assert.match(warnings[0]!.message, /emulatorpin runs on NUMA node 1 but the vCPUs are pinned to node 0/);
});

test('cachetune: the whole set of allocations is owned, sizes folded to KiB, monitors kept; pending on a running guest', () => {
  const tunes = [{ vcpus: '0-1', caches: [{ id: 0, level: 3, type: 'both', size_kib: 3072 }] }, { vcpus: '2,3', caches: [{ id: 0, level: 3, type: 'both', size_kib: 1024 }] }];
  const { changes } = plan({ name: 'kc-tuned', cputune: { cachetune: tunes } });
  assert.deepEqual(brief(changes), ['persist kc-tuned/config cputune.cachetune=(unset) -> cputune.cachetune=0-1=L3/0/both:3072KiB;2-3=L3/0/both:1024KiB']);
  const xml = changes[0]!.diff!.after;
  assert.match(xml, /<cachetune vcpus="0-1">\n\s+<cache id="0" level="3" type="both" size="3072" unit="KiB"\/>\n\s+<\/cachetune>/);
  assert.match(xml, /<emulatorpin cpuset="0-1"\/>\n\s+<cachetune vcpus="0-1">/, 'cachetune goes after the pins, as libvirt orders cputune');
  // libvirt prints 3 MiB as size='3' unit='MiB', and a size without a unit is in bytes
  const defined = fixture('kc-tuned.inactive.xml').replace('</cputune>', `  <cachetune vcpus='0-1'>\n      <cache id='0' level='3' type='both' size='3' unit='MiB'/>\n      <monitor level='3' vcpus='0-1'/>\n    </cachetune>\n    <cachetune vcpus='2-3'>\n      <cache id='0' level='3' type='both' size='1048576'/>\n    </cachetune>\n  </cputune>`);
  const root = parseXml(defined);
  assert.deepEqual(readCachetunes(root).map((t) => `${t.vcpus} ${t.caches.map((c) => c.size_kib)}`), ['0-1 3072', '2-3 1024']);
  const leaf = buildLeaves(norm({ name: 'kc-tuned', cputune: { cachetune: tunes } }), root, null)[0]!;
  assert.equal(leaf.read(root), leaf.want, 'no change when libvirt wrote the same allocation in other units');
  const removing = buildLeaves(norm({ name: 'kc-tuned', cputune: { cachetune: [] } }), root, null)[0]!;
  removing.write(root);
  assert.equal(removing.read(root), ABSENT);
  assert.match(serializeXml(root), /<cachetune vcpus="0-1">\s*<monitor level="3" vcpus="0-1"\/>\s*<\/cachetune>/, 'a monitor is not ours to remove');
  assert.doesNotMatch(serializeXml(root), /vcpus="2-3"/);
  const running = plan({ name: 'kc-probe', cputune: { cachetune: [{ vcpus: '0', caches: [{ id: 0, level: 3, type: 'both', size_kib: 2048 }] }] } });
  assert.deepEqual(running.changes.map((c) => `${c.scope} ${c.target} ${c.pendingOn ?? ''}`), ['persist kc-probe/config ', 'pending kc-probe/cputune.cachetune guest-restart']);
});

test('cachetune rules: resctrl must offer the level (CDP for code/data), vCPU sets must not overlap or exceed the guest', () => {
  const rules = (cachetune: unknown[], resctrl: string[]) => errorsOf(libvirtDomain.rules!(norm({ name: 'g1', cputune: { cachetune } }), { ...FACTS, resctrl }));
  const l3 = (vcpus: string, type = 'both') => ({ vcpus, caches: [{ id: 0, level: 3, type, size_kib: 2048 }] });
  assert.match(rules([l3('0')], []).join(), /g1: cputune.cachetune: this host offers no cache allocation/);
  assert.deepEqual(rules([l3('0-1'), l3('2-3')], ['L3', 'MB']), []);
  assert.match(rules([l3('0', 'code')], ['L3']).join(), /L3 code allocation is not offered by this host \(code\/data needs CDP/);
  assert.deepEqual(rules([l3('0', 'data')], ['L3CODE', 'L3DATA']), []);
  assert.match(rules([l3('0-1'), l3('1-2')], ['L3']).join(), /vCPU 1 is in vcpus 0-1 and 1-2/);
  assert.throws(() => plan({ name: 'kc-tuned', cputune: { cachetune: [l3('3-5')] } }), /kc-tuned: cputune.cachetune\[3-5\]: vCPU 4-5 does not exist \(the guest has 4 vCPUs\)/);
});

test('domain checks stop the task before anything is written, naming guest and setting', () => {
  const fails = (raw: Record<string, unknown>, pattern: RegExp) => assert.throws(() => plan({ name: 'kc-tuned', ...raw }), pattern);
  fails({ cpu: { numa: [{ id: 0, cpus: '0-1', memory_kib: 65536 }] } }, /kc-tuned: cpu.numa: vCPU 2-3 is in no cell.*adds up to 65536 KiB but the guest has 131072 KiB/);
  fails({ cpu: { numa: [{ id: 0, cpus: '0,2', memory_kib: 65536 }, { id: 1, cpus: '1,3', memory_kib: 65536 }] } }, /socket 0 \(vCPUs 0-1\) is split over cells 0,1/);
  fails({ cpu: { topology: { sockets: 1, cores: 2, threads: 1 }, numa: [{ id: 0, cpus: '0-3', memory_kib: 131072 }] } }, /topology 1x2x1 does not make 4 vCPUs/);
  fails({ cputune: { vcpupin: { 5: '0' } } }, /cputune.vcpupin\[5\]: the guest has 4 vCPUs/);
});

test('locked needs a hard_limit from the task or the domain; io=native needs cache none/directsync', () => {
  assert.throws(() => plan({ name: 'kc-probe', memory_backing: { locked: true } }), /kc-probe: memory_backing.locked needs memtune.hard_limit_kib/);
  assert.doesNotThrow(() => plan({ name: 'kc-tuned', memory_backing: { locked: true } }), 'kc-tuned has a hard_limit already');
  assert.throws(() => plan({ name: 'kc-probe', disks: [{ target: 'vda', io: 'native' }] }), /disk vda: io=native needs cache=none or cache=directsync \(cache is default\)/);
  assert.doesNotThrow(() => plan({ name: 'kc-tuned', disks: [{ target: 'vda', io: 'native' }] }));
});

test('interfaces: more queues than vCPUs warns; multiqueue on type=user is refused', () => {
  assert.match(plan({ name: 'web1', interfaces: [{ match: { mac: '52:54:00:ab:cd:ef' }, queues: 4 }] }, OLD).warnings.join(), /4 queues for 2 vCPUs/);
  assert.throws(() => plan({ name: 'kc-tuned', interfaces: [{ match: { index: 0 }, queues: 2 }] }), /refuses multiqueue on type='user'/);
  assert.throws(() => plan({ name: 'kc-tuned', interfaces: [{ match: { target: 'vnet9' }, queues: 1 }] }), /no interface with target vnet9 \(targets are known only while the domain runs/);
  assert.throws(() => plan({ name: 'kc-tuned', disks: [{ target: 'vdz', cache: 'none' }] }), /no disk with target vdz/);
});

test('hugepages must fit the free pages of the guests of this task and of the play', () => {
  assert.throws(() => plan({ name: 'kc-tuned', memory_backing: { hugepages: { size: '2M' } } }), /guests kc-tuned \(64\) need 64 free 2048 KiB pages on NUMA node 0, the host has 0 free/);
  const withPool = plan({ name: 'web1', memory_backing: { hugepages: { size: '2M' } } }, OLD);
  assert.equal(withPool.changes[0]?.scope, 'persist', '512 free pages fit a 1 GiB guest');
  const other = { module: 'libvirt_domain', name: 'other', params: norm({ name: 'kc-probe', memory_backing: { hugepages: { size: '2M' } } }) };
  assert.throws(() => plan({ name: 'kc-tuned', memory_backing: { hugepages: { size: '2M' } } }, RECORDED, [other]), /guests kc-probe \(32\), kc-tuned \(64\) need 96/);
  assert.match(plan({ name: 'kc-tuned', memory_backing: { hugepages: { size: '2M' } } }, RECORDED, [], [POOL]).warnings.join(), /another task of this play may allocate more/);
});

test('a name that matches no domain is an error; a pattern that matches none warns', () => {
  assert.throws(() => plan({ name: 'nope' }), /no libvirt domain named 'nope'/);
  const { changes, warnings } = plan({ pattern: 'web-*' });
  assert.deepEqual(changes, []);
  assert.deepEqual(warnings, ["no libvirt domain matches 'web-*'"]);
});

test('the schema rejects hostile names, patterns, cpusets and paths', () => {
  const validate = compile(libvirtDomain.schema);
  for (const bad of [
    { name: "web'1" }, { name: 'web;rm -rf /' }, { name: '$(reboot)' }, { name: 'a\nb' }, { name: '-x' }, { pattern: 'web$(id)*' }, { pattern: 'a b' },
    { name: 'g', cputune: { vcpupin: { 0: '1;reboot' } } }, { name: 'g', cputune: { emulatorpin: '`id`' } }, { name: 'g', blkiotune: { devices: [{ path: '/dev/../etc/passwd', weight: 500 }] } },
    { name: 'g', disks: [{ target: 'vda"', cache: 'none' }] }, { name: 'g', interfaces: [{ match: { target: 'vnet0;id' }, queues: 2 }] }, { name: 'g', uri: 'qemu+ssh://evil/system' },
    { name: 'g', numatune: { nodeset: '0', placement: 'auto' } }, { name: 'g', pattern: 'g*' }, { name: 'g', memory_backing: { hugepages: { size: '3M' } } }, { name: 'g', bogus: 1 },
  ]) {
    assert.equal(validate(bad), false, JSON.stringify(bad));
  }
  assert.equal(validate(TUNED_AS_IS), true, JSON.stringify(validate.errors));
});

test('facts: the facts-only probe shows topology, pools and each running guest as libvirt and the kernel see it', () => {
  const params = libvirtDomain.factsParams!;
  assert.doesNotMatch(libvirtDomain.probe(params), /dumpxml/);
  const facts = libvirtDomain.parse(fixture('debian12-facts-only.txt'), params);
  assert.deepEqual(facts.domains, []);
  assert.deepEqual(facts.host.cpus.map((c) => c.siblings), [[0], [1]]);
  const guest = facts.host.running[0]!;
  assert.equal(guest.name, 'kc-probe');
  assert.ok(guest.pid);
  assert.ok(guest.kernel.find((t) => t.comm.startsWith('CPU 1/'))?.cpus);
  assert.ok(facts.host.pci.every((d) => Number.isInteger(d.node)));
});

/** The recorded running domain (kc-probe) with its live XML and virsh tools edited. */
function planEdited(raw: Record<string, unknown>, edit: (probe: string) => string, file = RECORDED): Change[] {
  const params = norm(raw);
  const actual = libvirtDomain.parse(edit(fixture(file)), params);
  return diffOf(libvirtDomain, params, actual, { facts: FACTS, tasks: [], claims: [], warn: () => undefined });
}

test('numatune, no live policy yet: mode and nodeset are set live in one call, which never names strict', () => {
  const { changes } = plan({ name: 'kc-probe', numatune: { mode: 'interleave', nodeset: '0' } });
  assert.deepEqual(brief(changes).slice(1), ['runtime kc-probe/numatune.nodeset null -> 0', 'runtime kc-probe/numatune.mode strict -> interleave']);
  assert.match(changes[1]!.reason!, /with mode interleave in one virsh numatune call/);
  assert.match(changeCommands(libvirtDomain, changes[1]!).join('\n'), /numatune --domain kc-probe --mode interleave --nodeset 0 --live/);
  assert.match(changeCommands(libvirtDomain, changes[2]!).join('\n'), /^kc_lv_check 'kc-probe numatune numa_mode' interleave/m, 'the mode step reads back what the nodeset step set');
  const strict = plan({ name: 'kc-probe', numatune: { mode: 'strict', nodeset: '0' } });
  const command = changeCommands(libvirtDomain, strict.changes[1]!).join('\n');
  assert.match(command, /numatune --domain kc-probe --nodeset 0 --live/);
  assert.doesNotMatch(command, /--mode/);
});

test('numatune with a live policy: the nodeset moves live only in restrictive mode; the mode never', () => {
  const restrictive = (probe: string) => probe.replaceAll("mode='strict' nodeset='0'", "mode='restrictive' nodeset='0'").replace(/numa_mode {6}: strict/, 'numa_mode      : restrictive');
  const moved = planEdited({ name: 'web1', numatune: { nodeset: '1' } }, restrictive, OLD);
  assert.deepEqual(brief(moved).slice(1), ['runtime web1/numatune.nodeset 0 -> 1']);
  const both = planEdited({ name: 'web1', numatune: { mode: 'strict', nodeset: '1' } }, restrictive, OLD);
  assert.deepEqual(brief(both).slice(1), ['runtime web1/numatune.nodeset 0 -> 1', 'pending web1/numatune.mode restrictive -> strict']);
  const strict = plan({ name: 'web1', numatune: { nodeset: '1' } }, OLD).changes;
  assert.deepEqual(brief(strict).slice(1), ['pending web1/numatune.nodeset 0 -> 1']);
  assert.match(strict[1]!.reason!, /only in restrictive mode \(it runs in strict mode\)/);
});

test('memtune: a hard_limit below what qemu uses now waits for a start; hard and swap travel together; hard above swap is refused', () => {
  const rss = (kib: number) => (probe: string) => probe.replace('@@tool\tblkiotune', `@@tool\tdommemstat\nactual 65536\nrss ${kib}\n\n@@end\n@@tool\tblkiotune`);
  const below = planEdited({ name: 'kc-probe', memtune: { hard_limit_kib: 40960 } }, rss(45356));
  assert.deepEqual(brief(below).slice(1), ['pending kc-probe/memtune.hard_limit unlimited -> 40960']);
  assert.match(below[1]!.reason!, /uses 45356 KiB now/);
  const { changes } = plan({ name: 'kc-probe', memtune: { hard_limit_kib: 1048576, swap_hard_limit_kib: 2097152 } });
  const hard = changes.find((c) => c.target.endsWith('memtune.hard_limit'))!;
  assert.match(changeCommands(libvirtDomain, hard)[2]!, /memtune --domain kc-probe --hard-limit 1048576 --swap-hard-limit 2097152 --live/);
  assert.throws(() => plan({ name: 'kc-tuned', memtune: { hard_limit_kib: 1048576, swap_hard_limit_kib: 524288 } }), /kc-tuned: memtune.hard_limit_kib 1048576 is above swap_hard_limit_kib 524288/);
});

test('iotune of a disk that the running domain does not have waits for its start', () => {
  const detached = (probe: string) => probe.replace("<target dev='vda' bus='virtio'/>\n      <alias", "<target dev='vdz' bus='virtio'/>\n      <alias");
  const changes = planEdited({ name: 'kc-probe', disks: [{ target: 'vda', iotune: { total_iops_sec: 100 } }] }, detached);
  assert.deepEqual(brief(changes).slice(1), ['pending kc-probe/disk[vda].iotune.total_iops_sec 0 -> 100']);
  assert.match(changes[1]!.reason!, /disk vda is not attached to the running domain/);
});

test('hugepages nodeset names guest NUMA cells: checked against the guest, not the host', () => {
  assert.throws(() => plan({ name: 'kc-probe', memory_backing: { hugepages: { size: '2M', nodeset: '1' } } }), /kc-probe: memory_backing.hugepages.nodeset 1 names guest NUMA cells, and it has no guest NUMA cells.*host NUMA nodes .* numatune.nodeset/);
  assert.throws(() => plan({ name: 'kc-tuned', memory_backing: { hugepages: { size: '2M', nodeset: '2' } } }), /its cells are 0-1; cell 2 does not exist/);
  // cell 1 exists; the pool it needs is counted on the host node numatune names (0), not on "node 1"
  assert.throws(() => plan({ name: 'kc-tuned', memory_backing: { hugepages: { size: '2M', nodeset: '1' } } }), /need 64 free 2048 KiB pages on NUMA node 0, the host has 0 free/);
  assert.deepEqual(errorsOf(libvirtDomain.rules!(norm({ name: 'g1', memory_backing: { hugepages: { size: '2M', nodeset: '3' } } }), FACTS)), [], 'host nodes are not what it names');
});

test('a domain description cannot forge probe sections: the markers are drawn at random per probe', () => {
  const probe = libvirtDomain.probe(norm({ name: 'kc-probe' }));
  const again = libvirtDomain.probe(norm({ name: 'kc-probe' }));
  const mark = /^printf '@@libvirt-probe\\t%s\\n' '(@@[0-9a-f]{16}@)'/.exec(probe)?.[1];
  assert.ok(mark, probe.slice(0, 200));
  assert.notEqual(again, probe);
  const forged = fixture(RECORDED)
    .replace(/^@@libvirt-probe\t@@$/m, `@@libvirt-probe\t${mark}`)
    .replaceAll(/^@@(domain|xml|tool|end)/gm, `${mark}$1`)
    .replace('<name>kc-probe</name>', '<name>kc-probe</name>\n  <description>\n@@end\n@@domain\tevil\trunning\t1\n</description>');
  const actual = libvirtDomain.parse(forged, norm({ pattern: '*' }));
  assert.deepEqual(actual.domains.map((d) => d.name), ['kc-probe', 'kc-tuned']);
  assert.match(actual.domains[0]!.inactive!, /@@domain\tevil/, 'the forged lines stay inside the XML');
});

test('every libvirt_domain parameter has a description', () => {
  const missing: string[] = [];
  const walk = (schema: Record<string, unknown>, path: string) => {
    for (const [key, value] of Object.entries((schema.properties ?? {}) as Record<string, Record<string, unknown>>)) {
      if (typeof value.description !== 'string' || !value.description) missing.push(`${path}.${key}`);
      walk(value, `${path}.${key}`);
      if (value.items) walk(value.items as Record<string, unknown>, `${path}.${key}[]`);
      for (const branch of (value.anyOf ?? []) as Array<Record<string, unknown>>) walk(branch, `${path}.${key}`);
    }
  };
  walk(libvirtDomain.schema as Record<string, unknown>, 'libvirt_domain');
  assert.deepEqual(missing, []);
});

test('rules: a passed-through VF on another NUMA node than the pinned vCPUs warns; node -1, an unpinned guest or the same node do not', async () => {
  const { hostdevNumaDiagnostics, hostdevAddresses } = await import('./rules.js');
  const xml = (pins: string) => parseXml(`<domain type='kvm'><name>web1</name><vcpu placement='static'>2</vcpu>${pins}<devices>
    <hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x81' slot='0x10' function='0x2'/></source><address type='pci' domain='0x0000' bus='0x07' slot='0x00' function='0x0'/></hostdev>
    <interface type='hostdev' managed='yes'><source><address type='pci' domain='0x0000' bus='0x00' slot='0x1f' function='0x6'/></source></interface>
    <hostdev mode='subsystem' type='usb'><source><address bus='1' device='2'/></source></hostdev>
  </devices></domain>`);
  const host = {
    virsh: true, cpusOnline: [0, 1, 2, 3], cpus: [], nodes: [{ id: 0, cpus: [0, 1] }, { id: 1, cpus: [2, 3] }], defaultHugepageKiB: 2048, hugepages: [], running: [], hostdevs: [],
    pci: [{ address: '0000:81:10.2', class: '0x020000', node: 1, netdevs: [], driver: 'vfio-pci', physfn: '0000:81:00.0' }, { address: '0000:00:1f.6', class: '0x020000', node: -1, netdevs: [] }],
  };
  const pinned = xml("<cputune><vcpupin vcpu='0' cpuset='0'/><vcpupin vcpu='1' cpuset='1'/></cputune>");
  assert.deepEqual(hostdevAddresses(pinned), ['0000:81:10.2', '0000:00:1f.6'], 'the source addresses, not the guest side, no USB');
  const messages = (params: DomainParams, root = pinned) => hostdevNumaDiagnostics(params, root, 'web1', host).map((d) => `${d.severity}: ${d.message}`);
  assert.deepEqual(messages(norm({ name: 'web1' })), [
    'warning: web1: SR-IOV VF 0000:81:10.2 (of PF 0000:81:00.0) is on NUMA node 1 but the vCPUs are pinned to node 0: its DMA and interrupts cross nodes; give the guest a device on node 0 or pin it to node 1',
  ], 'node -1 of the second device never warns');
  assert.deepEqual(messages(norm({ name: 'web1', cputune: { vcpupin: { 0: '2', 1: '3' } } })), [], 'the task pins the vCPUs to the device\'s node');
  assert.deepEqual(messages(norm({ name: 'web1', cputune: { vcpupin: { 0: '1', 1: '3' } } })), [], 'spanning both nodes: the device\'s is one of them');
  assert.deepEqual(messages(norm({ name: 'web1' }), xml('')), [], 'an unpinned guest floats: nothing to compare');
  assert.equal(messages(norm({ name: 'web1', vcpu: { cpuset: '0-1' } }), xml('')).length, 1, 'vcpu cpuset pins too');
});
