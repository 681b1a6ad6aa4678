/**
 * One play on one host: connect once, gather in one round trip, plan (pure), and in
 * apply mode run every change in one round trip and verify in one more.
 * Every failure becomes part of the HostReport; nothing here throws to the runner.
 */
import type { Change, Diagnostic, PlanContext } from '../module.js';
import type { Transport, ExecResult } from '../transport/types.js';
import { TransportError } from '../transport/types.js';
import { FACTS_PROBE, parseFacts, type HostFacts } from './facts.js';
import type { PreparedTask } from './prepare.js';
import type { ChangeResult, HostReport, HostStatus, Mode, TaskReport } from './results.js';
import { buildApplyScript, buildGatherScript, newMark, parseApplyOutput, splitSections, type ApplyStep } from './script.js';

export interface HostJob {
  host: string;
  play: string;
  become: boolean;
  tasks: PreparedTask[];
}

export interface HostRunOptions {
  mode: Mode;
  commandTimeoutMs: number;
  /** Connect lazily so the runner can bound how many hosts are connected at once. */
  connect: () => Promise<Transport>;
  onPhase?: (phase: 'connect' | 'gather' | 'apply' | 'verify') => void;
  /** True once the user asked to stop: no apply starts after that. */
  stopping: () => boolean;
  /** Lets the runner interrupt a running apply (SIGINT -> finish current step). */
  onTransport?: (transport: Transport | undefined) => void;
}

/** The remote command: the batched script arrives on stdin; sudo -n never prompts. */
export function shellCommand(become: boolean): string {
  return become ? 'if [ "$(id -u)" = 0 ]; then exec /bin/sh -s; else exec sudo -n -- /bin/sh -s; fi' : 'exec /bin/sh -s';
}

/** A host-level failure whose message is meant for the user as it is. */
export class HostFailure extends Error {}

export function checkBecome(result: ExecResult, mark: string, become: boolean): void {
  if (result.stdout.includes(mark)) return;
  const stderr = result.stderr.trim();
  if (become && /^sudo:/m.test(stderr)) {
    throw new HostFailure(`become failed: ${stderr.split('\n')[0]} (kvmconf runs 'sudo -n': give this user passwordless sudo, or connect as root)`);
  }
  throw new HostFailure(`the remote shell produced no output (exit ${result.code ?? result.signal}): ${stderr.split('\n').slice(0, 3).join(' | ') || 'no error message'}`);
}

export interface Planned {
  facts: HostFacts;
  tasks: Array<{ task: PreparedTask; actual: unknown; changes: Change[]; diagnostics: Diagnostic[]; error?: string }>;
}

export interface Gathered {
  facts: HostFacts;
  outputs: Map<string, { output: string; status: number }>;
}

/** The one read-only round trip: host facts plus every probe, split back per probe id. */
export async function gather(transport: Transport, become: boolean, probes: Array<{ id: string; script: string }>, timeoutMs: number): Promise<Gathered> {
  const mark = newMark();
  const result = await transport.exec(shellCommand(become), { stdin: buildGatherScript([{ id: 'facts', script: FACTS_PROBE }, ...probes], mark), timeoutMs });
  checkBecome(result, mark, become);
  const outputs = splitSections(result.stdout, mark);
  const factsOutput = outputs.get('facts');
  if (!factsOutput) throw new HostFailure('gather output is incomplete (facts section missing)');
  return { facts: parseFacts(factsOutput.output), outputs };
}

export async function gatherAndPlan(transport: Transport, job: HostJob, timeoutMs: number): Promise<Planned> {
  const probes = job.tasks.map((task, index) => ({ id: `t${index}`, script: task.module.probe(task.params) }));
  const { facts, outputs } = await gather(transport, job.become, probes, timeoutMs);
  const context = (diagnostics: Diagnostic[]): PlanContext => ({
    facts,
    tasks: job.tasks.map((task) => ({ module: task.module.name, name: task.name, params: task.params })),
    warn: (message) => diagnostics.push({ severity: 'warning', message }),
  });
  const tasks = job.tasks.map((task, index) => {
    const checks = task.module.rules?.(task.params, facts) ?? [];
    const diagnostics = [...(task.notes ?? []), ...checks.filter((d) => d.severity === 'warning')];
    const errors = checks.filter((d) => d.severity === 'error');
    if (errors.length) return { task, actual: undefined, changes: [], diagnostics, error: errors.map((d) => d.message).join('; ') };
    const output = outputs.get(`t${index}`);
    if (!output) return { task, actual: undefined, changes: [], diagnostics, error: 'probe output missing (gather was cut short)' };
    try {
      const actual = task.module.parse(output.output, task.params);
      const changes = task.module.diff(task.params, actual, context(diagnostics));
      return { task, actual, changes, diagnostics };
    } catch (error) {
      return { task, actual: undefined, changes: [], diagnostics, error: (error as Error).message };
    }
  });
  return { facts, tasks };
}

const isPending = (change: Change): boolean => change.scope === 'pending';

function taskReports(planned: Planned, statusOf: (change: Change, taskIndex: number) => ChangeResult['status']): TaskReport[] {
  return planned.tasks.map(({ task, changes, diagnostics, error }, index) => ({
    name: task.name,
    module: task.module.name,
    tags: task.tags,
    changes: changes.map((change) => ({ ...change, status: statusOf(change, index) })),
    diagnostics,
    ...(error ? { error } : {}),
  }));
}

function statusFromTasks(tasks: TaskReport[], mode: Mode): HostStatus {
  const changes = tasks.flatMap((task) => task.changes);
  if (tasks.some((task) => task.error) || changes.some((c) => c.status === 'failed')) return 'failed';
  if (changes.some((c) => c.scope !== 'pending' && (mode === 'check' ? c.status === 'planned' : c.status === 'applied'))) return 'changed';
  return changes.some((c) => c.scope === 'pending') ? 'pending' : 'ok';
}

/** Steps in plan order: one per non-pending change, labelled `module target (scope)`. */
function applySteps(planned: Planned): Array<ApplyStep & { taskIndex: number; change: Change }> {
  return planned.tasks.flatMap(({ task, actual, changes }, taskIndex) =>
    changes.filter((change) => !isPending(change)).map((change) => ({
      label: `${change.module} ${change.target} (${change.scope})`,
      commands: task.module.commands(change, task.params, actual),
      taskIndex,
      change,
    })),
  );
}

export async function runHost(job: HostJob, options: HostRunOptions): Promise<HostReport> {
  const started = Date.now();
  const report: HostReport = { host: job.host, play: job.play, status: 'ok', tasks: [], execCount: 0, durationMs: 0 };
  let transport: Transport | undefined;
  try {
    options.onPhase?.('connect');
    transport = await options.connect();
    options.onTransport?.(transport);
    options.onPhase?.('gather');
    const planned = await gatherAndPlan(transport, job, options.commandTimeoutMs);
    Object.assign(report, hostIdentity(planned.facts));
    report.tasks = taskReports(planned, (change) => (isPending(change) ? 'pending' : 'planned'));
    report.status = statusFromTasks(report.tasks, 'check');
    if (report.status === 'failed') report.error = 'planning failed; nothing was changed on this host';
    if (options.mode === 'apply' && report.status === 'changed') {
      if (options.stopping()) {
        report.status = 'skipped';
        report.error = 'interrupted before apply; nothing was changed on this host';
      } else {
        await applyAndVerify(transport, job, planned, options, report);
      }
    }
  } catch (error) {
    report.status = error instanceof TransportError && error.kind !== 'timeout' && error.kind !== 'dropped' ? 'unreachable' : 'failed';
    report.error = error instanceof TransportError || error instanceof HostFailure ? error.message.replace(`${job.host}: `, '') : `internal error: ${(error as Error).stack}`;
  } finally {
    options.onTransport?.(undefined);
    report.execCount = transport?.execCount ?? 0;
    await transport?.close().catch(() => undefined);
    report.durationMs = Date.now() - started;
  }
  return report;
}

async function applyAndVerify(transport: Transport, job: HostJob, planned: Planned, options: HostRunOptions, report: HostReport): Promise<void> {
  const steps = applySteps(planned);
  const mark = newMark();
  options.onPhase?.('apply');
  let stdout: string;
  try {
    const result = await transport.exec(shellCommand(job.become), { stdin: buildApplyScript(steps, mark), timeoutMs: options.commandTimeoutMs });
    checkBecome(result, mark, job.become);
    stdout = result.stdout;
  } catch (error) {
    if (!(error instanceof TransportError) || !error.partialStdout) throw error;
    stdout = error.partialStdout;
    report.error = `${error.message.replace(`${job.host}: `, '')}`;
  }
  const { outcomes, interrupted } = parseApplyOutput(stdout, mark, steps);
  report.steps = outcomes;
  const statusByChange = new Map(steps.map((step, index) => [step.change, outcomes[index]!.status]));
  const applied = taskReports(planned, (change) => {
    if (isPending(change)) return 'pending';
    const status = statusByChange.get(change);
    return status === 'ok' ? 'applied' : status === 'failed' ? 'failed' : 'not-run';
  });
  const failed = outcomes.find((outcome) => outcome.status === 'failed');
  if (failed || report.error || interrupted) {
    report.tasks = applied;
    report.status = 'failed';
    const ran = outcomes.filter((o) => o.status === 'ok').length;
    report.error = report.error ?? (interrupted ? `interrupted after ${ran} of ${steps.length} steps` : `step ${failed!.index + 1} of ${steps.length} failed (${failed!.label}): ${lastLine(failed!.output)}`);
    return;
  }
  options.onPhase?.('verify');
  const verified = await gatherAndPlan(transport, job, options.commandTimeoutMs);
  const remaining = verified.tasks.flatMap((task) => task.changes).filter((change) => !isPending(change));
  // What apply did, plus what the host still waits for after it (pending, from the re-gather).
  report.tasks = applied.map((task, index) => ({
    ...task,
    changes: [...task.changes.filter((c) => !isPending(c)), ...verified.tasks[index]!.changes.filter(isPending).map((c) => ({ ...c, status: 'pending' as const }))],
    diagnostics: verified.tasks[index]!.diagnostics,
    ...(verified.tasks[index]!.error ? { error: verified.tasks[index]!.error } : {}),
  }));
  report.status = statusFromTasks(report.tasks, 'apply');
  if (remaining.length) {
    report.status = 'failed';
    report.error = `did not converge: ${remaining.map((c) => `${c.module} ${c.target} is ${c.before ?? '(absent)'}, wanted ${c.after ?? '(absent)'}`).join('; ')}`;
  }
}

/** What tells hosts and boots apart in a report; empty facts are left out. */
function hostIdentity(facts: HostFacts): Pick<HostReport, 'distribution' | 'kernel' | 'bootId'> {
  const distribution = [facts.osId === 'unknown' ? '' : facts.osId, facts.osVersion].filter(Boolean).join(' ');
  return {
    ...(distribution ? { distribution } : {}),
    ...(facts.kernel ? { kernel: facts.kernel } : {}),
    ...(facts.bootId ? { bootId: facts.bootId } : {}),
  };
}

function lastLine(output: string): string {
  return output.trim().split('\n').filter(Boolean).pop() ?? 'no output';
}
