/**
 * The NUMA placement engine: pure, deterministic, no I/O. Given the host topology,
 * the CPUs kept for the host, the guests' needs and their current pinning, it decides
 * every guest's host CPUs, emulator CPUs, memory nodes, hugepage nodes and (for a guest
 * spanning nodes) guest NUMA cells, or throws a PlacementError naming the guest and
 * the shortfall. Rules follow Nova's dedicated CPU policy (hw:cpu_policy=dedicated):
 * host cells are tried in order and the first that fits wins (Nova's NUMATopologyFilter
 * packs the same way), thread policies as hw:cpu_thread_policy, hw:numa_nodes as
 * `numa_nodes`, a dedicated emulator CPU as hw:emulator_threads_policy=isolate.
 */

export type ThreadPolicy = 'prefer' | 'isolate' | 'require';

export interface TopologyNode {
  id: number;
  /** Online CPUs of the node. */
  cpus: number[];
  /** Memory guests without hugepages may use on this node, MiB (absent: not checked). */
  memoryMiB?: number;
  /** Hugepages available to the guests being placed, by page size in KiB. */
  hugepages: Record<number, number>;
}

export interface Topology {
  nodes: TopologyNode[];
  /** Thread siblings of each CPU (itself included); a CPU missing here is its own core. */
  siblings: Record<number, number[]>;
  /** PCI devices (address) and network interfaces (name) with their NUMA node (-1 unknown). */
  devices: Array<{ name: string; node: number }>;
}

export interface GuestNeed {
  name: string;
  vcpus: number;
  memoryMiB: number;
  /** Hugepage size in KiB backing all guest memory; absent: normal pages. */
  hugepageKiB?: number;
  threads: ThreadPolicy;
  /** A device or interface the guest should run beside (Topology.devices name). */
  near?: string;
  /** One host CPU of its own for the emulator threads. */
  dedicatedEmulator: boolean;
  /** Exactly this many guest NUMA cells on as many host nodes (Nova hw:numa_nodes). */
  numaNodes?: number;
}

export interface CurrentPlacement {
  /** vCPU -> host CPUs it is pinned to. */
  vcpupin: Record<number, number[]>;
  emulatorpin?: number[];
}

export interface GuestCell {
  id: number;
  hostNode: number;
  vcpus: number[];
  memoryMiB: number;
}

export interface GuestPlacement {
  name: string;
  nodes: number[];
  /** Host CPU of vCPU i. */
  vcpupin: number[];
  emulatorpin: number[];
  /** CPUs the guest holds without running on them (an isolated core's other threads). */
  held: number[];
  numatune: { mode: 'strict'; nodeset: number[] };
  /** Host nodes whose hugepages back the guest (empty without hugepages). */
  hugepageNodes: number[];
  /** Guest NUMA cells, only for a guest spanning several host nodes. */
  cells?: GuestCell[];
  /** Memory per host node, MiB. */
  memoryByNode: Record<number, number>;
  kept: boolean;
  reason: string;
}

export interface PlacementInput {
  topology: Topology;
  /** Host CPUs no guest may use; absent: the first core of every node. */
  reserved?: number[];
  guests: GuestNeed[];
  current?: Record<string, CurrentPlacement>;
}

export interface PlacementResult {
  reserved: number[];
  guests: GuestPlacement[];
  /** What stays free on each node after placement. */
  free: Array<{ node: number; cpus: number[]; memoryMiB?: number; hugepages: Record<number, number> }>;
}

export class PlacementError extends Error {
  constructor(readonly guest: string, message: string) {
    super(`${guest}: ${message}`);
    this.name = 'PlacementError';
  }
}

const byNumber = (a: number, b: number) => a - b;
const sorted = (values: Iterable<number>) => [...new Set(values)].sort(byNumber);

/** The first core (the lowest CPU and its thread siblings) of every node: Nova's and tuned's habit of leaving the host a core per node. */
export function defaultReserved(topology: Topology): number[] {
  const out: number[] = [];
  for (const node of topology.nodes) {
    const first = sorted(node.cpus)[0];
    if (first === undefined) continue;
    const online = new Set(node.cpus);
    out.push(...(topology.siblings[first] ?? [first]).filter((cpu) => online.has(cpu)));
  }
  return sorted(out);
}

/** Mutable view of what is still free while guests are placed one after another. */
class Budget {
  readonly nodeOf = new Map<number, number>();
  readonly taken = new Set<number>();
  readonly memory = new Map<number, number | undefined>();
  readonly pages = new Map<number, Record<number, number>>();
  readonly threadsPerCore: number;

  constructor(readonly topology: Topology, readonly reserved: Set<number>) {
    for (const node of topology.nodes) {
      for (const cpu of node.cpus) this.nodeOf.set(cpu, node.id);
      this.memory.set(node.id, node.memoryMiB);
      this.pages.set(node.id, { ...node.hugepages });
    }
    this.threadsPerCore = Math.max(1, ...topology.nodes.flatMap((n) => n.cpus.map((cpu) => this.core(cpu).length)));
  }

  /** Online threads of the core of cpu, on cpu's node. */
  core(cpu: number): number[] {
    const node = this.nodeOf.get(cpu);
    return sorted((this.topology.siblings[cpu] ?? [cpu]).filter((c) => this.nodeOf.get(c) === node));
  }

  usable(cpu: number): boolean {
    return this.nodeOf.has(cpu) && !this.reserved.has(cpu) && !this.taken.has(cpu);
  }

  /** Cores of the node whose every online thread is usable, by lowest thread. */
  freeCores(node: number): number[][] {
    const seen = new Set<number>();
    const out: number[][] = [];
    for (const cpu of this.cpusOf(node)) {
      const core = this.core(cpu);
      if (seen.has(core[0]!)) continue;
      seen.add(core[0]!);
      if (core.every((c) => this.usable(c))) out.push(core);
    }
    return out;
  }

  cpusOf(node: number): number[] {
    return sorted(this.topology.nodes.find((n) => n.id === node)?.cpus ?? []);
  }

  /** Usable CPUs in the order `prefer` takes them: threads of whole free cores first (siblings kept together), then the rest. */
  preferOrder(node: number): number[] {
    const whole = this.freeCores(node).flat();
    const rest = this.cpusOf(node).filter((c) => this.usable(c) && !whole.includes(c));
    return [...whole, ...rest];
  }

  /** How many vCPUs the node can take under the policy. */
  capacity(node: number, policy: ThreadPolicy): number {
    if (policy === 'prefer') return this.preferOrder(node).length;
    const cores = this.freeCores(node);
    if (policy === 'isolate') return cores.length;
    return cores.filter((core) => core.length > 1).reduce((sum, core) => sum + core.length, 0);
  }

  /** Picks count vCPU CPUs (and the CPUs they hold) on the node, or null. */
  pick(node: number, count: number, policy: ThreadPolicy): { pinned: number[]; held: number[] } | null {
    if (count === 0) return { pinned: [], held: [] };
    if (policy === 'prefer') {
      const order = this.preferOrder(node);
      return order.length >= count ? { pinned: order.slice(0, count), held: [] } : null;
    }
    const cores = this.freeCores(node).filter((core) => policy === 'isolate' || core.length > 1);
    if (policy === 'isolate') {
      if (cores.length < count) return null;
      const used = cores.slice(0, count);
      return { pinned: used.map((core) => core[0]!), held: used.flatMap((core) => core.slice(1)) };
    }
    const pinned: number[] = [];
    const held: number[] = [];
    for (const core of cores) {
      if (pinned.length >= count) break;
      const take = core.slice(0, count - pinned.length);
      pinned.push(...take);
      held.push(...core.slice(take.length));
    }
    return pinned.length === count ? { pinned, held } : null;
  }

  pagesNeeded(memoryMiB: number, sizeKiB: number): number {
    return Math.ceil((memoryMiB * 1024) / sizeKiB);
  }

  /** Why memoryMiB does not fit the node, or null. */
  memoryShort(node: number, memoryMiB: number, hugepageKiB: number | undefined): string | null {
    if (hugepageKiB) {
      const need = this.pagesNeeded(memoryMiB, hugepageKiB);
      const have = this.pages.get(node)?.[hugepageKiB] ?? 0;
      return need > have ? `${need} ${hugepageKiB} KiB hugepages on node ${node}, ${have} free` : null;
    }
    const have = this.memory.get(node);
    return have !== undefined && memoryMiB > have ? `${memoryMiB} MiB on node ${node}, ${have} MiB free` : null;
  }

  /** Takes the guest's CPUs and memory out of the budget (sign -1 gives them back). */
  charge(guest: GuestPlacement, need: GuestNeed, sign: 1 | -1 = 1): void {
    for (const cpu of [...guest.vcpupin, ...guest.held, ...(need.dedicatedEmulator ? guest.emulatorpin : [])]) {
      if (sign > 0) this.taken.add(cpu);
      else this.taken.delete(cpu);
    }
    for (const [key, mib] of Object.entries(guest.memoryByNode)) {
      const node = Number(key);
      if (need.hugepageKiB) {
        const pool = this.pages.get(node)!;
        pool[need.hugepageKiB] = (pool[need.hugepageKiB] ?? 0) - sign * this.pagesNeeded(mib, need.hugepageKiB);
      } else {
        const have = this.memory.get(node);
        if (have !== undefined) this.memory.set(node, have - sign * mib);
      }
    }
  }
}

/** Splits total into parts proportional to weights, the rounding remainder on the last part (integers). */
export function splitMemory(total: number, weights: number[]): number[] {
  const sum = weights.reduce((a, b) => a + b, 0);
  const parts = weights.map((w) => Math.floor((total * w) / sum));
  parts[parts.length - 1]! += total - parts.reduce((a, b) => a + b, 0);
  return parts;
}

function nearNode(topology: Topology, need: GuestNeed): number | undefined {
  if (!need.near) return undefined;
  const device = topology.devices.find((d) => d.name === need.near);
  if (!device) throw new PlacementError(need.name, `near: no PCI device or interface '${need.near}' on this host`);
  return device.node >= 0 ? device.node : undefined;
}

/** Node sets of size k in lexicographic order of node ids, the near node's sets first. */
function* nodeSets(ids: number[], k: number, first: number | undefined): Generator<number[]> {
  const all: number[][] = [];
  const walk = (start: number, acc: number[]) => {
    if (acc.length === k) { all.push(acc); return; }
    for (let i = start; i < ids.length; i++) walk(i + 1, [...acc, ids[i]!]);
  };
  walk(0, []);
  yield* all.filter((set) => first !== undefined && set.includes(first));
  yield* all.filter((set) => first === undefined || !set.includes(first));
}

function build(need: GuestNeed, parts: Array<{ node: number; pinned: number[]; held: number[]; memoryMiB: number }>, emulator: number[] | null, kept: boolean, reason: string): GuestPlacement {
  const vcpupin = parts.flatMap((p) => p.pinned);
  const nodes = parts.map((p) => p.node);
  let next = 0;
  const cells = parts.length > 1
    ? parts.map((p, id) => ({ id, hostNode: p.node, vcpus: p.pinned.map(() => next++), memoryMiB: p.memoryMiB }))
    : undefined;
  return {
    name: need.name, nodes, vcpupin,
    emulatorpin: emulator ?? sorted(vcpupin),
    held: sorted(parts.flatMap((p) => p.held)),
    numatune: { mode: 'strict', nodeset: sorted(nodes) },
    hugepageNodes: need.hugepageKiB ? sorted(nodes) : [],
    ...(cells ? { cells } : {}),
    memoryByNode: Object.fromEntries(parts.map((p) => [p.node, p.memoryMiB])),
    kept, reason,
  };
}

/** The current pinning kept as is when it is complete, free, on allowed CPUs and obeys every need; else null. */
function keep(budget: Budget, need: GuestNeed, current: CurrentPlacement | undefined): GuestPlacement | null {
  if (!current) return null;
  const pinned: number[] = [];
  for (let v = 0; v < need.vcpus; v++) {
    const cpus = current.vcpupin[v];
    if (!cpus || cpus.length !== 1 || !budget.usable(cpus[0]!)) return null;
    pinned.push(cpus[0]!);
  }
  if (new Set(pinned).size !== pinned.length) return null;
  // Cells keep vCPUs in order: a node's vCPUs form one contiguous run.
  const parts: Array<{ node: number; pinned: number[]; held: number[]; memoryMiB: number }> = [];
  for (const cpu of pinned) {
    const node = budget.nodeOf.get(cpu)!;
    const last = parts[parts.length - 1];
    if (last?.node === node) last.pinned.push(cpu);
    else if (parts.some((p) => p.node === node)) return null;
    else parts.push({ node, pinned: [cpu], held: [], memoryMiB: 0 });
  }
  if (need.numaNodes !== undefined && parts.length !== need.numaNodes) return null;
  const mine = new Set(pinned);
  for (const part of parts) {
    const cores = new Map<number, number[]>();
    for (const cpu of part.pinned) cores.set(budget.core(cpu)[0]!, budget.core(cpu));
    for (const core of cores.values()) {
      const used = core.filter((c) => mine.has(c)).length;
      if (need.threads === 'isolate') {
        if (used !== 1 || !core.every((c) => budget.usable(c))) return null;
        part.held.push(...core.filter((c) => !mine.has(c)));
      }
      if (need.threads === 'require') {
        if (core.length < 2 || !core.every((c) => budget.usable(c))) return null;
        part.held.push(...core.filter((c) => !mine.has(c)));
      }
    }
  }
  const memory = splitMemory(need.memoryMiB, parts.map((p) => p.pinned.length));
  parts.forEach((p, i) => { p.memoryMiB = memory[i]!; });
  if (parts.some((p) => budget.memoryShort(p.node, p.memoryMiB, need.hugepageKiB))) return null;
  let emulator: number[] | null = null;
  if (need.dedicatedEmulator) {
    const cpu = current.emulatorpin?.length === 1 ? current.emulatorpin[0]! : -1;
    const held = parts.flatMap((p) => p.held);
    const part = parts.find((p) => p.node === budget.nodeOf.get(cpu));
    if (!part || mine.has(cpu) || !(held.includes(cpu) || budget.usable(cpu))) return null;
    if (need.threads === 'isolate') {
      // as placed: a core of its own, its other threads held
      const core = budget.core(cpu);
      if (held.includes(cpu) || !core.every((c) => budget.usable(c))) return null;
      part.held.push(...core.filter((c) => c !== cpu));
    }
    emulator = [cpu];
    for (const p of parts) p.held = p.held.filter((c) => c !== cpu);
  }
  return build(need, parts, emulator, true, 'current pinning kept: valid and free');
}

/** The emulator CPU of a guest that asks for one: a thread its cores leave over, else a CPU of its first node picked like a vCPU. */
function emulatorCpu(budget: Budget, need: GuestNeed, parts: Array<{ node: number; pinned: number[]; held: number[] }>): number | null {
  // require: the thread its own cores leave over; isolate never puts it beside a vCPU
  if (need.threads === 'require') {
    for (const part of parts) {
      const spare = part.held[0];
      if (spare !== undefined) { part.held = part.held.slice(1); return spare; }
    }
  }
  const mine = parts.flatMap((p) => [...p.pinned, ...p.held]);
  mine.forEach((cpu) => budget.taken.add(cpu));
  try {
    for (const part of parts) {
      const got = budget.pick(part.node, 1, need.threads === 'require' ? 'prefer' : need.threads);
      if (got) { part.held.push(...got.held); return got.pinned[0]!; }
    }
    return null;
  } finally {
    mine.forEach((cpu) => budget.taken.delete(cpu));
  }
}

/** Tries the parts on the given nodes: vCPUs fill the nodes in order; null when something does not fit. */
function tryNodes(budget: Budget, need: GuestNeed, nodes: number[], even: boolean): Array<{ node: number; pinned: number[]; held: number[]; memoryMiB: number }> | null {
  const counts: number[] = [];
  let left = need.vcpus;
  for (let i = 0; i < nodes.length; i++) {
    const cap = budget.capacity(nodes[i]!, need.threads);
    const share = even ? Math.floor(need.vcpus / nodes.length) + (i < need.vcpus % nodes.length ? 1 : 0) : Math.min(left, cap);
    if (share > cap || share === 0) return null;
    counts.push(share);
    left -= share;
  }
  if (left !== 0) return null;
  // memory follows the vCPUs (Nova's even split when they divide evenly)
  const memory = splitMemory(need.memoryMiB, counts);
  const parts = [];
  for (let i = 0; i < nodes.length; i++) {
    if (budget.memoryShort(nodes[i]!, memory[i]!, need.hugepageKiB)) return null;
    const got = budget.pick(nodes[i]!, counts[i]!, need.threads);
    if (!got) return null;
    parts.push({ node: nodes[i]!, ...got, memoryMiB: memory[i]! });
  }
  return parts;
}

/** What the host lacks for the guest, for the error message. */
function shortfall(budget: Budget, need: GuestNeed, ids: number[]): string {
  if (need.threads === 'require' && budget.threadsPerCore < 2) return 'thread policy require needs SMT (thread siblings); this host has one thread per core';
  const per = ids.map((id) => {
    const cap = budget.capacity(id, need.threads);
    const short = budget.memoryShort(id, need.memoryMiB / Math.max(1, need.numaNodes ?? 1), need.hugepageKiB);
    return `node ${id}: ${cap} ${need.threads === 'isolate' ? 'free cores' : 'free CPUs'}${short ? `, memory short (needs ${short})` : ''}`;
  });
  const total = ids.reduce((sum, id) => sum + budget.capacity(id, need.threads), 0);
  const what = `${need.vcpus} vCPUs (thread policy ${need.threads}${need.dedicatedEmulator ? ', plus a dedicated emulator CPU' : ''}) and ${need.memoryMiB} MiB${need.hugepageKiB ? ` in ${need.hugepageKiB} KiB hugepages` : ''}`;
  const cpuGap = need.vcpus + (need.dedicatedEmulator ? 1 : 0) - total;
  return `no placement for ${what}${cpuGap > 0 ? `: ${cpuGap} CPUs short over all nodes` : ''} (${per.join('; ')})`;
}

function fitsOneNode(budget: Budget, need: GuestNeed): boolean {
  return budget.topology.nodes.some((node) => {
    const parts = tryNodes(budget, need, [node.id], false);
    return parts !== null && (!need.dedicatedEmulator || emulatorCpu(budget, need, parts) !== null);
  });
}

function place(budget: Budget, need: GuestNeed): GuestPlacement {
  const ids = budget.topology.nodes.map((n) => n.id).sort(byNumber);
  if (need.threads === 'require' && budget.threadsPerCore < 2) throw new PlacementError(need.name, shortfall(budget, need, ids));
  const near = nearNode(budget.topology, need);
  const sizes = need.numaNodes !== undefined ? [need.numaNodes] : ids.map((_, i) => i + 1);
  for (const k of sizes) {
    if (k > ids.length) break;
    for (const nodes of nodeSets(ids, k, near)) {
      const attempt = tryNodes(budget, need, nodes, need.numaNodes !== undefined);
      if (!attempt) continue;
      let emulator: number[] | null = null;
      if (need.dedicatedEmulator) {
        const cpu = emulatorCpu(budget, need, attempt);
        if (cpu === null) continue;
        emulator = [cpu];
      }
      const why = [
        k === 1 ? `fits node ${nodes[0]}` : need.numaNodes !== undefined ? `numa_nodes ${k}: split evenly over nodes ${nodes.join(',')}` : `larger than any node's free ${need.threads === 'isolate' ? 'cores' : 'CPUs'}: spans nodes ${nodes.join(',')}`,
        near !== undefined ? (nodes.includes(near) ? `near ${need.near} (node ${near})` : `node ${near} of ${need.near} is full`) : '',
        `threads ${need.threads}`,
      ].filter(Boolean);
      return build(need, attempt, emulator, false, why.join('; '));
    }
  }
  throw new PlacementError(need.name, shortfall(budget, need, ids));
}

function checkNeed(need: GuestNeed, topology: Topology): void {
  if (!Number.isInteger(need.vcpus) || need.vcpus < 1) throw new PlacementError(need.name, `vcpus must be a positive integer, got ${need.vcpus}`);
  if (!(need.memoryMiB > 0)) throw new PlacementError(need.name, `memory must be positive, got ${need.memoryMiB} MiB`);
  if (need.numaNodes !== undefined && (need.numaNodes < 1 || need.numaNodes > topology.nodes.length)) {
    throw new PlacementError(need.name, `numa_nodes ${need.numaNodes}: the host has ${topology.nodes.length} NUMA node(s)`);
  }
  if (need.numaNodes !== undefined && need.numaNodes > need.vcpus) throw new PlacementError(need.name, `numa_nodes ${need.numaNodes} exceeds its ${need.vcpus} vCPUs`);
}

/**
 * Places every guest. Guests whose current pinning is valid keep it (in name order, so
 * two guests claiming one CPU resolve the same way every run); the others are placed
 * largest first (first-fit decreasing), ties by name.
 */
export function placeGuests(input: PlacementInput): PlacementResult {
  const { topology } = input;
  const names = new Set<string>();
  for (const need of input.guests) {
    if (names.has(need.name)) throw new PlacementError(need.name, 'listed twice');
    names.add(need.name);
    checkNeed(need, topology);
  }
  const reserved = sorted(input.reserved ?? defaultReserved(topology));
  const budget = new Budget(topology, new Set(reserved));
  const byName = [...input.guests].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const out = new Map<string, GuestPlacement>();
  const fresh: GuestNeed[] = [];
  for (const need of byName) {
    const kept = keep(budget, need, input.current?.[need.name]);
    if (kept) { out.set(need.name, kept); budget.charge(kept, need); }
    else fresh.push(need);
  }
  // A kept guest spread over nodes although one node could now hold it (with every other
  // kept guest in place) is split needlessly: it is placed again. Adding guests only takes
  // capacity away, so this never moves a guest because another one was added.
  for (const need of byName) {
    const kept = out.get(need.name);
    if (!kept || kept.nodes.length < 2 || need.numaNodes !== undefined) continue;
    budget.charge(kept, need, -1);
    if (fitsOneNode(budget, need)) { out.delete(need.name); fresh.push(need); }
    else budget.charge(kept, need);
  }
  const weight = (n: GuestNeed) => n.vcpus * (n.threads === 'prefer' ? 1 : budget.threadsPerCore) + (n.dedicatedEmulator ? 1 : 0);
  fresh.sort((a, b) => weight(b) - weight(a) || b.memoryMiB - a.memoryMiB || (a.name < b.name ? -1 : 1));
  for (const need of fresh) {
    const placed = place(budget, need);
    if (input.current?.[need.name] && Object.keys(input.current[need.name]!.vcpupin).length) placed.reason = `re-placed (current pinning is not valid here); ${placed.reason}`;
    out.set(need.name, placed);
    budget.charge(placed, need);
  }
  const free = topology.nodes.map((node) => ({
    node: node.id,
    cpus: sorted(node.cpus.filter((cpu) => budget.usable(cpu))),
    ...(budget.memory.get(node.id) !== undefined ? { memoryMiB: budget.memory.get(node.id)! } : {}),
    hugepages: { ...budget.pages.get(node.id)! },
  }));
  return { reserved, guests: byName.map((need) => out.get(need.name)!), free };
}
