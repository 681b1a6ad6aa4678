import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { diffReports, readReport } from '../../src/commands/report.js';
import { renderJson } from '../../src/report/json.js';
import { change, checkReport, host, report, swappiness, task } from '../helpers/report-fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'kvmconf-report-'));

describe('report diff', () => {
  it('lists new drift and failures with +, resolved ones with -', () => {
    const before = report('check', [host('hv1', 'changed', [task('swappiness', 'sysctl', [swappiness])]), host('hv2', 'ok', [task('swappiness', 'sysctl')])]);
    const thp = change({ module: 'thp', target: 'enabled', before: 'madvise', after: 'never' });
    const after = report('check', [host('hv1', 'changed', [task('thp', 'thp', [thp])]), host('hv2', 'unreachable', [], { error: 'ssh: timeout' })], { startedAt: '2024-05-02T12:00:00.000Z' });
    const { text, newCount } = diffReports(before, after);
    assert.equal(newCount, 2);
    assert.equal(
      text,
      [
        '2024-05-01T12:00:00.000Z -> 2024-05-02T12:00:00.000Z: 2 new, 1 resolved',
        '+ hv1 (tune): thp enabled: madvise -> never (runtime)',
        '+ hv2 (tune): unreachable: ssh: timeout',
        '- hv1 (tune): sysctl vm.swappiness: 60 -> 10 (runtime)',
        '',
      ].join('\n'),
    );
    assert.equal(diffReports(after, after).newCount, 0);
  });

  it('treats the same target wanting another value as new drift', () => {
    const before = report('check', [host('hv1', 'changed', [task('swappiness', 'sysctl', [swappiness])])]);
    const after = report('check', [host('hv1', 'changed', [task('swappiness', 'sysctl', [{ ...swappiness, before: '30' }])])]);
    assert.equal(diffReports(before, after).newCount, 1);
  });
});

describe('reading a saved report', () => {
  it('reads what --report FILE.json wrote, and refuses other files by name', () => {
    const file = join(dir, 'run.json');
    writeFileSync(file, renderJson(checkReport()));
    assert.equal(readReport(file).hosts.length, 4);
    writeFileSync(join(dir, 'other.json'), '{"a": 1}');
    assert.throws(() => readReport(join(dir, 'other.json')), /other\.json is not a kvmconf JSON report/);
    writeFileSync(join(dir, 'v2.json'), JSON.stringify({ ...checkReport(), version: 2 }));
    assert.throws(() => readReport(join(dir, 'v2.json')), /report format version 2; this kvmconf reads version 1/);
    writeFileSync(join(dir, 'broken.json'), '<testsuites/>');
    assert.throws(() => readReport(join(dir, 'broken.json')), /broken\.json is not JSON/);
  });
});
