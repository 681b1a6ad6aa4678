/** The command builder: every value quoted, fixed code and globs only as the types allow. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { glob, inline, quote, sh, shellCode, words, type Command } from '../../src/kit/shell.js';
import type { Change } from '../../src/kit/module.js';

const run = (command: string) => spawnSync('/bin/sh', ['-c', command], { encoding: 'utf8' }).stdout;

test('sh quotes every value so it stays one inert word', () => {
  for (const hostile of ["a'b", '$(touch /tmp/x)', '`id`', 'a b', '', '-n', 'x\ny', '*', '; reboot']) {
    assert.equal(run(sh`printf '%s|' ${hostile}`), `${hostile}|`);
  }
  assert.equal(sh`kc_set_value ${'/proc/sys/vm/swappiness'} ${10}`, 'kc_set_value /proc/sys/vm/swappiness 10');
});

test('words quotes each value; inline splices a finished command; shellCode is the text as written', () => {
  assert.equal(run(sh`printf '%s|' ${words(['a b', "c'd"])}`), "a b|c'd|");
  const virsh = sh`virsh -c ${'qemu:///system'}`;
  assert.equal(sh`${inline(virsh)} list`, 'virsh -c qemu:///system list');
  assert.equal(shellCode`echo "$HOME"`, 'echo "$HOME"');
  assert.equal(quote("it's"), `'it'\\''s'`);
});

test('glob lets only glob characters through unquoted', () => {
  assert.equal(sh`case "$n" in ${glob('vd*')}) echo y ;; esac`, 'case "$n" in vd*) echo y ;; esac');
  for (const bad of ['vd*;reboot', '$(id)', 'a b', '']) assert.throws(() => glob(bad), /not a plain glob pattern/);
});

test('a plain string or a hand-spliced template is not a Command (checked by the compiler)', () => {
  const value = 'x; reboot';
  // @ts-expect-error a string is not a Command
  const plain: Command = `echo ${value}`;
  // @ts-expect-error shellCode takes no value
  const spliced = shellCode`echo ${value}`;
  // @ts-expect-error a change's commands are Commands
  const change: Change = { module: 'm', target: 't', scope: 'runtime', before: null, after: 'x', commands: [`echo ${value}`] };
  assert.ok(plain && spliced && change);
});
