/** Paths tests need, resolved from the project root (tests run from dist/). */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('project root not found');
    dir = parent;
  }
  return dir;
}

export const ROOT = findRoot();
export const CLI = join(ROOT, 'dist', 'src', 'cli.js');

/** A module's recorded probe output or config, from modules/MODULE/fixtures. */
export function fixture(module: string, name: string): string {
  return readFileSync(join(moduleFixtures(module), name), 'utf8');
}

export function moduleFixtures(module: string): string {
  return join(ROOT, 'modules', module, 'fixtures');
}

/** The environment the CLI runs with in tests: as in CI, and never appending to the job's own step summary. */
export const CLI_ENV: NodeJS.ProcessEnv = { ...process.env, CI: 'true', GITHUB_STEP_SUMMARY: '' };
