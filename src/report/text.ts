/**
 * The human report: per host its changes, problems and failed steps, then a recap
 * with one line per host and the run's totals.
 */
import { createTwoFilesPatch } from 'diff';
import type { FileDiff } from '../kit/module.js';
import type { ChangeResult, HostReport, HostStatus, Mode, RunReport, TaskReport } from '../engine/results.js';
import type { StepOutcome } from '../engine/script.js';
import { changeLine, countTaskStates, describeFinish, formatDuration, groupBy, plural, taskState, TASK_STATES } from './common.js';
import type { TaskState } from './common.js';
import { createStyle, escapeStrings, paintStatus, statusPaint } from './style.js';
import { poolLine } from './matrix.js';
import type { Style } from './style.js';

export interface TextOptions {
  color: boolean;
  /** Show each change's unified diff (files) or -/+ pair (values). */
  diff: boolean;
  /** Also list each change's commands (check mode), tasks already in desired state, every apply step, and per-host timing. */
  verbose?: boolean;
  /** Show each change's commands (implied by verbose). */
  commands?: boolean;
}

interface Context {
  mode: Mode;
  style: Style;
  diff: boolean;
  verbose: boolean;
  commands: boolean;
}

/** Lines of a failed step's output shown in the report. */
export const STEP_OUTPUT_LINES = 20;

export function renderText(input: RunReport, options: TextOptions): string {
  // What hosts sent (and task names) is shown, never obeyed by the terminal.
  const report = escapeStrings(input);
  const context: Context = {
    mode: report.mode,
    style: createStyle(options.color),
    diff: options.diff,
    verbose: options.verbose ?? false,
    commands: (options.commands ?? false) || (options.verbose ?? false),
  };
  const hosts = [...groupBy(report.hosts, (host) => host.play).values()].flat();
  const blocks = hosts.map((host) => renderHost(host, context));
  if (report.inputError !== undefined) blocks.unshift(errorLines(report.inputError, context.style));
  blocks.push(renderRecap(report, context.style));
  return blocks.map((lines) => lines.join('\n')).join('\n\n') + '\n';
}

function renderHost(host: HostReport, context: Context): string[] {
  return [
    hostHeader(host, context),
    ...(host.error === undefined ? [] : errorLines(host.error, context.style)),
    ...host.tasks.flatMap((task) => taskLines(task, context)),
    ...(host.steps ?? []).flatMap((step) => stepLines(step, context)),
    ...finishLines(host, context.style),
    ...hugepageLines(host, context),
  ];
}

/** Pools the kernel granted short of the request (every pool with verbose). */
function hugepageLines(host: HostReport, { style, verbose }: Context): string[] {
  const pools = (host.hugepages ?? []).filter((pool) => verbose || pool.granted < pool.requested);
  return pools.map((pool) => {
    const line = `${poolLine(pool)}${pool.free === undefined ? '' : `, ${pool.free} free`}`;
    return `  ${pool.granted < pool.requested ? style.red(`${line} (short ${pool.requested - pool.granted})`) : line}`;
  });
}

/** `  finish: reboot done in 24.1s`, then how (boot_id, /proc/cmdline tokens, guests) beneath. */
function finishLines(host: HostReport, style: Style): string[] {
  if (!host.finish) return [];
  const [first = '', ...rest] = describeFinish(host.finish);
  const paint = host.finish.status === 'done' ? style.green : host.finish.status === 'planned' ? (text: string) => text : host.finish.status === 'failed' ? style.red : style.yellow;
  return [`  ${style.bold('finish')}: ${paint(first)}`, ...rest.map((line) => `    ${style.dim(line)}`)];
}

function hostHeader(host: HostReport, { style, verbose }: Context): string {
  const timing = verbose ? ` (${formatDuration(host.durationMs)}, ${plural(host.execCount, 'command')})` : '';
  return `${style.bold(`host ${host.host}`)} (play ${host.play}): ${paintStatus(style, host.status)}${timing}`;
}

/** `  error: message`, continuation lines indented under it. */
function errorLines(message: string, style: Style, prefix = ''): string[] {
  const [first = '', ...rest] = message.replace(/\n+$/, '').split('\n');
  return [`  ${style.red(style.bold('error'))}: ${prefix}${first}`, ...rest.map((line) => `    ${line}`)];
}

/** A task's change lines, reasons, diagnostics and error, uncoloured and without diffs. */
export function describeTask(task: TaskReport, mode: Mode): string[] {
  return taskLines(task, { mode, style: createStyle(false), diff: false, verbose: false, commands: false });
}

function taskLines(task: TaskReport, context: Context): string[] {
  const { style } = context;
  const lines: string[] = [];
  if (context.verbose && taskState(task) === 'ok') lines.push(`  ${paintStatus(style, 'ok')}: ${task.name} (${task.module})`);
  for (const change of task.changes) lines.push(...changeLines(change, context));
  for (const diagnostic of task.diagnostics) {
    lines.push(`  ${paintStatus(style, diagnostic.severity)}: ${diagnostic.message}`);
  }
  if (task.error !== undefined) lines.push(...errorLines(task.error, style, `${task.name}: `));
  return lines;
}

function changeLines(change: ChangeResult, context: Context): string[] {
  const lines = [`  ${statusPaint(context.style, change.status)(changeLine(change, context.mode))}`];
  if (change.reason) lines.push(`    ${context.style.dim(change.reason)}`);
  if (context.diff) lines.push(...diffLines(change, context.style).map((line) => `    ${line}`));
  if (context.commands) lines.push(...commandLines(change.commands ?? []).map((line) => `    ${context.style.dim(line)}`));
  return lines;
}

/** Commands as a reviewer reads them: `$ ` before each, a multi-line one's further lines indented under it. */
export function commandLines(commands: readonly string[]): string[] {
  return commands.flatMap((command) => command.split('\n').map((line, index) => (index ? `  ${line}` : `$ ${line}`)));
}

/** A FileDiff as a unified diff; otherwise the before and after values as -/+ lines. */
function diffLines(change: ChangeResult, style: Style): string[] {
  if (change.diff) return unifiedDiff(change.diff).map((line) => paintDiffLine(line, style));
  return [...prefixed('-', change.before).map(style.red), ...prefixed('+', change.after).map(style.green)];
}

function prefixed(sign: string, value: string | null): string[] {
  if (value === null) return [];
  return value.replace(/\n$/, '').split('\n').map((line) => `${sign} ${line}`);
}

/** createTwoFilesPatch's output without its `====` separator line and trailing newline. */
export function unifiedDiff(diff: FileDiff): string[] {
  const patch = createTwoFilesPatch(diff.beforeHeader, diff.afterHeader, diff.before, diff.after);
  return patch
    .replace(/\n$/, '')
    .split('\n')
    .filter((line) => !/^=+$/.test(line));
}

function paintDiffLine(line: string, style: Style): string {
  if (line.startsWith('+++') || line.startsWith('---')) return style.bold(line);
  if (line.startsWith('@@')) return style.cyan(line);
  if (line.startsWith('+')) return style.green(line);
  if (line.startsWith('-')) return style.red(line);
  return line;
}

function stepLines(step: StepOutcome, { style, verbose }: Context): string[] {
  if (step.status !== 'failed') return verbose ? [`  step ${step.label}: ${paintStatus(style, step.status)}`] : [];
  const exit = step.exitCode === undefined ? 'no exit status, connection lost' : `exit ${step.exitCode}`;
  return [`  ${style.red(style.bold('failed step'))}: ${step.label} (${exit})`, ...outputTail(step.output)];
}

/** The last STEP_OUTPUT_LINES lines of a step's output, indented. */
function outputTail(output: string): string[] {
  const lines = output.replace(/\n+$/, '').split('\n');
  if (lines.length === 1 && lines[0] === '') return [];
  const shown = lines.slice(-STEP_OUTPUT_LINES).map((line) => `    ${line}`);
  const hidden = lines.length - STEP_OUTPUT_LINES;
  return hidden > 0 ? [`    ... (${plural(hidden, 'earlier line')})`, ...shown] : shown;
}

interface RecapEntry {
  host: string;
  status: HostStatus;
  tasks: Record<TaskState, number>;
  unreachable: number;
}

/** Most severe first wins when one host ran in several plays. */
const STATUS_RANK: Record<HostStatus, number> = { ok: 0, pending: 1, changed: 2, skipped: 3, failed: 4, unreachable: 5 };

const STATUS_ORDER: HostStatus[] = ['ok', 'changed', 'pending', 'failed', 'unreachable', 'skipped'];

/** One entry per host across plays; tasks of unreachable or skipped hosts did not run and are not counted. */
function recapEntries(hosts: readonly HostReport[]): RecapEntry[] {
  return [...groupBy(hosts, (host) => host.host)].map(([host, reports]) => {
    const ran = reports.filter((report) => report.status !== 'unreachable' && report.status !== 'skipped');
    const status = reports
      .map((report) => report.status)
      .reduce((worst, current) => (STATUS_RANK[current] > STATUS_RANK[worst] ? current : worst));
    return {
      host,
      status,
      tasks: countTaskStates(ran.flatMap((report) => report.tasks)),
      unreachable: reports.some((report) => report.status === 'unreachable') ? 1 : 0,
    };
  });
}

function renderRecap(report: RunReport, style: Style): string[] {
  const entries = recapEntries(report.hosts);
  const rows = entries.map((entry) => [
    ...TASK_STATES.map((state) => countField(state, entry.tasks[state], style)),
    countField('unreachable', entry.unreachable, style),
  ]);
  const widths = rows[0]?.map((_, column) => Math.max(...rows.map((row) => row[column]!.plain.length))) ?? [];
  const hostWidth = Math.max(0, ...entries.map((entry) => entry.host.length));
  const lines = entries.map((entry, index) => {
    const fields = rows[index]!.map((field, column) => field.painted + ' '.repeat(widths[column]! - field.plain.length));
    return `${entry.host.padEnd(hostWidth)}  ${fields.join(' ')}  ${paintStatus(style, entry.status)}`;
  });
  return [style.bold('RECAP'), ...lines, totalsLine(report, entries)];
}

function countField(name: string, count: number, style: Style): { plain: string; painted: string } {
  const plain = `${name}=${count}`;
  return { plain, painted: count > 0 && name !== 'ok' ? statusPaint(style, name)(plain) : plain };
}

/** `3 hosts: 1 ok, 1 changed, 1 unreachable in 4.2s (check mode)`. */
function totalsLine(report: RunReport, entries: readonly RecapEntry[]): string {
  const counts = STATUS_ORDER.map((status) => [status, entries.filter((entry) => entry.status === status).length] as const)
    .filter(([, count]) => count > 0)
    .map(([status, count]) => `${count} ${status}`);
  const tally = counts.length > 0 ? `: ${counts.join(', ')}` : '';
  const notes = [`${report.mode} mode`, ...(report.interrupted ? ['interrupted'] : [])].join(', ');
  return `${plural(entries.length, 'host')}${tally} in ${formatDuration(report.durationMs)} (${notes})`;
}
