/**
 * The fleet drift matrix every summary format shares (JUnit, Markdown, HTML): one cell
 * per host and task with its status, identical drift grouped across hosts, and the
 * hosts that wait for a reboot.
 */
import type { ChangeResult, HostReport, Mode, RunReport, TaskReport } from '../engine/results.js';
import type { HugepagePoolSummary } from '../kit/module.js';
import { changeLine, groupBy, isPendingChange, plural, taskState } from './common.js';

/** drift: check mode found changes to make; changed: apply made them; not-run: apply never reached them. */
export type CellStatus = 'failed' | 'unreachable' | 'drift' | 'not-run' | 'pending' | 'changed' | 'ok' | 'skipped';

/** Worst first: the order summaries list statuses in. */
export const CELL_STATUSES: readonly CellStatus[] = ['failed', 'unreachable', 'drift', 'not-run', 'pending', 'changed', 'ok', 'skipped'];

export interface Cell {
  status: CellStatus;
  /** Absent when the host never got as far as the task (unreachable, skipped, failed before gathering). */
  task?: TaskReport;
  /** `pending reboot`: what a pending cell waits for. */
  note?: string;
}

export function taskCellStatus(task: TaskReport, mode: Mode): CellStatus {
  const state = taskState(task);
  if (state === 'changed') return mode === 'check' ? 'drift' : 'changed';
  return state === 'skipped' ? 'not-run' : state;
}

/** The status of every task of a host that has no task results. */
function hostOnlyStatus(host: HostReport): CellStatus {
  return host.status === 'unreachable' || host.status === 'skipped' ? host.status : host.status === 'failed' ? 'failed' : 'ok';
}

/** What pending changes wait for: `reboot`, `module-reload`, `guest-restart`. */
function pendingNote(task: TaskReport): string {
  const waits = new Set(task.changes.filter(isPendingChange).map((change) => change.pendingOn ?? 'restart'));
  return `pending ${[...waits].join(', ')}`;
}

/** The task names of a play, in playbook order, across its hosts (a host that stopped early has none). */
export function playTaskNames(hosts: readonly HostReport[]): string[] {
  const names: string[] = [];
  for (const host of hosts) for (const name of uniqueNames(host.tasks)) if (!names.includes(name)) names.push(name);
  return names;
}

/** Task names made unique within a host: a repeated name gets ` (2)`, ` (3)`. */
export function uniqueNames(tasks: readonly TaskReport[]): string[] {
  const seen = new Map<string, number>();
  return tasks.map((task) => {
    const count = (seen.get(task.name) ?? 0) + 1;
    seen.set(task.name, count);
    return count === 1 ? task.name : `${task.name} (${count})`;
  });
}

/** One cell per column name; a task the host did not run (tags, another play shape) is skipped. */
export function hostCells(host: HostReport, columns: readonly string[], mode: Mode): Cell[] {
  if (host.tasks.length === 0 || host.status === 'unreachable' || host.status === 'skipped') return columns.map(() => ({ status: hostOnlyStatus(host) }));
  const byName = new Map(uniqueNames(host.tasks).map((name, index) => [name, host.tasks[index]!]));
  return columns.map((name) => {
    const task = byName.get(name);
    if (!task) return { status: 'skipped' };
    const status = taskCellStatus(task, mode);
    return status === 'pending' ? { status, task, note: pendingNote(task) } : { status, task };
  });
}

export interface Play {
  name: string;
  columns: string[];
  hosts: HostReport[];
}

export function plays(report: RunReport): Play[] {
  return [...groupBy(report.hosts, (host) => host.play)].map(([name, hosts]) => ({ name, hosts, columns: playTaskNames(hosts) }));
}

export type Counts = Partial<Record<CellStatus, number>>;

export function countCells(cells: readonly Cell[]): Counts {
  const counts: Counts = {};
  for (const cell of cells) counts[cell.status] = (counts[cell.status] ?? 0) + 1;
  return counts;
}

/** `2 drift, 198 ok`, worst first. */
export function countsText(counts: Counts): string {
  return CELL_STATUSES.filter((status) => counts[status]).map((status) => `${counts[status]} ${status}`).join(', ');
}

/** The group a host is shown under: its first inventory group. */
export const groupOf = (host: HostReport): string => host.groups?.[0] ?? 'ungrouped';

export interface GroupRow {
  group: string;
  hosts: HostReport[];
  /** Per column, how many hosts of the group are in each status. */
  counts: Counts[];
}

export function groupRows(play: Play, mode: Mode): GroupRow[] {
  return [...groupBy(play.hosts, groupOf)].map(([group, hosts]) => {
    const cells = hosts.map((host) => hostCells(host, play.columns, mode));
    return { group, hosts, counts: play.columns.map((_, column) => countCells(cells.map((row) => row[column]!))) };
  });
}

export interface DriftGroup {
  /** `thp enabled: madvise -> never (runtime)`. */
  line: string;
  hosts: string[];
  failed: boolean;
}

/** Identical changes across hosts, the most widespread first; failed changes lead. */
export function groupedDrift(report: RunReport): DriftGroup[] {
  const entries = report.hosts.flatMap((host) => host.tasks.flatMap((task) => task.changes.map((change) => ({ host: host.host, change }))));
  const groups = [...groupBy(entries, (entry) => changeLine(entry.change, report.mode))].map(([line, items]) => ({
    line,
    hosts: [...new Set(items.map((item) => item.host))],
    failed: items.some((item) => item.change.status === 'failed'),
  }));
  return groups.sort((a, b) => Number(b.failed) - Number(a.failed) || b.hosts.length - a.hosts.length);
}

/** `200 hosts: 10 ok, 176 changed, 2 failed; exit code 2`: the line every summary opens with. */
export function summaryLine(report: RunReport): string {
  const statuses = Object.entries(report.summary).filter(([, count]) => count > 0).map(([status, count]) => `${count} ${status}`);
  return `${plural(hostCount(report), 'host')}${statuses.length ? `: ${statuses.join(', ')}` : ''}; exit code ${report.exitCode}`;
}

/** Hosts and the number of hosts the report covers (a host in two plays counts once). */
export const hostCount = (report: RunReport): number => new Set(report.hosts.map((host) => host.host)).size;

export interface AwaitingReboot {
  host: string;
  /** Kernel arguments the reboot makes true: `name=value`, or `-name` for one removed. */
  args: string[];
  /** Other changes the reboot finishes. */
  others: string[];
}

const kernelArg = (change: ChangeResult): string => (change.after === null ? `-${change.target}` : `${change.target}=${change.after}`);

/** Hosts with changes that wait for a reboot, with the kernel arguments they wait for. */
export function awaitingReboot(report: RunReport): AwaitingReboot[] {
  return report.hosts.flatMap((host) => {
    const waiting = host.tasks.flatMap((task) => task.changes).filter((change) => isPendingChange(change) && change.pendingOn === 'reboot');
    if (!waiting.length) return [];
    const args = waiting.filter((change) => change.module === 'kernel_cmdline').map(kernelArg);
    const others = waiting.filter((change) => change.module !== 'kernel_cmdline').map((change) => `${change.module} ${change.target}`);
    return [{ host: host.host, args, others }];
  });
}

export interface HugepageRow {
  host: string;
  /** NUMA node, or `all` for the global pool of that size. */
  node: string;
  sizeKiB: number;
  requested: number;
  /** Pages the kernel has: read back after apply, the current count in check mode. */
  granted: number;
  free?: number;
  /** Pages missing from the request: requested - granted, 0 when none. */
  short: number;
}

const POOL_TARGET = /^\/sys\/(?:devices\/system\/node\/node(\d+)\/hugepages|kernel\/mm\/hugepages)\/hugepages-(\d+)kB\/nr_hugepages$/;

/** Reports written before hosts carried `hugepages`: the pools their changes name, granted as the change left them. */
function poolsFromChanges(host: HostReport): HugepagePoolSummary[] {
  return host.tasks.flatMap((task) => task.changes).flatMap((change) => {
    const match = change.module === 'hugepages' ? POOL_TARGET.exec(change.target) : null;
    if (!match || change.after === null) return [];
    const granted = change.status === 'applied' ? change.after : (change.before ?? '0');
    return [{ node: match[1] === undefined ? null : Number(match[1]), sizeKiB: Number(match[2]), requested: Number(change.after), granted: Number(granted) }];
  });
}

/** Every managed hugepage pool of every host, the ones short of their request first. */
export function hugepageRows(report: RunReport): HugepageRow[] {
  const rows = report.hosts.flatMap((host) =>
    (host.hugepages ?? poolsFromChanges(host)).map((pool): HugepageRow => ({
      host: host.host,
      node: pool.node === null ? 'all' : String(pool.node),
      sizeKiB: pool.sizeKiB,
      requested: pool.requested,
      granted: pool.granted,
      ...(pool.free === undefined ? {} : { free: pool.free }),
      short: Math.max(0, pool.requested - pool.granted),
    })),
  );
  return rows.sort((a, b) => Number(b.short > 0) - Number(a.short > 0));
}

export interface GrantedGroup {
  node: string;
  sizeKiB: number;
  requested: number;
  hosts: string[];
}

/** Pools granted in full, one entry per node, page size and count: how a large fleet shows them. */
export function grantedGroups(rows: readonly HugepageRow[]): GrantedGroup[] {
  const full = rows.filter((row) => row.short === 0);
  return [...groupBy(full, (row) => `${row.node} ${row.sizeKiB} ${row.requested}`).values()].map((group) => ({
    node: group[0]!.node,
    sizeKiB: group[0]!.sizeKiB,
    requested: group[0]!.requested,
    hosts: [...new Set(group.map((row) => row.host))],
  }));
}

/** `12 hugepage pools on 6 hosts: 2 short of the request on 1 host`. */
export function hugepageSummary(rows: readonly HugepageRow[]): string {
  const short = rows.filter((row) => row.short > 0);
  const hosts = (list: readonly HugepageRow[]) => plural(new Set(list.map((row) => row.host)).size, 'host');
  const head = `${plural(rows.length, 'hugepage pool')} on ${hosts(rows)}`;
  return short.length ? `${head}: ${short.length} short of the request on ${hosts(short)}` : `${head}, all granted as requested`;
}

/** `hugepages node0 1G: granted 1 of 4`: a pool as the text reports name it. */
export function poolLine(pool: HugepagePoolSummary): string {
  return `hugepages ${pool.node === null ? '' : `node${pool.node} `}${pageSize(pool.sizeKiB)}: granted ${pool.granted} of ${pool.requested}`;
}

/** Page size as users write it: 2M, 1G, 64K. */
export function pageSize(kib: number): string {
  if (kib % 1048576 === 0) return `${kib / 1048576}G`;
  return kib % 1024 === 0 ? `${kib / 1024}M` : `${kib}K`;
}

/** Hosts that failed or could not be reached, with the first line of why. */
export function failedHosts(report: RunReport): Array<{ host: string; status: string; error: string }> {
  return report.hosts
    .filter((host) => host.status === 'failed' || host.status === 'unreachable')
    .map((host) => ({ host: host.host, status: host.status, error: firstLine(host.error ?? host.tasks.find((task) => task.error)?.error ?? '') }));
}

export function firstLine(text: string): string {
  return text.trim().split('\n')[0] ?? '';
}
