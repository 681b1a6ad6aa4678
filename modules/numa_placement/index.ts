/**
 * numa_placement: computes a NUMA-aware, stable placement of the selected libvirt guests
 * (placement.ts) and hands each guest's resulting pinning to libvirt_domain's planner,
 * so what changes live, what waits for a guest start, and the owned-element XML edit are
 * exactly libvirt_domain's. The probe is libvirt_domain's (host topology, hugepage pools
 * per node, PCI nodes, every domain's config, the selected running domains' pinning).
 */
import type { Element } from '@xmldom/xmldom';
import { defineModule, formatCpuList, parseCpuList, type Change, type FleetCheck, type FleetDiagnostic, type PlanContext, type HostFacts } from '../../src/kit/index.js';
import { libvirtDomain } from '../libvirt_domain/index.js';
import { childElements, findPath, parseXml, textOf, toKiB } from '../libvirt_domain/domain-xml.js';
import type { DomainParams } from '../libvirt_domain/params.js';
import { domainProbe, isActive, parseDomainProbe, type DomainActual, type DomainProbeState } from '../libvirt_domain/probe.js';
import { planDomain } from '../libvirt_domain/plan.js';
import { globMatch, memoryKiB, rulesFor } from '../libvirt_domain/rules.js';
import { PLACEMENT_SCHEMA, normalizePlacementParams, type PlacementGuestParams, type PlacementParams } from './params.js';
import { PlacementError, placeGuests, splitMemory, type CurrentPlacement, type GuestNeed, type GuestPlacement, type PlacementResult, type Topology } from './placement.js';

export const MODULE = 'numa_placement';

const entrySelects = (entry: { name?: string; pattern?: string }, name: string): boolean =>
  entry.name !== undefined ? entry.name === name : globMatch(entry.pattern ?? '', name);

const selectsAny = (params: PlacementParams, name: string): boolean => params.guests.some((entry) => entrySelects(entry, name));

/** libvirt_domain keys that pin or place a guest: a task setting one fights the placement. */
const PINNING_KEYS = ['vcpupin', 'emulatorpin', 'numatune', 'cpu.numa', 'vcpu.cpuset', 'vcpu.placement'] as const;

function pinningKeys(params: DomainParams): string[] {
  return PINNING_KEYS.filter((key) => {
    if (key === 'vcpupin' || key === 'emulatorpin') return params.cputune?.[key] !== undefined;
    if (key === 'numatune') return params.numatune !== undefined;
    if (key === 'cpu.numa') return params.cpu?.numa !== undefined;
    return params.vcpu?.[key === 'vcpu.cpuset' ? 'cpuset' : 'placement'] !== undefined;
  });
}

/** The probe libvirt_domain runs for a task selecting every domain: the selection is made in parse. */
function probeParams(params: PlacementParams): DomainParams {
  return { pattern: '*', uri: params.uri, restart: false, restart_timeout: params.restart_timeout, force_restart: false };
}

interface Selected { domain: DomainActual; entry: PlacementGuestParams; root: Element }

function selectDomains(params: PlacementParams, actual: DomainProbeState, context: PlanContext): Selected[] {
  const out: Selected[] = [];
  params.guests.forEach((entry, index) => {
    const matched = actual.domains.filter((domain) => entrySelects(entry, domain.name));
    if (!matched.length && entry.name !== undefined) throw new Error(`guests[${index}]: no libvirt domain named '${entry.name}' (virsh list --all)`);
    if (!matched.length) context.warn(`guests[${index}]: no libvirt domain matches '${entry.pattern}'`);
    for (const domain of matched) {
      const earlier = out.find((s) => s.domain.name === domain.name);
      if (earlier) throw new Error(`${domain.name} is selected by guests[${params.guests.indexOf(earlier.entry)}] and guests[${index}]; give each domain one set of needs`);
      if (domain.inactive === null) throw new Error(`${domain.name}: could not read its persistent config (virsh dumpxml --inactive failed)`);
      out.push({ domain, entry, root: parseXml(domain.inactive) });
    }
  });
  return out.sort((a, b) => (a.domain.name < b.domain.name ? -1 : 1));
}

/** The vCPU pinning and emulator pinning of the domain's persistent config: what the placement would rewrite. */
export function currentPinning(root: Element): CurrentPlacement {
  const cputune = findPath(root, [{ name: 'cputune' }]);
  const vcpupin: Record<number, number[]> = {};
  for (const pin of cputune ? childElements(cputune, 'vcpupin') : []) {
    const cpuset = pin.getAttribute('cpuset');
    if (cpuset) vcpupin[Number(pin.getAttribute('vcpu'))] = parseCpuList(cpuset);
  }
  const emulator = cputune ? childElements(cputune, 'emulatorpin')[0]?.getAttribute('cpuset') : undefined;
  return { vcpupin, ...(emulator ? { emulatorpin: parseCpuList(emulator) } : {}) };
}

function needOf({ domain, entry, root }: Selected, defaultPageKiB: number | null): GuestNeed {
  const vcpus = entry.vcpus ?? Number(textOf(findPath(root, [{ name: 'vcpu' }])) || 1);
  const hugepageKiB = entry.hugepages ? entry.hugepages.sizeKiB : undefined;
  if (entry.hugepages && !hugepageKiB && !defaultPageKiB) throw new Error(`${domain.name}: no hugepage size`);
  return {
    name: domain.name, vcpus, memoryMiB: Math.ceil(memoryKiB(root) / 1024), threads: entry.threads, dedicatedEmulator: entry.emulator === 'dedicated',
    ...(hugepageKiB ? { hugepageKiB } : {}), ...(entry.near ? { near: entry.near } : {}), ...(entry.numa_nodes ? { numaNodes: entry.numa_nodes } : {}),
  };
}

/**
 * Pages a running guest already backed by hugepages holds: free to it, not free to others.
 * They are counted on the nodes libvirt reports for it (none when it has no node policy).
 */
function heldPages(actual: DomainProbeState, selected: Selected[]): Map<string, number> {
  const held = new Map<string, number>();
  for (const { domain } of selected) {
    if (!isActive(domain)) continue;
    const live = parseXml(domain.live!);
    const page = findPath(live, [{ name: 'memoryBacking' }, { name: 'hugepages' }, { name: 'page' }]);
    const backed = findPath(live, [{ name: 'memoryBacking' }, { name: 'hugepages' }]);
    const sizeKiB = page ? toKiB(page.getAttribute('size') ?? 0, page.getAttribute('unit') ?? 'KiB') : backed ? actual.host.defaultHugepageKiB : null;
    const nodeset = actual.host.running.find((r) => r.name === domain.name)?.libvirt.numaNodeset;
    if (!sizeKiB || !nodeset) continue;
    const nodes = parseCpuList(nodeset);
    const pages = splitMemory(Math.ceil(memoryKiB(live) / sizeKiB), nodes.map(() => 1));
    nodes.forEach((node, i) => held.set(`${node}/${sizeKiB}`, (held.get(`${node}/${sizeKiB}`) ?? 0) + pages[i]!));
  }
  return held;
}

/** The host as the engine sees it: online CPUs per node, siblings, free hugepages (plus those the guests hold), node memory, devices. */
export function topologyOf(actual: DomainProbeState, facts: HostFacts, held: Map<string, number>): Topology {
  const { host } = actual;
  const online = new Set(host.cpusOnline.length ? host.cpusOnline : facts.cpusOnline);
  const nodes = host.nodes.length ? host.nodes : [{ id: 0, cpus: [...online] }];
  return {
    nodes: nodes.map((node) => {
      const memTotal = facts.numaNodes.find((n) => n.id === node.id)?.memTotalKiB;
      const pools = host.hugepages.filter((pool) => pool.node === node.id);
      return {
        id: node.id,
        cpus: node.cpus.filter((cpu) => online.has(cpu)),
        ...(memTotal ? { memoryMiB: Math.floor(memTotal / 1024) } : {}),
        hugepages: Object.fromEntries(pools.map((pool) => [pool.sizeKiB, pool.free + (held.get(`${node.id}/${pool.sizeKiB}`) ?? 0)])),
      };
    }),
    siblings: Object.fromEntries(host.cpus.map((cpu) => [cpu.id, cpu.siblings.length ? cpu.siblings : [cpu.id]])),
    devices: host.pci.flatMap((device) => [{ name: device.address, node: device.node }, ...device.netdevs.map((name) => ({ name, node: device.node }))]),
  };
}

/** What libvirt_domain is asked to make of one placed guest. */
export function desiredTuning(params: PlacementParams, selected: Selected, placed: GuestPlacement): DomainParams {
  const { entry, root } = selected;
  const raw: Record<string, unknown> = {
    name: placed.name, uri: params.uri, restart: params.restart, restart_timeout: params.restart_timeout, force_restart: params.force_restart,
    ...(entry.vcpus ? { vcpu: { count: entry.vcpus } } : {}),
    cputune: { vcpupin: Object.fromEntries(placed.vcpupin.map((cpu, vcpu) => [vcpu, String(cpu)])), emulatorpin: formatCpuList(placed.emulatorpin) },
    numatune: { mode: placed.numatune.mode, nodeset: formatCpuList(placed.numatune.nodeset) },
  };
  if (placed.cells) {
    // the cells' memory must add up to the guest's exactly: split its KiB the way the placement split its MiB
    const kib = splitMemory(memoryKiB(root), placed.cells.map((cell) => cell.vcpus.length));
    raw.cpu = { numa: placed.cells.map((cell, i) => ({ id: cell.id, cpus: formatCpuList(cell.vcpus), memory_kib: kib[i]! })) };
  }
  if (entry.hugepages) raw.memory_backing = { hugepages: { size_kib: entry.hugepages.sizeKiB } };
  if (entry.hugepages === false) raw.memory_backing = { hugepages: false };
  return libvirtDomain.normalize!(raw);
}

const pad = (rows: string[][]): string[] => {
  const widths = rows[0]!.map((_, col) => Math.max(...rows.map((row) => row[col]!.length)));
  return rows.map((row) => row.map((cell, col) => (col === row.length - 1 ? cell : cell.padEnd(widths[col]!))).join('  '));
};

/** The placement as a table: guest, node(s), CPUs (in vCPU order), emulator, memory, hugepages, why. */
export function placementTable(result: PlacementResult, needs: GuestNeed[]): string {
  const rows = [['guest', 'node', 'CPUs', 'emulator', 'memory', 'hugepages', 'why']];
  for (const g of result.guests) {
    const need = needs.find((n) => n.name === g.name)!;
    const memory = Object.entries(g.memoryByNode).map(([node, mib]) => `${mib} MiB@${node}`).join(',');
    const pages = need.hugepageKiB ? `${need.hugepageKiB === 1048576 ? '1G' : need.hugepageKiB === 2048 ? '2M' : `${need.hugepageKiB}K`}@${formatCpuList(g.hugepageNodes)}` : '-';
    rows.push([g.name, formatCpuList(g.nodes), g.vcpupin.join(','), formatCpuList(g.emulatorpin), `${memory} ${g.numatune.mode}`, pages, g.reason]);
  }
  const free = result.free.map((f) => `node ${f.node}: ${formatCpuList(f.cpus) || 'none'}`).join('; ');
  return [`placement (reserved CPUs ${formatCpuList(result.reserved) || 'none'}):`, ...pad(rows), `free CPUs after placement: ${free}`].join('\n');
}

function checkConflicts(params: PlacementParams, selected: Selected[], context: PlanContext): void {
  for (const task of context.tasks) {
    if (task.module !== libvirtDomain.name) continue;
    const other = task.params as DomainParams;
    const keys = pinningKeys(other);
    if (!keys.length) continue;
    const both = selected.filter(({ domain }) => (other.name !== undefined ? other.name === domain.name : globMatch(other.pattern ?? '', domain.name)));
    if (both.length) throw new Error(`libvirt_domain task '${task.name}' sets ${keys.join(', ')} of ${both.map((s) => s.domain.name).join(', ')}, which this placement pins; drop those keys there or the domain here`);
  }
}

/**
 * Each task's `virsh define` is guarded by the sha256 of the config it planned against:
 * when another task of the play also edits a placed domain's config in this run, the
 * later define finds the config changed and fails the host; a re-run converges.
 */
function warnSharedDefines(selected: Selected[], changes: Change[], context: PlanContext): void {
  for (const { domain } of selected) {
    if (!changes.some((c) => c.target === `${domain.name}/config`)) continue;
    for (const task of context.tasks) {
      if (task.module !== libvirtDomain.name) continue;
      const other = task.params as DomainParams;
      if (!(other.name !== undefined ? other.name === domain.name : globMatch(other.pattern ?? '', domain.name))) continue;
      if (planDomain(other, domain).some((c) => c.scope === 'persist')) {
        context.warn(`libvirt_domain task '${task.name}' also edits the config of ${domain.name} in this run: the define that runs second finds the config changed and fails; a second run converges (or apply the two in separate runs)`);
      }
    }
  }
}

export const numaPlacement = defineModule<PlacementParams, DomainProbeState>({
  name: MODULE,
  summary: 'NUMA-aware automatic placement of libvirt guests: vcpupin, emulatorpin, numatune, guest NUMA cells, hugepage nodes, stable across runs',
  schema: PLACEMENT_SCHEMA,
  normalize: normalizePlacementParams,

  probe: (params) => domainProbe(probeParams(params)),
  parse: (output, params) => parseDomainProbe(output, (name) => selectsAny(params, name)),
  planState: (actual, params) => libvirtDomain.planState!(actual, probeParams(params)),

  rules(params, facts) {
    if (params.reserved === undefined || !facts.cpusOnline.length) return [];
    const offline = parseCpuList(params.reserved).filter((cpu) => !facts.cpusOnline.includes(cpu));
    return offline.length ? [{ severity: 'warning', message: `reserved: CPU ${formatCpuList(offline)} is not online on this host` }] : [];
  },

  diff(params, actual, context) {
    if (!actual.host.virsh) throw new Error('virsh is not installed on this host (install libvirt-clients, or libvirt-client on RHEL)');
    const selected = selectDomains(params, actual, context);
    if (!selected.length) return [];
    checkConflicts(params, selected, context);
    const needs = selected.map((s) => needOf(s, actual.host.defaultHugepageKiB));
    let result: PlacementResult;
    try {
      result = placeGuests({
        topology: topologyOf(actual, context.facts, heldPages(actual, selected)),
        ...(params.reserved !== undefined ? { reserved: parseCpuList(params.reserved) } : {}),
        guests: needs,
        current: Object.fromEntries(selected.map((s) => [s.domain.name, currentPinning(s.root)])),
      });
    } catch (error) {
      if (error instanceof PlacementError) throw new Error(`placement not possible, nothing written: ${error.message}`);
      throw error;
    }
    const desired = selected.map((s) => desiredTuning(params, s, result.guests.find((g) => g.name === s.domain.name)!));
    const changes: Change[] = [];
    selected.forEach((s, i) => {
      const want = desired[i]!;
      const errors = rulesFor(want, context.facts).filter((d) => d.severity === 'error');
      if (errors.length) throw new Error(errors.map((d) => d.message).join('; '));
      // libvirt_domain plans this one domain, seeing the play's other placed guests as its sibling tasks (hugepage sums)
      const only: DomainProbeState = { ...actual, domains: actual.domains.map((d) => ({ ...d, matched: d.name === s.domain.name })) };
      const siblings = desired.filter((_, j) => j !== i).map((p) => ({ module: libvirtDomain.name, name: `${MODULE} ${p.name}`, params: p as unknown }));
      const planned = libvirtDomain.diff(want, only, { ...context, tasks: [...context.tasks, ...siblings] });
      const row = result.guests.find((g) => g.name === s.domain.name)!;
      for (const change of planned) {
        // libvirt_domain's change, with the commands it planned, told as this module's
        const placedWhy = `placed: node ${formatCpuList(row.nodes)}, ${row.reason}`;
        changes.push({ ...change, module: MODULE, reason: change.reason ? `${change.reason}; ${placedWhy}` : placedWhy });
      }
    });
    warnSharedDefines(selected, changes, context);
    // check mode shows the whole placement once, beside the first change
    if (changes.length) changes[0] = { ...changes[0]!, reason: `${changes[0]!.reason}\n${placementTable(result, needs)}` };
    return changes;
  },
});

/** Host tasks of libvirt_domain that pin a domain a numa_placement task of the same host places (as far as names and globs tell before connecting). */
export const placementConflicts: FleetCheck = (tasks) => {
  const out: FleetDiagnostic[] = [];
  for (const task of tasks) {
    if (task.module !== MODULE) continue;
    const placement = task.params as PlacementParams;
    const twin = tasks.find((other) => other !== task && other.host === task.host && other.module === MODULE);
    if (twin && tasks.indexOf(twin) > tasks.indexOf(task)) out.push({ severity: 'error', message: `two numa_placement tasks ('${task.name}', '${twin.name}'); place all guests of a host in one task`, task });
    for (const other of tasks) {
      if (other.host !== task.host || other.module !== libvirtDomain.name) continue;
      const domain = other.params as DomainParams;
      const keys = pinningKeys(domain);
      if (!keys.length) continue;
      const clash = placement.guests.some((entry) =>
        (domain.name !== undefined && entrySelects(entry, domain.name)) ||
        (entry.name !== undefined && domain.pattern !== undefined && globMatch(domain.pattern, entry.name)) ||
        (entry.pattern !== undefined && (entry.pattern === domain.pattern || entry.pattern === '*' || domain.pattern === '*')));
      if (clash) out.push({ severity: 'error', message: `libvirt_domain task '${other.name}' sets ${keys.join(', ')} of a domain numa_placement task '${task.name}' places; one of them must leave the pinning`, task: other });
    }
  }
  return out;
};
