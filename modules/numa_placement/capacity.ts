/**
 * The room left for guests on each NUMA node, as the running domains are placed now:
 * CPUs a running domain's vCPU or emulator thread is pinned to alone are taken (a
 * domain left floating over many CPUs takes none), the first core of every node is
 * kept for the host as numa_placement does by default, free hugepages are the pools'.
 */
import type { LibvirtHostFacts } from '../libvirt_domain/facts.js';
import { parseCpuList } from '../../src/kit/index.js';
import { defaultReserved } from './placement.js';

export interface NodeCapacity {
  node: number;
  online: number[];
  pinned: number[];
  housekeeping: number[];
  free: number[];
  /** Free pages by size in KiB. */
  hugepages: Record<number, number>;
}

export function freeCapacity(host: LibvirtHostFacts): NodeCapacity[] {
  const online = new Set(host.cpusOnline);
  const nodes = host.nodes.map((node) => ({ id: node.id, cpus: node.cpus.filter((cpu) => online.has(cpu)), hugepages: {} }));
  const siblings = Object.fromEntries(host.cpus.map((cpu) => [cpu.id, cpu.siblings.length ? cpu.siblings : [cpu.id]]));
  const housekeeping = new Set(defaultReserved({ nodes, siblings, devices: [] }));
  const pinned = new Set<number>();
  for (const domain of host.running) {
    for (const set of [...Object.values(domain.libvirt.vcpupin), domain.libvirt.emulatorpin ?? '']) {
      const cpus = set ? parseCpuList(set) : [];
      if (cpus.length === 1) pinned.add(cpus[0]!);
    }
  }
  return nodes.map((node) => ({
    node: node.id,
    online: node.cpus,
    pinned: node.cpus.filter((cpu) => pinned.has(cpu)),
    housekeeping: node.cpus.filter((cpu) => housekeeping.has(cpu)),
    free: node.cpus.filter((cpu) => !pinned.has(cpu) && !housekeeping.has(cpu)),
    hugepages: Object.fromEntries(host.hugepages.filter((pool) => pool.node === node.id).map((pool) => [pool.sizeKiB, pool.free])),
  }));
}
