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
import { FLEET_GROUPS, fleetHostName, fleetReport, fleetShape, host, hugepagesReport, task } from '../helpers/report-fixtures.js';

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
  assertFleetPools(dom, shapes);
  mkdirSync(ARTEFACTS, { recursive: true });
  chromium('--window-size=1400,1000', `--screenshot=${join(ARTEFACTS, 'report-1000-hosts.png')}`, pathToFileURL(file).href);
  assert.ok(readFileSync(join(ARTEFACTS, 'report-1000-hosts.png')).length > 1000);
});

/** The hugepages table of the synthetic fleet in the DOM: a row per short pool, marked, then the pools granted in full grouped. */
function assertFleetPools(dom: string, shapes: ReadonlyArray<ReturnType<typeof fleetShape>>): void {
  const reachable = shapes.filter((shape) => !shape.unreachable).length;
  const short = shapes.flatMap((shape, i) => (shape.hugepagesShort ? [fleetHostName(i)] : []));
  assert.equal(count(dom, /<tr class="pool[^"]*" data-host=/), short.length, 'a row per short pool');
  const marked = [...dom.matchAll(/<tr class="pool c-failed" data-host="(\w+)" data-node="1" data-size="1048576"><th>\w+<\/th><td>1<\/td><td>1G<\/td><td>8<\/td><td class="granted">5<\/td><td>0<\/td><td class="short">short 3<\/td><\/tr>/g)];
  assert.deepEqual(marked.map((match) => match[1]), short, 'each short pool, marked');
  assert.equal(count(dom, /<tr class="pool c-failed"/), short.length, 'no other pool marked');
  assert.ok(dom.indexOf('<table class="pools short">') < dom.indexOf('<table class="pools granted">'), 'the short pools lead');
  assert.ok(dom.includes(`${3 * reachable} hugepage pools on ${reachable} hosts: ${short.length} short of the request on ${short.length} hosts; granted: what the host has now.`));
  // The pools granted in full, grouped: node, size and count with the number of hosts.
  const groups = [...dom.matchAll(/<tr class="pool-group" data-node="(\w+)" data-size="(\d+)" data-hosts="(\d+)"><td>\w+<\/td><td>(\w+)<\/td><td>(\d+)<\/td>/g)].map((m) => m.slice(1).join(' '));
  assert.deepEqual(groups, [`0 1048576 ${reachable} 1G 8`, `1 1048576 ${reachable - short.length} 1G 8`, `all 2048 ${reachable} 2M 1024`]);
}

test('chromium renders the hugepages table of pools summed up from the module fixtures, shortfalls marked; a screenshot is kept', () => {
  const file = join(dir, 'hugepages.html');
  writeFileSync(file, renderHtml(hugepagesReport()));
  const dom = dumpDom(file);
  const rows = [...dom.matchAll(/<tr class="(pool[^"]*)" data-host="([\w-]+)" data-node="(\w+)" data-size="\d+"><th>[\w-]+<\/th><td>\w+<\/td><td>(\w+)<\/td><td>(\d+)<\/td><td class="granted">(\d+)<\/td><td>(\d*)<\/td><td class="short">([^<]*)<\/td><\/tr>/g)];
  assert.deepEqual(rows.map((match) => match.slice(1).join('|')), [
    'pool c-failed|hv-short|0|1G|4|1|1|short 3',
    'pool c-failed|hv-short|1|1G|2|0|0|short 2',
    'pool|hv-nodes|0|2M|512|512|488|',
    'pool|hv-nodes|1|2M|512|512|512|',
    'pool|hv-debian|all|2M|8|8|5|',
    'pool|hv-debian|all|1G|1|1|1|',
  ]);
  mkdirSync(ARTEFACTS, { recursive: true });
  chromium('--window-size=1200,700', `--screenshot=${join(ARTEFACTS, 'report-hugepages.png')}`, pathToFileURL(file).href);
  assert.ok(readFileSync(join(ARTEFACTS, 'report-hugepages.png')).length > 1000);
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
