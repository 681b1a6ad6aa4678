/**
 * The HTML report: one self-contained static page (inline CSS, no script, nothing
 * fetched) with the fleet drift matrix, identical drift grouped, the hosts awaiting a
 * reboot and per host the change lines and diffs, folded. Every string a host sends
 * is escaped: a hostile host must not inject markup into an operator's browser.
 * Status filters are radio buttons and CSS, so the page works with scripts disabled.
 */
import type { HostReport, Mode, RunReport } from '../engine/results.js';
import { changeLine, plural } from './common.js';
import {
  awaitingReboot,
  CELL_STATUSES,
  countCells,
  failedHosts,
  grantedGroups,
  groupedDrift,
  groupRows,
  hostCells,
  hostCount,
  hugepageRows,
  hugepageSummary,
  pageSize,
  plays,
  summaryLine,
  type Cell,
  type CellStatus,
  type Counts,
  type HugepageRow,
  type Play,
  uniqueNames,
} from './matrix.js';
import { xmlSafe } from './junit.js';
import { describeTask, unifiedDiff } from './text.js';

/** Statuses the page filters on; `all` shows every row. */
const FILTERS: readonly CellStatus[] = ['failed', 'unreachable', 'drift', 'not-run', 'pending', 'changed'];

export function escapeHtml(text: string): string {
  return xmlSafe(text).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

const COLORS: Record<CellStatus, string> = {
  failed: '#d9534f',
  unreachable: '#8e44ad',
  drift: '#f0ad4e',
  'not-run': '#bbb',
  pending: '#5bc0de',
  changed: '#5b9bd5',
  ok: '#5cb85c',
  skipped: '#eee',
};

function css(): string {
  const cells = CELL_STATUSES.map((status) => `.c-${status}{background:${COLORS[status]}}`).join('');
  const filters = FILTERS.map((status) => `#f-${status}:checked~main .row:not(.s-${status}){display:none}`).join('');
  return (
    'body{font:14px/1.4 system-ui,sans-serif;margin:1em 2em;color:#222}' +
    'table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top}' +
    'thead th{position:sticky;top:0;background:#f7f7f7}td.cell{white-space:nowrap}' +
    '.count{font-weight:600}pre{background:#f7f7f7;padding:.5em;overflow:auto;margin:.2em 0}' +
    'details{margin:.2em 0}summary{cursor:pointer}' +
    'input[name=filter]{position:absolute;opacity:0}.filters label{margin-right:.5em;padding:1px 8px;border:1px solid #ccc;border-radius:3px;cursor:pointer}' +
    cells +
    filters +
    ['all', ...FILTERS].map((status) => `#f-${status}:checked~.filters label[for=f-${status}]`).join(',') +
    '{background:#333;color:#fff}'
  );
}

export function renderHtml(report: RunReport): string {
  const title = `kvmconf ${report.mode}: ${report.playbook}`;
  return [
    '<!DOCTYPE html>',
    '<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">',
    `<title>${escapeHtml(title)}</title><style>${css()}</style></head><body>`,
    `<h1>${escapeHtml(title)}</h1>`,
    `<p id="summary">${escapeHtml(`${summaryLine(report)}; started ${report.startedAt}`)}</p>`,
    ...inputError(report),
    ...filterInputs(),
    '<main>',
    ...failedSection(report),
    ...driftSection(report),
    ...rebootSection(report),
    ...hugepagesSection(report),
    ...plays(report).flatMap((play) => playSection(play, report.mode)),
    ...hostsSection(report),
    '</main></body></html>',
    '',
  ].join('\n');
}

function inputError(report: RunReport): string[] {
  return report.inputError === undefined ? [] : [`<section id="input-error"><h2>Input error</h2><pre>${escapeHtml(report.inputError)}</pre></section>`];
}

/** Radio buttons before <main>: CSS hides the rows without the chosen status. */
function filterInputs(): string[] {
  const inputs = ['all', ...FILTERS].map((status) => `<input type="radio" name="filter" id="f-${status}"${status === 'all' ? ' checked' : ''}>`);
  const labels = ['all', ...FILTERS].map((status) => `<label for="f-${status}">${status}</label>`);
  return [...inputs, `<p class="filters">Show hosts: ${labels.join('')}</p>`];
}

/** Lists longer than this are folded, so the matrix stays near the top on a large fleet. */
const SHOWN_ROWS = 20;

/** A table, folded under a summary when it is long. */
function table(rows: string[], head = ''): string[] {
  const body = [`<table>${head}`, ...rows, '</table>'];
  return rows.length <= SHOWN_ROWS ? body : [`<details><summary>${rows.length} hosts</summary>`, ...body, '</details>'];
}

function failedSection(report: RunReport): string[] {
  const failed = failedHosts(report);
  if (!failed.length) return [];
  const rows = failed.map((entry) => `<tr><th>${escapeHtml(entry.host)}</th><td class="c-${entry.status}">${entry.status}</td><td>${escapeHtml(entry.error)}</td></tr>`);
  return [`<section id="failed"><h2>Failed (${failed.length})</h2>`, ...table(rows), '</section>'];
}

function driftSection(report: RunReport): string[] {
  const groups = groupedDrift(report);
  if (!groups.length) return [];
  const total = hostCount(report);
  const rows = groups.map(
    (group) =>
      `<tr${group.failed ? ' class="c-failed"' : ''}><td>${escapeHtml(group.line)}</td><td class="count" data-hosts="${group.hosts.length}">${group.hosts.length} of ${total} hosts</td>` +
      `<td><details><summary>hosts</summary>${group.hosts.map(escapeHtml).join(', ')}</details></td></tr>`,
  );
  return [`<section id="drift"><h2>${report.mode === 'check' ? 'Drift' : 'Changes'}</h2><table>`, ...rows, '</table></section>'];
}

function rebootSection(report: RunReport): string[] {
  const waiting = awaitingReboot(report);
  if (!waiting.length) return [];
  const rows = waiting.map((entry) => `<tr><th>${escapeHtml(entry.host)}</th><td>${escapeHtml(entry.args.join(' '))}</td><td>${escapeHtml(entry.others.join(', '))}</td></tr>`);
  const head = '<thead><tr><th>host</th><th>kernel arguments</th><th>other changes</th></tr></thead>';
  return [`<section id="reboot"><h2>Awaiting reboot (${waiting.length})</h2>`, ...table(rows, head), '</section>'];
}

/**
 * Every managed pool per host; pools short of their request lead, marked. On a large
 * fleet the pools granted in full are grouped by node, size and count, hosts folded, so
 * the page stays light.
 */
function hugepagesSection(report: RunReport): string[] {
  const rows = hugepageRows(report);
  if (!rows.length) return [];
  const head = '<thead><tr><th>host</th><th>node</th><th>page size</th><th>requested</th><th>granted</th><th>free</th><th>short</th></tr></thead>';
  const short = rows.filter((row) => row.short > 0).map(poolRow);
  const full = rows.filter((row) => row.short === 0);
  const fullTable = full.length <= SHOWN_ROWS ? [`<table class="pools">${head}`, ...full.map(poolRow), '</table>'] : grantedTable(full);
  return [
    '<section id="hugepages"><h2>Hugepages per NUMA node</h2>',
    `<p class="pools-summary">${escapeHtml(hugepageSummary(rows))}; granted: ${report.mode === 'check' ? 'what the host has now' : 'read back after apply'}.</p>`,
    ...(short.length ? [`<table class="pools short">${head}`, ...short, '</table>'] : []),
    ...(full.length ? fullTable : []),
    '</section>',
  ];
}

function grantedTable(full: readonly HugepageRow[]): string[] {
  const head = '<thead><tr><th>node</th><th>page size</th><th>requested</th><th>granted in full on</th></tr></thead>';
  const rows = grantedGroups(full).map(
    (group) =>
      `<tr class="pool-group" data-node="${group.node}" data-size="${group.sizeKiB}" data-hosts="${group.hosts.length}"><td>${group.node}</td><td>${pageSize(group.sizeKiB)}</td><td>${group.requested}</td>` +
      `<td><details><summary>${plural(group.hosts.length, 'host')}</summary>${group.hosts.map(escapeHtml).join(', ')}</details></td></tr>`,
  );
  return [`<table class="pools granted">${head}`, ...rows, '</table>'];
}

function poolRow(row: HugepageRow): string {
  const isShort = row.short > 0;
  const cells = [row.node, pageSize(row.sizeKiB), String(row.requested)].map((text) => `<td>${text}</td>`).join('');
  return (
    `<tr class="pool${isShort ? ' c-failed' : ''}" data-host="${escapeHtml(row.host)}" data-node="${row.node}" data-size="${row.sizeKiB}"><th>${escapeHtml(row.host)}</th>${cells}` +
    `<td class="granted">${row.granted}</td><td>${row.free ?? ''}</td><td class="short">${isShort ? `short ${row.short}` : ''}</td></tr>`
  );
}

/** `<span class="c-drift">2 drift</span>`, worst first. */
function countSpans(counts: Counts): string {
  return CELL_STATUSES.filter((status) => counts[status])
    .map((status) => `<span class="c-${status}" data-status="${status}" data-count="${counts[status]}">${counts[status]} ${status}</span>`)
    .join(' ');
}

function headerRow(first: string[], columns: string[]): string {
  return `<thead><tr>${[...first, ...columns.map(escapeHtml)].map((text) => `<th>${text}</th>`).join('')}</tr></thead>`;
}

/** The play's matrix: groups with counts per task, then each group's hosts folded beneath. */
function playSection(play: Play, mode: Mode): string[] {
  const rows = groupRows(play, mode);
  const groupTable = rows.map(
    (row) => `<tr class="group" data-group="${escapeHtml(row.group)}"><th>${escapeHtml(row.group)}</th><td>${row.hosts.length}</td>${row.counts.map((counts) => `<td class="cell">${countSpans(counts)}</td>`).join('')}</tr>`,
  );
  const folds = rows.map((row) => {
    const hostRows = row.hosts.map((host) => hostRow(host, hostCells(host, play.columns, mode)));
    const open = rows.length === 1 ? ' open' : '';
    const summary = `${escapeHtml(row.group)}: ${countSpans(countCells(row.hosts.map((host) => ({ status: hostStatusCell(host) }))))}`;
    return `<details class="group"${open}><summary>${summary}</summary><table class="hosts">${headerRow(['host'], play.columns)}${hostRows.join('')}</table></details>`;
  });
  return [
    `<section class="play"><h2>Play ${escapeHtml(play.name)}</h2>`,
    `<table class="matrix">${headerRow(['group', 'hosts'], play.columns)}<tbody>`,
    ...groupTable,
    '</tbody></table>',
    ...folds,
    '</section>',
  ];
}

/** A host's own status in a cell's vocabulary: drift rather than changed in check mode. */
function hostStatusCell(host: HostReport): CellStatus {
  return host.status === 'changed' && !host.tasks.some((task) => task.changes.some((change) => change.status === 'applied')) ? 'drift' : host.status;
}

function rowClasses(cells: readonly Cell[]): string {
  return ['row', ...new Set(cells.map((cell) => `s-${cell.status}`))].join(' ');
}

function hostRow(host: HostReport, cells: Cell[]): string {
  const tds = cells.map((cell) => {
    const count = cell.task?.changes.length ?? 0;
    const label = cell.note ?? (cell.status === 'drift' || cell.status === 'changed' ? `${cell.status} ${count}` : cell.status);
    return `<td class="cell c-${cell.status}" data-status="${cell.status}">${escapeHtml(label)}</td>`;
  });
  return `<tr class="${rowClasses(cells)}" data-host="${escapeHtml(host.host)}"><th>${escapeHtml(host.host)}</th>${tds.join('')}</tr>`;
}

/** Per host with something to say: its identity, error, change lines, and diffs folded. */
function hostsSection(report: RunReport): string[] {
  const hosts = report.hosts.filter((host) => host.error !== undefined || host.tasks.some((task) => task.changes.length || task.error || task.diagnostics.length));
  if (!hosts.length) return [];
  return ['<section id="hosts"><h2>Hosts</h2>', ...hosts.map((host) => hostDetails(host, report.mode)), '</section>'];
}

function hostDetails(host: HostReport, mode: Mode): string {
  const identity = [host.distribution, host.kernel, host.bootId && `boot_id ${host.bootId}`].filter(Boolean).join(', ');
  const names = uniqueNames(host.tasks);
  const cells = hostCells(host, names.length ? names : ['host'], mode);
  const body = [
    identity ? `<p>${escapeHtml(identity)}</p>` : '',
    host.error !== undefined ? `<pre class="c-failed">${escapeHtml(host.error)}</pre>` : '',
    ...host.tasks.filter((task) => task.changes.length || task.error || task.diagnostics.length).map((task) => taskDetails(task, mode)),
  ];
  return `<details class="${rowClasses(cells)} host" data-host="${escapeHtml(host.host)}"><summary>${escapeHtml(host.host)} (${escapeHtml(host.play)}): ${host.status}</summary>${body.join('')}</details>`;
}

function taskDetails(task: HostReport['tasks'][number], mode: Mode): string {
  const diffs = task.changes
    .filter((change) => change.diff)
    .map((change) => `<details><summary>diff ${escapeHtml(changeLine(change, mode))}</summary><pre>${escapeHtml(unifiedDiff(change.diff!).join('\n'))}</pre></details>`);
  return `<h3>${escapeHtml(task.name)} <small>(${escapeHtml(task.module)})</small></h3><pre>${escapeHtml(describeTask(task, mode).join('\n'))}</pre>${diffs.join('')}`;
}
