/**
 * Hugepage pools in the reports: what the engine sums up from the hugepages module's
 * probe fixtures, how the JSON carries it, and how HTML, Markdown and text show a
 * shortfall. Reports written before hosts carried `hugepages` still render.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { marked } from 'marked';
import { setHostSummary } from '../../src/engine/host-run.js';
import { diffReports, readReport } from '../../src/commands/report.js';
import { renderJson } from '../../src/report/json.js';
import { renderHtml } from '../../src/report/html.js';
import { renderMarkdown } from '../../src/report/markdown.js';
import { renderText } from '../../src/report/text.js';
import { hugepageRows, hugepageSummary } from '../../src/report/matrix.js';
import { change, host, hugepagesReport, report, task } from '../helpers/report-fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'kvmconf-hugepages-report-'));

const section = (html: string): string => html.match(/<section id="hugepages">.*?<\/section>/s)?.[0] ?? '';

/** `host node size requested granted free short` of each pool row of the HTML, in page order. */
function poolCells(html: string): string[] {
  return [...section(html).matchAll(/<tr class="pool[^"]*" [^>]*><th>([^<]*)<\/th>((?:<td[^>]*>[^<]*<\/td>)+)<\/tr>/g)].map((match) =>
    [match[1], ...[...match[2]!.matchAll(/<td[^>]*>([^<]*)<\/td>/g)].map((cell) => cell[1] || '-')].join(' '),
  );
}

describe('hugepage pools in the JSON report', () => {
  it('carries per host every managed pool, requested and granted, in the documented key order', () => {
    const json = renderJson(hugepagesReport());
    const parsed = JSON.parse(json);
    assert.deepEqual(parsed.hosts.map((entry: { host: string; hugepages: unknown[] }) => [entry.host, entry.hugepages]), [
      ['hv-nodes', [{ node: 0, sizeKiB: 2048, requested: 512, granted: 512, free: 488 }, { node: 1, sizeKiB: 2048, requested: 512, granted: 512, free: 512 }]],
      ['hv-short', [{ node: 0, sizeKiB: 1048576, requested: 4, granted: 1, free: 1 }, { node: 1, sizeKiB: 1048576, requested: 2, granted: 0, free: 0 }]],
      ['hv-debian', [{ node: null, sizeKiB: 2048, requested: 8, granted: 8, free: 5 }, { node: null, sizeKiB: 1048576, requested: 1, granted: 1, free: 1 }]],
    ]);
    assert.deepEqual(Object.keys(parsed.hosts[0]).slice(-2), ['tasks', 'hugepages']);
    assert.match(json, /"hugepages": \[\n {8}\{\n {10}"node": 0,\n {10}"sizeKiB": 2048,\n {10}"requested": 512,\n {10}"granted": 512,\n {10}"free": 488\n/);
  });

  it('a later gather replaces the summary; an unknown state after apply drops it', () => {
    const entry = hugepagesReport().hosts[1]!;
    setHostSummary(entry, { hugepages: [{ node: 0, sizeKiB: 1048576, requested: 4, granted: 4, free: 4 }] });
    assert.deepEqual(entry.hugepages?.map((pool) => pool.granted), [4]);
    setHostSummary(entry, { hugepages: [] });
    assert.equal('hugepages' in entry, false, 'no pools: no key');
    setHostSummary(entry, { hugepages: [{ node: null, sizeKiB: 2048, requested: 1, granted: 1 }] });
    setHostSummary(entry, undefined);
    assert.equal('hugepages' in entry, false);
  });

  it('a report without it (written before) reads and renders: the pools its changes name', () => {
    const pool = (node: number, before: string, after: string, status: 'planned' | 'applied' | 'failed') =>
      change({ module: 'hugepages', target: `/sys/devices/system/node/node${node}/hugepages/hugepages-1048576kB/nr_hugepages`, before, after, status });
    const old = report('apply', [host('hv1', 'failed', [task('pools', 'hugepages', [pool(0, '0', '4', 'applied'), pool(1, '0', '2', 'failed')])])]);
    const file = join(dir, 'old.json');
    writeFileSync(file, JSON.stringify(old));
    const read = readReport(file);
    assert.deepEqual(poolCells(renderHtml(read)), ['hv1 1 1G 2 0 - short 2', 'hv1 0 1G 4 4 - -']);
    assert.doesNotMatch(renderText(read, { color: false, diff: false }), /hugepages node/);
    assert.match(renderMarkdown(read), /^- \*\*hv1\*\* node 1, 1G: granted 0 of 2 \(short 2\)$/m);
  });
});

describe('hugepage pools rendered', () => {
  it('HTML: a row per pool, the short ones first and marked, the summary line above', () => {
    const html = renderHtml(hugepagesReport());
    assert.deepEqual(poolCells(html), [
      'hv-short 0 1G 4 1 1 short 3',
      'hv-short 1 1G 2 0 0 short 2',
      'hv-nodes 0 2M 512 512 488 -',
      'hv-nodes 1 2M 512 512 512 -',
      'hv-debian all 2M 8 8 5 -',
      'hv-debian all 1G 1 1 1 -',
    ]);
    assert.match(section(html), /<p class="pools-summary">6 hugepage pools on 3 hosts: 2 short of the request on 1 host; granted: read back after apply\.<\/p>/);
    assert.match(section(html), /<table class="pools short">.*<tr class="pool c-failed" data-host="hv-short" data-node="0" data-size="1048576">/s);
    assert.doesNotMatch(section(html), /c-failed" data-host="hv-(nodes|debian)"/);
    assert.match(section(renderHtml(hugepagesReport('check'))), /granted: what the host has now/);
  });

  it('HTML: on a large fleet the pools granted in full are grouped by node, size and count, hosts folded; the short ones stay rows', () => {
    const many = hugepagesReport();
    const template = many.hosts[0]!;
    for (let i = 0; i < 30; i++) many.hosts.push({ ...template, host: `hv${i}` });
    const html = section(renderHtml(many));
    assert.deepEqual(poolCells(html), ['hv-short 0 1G 4 1 1 short 3', 'hv-short 1 1G 2 0 0 short 2']);
    const groups = [...html.matchAll(/<tr class="pool-group" data-node="(\w+)" data-size="\d+" data-hosts="(\d+)"><td>\w+<\/td><td>(\w+)<\/td><td>(\d+)<\/td><td><details><summary>([^<]*)<\/summary>([^<]*)<\/details>/g)];
    assert.deepEqual(groups.map((m) => m.slice(1, 6).join(' ')), ['0 31 2M 512 31 hosts', '1 31 2M 512 31 hosts', 'all 1 2M 8 1 host', 'all 1 1G 1 1 host']);
    assert.equal(groups[0]![6], ['hv-nodes', ...Array.from({ length: 30 }, (_, i) => `hv${i}`)].join(', '));
  });

  it('Markdown: one line for the fleet, then only the short pools', () => {
    const markdown = renderMarkdown(hugepagesReport());
    const part = markdown.slice(markdown.indexOf('### Hugepages'));
    assert.match(part, /^### Hugepages\n\n6 hugepage pools on 3 hosts: 2 short of the request on 1 host\n\n- \*\*hv-short\*\* node 0, 1G: granted 1 of 4 \(short 3\)\n- \*\*hv-short\*\* node 1, 1G: granted 0 of 2 \(short 2\)\n/);
    assert.doesNotMatch(part.split('\n\n###')[0]!, /hv-nodes|hv-debian/);
    const html = marked.parse(markdown, { async: false, gfm: true });
    assert.match(html, /<li><strong>hv-short<\/strong> node 0, 1G: granted 1 of 4 \(short 3\)<\/li>/);
    const fine = hugepagesReport();
    fine.hosts.splice(1, 1);
    assert.match(renderMarkdown(fine), /### Hugepages\n\n4 hugepage pools on 2 hosts, all granted as requested\n\n###/);
  });

  it('text: a host shows its short pools, -v every pool', () => {
    const run = hugepagesReport();
    const text = renderText(run, { color: false, diff: false });
    assert.match(text, /^host hv-short \(play tune\): failed\n  hugepages node0 1G: granted 1 of 4, 1 free \(short 3\)\n  hugepages node1 1G: granted 0 of 2, 0 free \(short 2\)\n/m);
    assert.doesNotMatch(text, /hugepages 2M/);
    assert.match(renderText(run, { color: false, diff: false, verbose: true }), /  hugepages 2M: granted 8 of 8, 5 free\n  hugepages 1G: granted 1 of 1, 1 free\n/);
  });

  it('summary rows and line come from the same data', () => {
    const rows = hugepageRows(hugepagesReport());
    assert.deepEqual(rows.filter((row) => row.short).map((row) => [row.host, row.node, row.short]), [['hv-short', '0', 3], ['hv-short', '1', 2]]);
    assert.equal(hugepageSummary([]), '0 hugepage pools on 0 hosts, all granted as requested');
  });
});

describe('hugepage pools in report diff', () => {
  it('a pool newly short of its request is new drift; granted in full again, it is resolved', () => {
    const fine = hugepagesReport();
    fine.hosts[1]!.hugepages = fine.hosts[1]!.hugepages!.map((pool) => ({ ...pool, granted: pool.requested }));
    const short = hugepagesReport();
    const worse = diffReports(fine, short);
    assert.equal(worse.newCount, 2);
    assert.match(worse.text, /^\+ hv-short \(tune\): hugepages node0 1G: granted 1 of 4 \(short\)\n\+ hv-short \(tune\): hugepages node1 1G: granted 0 of 2 \(short\)\n/m);
    assert.match(diffReports(short, fine).text, /: 0 new, 2 resolved\n- hv-short \(tune\): hugepages node0 1G: granted 1 of 4 \(short\)\n/);
  });
});
