/** `kvmconf report show|diff`: render a saved JSON report, or say what drifted between two. */
import { readFileSync } from 'node:fs';
import type { HostReport, RunReport } from '../engine/results.js';
import { EXIT } from '../engine/exit-code.js';
import { InputError } from '../errors.js';
import { changeLine } from '../report/common.js';
import { poolLine } from '../report/matrix.js';
import { formatNamed, renderReport } from '../report/render.js';

/** A JSON report of format version 1; anything else is refused by name. */
export function readReport(file: string): RunReport {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new InputError(`cannot read report ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  let report: Partial<RunReport>;
  try {
    report = JSON.parse(text) as Partial<RunReport>;
  } catch (error) {
    throw new InputError(`${file} is not JSON: ${(error as Error).message}`, undefined, 'save reports with --report FILE.json or --format json');
  }
  if (report?.tool !== 'kvmconf' || !Array.isArray(report.hosts) || !report.summary) throw new InputError(`${file} is not a kvmconf JSON report`);
  if (report.version !== 1) throw new InputError(`${file} has report format version ${report.version}; this kvmconf reads version 1`);
  return report as RunReport;
}

export function reportShowCommand(file: string, flags: { format: string }): void {
  const format = formatNamed(flags.format);
  if (!format) throw new InputError(`--format ${flags.format}: one of text, json, junit, md, markdown, html`);
  process.stdout.write(renderReport(readReport(file), format));
}

/** `host play: change line` for every change of a report, a host's error and each short hugepage pool as lines of their own. */
function changeKeys(report: RunReport): Map<string, string> {
  const keys = new Map<string, string>();
  const where = (host: HostReport): string => `${host.host} (${host.play})`;
  for (const host of report.hosts) {
    if (host.status === 'failed' || host.status === 'unreachable') keys.set(`${where(host)}: ${host.status}`, `${where(host)}: ${host.status}: ${host.error ?? ''}`.trim());
    for (const task of host.tasks) for (const change of task.changes) keys.set(`${where(host)}: ${changeTarget(change)}`, `${where(host)}: ${changeLine(change, 'check')}`);
    // A pool short of its request is drift a change line may not show (a failed step is set back).
    for (const pool of (host.hugepages ?? []).filter((entry) => entry.granted < entry.requested)) keys.set(`${where(host)}: ${poolLine(pool)}`, `${where(host)}: ${poolLine(pool)} (short)`);
  }
  return keys;
}

/** A change is the same drift when it targets the same thing and wants the same value. */
const changeTarget = (change: { module: string; target: string; before: string | null; after: string | null; scope: string }): string =>
  `${change.module} ${change.target} ${JSON.stringify([change.before, change.after, change.scope])}`;

/** New drift and failures since OLD, then what was resolved; exit 2 when something new appeared. */
export function diffReports(before: RunReport, after: RunReport): { text: string; newCount: number } {
  const old = changeKeys(before);
  const current = changeKeys(after);
  const added = [...current].filter(([key]) => !old.has(key)).map(([, line]) => `+ ${line}`);
  const resolved = [...old].filter(([key]) => !current.has(key)).map(([, line]) => `- ${line}`);
  const head = `${before.startedAt} -> ${after.startedAt}: ${added.length} new, ${resolved.length} resolved`;
  return { text: [head, ...added, ...resolved].join('\n') + '\n', newCount: added.length };
}

export function reportDiffCommand(oldFile: string, newFile: string): void {
  const { text, newCount } = diffReports(readReport(oldFile), readReport(newFile));
  process.stdout.write(text);
  process.exitCode = newCount ? EXIT.drift : EXIT.ok;
}
