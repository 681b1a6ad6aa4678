/**
 * Modules leave the engine alone: everything they use from kvmconf comes through the
 * module toolkit (src/kit/index.ts), so the engine can change without touching them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { ROOT } from '../helpers/paths.js';

const MODULES = join(ROOT, 'modules');
const KIT = join(ROOT, 'src', 'kit', 'index.ts');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'fixtures' ? [] : sources(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts') ? [path] : [];
  });
}

/** Every relative module specifier of a file (static imports, re-exports and dynamic imports). */
export function specifiers(text: string): string[] {
  const found: string[] = [];
  for (const match of text.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|^\s*import\s+)'(\.[^']+)'/gm)) found.push(match[1]!);
  return found;
}

test('the specifier scanner sees static, side-effect and dynamic imports', () => {
  const text = "import { a } from '../src/engine/x.js';\nimport '../src/engine/y.js';\nconst z = await import('../src/engine/z.js');\nexport * from './w.js';";
  assert.deepEqual(specifiers(text), ['../src/engine/x.js', '../src/engine/y.js', '../src/engine/z.js', './w.js']);
});

test('modules import kvmconf only through the module toolkit, never src/engine', () => {
  const files = sources(MODULES);
  assert.ok(files.length >= 12, `found only ${files.length} module sources under ${MODULES}`);
  const offenders: string[] = [];
  for (const file of files) {
    for (const spec of specifiers(readFileSync(file, 'utf8'))) {
      const target = resolve(dirname(file), spec).replace(/\.js$/, '.ts');
      const insideModules = !relative(MODULES, target).startsWith('..');
      if (!insideModules && target !== KIT) offenders.push(`${relative(ROOT, file)} imports ${spec}`);
    }
  }
  assert.deepEqual(offenders, [], 'modules may import other files of modules/ and src/kit/index.js only');
});

test('one folder per module: every folder of modules/ (but lib) is a registered module of its name, and back', async () => {
  const { MODULES: registered } = await import('../../modules/index.js');
  const folders = readdirSync(MODULES, { withFileTypes: true }).filter((entry) => entry.isDirectory() && entry.name !== 'lib').map((entry) => entry.name);
  assert.deepEqual([...folders].sort(), registered.map((module) => module.name).sort());
});
