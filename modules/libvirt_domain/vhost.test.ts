import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { READ_FN } from '../../src/kit/index.js';
import { parseLibvirtFacts, type DomainPinning, type QemuThread } from './facts.js';
import { VHOST_KTHREADS_PROBE, vhostDiagnostics, vhostPlacementNote, vhostWorkers } from './vhost.js';

// Two nodes: CPUs 0-1 on node 0, 2-3 on node 1.
const NODE_OF = new Map([[0, 0], [1, 0], [2, 1], [3, 1]]);
const thread = (tid: number, comm: string, cpus: string): QemuThread => ({ tid, comm, cpus, mems: '0-1' });

function domain(kernel: QemuThread[], vhost: QemuThread[] = []): DomainPinning {
  return { name: 'db1', pid: 4242, libvirt: { vcpupin: {}, emulatorpin: null, numaMode: null, numaNodeset: null }, kernel, vhost };
}

const VCPUS_ON_NODE1 = [thread(4242, 'qemu-system-x86', '0-3'), thread(4250, 'CPU 0/KVM', '2'), thread(4251, 'CPU 1/KVM', '3')];

test('a vhost kernel thread (before Linux 6.4) free to run on node 0 while the vCPUs run on node 1 is a warning naming emulatorpin', () => {
  const d = domain(VCPUS_ON_NODE1, [thread(4300, 'vhost-4242', '0-3')]);
  assert.deepEqual(vhostWorkers(d).map((w) => [w.comm, w.kind]), [['vhost-4242', 'kthread']]);
  const [warning, ...rest] = vhostDiagnostics(d, NODE_OF);
  assert.equal(rest.length, 0);
  assert.equal(warning?.severity, 'warning');
  assert.match(warning!.message, /domain db1: vhost-net workers vhost-4242 \(CPUs 0-3\) may run off NUMA node 1, where its vCPUs run: set cputune.emulatorpin to CPUs of node 1 \(2-3\)/);
  assert.match(vhostPlacementNote(vhostWorkers(d)[0]!), /kernel thread in the emulator cgroup/);
});

test('a vhost thread of the QEMU process (Linux 6.4+) counts the same; confined to the guest node it is fine', () => {
  const inside = domain([...VCPUS_ON_NODE1, thread(4301, 'vhost-4242', '0-1')]);
  assert.deepEqual(vhostWorkers(inside).map((w) => w.kind), ['thread']);
  assert.equal(vhostDiagnostics(inside, NODE_OF).length, 1);
  assert.deepEqual(vhostDiagnostics(domain([...VCPUS_ON_NODE1, thread(4301, 'vhost-4242', '2-3')]), NODE_OF), []);
});

test('nothing to say without vhost workers, or when the vCPUs span every node', () => {
  assert.deepEqual(vhostDiagnostics(domain(VCPUS_ON_NODE1), NODE_OF), []);
  const spread = domain([thread(4250, 'CPU 0/KVM', '0'), thread(4251, 'CPU 1/KVM', '2')], [thread(4300, 'vhost-4242', '0-3')]);
  assert.deepEqual(vhostDiagnostics(spread, NODE_OF), []);
  assert.deepEqual(vhostWorkers(domain([thread(1, 'vhost-net', '0')], [thread(2, 'kworker/0:1', '0')])), [], 'only vhost-PID names');
});

test('the probe finds a cgroup v2 thread that is not the process\'s own, named vhost-PID, and skips the rest', () => {
  // A fake /proc and /sys/fs/cgroup under a temporary root: the snippet's paths are rebased with sed.
  const root = spawnSync('mktemp', ['-d'], { encoding: 'utf8' }).stdout.trim();
  const setup = [
    `mkdir -p ${root}/proc/4242/task/4242 ${root}/proc/4300 ${root}/proc/4301 ${root}/sys/fs/cgroup/machine/emulator`,
    `printf '0::/machine/emulator\\n' > ${root}/proc/4242/cgroup`,
    `printf '4242\\n4300\\n4301\\n' > ${root}/sys/fs/cgroup/machine/emulator/cgroup.threads`,
    `printf 'vhost-4242\\n' > ${root}/proc/4300/comm`,
    `printf 'kworker/1:0\\n' > ${root}/proc/4301/comm`,
  ].join('\n');
  const probe = VHOST_KTHREADS_PROBE.replace(/\/proc\//g, `${root}/proc/`).replace(/\/sys\/fs\/cgroup/g, `${root}/sys/fs/cgroup`);
  const run = spawnSync('/bin/sh', ['-c', `${setup}\n${READ_FN}\nd=db1; p=4242\n${probe}`], { encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  assert.equal(run.stdout, `\u0001T\t=vhost\t=db1\t=4300\t^Cpus_allowed_list:^${root}/proc/4300/status\t^Mems_allowed_list:^${root}/proc/4300/status\t@${root}/proc/4300/comm\n`);
  // A QEMU in the root cgroup: its threads file would list every thread of the host, so it is not read.
  const rooted = spawnSync('/bin/sh', ['-c', `printf '0::/\\n' > ${root}/proc/4242/cgroup; printf '4300\\n' > ${root}/sys/fs/cgroup/cgroup.threads\n${READ_FN}\nd=db1; p=4242\n${probe}`], { encoding: 'utf8' });
  assert.equal(rooted.stderr, '');
  assert.equal(rooted.stdout, '');
  spawnSync('rm', ['-rf', root]);
});

test('the facts keep the vhost kernel threads apart from the QEMU threads', () => {
  const facts = parseLibvirtFacts(['virsh\t1', 'dom\tdb1\t4242', 'thread\tdb1\t4250\t2\t0-1\tCPU 0/KVM', 'vhost\tdb1\t4300\t0-3\t0-1\tvhost-4242'].join('\n'));
  assert.deepEqual(facts.running[0]!.kernel.map((t) => t.comm), ['CPU 0/KVM']);
  assert.deepEqual(facts.running[0]!.vhost, [{ tid: 4300, cpus: '0-3', mems: '0-1', comm: 'vhost-4242' }]);
  assert.equal(vhostDiagnostics(facts.running[0]!, NODE_OF).length, 1);
});
