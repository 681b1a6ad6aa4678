import { test } from 'node:test';
import assert from 'node:assert/strict';
import { batches } from '../../src/engine/runner.js';
import { exitCode, EXIT } from '../../src/engine/exit-code.js';
import { detachedReport, emptySummary, type HostReport, type RunReport, type Summary } from '../../src/engine/results.js';

const hosts = Array.from({ length: 10 }, (_, i) => `hv${i}`);

test('serial batches follow Ansible: counts, percentages, the last size repeating', () => {
  assert.deepEqual(batches(hosts, []).map((b) => b.length), [10]);
  assert.deepEqual(batches(hosts, [3]).map((b) => b.length), [3, 3, 3, 1]);
  assert.deepEqual(batches(hosts, ['25%']).map((b) => b.length), [2, 2, 2, 2, 2]);
  assert.deepEqual(batches(hosts, [1, '50%']).map((b) => b.length), [1, 5, 4]);
  assert.deepEqual(batches(hosts.slice(0, 3), ['10%']).map((b) => b.length), [1, 1, 1], 'a percentage never makes an empty batch');
  assert.deepEqual(batches([], [2]), []);
});

function report(mode: 'check' | 'apply', counts: Partial<Summary>, interrupted = false): RunReport {
  return { version: 1, tool: 'kvmconf', toolVersion: 't', mode, playbook: 'p', startedAt: '', durationMs: 0, interrupted, hosts: [], summary: { ...emptySummary(), ...counts }, exitCode: 0 };
}

test('exit codes: check mode', () => {
  assert.equal(exitCode(report('check', { ok: 3 }), false), EXIT.ok);
  assert.equal(exitCode(report('check', { ok: 1, changed: 1, pending: 1 }), false), EXIT.drift);
  assert.equal(exitCode(report('check', { ok: 1, pending: 1 }), false), EXIT.pending);
  assert.equal(exitCode(report('check', { changed: 1, unreachable: 1 }), false), EXIT.error);
  assert.equal(exitCode(report('check', { changed: 1, skipped: 2 }, true), false), EXIT.interrupted);
});

test('exit codes: apply, plain and detailed', () => {
  assert.equal(exitCode(report('apply', { changed: 2, pending: 1 }), false), EXIT.ok);
  assert.equal(exitCode(report('apply', { changed: 2 }), true), EXIT.drift);
  assert.equal(exitCode(report('apply', { ok: 1, pending: 1 }), true), EXIT.pending);
  assert.equal(exitCode(report('apply', { ok: 2 }), true), EXIT.ok);
  assert.equal(exitCode(report('apply', { ok: 2, failed: 1 }), true), EXIT.error);
  assert.deepEqual(EXIT, { ok: 0, error: 1, drift: 2, pending: 3, interrupted: 4 }, 'documented in README.md: changing one breaks users');
});

test('a kept host report is its JSON, with strings repeated across hosts kept once and the pool bounded', () => {
  const output = `kernel=6.1.0-28-amd64\n${'x'.repeat(6000)}`;
  const hostReport = (host: string): HostReport => ({
    host, play: 'p', status: 'changed', execCount: 1, durationMs: 3, ...emptySummary(), error: undefined,
    kernel: output.slice(7, 21),
    tasks: [{ name: 't', module: 'sysctl', tags: [], diagnostics: [], changes: [{ module: 'sysctl', target: 'vm.swappiness', scope: 'runtime', before: '60', after: '10', status: 'planned', commands: ['kc_set_value ' + '/proc/sys/vm/swappiness 10'] }] }],
  } as unknown as HostReport);
  const pool = new Map<string, string>();
  const first = detachedReport(hostReport('hv1'), pool);
  assert.deepEqual(first, JSON.parse(JSON.stringify(hostReport('hv1'))));
  assert.equal(first.kernel, '6.1.0-28-amd64');
  assert.ok(!('error' in first), 'undefined fields are left out, as in the JSON report');
  const pooled = pool.size;
  assert.ok(pool.has('kc_set_value /proc/sys/vm/swappiness 10') && pool.has('6.1.0-28-amd64'));
  detachedReport(hostReport('hv2'), pool);
  assert.equal(pool.size, pooled, 'the second host adds no string of its own but its name, which is short');
  for (let i = 0; i < 9000; i++) pool.set(`filler-${i}`, `filler-${i}`);
  const full = pool.size;
  detachedReport(hostReport('a-long-host-name'), pool);
  assert.equal(pool.size, full, 'a full pool takes no more strings');
});
