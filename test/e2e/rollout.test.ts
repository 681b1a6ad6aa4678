/**
 * Rollouts that finish, on two lab VMs: a playbook whose settings wait for a reboot
 * (THP and a kernel argument on the command line) and a vhost_net change, rolled out in
 * serial batches [1, 50%] with `reboot: pending`: every VM reboots exactly once, one
 * batch after the other, and comes back verified with the new /proc/cmdline; a second
 * run changes and reboots nothing. Then a running libvirt domain: `refuse` keeps the host
 * pending naming it, `shutdown` stops it, reboots and starts it again. Last, a VM that
 * never comes back (killed during its reboot) fails its batch, the rollout stops with
 * the other hosts untouched, exit 1, and the retry file names the hosts to resume.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLab, stopAll, writeInventory, type Vm } from '../lab/lab.js';
import { changeKeys, kvmconf } from '../helpers/cli-run.js';
import { testDomainXml } from '../helpers/test-domain.js';

const DOMAIN = 'kvmconf-rollout';
const work = mkdtempSync(join(tmpdir(), 'kvmconf-e2e-rollout-'));
let vms: Vm[];
let inventory: string;

const onVm = async (vm: Vm, command: string): Promise<string> => (await vm.run(command)).trim();

/** The rollout playbook; `arg` is the value of a kernel argument only a reboot makes true. */
function playbook(file: string, arg: string, play: string[] = []): string {
  const path = join(work, file);
  writeFileSync(
    path,
    [
      '- name: rolling kernel changes',
      '  hosts: hypervisors',
      '  become: true',
      '  serial: [1, 50%]',
      '  max_fail_percentage: 0',
      '  reboot: pending',
      '  reload: pending',
      ...play.map((line) => `  ${line}`),
      '  tasks:',
      '    - thp: { enabled: never }',
      `    - kernel_cmdline: { args: { kvmconf_rollout: "${arg}" } }`,
      '    - vhost_net: { experimental_zcopytx: 1 }',
      '',
    ].join('\n'),
  );
  return path;
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

before(async () => {
  vms = await startLab(2, { namePrefix: 'e2e-roll-' });
  inventory = join(work, 'inventory.yaml');
  await writeInventory(vms, inventory);
  // A loaded, unused vhost_net: the module is reloaded with the new option.
  await Promise.all(vms.map((vm) => onVm(vm, 'modprobe vhost_net')));
});
after(async () => {
  await stopAll();
});

test('1. serial [1, 50%]: each VM reboots exactly once, batch after batch, and comes back verified; a second run reboots nothing', async () => {
  const bootIds = await Promise.all(vms.map((vm) => onVm(vm, 'cat /proc/sys/kernel/random/boot_id')));
  const check = await kvmconf(['apply', '--check', playbook('rollout.yaml', '1'), '-i', inventory]);
  assert.equal(check.code, 2, check.stdout + check.stderr);
  assert.equal(check.report.hosts.length, vms.length);
  for (const host of check.report.hosts) assert.equal(host.finish?.status, 'planned', JSON.stringify(host.finish));
  assert.match(check.stdout, /finish: would reboot: apply would reboot \(no running domains\)/);

  const notes: string[] = [];
  const run = await kvmconf(['apply', playbook('rollout.yaml', '1'), '-i', inventory], (text) => notes.push(...text.split('\n').filter((l) => /: (rebooting|back after)/.test(l))));
  process.stderr.write(`[rollout] ${vms.length} batches with a reboot each took ${seconds(run.report?.durationMs ?? 0)}\n`);
  assert.equal(run.code, 0, run.stdout + run.stderr);
  assert.deepEqual(run.report.summary, { ok: 0, changed: vms.length, pending: 0, failed: 0, unreachable: 0, skipped: 0 });
  assert.deepEqual(changeKeys(run.report, ['pending']), [], 'nothing is left pending');
  // One batch at a time: each VM is back before the next one reboots.
  assert.deepEqual(notes.map((line) => line.replace(/^kvmconf: (\S+): (rebooting|back after).*$/, '$1 $2')), vms.flatMap((vm) => [`${vm.name} rebooting`, `${vm.name} back after`]));
  for (const [index, vm] of vms.entries()) {
    const host = run.report.hosts.find((h: any) => h.host === vm.name);
    await vm.closeSsh();
    const now = await onVm(vm, 'cat /proc/sys/kernel/random/boot_id');
    assert.equal(host.finish.status, 'done', JSON.stringify(host.finish));
    assert.equal(host.finish.bootIdBefore, bootIds[index]);
    assert.equal(host.finish.bootIdAfter, now, 'the boot verified is the one running: one reboot');
    assert.deepEqual(host.finish.cmdline, ['transparent_hugepage=never', 'kvmconf_rollout=1']);
    process.stderr.write(`[rollout] ${vm.name}: reboot to verified in ${seconds(host.finish.durationMs)}\n`);
    const cmdline = await onVm(vm, 'cat /proc/cmdline');
    assert.match(cmdline, /transparent_hugepage=never/);
    assert.match(cmdline, /kvmconf_rollout=1/);
    assert.match(await onVm(vm, 'modprobe vhost_net && cat /sys/module/vhost_net/parameters/experimental_zcopytx'), /^(1|Y)$/, 'modprobe.d holds after the reboot');
  }
  assert.match(run.stdout, /finish: reboot done in [\dm.]+s/);
  assert.match(run.stdout, /\/proc\/cmdline now has transparent_hugepage=never kvmconf_rollout=1/);

  const again = await kvmconf(['apply', playbook('rollout.yaml', '1'), '-i', inventory, '--detailed-exitcode']);
  assert.equal(again.code, 0, again.stdout + again.stderr);
  assert.deepEqual(changeKeys(again.report, ['applied', 'planned', 'pending']), []);
  for (const host of again.report.hosts) {
    assert.equal(host.finish, undefined, 'nothing to finish, no reboot');
    assert.equal(host.execCount, 1);
  }
});

test('2. a running domain: refuse keeps the host pending naming it; shutdown stops it, reboots, and starts it again', async () => {
  const vm = vms[1]!;
  const virsh = (args: string) => onVm(vm, `virsh -c qemu:///system ${args}`);
  await vm.ssh(`cat > /root/${DOMAIN}.xml`, { input: testDomainXml(DOMAIN, `/var/lib/libvirt/images/${DOMAIN}.raw`) });
  await onVm(vm, `truncate -s 1M /var/lib/libvirt/images/${DOMAIN}.raw`);
  await virsh(`define --file /root/${DOMAIN}.xml`);
  await virsh(`start --domain ${DOMAIN}`);
  const bootId = await onVm(vm, 'cat /proc/sys/kernel/random/boot_id');
  const file = playbook('guests.yaml', '2', ['guests: { policy: shutdown, timeout: 5, force: true }']);

  const refused = await kvmconf(['apply', file, '-i', inventory, '--limit', vm.name, '--guests', 'refuse']);
  assert.equal(refused.code, 3, refused.stdout + refused.stderr);
  const held = refused.report.hosts[0];
  assert.equal(held.status, 'changed', 'the kernel argument was written; only the reboot is held');
  assert.deepEqual(changeKeys(refused.report, ['pending']), ['kernel_cmdline kvmconf_rollout (pending)']);
  assert.equal(held.finish.status, 'held');
  assert.deepEqual(held.finish.heldBy, [DOMAIN]);
  assert.match(refused.stdout, new RegExp(`finish: reboot held: running domains hold the reboot: ${DOMAIN}`));
  assert.equal(await onVm(vm, 'cat /proc/sys/kernel/random/boot_id'), bootId, 'not rebooted');
  assert.equal(await virsh(`domstate --domain ${DOMAIN}`), 'running');

  const run = await kvmconf(['apply', file, '-i', inventory, '--limit', vm.name]);
  assert.equal(run.code, 0, run.stdout + run.stderr);
  const done = run.report.hosts[0].finish;
  process.stderr.write(`[rollout] shutdown, reboot and restart of the domain took ${seconds(run.report.durationMs)}\n`);
  assert.equal(done.status, 'done', JSON.stringify(done));
  assert.deepEqual(done.guestsStopped, [{ name: DOMAIN, how: 'destroy' }], 'a domain without an OS ignores ACPI: destroyed after the timeout');
  assert.deepEqual(done.guestsStarted, [DOMAIN]);
  assert.deepEqual(done.cmdline, ['kvmconf_rollout=2']);
  await vm.closeSsh();
  assert.notEqual(await onVm(vm, 'cat /proc/sys/kernel/random/boot_id'), bootId);
  assert.equal(await virsh(`domstate --domain ${DOMAIN}`), 'running', 'the domain runs again');
  assert.match(await onVm(vm, 'cat /proc/cmdline'), /kvmconf_rollout=2/);
});

test('3. a VM that never comes back fails its batch; the rollout stops, exit 1, and the retry file names the hosts to resume', async () => {
  const [first, ...rest] = vms as [Vm, ...Vm[]];
  const retry = join(work, 'rollout.retry');
  let killed: Promise<void> | undefined;
  const run = await kvmconf(['apply', playbook('lost.yaml', '3', ['reboot_timeout: 40']), '-i', inventory, '--retry-file', retry], (text) => {
    if (!killed && text.includes(`${first.name}: rebooting`)) killed = first.kill();
  });
  await killed;
  assert.ok(killed, 'the first VM was killed during its reboot');
  assert.equal(run.code, 1, run.stdout + run.stderr);
  const [lost, ...others] = run.report.hosts;
  assert.equal(lost.host, first.name);
  assert.equal(lost.status, 'failed');
  assert.equal(lost.finish.status, 'failed');
  assert.match(lost.error, /reboot: did not come back within 40 s \(reboot_timeout\)/);
  for (const host of others) {
    assert.equal(host.status, 'skipped');
    assert.match(host.error, /not started: max_fail_percentage 0% exceeded/);
  }
  assert.equal(run.report.retryFile, retry);
  assert.deepEqual(readFileSync(retry, 'utf8').split('\n').filter((l) => l && !l.startsWith('#')), vms.map((vm) => vm.name));
  for (const vm of rest) assert.doesNotMatch(await onVm(vm, 'grep ^GRUB_CMDLINE_LINUX= /etc/default/grub'), /kvmconf_rollout=3/, `${vm.name} untouched`);
});
