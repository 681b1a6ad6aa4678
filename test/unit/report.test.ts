import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { REPORT_VERSION } from '../../src/engine/results.js';
import type { RunReport, TaskReport } from '../../src/engine/results.js';
import { applyReport, checkReport, host, report, swappiness, task, thpPending } from '../helpers/report-fixtures.js';
import { changeLine, formatDuration, taskState } from '../../src/report/common.js';
import { renderJson } from '../../src/report/json.js';
import { createProgress, REDRAW_INTERVAL_MS } from '../../src/report/progress.js';
import { shouldUseColor } from '../../src/report/style.js';
import { renderText } from '../../src/report/text.js';

const ESC = '\x1b[';

function lines(text: string): string[] {
  return text.split('\n');
}

// ---------------------------------------------------------------- shared helpers

describe('report helpers', () => {
  it('classifies tasks: error or failed change > non-pending change > pending only > ok', () => {
    assert.equal(taskState(task('a', 'sysctl')), 'ok');
    assert.equal(taskState(task('a', 'sysctl', [thpPending])), 'pending');
    assert.equal(taskState(task('a', 'sysctl', [thpPending, swappiness])), 'changed');
    assert.equal(taskState(task('a', 'sysctl', [{ ...swappiness, status: 'not-run' }])), 'skipped', 'a change an earlier failure kept from running');
    assert.equal(taskState(task('a', 'sysctl', [swappiness], { error: 'boom' })), 'failed');
    assert.equal(taskState(task('a', 'sysctl', [{ ...swappiness, status: 'failed' }])), 'failed');
  });

  it('writes a change on one line, noting a status the mode does not imply', () => {
    assert.equal(changeLine(swappiness, 'check'), 'sysctl vm.swappiness: 60 -> 10 (runtime)');
    assert.equal(changeLine({ ...swappiness, status: 'applied' }, 'apply'), 'sysctl vm.swappiness: 60 -> 10 (runtime)');
    assert.equal(changeLine({ ...swappiness, status: 'not-run' }, 'apply'), 'sysctl vm.swappiness: 60 -> 10 (runtime) [not-run]');
    assert.equal(changeLine(thpPending, 'apply'), 'kernel_cmdline transparent_hugepage: (absent) -> never (pending reboot)');
    assert.equal(
      changeLine({ ...thpPending, pendingOn: 'module-reload', after: null }, 'check'),
      'kernel_cmdline transparent_hugepage: (absent) -> (absent) (pending module-reload)',
    );
  });

  it('formats durations', () => {
    assert.equal(formatDuration(0), '0.0s');
    assert.equal(formatDuration(4200), '4.2s');
    assert.equal(formatDuration(59_940), '59.9s');
    assert.equal(formatDuration(59_960), '1m00s');
    assert.equal(formatDuration(125_000), '2m05s');
  });
});

// ---------------------------------------------------------------- text

describe('text report', () => {
  it('lists each host with its changes, problems and the recap (check mode)', () => {
    assert.deepEqual(lines(renderText(checkReport(), { color: false, diff: false })), [
      'host hv1 (play tune): changed',
      '  sysctl vm.swappiness: 60 -> 10 (runtime)',
      '  kernel_cmdline /etc/default/grub:GRUB_CMDLINE_LINUX: quiet -> quiet transparent_hugepage=never (persist)',
      '  kernel_cmdline transparent_hugepage: (absent) -> never (pending reboot)',
      '    the kernel reads its command line at boot',
      '  warning: GRUB_CMDLINE_LINUX_DEFAULT also sets quiet',
      '',
      'host hv2 (play tune): pending',
      '  kernel_cmdline transparent_hugepage: (absent) -> never (pending reboot)',
      '    the kernel reads its command line at boot',
      '',
      'host hv3 (play tune): unreachable',
      '  error: ssh: connect to host hv3 port 22: Connection refused',
      '',
      'host hv4 (play guests): skipped',
      '',
      'RECAP',
      'hv1  ok=1 changed=2 pending=0 failed=0 skipped=0 unreachable=0  changed',
      'hv2  ok=1 changed=0 pending=1 failed=0 skipped=0 unreachable=0  pending',
      'hv3  ok=0 changed=0 pending=0 failed=0 skipped=0 unreachable=1  unreachable',
      'hv4  ok=0 changed=0 pending=0 failed=0 skipped=0 unreachable=0  skipped',
      '4 hosts: 1 changed, 1 pending, 1 unreachable, 1 skipped in 4.2s (check mode)',
      '',
    ]);
  });

  it('shows failed changes, task and host errors and the tail of a failed step (apply mode)', () => {
    const output = lines(renderText(applyReport(), { color: false, diff: false }));
    assert.deepEqual(output.slice(0, 8), [
      'host hv1 (play tune): failed',
      '  error: apply stopped at step 2 of 3',
      '  sysctl vm.swappiness: 60 -> 10 (runtime)',
      '  sysctl vm.nr_hugepages: 0 -> 1024 (runtime) [failed]',
      '  error: hugepages: step "sysctl vm.nr_hugepages" failed (exit 1)',
      '  kernel_cmdline /etc/default/grub:GRUB_CMDLINE_LINUX: quiet -> quiet transparent_hugepage=never (persist) [not-run]',
      '  failed step: sysctl vm.nr_hugepages (exit 1)',
      '    ... (5 earlier lines)',
    ]);
    assert.deepEqual(
      output.slice(8, 28),
      Array.from({ length: 20 }, (_, i) => `    line ${i + 6}`),
    );
    assert.deepEqual(output.slice(28), [
      '',
      'RECAP',
      'hv1  ok=0 changed=1 pending=0 failed=1 skipped=1 unreachable=0  failed',
      '1 host: 1 failed in 1m05s (apply mode)',
      '',
    ]);
  });

  it('lists tasks in desired state, every step and host timing when verbose', () => {
    const output = renderText(applyReport(), { color: false, diff: false, verbose: true });
    assert.ok(output.startsWith('host hv1 (play tune): failed (2.1s, 2 commands)\n'));
    assert.match(output, /^ {2}step sysctl vm\.swappiness: ok$/m);
    assert.match(output, /^ {2}step kernel_cmdline \/etc\/default\/grub: not-run$/m);
    const check = renderText(checkReport(), { color: false, diff: false, verbose: true });
    assert.match(check, /^ {2}ok: dirty ratio \(sysctl\)$/m);
    assert.doesNotMatch(renderText(checkReport(), { color: false, diff: false }), /dirty ratio/);
  });

  it('shows file changes as unified diffs and value changes as -/+ lines', () => {
    const output = lines(renderText(checkReport(), { color: false, diff: true }));
    const start = output.indexOf('  kernel_cmdline /etc/default/grub:GRUB_CMDLINE_LINUX: quiet -> quiet transparent_hugepage=never (persist)');
    assert.deepEqual(output.slice(1, 4), ['  sysctl vm.swappiness: 60 -> 10 (runtime)', '    - 60', '    + 10']);
    assert.deepEqual(output.slice(start + 1, start + 8), [
      '    --- /etc/default/grub (current)',
      '    +++ /etc/default/grub (desired)',
      '    @@ -1,3 +1,3 @@',
      '     GRUB_TIMEOUT=5',
      '    -GRUB_CMDLINE_LINUX="quiet"',
      '    +GRUB_CMDLINE_LINUX="quiet transparent_hugepage=never"',
      '     GRUB_DISABLE_RECOVERY=true',
    ]);
    // An absent before value has no '-' line; the reason comes before the diff.
    assert.deepEqual(output.slice(start + 8, start + 11), [
      '  kernel_cmdline transparent_hugepage: (absent) -> never (pending reboot)',
      '    the kernel reads its command line at boot',
      '    + never',
    ]);
  });

  it('uses colour codes only when asked to', () => {
    for (const diff of [false, true]) {
      assert.ok(!renderText(checkReport(), { color: false, diff }).includes('\x1b'));
      assert.ok(!renderText(applyReport(), { color: false, diff, verbose: true }).includes('\x1b'));
    }
    const coloured = renderText(checkReport(), { color: true, diff: true });
    assert.ok(coloured.includes(`${ESC}33mchanged${ESC}39m`), 'status word in yellow');
    assert.ok(coloured.includes(`${ESC}32m+GRUB_CMDLINE_LINUX="quiet transparent_hugepage=never"${ESC}39m`), '+ in green');
    assert.ok(coloured.includes(`${ESC}31m-GRUB_CMDLINE_LINUX="quiet"${ESC}39m`), '- in red');
    assert.ok(coloured.includes(`${ESC}36m@@ -1,3 +1,3 @@${ESC}39m`), '@@ in cyan');
    // Without the codes the coloured report is the plain one.
    assert.equal(coloured.replace(/\x1b\[[0-9;]*m/g, ''), renderText(checkReport(), { color: false, diff: true }));
  });

  it('adds up a host that ran in several plays into one recap line with its worst status', () => {
    const twice = report('check', [
      host('hv1', 'ok', [task('a', 'sysctl')]),
      host('hv1', 'changed', [task('b', 'sysctl', [swappiness])], { play: 'second' }),
    ]);
    const output = lines(renderText(twice, { color: false, diff: false }));
    assert.deepEqual(output.slice(-4), [
      'RECAP',
      'hv1  ok=1 changed=1 pending=0 failed=0 skipped=0 unreachable=0  changed',
      '1 host: 1 changed in 4.2s (check mode)',
      '',
    ]);
  });

  it('groups hosts by play, keeping their order within a play, and notes an interrupted run', () => {
    const mixed = report(
      'check',
      [
        host('b1', 'ok', [], { play: 'one' }),
        host('c1', 'ok', [], { play: 'two' }),
        host('a1', 'ok', [], { play: 'one' }),
      ],
      { interrupted: true },
    );
    const output = renderText(mixed, { color: false, diff: false });
    const headers = lines(output).filter((line) => line.startsWith('host '));
    assert.deepEqual(headers, ['host b1 (play one): ok', 'host a1 (play one): ok', 'host c1 (play two): ok']);
    assert.match(output, /^3 hosts: 3 ok in 4\.2s \(check mode, interrupted\)$/m);
  });
});

describe('shouldUseColor', () => {
  const tty = { isTTY: true };
  const pipe = { isTTY: false };

  it('colours a terminal only', () => {
    assert.equal(shouldUseColor(tty, {}), true);
    assert.equal(shouldUseColor(pipe, {}), false);
    assert.equal(shouldUseColor({}, {}), false);
  });

  it('turns colour off for NO_COLOR, CI and TERM=dumb', () => {
    assert.equal(shouldUseColor(tty, { NO_COLOR: '1' }), false);
    assert.equal(shouldUseColor(tty, { NO_COLOR: '' }), true);
    assert.equal(shouldUseColor(tty, { CI: 'true' }), false);
    assert.equal(shouldUseColor(tty, { CI: 'false' }), true);
    assert.equal(shouldUseColor(tty, { TERM: 'dumb' }), false);
    assert.equal(shouldUseColor(tty, { TERM: 'xterm-256color' }), true);
  });

  it('lets FORCE_COLOR decide', () => {
    assert.equal(shouldUseColor(pipe, { FORCE_COLOR: '1' }), true);
    assert.equal(shouldUseColor(pipe, { FORCE_COLOR: '1', CI: 'true', NO_COLOR: '1' }), true);
    assert.equal(shouldUseColor(tty, { FORCE_COLOR: '0' }), false);
  });
});

// ---------------------------------------------------------------- JSON

/** The report as built, without the status renderJson derives for each task. */
function withoutTaskStatus(parsed: RunReport): RunReport {
  return { ...parsed, hosts: parsed.hosts.map((entry) => ({ ...entry, tasks: entry.tasks.map(({ status: _status, ...rest }: TaskReport & { status?: string }) => rest) })) };
}

describe('JSON report', () => {
  it('round-trips the report with its version', () => {
    const original = applyReport();
    const text = renderJson(original);
    assert.ok(text.endsWith('}\n'));
    const parsed = JSON.parse(text) as RunReport;
    assert.equal(parsed.version, 1);
    assert.equal(parsed.version, REPORT_VERSION);
    assert.deepEqual(withoutTaskStatus(parsed), original);
    assert.deepEqual(withoutTaskStatus(JSON.parse(renderJson(checkReport())) as RunReport), checkReport());
  });

  it('gives each task its status, after its module', () => {
    const parsed = JSON.parse(renderJson(applyReport())) as { hosts: Array<{ tasks: Array<Record<string, unknown>> }> };
    const tasks = parsed.hosts[0]!.tasks;
    assert.deepEqual(tasks.map((entry) => entry.status), ['changed', 'failed', 'skipped']);
    assert.deepEqual(Object.keys(tasks[0]!).slice(0, 3), ['name', 'module', 'status']);
    const check = JSON.parse(renderJson(checkReport())) as typeof parsed;
    assert.deepEqual(check.hosts[1]!.tasks.map((entry) => entry.status), ['ok', 'pending']);
  });

  it('writes the run settings and each host\'s groups, distribution, kernel and boot_id in their documented places', () => {
    const run = { inventory: ['hosts.yaml'], limit: 'rack1', tags: ['memory'], skipTags: [], forks: 50, plays: [{ name: 'tune', hosts: 'all', serial: [1, '50%'], maxFailPercentage: 0, reboot: 'pending' as const, reload: 'never' as const, guests: 'shutdown' as const, rebootTimeoutS: 600 }] };
    const identity = { groups: ['rack1'], distribution: 'debian 12', kernel: '6.1.0-18-amd64', bootId: '3f2c' };
    const base = report('check', [host('hv1', 'ok', [task('swappiness', 'sysctl')], identity)], { run });
    const parsed = JSON.parse(renderJson(base)) as Record<string, unknown> & { hosts: Array<Record<string, unknown>> };
    assert.deepEqual(Object.keys(parsed).slice(-3), ['run', 'summary', 'hosts']);
    assert.deepEqual(parsed.run, run);
    assert.deepEqual(Object.keys(parsed.hosts[0]!), ['host', 'play', 'status', 'groups', 'distribution', 'kernel', 'bootId', 'durationMs', 'execCount', 'tasks']);
  });

  it('writes keys in the documented order whatever order they were built in', () => {
    const original = checkReport();
    const reverse = (value: object): object => Object.fromEntries(Object.entries(value).reverse());
    const reversed = { ...reverse(original), hosts: original.hosts.map(reverse) } as RunReport;
    const text = renderJson(reversed);
    assert.equal(text, renderJson(original));
    assert.deepEqual(Object.keys(JSON.parse(text) as object), [
      'version', 'tool', 'toolVersion', 'mode', 'playbook', 'startedAt', 'durationMs', 'interrupted', 'exitCode', 'summary', 'hosts',
    ]);
    const parsed = JSON.parse(text) as RunReport;
    assert.deepEqual(Object.keys(parsed.hosts[2]!), ['host', 'play', 'status', 'error', 'durationMs', 'execCount', 'tasks']);
    assert.deepEqual(Object.keys(parsed.hosts[0]!.tasks[1]!), ['name', 'module', 'status', 'tags', 'diagnostics', 'changes']);
    assert.deepEqual(Object.keys(parsed.hosts[0]!.tasks[1]!.changes[1]!), [
      'module', 'target', 'scope', 'status', 'before', 'after', 'pendingOn', 'reason',
    ]);
    assert.match(text, /^ {2}"version": 1,$/m);
  });

  it('keeps fields it does not know, after the known ones', () => {
    const extended = { ...checkReport(), zeta: 1, alpha: { b: 2, a: 1 } } as unknown as RunReport;
    const keys = Object.keys(JSON.parse(renderJson(extended)) as object);
    assert.deepEqual(keys.slice(-3), ['hosts', 'alpha', 'zeta']);
    assert.match(renderJson(extended), /"alpha": \{\n {4}"a": 1,\n {4}"b": 2\n {2}\}/);
  });
});

// ---------------------------------------------------------------- progress

function fakeStream(columns?: number): { stream: { write(text: string): boolean; columns?: number }; writes: string[] } {
  const writes: string[] = [];
  return { writes, stream: { columns, write: (text: string) => (writes.push(text), true) } };
}

const CLEAR = '\r\x1b[2K';

describe('progress', () => {
  it('prints one plain line per finished host when not interactive', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_000_000 });
    const { stream, writes } = fakeStream();
    const progress = createProgress({ stream, interactive: false, total: 2 });
    progress.hostStarted('hv1', 'connect');
    progress.hostStarted('hv2', 'connect');
    progress.hostPhase('hv1', 'gather');
    progress.hostPhase('hv1', 'apply');
    assert.deepEqual(writes, []);
    t.mock.timers.tick(2100);
    progress.hostDone('hv1', 'changed');
    t.mock.timers.tick(2900);
    progress.hostDone('hv2', 'unreachable');
    progress.stop();
    assert.deepEqual(writes, ['hv1: changed (2.1s)\n', 'hv2: unreachable (5.0s)\n']);
    assert.ok(!writes.join('').includes('\x1b'));
  });

  it('rewrites one live line in place, at most every 100ms, and clears it on stop', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_000_000 });
    const { stream, writes } = fakeStream();
    const progress = createProgress({ stream, interactive: true, total: 3 });
    progress.hostStarted('hv1', 'connect');
    assert.deepEqual(writes, [`${CLEAR}[0/3] 1 running, 0 ok, 0 changed, 0 failed ... hv1 connect`]);

    // A burst of events inside one interval gives one redraw, showing the latest state.
    progress.hostStarted('hv2', 'connect');
    progress.hostPhase('hv1', 'gather');
    progress.hostStarted('hv3', 'connect');
    progress.hostPhase('hv1', 'apply');
    assert.equal(writes.length, 1);
    t.mock.timers.tick(REDRAW_INTERVAL_MS - 1);
    assert.equal(writes.length, 1);
    t.mock.timers.tick(1);
    assert.deepEqual(writes.slice(1), [`${CLEAR}[0/3] 3 running, 0 ok, 0 changed, 0 failed ... hv1 apply`]);

    t.mock.timers.tick(500);
    progress.hostDone('hv1', 'changed');
    progress.hostDone('hv2', 'unreachable');
    t.mock.timers.tick(REDRAW_INTERVAL_MS);
    assert.deepEqual(writes.slice(2), [
      `${CLEAR}[1/3] 2 running, 0 ok, 1 changed, 0 failed ... hv3 connect`,
      `${CLEAR}[2/3] 1 running, 0 ok, 1 changed, 0 failed, 1 unreachable ... hv3 connect`,
    ]);
    assert.ok(writes.every((write) => !write.includes('\n')), 'never a new line');

    progress.hostPhase('hv3', 'verify');
    progress.stop();
    t.mock.timers.tick(1000);
    progress.hostDone('hv3', 'ok');
    assert.deepEqual(writes.slice(4), [CLEAR]);
  });

  it('draws at most ten times a second however many events arrive', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 });
    const drawnAt: number[] = [];
    const stream = { write: (text: string) => (text !== CLEAR && drawnAt.push(Date.now()), true) };
    const progress = createProgress({ stream, interactive: true, total: 1000 });
    for (let i = 0; i < 1000; i++) {
      progress.hostStarted(`hv${i}`, 'connect');
      t.mock.timers.tick(1);
    }
    progress.stop();
    assert.deepEqual(drawnAt, [0, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000]);
  });

  it('keeps the live line narrower than the terminal', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 });
    const { stream, writes } = fakeStream(20);
    const progress = createProgress({ stream, interactive: true, total: 50 });
    progress.hostStarted('a-rather-long-host-name.example.com', 'gather');
    assert.deepEqual(writes, [`${CLEAR}[0/50] 1 running, 0`]);
    progress.stop();
  });
});

describe('control characters in text output', () => {
  it('a hostile task name, value and error reach the terminal escaped, newlines kept', () => {
    const hostile = report('check', [
      host('hv1', 'failed', [task('tune \x1b]0;owned\x07', 'sysctl', [{ ...swappiness, before: '60\x1b[2J', after: '10' }])], { error: 'step failed:\x1b[1A\x1b[2Kall good' }),
    ]);
    for (const color of [false, true]) {
      const text = renderText(hostile, { color, diff: true });
      assert.doesNotMatch(text.replace(/\x1b\[[0-9;]*m/g, ''), /[\x00-\x08\x0b-\x1f\x7f]/, 'only our own colour codes remain');
      assert.match(text, /60\\x1b\[2J -> 10/);
      assert.match(text, /step failed:\\x1b\[1A\\x1b\[2Kall good/);
    }
  });
});
