/**
 * Helpers shared by the text, JSON and JUnit reporters: how a task is classified,
 * how a change is written on one line, how durations read.
 */
import type { ChangeView } from '../kit/module.js';
import type { ChangeResult, ChangeStatus, FinishReport, Mode, TaskReport } from '../engine/results.js';

export type TaskState = 'ok' | 'changed' | 'pending' | 'failed' | 'skipped';

export const TASK_STATES: readonly TaskState[] = ['ok', 'changed', 'pending', 'failed', 'skipped'];

/** Still waiting: a pending change that a reboot or reload (the host's finish) has not made true. */
export function isPendingChange(change: ChangeResult): boolean {
  return change.status === 'pending' || (change.scope === 'pending' && change.status !== 'failed' && change.status !== 'applied');
}

/**
 * failed: the task errored or one of its changes failed; changed: a change that is not
 * pending was planned or made; skipped: its changes never ran (an earlier step failed).
 */
export function taskState(task: TaskReport): TaskState {
  if (task.error !== undefined || task.changes.some((change) => change.status === 'failed')) return 'failed';
  const active = task.changes.filter((change) => !isPendingChange(change));
  if (active.some((change) => change.status !== 'not-run')) return 'changed';
  if (active.length) return 'skipped';
  if (task.changes.length > 0) return 'pending';
  return 'ok';
}

export function countTaskStates(tasks: readonly TaskReport[]): Record<TaskState, number> {
  const counts: Record<TaskState, number> = { ok: 0, changed: 0, pending: 0, failed: 0, skipped: 0 };
  for (const task of tasks) counts[taskState(task)]++;
  return counts;
}

/** A value as the user would write it; absent and multi-line values are summarised. */
export function formatValue(value: string | null): string {
  if (value === null) return '(absent)';
  if (value === '') return '""';
  if (value.includes('\n')) return `(${value.replace(/\n$/, '').split('\n').length} lines)`;
  return value;
}

/** `runtime`, `persist`, or `pending reboot` / `pending module-reload` / `pending guest-restart`. */
export function scopeLabel(change: ChangeView): string {
  if (change.scope !== 'pending') return change.scope;
  return change.pendingOn ? `pending ${change.pendingOn}` : 'pending';
}

const EXPECTED_STATUS: Record<Mode, ChangeStatus> = { check: 'planned', apply: 'applied' };

/** The change's status when it is not what the mode and scope already imply, else undefined. */
export function unexpectedStatus(change: ChangeResult, mode: Mode): ChangeStatus | undefined {
  if (change.status === EXPECTED_STATUS[mode]) return undefined;
  if (change.status === 'pending' && change.scope === 'pending') return undefined;
  return change.status;
}

/** `sysctl vm.swappiness: 60 -> 10 (runtime)`, plus ` [failed]` when the status is not the usual one. */
export function changeLine(change: ChangeResult, mode: Mode): string {
  const status = unexpectedStatus(change, mode);
  // A pending change the host's reboot or reload made true says so, never "pending".
  const scope = change.scope === 'pending' && change.status === 'applied' ? `done by ${change.pendingOn ?? 'finish'}` : scopeLabel(change);
  return (
    `${change.module} ${change.target}: ${formatValue(change.before)} -> ${formatValue(change.after)}` +
    ` (${scope})${status ? ` [${status}]` : ''}`
  );
}

/** `0.8s`, `4.2s`, `2m05s`. */
export function formatDuration(ms: number): string {
  if (ms < 59_950) return `${(ms / 1000).toFixed(1)}s`;
  const seconds = Math.round(ms / 1000);
  return `${Math.floor(seconds / 60)}m${String(seconds % 60).padStart(2, '0')}s`;
}

/** Items grouped by key, groups in order of first appearance, items in input order. */
export function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const name = key(item);
    const list = groups.get(name);
    if (list) list.push(item);
    else groups.set(name, [item]);
  }
  return groups;
}

export function plural(count: number, word: string): string {
  return `${count} ${word}${count === 1 ? '' : 's'}`;
}

/** The finish of a host in plain lines: the outcome first, then how it was done. */
export function describeFinish(finish: FinishReport): string[] {
  const head =
    finish.status === 'planned' ? `would ${finish.action}` : finish.status === 'done' ? `${finish.action} done` : `${finish.action} ${finish.status}`;
  const timing = finish.durationMs === undefined ? '' : ` in ${formatDuration(finish.durationMs)}`;
  const lines = [`${head}${timing}${finish.reason ? `: ${finish.reason}` : ''}`];
  if (finish.bootIdAfter) lines.push(`boot_id ${finish.bootIdBefore} -> ${finish.bootIdAfter}`);
  if (finish.cmdline?.length) lines.push(`/proc/cmdline now has ${finish.cmdline.join(' ')}`);
  if (finish.reloaded?.length) lines.push(`reloaded ${finish.reloaded.join(', ')}`);
  if (finish.guestsStopped?.length) lines.push(`guests stopped: ${finish.guestsStopped.map((g) => `${g.name} (${g.how})`).join(', ')}`);
  if (finish.guestsStarted?.length) lines.push(`guests started again: ${finish.guestsStarted.join(', ')}`);
  if (finish.hook) lines.push(`guests command exited ${finish.hook.exitCode ?? 'without a status'}`);
  if (finish.status === 'planned' || finish.status === 'held') lines.push(`finishes ${finish.finishes.join(', ')}`);
  return lines;
}
