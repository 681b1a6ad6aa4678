/**
 * What a run produced, in the shape every reporter (text, JSON, JUnit) reads.
 * The JSON report is this structure; bump REPORT_VERSION on any incompatible change.
 */
import type { Change, Diagnostic, ReportSummary } from '../kit/module.js';
import type { StepOutcome } from './script.js';
import type { Fingerprint } from './fingerprint.js';

export const REPORT_VERSION = 1;

export type Mode = 'check' | 'apply';

/**
 * planned: --check found it; applied: apply made it and verify confirmed it;
 * pending: waits for a reboot, module reload or guest restart; failed / not-run: apply stopped.
 */
export type ChangeStatus = 'planned' | 'applied' | 'pending' | 'failed' | 'not-run';

export interface ChangeResult extends Omit<Change, 'commands'> {
  status: ChangeStatus;
  /** Check mode: the shell commands apply runs for this change; applying a saved plan: those it ran (none for pending ones). */
  commands?: string[];
}

export interface TaskReport {
  name: string;
  module: string;
  tags: string[];
  changes: ChangeResult[];
  diagnostics: Diagnostic[];
  /** Set when the task itself failed (bad rendered params, probe error, failed step). */
  error?: string;
}

/**
 * ok: in desired state; changed: drift found (check) or changes made (apply);
 * pending: only pending changes remain; failed: an error on a reachable host;
 * unreachable: could not connect; skipped: not started (interrupt or max_fail_percentage).
 */
export type HostStatus = 'ok' | 'changed' | 'pending' | 'failed' | 'unreachable' | 'skipped';

/** A host's report, with what its modules summed up of its state (see ReportSummary). */
export interface HostReport extends ReportSummary {
  host: string;
  play: string;
  status: HostStatus;
  tasks: TaskReport[];
  /** Host-level failure: connection, sudo, probe or apply error, or "did not converge". */
  error?: string;
  /** Apply steps as they ran (apply mode only). */
  steps?: StepOutcome[];
  /** Remote commands executed on this host (gather + apply + verify: at most 3, more when a reboot or reload finishes it or the apply waited for another run's lock). */
  execCount: number;
  durationMs: number;
  /** Check mode with a saved plan: the state the host was planned from. */
  fingerprint?: Fingerprint;
  /** What was done (or, in check mode, would be done) to finish pending work; absent when nothing was to finish. */
  finish?: FinishReport;
  /** Inventory groups the host is listed in directly. */
  groups?: string[];
  /** From the gathered facts: `ID VERSION_ID` of os-release, the running kernel, /proc/sys/kernel/random/boot_id. */
  distribution?: string;
  kernel?: string;
  bootId?: string;
}

/**
 * planned: check mode, this is what apply would do; done: finished and verified;
 * held: not done, the guests policy (refuse, a failed hook, guests that would not stop) kept it pending;
 * failed: the host did not come back, came back with drift, or a step failed; interrupted: Ctrl-C came first.
 */
export type FinishStatus = 'planned' | 'done' | 'held' | 'failed' | 'interrupted';

export interface FinishReport {
  action: 'reboot' | 'reload';
  status: FinishStatus;
  /** Why held, failed or interrupted; for planned, what apply would do with the guests. */
  reason?: string;
  guests: 'refuse' | 'shutdown' | 'command';
  /** `module target` of the pending changes the action finishes. */
  finishes: string[];
  /** Running domains that hold the host (refuse), or that were still running after the hook. */
  heldBy?: string[];
  bootIdBefore?: string;
  bootIdAfter?: string;
  /** Reboot: from issuing it until the host was back and verified; reload: the reload pass. */
  durationMs?: number;
  /** Kernel modules reloaded (reload). */
  reloaded?: string[];
  guestsStopped?: Array<{ name: string; how: 'shutdown' | 'destroy' }>;
  /** Domains started again after the host was verified, in their previous order. */
  guestsStarted?: string[];
  /** Tokens of /proc/cmdline that the reboot made true. */
  cmdline?: string[];
  /** The guests hook's exit status and output (policy command). */
  hook?: { exitCode: number | null; output: string };
}

export type Summary = Record<HostStatus, number>;

export interface RunReport {
  version: typeof REPORT_VERSION;
  tool: 'kvmconf';
  toolVersion: string;
  mode: Mode;
  playbook: string;
  startedAt: string;
  durationMs: number;
  interrupted: boolean;
  hosts: HostReport[];
  summary: Summary;
  exitCode: number;
  /** Apply mode: the file listing every host that did not finish (`--limit @FILE` resumes there). */
  retryFile?: string;
  /** How the run was asked for; absent in reports built by hand. */
  run?: RunSettings;
  /** The run stopped on bad input before any host was contacted. */
  inputError?: string;
}

/** The command line's selection and each play's rollout, as the run used them. */
export interface RunSettings {
  /** Inventory sources in `-i` order; `["local"]` for --local. */
  inventory: string[];
  limit?: string;
  tags: string[];
  skipTags: string[];
  forks: number;
  plays: PlaySettings[];
}

export interface PlaySettings {
  name: string;
  hosts: string;
  serial: Array<number | string>;
  maxFailPercentage: number;
  reboot: 'never' | 'pending';
  reload: 'never' | 'pending';
  guests: 'refuse' | 'shutdown' | 'command';
  rebootTimeoutS: number;
}

export function emptySummary(): Summary {
  return { ok: 0, changed: 0, pending: 0, failed: 0, unreachable: 0, skipped: 0 };
}

/** Strings kept once per run however many host reports repeat them (bounded). */
export type StringPool = Map<string, string>;
const POOLED_MAX = 8192;

/**
 * A finished host's report as it is kept until the run ends. Strings parsed out of the
 * host's output are V8 slices that keep the whole output alive (a kernel version held
 * 6 KB per host), and commands built per host are trees of concatenations; the report
 * is JSON by design, so one round trip stores it as flat strings of its own, each
 * stored once for hosts that report the same command, reason or diff.
 */
export function detachedReport(report: HostReport, pool: StringPool): HostReport {
  return JSON.parse(JSON.stringify(report), (_key, value: unknown) => {
    if (typeof value !== 'string' || value.length < 8) return value;
    const kept = pool.get(value);
    if (kept !== undefined) return kept;
    if (pool.size < POOLED_MAX) pool.set(value, value);
    return value;
  }) as HostReport;
}
