/**
 * Guest tuning end to end: a lab VM is the hypervisor (its image has libvirt), a small
 * TCG domain without an OS runs inside it, and the real CLI tunes the domain over SSH:
 * check (drift listed, nothing written), apply (config and live changed, the rest
 * pending), apply again (nothing to do, exit code says pending), the kernel's view of
 * the qemu threads' pinning, a permitted restart that clears pending, and the in-guest
 * ethtool module on the VM's own virtio NIC. A VM that cannot boot fails the suite.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startVm, stopAll, writeInventory, type Vm } from '../lab/lab.js';
import { changeKeys, kvmconf } from '../helpers/cli-run.js';
import { emulatorThread, parseQemuThreads, qemuThreadsScript, testDomainXml, vcpuThread } from '../helpers/test-domain.js';

const DOMAIN = 'kvmconf-e2e';
const DISK = `/var/lib/libvirt/images/${DOMAIN}.raw`;
const work = mkdtempSync(join(tmpdir(), 'kvmconf-e2e-guests-'));
let vm: Vm;
let inventory: string;

const onVm = (command: string, timeoutMs?: number): Promise<string> => vm.run(command, timeoutMs);

const virsh = (args: string) => onVm(`virsh -c qemu:///system ${args}`);

function playbook(file: string, extra: string[] = []): string {
  const path = join(work, file);
  writeFileSync(
    path,
    [
      '- name: tune the lab guest',
      '  hosts: hypervisors',
      '  tasks:',
      '    - name: pinned, NUMA-bound, throttled',
      '      libvirt_domain:',
      `        name: ${DOMAIN}`,
      '        cputune: { vcpupin: { 0: "0", 1: "1" }, emulatorpin: "0" }',
      '        numatune: { nodeset: "0" }',
      '        memtune: { hard_limit_kib: 1048576, soft_limit_kib: 524288 }',
      '        blkiotune: { weight: 500 }',
      '        disks: [{ target: vda, cache: none, io: native, iotune: { total_iops_sec: 1000 } }]',
      '        interfaces: [{ match: { index: 0 }, model: virtio }]',
      '        scsi_queues: 2',
      ...extra.map((line) => `        ${line}`),
      '',
    ].join('\n'),
  );
  return path;
}

before(async () => {
  vm = await startVm({ name: 'e2e-guests' });
  inventory = join(work, 'inventory.yaml');
  await writeInventory([vm], inventory);
  const started = Date.now();
  await virsh('version');
  process.stderr.write(`[guests] libvirtd answered after ${Date.now() - started} ms (socket activation and QEMU capabilities under emulation)\n`);
  await vm.ssh(`cat > /root/${DOMAIN}.xml`, { input: testDomainXml(DOMAIN, DISK) });
  await onVm(`truncate -s 1M ${DISK}`);
  const defining = Date.now();
  await virsh(`define --file /root/${DOMAIN}.xml`);
  await virsh(`start --domain ${DOMAIN}`);
  process.stderr.write(`[guests] define and start took ${Date.now() - defining} ms\n`);
});
after(async () => {
  await stopAll();
});

const PENDING = ['libvirt_domain kvmconf-e2e/controller[scsi0].queues (pending)', 'libvirt_domain kvmconf-e2e/disk[vda].cache (pending)', 'libvirt_domain kvmconf-e2e/disk[vda].io (pending)'];
let predicted: string[] = [];

test('1. --check lists config, live and pending drift and writes nothing', async () => {
  const inactive = await virsh(`dumpxml --inactive --domain ${DOMAIN}`);
  const run = await kvmconf(['apply', '--check', playbook('guests.yaml'), '-i', inventory]);
  assert.equal(run.code, 2, run.stdout + run.stderr);
  process.stderr.write(`[guests] check took ${run.report.durationMs} ms\n`);
  predicted = changeKeys(run.report, ['planned']);
  assert.deepEqual(changeKeys(run.report, ['pending']), PENDING);
  for (const target of ['config (persist)', 'cputune.vcpupin[0] (runtime)', 'cputune.emulatorpin (runtime)', 'numatune.nodeset (runtime)', 'memtune.hard_limit (runtime)', 'disk[vda].iotune.total_iops_sec (runtime)']) {
    assert.ok(predicted.includes(`libvirt_domain ${DOMAIN}/${target}`), `${target} in ${predicted.join(', ')}`);
  }
  assert.equal(await virsh(`dumpxml --inactive --domain ${DOMAIN}`), inactive, 'check changed the domain');
});

test('2. apply changes config and live state as predicted; the rest stays pending', async () => {
  const run = await kvmconf(['apply', playbook('guests.yaml'), '-i', inventory]);
  assert.equal(run.code, 0, run.stdout + run.stderr);
  assert.deepEqual(changeKeys(run.report, ['applied']), predicted, 'check predicted exactly what apply did');
  assert.deepEqual(changeKeys(run.report, ['pending']), PENDING);
  assert.match(run.stdout, /pending/);
  const inactive = await virsh(`dumpxml --inactive --domain ${DOMAIN}`);
  assert.match(inactive, /<driver name='qemu' type='raw' cache='none' io='native'\/>/);
  assert.match(inactive, /<vcpupin vcpu='1' cpuset='1'\/>/);
  assert.match(inactive, /<hard_limit unit='KiB'>1048576<\/hard_limit>/);
  assert.match(inactive, /<mac address='52:54:00:/, 'the MAC libvirt generated is kept');
  assert.match(await virsh(`vcpupin --domain ${DOMAIN} --live`), /^\s*1\s+1\s*$/m);
  assert.match(await virsh(`memtune --domain ${DOMAIN} --live`), /hard_limit\s+:\s+1048576/);
});

test('3. a second apply changes nothing and exits 3: only pending remains', async () => {
  const run = await kvmconf(['apply', playbook('guests.yaml'), '-i', inventory, '--detailed-exitcode']);
  assert.equal(run.code, 3, run.stdout + run.stderr);
  assert.deepEqual(changeKeys(run.report, ['applied', 'planned']), []);
  assert.deepEqual(changeKeys(run.report, ['pending']), PENDING);
});

test('4. the kernel pins the running qemu threads as asked; facts show both views', async () => {
  const threads = parseQemuThreads(await onVm(qemuThreadsScript(DOMAIN)));
  assert.deepEqual(vcpuThread(threads, 0)?.cpus, [0]);
  assert.deepEqual(vcpuThread(threads, 1)?.cpus, [1]);
  assert.deepEqual(emulatorThread(threads)?.cpus, [0], 'emulator thread pinned');
  assert.equal(vcpuThread(threads, 0)?.mems, '0', 'numatune nodeset 0 binds the memory');
  const facts = await kvmconf(['facts', vm.name, '-i', inventory, '--format', 'json']);
  assert.equal(facts.code, 0, facts.stderr);
  const [host] = JSON.parse(facts.stdout);
  assert.equal(host.facts.numaNodes.length, 2, JSON.stringify(host.facts));
  const seen = host.modules.libvirt_domain.host.running.find((d: any) => d.name === DOMAIN);
  assert.equal(seen?.libvirt.vcpupin['1'], '1');
  assert.ok(seen?.kernel.some((t: any) => /^CPU 1\//.test(t.comm) && t.cpus === '1'), JSON.stringify(seen?.kernel));
});

test('5. with restart allowed, the guest restarts and nothing is pending; pinning holds', async () => {
  const file = playbook('guests-restart.yaml', ['restart: true', 'force_restart: true', 'restart_timeout: 5']);
  const run = await kvmconf(['apply', file, '-i', inventory]);
  assert.equal(run.code, 0, run.stdout + run.stderr);
  assert.deepEqual(changeKeys(run.report, ['applied']), [`libvirt_domain ${DOMAIN}/restart (runtime)`]);
  const check = await kvmconf(['apply', '--check', file, '-i', inventory]);
  assert.equal(check.code, 0, check.stdout + check.stderr);
  assert.match(await virsh(`dumpxml --domain ${DOMAIN}`), /cache='none' io='native'/, 'the live domain runs the new disk mode');
  const threads = parseQemuThreads(await onVm(qemuThreadsScript(DOMAIN)));
  assert.deepEqual(vcpuThread(threads, 1)?.cpus, [1], 'pinning applied at start from the config');
});

test('6. the host\'s real topology refuses what cannot run, before anything is written', async () => {
  const inactive = await virsh(`dumpxml --inactive --domain ${DOMAIN}`);
  const file = join(work, 'impossible.yaml');
  writeFileSync(
    file,
    `- hosts: hypervisors\n  tasks:\n    - libvirt_domain: { name: ${DOMAIN}, cputune: { vcpupin: { 0: "7" } }, numatune: { nodeset: "3" } }\n` +
      `    - libvirt_domain: { name: ${DOMAIN}, memory_backing: { hugepages: { size: 2M, nodeset: "1" } } }\n`,
  );
  const run = await kvmconf(['apply', file, '-i', inventory]);
  assert.equal(run.code, 1, run.stdout + run.stderr);
  assert.match(run.stdout, new RegExp(`${DOMAIN}: cputune.vcpupin\\[0\\]: CPU 7 is not online on this host \\(online: 0-1\\)`));
  assert.match(run.stdout, /numatune.nodeset: NUMA node 3 does not exist on this host \(nodes: 0-1\)/);
  assert.match(run.stdout, /memory_backing.hugepages.nodeset 1 names guest NUMA cells, and it has no guest NUMA cells/, 'libvirt would refuse it at define');
  assert.match(run.stdout, /memory_backing.hugepages: guests kvmconf-e2e \(32\) need 32 free 2048 KiB pages on NUMA node [0-9,-]+, the host has 0 free/);
  assert.equal(await virsh(`dumpxml --inactive --domain ${DOMAIN}`), inactive, 'nothing was written');
});

test('7. ethtool on the VM\'s own virtio NIC: persisted, idempotent, and the queue maximum enforced', async () => {
  const file = join(work, 'channels.yaml');
  const channels = (combined: number) => writeFileSync(file, `- hosts: hypervisors\n  tasks:\n    - ethtool: { interface: "en*", combined: ${combined} }\n`);
  channels(1);
  const first = await kvmconf(['apply', file, '-i', inventory]);
  assert.equal(first.code, 0, first.stdout + first.stderr);
  assert.deepEqual(changeKeys(first.report, ['applied']), ['ethtool /etc/udev/rules.d/81-kvmconf-ethtool-enall.rules (persist)']);
  assert.match(await onVm('cat /etc/udev/rules.d/81-kvmconf-ethtool-enall.rules'), /RUN\+="\/usr\/sbin\/ethtool -L \$name combined 1"/);
  const again = await kvmconf(['apply', file, '-i', inventory, '--detailed-exitcode']);
  assert.equal(again.code, 0, again.stdout + again.stderr);
  channels(2);
  const tooMany = await kvmconf(['apply', file, '-i', inventory]);
  assert.equal(tooMany.code, 1, tooMany.stdout);
  assert.match(tooMany.stdout, /combined 2 is above the pre-set maximum 1/);
});
