/**
 * Where each module's recorded fixtures came from, and which version of the module's
 * probe produced them. modules/NAME/fixtures/PROVENANCE.json holds, per fixture file,
 * its origin (recorded on a host, or handwritten after one), host, distribution and
 * kernel, and the probe version it matches. The probe version is a hash of the probe
 * script the module writes for the folder's `probeParams`: a change to the probe
 * changes it, so fixtures recorded by the old probe show up as stale instead of
 * silently passing. After re-recording them (or checking that the probe's output
 * format did not change), `npm run fixtures:stamp -- MODULE FILE...` records the new
 * version for those files.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Module } from '../../src/kit/index.js';
import { MODULES_BY_NAME } from '../../modules/index.js';
import { moduleFixtures } from './paths.js';
import { normalize } from './plan.js';

export const PROVENANCE_FILE = 'PROVENANCE.json';

export interface FixtureOrigin {
  /** recorded: the probe's (or the tool's) output as a host printed it; handwritten: written or edited by hand after one. */
  origin: 'recorded' | 'handwritten';
  host: string;
  distribution: string;
  kernel: string;
  /** The probe version the fixture matches (see probeVersion). */
  probe: string;
  note?: string;
}

export interface Provenance {
  /** Playbook parameters the probe version is computed with. */
  probeParams: unknown;
  fixtures: Record<string, FixtureOrigin>;
}

export function readProvenance(module: string): Provenance | null {
  const file = join(moduleFixtures(module), PROVENANCE_FILE);
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Provenance) : null;
}

export function writeProvenance(module: string, provenance: Provenance): void {
  writeFileSync(join(moduleFixtures(module), PROVENANCE_FILE), JSON.stringify(provenance, null, 2) + '\n');
}

/** The fixture files of a module folder (PROVENANCE.json aside). */
export function fixtureFiles(module: string): string[] {
  const dir = moduleFixtures(module);
  return existsSync(dir) ? readdirSync(dir).filter((name) => name !== PROVENANCE_FILE).sort() : [];
}

/**
 * First 12 hex digits of the SHA-256 of the probe script for the given parameters,
 * with the section markers a probe draws at random (`@@` and 16 hex digits) masked.
 */
export function probeVersion(module: Module<unknown, unknown>, probeParams: unknown): string {
  const script = module.probe(normalize(module, probeParams)).replace(/@@[0-9a-f]{16}@/g, '@@MARK@');
  return createHash('sha256').update(script).digest('hex').slice(0, 12);
}

export function moduleNamed(name: string): Module<unknown, unknown> {
  const module = MODULES_BY_NAME.get(name);
  if (!module) throw new Error(`no module named ${name}`);
  return module;
}

/** Records the current probe version for the given fixtures of a module (all of them when none are named). */
export function stamp(module: string, files: string[]): string[] {
  const provenance = readProvenance(module);
  if (!provenance) throw new Error(`modules/${module}/fixtures/${PROVENANCE_FILE} does not exist`);
  const version = probeVersion(moduleNamed(module), provenance.probeParams);
  const names = files.length ? files : Object.keys(provenance.fixtures);
  for (const name of names) {
    const entry = provenance.fixtures[name];
    if (!entry) throw new Error(`${name} is not listed in modules/${module}/fixtures/${PROVENANCE_FILE}: add its origin first`);
    entry.probe = version;
  }
  writeProvenance(module, provenance);
  return names;
}

// `node dist/test/helpers/fixture-provenance.js MODULE [FILE...]`
if (process.argv[1]?.endsWith('fixture-provenance.js') && process.argv[2]) {
  const [module, ...files] = process.argv.slice(2);
  const stamped = stamp(module!, files);
  console.log(`modules/${module}/fixtures: ${stamped.length} fixture(s) stamped with probe ${probeVersion(moduleNamed(module!), readProvenance(module!)!.probeParams)}`);
}
