/**
 * A saved plan on two lab VMs with a real kernel setting: planned with --check --out, one
 * VM's setting changed behind kvmconf's back, then `apply PLAN`: that VM refused with
 * nothing written, the other given exactly the plan's commands, and the plan stale after.
 * Then a module reload that finishes a saved plan: the host is only verified after it, so
 * the vhost_net reload a fresh plan would run is reported, not run.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLab, stopAll, writeInventory, type Vm } from '../lab/lab.js';
import { kvmconf } from '../helpers/cli-run.js';

const work = mkdtempSync(join(tmpdir(), 'kvmconf-e2e-plan-'));
const FILE = '/etc/sysctl.d/90-kvmconf.conf';
let vms: Vm[];
let inventory: string;

before(async () => {
  vms = await startLab(2, { namePrefix: 'e2e-plan-' });
  inventory = join(work, 'inventory.yaml');
  await writeInventory(vms, inventory);
});
after(async () => {
  await stopAll();
});

/** vm.swappiness and the owned file as the VM has them, read over the lab's own OpenSSH client. */
async function state(vm: Vm): Promise<{ swappiness: string; file: string }> {
  const result = await vm.ssh(`cat /proc/sys/vm/swappiness; cat ${FILE} 2>/dev/null || echo '(absent)'`);
  assert.equal(result.code, 0, result.stderr);
  const [swappiness = '', ...file] = result.stdout.split('\n');
  return { swappiness, file: file.join('\n') };
}

/** `module target (scope)` -> commands, for every change of a host that carries commands. */
const commandsByChange = (host: any): Record<string, string[]> =>
  Object.fromEntries(host.tasks.flatMap((task: any) => task.changes.filter((c: any) => c.commands).map((c: any) => [`${c.module} ${c.target} (${c.scope})`, c.commands])));

test('a plan refuses the VM whose setting changed, applies exactly its commands on the other, and is stale after', async () => {
  const [hva, hvb] = vms as [Vm, Vm];
  const playbook = join(work, 'swappiness.yaml');
  writeFileSync(playbook, '- hosts: all\n  tasks:\n    - name: swappiness\n      sysctl: {name: vm.swappiness, value: 7}\n');
  const planFile = join(work, 'plan.json');
  const check = await kvmconf(['apply', '--check', '-v', '-i', inventory, playbook, '--out', planFile]);
  assert.equal(check.code, 2, check.stdout + check.stderr);
  assert.match(check.stdout, /\$ kc_set_value \/proc\/sys\/vm\/swappiness 7/, '-v shows the commands');
  const plan = JSON.parse(readFileSync(planFile, 'utf8'));
  assert.deepEqual(plan.hosts.map((host: any) => [host.host, host.status]), [[hva.name, 'changed'], [hvb.name, 'changed']]);

  const edited = await hvb.ssh('sysctl -qw vm.swappiness=33');
  assert.equal(edited.code, 0, edited.stderr);
  const apply = await kvmconf(['apply', planFile]);
  assert.equal(apply.code, 1, apply.stdout + apply.stderr);
  const [a, b] = apply.report.hosts;
  assert.equal(a.status, 'changed', a.error);
  const planned = commandsByChange(plan.hosts[0]);
  assert.ok(Object.keys(planned).length >= 2, 'a runtime and a persist change');
  assert.deepEqual(commandsByChange(a), planned, 'each change ran exactly the commands of the plan');
  assert.deepEqual(a.steps.map((step: any) => [step.label, step.status]), Object.keys(planned).map((label) => [label, 'ok']));
  assert.deepEqual(await state(hva), { swappiness: '7', file: '# Managed by kvmconf (sysctl); edits here are overwritten.\nvm.swappiness = 7\n' });

  assert.equal(b.status, 'failed');
  assert.match(b.error, /^the state changed since the plan was made: task 'swappiness': the state it was planned from changed; nothing was changed on this host/);
  assert.equal(b.execCount, 1, 'gather only');
  assert.deepEqual(await state(hvb), { swappiness: '33', file: '(absent)\n' });

  const again = await kvmconf(['apply', planFile]);
  assert.equal(again.code, 1);
  assert.deepEqual(again.report.hosts.map((host: any) => [host.status, host.execCount]), [['failed', 1], ['failed', 1]]);
  assert.match(again.report.hosts[0].error, /state changed since the plan was made: .*90-kvmconf\.conf changed \(sha256 absent -> [0-9a-f]{12}\)/);
});

test('after the reload that finishes a saved plan, the VM is verified only: the vhost_net reload the plan does not hold fails it, unrun', async () => {
  const vm = vms[0]!;
  const param = '/sys/module/vhost_net/parameters/experimental_zcopytx';
  // A process holding /dev/vhost-net stands for a running guest; the play's guests command stops it.
  await vm.run(`modprobe vhost_net && (nohup sleep 100000 </dev/vhost-net >/dev/null 2>&1 & echo $! >/run/kvmconf-e2e-holder.pid)`);
  const before = (await vm.run(`cat ${param}`)).trim();
  const wanted = before === '1' || before === 'Y' ? 0 : 1;
  const playbook = join(work, 'reload.yaml');
  writeFileSync(playbook, [
    '- hosts: all',
    '  reload: pending',
    '  guests: { policy: command, command: "kill $(cat /run/kvmconf-e2e-holder.pid); sleep 1", uri: "nowhere:///none" }',
    '  tasks:',
    `    - vhost_net: { experimental_zcopytx: ${wanted} }`,
    '',
  ].join('\n'));
  const planFile = join(work, 'reload-plan.json');
  const check = await kvmconf(['apply', '--check', '-i', inventory, playbook, '--limit', vm.name, '--out', planFile]);
  assert.equal(check.code, 2, check.stdout + check.stderr);
  const planned = check.report.hosts[0].tasks[0].changes.map((c: any) => `${c.target} (${c.scope})`);
  assert.deepEqual(planned, ['/etc/modprobe.d/kvmconf-vhost-net.conf (persist)', 'experimental_zcopytx (pending)']);

  const apply = await kvmconf(['apply', planFile]);
  assert.equal(apply.code, 1, apply.stdout + apply.stderr);
  const host = apply.report.hosts[0];
  assert.equal(host.finish?.action, 'reload');
  assert.match(host.error, new RegExp(`^reload: the reload pass failed: the host still differs from the saved plan, which holds nothing more to run \\(nothing outside it was run\\): vhost_net experimental_zcopytx is ${before}, wanted ${wanted} \\(runtime\\)`));
  assert.deepEqual(host.steps.map((step: any) => step.label), ['vhost_net /etc/modprobe.d/kvmconf-vhost-net.conf (persist)'], 'only the planned step ran');
  assert.equal((await vm.run(`cat ${param}`)).trim(), before, 'vhost_net was not reloaded');
});
