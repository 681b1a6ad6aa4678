/**
 * The libvirt transition matrix (test/helpers/libvirt-transitions.ts) against the real
 * libvirtd on this machine: every row, every (from, to) pair, on a running and on a
 * shut-off domain. Fails (never skips) without libvirtd.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { FACTS_PROBE, parseFacts } from '../../src/engine/facts.js';
import { startLibvirtd, type Libvirtd } from '../helpers/libvirtd.js';
import { TRANSITIONS, TransitionMatrix } from '../helpers/libvirt-transitions.js';

let daemon: Libvirtd | undefined;
let dir = '';

/** Runs a script with /bin/sh without blocking, so several test domains progress at once. */
function sh(script: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-s'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`sh exited ${code}: ${err}`))));
    child.stdin.end(script);
  });
}

before(() => {
  daemon = startLibvirtd();
  dir = mkdtempSync(join(tmpdir(), 'kvmconf-libvirt-matrix-'));
  chmodSync(dir, 0o755); // qemu runs as libvirt-qemu: it must reach the disk file
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  daemon?.stop();
});

test('transition matrix: check predicts what libvirt does, live and in the config, from every starting state', { timeout: 900_000 }, async () => {
  const facts = parseFacts(await sh(FACTS_PROBE));
  const matrix = new TransitionMatrix({ exec: sh, facts, dir }, `kvmconf-mx-${randomBytes(3).toString('hex')}`, TRANSITIONS);
  await matrix.play(3);
  const report = matrix.report();
  console.log(report);
  assert.ok(matrix.results.length > 0, 'the matrix ran cases');
  assert.deepEqual(matrix.results.filter((r) => r.error).map((r) => `${r.setting} ${r.from} -> ${r.to} (${r.running ? 'running' : 'shut off'}): ${r.error}`), []);
});
