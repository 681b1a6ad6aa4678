import { test } from 'node:test';
import assert from 'node:assert/strict';
import { numaPlacement, placementConflicts, type MODULE } from './index.js';
import type { PlacementParams } from './params.js';
import { libvirtDomain } from '../libvirt_domain/index.js';
import type { DomainProbeState } from '../libvirt_domain/probe.js';
import { fixture } from '../../test/helpers/paths.js';
import { compile } from '../../src/config/schema.js';
import type { HostFacts } from '../../src/kit/host-facts.js';
import type { Change, FleetTask, PlanContext } from '../../src/kit/module.js';

/** Two nodes of 4 cores x 2 threads (sibling of n is n+8); 2M pool: 512 free on node 0, 2048 on node 1; NIC ens1f0 on node 1. */
const PROBE = fixture('numa_placement', 'two-node-smt-probe.txt');
const FACTS = {
  cpusOnline: Array.from({ length: 16 }, (_, i) => i),
  numaNodes: [0, 1].map((id) => ({ id, cpus: [0, 1, 2, 3, 8, 9, 10, 11].map((cpu) => cpu + 4 * id), memTotalKiB: 8 * 1048576, memFreeKiB: 1048576 })),
  hugepageSizesKiB: [2048, 1048576], threadSiblings: {}, resctrl: [],
} as unknown as HostFacts;

const norm = (raw: Record<string, unknown>): PlacementParams => numaPlacement.normalize!(raw);

function plan(raw: Record<string, unknown>, probe = PROBE, tasks: PlanContext['tasks'] = []): { changes: Change[]; warnings: string[]; actual: DomainProbeState } {
  const params = norm(raw);
  const actual = numaPlacement.parse(probe, params);
  const warnings: string[] = [];
  const changes = numaPlacement.diff(params, actual, { facts: FACTS, tasks, claims: [], warn: (w) => warnings.push(w) });
  return { changes, warnings, actual };
}
const brief = (changes: Change[]) => changes.map((c) => `${c.scope} ${c.target} ${c.before} -> ${c.after}`);

const TASK = { guests: [{ name: 'db1', hugepages: '2M' }, { pattern: 'web*' }] };

/** The probe as it reads once the planned configs are defined (a running domain's live state left as it was). */
function defined(probe: string, changes: Change[]): string {
  let lines = probe.split('\n');
  for (const change of changes.filter((c) => c.target.endsWith('/config'))) {
    const name = change.target.slice(0, -'/config'.length);
    const at = lines.findIndex((line) => line.startsWith(`@@domain\t${name}\t`));
    const end = lines.indexOf('@@end', at);
    lines = [...lines.slice(0, at + 2), change.diff!.after.replace(/\n$/, ''), ...lines.slice(end)];
  }
  return lines.join('\n');
}

test('plan: placement handed to libvirt_domain; hugepages steer db1 to node 1, web1 re-pinned live, web2 kept', () => {
  const { changes, warnings } = plan(TASK);
  assert.deepEqual(warnings, []);
  assert.deepEqual(brief(changes), [
    'persist db1/config cputune.vcpupin[0]=(unset), cputune.vcpupin[1]=(unset), cputune.vcpupin[2]=(unset), cputune.vcpupin[3]=(unset), cputune.emulatorpin=(unset), numatune.nodeset=(unset), memory_backing.hugepages=(unset)'
      + ' -> cputune.vcpupin[0]=5, cputune.vcpupin[1]=13, cputune.vcpupin[2]=6, cputune.vcpupin[3]=14, cputune.emulatorpin=5-6,13-14, numatune.nodeset=1, memory_backing.hugepages=2048KiB',
    'persist web1/config cputune.vcpupin[0]=(unset), cputune.vcpupin[1]=(unset), cputune.emulatorpin=(unset), numatune.nodeset=(unset) -> cputune.vcpupin[0]=1, cputune.vcpupin[1]=9, cputune.emulatorpin=1,9, numatune.nodeset=0',
    'runtime web1/cputune.vcpupin[1] 0-1 -> 9',
    'runtime web1/cputune.emulatorpin 0-1 -> 1,9',
    'runtime web1/numatune.nodeset null -> 0',
  ]);
  for (const change of changes) {
    assert.equal(change.module, 'numa_placement' satisfies typeof MODULE);
    if (change.scope !== 'pending') assert.ok(change.commands?.length, `${change.target} carries its commands`);
  }
  const table = changes[0]!.reason!.split('\n');
  assert.deepEqual(table.slice(1), [
    'placement (reserved CPUs 0,4,8,12):',
    'guest  node  CPUs       emulator   memory             hugepages  why',
    'db1    1     5,13,6,14  5-6,13-14  2048 MiB@1 strict  2M@1       fits node 1; threads prefer',
    'web1   0     1,9        1,9        64 MiB@0 strict    -          fits node 0; threads prefer',
    'web2   1     7,15       7,15       1024 MiB@1 strict  -          current pinning kept: valid and free',
    'free CPUs after placement: node 0: 2-3,10-11; node 1: none',
  ]);
});

test('the commands are libvirt_domain\'s own for the same desired tuning (virsh define guarded by sha256, live steps guarded by uuid and id)', () => {
  const { changes } = plan(TASK);
  const persist = changes.find((c) => c.target === 'db1/config')!;
  assert.match(persist.commands!.join('\n'), /kc_lv_define qemu:\/\/\/system db1 [0-9a-f]{64} '<domain/);
  const live = changes.find((c) => c.target === 'web1/cputune.vcpupin[1]')!;
  assert.match(live.commands!.join('\n'), /kc_lv_same qemu:\/\/\/system web1 [0-9a-f-]{36} \d+/);
  assert.match(live.commands!.join('\n'), /vcpupin --domain web1 --vcpu 1 --cpulist 9 --live/);
});

test('second run: a domain holding its placement changes nothing, and a guest added later moves none of the others', () => {
  const first = plan(TASK);
  const after = defined(PROBE, first.changes);
  const again = plan(TASK, after);
  assert.deepEqual(brief(again.changes), ['runtime web1/cputune.vcpupin[1] 0-1 -> 9', 'runtime web1/cputune.emulatorpin 0-1 -> 1,9', 'runtime web1/numatune.nodeset null -> 0'], 'only the live steps not yet made (this probe still shows web1 as it ran)');
  // a fourth domain, shut off, 2 vCPUs: it takes node 0's free CPUs, nothing else moves
  const lines = after.split('\n');
  const web1 = lines.indexOf('@@domain\tweb1\trunning\t1');
  const app = ['@@domain\tapp1\tshut off\t1', '@@xml\tinactive', "<domain type='qemu'>", '  <name>app1</name>', "  <memory unit='KiB'>524288</memory>", "  <vcpu placement='static'>2</vcpu>", '</domain>', '@@end'];
  const withApp = [...lines.slice(0, web1), ...app, ...lines.slice(web1)].join('\n');
  const added = plan({ guests: [...TASK.guests, { name: 'app1' }] }, withApp);
  const db1 = (changes: Change[]) => changes.filter((c) => c.target.startsWith('db1/'));
  assert.deepEqual(db1(added.changes), []);
  assert.deepEqual(brief(added.changes.filter((c) => c.target.startsWith('app1/'))), [
    'persist app1/config cputune.vcpupin[0]=(unset), cputune.vcpupin[1]=(unset), cputune.emulatorpin=(unset), numatune.nodeset=(unset) -> cputune.vcpupin[0]=2, cputune.vcpupin[1]=10, cputune.emulatorpin=2,10, numatune.nodeset=0',
  ]);
  assert.match(added.changes[0]!.reason!, /web1   0     1,9 /);
});

test('a guest spanning nodes gets guest NUMA cells mirroring them, memory split to match', () => {
  const { changes } = plan({ reserved: '', guests: [{ name: 'db1', numa_nodes: 2, threads: 'isolate' }] });
  const persist = changes.find((c) => c.target === 'db1/config')!;
  assert.match(persist.after!, /cputune\.vcpupin\[0\]=0, cputune\.vcpupin\[1\]=1, cputune\.vcpupin\[2\]=4, cputune\.vcpupin\[3\]=5/);
  assert.match(persist.after!, /numatune\.nodeset=0-1/);
  assert.match(persist.diff!.after, /<cell id="0" cpus="0-1" memory="1048576" unit="KiB"\/>\n\s+<cell id="1" cpus="2-3" memory="1048576" unit="KiB"\/>/);
});

test('near an interface: the NIC\'s node when it has room', () => {
  const { changes } = plan({ guests: [{ name: 'web2', near: 'ens1f0' }, { name: 'db1', near: 'ens1f0' }] });
  assert.match(changes[0]!.reason!, /db1 +1 +5,13,6,14 .* fits node 1; near ens1f0 \(node 1\)/);
});

test('infeasible: an error naming guest and shortfall, no change planned', () => {
  assert.throws(() => plan({ guests: [{ name: 'db1', vcpus: 8, numa_nodes: 1 }] }), /placement not possible, nothing written: db1: no placement for 8 vCPUs .*node 0: 6 free CPUs/);
  assert.throws(() => plan({ guests: [{ name: 'db1', hugepages: '1G' }] }), /db1: no placement .*2 1048576 KiB hugepages on node 0, 0 free/);
  assert.throws(() => plan({ guests: [{ name: 'nope' }] }), /no libvirt domain named 'nope'/);
  assert.throws(() => plan({ guests: [{ name: 'db1' }, { pattern: 'db*' }] }), /db1 is selected by guests\[0\] and guests\[1\]/);
});

test('conflict: libvirt_domain pinning a placed domain is refused, in the plan and before connecting', () => {
  const pin = { module: 'libvirt_domain', name: 'pin web1', params: libvirtDomain.normalize!({ name: 'web1', cputune: { vcpupin: { 0: '3' } } }) };
  assert.throws(() => plan(TASK, PROBE, [pin]), /libvirt_domain task 'pin web1' sets vcpupin of web1/);
  const shares = { module: 'libvirt_domain', name: 'shares', params: libvirtDomain.normalize!({ name: 'web1', cputune: { shares: 2048 } }) };
  assert.doesNotThrow(() => plan(TASK, PROBE, [shares]), 'settings other than pinning may stay with libvirt_domain');
  const fleet = (module: string, name: string, params: unknown): FleetTask => ({ host: 'hv1', hostVars: {}, module, name, params });
  const found = placementConflicts([fleet('numa_placement', 'place', norm(TASK)), fleet('libvirt_domain', 'pin web1', pin.params), fleet('libvirt_domain', 'shares', shares.params)]);
  assert.deepEqual(found.map((d) => [d.severity, d.task.name]), [['error', 'pin web1']]);
  assert.match(found[0]!.message, /sets vcpupin of a domain numa_placement task 'place' places/);
  assert.equal(placementConflicts([fleet('numa_placement', 'a', norm(TASK)), fleet('numa_placement', 'b', norm(TASK))]).length, 1);
});

test('the schema refuses hostile names, patterns, CPU lists and device names', () => {
  const validate = compile(numaPlacement.schema);
  assert.equal(validate(TASK), true);
  assert.equal(validate({ ...TASK, reserved: '' }), true, 'no CPU kept for the host');
  for (const bad of [
    {}, { guests: [] }, { guests: [{ name: "db'1" }] }, { guests: [{ pattern: 'a b' }] }, { guests: [{ name: 'a', pattern: 'a*' }] },
    { reserved: '0;reboot', guests: [{ name: 'a' }] }, { guests: [{ name: 'a', near: 'eth0;id' }] }, { guests: [{ name: 'a', threads: 'spread' }] },
    { guests: [{ name: 'a', hugepages: '3M' }] }, { guests: [{ name: 'a', bogus: 1 }] }, { uri: 'qemu+ssh://evil/system', guests: [{ name: 'a' }] },
  ]) {
    assert.equal(validate(bad), false, JSON.stringify(bad));
  }
});

test('another task editing a placed domain\'s config in the same run is a warning: the second guarded define would fail', () => {
  const memtune = { module: 'libvirt_domain', name: 'limits', params: libvirtDomain.normalize!({ name: 'db1', memtune: { hard_limit_kib: 4194304 } }) };
  const { warnings } = plan(TASK, PROBE, [memtune]);
  assert.deepEqual(warnings, ["libvirt_domain task 'limits' also edits the config of db1 in this run: the define that runs second finds the config changed and fails; a second run converges (or apply the two in separate runs)"]);
  const asIs = { module: 'libvirt_domain', name: 'as is', params: libvirtDomain.normalize!({ name: 'web2', memtune: { hard_limit_kib: 4194304 } }) };
  assert.deepEqual(plan(TASK, PROBE, [asIs]).warnings, [], 'web2 keeps its placement: only the other task defines it');
});
