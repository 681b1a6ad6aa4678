/** `kvmconf apply [--check]`: the main job. */
import { accessSync, constants, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { loadPlaybook, type Playbook } from '../config/playbook.js';
import { retryFileText, unfinishedHosts } from '../engine/finish-plan.js';
import { runPlaybook } from '../engine/runner.js';
import type { RunReport } from '../engine/results.js';
import { renderText } from '../report/text.js';
import { renderJson } from '../report/json.js';
import { renderJunit } from '../report/junit.js';
import { createProgress, type Progress } from '../report/progress.js';
import { shouldUseColor } from '../report/style.js';
import { InputError, didYouMean } from '../errors.js';
import { extraVars } from '../config/extra-vars.js';
import { listPlan } from './list-plan.js';
import { TOOL_VERSION } from '../version.js';
import { EXIT } from '../engine/exit-code.js';
import { connectionDefaults, fleetChecks, forksOf, inventoryFrom, modules, runSecrets, warn, warnNoHosts, type ConnectionFlags } from './shared.js';

interface ApplyFlags extends ConnectionFlags {
  extraVars?: string[];
  listHosts?: boolean;
  listTasks?: boolean;
  check?: boolean;
  diff?: boolean;
  tags?: string[];
  skipTags?: string[];
  format: 'text' | 'json' | 'junit';
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

function render(report: RunReport, format: ApplyFlags['format'], flags: ApplyFlags): string {
  if (format === 'json') return renderJson(report);
  if (format === 'junit') return renderJunit(report);
  return renderText(report, { color: flags.color && shouldUseColor(process.stdout), diff: flags.diff ?? false });
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
  for (const file of files) {
    try {
      writeFileSync(file, file.endsWith('.xml') ? renderJunit(report) : renderJson(report));
    } catch (error) {
      process.stderr.write(`kvmconf: error: cannot write report ${file}: ${reason(error)} (the run's own exit code is ${report.exitCode})\n`);
      if (code !== EXIT.interrupted) code = EXIT.error;
    }
  }
  return code;
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
  const secrets = await runSecrets(flags);
  const inventory = inventoryFrom(flags);
  const extra = extraVars(flags.extraVars);
  const playbook = loadPlaybook(playbookFile, modules);
  warnUnknownTags(playbook, flags);
  if (flags.listHosts || flags.listTasks) {
    const options = { limit: flags.limit, tags: flags.tags, skipTags: flags.skipTags, hosts: flags.listHosts ?? false, tasks: flags.listTasks ?? false };
    process.stdout.write(listPlan(playbook, inventory, options));
    return;
  }
  checkReportPaths(flags.report ?? []);
  let progress: Progress | undefined;
  const report = await runPlaybook(playbook, inventory, modules, {
    mode: flags.check ? 'check' : 'apply',
    limit: flags.limit,
    extraVars: extra,
    tags: flags.tags,
    skipTags: flags.skipTags,
    forks: forksOf(flags),
    commandTimeoutMs: flags.timeout * 1000,
    connection: { ...connectionDefaults(flags, secrets), extraVars: extra },
    ...(secrets.becomePassword && { becomePassword: secrets.becomePassword }),
    warn,
    detailedExitCode: flags.detailedExitcode ?? false,
    finish: {
      ...(flags.reboot ? { reboot: flags.reboot } : {}),
      ...(flags.reload ? { reload: flags.reload } : {}),
      ...(flags.rebootTimeout ? { rebootTimeoutS: flags.rebootTimeout } : {}),
      ...(flags.guests ? { guests: flags.guests } : {}),
    },
    toolVersion: TOOL_VERSION,
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
  const code = writeReports(report, flags.report ?? []);
  process.stdout.write(render(report, flags.format, flags));
  process.exitCode = code;
}
