/**
 * The host facts every planner and rule may read (gathered by the engine in the same
 * round trip as the module probes), and the CPU list format the kernel and libvirt use.
 */
export { parseCpuList, formatCpuList } from './cpu-list.js';

export interface NumaNode {
  id: number;
  cpus: number[];
  memTotalKiB: number;
  memFreeKiB: number;
}

export interface HostFacts {
  osId: string;
  osVersion: string;
  osLike: string[];
  kernel: string;
  /** /proc/sys/kernel/random/boot_id: tells one boot from the next in reports. */
  bootId: string;
  arch: string;
  uid: number;
  systemd: boolean;
  cpusOnline: number[];
  cpuFlags: string[];
  /** Thread siblings of each CPU, as the kernel groups them into cores. */
  threadSiblings: Record<number, number[]>;
  numaNodes: NumaNode[];
  /** Supported hugepage sizes in KiB, from /sys/kernel/mm/hugepages. */
  hugepageSizesKiB: number[];
  memTotalKiB: number;
  /** Allocation resources resctrl offers (L3, L3CODE, L3DATA, L2, MB...); empty when it is not mounted. */
  resctrl: string[];
}

/** The OS family that decides distribution tooling (grub regeneration, package names). */
export function osFamily(facts: Pick<HostFacts, 'osId' | 'osLike'>): 'debian' | 'rhel' | 'suse' | 'other' {
  const ids = [facts.osId, ...facts.osLike];
  if (ids.some((id) => id === 'debian' || id === 'ubuntu')) return 'debian';
  if (ids.some((id) => ['rhel', 'fedora', 'centos', 'rocky', 'almalinux'].includes(id))) return 'rhel';
  if (ids.some((id) => id.includes('suse'))) return 'suse';
  return 'other';
}
