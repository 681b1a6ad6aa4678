/**
 * Finishing a host whose changes wait for a reboot or a module reload, when the play
 * allows it: the guests policy first (refuse, shutdown, or the user's hook), then the
 * reboot (scheduled so the SSH command returns, the host awaited with the same host
 * key and a new boot_id, then a full gather that must find nothing to change and
 * nothing pending) or the reload pass, then the stopped domains started again in their
 * previous order. In check mode only the decision is made. Everything that happens
 * lands in the host report's `finish`; nothing here throws to the runner.
 */
import type { FinishPolicy } from '../config/playbook.js';
import type { Transport } from '../transport/types.js';
import { TransportError } from '../transport/types.js';
import { execScript, HostFailure } from './become.js';
import { gatherAndPlan, hostSummary, remainingDrift, setHostSummary, type HostJob } from './host-run.js';
import type { ChangeResult, FinishReport, HostReport, Mode } from './results.js';
import { newMark } from './script.js';
import {
  BOOTED_COMMAND, FIXED_PLAN_HOLDS_NO_RELOAD, REBOOT_SCRIPT, changeName, chooseAction, decideGuests, hookScript, inspectScript, parseInspection,
  parseShutdown, parseStart, pendingOf, shutdownScript, startScript, tokensMadeTrue, type FinishAction,
} from './finish-plan.js';

export interface FinishContext {
  policy: FinishPolicy;
  mode: Mode;
  commandTimeoutMs: number;
  connect: () => Promise<Transport>;
  /** True once the user asked to stop: no guest shutdown and no reboot starts after that. */
  stopping: () => boolean;
  /**
   * The pass run once the guests are stopped (reload): gather, plan, apply and verify; for
   * a saved plan, gather and compare only (verifyHost), so nothing outside the plan runs.
   */
  runPass: () => Promise<HostReport>;
  /** A saved plan (applied, or being made by check --out): it runs no reload a fresh plan would make. */
  fixedPlan: boolean;
  /** A line for the operator (stderr): what the host is doing now. */
  note?: (text: string) => void;
}

/** True when the host has pending work the play allows kvmconf to finish. */
export function wantsFinish(report: HostReport, policy: FinishPolicy): boolean {
  return (report.status === 'changed' || report.status === 'pending') && chooseAction(pendingOf(report), policy) !== undefined;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The transports one finish opens, so their commands are counted and all are closed. */
class Session {
  private readonly open = new Set<Transport>();
  execCount = 0;
  constructor(private readonly job: HostJob, private readonly ctx: FinishContext) {}

  async connect(): Promise<Transport> {
    const transport = await this.ctx.connect();
    this.open.add(transport);
    return transport;
  }

  async close(transport: Transport | undefined): Promise<void> {
    if (!transport || !this.open.delete(transport)) return;
    this.execCount += transport.execCount;
    await transport.close().catch(() => undefined);
  }

  async closeAll(): Promise<void> {
    for (const transport of [...this.open]) await this.close(transport);
  }

  /** Runs a script with the play's become; the output after the marker, and the script's exit status. */
  async run(transport: Transport, script: string, timeoutMs = this.ctx.commandTimeoutMs): Promise<string> {
    const mark = newMark();
    const result = await execScript(transport, this.job.become, `printf '%s\\n' '${mark}'\n${script}\n`, mark, timeoutMs);
    return result.stdout.slice(result.stdout.indexOf(mark) + mark.length + 1);
  }
}

export async function finishHost(job: HostJob, report: HostReport, ctx: FinishContext): Promise<void> {
  const choice = chooseAction(pendingOf(report), ctx.policy);
  if (!choice) return;
  const finish: FinishReport = { action: choice.action, status: 'planned', guests: ctx.policy.guests.policy, finishes: choice.finishes.map(changeName) };
  report.finish = finish;
  // Held before any guest is touched: stopping them would gain nothing (a guests command
  // may reload the module itself, so with one the host is verified after it as usual).
  if (choice.action === 'reload' && ctx.fixedPlan && ctx.policy.guests.policy !== 'command') {
    hold(finish, FIXED_PLAN_HOLDS_NO_RELOAD, []);
    return;
  }
  const started = Date.now();
  const session = new Session(job, ctx);
  try {
    const transport = await session.connect();
    const ready = await prepareGuests(session, transport, job, ctx, finish);
    if (ready && ctx.mode === 'apply') {
      if (choice.action === 'reboot') await reboot(session, transport, job, ctx, finish, choice.finishes, report);
      else await reload(session, transport, ctx, finish, choice.finishes, report);
      if (finish.status === 'done') markFinished(report, choice.finishes);
    }
  } catch (error) {
    finish.status = 'failed';
    finish.reason = error instanceof TransportError || error instanceof HostFailure ? error.message.replace(`${job.host}: `, '') : `internal error: ${(error as Error).stack}`;
  } finally {
    await session.closeAll();
    report.execCount += session.execCount;
    report.durationMs += Date.now() - started;
  }
  if (finish.status === 'failed') {
    report.status = 'failed';
    report.error = `${finish.action}: ${finish.reason}`;
  }
}

/** The pending changes the finish made true are reported applied (scope stays pending); the host changed. */
function markFinished(report: HostReport, finished: readonly ChangeResult[]): void {
  const names = new Set(finished.map(changeName));
  for (const task of report.tasks) {
    task.changes = task.changes.map((change) => (change.status === 'pending' && names.has(changeName(change)) ? { ...change, status: 'applied' } : change));
  }
  report.status = 'changed';
}

/**
 * Applies the guests policy; true when the action may go on. Check mode stops after the
 * decision, with `planned` or `held` as apply would end.
 */
async function prepareGuests(session: Session, transport: Transport, job: HostJob, ctx: FinishContext, finish: FinishReport): Promise<boolean> {
  const seen = parseInspection(await session.run(transport, inspectScript(ctx.policy.guests.uri)));
  finish.bootIdBefore = seen.bootId;
  if (seen.virshError && ctx.policy.guests.policy !== 'command') return hold(finish, `cannot list the running domains (virsh: ${seen.virshError}); nothing is assumed`, []);
  const decision = decideGuests(ctx.policy.guests, seen.running, finish.action);
  if (decision.kind === 'hold') return hold(finish, decision.reason, decision.heldBy);
  if (ctx.mode === 'check') {
    finish.reason = checkReason(decision.kind, seen.running, finish.action);
    return false;
  }
  if (ctx.stopping()) return interrupted(finish);
  if (decision.kind === 'stop') return stopGuests(session, transport, ctx, finish, decision.domains);
  if (decision.kind === 'hook') return runHook(session, transport, job, ctx, finish, seen.running);
  return true;
}

function checkReason(kind: 'go' | 'stop' | 'hook', running: readonly string[], action: FinishAction): string {
  if (kind === 'stop') return `apply would shut down ${running.join(', ')}, ${action}, and start them again`;
  if (kind === 'hook') return `apply would run the guests command, then ${action} if it exits 0 and no domain runs`;
  return `apply would ${action} (no running domains)`;
}

function hold(finish: FinishReport, reason: string, heldBy: string[]): false {
  finish.status = 'held';
  finish.reason = reason;
  if (heldBy.length) finish.heldBy = heldBy;
  return false;
}

function interrupted(finish: FinishReport): false {
  finish.status = 'interrupted';
  finish.reason = `interrupted before the ${finish.action}; the host still waits for it`;
  return false;
}

async function stopGuests(session: Session, transport: Transport, ctx: FinishContext, finish: FinishReport, domains: string[]): Promise<boolean> {
  ctx.note?.(`shutting down ${domains.join(', ')}`);
  const guests = ctx.policy.guests;
  const result = parseShutdown(await session.run(transport, shutdownScript(guests, domains), ctx.commandTimeoutMs + guests.timeoutS * 1000));
  finish.guestsStopped = result.stopped;
  if (!result.running.length && !ctx.stopping()) return true;
  // Stopping half of them helps nobody: the ones that did stop run again.
  await startGuests(session, transport, ctx, finish, result.stopped.map((guest) => guest.name));
  if (result.running.length) {
    return hold(finish, `domains did not shut down within ${guests.timeoutS} s: ${result.running.join(', ')} (set guests.force: true to destroy them after the timeout); the others were started again`, result.running);
  }
  return interrupted(finish);
}

async function runHook(session: Session, transport: Transport, job: HostJob, ctx: FinishContext, finish: FinishReport, running: string[]): Promise<boolean> {
  ctx.note?.('running the guests command');
  const guests = ctx.policy.guests;
  const output = await session.run(transport, `${hookScript(guests.command!, job.host, finish.action, running)}\necho "kc-hook-exit $?"`, guests.timeoutS * 1000);
  const match = /\nkc-hook-exit (\d+)\n?$/.exec(`\n${output}`);
  const exitCode = match ? Number(match[1]) : null;
  const text = match ? `\n${output}`.slice(0, match.index).slice(1) : output;
  finish.hook = { exitCode, output: text };
  if (exitCode !== 0) return hold(finish, `the guests command exited ${exitCode ?? 'without a status'}: ${lastLine(text)}`, []);
  const after = parseInspection(await session.run(transport, inspectScript(guests.uri)));
  if (after.running.length) return hold(finish, `the guests command exited 0 but domains still run: ${after.running.join(', ')}`, after.running);
  return true;
}

async function startGuests(session: Session, transport: Transport, ctx: FinishContext, finish: FinishReport, domains: string[]): Promise<string[]> {
  if (!domains.length) return [];
  ctx.note?.(`starting ${domains.join(', ')}`);
  const result = parseStart(await session.run(transport, startScript(ctx.policy.guests.uri, domains)));
  finish.guestsStarted = result.started;
  return result.failed;
}

async function reboot(session: Session, transport: Transport, job: HostJob, ctx: FinishContext, finish: FinishReport, finishes: ChangeResult[], report: HostReport): Promise<void> {
  const hostKey = transport.hostKey;
  // A connection the going-down host cuts before the answer arrives is no failure: the new boot_id decides.
  const scheduled = await session.run(transport, REBOOT_SCRIPT).catch((error: unknown) => {
    if (error instanceof TransportError && error.kind === 'dropped') return 'scheduled';
    throw error;
  });
  if (!/^scheduled$/m.test(scheduled)) throw new HostFailure(`the reboot could not be scheduled: ${lastLine(scheduled)}`);
  const issued = Date.now();
  ctx.note?.(`rebooting (boot_id ${finish.bootIdBefore})`);
  await session.close(transport);
  const back = await waitForBoot(session, ctx, finish.bootIdBefore!, hostKey, issued + ctx.policy.rebootTimeoutS * 1000);
  finish.bootIdAfter = back.bootId;
  ctx.note?.(`back after ${((Date.now() - issued) / 1000).toFixed(1)} s (boot_id ${back.bootId}); verifying`);
  const verified = await gatherAndPlan(back.transport, job, ctx.commandTimeoutMs);
  // Pools the kernel command line allocates exist only now.
  setHostSummary(report, hostSummary(verified));
  const left = remainingDrift(verified);
  if (left.length) throw new HostFailure(`came back with drift: ${left.join('; ')}`);
  finish.cmdline = tokensMadeTrue(finishes, back.cmdline);
  finish.durationMs = Date.now() - issued;
  const failed = await startGuests(session, back.transport, ctx, finish, (finish.guestsStopped ?? []).map((guest) => guest.name));
  if (failed.length) throw new HostFailure(`the host is back and verified, but these domains did not start again: ${failed.join(', ')}`);
  finish.status = 'done';
}

/**
 * Reconnects until the host answers from a new boot: the same host key as before the
 * reboot (and known_hosts checked as always), a boot_id that differs.
 */
async function waitForBoot(session: Session, ctx: FinishContext, before: string, hostKey: string | undefined, deadline: number): Promise<{ transport: Transport; bootId: string; cmdline: string }> {
  let last = 'no answer yet';
  for (;;) {
    const remaining = deadline - Date.now();
    if (remaining <= 0) throw new HostFailure(`did not come back within ${ctx.policy.rebootTimeoutS} s (reboot_timeout); last: ${last}`);
    await sleep(Math.min(2000, remaining));
    let transport: Transport | undefined;
    try {
      transport = await session.connect();
      if (hostKey && transport.hostKey && transport.hostKey !== hostKey) throw new HostFailure(`came back with another host key (${transport.hostKey}, was ${hostKey}); refusing to go on`);
      const result = await transport.exec(BOOTED_COMMAND, { timeoutMs: 30_000 });
      const [bootId = '', cmdline = ''] = result.stdout.split('\n');
      if (result.code === 0 && bootId.trim() && bootId.trim() !== before) return { transport, bootId: bootId.trim(), cmdline };
      last = result.code === 0 ? 'the host still runs the old boot' : `reading boot_id failed: ${lastLine(result.stderr)}`;
    } catch (error) {
      if (error instanceof HostFailure) throw error;
      if (error instanceof TransportError && (error.kind === 'host-key-changed' || error.kind === 'host-key-unknown')) throw error;
      last = (error as Error).message;
    }
    await session.close(transport);
  }
}

async function reload(session: Session, transport: Transport, ctx: FinishContext, finish: FinishReport, finishes: ChangeResult[], report: HostReport): Promise<void> {
  const stopped = (finish.guestsStopped ?? []).map((guest) => guest.name);
  const started = Date.now();
  ctx.note?.('reloading modules');
  const pass = await ctx.runPass();
  report.execCount += pass.execCount;
  setHostSummary(report, pass);
  finish.durationMs = Date.now() - started;
  const modules = new Set(finishes.map((change) => change.module));
  finish.reloaded = [...new Set(pass.tasks.flatMap((task) => task.changes).filter((c) => modules.has(c.module) && c.scope === 'runtime' && c.status === 'applied').map((c) => c.module))];
  const still = pass.tasks.flatMap((task) => task.changes).filter((c) => c.status === 'pending' && c.pendingOn === 'module-reload');
  const failed = await startGuests(session, transport, ctx, finish, stopped);
  if (pass.status === 'failed' || pass.status === 'unreachable') throw new HostFailure(`the reload pass failed: ${pass.error ?? 'see the steps'}`);
  if (still.length) throw new HostFailure(`still waits for a module reload with the guests stopped: ${still.map((c) => c.reason ?? changeName(c)).join('; ')}`);
  if (failed.length) throw new HostFailure(`reloaded, but these domains did not start again: ${failed.join(', ')}`);
  finish.status = 'done';
}

function lastLine(text: string): string {
  return text.trim().split('\n').filter(Boolean).pop() ?? 'no output';
}
