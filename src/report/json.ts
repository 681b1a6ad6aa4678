/**
 * The machine report: the RunReport itself as pretty JSON, keys in a fixed order
 * (documented in docs/report-format.md) so outputs diff cleanly between runs.
 */
import type { RunReport } from '../engine/results.js';
import { taskState } from './common.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Key order per object kind; keys not listed follow in alphabetical order. */
const KEY_ORDER: Record<string, readonly string[]> = {
  report: ['version', 'tool', 'toolVersion', 'mode', 'playbook', 'startedAt', 'durationMs', 'interrupted', 'exitCode', 'retryFile', 'inputError', 'run', 'summary', 'hosts'],
  run: ['inventory', 'limit', 'tags', 'skipTags', 'forks', 'plays'],
  play: ['name', 'hosts', 'serial', 'maxFailPercentage', 'reboot', 'reload', 'guests', 'rebootTimeoutS'],
  summary: ['ok', 'changed', 'pending', 'failed', 'unreachable', 'skipped'],
  host: ['host', 'play', 'status', 'error', 'groups', 'distribution', 'kernel', 'bootId', 'durationMs', 'execCount', 'tasks', 'steps', 'finish', 'hugepages'],
  hugepagePool: ['node', 'sizeKiB', 'requested', 'granted', 'free'],
  finish: ['action', 'status', 'reason', 'guests', 'finishes', 'heldBy', 'bootIdBefore', 'bootIdAfter', 'durationMs', 'reloaded', 'guestsStopped', 'guestsStarted', 'cmdline', 'hook'],
  guest: ['name', 'how'],
  hook: ['exitCode', 'output'],
  task: ['name', 'module', 'status', 'tags', 'error', 'diagnostics', 'changes'],
  diagnostic: ['severity', 'message'],
  change: ['module', 'target', 'scope', 'status', 'before', 'after', 'pendingOn', 'reason', 'diff'],
  diff: ['beforeHeader', 'afterHeader', 'before', 'after'],
  step: ['index', 'label', 'status', 'exitCode', 'output'],
};

/** What each object-valued key holds; array keys name their element kind. */
const CHILD_KIND: Record<string, string> = {
  summary: 'summary',
  run: 'run',
  plays: 'play',
  hosts: 'host',
  tasks: 'task',
  diagnostics: 'diagnostic',
  changes: 'change',
  diff: 'diff',
  steps: 'step',
  finish: 'finish',
  guestsStopped: 'guest',
  hook: 'hook',
  hugepages: 'hugepagePool',
};

function ordered(value: unknown, kind: string | undefined): Json | undefined {
  if (value === undefined) return undefined;
  if (Array.isArray(value)) return value.map((item) => ordered(item, kind) ?? null);
  if (value === null || typeof value !== 'object') return value as Json;
  const record = value as Record<string, unknown>;
  const known = kind ? (KEY_ORDER[kind] ?? []) : [];
  const rest = Object.keys(record)
    .filter((key) => !known.includes(key))
    .sort();
  const result: { [key: string]: Json } = {};
  for (const key of [...known, ...rest]) {
    const child = ordered(record[key], kind ? CHILD_KIND[key] : undefined);
    if (child !== undefined) result[key] = child;
  }
  return result;
}

/** The report as JSON with a stable key order, two-space indent and a final newline; each task carries its status. */
export function renderJson(report: RunReport): string {
  const hosts = report.hosts.map((host) => ({ ...host, tasks: host.tasks.map((task) => ({ ...task, status: taskState(task) })) }));
  return JSON.stringify(ordered({ ...report, hosts }, 'report'), null, 2) + '\n';
}
