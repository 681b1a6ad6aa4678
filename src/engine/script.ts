/**
 * Builds the batched scripts the engine sends (one per round trip) and splits their
 * output back into per-probe and per-step pieces. Sections are framed by a marker
 * holding a random nonce, so no probe or command output can forge a boundary.
 */
import { randomBytes } from 'node:crypto';
import { hostname, userInfo } from 'node:os';
import { quote } from '../kit/shell.js';
import { REMOTE_LIB } from '../kit/remote-lib.js';
import { deferReaderCalls, hasPlaceholder, splitDeferred } from '../kit/awk-reader.js';

const ENV = 'export LC_ALL=C PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export function newMark(): string {
  return `__kvmconf_${randomBytes(8).toString('hex')}__`;
}

export interface ProbeSection {
  id: string;
  script: string;
}

export interface SectionOutput {
  output: string;
  status: number;
}

/**
 * One read-only script: each probe's output framed, its exit status recorded. Probes run
 * in the script's own shell, not a subshell each (a fork per probe was half the gather's
 * CPU): they keep to kc_ variables they set before use, never exit, and each starts with
 * globbing on and no positional parameters. Their awk reader calls all run in one awk
 * after the last probe (an awk each was most of the rest).
 */
export function buildGatherScript(sections: ProbeSection[], mark: string): string {
  const deferred = deferReaderCalls(sections.map((section) => section.script));
  const body = sections.map(
    ({ id }, index) =>
      `printf '\\n%s begin %s\\n' "$KC_MARK" '${id}'\n{\n${deferred.scripts[index]}\n} </dev/null\n` +
      `kc_rc=$?; set +f; set --\n` +
      `printf '\\n%s end %s %d\\n' "$KC_MARK" '${id}' "$kc_rc"`,
  );
  return [ENV, `KC_MARK='${mark}'`, deferred.prelude, ...body, deferred.coda, ''].join('\n');
}

/**
 * Splits gather output back into sections; a section without its end line, or whose
 * deferred awk output never came, is missing.
 */
export function splitSections(stdout: string, mark: string): Map<string, SectionOutput> {
  const result = new Map<string, SectionOutput>();
  const pattern = new RegExp(`\\n${mark} begin (\\S+)\\n([\\s\\S]*?)\\n${mark} end \\1 (\\d+)\\n`, 'g');
  for (const match of ('\n' + splitDeferred(stdout, mark)).matchAll(pattern)) {
    if (hasPlaceholder(match[2]!, mark)) continue;
    result.set(match[1]!, { output: match[2]!, status: Number(match[3]) });
  }
  return result;
}

export interface ApplyStep {
  label: string;
  commands: string[];
}

export type StepStatus = 'ok' | 'failed' | 'not-run';

export interface StepOutcome {
  index: number;
  label: string;
  status: StepStatus;
  exitCode?: number;
  output: string;
}

/**
 * One script running every step in order. Each step runs in a `set -e` subshell with
 * stdin closed (the script itself arrives on stdin). The first failed step stops the
 * host. SIGINT/SIGTERM/SIGHUP let the current step finish and then stop.
 */
export function buildApplyScript(steps: ApplyStep[], mark: string, lock: ApplyLock = {}): string {
  const body = steps.map((step, index) =>
    [
      `printf '\\n%s step %d\\n' "$KC_MARK" ${index}`,
      `(\nset -e\n${step.commands.join('\n')}\n) </dev/null 2>&1 9>&-`,
      `kc_rc=$?`,
      `printf '\\n%s done %d %d\\n' "$KC_MARK" ${index} "$kc_rc"`,
      `[ "$kc_rc" = 0 ] || exit 0`,
      `[ "$kc_stop" = 0 ] || { printf '\\n%s interrupted\\n' "$KC_MARK"; exit 0; }`,
    ].join('\n'),
  );
  return [ENV, `KC_MARK='${mark}'`, `kc_stop=0`, `trap 'kc_stop=1' INT TERM HUP`, REMOTE_LIB, applyLock(lock), ...body, ''].join('\n');
}

/** The per-host apply lock (kvmconf_lock_file moves it). */
export const DEFAULT_LOCK = '/run/kvmconf.lock';

/** Seconds an apply waits for another kvmconf run on the same host before it gives up (kvmconf_lock_wait). */
export const LOCK_WAIT_S = 60;

export interface ApplyLock {
  /** kvmconf_lock_file (default DEFAULT_LOCK). */
  file?: string;
  /** kvmconf_lock_wait, seconds (default LOCK_WAIT_S). */
  waitS?: number;
  /**
   * After waiting for the lock, run no step and report `waited`: the engine plans again,
   * since the holder may have changed the host. Without it (a module's steps run on their
   * own, in tests) the steps run once the lock is free.
   */
  planAgainAfterWait?: boolean;
}

/** Who holds the lock, as the other run's error shows it. */
function lockOwner(): string {
  return `${userInfo().username}@${hostname()} (kvmconf pid ${process.pid}, since ${new Date().toISOString()})`;
}

/**
 * One apply at a time per host: an flock on /run/kvmconf.lock (a per-user file in /tmp
 * for an apply without root), held for the whole apply script and freed by the kernel
 * when the script ends however it ends, so no stale lock outlives a dropped connection.
 * Steps run with the lock's descriptor closed: a daemon a step starts cannot hold it.
 * A run that waits past kvmconf_lock_wait gives up naming the holder (`locked`); one that
 * got the lock after waiting runs no step when the engine plans again (`waited`).
 */
function applyLock({ file = DEFAULT_LOCK, waitS = LOCK_WAIT_S, planAgainAfterWait = false }: ApplyLock): string {
  const owner = `"$(head -c 300 "$kc_lock.owner" 2>/dev/null | tr -d '\\n')"`;
  return [
    // Tried in a subshell first: a failed `exec` redirection would end the script.
    `kc_lock=${quote(file)}; ( : >>"$kc_lock" ) 2>/dev/null || kc_lock="\${TMPDIR:-/tmp}/kvmconf-$(id -u).lock"; exec 9>>"$kc_lock"`,
    `if command -v flock >/dev/null 2>&1 && ! flock -n 9; then`,
    `  kc_holder=${owner}`,
    `  flock -w ${Math.max(0, Math.floor(waitS))} 9 || { printf '\\n%s locked %s\\n' "$KC_MARK" ${owner}; exit 0; }`,
    ...(planAgainAfterWait ? [`  printf '\\n%s waited %s\\n' "$KC_MARK" "$kc_holder"; exit 0`] : []),
    `fi`,
    `printf '%s\\n' ${quote(lockOwner())} > "$kc_lock.owner" 2>/dev/null`,
  ].join('\n');
}

/** Reads which steps ran and how, from complete or partial (dropped connection) output. */
export function parseApplyOutput(
  stdout: string,
  mark: string,
  steps: ApplyStep[],
): { outcomes: StepOutcome[]; interrupted: boolean; lockedBy?: string; waitedFor?: string } {
  const outcomes: StepOutcome[] = steps.map((step, index) => ({ index, label: step.label, status: 'not-run', output: '' }));
  const text = '\n' + stdout;
  const pattern = new RegExp(`\\n${mark} step (\\d+)\\n([\\s\\S]*?)(?:\\n${mark} done \\1 (\\d+)\\n|$)`, 'g');
  for (const match of text.matchAll(pattern)) {
    const outcome = outcomes[Number(match[1])];
    if (!outcome) continue;
    outcome.output = match[2]!;
    if (match[3] === undefined) {
      outcome.status = 'failed'; // started, never reported: the connection dropped during it
    } else {
      outcome.exitCode = Number(match[3]);
      outcome.status = outcome.exitCode === 0 ? 'ok' : 'failed';
    }
  }
  const locked = new RegExp(`\\n${mark} locked (.*)\\n`).exec(text);
  const waited = new RegExp(`\\n${mark} waited (.*)\\n`).exec(text);
  return {
    outcomes,
    interrupted: text.includes(`\n${mark} interrupted\n`),
    ...(locked && { lockedBy: locked[1] || 'an unknown run' }),
    ...(waited && { waitedFor: waited[1] || 'an unknown run' }),
  };
}
