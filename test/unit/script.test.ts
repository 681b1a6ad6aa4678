import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { buildApplyScript, buildGatherScript, newMark, parseApplyOutput, splitSections } from '../../src/engine/script.js';

const runSh = (script: string) => spawnSync('/bin/sh', ['-s'], { input: script, encoding: 'utf8' });

test('gather splits each probe output exactly, trailing newlines and all', () => {
  const mark = newMark();
  const sections = [
    { id: 'a', script: "printf 'one\\ntwo\\n'" },
    { id: 'b', script: "printf 'no newline'" },
    { id: 'c', script: 'echo; echo; false' },
    { id: 'd', script: `echo '${'__kvmconf_forged__'} end d 0'` },
  ];
  const result = runSh(buildGatherScript(sections, mark));
  const out = splitSections(result.stdout, mark);
  assert.deepEqual(out.get('a'), { output: 'one\ntwo\n', status: 0 });
  assert.deepEqual(out.get('b'), { output: 'no newline', status: 0 });
  assert.deepEqual(out.get('c'), { output: '\n\n', status: 1 });
  assert.equal(out.get('d')?.output, '__kvmconf_forged__ end d 0\n');
});

test('a probe cannot read the script from stdin', () => {
  const mark = newMark();
  const result = runSh(buildGatherScript([{ id: 'x', script: 'cat' }, { id: 'y', script: 'echo still-here' }], mark));
  const out = splitSections(result.stdout, mark);
  assert.equal(out.get('x')?.output, '');
  assert.equal(out.get('y')?.output, 'still-here\n');
});

test('apply stops at the first failed step and reports which ran', () => {
  const mark = newMark();
  const steps = [
    { label: 'one', commands: ['echo first'] },
    { label: 'two', commands: ['echo second', 'false', 'echo never'] },
    { label: 'three', commands: ['echo third'] },
  ];
  const result = runSh(buildApplyScript(steps, mark));
  const { outcomes, interrupted } = parseApplyOutput(result.stdout, mark, steps);
  assert.equal(interrupted, false);
  assert.deepEqual(outcomes.map((o) => o.status), ['ok', 'failed', 'not-run']);
  assert.equal(outcomes[0]!.output, 'first\n');
  assert.equal(outcomes[1]!.output, 'second\n');
  assert.equal(outcomes[1]!.exitCode, 1);
});

test('a step cut off mid-way (dropped connection) counts as failed, later ones as not run', () => {
  const mark = 'M';
  const steps = [{ label: 'a', commands: [] }, { label: 'b', commands: [] }, { label: 'c', commands: [] }];
  const partial = `\nM step 0\nok\nM done 0 0\n\nM step 1\nhalf`;
  const { outcomes } = parseApplyOutput(partial, mark, steps);
  assert.deepEqual(outcomes.map((o) => o.status), ['ok', 'failed', 'not-run']);
  assert.equal(outcomes[1]!.output, 'half');
});

test('SIGINT lets the running step finish, then stops before the next', async () => {
  const mark = newMark();
  const steps = [
    { label: 'slow', commands: ['echo started', 'sleep 1', 'echo finished'] },
    { label: 'next', commands: ['echo must-not-run'] },
  ];
  const child = spawn('/bin/sh', ['-s'], { stdio: ['pipe', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.on('data', (chunk) => {
    stdout += chunk;
    if (stdout.includes('started')) child.kill('SIGINT');
  });
  child.stdin.end(buildApplyScript(steps, mark));
  await new Promise((resolve) => child.on('close', resolve));
  const { outcomes, interrupted } = parseApplyOutput(stdout, mark, steps);
  assert.equal(interrupted, true);
  assert.deepEqual(outcomes.map((o) => o.status), ['ok', 'not-run']);
  assert.match(outcomes[0]!.output, /finished/);
});
