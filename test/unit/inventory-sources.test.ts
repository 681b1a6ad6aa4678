// Host ranges, INI value typing and the errors of INI and script sources. What each
// source resolves to is compared with ansible-inventory in test/integration.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expandRanges, parseHostPattern } from '../../src/config/host-ranges.js';
import { iniValue } from '../../src/config/python-literal.js';
import { loadInventory } from '../../src/config/inventory.js';

const dir = mkdtempSync(join(tmpdir(), 'kvmconf-sources-'));
function file(name: string, text: string, mode = 0o644): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  chmodSync(path, mode);
  return path;
}
const messages = (run: () => unknown): string => {
  try {
    run();
  } catch (error) {
    return (error as Error).message.split(dir + '/').join('');
  }
  return assert.fail('no error');
};

describe('host ranges', () => {
  test('numeric with padding, steps, letters, several per name, ports', () => {
    assert.deepEqual(expandRanges('hv[01:10:4].lab'), ['hv01.lab', 'hv05.lab', 'hv09.lab']);
    assert.deepEqual(expandRanges('hv[8:10]'), ['hv8', 'hv9', 'hv10']);
    assert.deepEqual(expandRanges('[:2]x'), ['0x', '1x', '2x']);
    assert.deepEqual(expandRanges('db-[a:c]'), ['db-a', 'db-b', 'db-c']);
    assert.deepEqual(expandRanges('r[1:2]-[x:y]'), ['r1-x', 'r1-y', 'r2-x', 'r2-y']);
    assert.deepEqual(parseHostPattern('hv[1:2]:2222'), { hosts: ['hv1', 'hv2'], port: 2222 });
    assert.deepEqual(parseHostPattern('[fe80::1]:22'), { hosts: ['fe80::1'], port: 22 });
    assert.deepEqual(parseHostPattern('fe80::1'), { hosts: ['fe80::1'] });
  });

  test('mistakes are errors, not silent host lists', () => {
    assert.throws(() => expandRanges('hv[01:100]'), /equal length/);
    assert.throws(() => expandRanges('hv[1:]'), /no end value/);
    assert.throws(() => expandRanges('hv[c:a]'), /begin <= end/);
    assert.throws(() => expandRanges('hv[1:2:0]'), /step/);
    assert.throws(() => expandRanges('hv[1:9999999]'), /more than 100000 hosts/);
    assert.throws(() => parseHostPattern('hv1:'), /reserved for a port/);
  });
});

test("INI values are typed as Python literals, as Ansible's ast.literal_eval does", () => {
  const cases: Array<[string, unknown]> = [
    ['22', 22], ['-4', -4], ['1.5', 1.5], ['1e3', 1000], ['0x10', 16], ['0o17', 15], ['1_000', 1000],
    ['True', true], ['False', false], ['None', null], ['yes', 'yes'], ['007', '007'], ['true', 'true'],
    ["'quoted'", 'quoted'], ['"a\\tb"', 'a\tb'], ["'a' 'b'", 'ab'], ["'x' # comment", 'x'],
    ['[1, "a", [True]]', [1, 'a', [true]]], ['(1, 2)', [1, 2]], ['(1)', 1], ["{'k': [1]}", { k: [1] }],
    ['{1, 2}', '{1, 2}'], ['1+2', '1+2'], ['1j', '1j'], ['/dev/sda', '/dev/sda'], ['', ''],
  ];
  for (const [text, value] of cases) assert.deepStrictEqual(iniValue(text), value, text);
});

describe('INI and script sources: errors name file and line', () => {
  test('INI: undeclared groups, bad sections and lines, connection variables typed', () => {
    const ini = file('bad.ini', '[a:vars]\nx=1\n[b:children]\nmissing\n[c:weird]\n[ d ]\n[e]\nhv1 novalue\nhv2 ansible_port=http\nhv3 \'open\n');
    assert.equal(
      messages(() => loadInventory(ini)),
      [
        "bad.ini:1: section [a:vars] is for a group that no section declares\n    declare it with [a] or [a:children]",
        "bad.ini:4: [b:children] names group 'missing', which no section declares\n    declare it with [missing] (it may stay empty)",
        "bad.ini:5: section [c:weird] has unknown type 'weird'\n    the types are :children and :vars",
        "bad.ini:6: invalid section header '[ d ]'\n    write [group], [group:children] or [group:vars], without spaces",
        "bad.ini:8: expected key=value after the host name, got 'novalue'",
        "bad.ini:9: 'ansible_port' must be integer",
        "bad.ini:10: cannot split host line 'hv3 'open': unbalanced quote or trailing backslash",
      ].join('\n'),
    );
  });

  test('a group declared after its :children entry is linked, as in Ansible', () => {
    const inventory = loadInventory(file('late.ini', '[top:children]\nlate\n[late]\nhv1\n'));
    assert.deepEqual(inventory.groups.get('top')?.hosts, ['hv1']);
  });

  test('scripts: a failing script, one that prints no JSON, and a bad shape', () => {
    const fails = file('fails.sh', '#!/bin/sh\necho broken >&2\nexit 3\n', 0o755);
    assert.match(messages(() => loadInventory(fails)), /^fails\.sh: inventory script .*fails\.sh --list exited with 3: broken$/);
    const text = file('text.sh', '#!/bin/sh\necho hello\n', 0o755);
    assert.match(messages(() => loadInventory(text)), /did not print JSON/);
    const shape = file('shape.sh', '#!/bin/sh\necho \'{"g": {"hosts": "hv1"}}\'\n', 0o755);
    assert.match(messages(() => loadInventory(shape)), /group 'g': hosts must be a list of names/);
  });

  test('a script without _meta is asked --host for each host', () => {
    const script = file('hostvars.sh', '#!/bin/sh\nif [ "$1" = --list ]; then echo \'{"g": ["hv1"]}\'; else echo "{\\"asked\\": \\"$2\\"}"; fi\n', 0o755);
    assert.deepEqual(loadInventory(script).hosts.get('hv1')?.vars, { asked: 'hv1' });
  });

  test('a comma-separated host list, and several sources', () => {
    const inventory = loadInventory(['hv1,hv2:2222,', file('more.ini', '[g]\nhv1\n')]);
    assert.deepEqual([...inventory.hosts.keys()], ['hv1', 'hv2']);
    assert.deepEqual(inventory.hosts.get('hv2')?.vars, { ansible_port: 2222 });
    assert.deepEqual(inventory.groups.get('ungrouped')?.directHosts, ['hv2']);
  });
});
