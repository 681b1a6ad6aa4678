/**
 * The Markdown summary for a merge-request comment or $GITHUB_STEP_SUMMARY: short on
 * any fleet size (failures first, identical drift grouped, the matrix by group), every
 * host-sent string escaped so a hostile host cannot inject markup or links.
 */
import type { RunReport } from '../engine/results.js';
import { plural } from './common.js';
import { awaitingReboot, countsText, failedHosts, groupedDrift, groupRows, hostCount, hugepageRows, hugepageSummary, pageSize, plays, summaryLine, type Play } from './matrix.js';

/** Rows of a list before the rest is summed up in one line. */
export const MARKDOWN_ROWS = 20;

/**
 * Text safe in Markdown and in a table cell, on one line: tags and entities (`<`, `&`),
 * emphasis, code, links and images (`[`), autolinked URLs, pipes and strikethrough neutralised. Text is
 * never placed at the start of a line, where `#`, `>` and `+` would matter.
 */
export function markdownText(text: string): string {
  return text
    .replace(/[\r\n]+/g, ' ')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/[\\`*_[\]|~]/g, (char) => `\\${char}`)
    .replace(/:\/\//g, ':\\/\\/')
    .replace(/\bwww\./gi, (www) => `${www.slice(0, 3)}\\.`);
}

export function renderMarkdown(report: RunReport): string {
  const sections = [
    [headline(report)],
    inputErrorSection(report),
    failuresSection(report),
    driftSection(report),
    rebootSection(report),
    hugepagesSection(report),
    ...plays(report).map((play) => matrixSection(play, report)),
  ];
  return sections.filter((lines) => lines.length).map((lines) => lines.join('\n')).join('\n\n') + '\n';
}

function headline(report: RunReport): string {
  return `## kvmconf ${report.mode}: ${markdownText(report.playbook)}\n\n${summaryLine(report)}`;
}

function inputErrorSection(report: RunReport): string[] {
  return report.inputError === undefined ? [] : ['### Input error', '', markdownText(report.inputError)];
}

/** At most MARKDOWN_ROWS items, then how many were left out. */
function capped(lines: string[]): string[] {
  return lines.length <= MARKDOWN_ROWS ? lines : [...lines.slice(0, MARKDOWN_ROWS), `- … and ${lines.length - MARKDOWN_ROWS} more`];
}

function failuresSection(report: RunReport): string[] {
  const failed = failedHosts(report);
  if (!failed.length) return [];
  return [`### Failed (${failed.length})`, '', ...capped(failed.map((entry) => `- **${markdownText(entry.host)}** ${entry.status}: ${markdownText(entry.error)}`))];
}

function driftSection(report: RunReport): string[] {
  const groups = groupedDrift(report);
  if (!groups.length) return [];
  const total = hostCount(report);
  const heading = report.mode === 'check' ? 'Drift' : 'Changes';
  return [`### ${heading}`, '', ...capped(groups.map((group) => `- ${markdownText(group.line)}: ${group.hosts.length} of ${total} hosts`))];
}

function rebootSection(report: RunReport): string[] {
  const waiting = awaitingReboot(report);
  if (!waiting.length) return [];
  const byArgs = new Map<string, number>();
  for (const entry of waiting) {
    const key = [...entry.args, ...entry.others].join(' ');
    byArgs.set(key, (byArgs.get(key) ?? 0) + 1);
  }
  return [`### Awaiting reboot (${waiting.length})`, '', ...capped([...byArgs].map(([args, count]) => `- ${plural(count, 'host')}: ${markdownText(args)}`))];
}

/** One line for the fleet, then only the pools the kernel granted short of the request. */
function hugepagesSection(report: RunReport): string[] {
  const rows = hugepageRows(report);
  if (!rows.length) return [];
  const short = rows.filter((row) => row.short > 0);
  const lines = short.map((row) => `- **${markdownText(row.host)}** node ${row.node}, ${pageSize(row.sizeKiB)}: granted ${row.granted} of ${row.requested} (short ${row.short})`);
  return ['### Hugepages', '', hugepageSummary(rows), ...(lines.length ? ['', ...capped(lines)] : [])];
}

function matrixSection(play: Play, report: RunReport): string[] {
  if (!play.columns.length) return [];
  const header = ['group', 'hosts', ...play.columns].map(markdownText);
  const rows = groupRows(play, report.mode).map((row) => [markdownText(row.group), String(row.hosts.length), ...row.counts.map(countsText)]);
  const more = rows.length > MARKDOWN_ROWS ? ['', `… and ${rows.length - MARKDOWN_ROWS} more groups`] : [];
  return [`### ${markdownText(play.name)}`, '', tableRow(header), tableRow(header.map(() => '---')), ...rows.slice(0, MARKDOWN_ROWS).map(tableRow), ...more];
}

const tableRow = (cells: string[]): string => `| ${cells.join(' | ')} |`;
