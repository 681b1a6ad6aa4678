/** `kvmconf apply [--check]`: the main job. */
import { writeFileSync } from 'node:fs';
import { loadPlaybook, type Playbook } from '../config/playbook.js';
import { retryFileText, unfinishedHosts } from '../engine/finish-plan.js';
import { runPlaybook } from '../engine/runner.js';
import { emptySummary, REPORT_VERSION, type RunReport } from '../engine/results.js';
import { EXIT } from '../engine/exit-code.js';
import { formatOfFile, renderReport, type ReportFormat } from '../report/render.js';
import { createProgress, type Progress } from '../report/progress.js';
import { shouldUseColor } from '../report/style.js';
import { InputError, InputErrors, didYouMean } from '../errors.js';
import { extraVars } from '../config/extra-vars.js';
import { listPlan } from './list-plan.js';
import { TOOL_VERSION } from '../version.js';
import { connectionDefaults, fleetChecks, forksOf, inventoryFrom, modules, warn, warnNoHosts, type ConnectionFlags } from './shared.js';

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
  return renderReport(report, format, { color: flags.color && shouldUseColor(process.stdout), diff: flags.diff ?? false });
}

/** Every --report FILE in the format its extension names, and the Markdown summary for GitHub Actions. */
function writeReports(report: RunReport, files: string[]): void {
  const summary = process.env.GITHUB_STEP_SUMMARY;
  const targets: Array<[string, ReportFormat, 'w' | 'a']> = [...files.map((file): [string, ReportFormat, 'w'] => [file, formatOfFile(file), 'w'])];
  // The step summary file is shared by every step of a job: append.
  if (summary) targets.push([summary, 'markdown', 'a']);
  for (const [file, format, flag] of targets) {
    try {
      writeFileSync(file, renderReport(report, format), { flag });
    } catch (error) {
      throw new InputError(`cannot write report ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
  }
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

export async function applyCommand(playbookFile: string, flags: ApplyFlags): Promise<void> {
  const started = Date.now();
  try {
    await runApply(playbookFile, flags);
  } catch (error) {
    if (error instanceof InputError || error instanceof InputErrors) writeReports(inputErrorReport(playbookFile, flags, error, started), flags.report ?? []);
    throw error;
  }
}

async function runApply(playbookFile: string, flags: ApplyFlags): Promise<void> {
  const inventory = inventoryFrom(flags);
  const extra = extraVars(flags.extraVars);
  const playbook = loadPlaybook(playbookFile, modules);
  warnUnknownTags(playbook, flags);
  if (flags.listHosts || flags.listTasks) {
    const options = { limit: flags.limit, tags: flags.tags, skipTags: flags.skipTags, hosts: flags.listHosts ?? false, tasks: flags.listTasks ?? false };
    process.stdout.write(listPlan(playbook, inventory, options));
    return;
  }
  let progress: Progress | undefined;
  const report = await runPlaybook(playbook, inventory, modules, {
    mode: flags.check ? 'check' : 'apply',
    limit: flags.limit,
    extraVars: extra,
    tags: flags.tags,
    skipTags: flags.skipTags,
    forks: forksOf(flags),
    commandTimeoutMs: flags.timeout * 1000,
    connection: connectionDefaults(flags),
    warn,
    detailedExitCode: flags.detailedExitcode ?? false,
    finish: {
      ...(flags.reboot ? { reboot: flags.reboot } : {}),
      ...(flags.reload ? { reload: flags.reload } : {}),
      ...(flags.rebootTimeout ? { rebootTimeoutS: flags.rebootTimeout } : {}),
      ...(flags.guests ? { guests: flags.guests } : {}),
    },
    toolVersion: TOOL_VERSION,
    inventorySources: flags.local ? ['local'] : (flags.inventory ?? []),
    fleetChecks,
    events: {
      playStarted: (play, hosts) => {
        progress?.stop();
        if (!hosts.length) warnNoHosts(play);
        progress = createProgress({ stream: process.stderr, interactive: Boolean(process.stderr.isTTY) && !process.env.CI, total: hosts.length });
      },
      hostPhase: (host, phase) => progress?.hostPhase(host, phase),
      hostDone: (host) => progress?.hostDone(host.host, host.status),
      hostNote: (host, text) => process.stderr.write(`${process.stderr.isTTY ? '\r\x1b[2K' : ''}kvmconf: ${host}: ${text}\n`),
    },
  });
  progress?.stop();
  writeRetryFile(report, playbookFile, flags);
  writeReports(report, flags.report ?? []);
  process.stdout.write(render(report, flags.format, flags));
  process.exitCode = report.exitCode;
}
