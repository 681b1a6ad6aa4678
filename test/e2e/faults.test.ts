/**
 * The fault matrix on one lab VM: a multi-file apply (three sysctl.d files and a
 * tmpfiles.d file, each with its runtime value) cut by a fault. For each fault: no file
 * lost, truncated or half-written (the sha256 of every target is its original or its
 * planned content, every backup is a whole copy of the original, no temporary file
 * left), a report that says which changes were applied, failed or not run (held
 * against the files themselves), the exit code, and a re-run without the fault that
 * converges, after which a second apply changes nothing.
 * Faults are fired by a watcher started on the VM beforehand, so they hit a known point
 * of the apply. Between cases the VM is put back by a script, never rebooted, except by
 * the reboot case, which runs last. A VM that cannot boot fails the suite.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startVm, stopAll, writeInventory, type Vm } from '../lab/lab.js';
import { changeKeys, kvmconf, type CliRun } from '../helpers/cli-run.js';
import { assertWhole, fileSums, sha256 } from '../helpers/vm-files.js';

const work = mkdtempSync(join(tmpdir(), 'kvmconf-e2e-faults-'));
const SYSCTL_D = '/etc/sysctl.d';
const TARGETS = [`${SYSCTL_D}/90-kvmconf-faults-a.conf`, `${SYSCTL_D}/90-kvmconf-faults-b.conf`, `${SYSCTL_D}/90-kvmconf-faults-c.conf`, '/etc/tmpfiles.d/kvmconf-sysfs-faults.conf'];
/** Content of each target before the apply (null: absent, so the apply creates it). */
const ORIGINAL: Array<string | null> = ['vm.swappiness = 60\n', 'vm.dirty_ratio = 20\n', null, 'w /sys/kernel/mm/ksm/pages_to_scan - - - - 100\n'];
const ORIGINAL_SUMS = Object.fromEntries(TARGETS.map((path, i) => [path, ORIGINAL[i] === null ? 'absent' : sha256(ORIGINAL[i]!)]));
const PAGES_TO_SCAN = '/sys/kernel/mm/ksm/pages_to_scan';
const RUNTIME_ORIGINAL = 'sysctl -qw vm.swappiness=60 vm.dirty_ratio=20 net.core.somaxconn=4096 && echo 100 > ' + PAGES_TO_SCAN;
const FAULT = '/run/kvmconf-fault';
/** Test 5's PAM session hook (/run is noexec). */
const PAM_HOOK = '/usr/local/sbin/kvmconf-fault-pam';
/** kvmconf's remote shell as root is `exec /bin/sh -s`; its parent is the sshd session to cut. */
const CUT_KVMCONF_SESSIONS = `for p in $(pgrep -x -f '/bin/sh -s'); do kill -KILL $(ps -o ppid= -p "$p") 2>/dev/null; done`;

let vm: Vm;
let inventory: string;
let playbook: string;
let planned: Record<string, string> = {};
let allChanges: string[] = [];

before(async () => {
  vm = await startVm({ name: 'e2e-faults' });
  inventory = join(work, 'inventory.yaml');
  await writeInventory([vm], inventory);
  playbook = join(work, 'faults.yaml');
  writeFileSync(
    playbook,
    [
      '- name: fault matrix',
      '  hosts: hypervisors',
      '  become: true',
      '  tasks:',
      `    - sysctl: { settings: { vm.swappiness: 11 }, file: ${TARGETS[0]} }`,
      `    - sysctl: { settings: { vm.dirty_ratio: 17 }, file: ${TARGETS[1]} }`,
      `    - sysctl: { settings: { net.core.somaxconn: 2048 }, file: ${TARGETS[2]} }`,
      `    - sysfs: { name: faults, settings: { ${PAGES_TO_SCAN}: 200 } }`,
      '',
    ].join('\n'),
  );
  await restore();
});
after(async () => {
  await stopAll();
});

/** Puts the files, runtime values, sudo rights and mounts back as they were before any apply. */
async function restore(): Promise<void> {
  const writes = TARGETS.map((path, i) => (ORIGINAL[i] === null ? `rm -f '${path}'` : `printf '%s' '${ORIGINAL[i]}' > '${path}'`));
  await vm.run(
    [
      `[ -e ${FAULT}.pid ] && kill "$(cat ${FAULT}.pid)" 2>/dev/null`,
      `while mountpoint -q ${SYSCTL_D}; do umount ${SYSCTL_D}; done`,
      `echo 'kvmadmin ALL=(ALL:ALL) NOPASSWD: ALL' > /etc/sudoers.d/kvmadmin && chmod 0440 /etc/sudoers.d/kvmadmin`,
      `sed -i '\\|${PAM_HOOK}|d' /etc/pam.d/sudo && rm -f ${PAM_HOOK}`,
      ...writes,
      `rm -rf /var/backups/kvmconf ${SYSCTL_D}/.kvmconf.* /etc/tmpfiles.d/.kvmconf.* ${FAULT}.* /run/kvmconf.lock.owner`,
      RUNTIME_ORIGINAL,
    ].join('\n'),
  );
}

/**
 * Starts a watcher on the VM, detached from any SSH session: it runs `script` (which
 * waits for its moment and fires the fault) and then records that it fired.
 */
async function arm(script: string): Promise<void> {
  await vm.ssh(`cat > ${FAULT}.sh`, { input: `${script}\ntouch ${FAULT}.fired\n` });
  await vm.run(`setsid timeout 300 sh ${FAULT}.sh </dev/null >${FAULT}.log 2>&1 & echo $! > ${FAULT}.pid`);
}

const waitFor = (condition: string): string => `until ${condition}; do sleep 0.05; done`;

async function assertFired(): Promise<void> {
  assert.equal((await vm.ssh(`test -e ${FAULT}.fired`)).code, 0, `the fault never fired: ${(await vm.ssh(`cat ${FAULT}.log`)).stdout}`);
}

const apply = (args: string[] = [], inv = inventory): Promise<CliRun> => kvmconf(['apply', playbook, '-i', inv, ...args]);

/** Changes of the run by status, as `module target (scope)`. */
const byStatus = (run: CliRun, status: string): string[] => changeKeys(run.report, [status]);

/**
 * The report against the files: a persist change reported applied left its planned
 * content, one reported not-run left the original.
 */
function assertReportMatchesFiles(run: CliRun, targets: Record<string, string>, context: string): void {
  for (const change of run.report.hosts[0].tasks.flatMap((task: any) => task.changes)) {
    if (change.scope !== 'persist') continue;
    if (change.status === 'applied') assert.equal(targets[change.target], planned[change.target], `${context}: ${change.target} reported applied`);
    if (change.status === 'not-run') assert.equal(targets[change.target], ORIGINAL_SUMS[change.target], `${context}: ${change.target} reported not run`);
  }
}

/** Every change of an apply has an apply-mode status: nothing is left `planned`. */
function assertApplyStatuses(run: CliRun, context: string): void {
  const statuses = run.report.hosts[0].tasks.flatMap((task: any) => task.changes.map((change: any) => change.status));
  for (const status of statuses) assert.ok(['applied', 'failed', 'not-run', 'pending'].includes(status), `${context}: a change is '${status}' in an apply report`);
}

/** The files are whole, then a re-run converges and a second apply changes nothing. */
async function assertRecovers(context: string, user?: string): Promise<void> {
  const inv = user ? join(work, `inventory-${user}.yaml`) : inventory;
  const rerun = await apply([], inv);
  assert.equal(rerun.code, 0, `${context}: re-run: ${rerun.stdout}${rerun.stderr}`);
  const sums = await fileSums(vm, TARGETS);
  assert.deepEqual(sums.targets, planned, `${context}: re-run left every file planned`);
  assertWhole(sums, ORIGINAL_SUMS, planned, `${context} (after re-run)`);
  const again = await apply(['--detailed-exitcode'], inv);
  assert.equal(again.code, 0, `${context}: second apply: ${again.stdout}`);
  assert.deepEqual(byStatus(again, 'applied'), [], `${context}: second apply changed nothing`);
}

test('the plan: eight steps over four files', async () => {
  const check = await kvmconf(['apply', '--check', playbook, '-i', inventory]);
  assert.equal(check.code, 2, check.stdout + check.stderr);
  const changes = check.report.hosts[0].tasks.flatMap((task: any) => task.changes);
  planned = Object.fromEntries(changes.filter((c: any) => c.scope === 'persist').map((c: any) => [c.target, sha256(c.diff.after)]));
  assert.deepEqual(Object.keys(planned).sort(), [...TARGETS].sort());
  for (const change of changes.filter((c: any) => c.scope === 'persist')) assert.equal(sha256(change.diff.before), sha256(ORIGINAL[TARGETS.indexOf(change.target)] ?? ''));
  allChanges = byStatus(check, 'planned');
  assert.equal(allChanges.length, 8, allChanges.join(', '));
});

test('1a. connection cut before the first apply step (the apply waiting for the host lock): nothing ran, and the report says so', async () => {
  await restore();
  // The watcher holds the lock, so the apply round trip waits before any step; the cut comes then.
  await arm(['exec 9>>/run/kvmconf.lock', 'flock 9', waitFor('pgrep -x flock >/dev/null'), CUT_KVMCONF_SESSIONS].join('\n'));
  const run = await apply();
  await assertFired();
  assert.equal(run.code, 1, run.stdout);
  const host = run.report.hosts[0];
  assert.equal(host.status, 'failed');
  assert.match(host.error, /dropped|closed|lost/i);
  assertApplyStatuses(run, '1a');
  assert.deepEqual(host.steps.map((s: any) => s.status), Array(8).fill('not-run'));
  assert.deepEqual(byStatus(run, 'not-run'), allChanges);
  const sums = await fileSums(vm, TARGETS);
  assert.deepEqual(sums.targets, ORIGINAL_SUMS);
  assertWhole(sums, ORIGINAL_SUMS, planned, '1a');
  assert.equal((await vm.run('sysctl -n vm.swappiness')).trim(), '60', 'no runtime value changed');
  await assertRecovers('1a');
});

test('2. disk full under the target folder: the write fails naming the host and the file, nothing truncated', async () => {
  await restore();
  await vm.run(
    `mkdir -p ${FAULT}.orig && cp -a ${SYSCTL_D}/. ${FAULT}.orig/ && mount -t tmpfs -o size=64k tmpfs ${SYSCTL_D} && cp -a ${FAULT}.orig/. ${SYSCTL_D}/ && ` +
      `{ dd if=/dev/zero of=${SYSCTL_D}/filler bs=4k 2>/dev/null; true; }`,
  );
  const run = await apply();
  const full = await fileSums(vm, TARGETS);
  await vm.run(`umount ${SYSCTL_D}`);
  assert.equal(run.code, 1, run.stdout);
  const host = run.report.hosts[0];
  assert.equal(host.status, 'failed');
  assert.match(run.stdout, new RegExp(`${vm.name}.*failed`));
  assert.match(host.error, new RegExp(`step 2 of 8 failed \\(sysctl ${TARGETS[0]} \\(persist\\)\\): kvmconf: cannot write ${TARGETS[0]} \\(disk full\\?\\)`));
  assert.deepEqual(host.steps.map((s: any) => s.status), ['ok', 'failed', ...Array(6).fill('not-run')]);
  assertApplyStatuses(run, '2');
  assert.deepEqual(full.targets, ORIGINAL_SUMS, 'the full folder still has every original');
  assertWhole(full, ORIGINAL_SUMS, planned, '2 (full)');
  assertReportMatchesFiles(run, full.targets, '2');
  assertWhole(await fileSums(vm, TARGETS), ORIGINAL_SUMS, planned, '2 (unmounted)');
  await assertRecovers('2');
});

test('3. a read-only target folder: the write fails cleanly, nothing written', async () => {
  await restore();
  await vm.run(`mount --bind ${SYSCTL_D} ${SYSCTL_D} && mount -o remount,bind,ro ${SYSCTL_D}`);
  const run = await apply();
  const readOnly = await fileSums(vm, TARGETS);
  await vm.run(`umount ${SYSCTL_D}`);
  assert.equal(run.code, 1, run.stdout);
  const host = run.report.hosts[0];
  assert.equal(host.status, 'failed');
  assert.match(host.error, new RegExp(`step 2 of 8 failed .*cannot create a temporary file in ${SYSCTL_D}`));
  assert.deepEqual(host.steps.map((s: any) => s.status), ['ok', 'failed', ...Array(6).fill('not-run')]);
  assert.deepEqual(readOnly.targets, ORIGINAL_SUMS);
  assertWhole(readOnly, ORIGINAL_SUMS, planned, '3');
  assertReportMatchesFiles(run, readOnly.targets, '3');
  await assertRecovers('3');
});

test('4. two applies at once: one applies, the other waits for /run/kvmconf.lock and does not apply a stale plan', async () => {
  await restore();
  const [first, second] = await Promise.all([apply(), apply()]);
  const runs = [first, second];
  const summary = runs.map((run) => `${run.code} ${run.report.hosts[0].status}: ${run.report.hosts[0].error ?? ''}`).join('\n');
  const sums = await fileSums(vm, TARGETS);
  assertWhole(sums, ORIGINAL_SUMS, planned, '4');
  assert.deepEqual(sums.targets, planned, summary);
  for (const run of runs) assertApplyStatuses(run, '4');
  const changed = runs.filter((run) => run.report.hosts[0].status === 'changed');
  assert.equal(changed.length, 1, summary);
  assert.deepEqual(byStatus(changed[0]!, 'applied'), allChanges);
  const other = runs.find((run) => run !== changed[0])!;
  assert.equal(other.code, 0, summary);
  assert.equal(other.report.hosts[0].status, 'ok', summary);
  assert.deepEqual(byStatus(other, 'applied'), [], 'the waiting run found the host converged and changed nothing');
  await assertRecovers('4');
});

test('5. sudo revoked between gather and apply: a clear per-host error, nothing written', async () => {
  await restore();
  const kvmadmin = join(work, 'inventory-kvmadmin.yaml');
  await writeInventory([vm], kvmadmin, 'hypervisors', 'kvmadmin');
  // sudo opens its PAM session once it has allowed the gather's shell: a pam_exec hook revokes
  // kvmadmin's rights right then, so the apply's sudo is refused (a watcher polling for the
  // gather's shell lost the race to the apply on a loaded machine).
  const hook = `#!/bin/sh\n[ "$PAM_TYPE" = open_session ] && [ "$PAM_RUSER" = kvmadmin ] || exit 0\nrm -f /etc/sudoers.d/kvmadmin\ntouch ${FAULT}.fired\n`;
  // seteuid: run as root, not as the invoking user.
  await vm.ssh(`cat > ${PAM_HOOK} && chmod 0755 ${PAM_HOOK} && echo 'session optional pam_exec.so seteuid ${PAM_HOOK}' >> /etc/pam.d/sudo`, { input: hook });
  const run = await apply([], kvmadmin);
  await assertFired();
  assert.equal(run.code, 1, run.stdout);
  const host = run.report.hosts[0];
  assert.equal(host.status, 'failed');
  assert.match(host.error, /become failed: sudo: /);
  assertApplyStatuses(run, '5');
  assert.deepEqual(byStatus(run, 'not-run'), allChanges, 'no change was made');
  const sums = await fileSums(vm, TARGETS);
  assert.deepEqual(sums.targets, ORIGINAL_SUMS);
  assertWhole(sums, ORIGINAL_SUMS, planned, '5');
  assert.equal((await vm.run('sysctl -n vm.swappiness')).trim(), '60', 'no runtime value changed');
  await restore();
  await assertRecovers('5', 'kvmadmin');
});

test('6. the host crashes and reboots during the apply: the host failed, every file and backup whole after boot, a re-run converges', async () => {
  await restore();
  const bootId = await vm.bootId();
  // A hard reset (no sync), once the last file's backup is being made: the earlier files were replaced.
  await arm(`${waitFor('[ -n "$(ls -A /var/backups/kvmconf/etc/tmpfiles.d 2>/dev/null)" ]')}\necho b > /proc/sysrq-trigger`);
  const run = await apply();
  assert.equal(run.code, 1, run.stdout);
  const host = run.report.hosts[0];
  assert.ok(['failed', 'unreachable'].includes(host.status), host.status);
  assert.match(host.error, /dropped|closed|lost|reset/i);
  assertApplyStatuses(run, '6');
  await vm.waitForNewBoot(bootId);
  const sums = await fileSums(vm, TARGETS);
  assertReportMatchesFiles(run, sums.targets, '6 (after boot)');
  // The reset may come after the temporary file of the interrupted write reached the journal.
  assertWhole(sums, ORIGINAL_SUMS, planned, '6 (after boot)', 'allowed');
  for (const stray of sums.strays) {
    const folder = stray.slice(0, stray.lastIndexOf('/'));
    assert.ok(TARGETS.some((path) => path.startsWith(`${folder}/`) && sums.targets[path] === ORIGINAL_SUMS[path]), `6: ${stray} beside a file the crash did not replace`);
  }
  assert.ok(byStatus(run, 'applied').length > 0, 'the crash came after some steps were reported done');
  await vm.run(RUNTIME_ORIGINAL);
  await assertRecovers('6');
});
