import { test } from 'node:test';
import assert from 'node:assert/strict';
import { batches } from '../../src/engine/runner.js';
import { exitCode, EXIT } from '../../src/engine/exit-code.js';
import { emptySummary, type RunReport, type Summary } from '../../src/engine/results.js';

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
