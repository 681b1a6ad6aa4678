/**
 * Saved plans (`apply --check --out FILE`, `apply FILE`): what a check found, per host,
 * with the exact commands apply will run and the fingerprint of the state they were
 * planned from, plus the inputs that produced them. The file is versioned JSON,
 * validated on read; a plan is only usable by the kvmconf version that made it.
 */
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import { compile } from '../config/schema.js';
import { sha256, type Fingerprint } from '../engine/fingerprint.js';
import type { SavedHost } from '../engine/host-run.js';
import type { HostReport, RunReport } from '../engine/results.js';
import { PLAN_SCHEMA } from './plan-schema.js';

export const PLAN_FORMAT = 'kvmconf-plan';
export const PLAN_FORMAT_VERSION = 1;

/** The inventory source standing for --local. */
export const LOCAL_SOURCE = '--local';

export interface PlanInput {
  /**
   * A file or folder as the command line named it (relative to where kvmconf ran, so a plan
   * made in one CI job applies in another checkout), a host list, or `--local`.
   */
  source: string;
  /** Of the file's bytes, a folder's files (path and content), or the host list text. */
  sha256: string;
}

export interface PlanHost extends SavedHost {
  host: string;
  play: string;
  /** The play's position in the playbook (a host can be in several plays). */
  playIndex: number;
}

export interface PlanFile {
  format: typeof PLAN_FORMAT;
  formatVersion: typeof PLAN_FORMAT_VERSION;
  toolVersion: string;
  createdAt: string;
  playbook: PlanInput;
  inventory: PlanInput[];
  limit?: string;
  tags?: string[];
  skipTags?: string[];
  /** -e variables, those whose names suggest a secret left out (listed in extraVarsOmitted). */
  extraVars: Record<string, unknown>;
  extraVarsOmitted: string[];
  hosts: PlanHost[];
}

/** What a plan records about how it was made, besides the hosts. */
export interface PlanInputs {
  toolVersion: string;
  playbook: string;
  /** Inventory sources, or 'local' for --local. */
  inventory: string[] | 'local';
  limit?: string;
  tags?: string[];
  skipTags?: string[];
  extraVars: Record<string, unknown>;
}

/** Variable names that suggest a credential: never written to a plan, which CI keeps as an artifact. */
const SECRET_NAME = /pass(?:w|phrase|_|$)|secret|vault|token|credential/i;

export const isSecretName = (name: string): boolean => SECRET_NAME.test(name);

/** The sha256 of an input: a file's bytes, a folder's files by relative path, or a host list's text. */
export function inputHash(source: string): PlanInput {
  let stat;
  try {
    stat = statSync(source);
  } catch {
    return { source, sha256: sha256(source) };
  }
  if (!stat.isDirectory()) return { source, sha256: sha256(readFileSync(source).toString('latin1')) };
  const files = (readdirSync(source, { recursive: true, encoding: 'utf8' }) as string[]).sort().filter((name) => statSync(join(source, name)).isFile());
  return { source, sha256: sha256(files.map((name) => `${name}\0${readFileSync(join(source, name)).toString('latin1')}`).join('\0')) };
}

function hostEntry(report: HostReport, playIndex: number): PlanHost {
  const tasks = report.tasks.map(({ name, module, tags, changes, diagnostics, error }) => ({ name, module, tags, changes, diagnostics, ...(error === undefined ? {} : { error }) }));
  return {
    host: report.host, play: report.play, playIndex, status: report.status,
    ...(report.error === undefined ? {} : { error: report.error }),
    ...(report.fingerprint ? { fingerprint: report.fingerprint as Fingerprint } : {}),
    tasks,
  };
}

/** A check report (made with fingerprints) and its inputs as a plan file. */
export function buildPlan(report: RunReport, plays: ReadonlyArray<{ name: string }>, inputs: PlanInputs, now = new Date()): PlanFile {
  const indexes = playIndexes(report.hosts, plays);
  const secret = Object.keys(inputs.extraVars).filter(isSecretName);
  return {
    format: PLAN_FORMAT,
    formatVersion: PLAN_FORMAT_VERSION,
    toolVersion: inputs.toolVersion,
    createdAt: now.toISOString(),
    playbook: inputHash(inputs.playbook),
    inventory: inputs.inventory === 'local' ? [{ source: LOCAL_SOURCE, sha256: sha256(LOCAL_SOURCE) }] : inputs.inventory.map(inputHash),
    ...(inputs.limit ? { limit: inputs.limit } : {}),
    ...(inputs.tags?.length ? { tags: inputs.tags } : {}),
    ...(inputs.skipTags?.length ? { skipTags: inputs.skipTags } : {}),
    extraVars: Object.fromEntries(Object.entries(inputs.extraVars).filter(([name]) => !secret.includes(name))),
    extraVarsOmitted: secret,
    hosts: report.hosts.map((host, at) => hostEntry(host, indexes[at]!)),
  };
}

/**
 * The play each report belongs to: reports come play by play, so a play ends where its
 * name no longer matches or a host repeats (plays matching no host have no report).
 */
export function playIndexes(reports: readonly HostReport[], plays: ReadonlyArray<{ name: string }>): number[] {
  let play = 0;
  let seen = new Set<string>();
  return reports.map((report) => {
    while (play < plays.length - 1 && (plays[play]!.name !== report.play || seen.has(report.host))) {
      play++;
      seen = new Set();
    }
    seen.add(report.host);
    return play;
  });
}

export function writePlan(file: string, plan: PlanFile): void {
  try {
    writeFileSync(file, JSON.stringify(plan, null, 2) + '\n');
  } catch (error) {
    throw new InputError(`cannot write the plan ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

/** The parsed JSON when FILE is a kvmconf plan (by its format field, whatever its name), else undefined. */
export function planDocument(file: string): unknown {
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
  return (data as { format?: unknown } | null)?.format === PLAN_FORMAT ? data : undefined;
}

/** Reads and validates a plan file; a damaged or foreign one is an input error naming the field. */
export function readPlan(file: string): PlanFile {
  const data = planDocument(file);
  if (data === undefined) throw new InputError(`${file} is not a kvmconf plan (no "format": "${PLAN_FORMAT}")`);
  return validatePlan(data, file);
}

export function validatePlan(data: unknown, file: string): PlanFile {
  const validate = compile(PLAN_SCHEMA);
  if (!validate(data)) {
    const detail = (validate.errors ?? []).slice(0, 5).map((e) => `${e.instancePath || '(document)'} ${e.message}`).join('; ');
    throw new InputError(`${file} is not a valid kvmconf plan (format version ${PLAN_FORMAT_VERSION}): ${detail}`);
  }
  return data as PlanFile;
}

/** `24h`, `90m`, `2d`, `3600s` or bare seconds. */
export function parseDuration(text: string): number {
  const match = /^(\d+)\s*([smhd]?)$/.exec(text.trim());
  if (!match) throw new InputError(`--plan-max-age ${text}: give a duration such as 30m, 24h or 2d`);
  const unit = { '': 1, s: 1, m: 60, h: 3600, d: 86400 }[match[2] as '' | 's' | 'm' | 'h' | 'd'];
  return Number(match[1]) * unit * 1000;
}

/** `45s`, `12m`, `30h`: an age as a person reads it. */
const roughly = (ms: number): string => (ms < 120_000 ? `${Math.round(ms / 1000)}s` : ms < 7_200_000 ? `${Math.round(ms / 60_000)}m` : `${Math.round(ms / 3_600_000)}h`);

/** Refuses a plan another kvmconf version made (its commands may differ) or one older than maxAgeMs. */
export function checkPlanUsable(plan: PlanFile, file: string, toolVersion: string, maxAgeMs: number, now = Date.now()): void {
  if (plan.toolVersion !== toolVersion) {
    throw new InputError(`${file} was made by kvmconf ${plan.toolVersion}, this is kvmconf ${toolVersion}: a plan only runs with the version that made it`, undefined, 'make a new plan with apply --check --out');
  }
  const age = now - Date.parse(plan.createdAt);
  if (age > maxAgeMs) {
    throw new InputError(`${file} was made ${plan.createdAt}, ${roughly(age)} ago: older than --plan-max-age (${roughly(maxAgeMs)})`, undefined, 'make a new plan with apply --check --out, or raise --plan-max-age');
  }
}

/** Refuses a plan whose playbook or inventory changed since: its hosts and tasks would not be the reviewed ones. */
export function checkPlanInputs(plan: PlanFile): void {
  for (const input of [plan.playbook, ...plan.inventory.filter((entry) => entry.source !== LOCAL_SOURCE)]) {
    if (inputHash(input.source).sha256 !== input.sha256) {
      throw new InputError(
        `${input.source} changed since the plan was made (sha256 differs): the plan's hosts and tasks may not be the ones it lists`,
        undefined,
        `paths are relative to the folder the plan was made in (this is ${process.cwd()}); else make a new plan with apply --check --out`,
      );
    }
  }
}

/** Each host's part of the plan by play index and name, as the runner asks for it. */
export function savedHosts(plan: PlanFile): (playIndex: number, host: string) => SavedHost | null {
  const byKey = new Map(plan.hosts.map((entry) => [`${entry.playIndex}\0${entry.host}`, entry]));
  return (playIndex, host) => byKey.get(`${playIndex}\0${host}`) ?? null;
}
