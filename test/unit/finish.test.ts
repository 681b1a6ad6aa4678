/** Finishing pending work: which hosts reboot or reload, the guests policy, the retry file, the scripts' parsers. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_FINISH, DEFAULT_GUESTS, loadPlaybook, type FinishPolicy } from '../../src/config/playbook.js';
import { InputErrors, InputError } from '../../src/errors.js';
import { MODULES_BY_NAME } from '../../modules/index.js';
import {
  chooseAction, decideGuests, hookScript, parseInspection, parseShutdown, parseStart, pendingOf, retryFileText, shutdownScript,
  tokensMadeTrue, unfinishedHosts, withOverrides,
} from '../../src/engine/finish-plan.js';
import { wantsFinish } from '../../src/engine/finish.js';
import { exitCode, EXIT } from '../../src/engine/exit-code.js';
import { emptySummary, type ChangeResult, type HostReport, type RunReport } from '../../src/engine/results.js';

const cmdline = (name: string, before: string | null, after: string | null): ChangeResult => ({
  module: 'kernel_cmdline', target: name, scope: 'pending', pendingOn: 'reboot', status: 'pending', before, after,
});
const zcopy: ChangeResult = { module: 'vhost_net', target: 'experimental_zcopytx', scope: 'pending', pendingOn: 'module-reload', status: 'pending', before: '0', after: '1' };
const pinning: ChangeResult = { module: 'libvirt_domain', target: 'vm1/cpu.mode', scope: 'pending', pendingOn: 'guest-restart', status: 'pending', before: null, after: 'host-passthrough' };
const sysctl: ChangeResult = { module: 'sysctl', target: 'vm.swappiness', scope: 'runtime', status: 'applied', before: '60', after: '10' };
const policy = (over: Partial<FinishPolicy> = {}): FinishPolicy => ({ ...DEFAULT_FINISH, ...over });

function host(name: string, status: HostReport['status'], changes: ChangeResult[], finish?: HostReport['finish']): HostReport {
  return { host: name, play: 'p', status, tasks: [{ name: 't', module: 'm', tags: [], diagnostics: [], changes }], execCount: 0, durationMs: 0, ...(finish ? { finish } : {}) };
}

test('a reboot only when the play allows it and a change waits for one; it finishes every pending change', () => {
  const pending = [cmdline('transparent_hugepage', null, 'transparent_hugepage=never'), zcopy];
  assert.equal(chooseAction(pending, policy()), undefined, 'reboot: never is the default');
  assert.deepEqual(chooseAction(pending, policy({ reboot: 'pending' })), { action: 'reboot', finishes: pending });
  assert.deepEqual(chooseAction(pending, policy({ reload: 'pending' })), { action: 'reload', finishes: [zcopy] }, 'no reboot allowed: the reload still finishes vhost_net');
  assert.equal(chooseAction([zcopy], policy({ reboot: 'pending' })), undefined, 'a module reload never becomes a reboot');
  assert.equal(chooseAction([pinning], policy({ reboot: 'pending', reload: 'pending' })), undefined, 'guest restarts are libvirt_domain restart: true');
});

test('only pending changes of a changed or pending host are finished', () => {
  const allowed = policy({ reboot: 'pending' });
  const h = host('hv1', 'changed', [sysctl, cmdline('hugepagesz', null, 'hugepagesz=1G')]);
  assert.deepEqual(pendingOf(h).map((c) => c.target), ['hugepagesz']);
  assert.equal(wantsFinish(h, allowed), true);
  assert.equal(wantsFinish({ ...h, status: 'failed' }, allowed), false, 'a failed host is never rebooted');
  assert.equal(wantsFinish(host('hv2', 'ok', []), allowed), false);
});

test('guests policy: refuse names the domains, shutdown stops them in order, the hook always runs', () => {
  const running = ['db', 'web'];
  assert.deepEqual(decideGuests(DEFAULT_GUESTS, [], 'reboot'), { kind: 'go' });
  const held = decideGuests(DEFAULT_GUESTS, running, 'reboot');
  assert.equal(held.kind, 'hold');
  assert.match((held as { reason: string }).reason, /running domains hold the reboot: db, web \(guests: refuse/);
  assert.deepEqual(decideGuests({ ...DEFAULT_GUESTS, policy: 'shutdown' }, running, 'reload'), { kind: 'stop', domains: running });
  assert.deepEqual(decideGuests({ ...DEFAULT_GUESTS, policy: 'shutdown' }, [], 'reboot'), { kind: 'go' });
  assert.deepEqual(decideGuests({ ...DEFAULT_GUESTS, policy: 'command', command: 'true' }, [], 'reboot'), { kind: 'hook' });
});

test('the /proc/cmdline tokens a reboot made true', () => {
  const finished = [cmdline('transparent_hugepage', null, 'transparent_hugepage=never'), cmdline('hugepagesz', null, 'hugepagesz=1G hugepagesz=2M'), zcopy];
  const booted = 'BOOT_IMAGE=/vmlinuz root=UUID=x ro transparent_hugepage=never hugepagesz=1G hugepagesz=2M quiet';
  assert.deepEqual(tokensMadeTrue(finished, booted), ['transparent_hugepage=never', 'hugepagesz=1G', 'hugepagesz=2M']);
  assert.deepEqual(tokensMadeTrue(finished, 'ro quiet'), []);
});

test('the retry file lists every host that did not finish, once, in run order', () => {
  const report: RunReport = {
    version: 1, tool: 'kvmconf', toolVersion: 't', mode: 'apply', playbook: 'p', startedAt: '', durationMs: 0, interrupted: false, summary: emptySummary(), exitCode: 0,
    hosts: [
      host('hv1', 'changed', [], { action: 'reboot', status: 'done', guests: 'refuse', finishes: [] }),
      host('hv2', 'failed', [], { action: 'reboot', status: 'failed', guests: 'refuse', finishes: [] }),
      host('hv3', 'pending', [], { action: 'reboot', status: 'held', guests: 'refuse', finishes: [] }),
      host('hv4', 'skipped', []),
      host('hv5', 'unreachable', []),
      host('hv6', 'pending', []),
      host('hv2', 'skipped', []),
    ],
  };
  assert.deepEqual(unfinishedHosts(report), ['hv2', 'hv3', 'hv4', 'hv5']);
  assert.equal(retryFileText(['hv2', 'hv3']), '# hosts that did not finish; resume with --limit @FILE\nhv2\nhv3\n');
  assert.equal(exitCode({ ...report, hosts: [report.hosts[2]!], summary: { ...emptySummary(), pending: 1 } }, false), EXIT.pending, 'a held host is not a finished rollout');
  assert.equal(exitCode({ ...report, hosts: [report.hosts[0]!], summary: { ...emptySummary(), changed: 1 } }, false), EXIT.ok);
});

test('command-line overrides win over the play; the guests policy keeps its timeout', () => {
  const play = policy({ reboot: 'pending', guests: { ...DEFAULT_GUESTS, policy: 'shutdown', timeoutS: 30, force: true } });
  assert.deepEqual(withOverrides(play), play);
  const over = withOverrides(play, { reboot: 'never', reload: 'pending', rebootTimeoutS: 90, guests: 'refuse' });
  assert.deepEqual(over, { reboot: 'never', reload: 'pending', rebootTimeoutS: 90, guests: { ...DEFAULT_GUESTS, policy: 'refuse', timeoutS: 30, force: true } });
});

test('parsers of the remote scripts', () => {
  assert.deepEqual(parseInspection('boot_id 1234-ab\ndomain web\ndomain db 2\n'), { bootId: '1234-ab', running: ['web', 'db 2'] });
  assert.equal(parseInspection('boot_id x\nvirsh-error failed to connect to the hypervisor \n').virshError, 'failed to connect to the hypervisor');
  assert.deepEqual(parseShutdown('stopped web shutdown\nstopped db destroy\nrunning cache\n'), {
    stopped: [{ name: 'web', how: 'shutdown' }, { name: 'db', how: 'destroy' }],
    running: ['cache'],
  });
  assert.deepEqual(parseStart('started web\nrunning db\nfailed cache\n'), { started: ['web', 'db'], failed: ['cache'] });
});

test('hostile names stay single words in the scripts', () => {
  const script = shutdownScript({ ...DEFAULT_GUESTS, uri: 'qemu:///system' }, ["a'; reboot; '"]);
  assert.match(script, /for kc_d in 'a'\\''; reboot; '\\'''; do/);
  assert.equal(hookScript("drain $(hostname)", "hv'1", 'reboot', ['x']), `KVMCONF_HOST='hv'\\''1' KVMCONF_ACTION=reboot KVMCONF_DOMAINS=x sh -c 'drain $(hostname)' </dev/null 2>&1`);
});

function load(text: string) {
  const dir = mkdtempSync(join(tmpdir(), 'kvmconf-finish-'));
  const file = join(dir, 'site.yaml');
  writeFileSync(file, text);
  try {
    return { plays: loadPlaybook(file, MODULES_BY_NAME).plays, errors: [] as string[] };
  } catch (error) {
    const list = error instanceof InputErrors ? error.errors : [error as InputError];
    return { plays: [], errors: list.map((e) => e.message.replace(file, 'site.yaml')) };
  }
}

test('play options: defaults, the string and object forms of guests, and their errors at the line', () => {
  assert.deepEqual(load('- hosts: all\n  tasks: []\n').plays[0]!.finish, DEFAULT_FINISH);
  const full = load('- hosts: all\n  reboot: pending\n  reload: pending\n  reboot_timeout: 300\n  guests: shutdown\n  tasks: []\n').plays[0]!.finish;
  assert.deepEqual(full, { reboot: 'pending', reload: 'pending', rebootTimeoutS: 300, guests: { ...DEFAULT_GUESTS, policy: 'shutdown' } });
  const hook = load('- hosts: all\n  guests: { policy: command, command: /usr/local/bin/evacuate, timeout: 900 }\n  tasks: []\n').plays[0]!.finish.guests;
  assert.deepEqual(hook, { ...DEFAULT_GUESTS, policy: 'command', command: '/usr/local/bin/evacuate', timeoutS: 900 });
  assert.deepEqual(load('- hosts: all\n  guests: { policy: command }\n  tasks: []\n').errors, ["site.yaml:2:3 ($[0].guests): guests: policy 'command' needs a 'command' to run"]);
  assert.match(load('- hosts: all\n  guests: { policy: shutdown, command: x }\n  tasks: []\n').errors[0]!, /only used with policy 'command'/);
  assert.match(load('- hosts: all\n  reboot: always\n  tasks: []\n').errors[0]!, /^site.yaml:2:\d+ \(\$\[0\].reboot\)/);
});

test('reports show how a host was finished: text lines, JSON key order, a JUnit case', async () => {
  const { renderText } = await import('../../src/report/text.js');
  const { renderJson } = await import('../../src/report/json.js');
  const { renderJunit } = await import('../../src/report/junit.js');
  const done = host('hv1', 'changed', [{ ...cmdline('transparent_hugepage', null, 'transparent_hugepage=never'), status: 'applied' }], {
    action: 'reboot', status: 'done', guests: 'shutdown', finishes: ['kernel_cmdline transparent_hugepage'], bootIdBefore: 'aaa', bootIdAfter: 'bbb', durationMs: 24_100,
    guestsStopped: [{ name: 'web', how: 'shutdown' }], guestsStarted: ['web'], cmdline: ['transparent_hugepage=never'],
  });
  const held = host('hv2', 'pending', [cmdline('transparent_hugepage', null, 'transparent_hugepage=never')], {
    action: 'reboot', status: 'held', guests: 'refuse', finishes: ['kernel_cmdline transparent_hugepage'], heldBy: ['db'], reason: 'running domains hold the reboot: db',
  });
  const report: RunReport = {
    version: 1, tool: 'kvmconf', toolVersion: 't', mode: 'apply', playbook: 'p', startedAt: '2026-01-01T00:00:00.000Z', durationMs: 0, interrupted: false,
    summary: { ...emptySummary(), changed: 1, pending: 1 }, exitCode: 3, retryFile: 'p.retry', hosts: [done, held],
  };
  const text = renderText(report, { color: false, diff: false });
  assert.match(text, /kernel_cmdline transparent_hugepage: \(absent\) -> transparent_hugepage=never \(done by reboot\)\n/);
  assert.match(text, /hv1 +ok=0 changed=1 pending=0 .* changed\n/, 'a finished pending change is counted changed, not pending');
  assert.match(text, /  finish: reboot done in 24\.1s\n    boot_id aaa -> bbb\n    \/proc\/cmdline now has transparent_hugepage=never\n    guests stopped: web \(shutdown\)\n    guests started again: web\n/);
  assert.match(text, /  finish: reboot held: running domains hold the reboot: db\n    finishes kernel_cmdline transparent_hugepage\n/);
  const json = renderJson(report);
  assert.match(json, /"exitCode": 3,\n  "retryFile": "p.retry",\n  "summary"/);
  assert.deepEqual(Object.keys(JSON.parse(json).hosts[0].finish), ['action', 'status', 'guests', 'finishes', 'bootIdBefore', 'bootIdAfter', 'durationMs', 'guestsStopped', 'guestsStarted', 'cmdline']);
  const xml = renderJunit(report);
  assert.match(xml, /<testcase classname="hv1" name="reboot" time="[\d.]+">\n\s+<system-out>reboot done in 24\.1s/);
  assert.match(xml, /<testcase classname="hv2" name="reboot" time="[\d.]+">\n\s+<skipped message="reboot held: running domains hold the reboot: db"\/>/);
});
