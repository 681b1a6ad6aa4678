import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { renderHtml, escapeHtml } from '../../src/report/html.js';
import { change, checkReport, fleetReport, host, report, task } from '../helpers/report-fixtures.js';

const count = (html: string, pattern: RegExp): number => html.match(new RegExp(pattern.source, 'g'))?.length ?? 0;

/** The group row of a matrix, by group name. */
function groupRow(html: string, group: string): string {
  const row = html.match(new RegExp(`<tr class="group" data-group="${group}">.*?</tr>`))?.[0];
  assert.ok(row, `group row ${group}`);
  return row;
}

describe('HTML report', () => {
  it('is one self-contained page: inline CSS, no script, nothing fetched', () => {
    const html = renderHtml(fleetReport(50));
    assert.ok(html.startsWith('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'));
    assert.match(html, /<style>[^<]+<\/style>/);
    assert.doesNotMatch(html, /<script|<link|<img|<iframe|\bsrc=|href=|url\(|@import/i);
  });

  it('has the fleet matrix: groups against tasks with counts per status, and each host a cell per task', () => {
    const html = renderHtml(fleetReport(200));
    assert.match(groupRow(html, 'rack-d'), /<th>rack-d<\/th><td>50<\/td><td class="cell"><span class="c-unreachable" data-status="unreachable" data-count="2">2 unreachable<\/span> <span class="c-ok" data-status="ok" data-count="48">48 ok<\/span><\/td>/);
    assert.match(groupRow(html, 'rack-a'), /data-status="pending" data-count="50">50 pending</);
    assert.equal(count(html, /<td class="cell c-drift" data-status="drift">drift 1<\/td>/), 178);
    assert.equal(count(html, /<td class="cell c-pending" data-status="pending">pending reboot<\/td>/), 50);
    assert.equal(count(html, /<tr class="row [^"]*" data-host="hv\d+">/), 200);
    assert.match(html, /<tr class="row s-ok s-unreachable"|<tr class="row s-unreachable" data-host="hv0007">/);
  });

  it('groups identical drift and lists the hosts awaiting a reboot with their kernel arguments', () => {
    const html = renderHtml(fleetReport(200));
    assert.match(html, /<td>thp enabled: madvise -&gt; never \(runtime\)<\/td><td class="count" data-hosts="178">178 of 200 hosts<\/td>/);
    const reboot = html.match(/<section id="reboot">.*?<\/section>/s)?.[0] ?? '';
    assert.match(reboot, /<h2>Awaiting reboot \(50\)<\/h2>/);
    assert.match(reboot, /<tr><th>hv0004<\/th><td>transparent_hugepage=never<\/td><td><\/td><\/tr>/);
  });

  it('folds per host its identity, change lines and diffs', () => {
    const html = renderHtml(checkReport());
    const hv1 = html.match(/<details class="[^"]*host" data-host="hv1">.*?<\/details><\/details>/s)?.[0] ?? '';
    assert.match(hv1, /<summary>hv1 \(tune\): changed<\/summary>/);
    assert.match(hv1, /<pre>  sysctl vm\.swappiness: 60 -&gt; 10 \(runtime\)<\/pre>/);
    assert.match(hv1, /<details><summary>diff kernel_cmdline \/etc\/default\/grub:GRUB_CMDLINE_LINUX: quiet -&gt; quiet transparent_hugepage=never \(persist\)<\/summary><pre>[^<]*\+GRUB_CMDLINE_LINUX=&quot;quiet transparent_hugepage=never&quot;/);
    assert.match(renderHtml(fleetReport(4)), /<p>debian 12, 6\.1\.0-18-amd64, boot_id boot-1<\/p>/);
  });

  it('escapes every string a hostile host sends', () => {
    const payload = `"><script>alert(1)</script><img src=x onerror=alert(2)>'`;
    const hostile = report('check', [
      host(payload, 'failed', [task(payload, payload, [change({ module: payload, target: payload, before: payload, after: payload, reason: payload, diff: { before: payload, after: payload, beforeHeader: payload, afterHeader: payload } })], { error: payload, diagnostics: [{ severity: 'warning', message: payload }] })], {
        error: payload,
        play: payload,
        groups: [payload],
        distribution: payload,
        kernel: payload,
        bootId: payload,
      }),
    ], { playbook: payload });
    const html = renderHtml(hostile);
    assert.doesNotMatch(html, /<script|<img|onerror=alert\(2\)>/);
    assert.match(html, /data-host="&quot;&gt;&lt;script&gt;alert\(1\)&lt;\/script&gt;&lt;img src=x onerror=alert\(2\)&gt;&#39;"/);
    assert.equal(count(html, /<details/), count(html, /<\/details>/));
    assert.ok(html.includes(escapeHtml(payload)));
    assert.equal(escapeHtml(payload), '&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;&#39;');
  });

  it('tables hugepages requested and granted per NUMA node and page size', () => {
    const pool = (node: number, before: string, after: string, status: 'planned' | 'applied' = 'planned') =>
      change({ module: 'hugepages', target: `/sys/devices/system/node/node${node}/hugepages/hugepages-1048576kB/nr_hugepages`, before, after, status });
    const global = change({ module: 'hugepages', target: '/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages', before: '0', after: '512' });
    const html = renderHtml(report('check', [
      host('hv1', 'changed', [task('pools', 'hugepages', [pool(0, '2', '4'), pool(1, '0', '4'), global])]),
      host('hv2', 'changed', [task('pools', 'hugepages', [pool(0, '4', '4', 'applied')])]),
    ]));
    const section = html.match(/<section id="hugepages">.*?<\/section>/s)?.[0] ?? '';
    const rows = [...section.matchAll(/<tr class="pool[^"]*" data-host="(\w+)" data-node="(\w+)" data-size="(\d+)"><th>\w+<\/th><td>\w+<\/td><td>(\w+)<\/td><td>(\d+)<\/td><td class="granted">(\d+)<\/td><td><\/td><td class="short">([^<]*)<\/td>/g)].map((m) => m.slice(1).join(' '));
    assert.deepEqual(rows, ['hv1 0 1048576 1G 4 2 short 2', 'hv1 1 1048576 1G 4 0 short 4', 'hv1 all 2048 2M 512 0 short 512', 'hv2 0 1048576 1G 4 4 ']);
    assert.doesNotMatch(renderHtml(checkReport()), /id="hugepages"/);
  });

  it('filters rows by status with CSS alone', () => {
    const html = renderHtml(fleetReport(20));
    assert.match(html, /<input type="radio" name="filter" id="f-all" checked>/);
    assert.match(html, /#f-drift:checked~main \.row:not\(\.s-drift\)\{display:none\}/);
  });

  it('renders 1,000 hosts quickly into a page a browser loads at once', () => {
    const fleet = fleetReport(1000);
    const started = performance.now();
    const html = renderHtml(fleet);
    assert.ok(performance.now() - started < 1000, 'rendered within a second');
    assert.ok(html.length < 3_000_000, `${html.length} bytes`);
  });
});
