// -e/--extra-vars in ansible-playbook's three forms.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { extraVars, parseExtraVars } from '../../src/config/extra-vars.js';

test('key=value pairs stay text; YAML/JSON mappings keep types; @file; later wins', () => {
  assert.deepEqual(parseExtraVars('pages=512 mode="never mind" empty='), { pages: '512', mode: 'never mind', empty: '' });
  assert.deepEqual(parseExtraVars('{"pages": 512, "numa": false}'), { pages: 512, numa: false });
  assert.deepEqual(parseExtraVars('{pages: 512, zero_copy: yes}'), { pages: 512, zero_copy: true });
  const file = join(mkdtempSync(join(tmpdir(), 'kvmconf-e-')), 'vars.yaml');
  writeFileSync(file, 'pages: 1024\nlist: [a, b]\n');
  assert.deepEqual(parseExtraVars(`@${file}`), { pages: 1024, list: ['a', 'b'] });
  assert.deepEqual(extraVars(['pages=1', `@${file}`, 'list=x']), { pages: 1024, list: 'x' });
  assert.deepEqual(extraVars(undefined), {});
});

test('mistakes are input errors naming the argument', () => {
  assert.throws(() => parseExtraVars('pages'), { message: "-e 'pages': expected key=value, got 'pages'" });
  assert.throws(() => parseExtraVars('[1, 2]'), { message: "-e '[1, 2]': extra vars must be a mapping of names to values, not a list" });
  assert.throws(() => parseExtraVars('bad-name=1'), /'bad-name' is not a variable name/);
  assert.throws(() => parseExtraVars('@/nonexistent/vars.yaml'), { message: '/nonexistent/vars.yaml: cannot read -e @FILE: ENOENT' });
});
