/**
 * Finishing pending work, the pure part: which hosts reboot or reload, what the guests
 * policy decides for the domains that run there, which /proc/cmdline tokens a reboot
 * made true, which hosts a retry file lists, and the remote scripts (built, never run here).
 */
import type { FinishPolicy, GuestsPolicy } from '../config/playbook.js';
import { quote } from '../kit/shell.js';
import { tokenizeCmdline } from '../../modules/lib/grub.js';
import type { ChangeResult, HostReport, RunReport } from './results.js';

export type FinishAction = 'reboot' | 'reload';

/** Command-line overrides of a play's reboot, reload, reboot_timeout and guests policy. */
export interface FinishOverrides {
  reboot?: FinishPolicy['reboot'];
  reload?: FinishPolicy['reload'];
  rebootTimeoutS?: number;
  guests?: 'refuse' | 'shutdown';
}

/** The play's finishing options with the command line's on top (the guests policy keeps its timeout and force). */
export function withOverrides(policy: FinishPolicy, overrides: FinishOverrides = {}): FinishPolicy {
  return {
    reboot: overrides.reboot ?? policy.reboot,
    reload: overrides.reload ?? policy.reload,
    rebootTimeoutS: overrides.rebootTimeoutS ?? policy.rebootTimeoutS,
    guests: overrides.guests ? { ...policy.guests, policy: overrides.guests } : policy.guests,
  };
}

/** The pending changes of a host report: waiting for a reboot, module reload or guest restart. */
export function pendingOf(report: HostReport): ChangeResult[] {
  return report.tasks.flatMap((task) => task.changes).filter((change) => change.scope === 'pending' && change.status === 'pending');
}

export const changeName = (change: ChangeResult): string => `${change.module} ${change.target}`;

/**
 * What the play allows for this host's pending changes: a reboot when one waits for a
 * reboot (it also finishes module reloads and, with guests stopped, guest restarts),
 * else a module reload; undefined when nothing may be done.
 */
export function chooseAction(pending: readonly ChangeResult[], policy: FinishPolicy): { action: FinishAction; finishes: ChangeResult[] } | undefined {
  if (policy.reboot === 'pending' && pending.some((change) => change.pendingOn === 'reboot')) return { action: 'reboot', finishes: [...pending] };
  const reloads = pending.filter((change) => change.pendingOn === 'module-reload');
  if (policy.reload === 'pending' && reloads.length) return { action: 'reload', finishes: reloads };
  return undefined;
}

/**
 * Why a saved plan does not finish a module reload by stopping guests: the reload commands
 * are planned only once the guests are stopped (a module in use is not reloaded), and a
 * saved plan runs nothing it does not hold. A reboot it can finish: after one, the host is
 * only verified; so it is after a guests command, which may reload the module itself.
 */
export const FIXED_PLAN_HOLDS_NO_RELOAD =
  'a saved plan holds no module reload (it is planned only once the guests are stopped, and a saved plan runs nothing more): apply the playbook itself to reload, let a reboot finish it (reboot: pending), or give a guests command that reloads the module'

export type GuestsDecision =
  | { kind: 'go' }
  | { kind: 'hold'; reason: string; heldBy: string[] }
  | { kind: 'stop'; domains: string[] }
  | { kind: 'hook' };

/** What happens to the running domains before the action. The hook always runs: it may drain more than guests. */
export function decideGuests(policy: GuestsPolicy, running: readonly string[], action: FinishAction): GuestsDecision {
  if (policy.policy === 'command') return { kind: 'hook' };
  if (!running.length) return { kind: 'go' };
  if (policy.policy === 'shutdown') return { kind: 'stop', domains: [...running] };
  return {
    kind: 'hold',
    heldBy: [...running],
    reason: `running domains hold the ${action}: ${running.join(', ')} (guests: refuse; use guests: shutdown or a guests command to let kvmconf ${action} this host)`,
  };
}

/** Tokens of the reboot-pending kernel_cmdline changes that the new /proc/cmdline has. */
export function tokensMadeTrue(finished: readonly ChangeResult[], cmdline: string): string[] {
  const running = new Set(tokenizeCmdline(cmdline));
  const wanted = finished.filter((change) => change.module === 'kernel_cmdline' && change.pendingOn === 'reboot' && change.after !== null);
  return [...new Set(wanted.flatMap((change) => change.after!.split(' ')))].filter((token) => running.has(token));
}

/** Hosts that did not finish: failed, unreachable, not started, or a finish held, failed or interrupted. In run order, once each. */
export function unfinishedHosts(report: RunReport): string[] {
  const open = new Set(['held', 'failed', 'interrupted']);
  const hosts = report.hosts.filter((host) => ['failed', 'unreachable', 'skipped'].includes(host.status) || open.has(host.finish?.status ?? ''));
  return [...new Set(hosts.map((host) => host.host))];
}

/** A retry file: one host per line, as `--limit @FILE` reads it. */
export function retryFileText(hosts: readonly string[]): string {
  return `# hosts that did not finish; resume with --limit @FILE\n${hosts.join('\n')}\n`;
}

const virsh = (uri: string): string => `virsh -c ${quote(uri)}`;

/** boot_id, then the running domains in ID order (start order), or `virsh-error` when libvirt does not answer. */
export function inspectScript(uri: string): string {
  return [
    'printf "boot_id %s\\n" "$(cat /proc/sys/kernel/random/boot_id)"',
    'if command -v virsh >/dev/null 2>&1; then',
    `  if kc_out=$(${virsh(uri)} list --state-running --name 2>&1 </dev/null); then`,
    '    printf "%s\\n" "$kc_out" | while IFS= read -r kc_d; do [ -n "$kc_d" ] && printf "domain %s\\n" "$kc_d"; done',
    '  else printf "virsh-error %s\\n" "$(printf "%s" "$kc_out" | tr "\\n" " ")"; fi',
    'fi',
  ].join('\n');
}

export interface Inspection {
  bootId: string;
  running: string[];
  /** virsh exists but could not list the domains: nothing is safe to assume. */
  virshError?: string;
}

export function parseInspection(output: string): Inspection {
  const result: Inspection = { bootId: '', running: [] };
  for (const line of output.split('\n')) {
    const [kind = '', ...rest] = line.split(' ');
    const value = rest.join(' ').trim();
    if (kind === 'boot_id') result.bootId = value;
    else if (kind === 'domain' && value) result.running.push(value);
    else if (kind === 'virsh-error') result.virshError = value || 'no message';
  }
  return result;
}

/**
 * ACPI shutdown of every domain, a wait of up to `timeoutS` for all of them to be shut
 * off, then (force) destroy. Prints `stopped NAME shutdown|destroy` or `running NAME`.
 */
export function shutdownScript(policy: GuestsPolicy, domains: readonly string[]): string {
  const v = virsh(policy.uri);
  const list = domains.map(quote).join(' ');
  return [
    `for kc_d in ${list}; do ${v} shutdown --domain "$kc_d" </dev/null >/dev/null 2>&1; done`,
    'kc_i=0',
    `while [ "$kc_i" -lt ${policy.timeoutS} ]; do`,
    '  kc_left=0',
    `  for kc_d in ${list}; do [ "$(${v} domstate --domain "$kc_d" </dev/null 2>/dev/null)" = "shut off" ] || kc_left=1; done`,
    '  [ "$kc_left" = 0 ] && break',
    '  sleep 1; kc_i=$((kc_i + 1))',
    'done',
    `for kc_d in ${list}; do`,
    `  if [ "$(${v} domstate --domain "$kc_d" </dev/null 2>/dev/null)" = "shut off" ]; then echo "stopped $kc_d shutdown"`,
    `  elif [ ${policy.force ? 1 : 0} = 1 ] && ${v} destroy --domain "$kc_d" </dev/null >/dev/null 2>&1; then echo "stopped $kc_d destroy"`,
    '  else echo "running $kc_d"; fi',
    'done',
  ].join('\n');
}

export function parseShutdown(output: string): { stopped: Array<{ name: string; how: 'shutdown' | 'destroy' }>; running: string[] } {
  const stopped: Array<{ name: string; how: 'shutdown' | 'destroy' }> = [];
  const running: string[] = [];
  for (const line of output.split('\n')) {
    const match = /^stopped (.+) (shutdown|destroy)$/.exec(line);
    if (match) stopped.push({ name: match[1]!, how: match[2] as 'shutdown' | 'destroy' });
    else if (line.startsWith('running ')) running.push(line.slice('running '.length));
  }
  return { stopped, running };
}

/** Starts the domains in the given order (skipping ones already running, e.g. autostarted); prints `started|running|failed NAME`. */
export function startScript(uri: string, domains: readonly string[]): string {
  const v = virsh(uri);
  return [
    `for kc_d in ${domains.map(quote).join(' ')}; do`,
    `  if [ "$(${v} domstate --domain "$kc_d" </dev/null 2>/dev/null)" = running ]; then echo "running $kc_d"`,
    `  elif ${v} start --domain "$kc_d" </dev/null >/dev/null 2>&1 && [ "$(${v} domstate --domain "$kc_d" </dev/null)" = running ]; then echo "started $kc_d"`,
    '  else echo "failed $kc_d"; fi',
    'done',
  ].join('\n');
}

export function parseStart(output: string): { started: string[]; failed: string[] } {
  const started: string[] = [];
  const failed: string[] = [];
  for (const line of output.split('\n')) {
    if (line.startsWith('started ') || line.startsWith('running ')) started.push(line.slice(line.indexOf(' ') + 1));
    else if (line.startsWith('failed ')) failed.push(line.slice('failed '.length));
  }
  return { started, failed };
}

/** The user's hook, with what it is asked to clear in its environment; its exit status gates the action. */
export function hookScript(command: string, host: string, action: FinishAction, running: readonly string[]): string {
  return `KVMCONF_HOST=${quote(host)} KVMCONF_ACTION=${action} KVMCONF_DOMAINS=${quote(running.join(' '))} sh -c ${quote(command)} </dev/null 2>&1`;
}

/**
 * Schedules the reboot two seconds ahead so the SSH command returns first: a systemd
 * timer where systemd runs, else a detached shell. Prints `scheduled`.
 */
export const REBOOT_SCRIPT = [
  'if command -v systemd-run >/dev/null 2>&1 && [ -d /run/systemd/system ]; then',
  '  systemd-run --quiet --on-active=2 --unit="kvmconf-reboot-$(date +%s)" "$(command -v systemctl)" reboot </dev/null && echo scheduled',
  'else',
  "  (nohup sh -c 'sleep 2; reboot' </dev/null >/dev/null 2>&1 &) && echo scheduled",
  'fi',
].join('\n');

/** Read after reconnecting: the new boot_id and the kernel command line the host booted with. */
export const BOOTED_COMMAND = 'cat /proc/sys/kernel/random/boot_id; cat /proc/cmdline';
