import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { marked } from 'marked';
import { renderMarkdown, MARKDOWN_ROWS } from '../../src/report/markdown.js';
import { applyReport, change, checkReport, fleetReport, host, report, task } from '../helpers/report-fixtures.js';

const toHtml = (markdown: string): string => marked.parse(markdown, { async: false, gfm: true });

describe('Markdown report', () => {
  it('puts failures first, then grouped drift, reboots and the matrix by group', () => {
    const markdown = renderMarkdown(fleetReport(200));
    const headings = [...markdown.matchAll(/^### (.*)$/gm)].map((match) => match[1]);
    assert.deepEqual(headings, ['Failed (4)', 'Drift', 'Awaiting reboot (50)', 'Hugepages', 'tune']);
    assert.match(markdown, /^594 hugepage pools on 198 hosts: 2 short of the request on 2 hosts\n\n- \*\*hv0042\*\* node 1, 1G: granted 5 of 8 \(short 3\)\n- \*\*hv0142\*\* node 1, 1G: granted 5 of 8 \(short 3\)\n\n/m);
    assert.match(markdown, /^- thp enabled: madvise -> never \(runtime\): 178 of 200 hosts$/m);
    assert.match(markdown, /^- 50 hosts: transparent\\_hugepage=never$/m);
    assert.match(markdown, /^\| rack-d \| 50 \| 2 unreachable, 48 ok \| 2 unreachable, 48 drift \|/m);
  });

  it('stays short on a large fleet', () => {
    const markdown = renderMarkdown(fleetReport(1200));
    assert.ok(markdown.split('\n').length < 85, `${markdown.split('\n').length} lines`);
    assert.equal(markdown.match(/^- \*\*hv\d+\*\* (failed|unreachable):/gm)?.length, MARKDOWN_ROWS);
    assert.equal(markdown.match(/^- \*\*hv\d+\*\* node 1, 1G: granted 5 of 8/gm)?.length, 12, 'every short pool up to the limit');
    assert.match(markdown, /^- … and 4 more$/m, 'failed hosts beyond the first 20 are summed up');
    const manyGroups = fleetReport(100);
    manyGroups.hosts.forEach((entry, i) => (entry.groups = [`rack-${i}`]));
    const matrix = renderMarkdown(manyGroups);
    assert.equal(matrix.match(/^\| rack-\d+ \|/gm)?.length, MARKDOWN_ROWS);
    assert.match(matrix, /^… and 80 more groups$/m);
  });

  it('renders with a Markdown renderer into the tables and lists it means', () => {
    const html = toHtml(renderMarkdown(checkReport()));
    assert.match(html, /<h2>kvmconf check: playbooks\/virtual-host\.yaml<\/h2>/);
    assert.match(html, /<th>group<\/th>\s*<th>hosts<\/th>\s*<th>swappiness<\/th>\s*<th>thp<\/th>\s*<th>dirty ratio<\/th>/);
    assert.match(html, /<td>ungrouped<\/td>\s*<td>3<\/td>\s*<td>1 unreachable, 1 drift, 1 ok<\/td>/);
    assert.match(html, /<li><strong>hv3<\/strong> unreachable: ssh: connect to host hv3 port 22: Connection refused<\/li>/);
    assert.match(toHtml(renderMarkdown(applyReport())), /<h3>Changes<\/h3>/);
  });

  it('keeps host-sent text from injecting markup, links, code or table cells', () => {
    const nasty = '<img src=x onerror=alert(1)> [link](https://evil.example) `code` **bold** a|b';
    const html = toHtml(renderMarkdown(report('check', [host(nasty, 'failed', [task(nasty, 'sysctl', [change({ module: 'sysctl', target: nasty, before: '1', after: '2' })])], { error: nasty })])));
    assert.doesNotMatch(html, /<img|<a |<code>|<strong>\[|<strong>bold/);
    assert.match(html, /&lt;img src=x onerror=alert\(1\)&gt; \[link\]\(https:\/\/evil\.example\) `code` \*\*bold\*\* a\|b/);
    // The pipe stays inside its cell: the header still has exactly three columns.
    assert.equal((html.match(/<thead>[\s\S]*?<\/thead>/)?.[0].match(/<th>/g) ?? []).length, 3);
  });

  it('says why a run stopped on bad input', () => {
    assert.match(renderMarkdown(report('check', [], { inputError: 'site.yaml:3: bad', exitCode: 1 })), /### Input error\n\nsite\.yaml:3: bad/);
  });
});
