/**
 * JUnit XML for CI: one test suite per play, one test case per host and module.
 * Drift in check mode, task errors and failed or unmade changes are failures;
 * a host error is an error; pending-only changes pass (the exit code carries them).
 */
import type { ChangeResult, HostReport, Mode, RunReport, TaskReport } from '../engine/results.js';
import { changeLine, describeFinish, groupBy, isPendingChange, taskState } from './common.js';
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

export function renderJunit(report: RunReport): string {
  const suites = [...groupBy(report.hosts, (host) => host.play)].map(([play, hosts]) => ({
    name: play,
    cases: hosts.flatMap((host) => hostCases(host, report.mode)),
  }));
  const allCases = suites.flatMap((suite) => suite.cases);
  const root = openTag('testsuites', { name: 'kvmconf', ...counts(allCases), time: seconds(report.durationMs), timestamp: report.startedAt });
  const body = suites.flatMap((suite) => [
    `  ${openTag('testsuite', { name: suite.name, ...counts(suite.cases), time: seconds(sum(suite.cases.map((c) => c.timeMs))), timestamp: report.startedAt })}`,
    ...suite.cases.flatMap((testCase) => caseXml(testCase).map((line) => `    ${line}`)),
    '  </testsuite>',
  ]);
  return ['<?xml version="1.0" encoding="UTF-8"?>', root, ...body, '</testsuites>', ''].join('\n');
}

/** The host's test cases; its duration is shared among them (a host's tasks run as one batch). */
function hostCases(host: HostReport, mode: Mode): TestCase[] {
  const cases = host.status === 'skipped' ? skippedCases(host) : ranCases(host, mode);
  const share = cases.length > 0 ? host.durationMs / cases.length : 0;
  return cases.map((testCase) => ({ ...testCase, timeMs: share }));
}

function skippedCases(host: HostReport): TestCase[] {
  const reason = host.error ?? 'host skipped';
  const modules = [...groupBy(host.tasks, (task) => task.module).keys()];
  const names = modules.length > 0 ? modules : ['host'];
  return names.map((name) => ({ classname: host.host, name, timeMs: 0, skipped: reason }));
}

/** After a host error only modules with something to show get a case: the others were not checked. */
function ranCases(host: HostReport, mode: Mode): TestCase[] {
  const cases: TestCase[] = [];
  if (host.error !== undefined) cases.push(connectionCase(host, host.error));
  for (const [module, tasks] of groupBy(host.tasks, (task) => task.module)) {
    if (host.error !== undefined && !tasks.some((task) => task.changes.length > 0 || task.error !== undefined)) continue;
    cases.push(moduleCase(host.host, module, tasks, mode));
  }
  if (host.finish) cases.push(finishCase(host));
  return cases;
}

/** The reboot or reload: failed is a failure, held or interrupted a skip (the exit code carries it), planned and done pass. */
function finishCase(host: HostReport): TestCase {
  const finish = host.finish!;
  const lines = describeFinish(finish);
  const base: TestCase = { classname: host.host, name: finish.action, timeMs: 0, systemOut: lines.join('\n') };
  if (finish.status === 'failed') return { ...base, failure: { message: firstLine(lines[0] ?? ''), type: 'finish', body: lines.join('\n') } };
  if (finish.status === 'held' || finish.status === 'interrupted') return { ...base, skipped: lines[0] ?? finish.status };
  return base;
}

function connectionCase(host: HostReport, error: string): TestCase {
  return {
    classname: host.host,
    name: 'connection',
    timeMs: 0,
    error: { message: firstLine(error), type: host.status, body: error },
  };
}

function moduleCase(host: string, module: string, tasks: TaskReport[], mode: Mode): TestCase {
  const failure = moduleFailure(tasks, mode);
  const listing = tasks.flatMap((task) => [`task ${task.name}: ${taskState(task)}`, ...describeTask(task, mode)]);
  return { classname: host, name: module, timeMs: 0, ...(failure ? { failure } : {}), systemOut: listing.join('\n') };
}

/** Drift (check mode), failed and unmade changes, and task errors; undefined when the module passed. */
function moduleFailure(tasks: readonly TaskReport[], mode: Mode): Outcome | undefined {
  const changes = tasks.flatMap((task) => task.changes);
  const drift = mode === 'check' ? changes.filter((change) => change.status === 'planned' && !isPendingChange(change)) : [];
  const failed = changes.filter((change) => change.status === 'failed');
  const notRun = changes.filter((change) => change.status === 'not-run');
  const errors = tasks.filter((task) => task.error !== undefined);
  const parts = [
    ...countPart(drift, 'to make'),
    ...countPart(failed, 'failed'),
    ...countPart(notRun, 'not made'),
    ...errors.map((task) => `${task.name}: ${firstLine(task.error ?? '')}`),
  ];
  if (parts.length === 0) return undefined;
  const body = [
    ...[...drift, ...failed, ...notRun].map((change) => changeLine(change, mode)),
    ...errors.map((task) => `error: ${task.name}: ${task.error}`),
  ];
  const type = errors.length > 0 || failed.length > 0 ? 'error' : drift.length > 0 ? 'drift' : 'not-run';
  return { message: parts.join('; '), type, body: body.join('\n') };
}

function countPart(changes: readonly ChangeResult[], what: string): string[] {
  return changes.length > 0 ? [`${changes.length} change(s) ${what}`] : [];
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

function counts(cases: readonly TestCase[]): Record<string, string> {
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

function firstLine(text: string): string {
  return text.trim().split('\n')[0] ?? '';
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
