/**
 * The fleet loop: for each play, its hosts in `serial` batches; inside a batch at most
 * `forks` hosts at once. A failing or unreachable host never stops the others unless
 * the batch exceeds max_fail_percentage. Ctrl-C stops starting hosts and lets running
 * applies finish their current step.
 */
import pLimit from 'p-limit';
import type { FleetCheck, Module } from '../kit/module.js';
import type { Playbook, Play } from '../config/playbook.js';
import type { Secret } from '../secret.js';
import type { ApplyLock } from './script.js';
import { type Inventory, type ConnectionDefaults, connectionSpec, becomeFor } from '../config/inventory.js';
import { resolvePattern, limitHosts } from '../config/patterns.js';
import { InputError, InputErrors } from '../errors.js';
import type { ConnectionSpec, Transport } from '../transport/types.js';
import { connect } from '../transport/connect.js';
import { prepareTasks, type PreparedCache, type TagFilter } from './prepare.js';
import { runHost, verifyHost, type HostJob, type HostRunOptions, type SavedHost } from './host-run.js';
import { finishHost, wantsFinish } from './finish.js';
import { withOverrides, type FinishOverrides } from './finish-plan.js';
import { runFleetChecks } from './fleet-checks.js';
import { detachedReport, emptySummary, REPORT_VERSION, type StringPool, type HostReport, type Mode, type RunReport, type HostStatus, type RunSettings } from './results.js';
import { exitCode } from './exit-code.js';

export interface RunOptions extends PlanOptions {
  mode: Mode;
  forks: number;
  commandTimeoutMs: number;
  connection: ConnectionDefaults;
  /** Each distinct warning about connection settings, once, before any host is contacted. */
  warn?: (message: string) => void;
  detailedExitCode: boolean;
  toolVersion: string;
  /** Command-line overrides of the plays' reboot, reload, reboot_timeout and guests options. */
  finish?: FinishOverrides;
  /** Check mode: record each host's fingerprint, for a saved plan. */
  fingerprint?: boolean;
  /** Apply of a saved plan: each host's part of it by play index (null: not in the plan). */
  savedPlan?: (playIndex: number, host: string) => SavedHost | null;
  /** Inventory sources as given, recorded in the report (`["local"]` for --local). */
  inventorySources?: string[];
  /** Replaces the real transport (tests count execs through it). */
  connectTransport?: (spec: ConnectionSpec) => Promise<Transport>;
  events?: RunEvents;
}

export interface RunEvents {
  playStarted?(play: Play, hosts: string[]): void;
  hostPhase?(host: string, phase: 'connect' | 'gather' | 'apply' | 'verify' | 'finish'): void;
  hostDone?(report: HostReport): void;
  /** What a host does while it is finished (guest shutdown, reboot, back): one line for the operator. */
  hostNote?(host: string, text: string): void;
}

/** Splits hosts into batches as Ansible's serial does: numbers or percentages, the last size repeating. */
export function batches(hosts: string[], serial: Array<number | string>): string[][] {
  if (!serial.length) return hosts.length ? [hosts] : [];
  const sizes = serial.map((size) => (typeof size === 'number' ? size : Math.max(1, Math.floor((hosts.length * parseInt(size, 10)) / 100))));
  const result: string[][] = [];
  for (let start = 0, i = 0; start < hosts.length; i++) {
    const size = sizes[Math.min(i, sizes.length - 1)]!;
    result.push(hosts.slice(start, start + size));
    start += size;
  }
  return result;
}

/** kvmconf_lock_file and kvmconf_lock_wait (schema-checked where written). */
function applyLockOf(vars: Record<string, unknown>): ApplyLock {
  const file = vars.kvmconf_lock_file;
  const wait = Number(vars.kvmconf_lock_wait);
  return { ...(typeof file === 'string' && { file }), ...(vars.kvmconf_lock_wait !== undefined && Number.isInteger(wait) && wait >= 0 && { waitS: wait }) };
}

/** Hosts of a play after --limit, minus hosts that already failed in an earlier play. */
export function playHosts(play: Play, inventory: Inventory, limit: string | undefined, failed: Set<string>): string[] {
  const hosts = resolvePattern(play.hosts, inventory, { allowEmpty: true });
  return limitHosts(hosts, limit, inventory).filter((host) => !failed.has(host));
}

/** Builds every host's job before any connection, so input errors surface before changes. */
export function planJobs(play: Play, hosts: string[], inventory: Inventory, modules: Map<string, Module>, filter: TagFilter & { extraVars?: Record<string, unknown>; becomePassword?: Secret }): Map<string, HostJob> {
  const errors: InputError[] = [];
  const jobs = new Map<string, HostJob>();
  const cache: PreparedCache = new Map();
  for (const name of hosts) {
    const host = inventory.hosts.get(name)!;
    try {
      // Ansible's precedence for the sources kvmconf has: inventory < play vars < extra vars.
      const vars: Record<string, unknown> = { ...host.vars, ...play.vars, ...filter.extraVars, inventory_hostname: name };
      const tasks = prepareTasks(play, modules, vars, name, filter, cache);
      jobs.set(name, { host: name, play: play.name, become: becomeFor(name, vars, play, filter.becomePassword), tasks, lock: applyLockOf(vars) });
    } catch (error) {
      if (!(error instanceof InputError)) throw error;
      errors.push(error);
    }
  }
  if (errors.length) throw errors.length === 1 ? errors[0]! : new InputErrors(errors);
  return jobs;
}

export interface PlannedPlay {
  play: Play;
  jobs: Map<string, HostJob>;
}

export interface PlanOptions extends TagFilter {
  limit?: string;
  /** `-e` variables, over play and inventory vars. */
  extraVars?: Record<string, unknown>;
  /** --ask-become-pass: sudo's password for hosts whose variables give none. */
  becomePassword?: Secret;
  /** Checks spanning hosts, run once every host's tasks are prepared. */
  fleetChecks?: readonly FleetCheck[];
}

/**
 * How to reach every targeted host, resolved before any host is contacted: a bad
 * value is an input error for the whole run, not an abort in the middle of a fleet.
 */
export function resolveConnections(hosts: Iterable<string>, inventory: Inventory, defaults: ConnectionDefaults, warn?: (message: string) => void): Map<string, ConnectionSpec> {
  const specs = new Map<string, ConnectionSpec>();
  const errors: InputError[] = [];
  const warnings: string[] = [];
  for (const name of hosts) {
    try {
      specs.set(name, connectionSpec(inventory.hosts.get(name)!, defaults, warnings));
    } catch (error) {
      if (!(error instanceof InputError)) throw error;
      errors.push(error);
    }
  }
  if (errors.length) throw errors.length === 1 ? errors[0]! : new InputErrors(errors);
  for (const message of new Set(warnings)) warn?.(message);
  return specs;
}

/** Every play's jobs and the checks across hosts: all input errors surface before any connection. */
export function planPlaybook(playbook: Playbook, inventory: Inventory, modules: Map<string, Module>, options: PlanOptions): PlannedPlay[] {
  const plays = playbook.plays.map((play) => ({ play, jobs: planJobs(play, playHosts(play, inventory, options.limit, new Set()), inventory, modules, options) }));
  runFleetChecks(plays.flatMap(({ jobs }) => [...jobs.values()]), inventory, options.fleetChecks ?? []);
  return plays;
}

/** Every host any play targets, in first-seen order. */
export const plannedHosts = (plays: PlannedPlay[]): Set<string> => new Set(plays.flatMap(({ jobs }) => [...jobs.keys()]));

export async function runPlaybook(playbook: Playbook, inventory: Inventory, modules: Map<string, Module>, options: RunOptions): Promise<RunReport> {
  const started = Date.now();
  const reports: HostReport[] = [];
  const reportStrings: StringPool = new Map();
  const failedHosts = new Set<string>();
  const running = new Set<Transport>();
  let stopping = false;
  const onSignal = (): void => {
    if (stopping) process.exit(130); // a second Ctrl-C stops at once
    stopping = true;
    process.stderr.write('\nkvmconf: stopping: no new hosts start and no new reboot; running applies finish their current step, rebooting hosts are awaited and verified (Ctrl-C again to abort)\n');
    for (const transport of running) transport.interrupt();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const plays = planPlaybook(playbook, inventory, modules, options);
    const specs = resolveConnections(plannedHosts(plays), inventory, options.connection, options.warn);
    for (const [playIndex, { play, jobs }] of plays.entries()) {
      const hosts = [...jobs.keys()].filter((host) => !failedHosts.has(host));
      options.events?.playStarted?.(play, hosts);
      let aborted = false;
      for (const batch of batches(hosts, play.serial)) {
        if (stopping || aborted) {
          reports.push(...batch.map((host) => skipped(host, play.name, stopping ? 'interrupted before this host started' : `not started: max_fail_percentage ${play.maxFailPercentage}% exceeded`)));
          continue;
        }
        const limit = pLimit(options.forks);
        const finish = withOverrides(play.finish, options.finish);
        const batchReports = await Promise.all(
          batch.map((host) =>
            limit(async () => {
              if (stopping) return skipped(host, play.name, 'interrupted before this host started');
              const spec = specs.get(host)!;
              let current: Transport | undefined;
              const hostOptions: HostRunOptions = {
                mode: options.mode,
                commandTimeoutMs: options.commandTimeoutMs,
                connect: () => (options.connectTransport ?? connect)(spec),
                onPhase: (phase) => options.events?.hostPhase?.(host, phase),
                ...(options.fingerprint ? { fingerprint: true } : {}),
                ...(options.savedPlan ? { saved: options.savedPlan(playIndex, host) } : {}),
                stopping: () => stopping,
                onTransport: (transport) => {
                  if (current) running.delete(current);
                  current = transport;
                  if (transport) running.add(transport);
                },
              };
              const job = jobs.get(host)!;
              const report = await runHost(job, hostOptions);
              if (wantsFinish(report, finish)) {
                options.events?.hostPhase?.(host, 'finish');
                await finishHost(job, report, {
                  policy: finish,
                  mode: options.mode,
                  commandTimeoutMs: options.commandTimeoutMs,
                  connect: hostOptions.connect,
                  stopping: () => stopping,
                  // After a reload a fresh plan may apply more; a saved plan's host is only verified against it.
                  runPass: () => (hostOptions.saved !== undefined ? verifyHost(job, hostOptions) : runHost(job, { ...hostOptions, saved: undefined })),
                  fixedPlan: hostOptions.saved !== undefined || Boolean(options.fingerprint),
                  note: (text) => options.events?.hostNote?.(host, text),
                });
              }
              options.events?.hostDone?.(report);
              return detachedReport(report, reportStrings);
            }),
          ),
        );
        reports.push(...batchReports);
        const failures = batchReports.filter((r) => r.status === 'failed' || r.status === 'unreachable');
        failures.forEach((r) => failedHosts.add(r.host));
        // Check mode is never cut short: every host's drift is reported.
        if (options.mode === 'apply' && batch.length && (failures.length * 100) / batch.length > play.maxFailPercentage) aborted = true;
      }
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  const summary = emptySummary();
  for (const report of reports) {
    summary[report.status]++;
    report.groups = directGroups(inventory, report.host);
  }
  const report: RunReport = {
    version: REPORT_VERSION,
    tool: 'kvmconf',
    toolVersion: options.toolVersion,
    mode: options.mode,
    playbook: playbook.file,
    startedAt: new Date(started).toISOString(),
    durationMs: Date.now() - started,
    interrupted: stopping,
    hosts: reports,
    summary,
    exitCode: 0,
    run: runSettings(playbook, options),
  };
  report.exitCode = exitCode(report, options.detailedExitCode);
  return report;
}

/** The groups a host is listed in itself (not its parents): what an operator named it by. */
function directGroups(inventory: Inventory, host: string): string[] {
  const groups = inventory.hosts.get(host)?.groups ?? [];
  return groups.filter((group) => group !== 'all' && group !== 'ungrouped' && inventory.groups.get(group)?.directHosts.includes(host));
}

function runSettings(playbook: Playbook, options: RunOptions): RunSettings {
  return {
    inventory: options.inventorySources ?? [],
    ...(options.limit ? { limit: options.limit } : {}),
    tags: options.tags ?? [],
    skipTags: options.skipTags ?? [],
    forks: options.forks,
    plays: playbook.plays.map((play) => {
      const finish = withOverrides(play.finish, options.finish);
      return {
        name: play.name,
        hosts: play.hosts,
        serial: play.serial,
        maxFailPercentage: play.maxFailPercentage,
        reboot: finish.reboot,
        reload: finish.reload,
        guests: finish.guests.policy,
        rebootTimeoutS: finish.rebootTimeoutS,
      };
    }),
  };
}

function skipped(host: string, play: string, error: string): HostReport {
  return { host, play, status: 'skipped' as HostStatus, tasks: [], error, execCount: 0, durationMs: 0 };
}
