/**
 * JUnit XML for CI: one test suite per play, one test case per host and task (named
 * by the task, classname the host). Drift in check mode, failed tasks and changes apply
 * never reached are failures; a host that could not be reached is an error on each of
 * its tasks; pending-only tasks pass (the exit code carries them). A run stopped by bad
 * input is one error case, so a CI collector still finds a report.
 */
import type { HostReport, Mode, RunReport } from '../engine/results.js';
import { describeFinish } from './common.js';
import { firstLine, hostCells, plays, type Cell } from './matrix.js';
import { stripAnsi } from './style.js';
import { describeTask } from './text.js';

interface Outcome {
  message: string;
  type: string;
  body: string;
}

interface TestCase {
  classname: string;
  name: string;
  timeMs: number;
  failure?: Outcome;
  error?: Outcome;
  skipped?: string;
  systemOut?: string;
}

interface Suite {
  name: string;
  cases: TestCase[];
}

export function renderJunit(report: RunReport): string {
  const suites = report.inputError !== undefined ? [inputSuite(report, report.inputError)] : playSuites(report);
  const allCases = suites.flatMap((suite) => suite.cases);
  // The root carries only the attributes Jenkins' JUnit schema allows there (no skipped, no timestamp).
  const { tests, failures, errors } = counts(allCases);
  const root = openTag('testsuites', { name: 'kvmconf', tests, failures, errors, time: seconds(report.durationMs) });
  const body = suites.flatMap((suite) => [
    `  ${openTag('testsuite', { name: suite.name, ...counts(suite.cases), time: seconds(sum(suite.cases.map((c) => c.timeMs))), timestamp: report.startedAt })}`,
    ...suite.cases.flatMap((testCase) => caseXml(testCase).map((line) => `    ${line}`)),
    '  </testsuite>',
  ]);
  return ['<?xml version="1.0" encoding="UTF-8"?>', root, ...body, '</testsuites>', ''].join('\n');
}

function playSuites(report: RunReport): Suite[] {
  return plays(report).map((play) => ({
    name: play.name,
    cases: play.hosts.flatMap((host) => hostCases(host, play.columns, report.mode)),
  }));
}

function inputSuite(report: RunReport, message: string): Suite {
  const error = { message: firstLine(message), type: 'input', body: message };
  return { name: 'kvmconf', cases: [{ classname: report.playbook, name: 'input', timeMs: report.durationMs, error }] };
}

/**
 * A host's cases: its tasks, a host-level failure no task shows, and its reboot or
 * reload. A host's tasks are gathered and applied in one batch, so their time is the
 * host's time split evenly: a host's cases add up to its time, never more.
 */
function hostCases(host: HostReport, columns: string[], mode: Mode): TestCase[] {
  const cells = hostCells(host, columns.length ? columns : ['host'], mode);
  const cases = cells.map((cell, index) => cellCase(host, columns[index] ?? 'host', cell, mode));
  const shown = cases.some((c) => c.failure || c.error) || host.finish?.status === 'failed';
  if (host.status === 'failed' && host.tasks.length && !shown) cases.push(hostFailureCase(host));
  const finishMs = host.finish?.durationMs ?? 0;
  const share = Math.max(0, host.durationMs - finishMs) / cases.length;
  const timed = cases.map((testCase) => ({ ...testCase, timeMs: share }));
  return host.finish ? [...timed, { ...finishCase(host), timeMs: finishMs }] : timed;
}

function cellCase(host: HostReport, name: string, cell: Cell, mode: Mode): TestCase {
  const base: TestCase = { classname: host.host, name, timeMs: 0, ...(cell.task ? { systemOut: describeTask(cell.task, mode).join('\n') } : {}) };
  const why = host.error ?? cell.status;
  switch (cell.status) {
    case 'unreachable':
      return { ...base, error: { message: firstLine(why), type: 'unreachable', body: why } };
    case 'skipped':
      return { ...base, skipped: host.status === 'skipped' ? why : 'task not run on this host' };
    case 'failed':
    case 'drift':
    case 'not-run':
      return cell.task ? { ...base, failure: taskFailure(cell, mode) } : { ...base, error: { message: firstLine(why), type: 'failed', body: why } };
    default:
      return base;
  }
}

/** The failure of a task: its error, else its changes that are drift, failed or not made. */
function taskFailure(cell: Cell, mode: Mode): Outcome {
  const task = cell.task!;
  const lines = describeTask(task, mode).map((line) => line.trim());
  const counted = task.changes.filter((change) => (cell.status === 'drift' ? change.status === 'planned' : change.status === cell.status || change.status === 'failed'));
  const what = cell.status === 'drift' ? 'to make' : cell.status === 'not-run' ? 'not made' : 'failed';
  const message = task.error !== undefined ? firstLine(task.error) : `${counted.length} change(s) ${what}`;
  return { message, type: cell.status, body: lines.join('\n') };
}

function hostFailureCase(host: HostReport): TestCase {
  const error = host.error ?? 'failed';
  return { classname: host.host, name: 'host', timeMs: 0, failure: { message: firstLine(error), type: 'failed', body: error } };
}

/** The reboot or reload: failed is a failure, held or interrupted a skip (the exit code carries it), planned and done pass. */
function finishCase(host: HostReport): TestCase {
  const finish = host.finish!;
  const lines = describeFinish(finish);
  const base: TestCase = { classname: host.host, name: finish.action, timeMs: 0, systemOut: lines.join('\n') };
  if (finish.status === 'failed') return { ...base, failure: { message: firstLine(lines[0] ?? ''), type: 'failed', body: lines.join('\n') } };
  if (finish.status === 'held' || finish.status === 'interrupted') return { ...base, skipped: lines[0] ?? finish.status };
  return base;
}

function caseXml(testCase: TestCase): string[] {
  const open = openTag('testcase', { classname: testCase.classname, name: testCase.name, time: seconds(testCase.timeMs) });
  const children = [
    ...(testCase.skipped !== undefined ? [selfClosing('skipped', { message: testCase.skipped })] : []),
    ...(testCase.failure ? [outcomeXml('failure', testCase.failure)] : []),
    ...(testCase.error ? [outcomeXml('error', testCase.error)] : []),
    ...(testCase.systemOut ? [`<system-out>${escapeText(testCase.systemOut)}</system-out>`] : []),
  ];
  if (children.length === 0) return [open.replace(/>$/, '/>')];
  return [open, ...children.map((child) => `  ${child}`), '</testcase>'];
}

function outcomeXml(tag: string, outcome: Outcome): string {
  return `${openTag(tag, { message: outcome.message, type: outcome.type })}${escapeText(outcome.body)}</${tag}>`;
}

function counts(cases: readonly TestCase[]): { tests: string; failures: string; errors: string; skipped: string } {
  return {
    tests: String(cases.length),
    failures: String(cases.filter((c) => c.failure).length),
    errors: String(cases.filter((c) => c.error).length),
    skipped: String(cases.filter((c) => c.skipped !== undefined).length),
  };
}

function openTag(name: string, attributes: Record<string, string>): string {
  const rendered = Object.entries(attributes).map(([key, value]) => ` ${key}="${escapeAttribute(value)}"`);
  return `<${name}${rendered.join('')}>`;
}

function selfClosing(name: string, attributes: Record<string, string>): string {
  return openTag(name, attributes).replace(/>$/, '/>');
}

function seconds(ms: number): string {
  return (ms / 1000).toFixed(3);
}

function sum(values: readonly number[]): number {
  return values.reduce((total, value) => total + value, 0);
}

/** Characters XML 1.0 forbids: C0 controls except tab, LF and CR; U+FFFE/U+FFFF; lone surrogates. */
const FORBIDDEN = /[\x00-\x08\x0B\x0C\x0E-\x1F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** Text without colour codes or characters XML cannot carry. */
export function xmlSafe(text: string): string {
  return stripAnsi(text).replace(FORBIDDEN, '');
}

export function escapeText(text: string): string {
  return xmlSafe(text).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/\r/g, '&#13;');
}

/** Attribute values also keep their quotes, tabs and line breaks (which parsers would normalise). */
export function escapeAttribute(text: string): string {
  return escapeText(text)
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;')
    .replace(/\n/g, '&#10;')
    .replace(/\t/g, '&#9;');
}
