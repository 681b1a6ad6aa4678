/**
 * Debian's chromium, headless, for the HTML report tests: each run gets its own profile,
 * no network of its own and no sandbox (tests may run as root). A missing chromium
 * fails the test: the suite installs it (.ci/apt-packages).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const profiles = mkdtempSync(join(tmpdir(), 'kvmconf-chromium-'));

export function chromium(...args: string[]): { stdout: string; ms: number } {
  const profile = mkdtempSync(join(profiles, 'profile-'));
  const flags = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', `--user-data-dir=${profile}`];
  const started = Date.now();
  const run = spawnSync('chromium', [...flags, ...args], { encoding: 'utf8', timeout: 120_000, maxBuffer: 64 * 1024 * 1024 });
  rmSync(profile, { recursive: true, force: true });
  assert.ifError(run.error);
  assert.equal(run.status, 0, run.stderr);
  return { stdout: run.stdout, ms: Date.now() - started };
}

/** The DOM chromium built from a page file, serialised. */
export const dumpDom = (file: string): string => chromium('--dump-dom', pathToFileURL(file).href).stdout;

/** How often a pattern occurs in a text. */
export const count = (html: string, pattern: RegExp): number => html.match(new RegExp(pattern.source, 'g'))?.length ?? 0;
