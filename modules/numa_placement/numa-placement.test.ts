import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  PlacementError, defaultReserved, placeGuests,
  type CurrentPlacement, type GuestNeed, type GuestPlacement, type PlacementInput, type PlacementResult, type ThreadPolicy, type Topology,
} from './placement.js';

/** mulberry32: a small seeded PRNG, so every failing case can be replayed from its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const intIn = (r: () => number, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
const pickOf = <T>(r: () => number, items: readonly T[]): T => items[Math.floor(r() * items.length)]!;

/** 1-8 nodes, SMT on or off, asymmetric core counts, Linux-style (sibling = cpu + half) or packed numbering, some CPUs offline. */
function genTopology(r: () => number): Topology {
  const nodeCount = intIn(r, 1, 8);
  const threads = r() < 0.5 ? 1 : 2;
  const cores = Array.from({ length: nodeCount }, () => intIn(r, 1, 6));
  const total = cores.reduce((a, b) => a + b, 0);
  const linuxStyle = r() < 0.5;
  const siblings: Record<number, number[]> = {};
  const nodes: Topology['nodes'] = [];
  let packed = 0;
  let coreIndex = 0;
  for (let n = 0; n < nodeCount; n++) {
    const cpus: number[] = [];
    for (let c = 0; c < cores[n]!; c++, coreIndex++) {
      const ids = linuxStyle ? Array.from({ length: threads }, (_, t) => coreIndex + t * total) : Array.from({ length: threads }, () => packed++);
      for (const id of ids) siblings[id] = ids;
      cpus.push(...ids);
    }
    const online = cpus.filter(() => r() > 0.1);
    nodes.push({
      id: n, cpus: online.sort((a, b) => a - b), memoryMiB: intIn(r, 1, 16) * 1024,
      hugepages: { 2048: intIn(r, 0, 4096), 1048576: intIn(r, 0, 8) },
    });
  }
  const devices = Array.from({ length: intIn(r, 0, 3) }, (_, i) => ({ name: `0000:0${i}:00.0`, node: intIn(r, -1, nodeCount - 1) }));
  return { nodes, siblings, devices };
}

function genGuest(r: () => number, topology: Topology, name: string): GuestNeed {
  const need: GuestNeed = {
    name, vcpus: intIn(r, 1, 6), memoryMiB: intIn(r, 1, 16) * 256,
    threads: pickOf<ThreadPolicy>(r, ['prefer', 'prefer', 'isolate', 'require']), dedicatedEmulator: r() < 0.3,
  };
  const size = pickOf(r, [undefined, undefined, 2048, 1048576]);
  if (size) need.hugepageKiB = size;
  if (topology.devices.length && r() < 0.3) need.near = pickOf(r, topology.devices).name;
  if (r() < 0.15) need.numaNodes = intIn(r, 1, Math.min(topology.nodes.length, need.vcpus));
  return need;
}

function genReserved(r: () => number, topology: Topology): number[] | undefined {
  const mode = intIn(r, 0, 2);
  if (mode === 0) return undefined;
  if (mode === 1) return [];
  return topology.nodes.flatMap((n) => n.cpus).filter(() => r() < 0.2);
}

const currentOf = (result: PlacementResult): Record<string, CurrentPlacement> =>
  Object.fromEntries(result.guests.map((g) => [g.name, { vcpupin: Object.fromEntries(g.vcpupin.map((cpu, v) => [v, [cpu]])), emulatorpin: g.emulatorpin }]));

/** A placement without the words that say how it came about. */
const shape = ({ kept: _kept, reason: _reason, ...rest }: GuestPlacement) => rest;

/** Places guests one by one, each with the previous result as current: a feasible set, built as an operator would grow it. */
function grow(topology: Topology, reserved: number[] | undefined, needs: GuestNeed[]): { input: PlacementInput; result: PlacementResult } {
  let accepted: GuestNeed[] = [];
  let result = placeGuests({ topology, reserved, guests: [] });
  for (const need of needs) {
    try {
      const next = placeGuests({ topology, reserved, guests: [...accepted, need], current: currentOf(result) });
      accepted = [...accepted, need];
      result = next;
    } catch (error) {
      assert.ok(error instanceof PlacementError, String(error));
      assert.equal(error.guest, need.name, 'the error names the guest that does not fit');
    }
  }
  return { input: { topology, reserved, guests: accepted }, result };
}

function checkInvariants(input: PlacementInput, result: PlacementResult, seed: number): void {
  const { topology } = input;
  const nodeOf = new Map(topology.nodes.flatMap((n) => n.cpus.map((cpu) => [cpu, n.id] as const)));
  const reserved = new Set(result.reserved);
  const owner = new Map<number, string>();
  const pages = new Map<string, number>();
  const memory = new Map<number, number>();
  const msg = (what: string) => `seed ${seed}: ${what}`;
  for (const g of result.guests) {
    const need = input.guests.find((n) => n.name === g.name)!;
    const emulatorOwn = need.dedicatedEmulator ? g.emulatorpin : [];
    for (const cpu of [...g.vcpupin, ...g.held, ...emulatorOwn]) {
      assert.ok(!owner.has(cpu), msg(`CPU ${cpu} given to ${owner.get(cpu)} and ${g.name}`));
      owner.set(cpu, g.name);
    }
    for (const cpu of [...g.vcpupin, ...g.emulatorpin, ...g.held]) {
      assert.ok(!reserved.has(cpu), msg(`${g.name} on reserved CPU ${cpu}`));
      assert.ok(nodeOf.has(cpu), msg(`${g.name} on offline CPU ${cpu}`));
    }
    assert.equal(g.vcpupin.length, need.vcpus, msg(`${g.name}: one CPU per vCPU`));
    assert.equal(new Set(g.vcpupin).size, need.vcpus, msg(`${g.name}: distinct vCPU CPUs`));
    const cpuNodes = [...new Set(g.vcpupin.map((cpu) => nodeOf.get(cpu)!))].sort((a, b) => a - b);
    assert.deepEqual(cpuNodes, g.numatune.nodeset, msg(`${g.name}: memory nodes are the CPUs' nodes`));
    assert.deepEqual([...g.nodes].sort((a, b) => a - b), g.numatune.nodeset);
    assert.ok(g.emulatorpin.every((cpu) => g.nodes.includes(nodeOf.get(cpu)!)), msg(`${g.name}: emulator on the guest's nodes`));
    assert.deepEqual(Object.keys(g.memoryByNode).map(Number).sort((a, b) => a - b), g.numatune.nodeset);
    assert.equal(Object.values(g.memoryByNode).reduce((a, b) => a + b, 0), need.memoryMiB);
    if (need.numaNodes !== undefined) assert.equal(g.nodes.length, need.numaNodes, msg(`${g.name}: numa_nodes`));
    if (g.nodes.length > 1) {
      const cells = g.cells!;
      assert.deepEqual(cells.flatMap((c) => c.vcpus), g.vcpupin.map((_, v) => v), msg(`${g.name}: cells partition the vCPUs`));
      for (const cell of cells) {
        assert.ok(cell.vcpus.every((v) => nodeOf.get(g.vcpupin[v]!) === cell.hostNode), msg(`${g.name}: cell ${cell.id} mirrors node ${cell.hostNode}`));
        assert.equal(cell.memoryMiB, g.memoryByNode[cell.hostNode]);
      }
    } else assert.equal(g.cells, undefined);
    if (need.threads === 'require') {
      for (const cpu of g.vcpupin) assert.ok((topology.siblings[cpu] ?? [cpu]).filter((c) => nodeOf.has(c)).length > 1, msg(`${g.name}: require on a core without siblings`));
    }
    for (const [node, mib] of Object.entries(g.memoryByNode)) {
      if (need.hugepageKiB) {
        const key = `${node}/${need.hugepageKiB}`;
        pages.set(key, (pages.get(key) ?? 0) + Math.ceil((mib * 1024) / need.hugepageKiB));
      } else memory.set(Number(node), (memory.get(Number(node)) ?? 0) + mib);
    }
  }
  // isolate: no other vCPU (own or another guest's) on an isolated vCPU's core
  for (const g of result.guests) {
    if (input.guests.find((n) => n.name === g.name)!.threads !== 'isolate') continue;
    for (const cpu of g.vcpupin) {
      const others = (topology.siblings[cpu] ?? [cpu]).filter((c) => c !== cpu && nodeOf.has(c));
      for (const c of others) {
        assert.ok(!result.guests.some((h) => h.vcpupin.includes(c)), msg(`${g.name}: isolated core of CPU ${cpu} shares ${c}`));
      }
    }
  }
  for (const node of topology.nodes) {
    for (const [size, free] of Object.entries(node.hugepages)) {
      assert.ok((pages.get(`${node.id}/${size}`) ?? 0) <= free, msg(`node ${node.id}: ${size} KiB hugepages over budget`));
    }
    if (node.memoryMiB !== undefined) assert.ok((memory.get(node.id) ?? 0) <= node.memoryMiB, msg(`node ${node.id}: memory over budget`));
  }
}

const SEEDS = 400;

test('property: generated topologies and guest sets keep every placement invariant', () => {
  let placed = 0;
  for (let seed = 1; seed <= SEEDS; seed++) {
    const r = prng(seed);
    const topology = genTopology(r);
    const reserved = genReserved(r, topology);
    const needs = Array.from({ length: intIn(r, 1, 8) }, (_, i) => genGuest(r, topology, `g${i}`));
    const { input, result } = grow(topology, reserved, needs);
    checkInvariants(input, result, seed);
    placed += result.guests.length;
  }
  assert.ok(placed > SEEDS, `the generator places guests (${placed} over ${SEEDS} seeds)`);
});

test('property: deterministic, whatever the order the guests come in', () => {
  for (let seed = 1; seed <= SEEDS; seed++) {
    const r = prng(seed);
    const topology = genTopology(r);
    const reserved = genReserved(r, topology);
    const needs = Array.from({ length: intIn(r, 1, 8) }, (_, i) => genGuest(r, topology, `g${i}`));
    const { input } = grow(topology, reserved, needs);
    // from scratch the set may not fit (it was grown in another order): then the same error both times
    const run = (guests: GuestNeed[]) => { try { return placeGuests({ ...input, guests, current: {} }); } catch (error) { return String(error); } };
    const a = run(input.guests);
    assert.deepEqual(run([...input.guests].reverse()), a, `seed ${seed}`);
    assert.deepEqual(run(input.guests), a, `seed ${seed}`);
    if (typeof a !== 'string') checkInvariants(input, a, seed);
  }
});

test('property: stable; a placement given back is kept, and adding a guest moves no other', () => {
  let added = 0;
  for (let seed = 1; seed <= SEEDS; seed++) {
    const r = prng(seed);
    const topology = genTopology(r);
    const reserved = genReserved(r, topology);
    const guests = Array.from({ length: intIn(r, 1, 6) }, (_, i) => genGuest(r, topology, `g${i}`));
    let first: PlacementResult;
    try {
      first = placeGuests({ topology, reserved, guests });
    } catch (error) {
      assert.ok(error instanceof PlacementError && guests.some((g) => g.name === error.guest), `seed ${seed}: ${String(error)}`);
      continue;
    }
    const again = placeGuests({ topology, reserved, guests, current: currentOf(first) });
    assert.deepEqual(again.guests.map(shape), first.guests.map(shape), `seed ${seed}: kept`);
    assert.ok(again.guests.every((g) => g.kept), `seed ${seed}: every guest kept`);
    const extra = genGuest(r, topology, 'new');
    let more: PlacementResult;
    try {
      more = placeGuests({ topology, reserved, guests: [...guests, extra], current: currentOf(first) });
    } catch (error) {
      assert.ok(error instanceof PlacementError && error.guest === 'new', `seed ${seed}: only the new guest may fail: ${String(error)}`);
      continue;
    }
    added++;
    assert.deepEqual(more.guests.filter((g) => g.name !== 'new').map(shape), first.guests.map(shape), `seed ${seed}: others stay`);
    checkInvariants({ topology, reserved, guests: [...guests, extra] }, more, seed);
  }
  assert.ok(added > SEEDS / 4, `guests were added (${added})`);
});

// ---- Golden cases: Nova's documented rules on one host -------------------------------------
// Host: 2 NUMA nodes, 4 cores x 2 threads each, Linux numbering (sibling of CPU n is n+8):
// node 0 = CPUs 0-3,8-11, node 1 = CPUs 4-7,12-15; every CPU in cpu_dedicated_set (reserved: []).
// Nova fits an instance to host cells in order when packing ([compute]
// packing_host_numa_cells_allocation_strategy = true); kvmconf always packs.
const NOVA_HOST: Topology = {
  nodes: [
    { id: 0, cpus: [0, 1, 2, 3, 8, 9, 10, 11], memoryMiB: 16384, hugepages: { 2048: 4096, 1048576: 4 } },
    { id: 1, cpus: [4, 5, 6, 7, 12, 13, 14, 15], memoryMiB: 16384, hugepages: { 2048: 4096, 1048576: 4 } },
  ],
  siblings: Object.fromEntries(Array.from({ length: 16 }, (_, cpu) => [cpu, [cpu % 8, (cpu % 8) + 8]])),
  devices: [{ name: '0000:81:00.0', node: 1 }, { name: 'ens1f0', node: 1 }],
};
const NO_SMT: Topology = {
  nodes: [{ id: 0, cpus: [0, 1, 2, 3], hugepages: {} }, { id: 1, cpus: [4, 5, 6, 7], hugepages: {} }],
  siblings: Object.fromEntries(Array.from({ length: 8 }, (_, cpu) => [cpu, [cpu]])), devices: [],
};
const flavor = (name: string, vcpus: number, memoryMiB: number, extra: Partial<GuestNeed> = {}): GuestNeed => ({ name, vcpus, memoryMiB, threads: 'prefer', dedicatedEmulator: false, ...extra });
const one = (topology: Topology, need: GuestNeed, reserved: number[] = []) => placeGuests({ topology, reserved, guests: [need] }).guests[0]!;

test('golden (Nova hw:cpu_thread_policy=prefer): vCPUs placed on thread siblings when possible', () => {
  const g = one(NOVA_HOST, flavor('prefer4', 4, 4096));
  assert.deepEqual(g.vcpupin, [0, 8, 1, 9]);
  assert.deepEqual(g.numatune, { mode: 'strict', nodeset: [0] });
  assert.deepEqual(g.emulatorpin, [0, 1, 8, 9], 'without a dedicated emulator CPU the emulator floats over the guest\'s pCPUs (Nova hw:emulator_threads_policy unset)');
});

test('golden (Nova hw:cpu_thread_policy=isolate): each vCPU on its own core, the sibling threads unusable by any guest', () => {
  const g = one(NOVA_HOST, flavor('iso2', 2, 2048, { threads: 'isolate' }));
  assert.deepEqual(g.vcpupin, [0, 1]);
  assert.deepEqual(g.held, [8, 9]);
  // isolate on a host without SMT: "each vCPU is placed on a different core as expected"
  assert.deepEqual(one(NO_SMT, flavor('iso2', 2, 2048, { threads: 'isolate' })).vcpupin, [0, 1]);
});

test('golden (Nova hw:cpu_thread_policy=require): vCPUs on thread siblings; a host without SMT is not used', () => {
  assert.deepEqual(one(NOVA_HOST, flavor('req4', 4, 4096, { threads: 'require' })).vcpupin, [0, 8, 1, 9]);
  assert.throws(() => one(NO_SMT, flavor('req4', 4, 4096, { threads: 'require' })), /req4: thread policy require needs SMT/);
});

test('golden (Nova hw:numa_nodes=2): vCPUs and memory divided evenly over two guest NUMA nodes on two host cells', () => {
  const g = one(NOVA_HOST, flavor('numa2', 4, 4096, { numaNodes: 2 }));
  assert.deepEqual(g.cells, [{ id: 0, hostNode: 0, vcpus: [0, 1], memoryMiB: 2048 }, { id: 1, hostNode: 1, vcpus: [2, 3], memoryMiB: 2048 }]);
  assert.deepEqual(g.vcpupin, [0, 8, 4, 12]);
  assert.deepEqual(g.numatune.nodeset, [0, 1]);
});

test('golden (Nova: one guest NUMA node by default, hw:numa_nodes=1): a flavor larger than a host cell does not fit', () => {
  assert.throws(() => one(NOVA_HOST, flavor('big', 10, 4096, { numaNodes: 1 })), (e: unknown) => e instanceof PlacementError && e.guest === 'big' && /2 CPUs short|node 0: 8 free CPUs/.test(e.message));
  // kvmconf without numa_nodes: the guest spans the nodes it needs, cells mirroring them
  const g = one(NOVA_HOST, flavor('big', 10, 10240));
  assert.deepEqual(g.cells?.map((c) => [c.hostNode, c.vcpus.length, c.memoryMiB]), [[0, 8, 8192], [1, 2, 2048]]);
});

test('golden (Nova hw:emulator_threads_policy=isolate): one more dedicated pCPU for the emulator threads', () => {
  const g = one(NOVA_HOST, flavor('emu', 2, 2048, { dedicatedEmulator: true }));
  assert.deepEqual(g.vcpupin, [0, 8]);
  assert.deepEqual(g.emulatorpin, [1]);
});

test('golden (Nova hw:pci_numa_affinity_policy=preferred): the device\'s node when it fits, else another', () => {
  assert.deepEqual(one(NOVA_HOST, flavor('net', 2, 2048, { near: 'ens1f0' })).nodes, [1]);
  const busy = placeGuests({ topology: NOVA_HOST, reserved: [], guests: [flavor('a-fill', 8, 1024, { near: '0000:81:00.0' }), flavor('net', 2, 2048, { near: 'ens1f0' })] });
  const net = busy.guests.find((g) => g.name === 'net')!;
  assert.deepEqual(net.nodes, [0]);
  assert.match(net.reason, /node 1 of ens1f0 is full/);
});

test('golden (Nova hugepages, hw:mem_page_size): the guest goes to the cell whose pool has the pages', () => {
  const host: Topology = { ...NOVA_HOST, nodes: NOVA_HOST.nodes.map((n) => ({ ...n, hugepages: { 1048576: n.id === 0 ? 1 : 4 } })) };
  const g = one(host, flavor('hp', 2, 4096, { hugepageKiB: 1048576 }));
  assert.deepEqual(g.nodes, [1]);
  assert.deepEqual(g.hugepageNodes, [1]);
  assert.throws(() => one(host, flavor('hp', 2, 6144, { hugepageKiB: 1048576, numaNodes: 1 })), /hp: no placement .*6 1048576 KiB hugepages on node 1, 4 free/);
});

test('reserved CPUs: the first core of every node by default', () => {
  assert.deepEqual(defaultReserved(NOVA_HOST), [0, 4, 8, 12]);
  const g = placeGuests({ topology: NOVA_HOST, guests: [flavor('a', 2, 1024)] }).guests[0]!;
  assert.deepEqual(g.vcpupin, [1, 9]);
});

test('a current pinning that is not valid (reserved CPU, two guests on one CPU) is re-placed with the reason', () => {
  const result = placeGuests({
    topology: NOVA_HOST, reserved: [0, 8],
    guests: [flavor('a', 2, 1024), flavor('b', 2, 1024)],
    current: { a: { vcpupin: { 0: [1], 1: [9] } }, b: { vcpupin: { 0: [1], 1: [0] } } },
  });
  const [a, b] = result.guests;
  assert.equal(a!.kept, true);
  assert.deepEqual(b!.vcpupin, [2, 10]);
  assert.match(b!.reason, /re-placed/);
  assert.deepEqual(result.free.map((f) => f.cpus), [[3, 11], [4, 5, 6, 7, 12, 13, 14, 15]]);
});
