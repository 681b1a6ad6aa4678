/**
 * NUMA placement end to end: a lab VM with 4 vCPUs on two NUMA nodes (0-1, 2-3) is the
 * hypervisor; two running one-vCPU domains are placed by the real CLI: check shows the
 * table and writes nothing, apply does what check predicted, the kernel's view of every
 * qemu thread (Cpus_allowed_list, Mems_allowed_list) matches the table, a second apply
 * changes nothing, and a third domain goes to the other node and leaves the first two
 * where they were. (Each virsh call costs seconds under nested emulation: two domains
 * fill a node, which is all the packing rules need.)
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startVm, stopAll, writeInventory, type Vm } from '../lab/lab.js';
import { changeKeys, kvmconf } from '../helpers/cli-run.js';
import { emulatorThread, parseQemuThreads, qemuThreadsScript, testDomainXml, vcpuThread } from '../helpers/test-domain.js';

const FIRST = ['pl-a', 'pl-b'];
/** Packed in node order, ties by name, no CPU kept for the host: a and b fill node 0; d, added later, goes to node 1. */
const EXPECTED: Record<string, { cpu: number; node: number }> = { 'pl-a': { cpu: 0, node: 0 }, 'pl-b': { cpu: 1, node: 0 }, 'pl-d': { cpu: 2, node: 1 } };
const work = mkdtempSync(join(tmpdir(), 'kvmconf-e2e-placement-'));
let vm: Vm;
let inventory: string;
let play: string;

const onVm = (command: string, timeoutMs?: number): Promise<string> => vm.run(command, timeoutMs);
const virsh = (args: string) => onVm(`virsh -c qemu:///system ${args}`);

/** One vCPU, 64 MiB, started: the domain libvirt tests use, made smaller. */
async function defineAndStart(name: string): Promise<void> {
  const disk = `/var/lib/libvirt/images/${name}.raw`;
  await vm.ssh(`cat > /root/${name}.xml`, { input: testDomainXml(name, disk).replace('<vcpu>2</vcpu>', '<vcpu>1</vcpu>') });
  await onVm(`truncate -s 1M ${disk} && virsh -c qemu:///system define --file /root/${name}.xml >/dev/null && virsh -c qemu:///system start --domain ${name} >/dev/null`);
}

async function assertPinned(names: string[]): Promise<void> {
  for (const name of names) {
    const threads = parseQemuThreads(await onVm(qemuThreadsScript(name)));
    const { cpu, node } = EXPECTED[name]!;
    assert.deepEqual(vcpuThread(threads, 0)?.cpus, [cpu], `${name}: vCPU 0 thread`);
    assert.deepEqual(emulatorThread(threads)?.cpus, [cpu], `${name}: emulator thread on the guest's CPU`);
    assert.equal(vcpuThread(threads, 0)?.mems, String(node), `${name}: memory bound to node ${node}`);
  }
}

before(async () => {
  vm = await startVm({ name: 'e2e-placement', cpus: 4 });
  inventory = join(work, 'inventory.yaml');
  await writeInventory([vm], inventory);
  for (const name of FIRST) await defineAndStart(name);
  play = join(work, 'placement.yaml');
  writeFileSync(play, ['- hosts: hypervisors', '  tasks:', '    - name: place the guests', '      numa_placement:', '        reserved: ""', '        guests: [{ pattern: "pl-*" }]', ''].join('\n'));
});
after(stopAll);

let predicted: string[] = [];

test('1. --check shows the placement table and writes nothing', async () => {
  const before = await virsh('dumpxml --inactive --domain pl-a');
  const run = await kvmconf(['apply', '--check', play, '-i', inventory]);
  assert.equal(run.code, 2, run.stdout + run.stderr);
  predicted = changeKeys(run.report, ['planned']);
  for (const name of FIRST) {
    assert.ok(predicted.includes(`numa_placement ${name}/config (persist)`), predicted.join(', '));
    assert.ok(predicted.includes(`numa_placement ${name}/cputune.vcpupin[0] (runtime)`) || predicted.includes(`numa_placement ${name}/cputune.emulatorpin (runtime)`), predicted.join(', '));
  }
  assert.deepEqual(changeKeys(run.report, ['pending']), []);
  assert.match(run.stdout, /guest +node +CPUs +emulator +memory +hugepages +why/);
  assert.match(run.stdout, /pl-a +0 +0 +0 +64 MiB@0 strict/);
  assert.match(run.stdout, /pl-b +0 +1 +1 +64 MiB@0 strict/);
  assert.equal(await virsh('dumpxml --inactive --domain pl-a'), before, 'check changed the domain');
});

test('2. apply does what check predicted; /proc shows every qemu thread where the table says', async () => {
  const run = await kvmconf(['apply', play, '-i', inventory]);
  assert.equal(run.code, 0, run.stdout + run.stderr);
  assert.deepEqual(changeKeys(run.report, ['applied']), predicted, 'check predicted exactly what apply did');
  await assertPinned(FIRST);
  assert.match(await virsh('dumpxml --inactive --domain pl-b'), /<memory mode='strict' nodeset='0'\/>/);
});

test('3. a second apply changes nothing', async () => {
  const run = await kvmconf(['apply', play, '-i', inventory, '--detailed-exitcode']);
  assert.equal(run.code, 0, run.stdout + run.stderr);
  assert.deepEqual(changeKeys(run.report, ['applied', 'planned', 'pending']), []);
});

test('4. a third domain goes to the other node and moves neither of the first two', async () => {
  await defineAndStart('pl-d');
  const run = await kvmconf(['apply', play, '-i', inventory]);
  assert.equal(run.code, 0, run.stdout + run.stderr);
  const applied = changeKeys(run.report, ['applied']);
  assert.ok(applied.length > 0 && applied.every((key) => key.startsWith('numa_placement pl-d/')), applied.join(', '));
  await assertPinned([...FIRST, 'pl-d']);
});
