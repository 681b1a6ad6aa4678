/**
 * The fingerprint of the state a host was planned from, so a saved plan is only ever
 * executed against the state it was reviewed on: a hash of the host facts, of each
 * task's probed state and of every file the play's tasks own, read as modules read them.
 */
import { createHash } from 'node:crypto';
import { catFileProbe, contentSha, parseFileBlock } from '../kit/remote-lib.js';
import type { HostFacts } from '../kit/host-facts.js';
import { ownedFiles } from '../kit/claims.js';
import type { PreparedTask } from './prepare.js';

export interface Fingerprint {
  /** Host facts, free memory left out (it moves on its own and no plan depends on it). */
  facts: string;
  /** One per task, in task order: the probed state the task was planned from. */
  tasks: string[];
  /** Owned file -> sha256 of its content, or 'absent'. */
  files: Record<string, string>;
}

export const sha256 = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex');

/** Gather sections reading every owned file of the job, with the ids their outputs come back under. */
export function ownedFileProbes(tasks: readonly PreparedTask[]): Array<{ id: string; script: string; path: string }> {
  const paths = [...new Set(tasks.flatMap((task) => ownedFiles(task.claims)))];
  return paths.map((path, index) => ({ id: `o${index}`, script: catFileProbe(path), path }));
}

export function factsHash(facts: HostFacts): string {
  return sha256(JSON.stringify({ ...facts, numaNodes: facts.numaNodes.map(({ memFreeKiB: _free, ...node }) => node) }));
}

/** A task's state hash: the module's stable view of what it parsed when it has one, else the probe output as it came. */
export function taskHash(task: PreparedTask, output: string, actual: unknown): string {
  const stable = actual === undefined ? undefined : task.module.planState?.(actual, task.params);
  return sha256(stable === undefined ? output : JSON.stringify(stable));
}

export function fileHashes(probes: ReturnType<typeof ownedFileProbes>, outputs: Map<string, { output: string }>): Record<string, string> {
  return Object.fromEntries(probes.map(({ id, path }) => {
    const output = outputs.get(id);
    return [path, output ? contentSha(parseFileBlock(output.output)) : 'unread'];
  }));
}

/** What differs between the planned-from state and the state now, one phrase each; empty when they match. */
export function fingerprintDiff(planned: Fingerprint, now: Fingerprint, taskNames: readonly string[]): string[] {
  const differences: string[] = [];
  if (planned.facts !== now.facts) differences.push('host facts changed (kernel, CPUs, memory or OS)');
  if (planned.tasks.length !== now.tasks.length) differences.push(`the play has ${now.tasks.length} tasks, the plan ${planned.tasks.length}`);
  else planned.tasks.forEach((hash, index) => hash !== now.tasks[index] && differences.push(`task '${taskNames[index]}': the state it was planned from changed`));
  for (const path of new Set([...Object.keys(planned.files), ...Object.keys(now.files)])) {
    if (planned.files[path] !== now.files[path]) differences.push(`${path} changed (sha256 ${short(planned.files[path])} -> ${short(now.files[path])})`);
  }
  return differences;
}

const short = (hash: string | undefined): string => (hash === undefined ? 'none' : hash.length === 64 ? hash.slice(0, 12) : hash);
