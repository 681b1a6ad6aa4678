import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { FACTS_PROBE, parseFacts } from '../../src/engine/facts.js';

test('the facts probe reads the boot_id and the kernel that reports name each host by', () => {
  const facts = parseFacts(spawnSync('/bin/sh', ['-c', FACTS_PROBE], { encoding: 'utf8' }).stdout);
  assert.equal(facts.bootId, readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim());
  assert.equal(facts.kernel, readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim());
  assert.equal(parseFacts('kernel=6.1\n').bootId, '', 'absent when the kernel has none');
});
