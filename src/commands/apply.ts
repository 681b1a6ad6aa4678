/** `kvmconf apply [--check]`: the main job. */
import { accessSync, constants, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { loadPlaybook, type Playbook } from '../config/playbook.js';
import { retryFileText, unfinishedHosts } from '../engine/finish-plan.js';
import { runPlaybook, type RunOptions } from '../engine/runner.js';
import { emptySummary, REPORT_VERSION, type RunReport } from '../engine/results.js';
import { formatOfFile, renderReport, type ReportFormat } from '../report/render.js';
import { createProgress, type Progress } from '../report/progress.js';
import { escapeControl, shouldUseColor } from '../report/style.js';
import { InputError, InputErrors, didYouMean } from '../errors.js';
import { extraVars } from '../config/extra-vars.js';
import { listPlan } from './list-plan.js';
import { TOOL_VERSION } from '../version.js';
import { EXIT } from '../engine/exit-code.js';
import { connectionDefaults, fleetChecks, forksOf, inventorySources, loadSources, modules, runSecrets, warn, warnNoHosts, type ConnectionFlags } from './shared.js';
import type { RunSecrets } from './secrets.js';
import type { Inventory } from '../config/inventory.js';
import { LOCAL_SOURCE, buildPlan, checkPlanInputs, checkPlanUsable, parseDuration, planDocument, savedHosts, validatePlan, writePlan, type PlanFile } from '../plan/plan-file.js';

interface ApplyFlags extends ConnectionFlags {
  extraVars?: string[];
  listHosts?: boolean;
  listTasks?: boolean;
  check?: boolean;
  diff?: boolean;
  tags?: string[];
  skipTags?: string[];
  format: ReportFormat;
  report?: string[];
  detailedExitcode?: boolean;
  reboot?: 'never' | 'pending';
  reload?: 'never' | 'pending';
  guests?: 'refuse' | 'shutdown';
  rebootTimeout?: number;
  retryFile?: string;
  color: boolean;
  verbose?: boolean;
  /** With --check: write the plan to this file. */
  out?: string;
  /** Applying a plan file: the oldest plan accepted (`24h`, `90m`...). */
  planMaxAge: string;
}

/** Apply mode: the hosts that did not finish go to the retry file (`--limit @FILE` resumes there). */
function writeRetryFile(report: RunReport, playbookFile: string, flags: ApplyFlags): void {
  if (report.mode !== 'apply') return;
  const hosts = unfinishedHosts(report);
  if (!hosts.length) return;
  const file = flags.retryFile ?? playbookFile.replace(/\.ya?ml$/, '') + '.retry';
  try {
    writeFileSync(file, retryFileText(hosts));
    report.retryFile = file;
    process.stderr.write(`kvmconf: ${hosts.length} host(s) did not finish; resume with --limit @${file}\n`);
  } catch (error) {
    process.stderr.write(`kvmconf: warning: cannot write the retry file ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}\n`);
  }
}

function render(report: RunReport, format: ReportFormat, flags: ApplyFlags): string {
  return renderReport(report, format, { color: flags.color && shouldUseColor(process.stdout), diff: flags.diff ?? false, verbose: flags.verbose ?? false });
}

const reason = (error: unknown): string => (error as NodeJS.ErrnoException).code ?? (error as Error).message;

/** Why FILE could not be written as a report, checked without creating it; undefined when it can. */
function reportPathProblem(file: string): string | undefined {
  try {
    const stat = statSync(file, { throwIfNoEntry: false });
    if (stat?.isDirectory()) return 'EISDIR';
    accessSync(stat ? file : dirname(file), stat ? constants.W_OK : constants.W_OK | constants.X_OK);
    return undefined;
  } catch (error) {
    return reason(error);
  }
}

/** Before any host is contacted: a run that changed hosts must not lose its report to a bad path. */
function checkReportPaths(files: string[]): void {
  for (const file of files) {
    const problem = reportPathProblem(file);
    if (problem) throw new InputError(`--report ${file}: cannot write there: ${problem}`, undefined, 'nothing was done; give a writable path');
  }
}

/**
 * Writes every report, each failure an error naming its path. The run's exit code is
 * kept when it already says the run did not finish cleanly (1 error, 4 interrupted);
 * otherwise a lost report makes it 1, so no script reads success or drift without it.
 */
function writeReports(report: RunReport, files: string[]): number {
  let code = report.exitCode;
  const targets: Array<[string, ReportFormat, 'w' | 'a']> = files.map((file) => [file, formatOfFile(file), 'w']);
  // GitHub Actions' step summary is shared by every step of a job: append to it.
  const summary = process.env.GITHUB_STEP_SUMMARY;
  if (summary) targets.push([summary, 'markdown', 'a']);
  for (const [file, format, flag] of targets) {
    try {
      writeFileSync(file, renderReport(report, format), { flag });
    } catch (error) {
      process.stderr.write(`kvmconf: error: cannot write report ${file}: ${reason(error)} (the run's own exit code is ${report.exitCode})\n`);
      if (code !== EXIT.interrupted) code = EXIT.error;
    }
  }
  return code;
}

/** A run stopped by bad input still leaves its reports, so a CI collector finds why. */
function inputErrorReport(playbookFile: string, flags: ApplyFlags, error: InputError | InputErrors, started: number): RunReport {
  return {
    version: REPORT_VERSION,
    tool: 'kvmconf',
    toolVersion: TOOL_VERSION,
    mode: flags.check ? 'check' : 'apply',
    playbook: playbookFile,
    startedAt: new Date(started).toISOString(),
    durationMs: Date.now() - started,
    interrupted: false,
    hosts: [],
    summary: emptySummary(),
    exitCode: EXIT.error,
    inputError: error.message,
  };
}

/** Tags Ansible gives meaning to without any task carrying them. */
const SPECIAL_TAGS = ['all', 'always', 'never', 'tagged', 'untagged'];

/** A --tags or --skip-tags value no play or task carries is a typo more often than not. */
function warnUnknownTags(playbook: Playbook, flags: ApplyFlags): void {
  const known = new Set([...SPECIAL_TAGS, ...playbook.plays.flatMap((play) => [...play.tags, ...play.tasks.flatMap((task) => task.tags)])]);
  for (const [option, values] of [['--tags', flags.tags], ['--skip-tags', flags.skipTags]] as const) {
    for (const tag of values ?? []) {
      if (known.has(tag)) continue;
      const hint = didYouMean(tag, known);
      warn(`${option} ${tag}: no play or task of ${playbook.file} has this tag${hint ? `; ${hint}` : ''}`);
    }
  }
}

export async function applyCommand(target: string, flags: ApplyFlags): Promise<void> {
  const started = Date.now();
  try {
    await runApply(target, flags);
  } catch (error) {
    if (!(error instanceof InputError || error instanceof InputErrors)) throw error;
    // Bad input still leaves its reports where they can be written, so a CI collector finds why.
    const writable = (flags.report ?? []).filter((file) => reportPathProblem(file) === undefined);
    writeReports(inputErrorReport(target, flags, error, started), writable);
    throw error;
  }
}

async function runApply(target: string, flags: ApplyFlags): Promise<void> {
  const secrets = await runSecrets(flags);
  const plan = planDocument(target);
  if (plan !== undefined) return applyPlan(target, validatePlan(plan, target), flags, secrets);
  if (flags.out && !flags.check) throw new InputError('--out writes a plan, which only --check makes', undefined, 'make the plan with apply --check --out FILE, then apply it with apply FILE');
  const sources = inventorySources(flags);
  const inventory = loadSources(sources);
  const extra = extraVars(flags.extraVars);
  const playbook = loadPlaybook(target, modules);
  warnUnknownTags(playbook, flags);
  if (flags.listHosts || flags.listTasks) {
    const options = { limit: flags.limit, tags: flags.tags, skipTags: flags.skipTags, hosts: flags.listHosts ?? false, tasks: flags.listTasks ?? false };
    process.stdout.write(listPlan(playbook, inventory, options));
    return;
  }
  checkReportPaths(flags.report ?? []);
  const report = await run(playbook, inventory, flags, secrets, { limit: flags.limit, tags: flags.tags, skipTags: flags.skipTags, extraVars: extra, fingerprint: Boolean(flags.out), inventorySources: sourceNames(sources) });
  if (flags.out) {
    const inputs = { toolVersion: TOOL_VERSION, playbook: target, inventory: sources, limit: flags.limit, tags: flags.tags, skipTags: flags.skipTags, extraVars: extra };
    writePlan(flags.out, buildPlan(report, playbook.plays, inputs));
    process.stderr.write(`kvmconf: plan written to ${flags.out}; apply it with: kvmconf apply ${flags.out}\n`);
  }
  writeRetryFile(report, target, flags);
  finishRun(report, flags);
}

/** Options a plan fixes: given again they would make apply run something else than what was reviewed. */
const PLAN_FIXED = ['inventory', 'local', 'limit', 'tags', 'skipTags', 'check', 'out', 'listHosts', 'listTasks'] as const;

/**
 * `apply PLAN`: the plan's playbook, inventory and selection, each host refused when its
 * state no longer matches the plan's fingerprint, the others given exactly the plan's commands.
 */
async function applyPlan(file: string, plan: PlanFile, flags: ApplyFlags, secrets: RunSecrets): Promise<void> {
  const given = PLAN_FIXED.filter((option) => flags[option] !== undefined && flags[option] !== false);
  if (given.length) throw new InputError(`${file} is a plan: it fixes the inventory, limit, tags and mode; do not give ${given.map(optionName).join(', ')}`);
  checkPlanUsable(plan, file, TOOL_VERSION, parseDuration(flags.planMaxAge));
  checkPlanInputs(plan);
  const extra = { ...plan.extraVars, ...extraVars(flags.extraVars) };
  const missing = plan.extraVarsOmitted.filter((name) => !(name in extra));
  if (missing.length) throw new InputError(`${file} left out the secret variables ${missing.join(', ')}: give them again with -e`);
  const listed = plan.inventory.map((input) => input.source);
  const sources = listed[0] === LOCAL_SOURCE ? 'local' : listed;
  const inventory = loadSources(sources);
  const playbook = loadPlaybook(plan.playbook.source, modules);
  checkReportPaths(flags.report ?? []);
  const report = await run(playbook, inventory, flags, secrets, { limit: plan.limit, tags: plan.tags, skipTags: plan.skipTags, extraVars: extra, savedPlan: savedHosts(plan), inventorySources: sourceNames(sources) });
  finishRun(report, flags);
}

const optionName = (option: string): string => '--' + option.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`);

function finishRun(report: RunReport, flags: ApplyFlags): void {
  const code = writeReports(report, flags.report ?? []);
  process.stdout.write(render(report, flags.format, flags));
  process.exitCode = code;
}

/** Which hosts and tasks a run covers, and whether it makes or follows a plan. */
type Selection = Pick<RunOptions, 'limit' | 'tags' | 'skipTags' | 'extraVars' | 'fingerprint' | 'savedPlan' | 'inventorySources'>;

/** The inventory sources as the report records them (`["local"]` for --local). */
const sourceNames = (sources: string[] | 'local'): string[] => (sources === 'local' ? ['local'] : sources);

async function run(playbook: Playbook, inventory: Inventory, flags: ApplyFlags, secrets: RunSecrets, selection: Selection): Promise<RunReport> {
  let progress: Progress | undefined;
  const report = await runPlaybook(playbook, inventory, modules, {
    ...selection,
    mode: flags.check ? 'check' : 'apply',
    commandTimeoutMs: flags.timeout * 1000,
    detailedExitCode: flags.detailedExitcode ?? false,
    finish: {
      ...(flags.reboot ? { reboot: flags.reboot } : {}),
      ...(flags.reload ? { reload: flags.reload } : {}),
      ...(flags.rebootTimeout ? { rebootTimeoutS: flags.rebootTimeout } : {}),
      ...(flags.guests ? { guests: flags.guests } : {}),
    },
    toolVersion: TOOL_VERSION,
    connection: { ...connectionDefaults(flags, secrets), ...(selection.extraVars && { extraVars: selection.extraVars }) },
    ...(secrets.becomePassword && { becomePassword: secrets.becomePassword }),
    forks: forksOf(flags),
    warn,
    fleetChecks,
    events: {
      playStarted: (play, hosts) => {
        progress?.stop();
        if (!hosts.length) warnNoHosts(play);
        progress = createProgress({ stream: process.stderr, interactive: Boolean(process.stderr.isTTY) && !process.env.CI, total: hosts.length });
      },
      hostPhase: (host, phase) => progress?.hostPhase(host, phase),
      hostDone: (host) => progress?.hostDone(host.host, host.status),
      hostNote: (host, text) => process.stderr.write(`${process.stderr.isTTY ? '\r\x1b[2K' : ''}kvmconf: ${host}: ${escapeControl(text)}\n`),
    },
  });
  progress?.stop();
  return report;
}
