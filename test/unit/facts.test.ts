import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FACTS_PROBE, parseFacts } from '../../src/engine/facts.js';

test('the facts probe reads the boot_id and the kernel that reports name each host by', () => {
  const facts = parseFacts(spawnSync('/bin/sh', ['-c', FACTS_PROBE], { encoding: 'utf8' }).stdout);
  assert.equal(facts.bootId, readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim());
  assert.equal(facts.kernel, readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim());
  assert.equal(parseFacts('kernel=6.1\n').bootId, '', 'absent when the kernel has none');
});

test('os-release is read as the shell would source it, without sourcing it: quotes and escapes, the last assignment wins', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kvmconf-os-release-'));
  const file = join(dir, 'os-release');
  writeFileSync(file, ['NAME="Some Linux"', 'ID=centos', 'ID="rhel"', "VERSION_ID='9.4'", 'ID_LIKE="fedora \\"centos\\" \\\\x \\$y"', 'PATH=/nowhere', ''].join('\n'));
  const probe = FACTS_PROBE.replaceAll('/etc/os-release', file);
  const sourced = spawnSync('/bin/sh', ['-c', `. '${file}'; printf '%s|%s|%s' "$ID" "$VERSION_ID" "$ID_LIKE"`], { encoding: 'utf8' }).stdout;
  const facts = parseFacts(spawnSync('/bin/sh', ['-c', probe], { encoding: 'utf8' }).stdout);
  assert.equal(`${facts.osId}|${facts.osVersion}|${facts.osLike.join(' ')}`, sourced);
  assert.equal(sourced, 'rhel|9.4|fedora "centos" \\x $y');
  assert.equal(facts.cpuFlags.length > 0, true, 'a PATH line in the file changed nothing for the probe');
});

test('the uid is the gathering shell\'s user (read by its awk from /proc/self/status): root, and nobody', () => {
  const gather = (...runAs: string[]) => {
    const [command, ...args] = [...runAs, '/bin/sh', '-s'];
    return spawnSync(command!, args, { input: FACTS_PROBE, encoding: 'utf8' });
  };
  assert.equal(parseFacts(gather().stdout).uid, process.getuid!());
  if (process.getuid!() !== 0) return;
  const nobody = gather('setpriv', '--reuid=65534', '--regid=65534', '--clear-groups');
  assert.equal(nobody.status, 0, nobody.stderr);
  assert.equal(parseFacts(nobody.stdout).uid, 65534);
});
