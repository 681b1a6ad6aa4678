/** Every recorded fixture says where it came from and matches the probe that reads like it. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, moduleFixtures } from '../helpers/paths.js';
import { fixtureFiles, moduleNamed, probeVersion, readProvenance } from '../helpers/fixture-provenance.js';

const withFixtures = readdirSync(join(ROOT, 'modules'), { withFileTypes: true })
  .filter((entry) => entry.isDirectory() && existsSync(moduleFixtures(entry.name)))
  .map((entry) => entry.name);

test('every module fixture has its origin: recorded or handwritten, host, distribution, kernel', () => {
  assert.ok(withFixtures.length >= 10, `only ${withFixtures.length} modules have fixtures`);
  for (const module of withFixtures) {
    const provenance = readProvenance(module);
    assert.ok(provenance, `modules/${module}/fixtures has no PROVENANCE.json`);
    assert.deepEqual(Object.keys(provenance.fixtures).sort(), fixtureFiles(module), `modules/${module}/fixtures/PROVENANCE.json lists other files than the folder holds`);
    for (const [file, entry] of Object.entries(provenance.fixtures)) {
      assert.ok(['recorded', 'handwritten'].includes(entry.origin), `${module}/${file}: origin`);
      for (const field of ['host', 'distribution', 'kernel', 'probe'] as const) assert.ok(entry[field], `${module}/${file}: ${field} is empty`);
    }
  }
});

test('no fixture is stale: each matches the current version of its module probe', () => {
  const stale: string[] = [];
  for (const module of withFixtures) {
    const provenance = readProvenance(module)!;
    const current = probeVersion(moduleNamed(module), provenance.probeParams);
    for (const [file, entry] of Object.entries(provenance.fixtures)) {
      if (entry.probe !== current) stale.push(`modules/${module}/fixtures/${file} (probe ${entry.probe}, now ${current})`);
    }
  }
  assert.deepEqual(stale, [], 'the probe changed since these were recorded: record them again (or check the output format is unchanged), then `npm run fixtures:stamp -- MODULE FILE...`');
});

test('a changed probe changes the version, so its fixtures turn stale', () => {
  const sysctl = moduleNamed('sysctl');
  const params = readProvenance('sysctl')!.probeParams;
  const changed = { ...sysctl, probe: (p: unknown) => `${sysctl.probe(p)}\necho extra` };
  assert.notEqual(probeVersion(changed, params), probeVersion(sysctl, params));
  assert.equal(probeVersion(sysctl, params), probeVersion(sysctl, params), 'the version is stable for one probe');
});
