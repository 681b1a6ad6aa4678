/**
 * Hostile or careless input files: oversized, alias bombs, a UTF-8 byte order mark.
 * Each is an input error naming the file (and line), never a crash or a hung parse.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadPlaybook } from '../../src/config/playbook.js';
import { loadInventory } from '../../src/config/inventory.js';
import { parseExtraVars } from '../../src/config/extra-vars.js';
import { MAX_INPUT_BYTES } from '../../src/config/input-file.js';
import { limitHosts } from '../../src/config/patterns.js';
import { MODULES_BY_NAME } from '../../modules/index.js';

const dir = mkdtempSync(join(tmpdir(), 'kvmconf-input-'));
let count = 0;

function file(name: string, text: string): string {
  const path = join(dir, `${++count}`, name);
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, text);
  return path;
}

/** A file one byte over the limit (sparse: costs no disk). */
function oversized(name: string): string {
  const path = file(name, '- hosts: all\n');
  truncateSync(path, MAX_INPUT_BYTES + 1);
  return path;
}

/** Nine levels of nine aliases each: 9^9 nodes once expanded. */
function aliasBomb(indent: string): string {
  let text = `${indent}l0: &l0 [x, x, x, x, x, x, x, x, x]\n`;
  for (let i = 1; i < 10; i++) text += `${indent}l${i}: &l${i} [${Array(9).fill(`*l${i - 1}`).join(', ')}]\n`;
  return text;
}

const message = (fn: () => unknown): string => {
  try {
    fn();
  } catch (error) {
    return (error as Error).message;
  }
  return assert.fail('no error');
};

test('input files over the size limit are refused unparsed, naming the file: playbook, inventory, vars files, -e @FILE, --limit @FILE', () => {
  const tooLarge = (path: string) => new RegExp(`^${path}: too large to read: ${MAX_INPUT_BYTES + 1} bytes, over the 8 MiB limit of one input file`);
  const playbook = oversized('site.yaml');
  assert.match(message(() => loadPlaybook(playbook, MODULES_BY_NAME)), tooLarge(playbook));
  const inventory = oversized('hosts.yaml');
  assert.match(message(() => loadInventory(inventory)), tooLarge(inventory));
  const inventoryFile = file('inventory.yaml', 'all:\n  hosts:\n    hv1:\n');
  const groupVars = join(inventoryFile, '..', 'group_vars', 'all.yaml');
  mkdirSync(join(groupVars, '..'));
  writeFileSync(groupVars, '');
  truncateSync(groupVars, MAX_INPUT_BYTES + 1);
  assert.match(message(() => loadInventory(inventoryFile)), tooLarge(groupVars));
  const extra = oversized('vars.yaml');
  assert.match(message(() => parseExtraVars(`@${extra}`)), tooLarge(extra));
  const limit = oversized('site.retry');
  assert.match(message(() => limitHosts(['hv1'], `@${limit}`, loadInventory('hv1,'))), tooLarge(limit));
});

test('an endless stream given as a file is cut at the size limit', () => {
  assert.equal(message(() => parseExtraVars('@/dev/zero')), '/dev/zero: too large to read: over the 8 MiB limit of one input file');
});

test('a YAML alias bomb is an input error at its first alias, in a playbook, an inventory and -e @FILE', () => {
  const bomb = /:2:\d+: YAML aliases expand too far \(over 100 copies per alias\): refused as a possible alias bomb/;
  const playbook = file('site.yaml', `- hosts: all\n  vars:\n${aliasBomb('    ')}  tasks:\n    - thp: {enabled: never}\n`);
  assert.match(message(() => loadPlaybook(playbook, MODULES_BY_NAME)), /site\.yaml:4:\d+: YAML aliases expand too far/);
  const inventory = file('hosts.yaml', `all:\n  vars:\n${aliasBomb('    ')}  hosts:\n    hv1:\n`);
  assert.match(message(() => loadInventory(inventory)), /hosts\.yaml:4:\d+: YAML aliases expand too far/);
  const extra = file('vars.yaml', aliasBomb(''));
  assert.match(message(() => parseExtraVars(`@${extra}`)), new RegExp(`^${extra}${bomb.source}`));
});

test('a UTF-8 byte order mark is dropped: playbooks, YAML and INI inventories read as without it', () => {
  const bom = '\uFEFF';
  const book = loadPlaybook(file('site.yaml', `${bom}- hosts: all\n  tasks:\n    - thp: {enabled: never}\n`), MODULES_BY_NAME);
  assert.equal(book.plays[0]!.hosts, 'all');
  assert.deepEqual([...loadInventory(file('hosts.yaml', `${bom}all:\n  hosts:\n    hv1:\n`)).hosts.keys()], ['hv1']);
  assert.deepEqual(loadInventory(file('hosts.ini', `${bom}[hypervisors]\nhv1\n`)).groups.get('hypervisors')?.hosts, ['hv1']);
  assert.deepEqual(parseExtraVars(`@${file('vars.yaml', `${bom}pages: 512\n`)}`), { pages: 512 });
});
