/**
 * libvirt_domain validation. rulesFor() checks parameters against the engine's host
 * facts (before the probe is read); domainDiagnostics() and hugepageDiagnostics()
 * check against the domain XML and libvirt-facts (in diff, before anything is
 * written). Errors name the guest and the setting.
 */
import type { Element } from '@xmldom/xmldom';
import { formatCpuList, parseCpuList, type Diagnostic, type HostFacts } from '../../src/kit/index.js';
import { childElements, findPath, parseXml, textOf, toKiB } from './domain-xml.js';
import { nodeOfCpu, type LibvirtHostFacts } from './facts.js';
import { IOTUNE_KEYS, type DomainParams } from './params.js';
import { readCells } from './leafset.js';
import type { DomainActual, DomainProbeState } from './probe.js';

const error = (message: string): Diagnostic => ({ severity: 'error', message });
const warning = (message: string): Diagnostic => ({ severity: 'warning', message });

export function taskLabel(params: DomainParams): string {
  return params.name ?? `domains matching '${params.pattern}'`;
}

/** Every cpuset the task states, with the setting that states it. */
function statedCpusets(params: DomainParams): Array<[string, string]> {
  return [
    ...(params.vcpu?.cpuset ? [['vcpu.cpuset', params.vcpu.cpuset] as [string, string]] : []),
    ...Object.entries(params.cputune?.vcpupin ?? {}).map(([v, c]) => [`cputune.vcpupin[${v}]`, c] as [string, string]),
    ...(params.cputune?.emulatorpin ? [['cputune.emulatorpin', params.cputune.emulatorpin] as [string, string]] : []),
  ];
}

function nodesOf(cpus: number[], facts: HostFacts): number[] {
  return [...new Set(cpus.map((cpu) => facts.numaNodes.find((n) => n.cpus.includes(cpu))?.id ?? 0))].sort();
}

function cpuRules(params: DomainParams, facts: HostFacts, who: string): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const [setting, cpus] of statedCpusets(params)) {
    const offline = parseCpuList(cpus).filter((cpu) => !facts.cpusOnline.includes(cpu));
    if (offline.length) out.push(error(`${who}: ${setting}: CPU ${formatCpuList(offline)} is not online on this host (online: ${formatCpuList(facts.cpusOnline)})`));
  }
  const pins = Object.values(params.cputune?.vcpupin ?? {}).flatMap(parseCpuList);
  const emulator = params.cputune?.emulatorpin;
  if (emulator && pins.length) {
    const vcpuNodes = nodesOf(pins, facts);
    const away = nodesOf(parseCpuList(emulator), facts).filter((n) => !vcpuNodes.includes(n));
    if (away.length) out.push(warning(`${who}: cputune.emulatorpin runs on NUMA node ${away.join(',')} but the vCPUs are pinned to node ${vcpuNodes.join(',')}: keep emulator threads on the guest's node`));
  }
  const count = params.vcpu?.count;
  if (count !== undefined && params.vcpu?.current !== undefined && params.vcpu.current > count) out.push(error(`${who}: vcpu.current ${params.vcpu.current} is above vcpu.count ${count}`));
  return out;
}

function nodeRules(params: DomainParams, facts: HostFacts, who: string): Diagnostic[] {
  const nodes = facts.numaNodes.length ? facts.numaNodes.map((n) => n.id) : [0];
  const nodesets: Array<[string, string]> = [];
  if (params.numatune?.nodeset) nodesets.push(['numatune.nodeset', params.numatune.nodeset]);
  const hugepages = params.memory_backing?.hugepages;
  const out = nodesets.flatMap(([setting, set]) => {
    const missing = parseCpuList(set).filter((n) => !nodes.includes(n));
    return missing.length ? [error(`${who}: ${setting}: NUMA node ${formatCpuList(missing)} does not exist on this host (nodes: ${formatCpuList(nodes)})`)] : [];
  });
  if (hugepages && hugepages.sizeKiB && facts.hugepageSizesKiB.length && !facts.hugepageSizesKiB.includes(hugepages.sizeKiB)) {
    out.push(error(`${who}: memory_backing.hugepages: this host has no ${hugepages.sizeKiB} KiB pages (sizes: ${facts.hugepageSizesKiB.join(', ')} KiB)${hugepages.sizeKiB === 1048576 ? '; 1G pages need the pdpe1gb CPU flag' : ''}`));
  }
  return out;
}

/** Cache allocation needs resctrl with the level asked (and CDP for code/data); vCPU sets must not overlap. */
function cacheRules(params: DomainParams, facts: HostFacts, who: string): Diagnostic[] {
  const tunes = params.cputune?.cachetune ?? [];
  if (!tunes.length) return [];
  if (!facts.resctrl.length) {
    return [error(`${who}: cputune.cachetune: this host offers no cache allocation (no CAT in the CPU, or resctrl not mounted at /sys/fs/resctrl); libvirt would refuse to start the guest`)];
  }
  const out: Diagnostic[] = [];
  const owner = new Map<number, string>();
  for (const tune of tunes) {
    for (const vcpu of parseCpuList(tune.vcpus)) {
      const other = owner.get(vcpu);
      if (other !== undefined && other !== tune.vcpus) out.push(error(`${who}: cputune.cachetune: vCPU ${vcpu} is in vcpus ${other} and ${tune.vcpus}`));
      owner.set(vcpu, tune.vcpus);
    }
    for (const cache of tune.caches) {
      const needs = cache.type === 'both' ? [`L${cache.level}`] : [`L${cache.level}CODE`, `L${cache.level}DATA`];
      if (needs.every((resource) => facts.resctrl.includes(resource))) continue;
      const cdp = cache.type === 'both' ? '' : ' (code/data needs CDP: mount resctrl with -o cdp)';
      out.push(error(`${who}: cputune.cachetune[${tune.vcpus}]: L${cache.level} ${cache.type} allocation is not offered by this host${cdp} (resctrl offers ${facts.resctrl.join(', ')})`));
    }
  }
  return out;
}

function deviceRules(params: DomainParams, who: string): Diagnostic[] {
  const out: Diagnostic[] = [];
  if (params.memtune?.min_guarantee !== undefined) out.push(error(`${who}: memtune.min_guarantee_kib is not supported by libvirt's QEMU driver (libvirt refuses the domain)`));
  for (const disk of params.disks ?? []) {
    for (const kind of ['bytes', 'iops']) {
      const has = (key: string) => disk.iotune?.[key as (typeof IOTUNE_KEYS)[number]] !== undefined;
      if (has(`total_${kind}_sec`) && (has(`read_${kind}_sec`) || has(`write_${kind}_sec`))) {
        out.push(error(`${who}: disk ${disk.target}: iotune total_${kind}_sec cannot be combined with read_${kind}_sec/write_${kind}_sec`));
      }
    }
  }
  const cells = params.cpu?.numa ?? [];
  const seen = new Map<number, number>();
  for (const cell of cells) {
    for (const cpu of parseCpuList(cell.cpus)) {
      if (seen.has(cpu)) out.push(error(`${who}: cpu.numa: vCPU ${cpu} is in cell ${seen.get(cpu)} and cell ${cell.id}`));
      seen.set(cpu, cell.id);
    }
  }
  if (new Set(cells.map((c) => c.id)).size !== cells.length) out.push(error(`${who}: cpu.numa: cell ids must be unique`));
  return out;
}

/** Checks against the engine's host facts; domain-dependent checks happen in diff. */
export function rulesFor(params: DomainParams, facts: HostFacts): Diagnostic[] {
  const who = taskLabel(params);
  return [...cpuRules(params, facts, who), ...nodeRules(params, facts, who), ...deviceRules(params, who), ...cacheRules(params, facts, who)];
}

function vcpuCount(params: DomainParams, root: Element): number {
  return params.vcpu?.count ?? Number(textOf(findPath(root, [{ name: 'vcpu' }])) || 1);
}

export function memoryKiB(root: Element): number {
  const memory = findPath(root, [{ name: 'memory' }]);
  return toKiB(textOf(memory) || 0, memory?.getAttribute('unit'));
}

function topologyOf(params: DomainParams, root: Element): { sockets: number; cores: number; threads: number } | null {
  if (params.cpu?.topology) return params.cpu.topology;
  const element = findPath(root, [{ name: 'cpu' }, { name: 'topology' }]);
  if (!element) return null;
  const n = (attr: string) => Number(element.getAttribute(attr) || 1);
  return { sockets: n('sockets') * n('dies'), cores: n('cores'), threads: n('threads') };
}

/** Guest NUMA cells: every vCPU exactly once, memory summing to the guest's, a socket's vCPUs in one cell. */
function cellDiagnostics(params: DomainParams, root: Element, who: string): Diagnostic[] {
  const cells = params.cpu?.numa;
  if (!cells) return [];
  const out: Diagnostic[] = [];
  const count = vcpuCount(params, root);
  const cellOf = new Map<number, number>();
  cells.forEach((cell) => parseCpuList(cell.cpus).forEach((cpu) => cellOf.set(cpu, cell.id)));
  const missing = Array.from({ length: count }, (_, i) => i).filter((cpu) => !cellOf.has(cpu));
  const extra = [...cellOf.keys()].filter((cpu) => cpu >= count);
  if (missing.length) out.push(error(`${who}: cpu.numa: vCPU ${formatCpuList(missing)} is in no cell (the guest has ${count} vCPUs)`));
  if (extra.length) out.push(error(`${who}: cpu.numa: vCPU ${formatCpuList(extra)} does not exist (the guest has ${count} vCPUs)`));
  const total = cells.reduce((sum, cell) => sum + cell.memory_kib, 0);
  const memory = memoryKiB(root);
  if (total !== memory) out.push(error(`${who}: cpu.numa: the cells' memory adds up to ${total} KiB but the guest has ${memory} KiB`));
  const topology = topologyOf(params, root);
  if (topology) {
    const perSocket = topology.cores * topology.threads;
    if (topology.sockets * perSocket !== count) out.push(error(`${who}: cpu.topology ${topology.sockets}x${topology.cores}x${topology.threads} does not make ${count} vCPUs`));
    for (let socket = 0; socket < topology.sockets; socket++) {
      const owners = new Set(Array.from({ length: perSocket }, (_, i) => cellOf.get(socket * perSocket + i)).filter((c) => c !== undefined));
      if (owners.size > 1) out.push(error(`${who}: cpu.numa: socket ${socket} (vCPUs ${socket * perSocket}-${(socket + 1) * perSocket - 1}) is split over cells ${[...owners].join(',')}; a socket's cores must stay in one cell or the guest may not boot`));
    }
  }
  return out;
}

function interfaceType(root: Element, match: { mac?: string; index?: number }): string | null {
  const devices = findPath(root, [{ name: 'devices' }]);
  const all = devices ? childElements(devices, 'interface') : [];
  const found = match.mac ? all.find((i) => childElements(i, 'mac').some((m) => m.getAttribute('address')?.toLowerCase() === match.mac!.toLowerCase())) : all[match.index ?? -1];
  return found?.getAttribute('type') ?? null;
}

/**
 * `<page nodeset>` names the GUEST's NUMA cells (libvirt: "hugepages: node N not found"
 * at define otherwise); the host nodes a guest's memory comes from are numatune's.
 */
function hugepageCellDiagnostics(params: DomainParams, root: Element, name: string): Diagnostic[] {
  const hugepages = params.memory_backing?.hugepages;
  if (!hugepages || !hugepages.nodeset) return [];
  const cells = (params.cpu?.numa ?? readCells(root)).map((cell) => cell.id);
  const missing = parseCpuList(hugepages.nodeset).filter((cell) => !cells.includes(cell));
  if (!missing.length) return [];
  const has = cells.length ? `its cells are ${formatCpuList(cells)}` : 'it has no guest NUMA cells (cpu.numa)';
  const host = params.numatune?.nodeset ? `numatune.nodeset ${params.numatune.nodeset}` : 'numatune.nodeset';
  return [error(`${name}: memory_backing.hugepages.nodeset ${hugepages.nodeset} names guest NUMA cells, and ${has}; cell ${formatCpuList(missing)} does not exist. The host NUMA nodes the memory comes from are set by ${host}`)];
}

/** libvirt refuses hard_limit above swap_hard_limit, in the config and live. */
function memtuneDiagnostics(params: DomainParams, root: Element, name: string): Diagnostic[] {
  const configured = (key: string) => {
    const element = findPath(root, [{ name: 'memtune' }, { name: key }]);
    return element && textOf(element) ? toKiB(textOf(element)!, element.getAttribute('unit')) : undefined;
  };
  const hard = params.memtune?.hard_limit ?? configured('hard_limit');
  const swap = params.memtune?.swap_hard_limit ?? configured('swap_hard_limit');
  if (hard === undefined || swap === undefined || hard <= swap) return [];
  return [error(`${name}: memtune.hard_limit_kib ${hard} is above swap_hard_limit_kib ${swap} (the limit of memory plus swap); libvirt refuses it`)];
}

/** Checks that need the domain's own XML (vCPU count, memory, existing settings). */
export function domainDiagnostics(params: DomainParams, root: Element, name: string): Diagnostic[] {
  const out = [...cellDiagnostics(params, root, name), ...hugepageCellDiagnostics(params, root, name), ...memtuneDiagnostics(params, root, name)];
  const count = vcpuCount(params, root);
  for (const vcpu of Object.keys(params.cputune?.vcpupin ?? {})) {
    if (Number(vcpu) >= count) out.push(error(`${name}: cputune.vcpupin[${vcpu}]: the guest has ${count} vCPUs (0-${count - 1})`));
  }
  for (const tune of params.cputune?.cachetune ?? []) {
    const missing = parseCpuList(tune.vcpus).filter((vcpu) => vcpu >= count);
    if (missing.length) out.push(error(`${name}: cputune.cachetune[${tune.vcpus}]: vCPU ${formatCpuList(missing)} does not exist (the guest has ${count} vCPUs)`));
  }
  if (params.memory_backing?.locked) {
    const limit = params.memtune?.hard_limit ?? textOf(findPath(root, [{ name: 'memtune' }, { name: 'hard_limit' }]));
    if (!limit) out.push(error(`${name}: memory_backing.locked needs memtune.hard_limit_kib (guest memory plus qemu overhead), or libvirt refuses to start the guest`));
  }
  for (const disk of params.disks ?? []) {
    if (disk.io !== 'native') continue;
    const driver = findPath(root, [{ name: 'devices' }, { name: 'disk', child: { name: 'target', attr: 'dev', value: disk.target } }, { name: 'driver' }]);
    const cache = disk.cache ?? driver?.getAttribute('cache') ?? 'default';
    if (cache !== 'none' && cache !== 'directsync') out.push(error(`${name}: disk ${disk.target}: io=native needs cache=none or cache=directsync (cache is ${cache})`));
  }
  for (const item of params.interfaces ?? []) {
    const type = interfaceType(root, item.match);
    if (item.queues !== undefined && item.queues > 1 && type === 'user') out.push(error(`${name}: interface ${item.match.mac ?? item.match.target ?? `#${item.match.index}`}: libvirt refuses multiqueue on type='user' interfaces (the guest would not start)`));
    if (item.queues !== undefined && item.queues > count) out.push(warning(`${name}: interface ${item.match.mac ?? item.match.target ?? `#${item.match.index}`}: ${item.queues} queues for ${count} vCPUs; more queues than vCPUs brings nothing`));
  }
  return out;
}

/** Shell glob (case pattern) semantics: * ? [set] [!set]. */
export function globMatch(pattern: string, name: string): boolean {
  const source = pattern.replace(/\[!/g, '[^').replace(/[.+^$(){}|\\]/g, (c) => (c === '^' ? c : `\\${c}`)).replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${source}$`).test(name);
}

export function selects(params: DomainParams, name: string): boolean {
  return params.name !== undefined ? params.name === name : globMatch(params.pattern ?? '', name);
}

interface Need { guest: string; pages: number; nodes: number[] }

function hugepageNeed(params: DomainParams, domain: DomainActual, host: LibvirtHostFacts): { sizeKiB: number; need: Need } | null {
  const wanted = params.memory_backing?.hugepages;
  if (!wanted || !domain.inactive) return null;
  const sizeKiB = wanted.sizeKiB ?? host.defaultHugepageKiB;
  if (!sizeKiB) return null;
  const root = parseXml(domain.inactive);
  const backing = [{ name: 'memoryBacking' }, { name: 'hugepages' }];
  // A running guest already on hugepages holds its pages: they are not free and not needed again.
  if (domain.state !== 'shut off' && findPath(domain.live ? parseXml(domain.live) : root, backing)) return null;
  // wanted.nodeset names guest cells; the host nodes are numatune's
  const nodeset = params.numatune?.nodeset ?? findPath(root, [{ name: 'numatune' }, { name: 'memory' }])?.getAttribute('nodeset');
  const nodes = nodeset ? parseCpuList(nodeset) : host.nodes.map((n) => n.id);
  return { sizeKiB, need: { guest: domain.name, pages: Math.ceil(memoryKiB(root) / sizeKiB), nodes } };
}

/**
 * Hugepage backing of the guests of this task and of the play's other libvirt_domain
 * tasks must fit the free pages of that size on their nodes (guests already running on
 * hugepages hold theirs already). Grouped by node set: a group must fit its nodes' pool.
 */
export function hugepageDiagnostics(own: DomainParams, others: DomainParams[], state: DomainProbeState, softer: boolean): Diagnostic[] {
  const groups = new Map<string, { sizeKiB: number; nodes: number[]; needs: Need[] }>();
  for (const domain of state.domains) {
    const params = [own, ...others].find((p) => selects(p, domain.name) && p.memory_backing?.hugepages);
    const found = params && hugepageNeed(params, domain, state.host);
    if (!found) continue;
    const key = `${found.sizeKiB}@${formatCpuList(found.need.nodes)}`;
    const group = groups.get(key) ?? { sizeKiB: found.sizeKiB, nodes: found.need.nodes, needs: [] };
    group.needs.push(found.need);
    groups.set(key, group);
  }
  const out: Diagnostic[] = [];
  for (const { sizeKiB, nodes, needs } of groups.values()) {
    if (!needs.some((n) => selects(own, n.guest))) continue;
    const free = state.host.hugepages.filter((p) => p.sizeKiB === sizeKiB && nodes.includes(p.node)).reduce((sum, p) => sum + p.free, 0);
    const pages = needs.reduce((sum, n) => sum + n.pages, 0);
    if (pages <= free) continue;
    const message = `memory_backing.hugepages: guests ${needs.map((n) => `${n.guest} (${n.pages})`).join(', ')} need ${pages} free ${sizeKiB} KiB pages on NUMA node ${formatCpuList(nodes)}, the host has ${free} free`;
    out.push(softer ? warning(`${message} (another task of this play may allocate more before the guests start)`) : error(message));
  }
  return out;
}

/** The host PCI addresses a domain's config gives it: hostdev type='pci' and interface type='hostdev' sources. */
export function hostdevAddresses(root: Element): string[] {
  const devices = findPath(root, [{ name: 'devices' }]);
  if (!devices) return [];
  const given = [
    ...childElements(devices, 'hostdev').filter((e) => e.getAttribute('type') === 'pci'),
    ...childElements(devices, 'interface').filter((e) => e.getAttribute('type') === 'hostdev'),
  ];
  const hex = (e: Element, attr: string) => parseInt(e.getAttribute(attr) || 'x', 16);
  return given.flatMap((device) => {
    const address = findPath(device, [{ name: 'source' }, { name: 'address' }]);
    if (!address) return [];
    const [domain, bus, slot, fn] = ['domain', 'bus', 'slot', 'function'].map((attr) => hex(address, attr));
    if ([domain, bus, slot, fn].some((n) => Number.isNaN(n))) return [];
    const pad = (n: number, width: number) => n!.toString(16).padStart(width, '0');
    return [`${pad(domain!, 4)}:${pad(bus!, 2)}:${pad(slot!, 2)}.${fn!.toString(16)}`];
  });
}

/** The host CPUs the vCPUs run on as the task leaves them: its vcpupin, else the config's, else the vcpu cpuset. */
function pinnedCpus(params: DomainParams, root: Element): number[] {
  const stated = Object.values(params.cputune?.vcpupin ?? {});
  if (stated.length) return stated.flatMap(parseCpuList);
  const cputune = findPath(root, [{ name: 'cputune' }]);
  const configured = cputune ? childElements(cputune, 'vcpupin').map((e) => e.getAttribute('cpuset') ?? '').filter(Boolean) : [];
  if (configured.length) return configured.flatMap(parseCpuList);
  const cpuset = params.vcpu?.cpuset ?? findPath(root, [{ name: 'vcpu' }])?.getAttribute('cpuset');
  return cpuset ? parseCpuList(cpuset) : [];
}

/**
 * A passed-through device (an SR-IOV VF above all) on another NUMA node than the CPUs
 * the guest's vCPUs are pinned to: every DMA and interrupt crosses the interconnect. A
 * guest not pinned, or a device whose node is -1 (no NUMA information), never warns.
 */
export function hostdevNumaDiagnostics(params: DomainParams, root: Element, name: string, host: LibvirtHostFacts, cpuNode = nodeOfCpu(host)): Diagnostic[] {
  const addresses = hostdevAddresses(root);
  const cpus = pinnedCpus(params, root);
  if (!addresses.length || !cpus.length) return [];
  const nodes = [...new Set(cpus.map((cpu) => cpuNode.get(cpu)).filter((n): n is number => n !== undefined))].sort((a, b) => a - b);
  if (!nodes.length) return [];
  return addresses.flatMap((address) => {
    const device = host.pci.find((d) => d.address === address);
    if (!device || device.node < 0 || nodes.includes(device.node)) return [];
    const what = device.physfn ? `SR-IOV VF ${address} (of PF ${device.physfn})` : `PCI device ${address}`;
    return [warning(`${name}: ${what} is on NUMA node ${device.node} but the vCPUs are pinned to node ${nodes.join(',')}: its DMA and interrupts cross nodes; give the guest a device on node ${nodes.join(',')} or pin it to node ${device.node}`)];
  });
}
