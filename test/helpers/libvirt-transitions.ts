/**
 * The libvirt transition matrix: one table of settings, each with its starting states,
 * its targets and libvirt's rule for a running domain (the oracle: which keys libvirt
 * refuses live, as libvirt 9.0 behaves), and one runner that plays every (from, to)
 * pair on a running and on a shut-off domain through the module's own probe, planner
 * and commands. A new setting adds a row, not code.
 *
 * Per pair: the domain is defined afresh, brought to `from` (config, then started),
 * planned against `to` (check), applied, and planned again. Required: the second plan
 * holds exactly the pending changes the first one predicted (so config and live each
 * are what the report said), the row's pending keys are the oracle's, a shut-off domain
 * has nothing pending, and the qemu threads in /proc follow live pinning.
 * Rows are independent, so one run of the domain carries the i-th pair of every row.
 */
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { libvirtDomain } from '../../modules/libvirt_domain/index.js';
import type { DomainParams } from '../../modules/libvirt_domain/params.js';
import { buildApplyScript, newMark, parseApplyOutput } from '../../src/engine/script.js';
import { parseCpuList, type HostFacts } from '../../src/kit/host-facts.js';
import type { Change } from '../../src/kit/module.js';
import { changeCommands, diffOf } from './plan.js';
import { emulatorThread, parseQemuThreads, qemuThreadsScript, testDomainXml, vcpuThread } from './test-domain.js';

type Fragment = Record<string, unknown>;

export interface TransitionRow {
  setting: string;
  /** Change keys (after `domain/`) that belong to this row. */
  keys: RegExp;
  /** Starting states by name; null = nothing set (the domain's defaults). */
  states: Record<string, Fragment | null>;
  /** Names of the states used as targets. */
  targets: string[];
  /** States a domain can start in (default: all); e.g. a hard_limit needs CAP_SYS_RESOURCE at start. */
  starts?: string[];
  /** Keys libvirt refuses on the running domain for this pair (they stay pending). */
  pendingLive(from: string, to: string): string[];
}

const numa = (mode: string, nodeset: string): Fragment => ({ numatune: { mode, nodeset } });
const MODES = ['strict', 'preferred', 'interleave', 'restrictive'];

/** libvirt: a running domain's memory mode never changes; its nodeset only in restrictive mode; a domain without a policy takes both once. */
function numatuneRule(from: string, to: string): string[] {
  if (from === 'absent') return [];
  const [fromMode, fromSet] = from.split(':');
  const [toMode, toSet] = to.split(':');
  return [...(fromSet !== toSet && fromMode !== 'restrictive' ? ['numatune.nodeset'] : []), ...(fromMode !== toMode ? ['numatune.mode'] : [])];
}

export const TRANSITIONS: TransitionRow[] = [
  {
    setting: 'numatune',
    keys: /^numatune\./,
    states: { absent: null, ...Object.fromEntries(MODES.map((m) => [`${m}:0`, numa(m, '0')])) },
    targets: MODES.map((m) => `${m}:0`),
    pendingLive: numatuneRule,
  },
  {
    setting: 'vcpupin',
    keys: /^cputune\.vcpupin/,
    states: { absent: null, '0': { cputune: { vcpupin: { 0: '0' } } }, '1': { cputune: { vcpupin: { 0: '1' } } }, '0-1': { cputune: { vcpupin: { 0: '0-1' } } } },
    targets: ['0', '1', '0-1'],
    pendingLive: () => [],
  },
  {
    setting: 'emulatorpin',
    keys: /^cputune\.emulatorpin/,
    states: { absent: null, '0': { cputune: { emulatorpin: '0' } }, '1': { cputune: { emulatorpin: '1' } }, '0-1': { cputune: { emulatorpin: '0-1' } } },
    targets: ['0', '1', '0-1'],
    pendingLive: () => [],
  },
  {
    setting: 'memtune soft_limit',
    keys: /^memtune\.soft_limit/,
    states: { absent: null, '300M': { memtune: { soft_limit_kib: 307200 } }, '600M': { memtune: { soft_limit_kib: 614400 } } },
    targets: ['300M', '600M'],
    pendingLive: () => [],
  },
  {
    // A hard_limit at start needs CAP_SYS_RESOURCE (libvirt raises RLIMIT_MEMLOCK), which a container may lack: start states are absent only.
    setting: 'memtune hard_limit',
    keys: /^memtune\.hard_limit/,
    states: { absent: null, '2G': { memtune: { hard_limit_kib: 2097152 } }, 'below use': { memtune: { hard_limit_kib: 20480 } } },
    targets: ['2G', 'below use'],
    starts: ['absent'],
    pendingLive: (_from, to) => (to === 'below use' ? ['memtune.hard_limit'] : []),
  },
  {
    setting: 'blkiotune weight',
    keys: /^blkiotune\./,
    states: { absent: null, '300': { blkiotune: { weight: 300 } }, '800': { blkiotune: { weight: 800 } } },
    targets: ['300', '800'],
    pendingLive: () => [],
  },
  {
    setting: 'iotune',
    keys: /^disk\[vda\]\.iotune/,
    states: { absent: null, '1000': { disks: [{ target: 'vda', iotune: { total_iops_sec: 1000 } }] }, '2000': { disks: [{ target: 'vda', iotune: { total_iops_sec: 2000 } }] } },
    targets: ['1000', '2000'],
    pendingLive: () => [],
  },
  {
    setting: 'setvcpus',
    keys: /^vcpu\./,
    states: { '1 of 2': { vcpu: { count: 2, current: 1 } }, '2 of 2': { vcpu: { count: 2, current: 2 } }, '3 of 3': { vcpu: { count: 3, current: 3 } } },
    targets: ['1 of 2', '2 of 2', '3 of 3'],
    // Up to the running maximum is a hotplug; down needs the guest's ACPI unplug; a new maximum waits for a start.
    pendingLive: (from, to) => {
      const [current, max] = from.split(' of ').map(Number);
      const [wantCurrent, wantMax] = to.split(' of ').map(Number);
      return [...(wantMax !== max ? ['vcpu.count'] : []), ...(wantCurrent! < current! || wantCurrent! > max! ? ['vcpu.current'] : [])];
    },
  },
  {
    setting: 'schedinfo',
    keys: /^cputune\.(shares|period|quota)/,
    states: { absent: null, 'shares 512': { cputune: { shares: 512 } }, 'shares 2048': { cputune: { shares: 2048 } }, 'quota 50%': { cputune: { period: 100000, quota: 50000 } } },
    targets: ['shares 512', 'shares 2048', 'quota 50%'],
    pendingLive: () => [],
  },
];

export interface MatrixHost {
  /** Runs a POSIX sh script as root on the hypervisor; resolves with stdout, rejects on a non-zero exit. */
  exec(script: string): Promise<string>;
  facts: HostFacts;
  /** Folder on the host for the test domain's disk. */
  dir: string;
}

interface Pair {
  row: TransitionRow;
  from: string;
  to: string;
}

export interface CaseResult {
  setting: string;
  from: string;
  to: string;
  running: boolean;
  predicted: string[];
  error?: string;
}

function isObject(value: unknown): value is Fragment {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function merge(into: Fragment, from: Fragment | null): Fragment {
  for (const [key, value] of Object.entries(from ?? {})) into[key] = isObject(value) && isObject(into[key]) ? merge({ ...(into[key] as Fragment) }, value) : value;
  return into;
}

/** Every (from, to) pair of a row, from != to. */
function pairsOf(row: TransitionRow): Pair[] {
  return (row.starts ?? Object.keys(row.states)).flatMap((from) => row.targets.filter((to) => to !== from).map((to) => ({ row, from, to })));
}

/** Runs of the domain: run i carries the i-th pair of every row. */
function runsOf(rows: TransitionRow[]): Pair[][] {
  const pairs = rows.map(pairsOf);
  const count = Math.max(0, ...pairs.map((p) => p.length));
  return Array.from({ length: count }, (_, i) => pairs.flatMap((p) => (p[i] ? [p[i]!] : [])));
}

const keyOf = (change: Change) => change.target.slice(change.target.indexOf('/') + 1);
const line = (change: Change) => `${change.scope} ${keyOf(change)} ${change.before} -> ${change.after}`;

/** One test domain on the host: planned, applied and reset through the module's own probe and commands. */
class TestDomain {
  constructor(private readonly host: MatrixHost, readonly name: string) {}

  params(fragment: Fragment): DomainParams {
    return libvirtDomain.normalize!({ name: this.name, ...fragment });
  }

  async plan(p: DomainParams) {
    const actual = libvirtDomain.parse(await this.host.exec(libvirtDomain.probe(p)), p);
    const errors = (libvirtDomain.rules?.(p, this.host.facts) ?? []).filter((d) => d.severity === 'error');
    assert.deepEqual(errors, [], 'the rules accept the target');
    const changes = diffOf(libvirtDomain, p, actual, { facts: this.host.facts, tasks: [], claims: [], warn: () => undefined });
    return { actual, changes };
  }

  async apply(p: DomainParams, planned: Awaited<ReturnType<TestDomain['plan']>>): Promise<void> {
    const steps = planned.changes.filter((c) => c.scope !== 'pending').map((change) => ({ label: change.target, commands: changeCommands(libvirtDomain, change) }));
    if (!steps.length) return;
    const mark = newMark();
    // The domains are applied to in parallel, each as its own target: one apply lock each.
    const lock = join(tmpdir(), `kvmconf-matrix-${this.name}.lock`);
    const { outcomes, lockedBy } = parseApplyOutput(await this.host.exec(buildApplyScript(steps, mark, { file: lock })), mark, steps);
    assert.equal(lockedBy, undefined, 'the apply lock was free');
    for (const outcome of outcomes) assert.equal(outcome.status, 'ok', `${outcome.label}: ${outcome.output}`);
  }

  /**
   * Destroyed until no longer active, then undefined: libvirt can fail to kill a QEMU that
   * is slow to die under load, and undefining a domain still running only makes it transient.
   */
  remove(): Promise<string> {
    const virsh = (args: string) => `virsh -c qemu:///system ${args} --domain ${this.name} </dev/null 2>/dev/null`;
    return this.host.exec(
      `for i in $(seq 30); do case "$(${virsh('domstate')})" in running*|paused*|'in shutdown'*|blocked*|pmsuspended*|crashed*) ${virsh('destroy')} >/dev/null || sleep 1 ;; *) break ;; esac; done\n` +
        `${virsh('undefine')} >/dev/null; true`,
    );
  }

  /** A fresh domain in the starting states of a run (its config written by the module itself), started when `running`. */
  async reset(start: Fragment, running: boolean): Promise<void> {
    const file = `${this.host.dir}/${this.name}`;
    await this.remove();
    await this.host.exec(`cat > ${file}.xml <<'EOF'\n${testDomainXml(this.name, `${file}.raw`)}EOF\ntruncate -s 1M ${file}.raw\nvirsh -c qemu:///system define --file ${file}.xml </dev/null >/dev/null`);
    if (Object.keys(start).length) {
      const p = this.params(start);
      await this.apply(p, await this.plan(p));
    }
    if (running) await this.host.exec(`virsh -c qemu:///system start --domain ${this.name} </dev/null >/dev/null`);
  }

  /** Live pinning that was applied is what the kernel enforces on the qemu threads. */
  async checkThreads(target: DomainParams, changes: Change[]): Promise<void> {
    const threads = parseQemuThreads(await this.host.exec(qemuThreadsScript(this.name)));
    const applied = new Set(changes.filter((c) => c.scope === 'runtime').map(keyOf));
    const vcpu0 = target.cputune?.vcpupin?.['0'];
    if (vcpu0 && applied.has('cputune.vcpupin[0]')) assert.deepEqual(vcpuThread(threads, 0)?.cpus, parseCpuList(vcpu0), 'vCPU 0 thread affinity');
    const emulator = target.cputune?.emulatorpin;
    if (emulator && applied.has('cputune.emulatorpin')) assert.deepEqual(emulatorThread(threads)?.cpus, parseCpuList(emulator), 'emulator thread affinity');
  }
}

export class TransitionMatrix {
  readonly results: CaseResult[] = [];

  constructor(private readonly host: MatrixHost, private readonly name: string, private readonly rows: TransitionRow[]) {}

  private async playRun(domain: TestDomain, run: Pair[], running: boolean): Promise<void> {
    const start = run.reduce((acc, pair) => merge(acc, pair.row.states[pair.from]!), {} as Fragment);
    const target = domain.params(run.reduce((acc, pair) => merge(acc, pair.row.states[pair.to]!), {} as Fragment));
    let predicted: Change[] = [];
    let failure: string | undefined;
    try {
      await domain.reset(start, running);
      const check = await domain.plan(target);
      predicted = check.changes;
      await domain.apply(target, check);
      const after = await domain.plan(target);
      assert.deepEqual(after.changes.map(line), predicted.filter((c) => c.scope === 'pending').map(line), 'after apply only the predicted pending changes remain');
      if (running) await domain.checkThreads(target, predicted);
    } catch (error) {
      failure = (error as Error).message;
    }
    for (const pair of run) {
      const own = predicted.filter((c) => pair.row.keys.test(keyOf(c)));
      const pending = own.filter((c) => c.scope === 'pending').map(keyOf).sort();
      const expected = running ? pair.row.pendingLive(pair.from, pair.to).sort() : [];
      const wrong = failure ?? (JSON.stringify(pending) === JSON.stringify(expected) ? undefined : `pending ${JSON.stringify(pending)}, libvirt's rule says ${JSON.stringify(expected)}`);
      this.results.push({ setting: pair.row.setting, from: pair.from, to: pair.to, running, predicted: own.map(line), ...(wrong ? { error: wrong } : {}) });
    }
  }

  /** Plays every run on a running and on a shut-off domain, `parallel` domains at a time. */
  async play(parallel = 1): Promise<void> {
    const jobs = [true, false].flatMap((running) => runsOf(this.rows).map((run) => ({ run, running })));
    await Promise.all(Array.from({ length: parallel }, async (_, lane) => {
      const domain = new TestDomain(this.host, `${this.name}-${lane}`);
      for (let i = lane; i < jobs.length; i += parallel) await this.playRun(domain, jobs[i]!.run, jobs[i]!.running);
      await domain.remove();
    }));
  }

  /** The matrix as text: per setting, cases and passed, then every failed case. */
  report(): string {
    const settings = [...new Set(this.results.map((r) => r.setting))];
    const rows = settings.map((setting) => {
      const cases = this.results.filter((r) => r.setting === setting);
      return `${setting.padEnd(30)} ${String(cases.length).padStart(5)} ${String(cases.filter((c) => !c.error).length).padStart(6)}`;
    });
    const failed = this.results.filter((r) => r.error).map((r) => `FAILED ${r.setting} ${r.from} -> ${r.to} (${r.running ? 'running' : 'shut off'}): ${r.error}\n    predicted: ${r.predicted.join('; ')}`);
    const total = this.results.length;
    return [`${'setting'.padEnd(30)} ${'cases'.padStart(5)} ${'passed'.padStart(6)}`, ...rows, `${'total'.padEnd(30)} ${String(total).padStart(5)} ${String(total - failed.length).padStart(6)}`, ...failed].join('\n');
  }
}
