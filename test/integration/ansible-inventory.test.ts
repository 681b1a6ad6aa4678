/**
 * kvmconf reads inventories as Ansible does: for every inventory of the corpus
 * (test/fixtures/inventory/corpus: INI with ranges and Python-typed values, YAML with
 * nested and overlapping groups and vars at every level, a folder mixing YAML, INI and
 * an executable script, several sources at once), `kvmconf inventory --list` and
 * `--graph` must equal `ansible-inventory`'s. Needs Debian's `ansible` package
 * (.ci/apt-packages): without it this test fails, it does not skip.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadInventory } from '../../src/config/inventory.js';
import { inventoryGraph, inventoryList } from '../../src/commands/inventory.js';
import { CLI, ROOT } from '../helpers/paths.js';

const CORPUS = join(ROOT, 'test', 'fixtures', 'inventory');
// An empty ansible.cfg and an empty working directory: nothing but the sources counts.
const cwd = mkdtempSync(join(tmpdir(), 'kvmconf-ansible-'));
const config = join(cwd, 'ansible.cfg');
writeFileSync(config, '');
const env = { ...process.env, ANSIBLE_CONFIG: config, ANSIBLE_INVENTORY: '', ANSIBLE_NOCOLOR: '1', ANSIBLE_LOCAL_TEMP: join(cwd, 'tmp'), ANSIBLE_HOME: join(cwd, 'home') };

const CASES: string[][] = [
  ['corpus/ranges.ini'],
  ['corpus/hosts'],
  ['corpus/yaml/nested.yaml'],
  ['corpus/folder'],
  ['corpus/hosts', 'corpus/yaml/nested.yaml'],
  ['ansible/inventory.yaml'],
  ['toplevel.yaml'],
];

function run(command: string, args: string[]): string {
  const result = spawnSync(command, args, { cwd, env, encoding: 'utf8' });
  assert.equal(result.error, undefined, `${command}: ${result.error?.message} (is Debian's ansible package installed? see .ci/apt-packages)`);
  assert.equal(result.status, 0, `${command} ${args.join(' ')}: ${result.stderr}`);
  return result.stdout;
}

const sources = (files: string[]): string[] => files.flatMap((file) => ['-i', join(CORPUS, file)]);
const ansible = (files: string[], ...args: string[]): string => run('ansible-inventory', [...sources(files), ...args]);
/** In process: the CLI's own output functions on the loaded inventory (one CLI run is checked below). */
function kvmconf(files: string[], option: '--list' | '--graph' | '--host', host?: string): string {
  const inventory = loadInventory(files.map((file) => join(CORPUS, file)));
  if (option === '--list') return JSON.stringify(inventoryList(inventory));
  if (option === '--graph') return inventoryGraph(inventory);
  return JSON.stringify(inventory.hosts.get(host!)!.vars);
}

test('ansible-inventory is installed (the comparison below needs it)', () => {
  assert.match(run('ansible-inventory', ['--version']), /^ansible-inventory \[core /);
});

for (const files of CASES) {
  test(`--list equals ansible-inventory's (hosts, groups, resolved variables): ${files.join(' + ')}`, () => {
    assert.deepStrictEqual(JSON.parse(kvmconf(files, '--list')), JSON.parse(ansible(files, '--list')));
  });
}

test("--graph equals ansible-inventory's", () => {
  for (const files of [CASES[3]!, CASES[4]!]) assert.equal(kvmconf(files, '--graph'), ansible(files, '--graph'), files.join(' + '));
});

test("--host gives one host's resolved variables, as ansible-inventory --host", () => {
  const files = ['corpus/yaml/nested.yaml'];
  for (const host of ['hv01', 'db-y-2', 'nas1']) assert.deepStrictEqual(JSON.parse(kvmconf(files, '--host', host)), JSON.parse(ansible(files, '--host', host)));
});

test('the kvmconf inventory command prints the same as the functions compared above', () => {
  const files = ['corpus/folder'];
  assert.deepStrictEqual(JSON.parse(run(process.execPath, [CLI, 'inventory', ...sources(files), '--list'])), JSON.parse(kvmconf(files, '--list')));
  assert.equal(run(process.execPath, [CLI, 'inventory', ...sources(files), '--graph', 'hv']), '@hv:\n  |--hv1\n  |--hv2\n  |--hv3\n  |--hv4\n  |--hv5\n');
});
