/**
 * Host facts every planner and rule may use, gathered in the same round trip as the
 * module probes: OS, kernel, CPUs, NUMA topology, hugepage sizes, boot tooling.
 */

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

export const FACTS_PROBE = String.raw`
if [ -r /etc/os-release ]; then . /etc/os-release; fi
echo "os_id=$ID"; echo "os_version=$VERSION_ID"; echo "os_like=$ID_LIKE"
echo "kernel=$(uname -r)"; echo "arch=$(uname -m)"; echo "uid=$(id -u)"
if [ -d /run/systemd/system ]; then echo systemd=1; else echo systemd=0; fi
echo "cpus_online=$(cat /sys/devices/system/cpu/online 2>/dev/null)"
echo "cpu_flags=$(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2)"
for c in /sys/devices/system/cpu/cpu[0-9]*; do
  [ -r "$c/topology/thread_siblings_list" ] && echo "siblings $(basename "$c" | tr -dc 0-9) $(cat "$c/topology/thread_siblings_list")"
done
for n in /sys/devices/system/node/node[0-9]*; do
  [ -d "$n" ] || continue
  echo "node $(basename "$n" | tr -dc 0-9) $(cat "$n/cpulist") $(awk '/MemTotal/ {t=$4} /MemFree/ {f=$4} END {print t+0, f+0}' "$n/meminfo")"
done
echo "hugepage_sizes=$(ls /sys/kernel/mm/hugepages 2>/dev/null | sed 's/hugepages-//; s/kB//' | tr '\n' ' ')"
echo "mem_total=$(awk '/^MemTotal/ {print $2}' /proc/meminfo)"
echo "resctrl=$(ls /sys/fs/resctrl/info 2>/dev/null | grep -v '_MON$' | tr '\n' ' ')"
`;

/** Expands a kernel CPU list such as `0-3,8,10-11` (empty means none). */
export function parseCpuList(list: string): number[] {
  const cpus: number[] = [];
  for (const part of list.trim().split(',').filter(Boolean)) {
    const [from, to] = part.split('-').map(Number);
    if (!Number.isInteger(from)) throw new Error(`bad CPU list '${list}'`);
    for (let cpu = from!; cpu <= (to ?? from!); cpu++) cpus.push(cpu);
  }
  return cpus;
}

/** Formats CPUs as the kernel and libvirt write them: `0-3,8`. */
export function formatCpuList(cpus: Iterable<number>): string {
  const sorted = [...new Set(cpus)].sort((a, b) => a - b);
  const ranges: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    ranges.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return ranges.join(',');
}

export function parseFacts(output: string): HostFacts {
  const kv = new Map<string, string>();
  const facts: HostFacts = {
    osId: 'unknown', osVersion: '', osLike: [], kernel: '', arch: '', uid: -1, systemd: false,
    cpusOnline: [], cpuFlags: [], threadSiblings: {}, numaNodes: [], hugepageSizesKiB: [], memTotalKiB: 0, resctrl: [],
  };
  for (const line of output.split('\n')) {
    const words = line.trim().split(/\s+/);
    if (words[0] === 'siblings' && words.length === 3) {
      facts.threadSiblings[Number(words[1])] = parseCpuList(words[2]!);
    } else if (words[0] === 'node' && words.length >= 3) {
      const [, id, cpus = '', total = '0', free = '0'] = words.length === 5 ? words : [words[0], words[1], '', words[2], words[3]];
      facts.numaNodes.push({ id: Number(id), cpus: parseCpuList(cpus), memTotalKiB: Number(total), memFreeKiB: Number(free) });
    } else if (line.includes('=')) {
      kv.set(line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1).trim());
    }
  }
  facts.osId = kv.get('os_id') || 'unknown';
  facts.osVersion = kv.get('os_version') ?? '';
  facts.osLike = (kv.get('os_like') ?? '').split(/\s+/).filter(Boolean);
  facts.kernel = kv.get('kernel') ?? '';
  facts.arch = kv.get('arch') ?? '';
  facts.uid = Number(kv.get('uid') ?? -1);
  facts.systemd = kv.get('systemd') === '1';
  facts.cpusOnline = parseCpuList(kv.get('cpus_online') ?? '');
  facts.cpuFlags = (kv.get('cpu_flags') ?? '').split(/\s+/).filter(Boolean);
  facts.hugepageSizesKiB = (kv.get('hugepage_sizes') ?? '').split(/\s+/).filter(Boolean).map(Number).sort((a, b) => a - b);
  facts.memTotalKiB = Number(kv.get('mem_total') ?? 0);
  facts.resctrl = (kv.get('resctrl') ?? '').split(/\s+/).filter(Boolean);
  facts.numaNodes.sort((a, b) => a.id - b.id);
  return facts;
}

/** The OS family that decides distribution tooling (grub regeneration, package names). */
export function osFamily(facts: Pick<HostFacts, 'osId' | 'osLike'>): 'debian' | 'rhel' | 'suse' | 'other' {
  const ids = [facts.osId, ...facts.osLike];
  if (ids.some((id) => id === 'debian' || id === 'ubuntu')) return 'debian';
  if (ids.some((id) => ['rhel', 'fedora', 'centos', 'rocky', 'almalinux'].includes(id))) return 'rhel';
  if (ids.some((id) => id.includes('suse'))) return 'suse';
  return 'other';
}
