/**
 * The module contract. A module manages one family of settings: it declares the
 * parameters it accepts, a read-only shell probe, a pure parser of the probe's output,
 * and a pure planner (desired vs actual -> changes, each carrying the quoted commands
 * that make it, so what is shown and what runs come from one decision).
 * The engine batches every module's probe into one round trip and every change's
 * commands into another, so modules never talk to the host themselves.
 */
import type { HostFacts } from './host-facts.js';
import type { SourceLocation } from '../errors.js';
import type { Command } from './shell.js';
import type { Claim, KernelArgs, TaskClaims } from './claims.js';

/**
 * runtime: the live kernel or daemon state; persist: the file or unit that survives a reboot;
 * pending: differs now but only a reboot, module reload or guest restart can make it take effect.
 */
export type Scope = 'runtime' | 'persist' | 'pending';

export type PendingOn = 'reboot' | 'module-reload' | 'guest-restart';

/** The one diff shape for every change to a file or multi-line value. */
export interface FileDiff {
  before: string;
  after: string;
  beforeHeader: string;
  afterHeader: string;
}

/** The diff of one file, absent content shown as empty. */
export function fileDiff(path: string, before: string | null, after: string | null): FileDiff {
  return { before: before ?? '', after: after ?? '', beforeHeader: path, afterHeader: path };
}

export interface Change {
  module: string;
  /** Dotted key, path, or path:field naming what changes, e.g. `vm.nr_hugepages`. */
  target: string;
  scope: Scope;
  /** Current value as the user would write it; null when absent. */
  before: string | null;
  after: string | null;
  /** Why the change is needed or what it implies, shown beside the change. */
  reason?: string;
  /** What the pending change waits for; only with scope 'pending'. */
  pendingOn?: PendingOn;
  diff?: FileDiff;
  /**
   * The quoted shell commands that make this change, in order, decided with it by the
   * planner so the decision and its commands cannot drift apart. Absent for pending changes.
   */
  commands?: Command[];
}

/** A change as reports and saved plans show it: its commands travel beside it. */
export type ChangeView = Omit<Change, 'commands'>;

export type Severity = 'error' | 'warning';

export interface Diagnostic {
  severity: Severity;
  message: string;
}

/** What a planner may look at besides its own parameters and probe output. */
export interface PlanContext {
  facts: HostFacts;
  /**
   * Every task of the play on this host (normalised params), for tasks of one family of
   * guests that must agree (libvirt domains and their placement); what other modules set
   * is read from `claims`, never from their parameters.
   */
  tasks: ReadonlyArray<{ module: string; name: string; params: unknown }>;
  /** What every task of the play on this host claims (see Claim), read by kind. */
  claims: readonly TaskClaims[];
  /** Records a warning shown with the task; does not change the outcome. */
  warn(message: string): void;
}

/** One hugepage pool as a report shows it: what the playbook asks and what the kernel has. */
export interface HugepagePoolSummary {
  /** NUMA node, or null for the global pool of that size. */
  node: number | null;
  sizeKiB: number;
  /** The count the playbook asks for. */
  requested: number;
  /** The persistent count the kernel has (nr_hugepages - surplus_hugepages) at the gather. */
  granted: number;
  /** Free pages of the pool at the gather. */
  free?: number;
}

/**
 * Facts a module adds to its host's report, by kind, for the people reading it. The
 * engine joins the lists of every task of the play and writes each under its key.
 */
export interface ReportSummary {
  hugepages?: HugepagePoolSummary[];
}

/** Every kind a ReportSummary may hold; the compiler keeps it complete. */
export const REPORT_SUMMARY_KINDS: ReadonlyArray<keyof ReportSummary> = Object.keys({ hugepages: true } satisfies Record<keyof ReportSummary, true>) as Array<keyof ReportSummary>;

export interface Module<P = unknown, A = unknown> {
  name: string;
  summary: string;
  /** JSON Schema of the parameters (draft-07, ajv strict); assembled into the playbook schema. */
  schema: Record<string, unknown>;
  /** Turns schema-valid input into the canonical shape the other functions use. */
  normalize?(raw: unknown): P;
  /**
   * Read-only shell fragment (POSIX sh) whose stdout parse() reads.
   * It runs inside the batched gather script, so it must not exit and must not write.
   */
  probe(params: P): string;
  parse(output: string, params: P): A;
  /**
   * Pure: the changes that bring actual to desired, or [] when in desired state; every
   * change that is not pending carries its commands. Throws when the desired state cannot be reached on this host (the task fails).
   */
  diff(params: P, actual: A, context: PlanContext): Change[];
  /**
   * What this task sets, by kind (see Claim): files it owns whole, kernel arguments for the
   * play's one command line edit, sysctl keys and sysfs paths with their values... Two tasks
   * claiming one file, key or path differently is an input error; a saved plan hashes the files.
   */
  claims?(params: P): Claim[];
  /**
   * Only the module that edits the kernel command line: its parameters for the play's
   * kernel arguments, merged from every task's claims (the engine then runs one such task).
   */
  fromKernelArgs?(args: KernelArgs): P;
  /**
   * The part of the parsed state a saved plan depends on, when the probe output also
   * carries counters that move on their own (free pages, merged pages): a plan is refused
   * when this changed. Absent: the probe output as a whole.
   */
  planState?(actual: A, params: P): unknown;
  /** Checks against host facts before anything is written (errors stop the host). */
  rules?(params: P, facts: HostFacts): Diagnostic[];
  /**
   * Pure: what the report shows of this task's state besides its changes, from the
   * latest gather (after apply: the read-back; in check mode: the current state).
   */
  reportSummary?(params: P, actual: A): ReportSummary;
  /** Parameters `kvmconf facts` probes with when no playbook is given; absent = not shown. */
  factsParams?: P;
}

/** The commands that make one change, as its planner gave them; pending changes have none. */
export function changeCommands(module: string, change: Change): string[] {
  if (change.scope === 'pending') return [];
  if (!change.commands) throw new Error(`module ${module} planned ${change.target} without the commands that make it`);
  return change.commands;
}

/** Helper that keeps a module's parameter and probe types attached to its functions. */
export function defineModule<P, A>(module: Module<P, A>): Module<P, A> {
  return module;
}

/** One task as prepared for one host, as a check spanning hosts sees it (no host contacted). */
export interface FleetTask {
  host: string;
  /** The host's inventory variables (the play's vars are not mixed in). */
  hostVars: Readonly<Record<string, unknown>>;
  module: string;
  name: string;
  params: unknown;
  where?: SourceLocation;
}

/** A finding of a fleet check, attached to the task it is about. */
export interface FleetDiagnostic extends Diagnostic {
  task: FleetTask;
}

/**
 * A check across hosts, run on every task of the playbook before any connection: for
 * settings that must agree between two hosts (a guest and its hypervisor). Errors stop
 * the run as input errors; warnings are shown with the task.
 */
export type FleetCheck = (tasks: readonly FleetTask[]) => FleetDiagnostic[];
