/**
 * What a run produced, in the shape every reporter (text, JSON, JUnit) reads.
 * The JSON report is this structure; bump REPORT_VERSION on any incompatible change.
 */
import type { Change, Diagnostic } from '../module.js';
import type { StepOutcome } from './script.js';

export const REPORT_VERSION = 1;

export type Mode = 'check' | 'apply';

/**
 * planned: --check found it; applied: apply made it and verify confirmed it;
 * pending: waits for a reboot, module reload or guest restart; failed / not-run: apply stopped.
 */
export type ChangeStatus = 'planned' | 'applied' | 'pending' | 'failed' | 'not-run';

export interface ChangeResult extends Change {
  status: ChangeStatus;
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

export interface HostReport {
  host: string;
  play: string;
  status: HostStatus;
  tasks: TaskReport[];
  /** Host-level failure: connection, sudo, probe or apply error, or "did not converge". */
  error?: string;
  /** Apply steps as they ran (apply mode only). */
  steps?: StepOutcome[];
  /** Remote commands executed on this host (gather + apply + verify: at most 3). */
  execCount: number;
  durationMs: number;
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
}

export function emptySummary(): Summary {
  return { ok: 0, changed: 0, pending: 0, failed: 0, unreachable: 0, skipped: 0 };
}
