/**
 * --tags and --skip-tags select the tasks Ansible selects, special tags included
 * (`never`, `always`, `all`, `tagged`, `untagged`): `kvmconf apply --list-tasks` against
 * `ansible-playbook --list-tasks` of the same tagged play. Needs Debian's `ansible`
 * package (.ci/apt-packages): without it this test fails, it does not skip.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI } from '../helpers/paths.js';

const run = promisify(execFile);
const cwd = mkdtempSync(join(tmpdir(), 'kvmconf-tags-'));
const config = join(cwd, 'ansible.cfg');
writeFileSync(config, '');
const env = { ...process.env, ANSIBLE_CONFIG: config, ANSIBLE_NOCOLOR: '1', ANSIBLE_LOCAL_TEMP: join(cwd, 'tmp'), ANSIBLE_HOME: join(cwd, 'home') };

const TASKS: Array<[string, string[]]> = [
  ['t_never_rps', ['never', 'rps']], ['t_always', ['always']], ['t_none', []], ['t_memory', ['memory']], ['t_never_always', ['never', 'always']],
];
const play = (action: string) =>
  `- hosts: all\n  gather_facts: false\n  tasks:\n${TASKS.map(([name, tags]) => `    - { name: ${name}, ${action}, tags: [${tags.join(', ')}] }\n`).join('')}`;
writeFileSync(join(cwd, 'ansible.yaml'), play('debug: { msg: x }'));
writeFileSync(join(cwd, 'kvmconf.yaml'), play('sysctl: { settings: { vm.swappiness: 1 } }').replace('  gather_facts: false\n', ''));
writeFileSync(join(cwd, 'inventory'), 'h1 ansible_connection=local\n');

// Each selects a different set (an ansible-playbook start costs about 1.5 s of CPU).
const FILTERS = [
  [], ['--tags', 'rps'], ['--tags', 'untagged'], ['--tags', 'tagged'],
  ['--skip-tags', 'all'], ['--skip-tags', 'tagged'], ['--tags', 'rps', '--skip-tags', 'never'],
];

const listed = (stdout: string) => [...stdout.matchAll(/\bt_[a-z_]+/g)].map((m) => m[0]).sort();

test('tag selection equals ansible-playbook --list-tasks for every special tag', async () => {
  const results = await Promise.all(
    FILTERS.map(async (filter) => {
      const ansible = await run('ansible-playbook', ['-i', 'inventory', 'ansible.yaml', '--list-tasks', ...filter], { cwd, env }).catch((e: Error) => {
        throw new Error(`ansible-playbook (is Debian's ansible package installed? see .ci/apt-packages): ${e.message}`);
      });
      const kvmconf = await run(process.execPath, [CLI, 'apply', 'kvmconf.yaml', '-i', 'inventory', '--list-tasks', ...filter], { cwd, env });
      return { filter: filter.join(' ') || '(none)', ansible: listed(ansible.stdout), kvmconf: listed(kvmconf.stdout) };
    }),
  );
  for (const { filter, ansible, kvmconf } of results) assert.deepEqual(kvmconf, ansible, filter);
  // the comparison can fail: the filters do not all select the same tasks
  assert.ok(new Set(results.map((r) => r.ansible.join())).size === FILTERS.length);
});
