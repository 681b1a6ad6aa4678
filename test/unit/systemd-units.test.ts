import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseUnitProbe, unitProbe } from '../../modules/lib/systemd.js';

const UNITS = ['ksm.service', 'ksmtuned.service'];
const LOADED = { load: 'loaded', active: 'active', sub: 'running', file: 'enabled' };
const ABSENT = { load: 'not-found', active: 'inactive', sub: 'dead', file: '' };

/**
 * Runs the real probe with a stub systemctl first in PATH and the systemd check pointed
 * at a temp folder; the stub answers as systemd 252 does, and fails for several units
 * at once when `refuseMany` (an older or stricter systemctl).
 */
function runProbe(refuseMany: boolean): { output: string; calls: string[] } {
  const dir = mkdtempSync(join(tmpdir(), 'kvmconf-units-'));
  mkdirSync(join(dir, 'system'));
  writeFileSync(
    join(dir, 'systemctl'),
    [
      '#!/bin/sh',
      `echo "$*" >> ${dir}/calls`,
      'shift 5',
      `[ "$#" -gt 1 ] && ${refuseMany ? 'true' : 'false'} && { echo "Too many units" >&2; exit 1; }`,
      'sep=',
      'for u in "$@"; do',
      '  printf "%s" "$sep"; sep="\n"',
      '  case $u in ksm.service) printf "LoadState=loaded\\nActiveState=active\\nSubState=running\\nUnitFileState=enabled\\n" ;;',
      '  *) printf "LoadState=not-found\\nActiveState=inactive\\nSubState=dead\\nUnitFileState=\\n" ;; esac',
      'done',
    ].join('\n'),
  );
  chmodSync(join(dir, 'systemctl'), 0o755);
  const script = unitProbe(UNITS).split('/run/systemd/system').join(join(dir, 'system'));
  const result = spawnSync('/bin/sh', ['-c', `PATH=${dir}:$PATH\n${script}\ncat ${dir}/calls >&2`], { encoding: 'utf8' });
  rmSync(dir, { recursive: true, force: true });
  assert.equal(result.status, 0, result.stderr);
  return { output: result.stdout, calls: result.stderr.trim().split('\n') };
}

test('one systemctl show reads every unit, each block given to its unit in order', () => {
  const { output, calls } = runProbe(false);
  assert.equal(calls.length, 1);
  assert.match(output, /^@@unit-all ksm\.service ksmtuned\.service\n/);
  assert.deepEqual(parseUnitProbe(output), { systemd: true, units: { 'ksm.service': LOADED, 'ksmtuned.service': ABSENT } });
});

test('when the one call fails, each unit is read on its own and parses the same', () => {
  const { output, calls } = runProbe(true);
  assert.equal(calls.length, 3);
  assert.match(output, /^@@unit ksm\.service\n/);
  assert.deepEqual(parseUnitProbe(output), { systemd: true, units: { 'ksm.service': LOADED, 'ksmtuned.service': ABSENT } });
});

test('a block count that does not match the units leaves each unit with an error, not a guess', () => {
  const state = parseUnitProbe('@@unit-all a.service b.service\nLoadState=loaded\nActiveState=active\n@@unit-all-end\n');
  assert.equal(state.units['a.service']!.error, 'systemctl show printed 1 blocks for 2 units');
  assert.equal(state.units['b.service']!.error, 'systemctl show printed 1 blocks for 2 units');
  assert.equal(parseUnitProbe('@@unit-all a.service\n').units['a.service'], undefined, 'a cut-short section reports no unit');
  assert.deepEqual(parseUnitProbe('@@no-systemd\n'), { systemd: false, units: {} });
});

test('a single unit keeps the per-unit form, its exit status and message', () => {
  assert.doesNotMatch(unitProbe(['tuned.service']), /@@unit-all/);
  const state = parseUnitProbe('@@unit tuned.service\nFailed to connect to bus: Permission denied\n@@rc 1\n');
  assert.equal(state.units['tuned.service']!.error, 'Failed to connect to bus: Permission denied');
});
