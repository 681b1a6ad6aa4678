/**
 * One play on one host: connect once, gather in one round trip, plan (pure), and in
 * apply mode run every change in one round trip and verify in one more.
 * Every failure becomes part of the HostReport; nothing here throws to the runner.
 */
import { changeCommands, REPORT_SUMMARY_KINDS, type Change, type Diagnostic, type PlanContext, type ReportSummary } from '../kit/module.js';
import type { Command } from '../kit/shell.js';
import type { Transport } from '../transport/types.js';
import { execScript, HostFailure, type Become } from './become.js';
import { TransportError, type TransportErrorKind } from '../transport/types.js';
import type { HostFacts } from '../kit/host-facts.js';
import { FACTS_SECTION, parseFacts } from './facts.js';
import type { PreparedTask } from './prepare.js';
import type { ChangeResult, HostReport, HostStatus, Mode, TaskReport } from './results.js';
import { factsHash, fileHashes, fingerprintDiff, ownedFileProbes, taskHash, type Fingerprint } from './fingerprint.js';
import { buildApplyScript, buildGatherScript, LOCK_WAIT_S, newMark, parseApplyOutput, splitSections, type ApplyLock, type ApplyStep } from './script.js';

export interface HostJob {
  host: string;
  play: string;
  /** Who runs the scripts: undefined for the login user. */
  become: Become | undefined;
  /** kvmconf_lock_file and kvmconf_lock_wait: the host's apply lock (script.ts). */
  lock?: ApplyLock;
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
  /** Check mode: record the fingerprint of the state planned from (for a saved plan). */
  fingerprint?: boolean;
  /** Apply of a saved plan: this host's part of it (null: the plan has none), run instead of a fresh plan. */
  saved?: SavedHost | null;
}

/** A host's part of a saved plan, as the engine needs it to refuse or execute it. */
export interface SavedHost {
  status: HostStatus;
  error?: string;
  fingerprint?: Fingerprint;
  tasks: Array<Pick<TaskReport, 'name' | 'module' | 'tags' | 'changes' | 'diagnostics' | 'error'>>;
}

export interface PlannedTask {
  task: PreparedTask;
  actual: unknown;
  /** The planned changes, each with the commands that make it (none for pending ones). */
  changes: Change[];
  diagnostics: Diagnostic[];
  error?: string;
}

export interface Planned {
  facts: HostFacts;
  tasks: PlannedTask[];
  fingerprint?: Fingerprint;
}

export interface Gathered {
  facts: HostFacts;
  outputs: Map<string, { output: string; status: number }>;
}

/** The one read-only round trip: host facts plus every probe, split back per probe id. */
export async function gather(transport: Transport, become: Become | undefined, probes: Array<{ id: string; script: string }>, timeoutMs: number): Promise<Gathered> {
  const mark = newMark();
  const result = await execScript(transport, become, buildGatherScript([FACTS_SECTION, ...probes], mark), mark, timeoutMs);
  const outputs = splitSections(result.stdout, mark);
  const factsOutput = outputs.get('facts');
  if (!factsOutput) throw new HostFailure('gather output is incomplete (facts section missing)');
  return { facts: parseFacts(factsOutput.output), outputs };
}

/** Probe scripts by prepared task: hosts share prepared tasks, so each script is built once. */
const probeScripts = new WeakMap<PreparedTask, string>();

function probeScript(task: PreparedTask): string {
  let script = probeScripts.get(task);
  if (script === undefined) probeScripts.set(task, (script = task.module.probe(task.params)));
  return script;
}

export async function gatherAndPlan(transport: Transport, job: HostJob, timeoutMs: number, fingerprint = false): Promise<Planned> {
  const probes = job.tasks.map((task, index) => ({ id: `t${index}`, script: probeScript(task) }));
  const files = fingerprint ? ownedFileProbes(job.tasks) : [];
  const { facts, outputs } = await gather(transport, job.become, [...probes, ...files], timeoutMs);
  const context = (diagnostics: Diagnostic[]): PlanContext => ({
    facts,
    tasks: job.tasks.map((task) => ({ module: task.module.name, name: task.name, params: task.params })),
    claims: job.tasks.map((task) => ({ task: task.name, claims: task.claims })),
    warn: (message) => diagnostics.push({ severity: 'warning', message }),
  });
  const hashes: string[] = [];
  // Hashing is for a saved plan's fingerprint only.
  const hash = (task: PreparedTask, output: string, actual: unknown): string => (fingerprint ? taskHash(task, output, actual) : '');
  const tasks = job.tasks.map((task, index): PlannedTask => {
    const checks = task.module.rules?.(task.params, facts) ?? [];
    const diagnostics = [...(task.notes ?? []), ...checks.filter((d) => d.severity === 'warning')];
    const failed = (error: string): PlannedTask => ({ task, actual: undefined, changes: [], diagnostics, error });
    const errors = checks.filter((d) => d.severity === 'error');
    const output = outputs.get(`t${index}`);
    // Hashed from the raw output until parsed: a task that cannot plan still has a state to compare.
    hashes.push(output ? hash(task, output.output, undefined) : 'missing');
    if (errors.length) return failed(errors.map((d) => d.message).join('; '));
    if (!output) return failed('probe output missing (gather was cut short)');
    try {
      const actual = task.module.parse(output.output, task.params);
      hashes[index] = hash(task, output.output, actual);
      const changes = task.module.diff(task.params, actual, context(diagnostics));
      // A change that is not pending must carry the commands that make it.
      changes.forEach((change) => changeCommands(task.module.name, change));
      return { task, actual, changes, diagnostics };
    } catch (error) {
      return failed((error as Error).message);
    }
  });
  return { facts, tasks, ...(fingerprint ? { fingerprint: { facts: factsHash(facts), tasks: hashes, files: fileHashes(files, outputs) } } : {}) };
}

/** What the modules sum up of the host's state from one gather: their lists joined per kind. */
export function hostSummary(planned: { tasks: ReadonlyArray<Pick<PlannedTask, 'task' | 'actual'>> }): ReportSummary {
  const summary: Record<string, unknown[]> = {};
  for (const { task, actual } of planned.tasks) {
    if (actual === undefined || !task.module.reportSummary) continue;
    for (const [kind, items] of Object.entries(task.module.reportSummary(task.params, actual))) (summary[kind] ??= []).push(...(items as unknown[]));
  }
  return summary as ReportSummary;
}

/** Replaces the host's summary with a later one (or drops it: undefined when the state after apply is unknown). */
export function setHostSummary(report: HostReport, summary: ReportSummary | undefined): void {
  for (const kind of REPORT_SUMMARY_KINDS) {
    if (summary?.[kind]?.length) report[kind] = summary[kind];
    else delete report[kind];
  }
}

const isPending = (change: Pick<Change, 'scope'>): boolean => change.scope === 'pending';

/** Transport failures after the host was reached: the host failed, it is not unreachable. */
const HOST_REACHED = new Set<TransportErrorKind>(['timeout', 'dropped', 'output-limit']);

/** Check mode shows what each change will run; applying a saved plan, what it ran (an audit trail to hold against the plan). */
const listsCommands = (options: HostRunOptions): boolean => options.mode === 'check' || options.saved !== undefined;

/** Task reports of a plan; `withCommands` adds each change's commands. */
function taskReports(planned: Planned, statusOf: (change: Change, taskIndex: number) => ChangeResult['status'], withCommands = false): TaskReport[] {
  return planned.tasks.map(({ task, changes, diagnostics, error }, index) => ({
    name: task.name,
    module: task.module.name,
    tags: task.tags,
    changes: changes.map((change) => {
      // statusOf gets the planned change itself: apply outcomes are keyed by it.
      const { commands, ...view } = change;
      return { ...view, status: statusOf(change, index), ...(withCommands && !isPending(change) ? { commands: commands ?? [] } : {}) };
    }),
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
  return planned.tasks.flatMap(({ changes }, taskIndex) =>
    changes.flatMap((change) => (isPending(change) ? [] : [{
      label: `${change.module} ${change.target} (${change.scope})`,
      commands: change.commands ?? [],
      taskIndex,
      change,
    }])),
  );
}

/** The planned commands of every change, per task: what a saved plan is compared on. */
const plannedCommands = (tasks: ReadonlyArray<{ changes: ReadonlyArray<{ commands?: readonly string[] }> }>): string => JSON.stringify(tasks.map((task) => task.changes.map((change) => change.commands ?? [])));

/**
 * Why a host's saved plan cannot run on the state just gathered, or undefined when it can.
 * Re-planning is only a check: a plan whose commands would come out differently is refused too.
 */
export function savedPlanRefusal(saved: SavedHost | null, planned: Planned): string | undefined {
  if (!saved) return 'this host is not in the plan (the playbook or inventory targets it now): make a new plan';
  if (!saved.fingerprint) return `the plan has no state for this host (it was ${saved.status} when planned${saved.error ? `: ${saved.error}` : ''}): make a new plan`;
  const differences = fingerprintDiff(saved.fingerprint, planned.fingerprint!, planned.tasks.map(({ task }) => task.name));
  if (!differences.length && plannedCommands(planned.tasks) !== plannedCommands(saved.tasks)) differences.push('planning again gives other commands than the plan');
  if (!differences.length) return undefined;
  return `the state changed since the plan was made: ${differences.join('; ')}; nothing was changed on this host (make a new plan)`;
}

/** The plan's changes and exactly its commands, in place of the fresh plan's (equal to them once checked). */
function fromSaved(saved: SavedHost, planned: Planned): Planned {
  return {
    ...planned,
    // The plan file holds the commands as the planner built them; they were checked equal above.
    tasks: planned.tasks.map((task, index) => ({ ...task, changes: saved.tasks[index]!.changes.map(({ status: _status, commands, ...change }) => ({ ...change, ...(commands ? { commands: commands as Command[] } : {}) })) })),
  };
}

/** A refused host shows the plan's changes, none of them run. */
const notRun = (saved: SavedHost | null): TaskReport[] =>
  (saved?.tasks ?? []).map((task) => ({ ...task, changes: task.changes.map(({ commands: _commands, ...change }) => ({ ...change, status: 'not-run' as const })) }));

export function runHost(job: HostJob, options: HostRunOptions): Promise<HostReport> {
  return onHost(job, options, async (transport, report) => {
    options.onPhase?.('gather');
    let planned = await planHost(transport, job, options, report);
    const lockDeadline = Date.now() + (job.lock?.waitS ?? LOCK_WAIT_S) * 1000;
    while (planned && options.mode === 'apply' && report.status === 'changed') {
      if (options.stopping()) {
        report.status = 'skipped';
        report.error = 'interrupted before apply; nothing was changed on this host';
        break;
      }
      const waitS = Math.max(0, Math.floor((lockDeadline - Date.now()) / 1000));
      if (!(await applyAndVerify(transport, job, planned, options, report, waitS))) break;
      // Another run held the lock and may have changed the host since the gather: plan again from what it left.
      options.onPhase?.('gather');
      planned = await planHost(transport, job, options, report);
    }
  });
}

/**
 * The pass after a saved plan's finish (a module reload): gather and compare, nothing
 * else. The plan holds no commands beyond those already run, so whatever still differs
 * from the state it promised fails the host instead of being planned and run afresh.
 */
export function verifyHost(job: HostJob, options: HostRunOptions): Promise<HostReport> {
  return onHost(job, options, async (transport, report) => {
    options.onPhase?.('verify');
    const verified = await gatherAndPlan(transport, job, options.commandTimeoutMs);
    Object.assign(report, hostIdentity(verified.facts));
    setHostSummary(report, hostSummary(verified));
    report.tasks = taskReports(verified, (change) => (isPending(change) ? 'pending' : 'planned'));
    const left = remainingDrift(verified);
    if (left.length) {
      report.status = 'failed';
      report.error = `the host still differs from the saved plan, which holds nothing more to run (nothing outside it was run): ${left.join('; ')}`;
    }
  });
}

/** What a gather still finds to do, one phrase per change or failed task; empty when the host is as planned. */
export function remainingDrift(planned: Planned): string[] {
  return planned.tasks.flatMap((task) => [...(task.error ? [`${task.task.name}: ${task.error}`] : []), ...task.changes.map(describeLeft)]);
}

/** `module target is BEFORE, wanted AFTER`: a change a gather still finds. */
function describeDrift(change: Pick<Change, 'module' | 'target' | 'before' | 'after'>): string {
  return `${change.module} ${change.target} is ${change.before ?? '(absent)'}, wanted ${change.after ?? '(absent)'}`;
}

const describeLeft = (change: Pick<Change, 'module' | 'target' | 'scope' | 'before' | 'after'>): string => `${describeDrift(change)} (${change.scope})`;

/** Connects, runs one pass, and turns every failure into the host report; the connection is always closed. */
async function onHost(job: HostJob, options: HostRunOptions, pass: (transport: Transport, report: HostReport) => Promise<void>): Promise<HostReport> {
  const started = Date.now();
  const report: HostReport = { host: job.host, play: job.play, status: 'ok', tasks: [], execCount: 0, durationMs: 0 };
  let transport: Transport | undefined;
  try {
    options.onPhase?.('connect');
    transport = await options.connect();
    options.onTransport?.(transport);
    await pass(transport, report);
  } catch (error) {
    report.status = error instanceof TransportError && !HOST_REACHED.has(error.kind) ? 'unreachable' : 'failed';
    report.error = hostError(error, job.host);
  } finally {
    options.onTransport?.(undefined);
    report.execCount = transport?.execCount ?? 0;
    await transport?.close().catch(() => undefined);
    report.durationMs = Date.now() - started;
  }
  return report;
}

/** Gathers and plans (a saved plan: checks the host still matches it), filling the report; undefined when the saved plan is refused. */
async function planHost(transport: Transport, job: HostJob, options: HostRunOptions, report: HostReport): Promise<Planned | undefined> {
  const saved = options.saved;
  let planned = await gatherAndPlan(transport, job, options.commandTimeoutMs, Boolean(options.fingerprint) || saved !== undefined);
  if (saved !== undefined) {
    const refusal = savedPlanRefusal(saved, planned);
    if (refusal) {
      Object.assign(report, { status: 'failed', error: refusal, tasks: notRun(saved) });
      return undefined;
    }
    planned = fromSaved(saved!, planned);
  }
  Object.assign(report, hostIdentity(planned.facts));
  setHostSummary(report, hostSummary(planned));
  report.tasks = taskReports(planned, (change) => (isPending(change) ? 'pending' : 'planned'), listsCommands(options));
  if (options.fingerprint && planned.fingerprint) report.fingerprint = planned.fingerprint;
  report.status = statusFromTasks(report.tasks, 'check');
  if (report.status === 'failed') report.error = 'planning failed; nothing was changed on this host';
  return planned;
}

/**
 * Runs the plan's steps and verifies. Returns true, having run nothing, when the host's
 * lock was held by another run until it freed it: the caller plans again.
 */
async function applyAndVerify(transport: Transport, job: HostJob, planned: Planned, options: HostRunOptions, report: HostReport, lockWaitS: number): Promise<boolean> {
  const steps = applySteps(planned);
  const mark = newMark();
  options.onPhase?.('apply');
  let stdout: string;
  try {
    const result = await execScript(transport, job.become, buildApplyScript(steps, mark, { ...job.lock, waitS: lockWaitS, planAgainAfterWait: true }), mark, options.commandTimeoutMs);
    stdout = result.stdout;
  } catch (error) {
    // A cut connection or refused sudo: the output received says which steps ran (none without a step mark).
    stdout = error instanceof TransportError ? error.partialStdout : '';
    report.error = hostError(error, job.host);
  }
  const { outcomes, interrupted, lockedBy, waitedFor } = parseApplyOutput(stdout, mark, steps);
  if (waitedFor !== undefined && !report.error) return true;
  if (lockedBy !== undefined) {
    report.error = `another kvmconf run is applying to this host: ${lockedBy}; nothing was changed (waited ${job.lock?.waitS ?? LOCK_WAIT_S} s)`;
  }
  report.steps = outcomes;
  const statusByChange = new Map(steps.map((step, index) => [step.change, outcomes[index]!.status]));
  const applied = taskReports(planned, (change) => {
    if (isPending(change)) return 'pending';
    const status = statusByChange.get(change);
    return status === 'ok' ? 'applied' : status === 'failed' ? 'failed' : 'not-run';
  }, listsCommands(options));
  const failed = outcomes.find((outcome) => outcome.status === 'failed');
  if (failed || report.error || interrupted) {
    report.tasks = applied;
    report.status = 'failed';
    setHostSummary(report, failed && !report.error && !interrupted ? await readBack(transport, job, options) : undefined);
    const ran = outcomes.filter((o) => o.status === 'ok').length;
    report.error = report.error ?? (interrupted ? `interrupted after ${ran} of ${steps.length} steps` : `step ${failed!.index + 1} of ${steps.length} failed (${failed!.label}): ${lastLine(failed!.output)}`);
    return false;
  }
  options.onPhase?.('verify');
  let verified: Planned;
  try {
    verified = await gatherAndPlan(transport, job, options.commandTimeoutMs);
  } catch (error) {
    // Every step ran: the report keeps them applied, and says the host could not be verified.
    report.tasks = applied;
    report.status = 'failed';
    report.error = `every step ran, but the verify failed: ${hostError(error, job.host)}`;
    setHostSummary(report, undefined);
    return false;
  }
  setHostSummary(report, hostSummary(verified));
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
    report.error = `did not converge: ${remaining.map(describeDrift).join('; ')}`;
  }
  return false;
}

/**
 * After a failed step, what the host has now (a pool the kernel granted short, set back):
 * one more read-only gather; undefined when even that fails.
 */
async function readBack(transport: Transport, job: HostJob, options: HostRunOptions): Promise<ReportSummary | undefined> {
  if (!job.tasks.some((task) => task.module.reportSummary)) return undefined;
  options.onPhase?.('verify');
  return gatherAndPlan(transport, job, options.commandTimeoutMs).then(hostSummary, () => undefined);
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

/** The message of a failure on a host, for its report; anything else than a transport or host failure is a bug, shown with its stack. */
function hostError(error: unknown, host: string): string {
  return error instanceof TransportError || error instanceof HostFailure ? error.message.replace(`${host}: `, '') : `internal error: ${(error as Error).stack}`;
}

function lastLine(output: string): string {
  return output.trim().split('\n').filter(Boolean).pop() ?? 'no output';
}
