/**
 * The leaves a libvirt_domain task owns on one domain, built from its parameters.
 * Only stated settings become leaves: everything else in the domain is left alone.
 */
import type { Element } from '@xmldom/xmldom';
import { inline, sh, shellCode, words } from '../../src/kit/index.js';
import { childElements, ensurePath, findPath, firstChild, removeElement, insertChild, toKiB, xpathOf, type Step } from './domain-xml.js';
import { ABSENT, attrLeaf, canonCpus, fieldOp, presenceLeaf, removeAt, textLeaf, type Leaf, type LiveOp, type LiveTools, type LiveView } from './leaves.js';
import { IOTUNE_KEYS, MEMTUNE_KEYS, type MemtuneKey, type CacheTune, type CacheType, type DomainParams, type InterfaceMatch } from './params.js';
import { parseDeviceWeights } from './probe.js';

const VCPU: Step[] = [{ name: 'vcpu' }];

/** The virsh option of a libvirt tunable: hard_limit -> --hard-limit. */
const optionOf = (key: string) => `--${key.replace(/_/g, '-')}`;

function vcpuLeaves(params: DomainParams): Leaf[] {
  const vcpu = params.vcpu;
  if (!vcpu) return [];
  const leaves: Leaf[] = [];
  if (vcpu.count !== undefined) leaves.push(textLeaf({ key: 'vcpu.count', steps: VCPU, dflt: '1', want: String(vcpu.count) }));
  const current = vcpu.current ?? vcpu.count;
  if (current !== undefined) leaves.push(currentLeaf(current, vcpu.count));
  if (vcpu.placement) leaves.push(attrLeaf({ key: 'vcpu.placement', steps: VCPU, attr: 'placement', dflt: 'static', want: vcpu.placement }));
  if (vcpu.cpuset) leaves.push(attrLeaf({ key: 'vcpu.cpuset', steps: VCPU, attr: 'cpuset', dflt: ABSENT, want: vcpu.cpuset, canon: canonCpus }));
  return leaves;
}

/** <vcpu current='N'>: absent means all of the maximum; raised live with setvcpus, never lowered live. */
function currentLeaf(current: number, count: number | undefined): Leaf {
  const maxOf = (root: Element) => Number(findPath(root, VCPU)?.textContent?.trim() || 1);
  const live: LiveOp = {
    // Unplugging needs the guest's ACPI cooperation and hot-pluggable vCPUs: not a step that can be read back reliably.
    blocked: (live, want, view) =>
      Number(want) < Number(live) ? 'libvirt removes vCPUs from a running guest only by ACPI hot-unplug, which the guest must complete; the guest takes the lower count when it starts'
        : Number(want) > maxOf(view.root) ? `the running domain's maximum is ${maxOf(view.root)} vCPUs; the guest takes ${want} when it starts` : undefined,
    commands: (virsh, domain, want) => [
      sh`${virsh} setvcpus --domain ${domain} --count ${want} --live </dev/null`,
      sh`kc_lv_check ${`${domain} vCPUs`} ${want} "$(${virsh} vcpucount --domain ${domain} --live --active </dev/null | tr -d ' ')"`,
    ],
  };
  return {
    key: 'vcpu.current',
    want: String(current),
    read: (root) => findPath(root, VCPU)?.getAttribute('current') || String(maxOf(root)),
    write(root) {
      const vcpu = ensurePath(root, VCPU);
      if (current === maxOf(root)) vcpu.removeAttribute('current');
      else vcpu.setAttribute('current', String(current));
    },
    checks: [{ xpath: xpathOf(VCPU, 'current'), want: String(current), dflt: String(count ?? current) }],
    live,
  };
}

function pinOp(vcpu: string | null): LiveOp {
  const tool = vcpu === null ? 'emulatorpin' : 'vcpupin';
  const select = vcpu === null ? [] : ['--vcpu', vcpu];
  const filter = inline(vcpu === null ? shellCode`awk '$1 == "*:" {print $2}'` : sh`awk -v v=${vcpu} '{sub(/:$/, "", $1)} $1 == v {print $2}'`);
  return {
    read: (tools) => (vcpu === null ? tools.emulatorpin ?? undefined : tools.vcpupin[vcpu]),
    commands: (virsh, domain, want) => [
      sh`${virsh} ${tool} --domain ${domain} ${words([...select, '--cpulist', want])} --live </dev/null`,
      sh`kc_lv_check ${`${domain} ${vcpu === null ? 'emulator' : `vCPU ${vcpu}`} pinning`} ${want} "$(${virsh} ${tool} --domain ${domain} ${words(select)} --live </dev/null | ${filter})"`,
    ],
  };
}

const SCHED: Record<string, string> = { shares: 'cpu_shares', period: 'vcpu_period', quota: 'vcpu_quota' };

function cputuneLeaves(params: DomainParams): Leaf[] {
  const tune = params.cputune;
  if (!tune) return [];
  const leaves: Leaf[] = Object.entries(tune.vcpupin ?? {}).map(([vcpu, cpus]) =>
    attrLeaf({ key: `cputune.vcpupin[${vcpu}]`, steps: [{ name: 'cputune' }, { name: 'vcpupin', attrs: { vcpu } }], attr: 'cpuset', dflt: ABSENT, want: cpus, canon: canonCpus, live: pinOp(vcpu) }),
  );
  if (tune.emulatorpin) leaves.push(attrLeaf({ key: 'cputune.emulatorpin', steps: [{ name: 'cputune' }, { name: 'emulatorpin' }], attr: 'cpuset', dflt: ABSENT, want: tune.emulatorpin, canon: canonCpus, live: pinOp(null) }));
  for (const [key, field] of Object.entries(SCHED)) {
    const value = tune[key as 'shares' | 'period' | 'quota'];
    if (value === undefined) continue;
    const live = fieldOp('schedinfo', field, (want) => ['--set', `${field}=${want}`], (tools) => tools.schedinfo[field]);
    leaves.push(textLeaf({ key: `cputune.${key}`, steps: [{ name: 'cputune' }, { name: key }], dflt: ABSENT, want: String(value), live }));
  }
  if (tune.cachetune) leaves.push(cachetuneLeaf(tune.cachetune));
  return leaves;
}

const CPUTUNE: Step[] = [{ name: 'cputune' }];
const cacheKey = (c: CacheTune['caches'][number]) => `L${c.level}/${c.id}/${c.type}`;

/** `0-1=L3/0/both:2048KiB,...;2-3=...`: order-free, units folded to KiB. */
function cachetuneText(tunes: CacheTune[]): string {
  const text = tunes
    .filter((tune) => tune.caches.length)
    .map((tune) => `${tune.vcpus}=${tune.caches.map((c) => `${cacheKey(c)}:${c.size_kib}KiB`).sort().join(',')}`)
    .sort();
  return text.length ? text.join(';') : ABSENT;
}

/** The cache allocations of a domain; a <cache> size without a unit is in bytes. */
export function readCachetunes(root: Element): CacheTune[] {
  const cputune = findPath(root, CPUTUNE);
  return (cputune ? childElements(cputune, 'cachetune') : []).map((element) => ({
    vcpus: canonCpus(element.getAttribute('vcpus') || ''),
    caches: childElements(element, 'cache').map((cache) => ({
      id: Number(cache.getAttribute('id')),
      level: Number(cache.getAttribute('level')),
      type: (cache.getAttribute('type') || 'both') as CacheType,
      size_kib: toKiB(cache.getAttribute('size') || 0, cache.getAttribute('unit') || 'B'),
    })),
  }));
}

/** The whole set of cache allocations (CAT through resctrl); <monitor> elements are kept. Takes effect at guest start. */
function cachetuneLeaf(tunes: CacheTune[]): Leaf {
  return {
    key: 'cputune.cachetune',
    want: cachetuneText(tunes),
    read: (root) => cachetuneText(readCachetunes(root)),
    write(root) {
      const cputune = ensurePath(root, CPUTUNE);
      for (const element of childElements(cputune, 'cachetune')) {
        childElements(element, 'cache').forEach(removeElement);
        if (!childElements(element).length) removeElement(element);
      }
      for (const tune of tunes) {
        const element = childElements(cputune, 'cachetune').find((e) => canonCpus(e.getAttribute('vcpus') || '') === tune.vcpus) ?? ensurePath(cputune, [{ name: 'cachetune', attrs: { vcpus: tune.vcpus } }]);
        for (const cache of tune.caches) {
          const child = root.ownerDocument!.createElement('cache');
          for (const [attr, value] of [['id', cache.id], ['level', cache.level], ['type', cache.type], ['size', cache.size_kib], ['unit', 'KiB']] as const) child.setAttribute(attr, String(value));
          insertChild(element, child);
        }
      }
      if (!childElements(cputune).length) removeElement(cputune);
    },
    // libvirt may print a size in another unit: sizes are compared by the verify pass, through read()
    checks: tunes.map((tune) => ({ xpath: `/domain/cputune/cachetune[@vcpus='${tune.vcpus}']/cache`, want: 'present', dflt: '' })),
  };
}

const MEMORY_POLICY: Step[] = [{ name: 'numatune' }, { name: 'memory' }];

/** The running domain's memory policy: null when it has none (libvirt then takes a mode and nodeset live, once). */
function livePolicy(root: Element): { mode: string; auto: boolean } | null {
  const memory = findPath(root, MEMORY_POLICY);
  return memory ? { mode: memory.getAttribute('mode') || 'strict', auto: memory.getAttribute('placement') === 'auto' } : null;
}

/**
 * libvirt's live numatune rules (qemuDomainSetNumaParameters): the mode of a running
 * domain never changes once it has a policy; its nodeset changes only in restrictive
 * mode (cgroup cpuset.mems; the other modes are set with mbind() at start); a domain
 * started without a policy takes mode and nodeset once, in one call.
 */
function nodesetBlocked(_live: string, _want: string, view: LiveView): string | undefined {
  const policy = livePolicy(view.root);
  if (!policy) return undefined;
  if (policy.auto) return `the running domain's memory placement is auto (numad): libvirt applies a static nodeset only when the guest starts`;
  if (policy.mode !== 'restrictive') return `libvirt changes the nodeset of a running domain only in restrictive mode (it runs in ${policy.mode} mode); the guest takes it when it starts`;
  return undefined;
}

function numatuneLeaves(params: DomainParams, inactive: Element, live: Element | null): Leaf[] {
  const tune = params.numatune;
  if (!tune) return [];
  const leaves: Leaf[] = [];
  // The mode that goes with a live nodeset on a domain without a policy: the task's, else the config's.
  const modeWithNodeset = tune.mode ?? findPath(inactive, MEMORY_POLICY)?.getAttribute('mode') ?? undefined;
  if (tune.nodeset) {
    // Only the first policy of a running domain may name a mode (libvirt refuses a mode once it has one),
    // and never strict, which libvirt refuses by name on a running domain though it is what a bare nodeset gets.
    const firstPolicy = live !== null && !livePolicy(live);
    const liveMode = firstPolicy && modeWithNodeset !== 'strict' ? modeWithNodeset : undefined;
    const set = (want: string) => [...(liveMode ? ['--mode', liveMode] : []), '--nodeset', want];
    const read = (tools: LiveTools) => (tools.numatune.numa_nodeset === undefined ? undefined : tools.numatune.numa_nodeset ? canonCpus(tools.numatune.numa_nodeset) : ABSENT);
    const op: LiveOp = {
      ...fieldOp('numatune', 'numa_nodeset', set, read, nodesetBlocked),
      note: () => (firstPolicy ? `set live with mode ${modeWithNodeset ?? 'strict'} in one virsh numatune call: a running domain without a memory policy takes both once` : undefined),
    };
    leaves.push(attrLeaf({ key: 'numatune.nodeset', steps: MEMORY_POLICY, attr: 'nodeset', dflt: ABSENT, want: tune.nodeset, canon: canonCpus, live: op }));
    leaves.push(attrLeaf({ key: 'numatune.placement', steps: MEMORY_POLICY, attr: 'placement', dflt: 'static', want: 'static' }));
  }
  if (tune.mode) {
    const op: LiveOp = {
      read: (tools) => tools.numatune.numa_mode,
      blocked: (current, _want, view) => (!livePolicy(view.root) && tune.nodeset ? undefined : `libvirt cannot change the memory mode of a running domain (it runs in ${current} mode); the guest takes it when it starts`),
      note: () => 'set live together with numatune.nodeset (one virsh numatune call)',
      // The nodeset step set the mode: read it back.
      commands: (virsh, domain, want) => [sh`kc_lv_check ${`${domain} numatune numa_mode`} ${want} "$(${virsh} numatune --domain ${domain} --live </dev/null | kc_lv_field numa_mode)"`],
    };
    leaves.push(attrLeaf({ key: 'numatune.mode', steps: MEMORY_POLICY, attr: 'mode', dflt: 'strict', want: tune.mode, live: op }));
  }
  if (tune.placement) {
    leaves.push(attrLeaf({ key: 'numatune.placement', steps: MEMORY_POLICY, attr: 'placement', dflt: 'static', want: tune.placement }));
    leaves.push(attrLeaf({ key: 'numatune.nodeset', steps: MEMORY_POLICY, attr: 'nodeset', dflt: ABSENT, want: ABSENT, canon: canonCpus }));
  }
  return leaves;
}

const CPU: Step[] = [{ name: 'cpu' }];

/** cpu mode: switching to host-passthrough/host-model drops the custom model, vendor and match. */
function cpuModeLeaf(mode: string): Leaf {
  const base = attrLeaf({ key: 'cpu.mode', steps: CPU, attr: 'mode', dflt: 'custom', want: mode });
  return {
    ...base,
    write(root) {
      const cpu = ensurePath(root, CPU);
      cpu.setAttribute('mode', mode);
      for (const attr of ['match', 'check']) cpu.removeAttribute(attr);
      for (const child of [...childElements(cpu, 'model'), ...childElements(cpu, 'vendor')]) removeElement(child);
    },
  };
}

function topologyLeaf(topology: { sockets: number; cores: number; threads: number }): Leaf {
  const steps: Step[] = [...CPU, { name: 'topology' }];
  const fields = ['sockets', 'cores', 'threads'] as const;
  const want = fields.map((f) => `${f}=${topology[f]}`).join(',');
  return {
    key: 'cpu.topology',
    want,
    read: (root) => {
      const element = findPath(root, steps);
      return element ? fields.map((f) => `${f}=${element.getAttribute(f) || 1}`).join(',') : ABSENT;
    },
    write: (root) => {
      const element = ensurePath(root, steps);
      for (const f of fields) element.setAttribute(f, String(topology[f]));
    },
    checks: fields.map((f) => ({ xpath: xpathOf(steps, f), want: String(topology[f]), dflt: '1' })),
  };
}

type Cell = { id: number; cpus: string; memory_kib: number };
const cellText = (cells: Cell[]) => (cells.length ? cells.map((c) => `${c.id}:${c.cpus}:${c.memory_kib}KiB`).join(';') : ABSENT);

export function readCells(root: Element): Cell[] {
  const numa = findPath(root, [...CPU, { name: 'numa' }]);
  const cells = numa ? childElements(numa, 'cell') : [];
  return cells
    .map((cell, index) => ({ id: Number(cell.getAttribute('id') || index), cpus: canonCpus(cell.getAttribute('cpus') || ''), memory_kib: toKiB(cell.getAttribute('memory') || 0, cell.getAttribute('unit')) }))
    .sort((a, b) => a.id - b.id);
}

/** Guest NUMA cells: the set of cells and their cpus and memory; other cell attributes are kept. */
function cellsLeaf(cells: Cell[]): Leaf {
  const steps: Step[] = [...CPU, { name: 'numa' }];
  return {
    key: 'cpu.numa',
    want: cellText(cells),
    read: (root) => cellText(readCells(root)),
    write(root) {
      const numa = ensurePath(root, steps);
      const wanted = new Set(cells.map((c) => String(c.id)));
      childElements(numa, 'cell').filter((c) => !wanted.has(c.getAttribute('id') ?? '')).forEach(removeElement);
      for (const cell of cells) {
        const element = ensurePath(numa, [{ name: 'cell', attrs: { id: String(cell.id) } }]);
        element.setAttribute('cpus', cell.cpus);
        element.setAttribute('memory', String(cell.memory_kib));
        element.setAttribute('unit', 'KiB');
      }
    },
    checks: cells.flatMap((c) => [
      { xpath: `/domain/cpu/numa/cell[@id='${c.id}']/@cpus`, want: c.cpus, dflt: c.cpus },
      { xpath: `/domain/cpu/numa/cell[@id='${c.id}']/@memory`, want: String(c.memory_kib), dflt: String(c.memory_kib) },
    ]),
  };
}

function cpuLeaves(params: DomainParams): Leaf[] {
  const cpu = params.cpu;
  if (!cpu) return [];
  return [...(cpu.mode ? [cpuModeLeaf(cpu.mode)] : []), ...(cpu.topology ? [topologyLeaf(cpu.topology)] : []), ...(cpu.numa ? [cellsLeaf(cpu.numa)] : [])];
}

const HUGEPAGES: Step[] = [{ name: 'memoryBacking' }, { name: 'hugepages' }];

/** ABSENT (no hugepages), 'default-size' (the host's default page size) or `SIZEKiB[@nodeset]` per page element. */
function readHugepages(root: Element): string {
  const element = findPath(root, HUGEPAGES);
  if (!element) return ABSENT;
  const pages = childElements(element, 'page').map((p) => `${toKiB(p.getAttribute('size') || 0, p.getAttribute('unit'))}KiB${p.getAttribute('nodeset') ? `@${canonCpus(p.getAttribute('nodeset')!)}` : ''}`);
  return pages.length ? pages.sort().join(',') : 'default-size';
}

function hugepagesLeaf(wanted: false | { sizeKiB?: number; nodeset?: string }): Leaf {
  const want = wanted === false ? ABSENT : wanted.sizeKiB ? `${wanted.sizeKiB}KiB${wanted.nodeset ? `@${wanted.nodeset}` : ''}` : 'default-size';
  return {
    key: 'memory_backing.hugepages',
    want,
    read: readHugepages,
    write(root) {
      if (wanted === false) return removeAt(root, HUGEPAGES);
      const element = ensurePath(root, HUGEPAGES);
      childElements(element, 'page').forEach(removeElement);
      if (!wanted.sizeKiB) return;
      const page = root.ownerDocument!.createElement('page');
      page.setAttribute('size', String(wanted.sizeKiB));
      page.setAttribute('unit', 'KiB');
      if (wanted.nodeset) page.setAttribute('nodeset', wanted.nodeset);
      insertChild(element, page);
    },
    checks: wanted === false ? [{ xpath: '/domain/memoryBacking/hugepages', want: '', dflt: '' }]
      : wanted.sizeKiB ? [{ xpath: '/domain/memoryBacking/hugepages/page/@size', want: String(wanted.sizeKiB), dflt: String(wanted.sizeKiB) }] : [],
  };
}

/**
 * memtune on a running domain. hard_limit and swap_hard_limit travel together (libvirt
 * checks hard <= swap on the pair and orders the cgroup writes itself); a limit below
 * what the qemu process uses now is not set live: the kernel refuses it (cgroup v1,
 * EBUSY) or reclaims and OOM-kills the guest (cgroup v2).
 */
function memtuneOp(params: DomainParams, key: MemtuneKey): LiveOp {
  const limits = key === 'soft_limit' ? [key] : (['hard_limit', 'swap_hard_limit'] as const).filter((k) => params.memtune?.[k] !== undefined);
  const args = (want: string) => limits.flatMap((k) => [optionOf(k), k === key ? want : String(params.memtune![k])]);
  const belowUse = (_live: string, want: string, view: LiveView) =>
    key !== 'soft_limit' && view.tools.rssKiB !== undefined && Number(want) < view.tools.rssKiB
      ? `the guest's qemu process uses ${view.tools.rssKiB} KiB now: a lower ${key} is refused by the kernel or makes it reclaim and OOM-kill the guest; the guest takes it when it starts`
      : undefined;
  return fieldOp('memtune', key, args, (tools) => tools.memtune[key], belowUse);
}

function memoryLeaves(params: DomainParams): Leaf[] {
  const leaves: Leaf[] = [];
  const backing = params.memory_backing;
  if (backing?.hugepages !== undefined) leaves.push(hugepagesLeaf(backing.hugepages));
  for (const key of ['nosharepages', 'locked'] as const) {
    if (backing?.[key] !== undefined) leaves.push(presenceLeaf(`memory_backing.${key}`, [{ name: 'memoryBacking' }, { name: key }], backing[key]!));
  }
  for (const key of MEMTUNE_KEYS) {
    const value = params.memtune?.[key];
    if (value === undefined) continue;
    const live = key === 'min_guarantee' ? undefined : memtuneOp(params, key);
    leaves.push(textLeaf({ key: `memtune.${key}`, steps: [{ name: 'memtune' }, { name: key }], dflt: 'unlimited', want: String(value), kib: true, ...(live ? { live } : {}) }));
  }
  return leaves;
}

/** The interface step for a match; a target (vnetN) only exists in the live XML, so it is resolved to the MAC there. */
export function interfaceStep(match: InterfaceMatch, inactive: Element, live: Element | null): Step {
  if (match.mac) return { name: 'interface', child: { name: 'mac', attr: 'address', value: match.mac.toLowerCase() } };
  if (match.index !== undefined) return { name: 'interface', index: match.index };
  const byTarget: Step = { name: 'interface', child: { name: 'target', attr: 'dev', value: match.target! } };
  const found = findPath(live ?? inactive, [{ name: 'devices' }, byTarget]);
  const mac = found && firstChild(found, 'mac')?.getAttribute('address');
  if (!mac) throw new Error(`no interface with target ${match.target}${live ? '' : ' (targets are known only while the domain runs: match by mac or index)'}`);
  return { name: 'interface', child: { name: 'mac', attr: 'address', value: mac.toLowerCase() } };
}

export function matchLabel(match: InterfaceMatch): string {
  return match.mac ?? match.target ?? `#${match.index}`;
}

function interfaceLeaves(params: DomainParams, inactive: Element, live: Element | null): Leaf[] {
  return (params.interfaces ?? []).flatMap((item) => {
    const base: Step[] = [{ name: 'devices' }, interfaceStep(item.match, inactive, live)];
    if (!findPath(inactive, base)) throw new Error(`no interface matching ${matchLabel(item.match)} in the persistent config`);
    const key = `interface[${matchLabel(item.match)}]`;
    const leaves: Leaf[] = [];
    if (item.model) leaves.push(attrLeaf({ key: `${key}.model`, steps: [...base, { name: 'model' }], attr: 'type', dflt: ABSENT, want: item.model }));
    if (item.queues !== undefined) leaves.push(attrLeaf({ key: `${key}.queues`, steps: [...base, { name: 'driver' }], attr: 'queues', dflt: '1', want: String(item.queues) }));
    if (item.rx_frames !== undefined) leaves.push(attrLeaf({ key: `${key}.rx_frames`, steps: [...base, { name: 'coalesce' }, { name: 'rx' }, { name: 'frames' }], attr: 'max', dflt: ABSENT, want: String(item.rx_frames) }));
    return leaves;
  });
}

const diskStep = (target: string): Step => ({ name: 'disk', child: { name: 'target', attr: 'dev', value: target } });

/** Throttling of one disk; a disk only in the persistent config (attached with --config) gets it when the guest starts. */
function iotuneOp(target: string, key: string): LiveOp {
  const set = (want: string) => ['--device', target, optionOf(key), want];
  const detached = (_live: string, _want: string, view: LiveView) =>
    findPath(view.root, [{ name: 'devices' }, diskStep(target)]) ? undefined : `disk ${target} is not attached to the running domain; it takes the limit when the guest starts`;
  return fieldOp('blkdeviotune', key, set, (tools) => tools.blkdeviotune[target]?.[key], detached, ['--device', target]);
}

function diskLeaves(params: DomainParams, inactive: Element): Leaf[] {
  return (params.disks ?? []).flatMap((disk) => {
    const base: Step[] = [{ name: 'devices' }, diskStep(disk.target)];
    if (!findPath(inactive, base)) throw new Error(`no disk with target ${disk.target} in the persistent config`);
    const key = `disk[${disk.target}]`;
    const leaves: Leaf[] = [];
    for (const attr of ['cache', 'io'] as const) {
      if (disk[attr]) leaves.push(attrLeaf({ key: `${key}.${attr}`, steps: [...base, { name: 'driver' }], attr, dflt: ABSENT, want: disk[attr]! }));
    }
    for (const field of IOTUNE_KEYS) {
      const value = disk.iotune?.[field];
      if (value !== undefined) leaves.push(textLeaf({ key: `${key}.iotune.${field}`, steps: [...base, { name: 'iotune' }, { name: field }], dflt: '0', want: String(value), live: iotuneOp(disk.target, field) }));
    }
    return leaves;
  });
}

function scsiLeaves(params: DomainParams, inactive: Element): Leaf[] {
  if (params.scsi_queues === undefined) return [];
  const devices = findPath(inactive, [{ name: 'devices' }]);
  const controllers = devices ? childElements(devices, 'controller').filter((c) => c.getAttribute('type') === 'scsi' && c.getAttribute('model') === 'virtio-scsi') : [];
  if (!controllers.length) throw new Error('scsi_queues: the domain has no virtio-scsi controller');
  return controllers.map((controller) => {
    const index = controller.getAttribute('index') ?? '0';
    const steps: Step[] = [{ name: 'devices' }, { name: 'controller', attrs: { type: 'scsi', model: 'virtio-scsi', index } }, { name: 'driver' }];
    return attrLeaf({ key: `controller[scsi${index}].queues`, steps, attr: 'queues', dflt: '1', want: String(params.scsi_queues) });
  });
}

function blkioLeaves(params: DomainParams): Leaf[] {
  const tune = params.blkiotune;
  if (!tune) return [];
  const leaves: Leaf[] = [];
  if (tune.weight !== undefined) {
    const live = fieldOp('blkiotune', 'weight', (want) => ['--weight', want], (tools) => tools.blkiotune.weight);
    leaves.push(textLeaf({ key: 'blkiotune.weight', steps: [{ name: 'blkiotune' }, { name: 'weight' }], dflt: ABSENT, want: String(tune.weight), live }));
  }
  for (const device of tune.devices ?? []) {
    const steps: Step[] = [{ name: 'blkiotune' }, { name: 'device', child: { name: 'path', value: device.path } }, { name: 'weight' }];
    const live: LiveOp = {
      read: (tools) => (tools.blkiotune.device_weight === undefined ? undefined : parseDeviceWeights(tools.blkiotune.device_weight)[device.path] ?? ABSENT),
      commands: (virsh, domain, want) => [
        sh`${virsh} blkiotune --domain ${domain} --device-weights ${`${device.path},${want}`} --live </dev/null`,
        sh`kc_lv_check ${`${domain} blkiotune ${device.path}`} ${`${device.path},${want}`} "$(${virsh} blkiotune --domain ${domain} --live </dev/null | kc_lv_field device_weight | tr ',' '\\n' | paste -d, - - | grep -F -x -- ${`${device.path},${want}`})"`,
      ],
    };
    leaves.push(textLeaf({ key: `blkiotune.device[${device.path}]`, steps, dflt: ABSENT, want: String(device.weight), live }));
  }
  return leaves;
}

/** Every leaf the task owns on this domain; throws when a named device is missing. */
export function buildLeaves(params: DomainParams, inactive: Element, live: Element | null): Leaf[] {
  return [
    ...vcpuLeaves(params), ...cputuneLeaves(params), ...numatuneLeaves(params, inactive, live), ...cpuLeaves(params), ...memoryLeaves(params),
    ...interfaceLeaves(params, inactive, live), ...diskLeaves(params, inactive), ...scsiLeaves(params, inactive), ...blkioLeaves(params),
  ];
}

