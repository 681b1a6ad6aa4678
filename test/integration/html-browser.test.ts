/**
 * The HTML report in a real browser: Debian's chromium renders it headless and the
 * matrix is checked in the DOM it built. A missing chromium fails the test: the
 * suite installs it (.ci/apt-packages). A screenshot is kept in test-results/.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { renderHtml } from '../../src/report/html.js';
import { CLI, CLI_ENV, ROOT } from '../helpers/paths.js';
import { chromium, count, dumpDom } from '../helpers/chromium.js';
import { FLEET_GROUPS, fleetHostName, fleetReport, fleetShape, host, task } from '../helpers/report-fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'kvmconf-browser-'));
const ARTEFACTS = join(ROOT, 'test-results');

const HOSTILE = '<script>document.title="owned"</script><img src=x onerror=alert(1)>';

test('chromium renders a 1,000-host report: matrix cells and counts in the DOM, hostile names inert', () => {
  const fleet = fleetReport(1000);
  fleet.hosts.push(host(HOSTILE, 'changed', [task('thp', 'thp')], { groups: ['rack-a'] }));
  const file = join(dir, 'fleet.html');
  writeFileSync(file, renderHtml(fleet));
  const dom = dumpDom(file);
  assert.match(dom, /<title>kvmconf check: playbooks\/virtual-host\.yaml<\/title>/, 'the title no host can change');
  assert.equal(count(dom, /<script/), 0);
  assert.equal(count(dom, /<img/), 0);
  assert.ok(dom.includes('&lt;script&gt;document.title="owned"&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;'));
  assert.equal(count(dom, /<tr class="row[^"]*" data-host=/), 1001);
  const shapes = Array.from({ length: 1000 }, (_, i) => fleetShape(i));
  assert.equal(count(dom, /<td class="cell c-drift" data-status="drift">drift 1<\/td>/), shapes.filter((shape) => shape.thpDrift).length);
  assert.equal(count(dom, /data-status="unreachable">unreachable<\/td>/), 4 * shapes.filter((shape) => shape.unreachable).length);
  for (const [index, group] of FLEET_GROUPS.entries()) {
    const row = dom.match(new RegExp(`<tr class="group" data-group="${group}">(.*?)</tr>`))?.[1] ?? '';
    const members = shapes.filter((_, i) => i % FLEET_GROUPS.length === index);
    const thpCell = row.split('<td class="cell">')[2] ?? '';
    const drift = members.filter((shape) => shape.thpDrift).length;
    assert.equal(thpCell.match(/data-status="drift" data-count="(\d+)"/)?.[1], drift ? String(drift) : undefined, `${group} thp drift`);
  }
  assert.match(dom, new RegExp(`<tr><th>${fleetHostName(4)}</th><td>transparent_hugepage=never</td>`));
  mkdirSync(ARTEFACTS, { recursive: true });
  chromium('--window-size=1400,1000', `--screenshot=${join(ARTEFACTS, 'report-1000-hosts.png')}`, pathToFileURL(file).href);
  assert.ok(readFileSync(join(ARTEFACTS, 'report-1000-hosts.png')).length > 1000);
});

test('chromium renders the HTML report of a real check run of this machine', () => {
  const current = readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8').match(/\[(\w+)\]/)![1]!;
  const other = current === 'never' ? 'madvise' : 'never';
  const playbook = join(dir, 'drifted.yaml');
  writeFileSync(playbook, `- name: tune\n  hosts: localhost\n  tasks:\n    - thp: {enabled: ${other}, persist: false}\n`);
  const file = join(dir, 'local.html');
  const run = spawnSync(process.execPath, [CLI, 'apply', '--check', '--local', '--report', file, playbook], { encoding: 'utf8', cwd: ROOT, env: CLI_ENV });
  assert.equal(run.status, 2, run.stderr);
  const dom = dumpDom(file);
  assert.match(dom, /<tr class="row s-drift" data-host="localhost"><th>localhost<\/th><td class="cell c-drift" data-status="drift">drift 1<\/td><\/tr>/);
  assert.ok(dom.includes(`thp enabled: ${current} -&gt; ${other} (runtime)</td><td class="count" data-hosts="1">1 of 1 hosts`));
});
