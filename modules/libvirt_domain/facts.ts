/**
 * Host facts a guest tuner needs, read in the gather round trip: NUMA topology with
 * thread siblings, hugepage pools per node and size (free and surplus), PCI devices'
 * NUMA node, and each running domain's pinning twice: as libvirt reports it
 * (vcpupin/emulatorpin/numatune) and as the kernel enforces it (Cpus_allowed_list /
 * Mems_allowed_list of every thread of the qemu process). Fields are tab-separated.
 */
import { parseCpuList, quote } from '../../src/kit/index.js';

export interface HostCpu { id: number; core: number; socket: number; node: number; siblings: number[] }
export interface HugepagePool { node: number; sizeKiB: number; total: number; free: number; surplus: number }
export interface PciDevice { address: string; class: string; node: number; netdevs: string[] }
export interface QemuThread { tid: number; comm: string; cpus: string; mems: string }
export interface DomainPinning {
  name: string;
  pid: number | null;
  libvirt: { vcpupin: Record<string, string>; emulatorpin: string | null; numaMode: string | null; numaNodeset: string | null };
  kernel: QemuThread[];
}

export interface LibvirtHostFacts {
  virsh: boolean;
  cpusOnline: number[];
  cpus: HostCpu[];
  nodes: Array<{ id: number; cpus: number[] }>;
  defaultHugepageKiB: number | null;
  hugepages: HugepagePool[];
  pci: PciDevice[];
  running: DomainPinning[];
}

/** Read-only probe; `virsh` is the virsh command with its connection URI. */
export function libvirtFactsProbe(uri: string): string {
  const virsh = `virsh -c ${quote(uri)}`;
  return `
t=$(printf '\t')
echo "online$t$(cat /sys/devices/system/cpu/online 2>/dev/null)"
for c in /sys/devices/system/cpu/cpu[0-9]*; do
  [ -r "$c/topology/core_id" ] || continue
  n=$(ls -d "$c"/node[0-9]* 2>/dev/null | head -n1 | sed 's/.*node//')
  echo "cpu$t\${c##*cpu}$t$(cat "$c/topology/core_id")$t$(cat "$c/topology/physical_package_id")$t\${n:-0}$t$(cat "$c/topology/thread_siblings_list")"
done
for n in /sys/devices/system/node/node[0-9]*; do
  [ -d "$n" ] || continue
  echo "node$t\${n##*node}$t$(cat "$n/cpulist")"
  for h in "$n"/hugepages/hugepages-*kB; do
    [ -d "$h" ] || continue
    s=\${h##*hugepages-}
    echo "hugepages$t\${n##*node}$t\${s%kB}$t$(cat "$h/nr_hugepages")$t$(cat "$h/free_hugepages")$t$(cat "$h/surplus_hugepages")"
  done
done
echo "hugepage_default$t$(awk '/^Hugepagesize:/ {print $2}' /proc/meminfo)"
for d in /sys/bus/pci/devices/*; do
  [ -r "$d/numa_node" ] || continue
  echo "pci$t\${d##*/}$t$(cat "$d/class")$t$(cat "$d/numa_node")$t$(ls "$d/net" 2>/dev/null | tr '\\n' ' ')"
done
if command -v virsh >/dev/null 2>&1; then
  echo "virsh\${t}1"
  ${virsh} list --name </dev/null 2>/dev/null | while IFS= read -r d; do
    [ -n "$d" ] || continue
    p=$(cat "/run/libvirt/qemu/$d.pid" 2>/dev/null)
    echo "dom$t$d$t$p"
    ${virsh} vcpupin --domain "$d" </dev/null 2>/dev/null | awk -v d="$d" -v t="$t" '$1 ~ /^[0-9]+$/ {print "vcpupin" t d t $1 t $2}'
    ${virsh} emulatorpin --domain "$d" </dev/null 2>/dev/null | awk -v d="$d" -v t="$t" '$1 == "*:" {print "emulatorpin" t d t $2}'
    ${virsh} numatune --domain "$d" </dev/null 2>/dev/null | awk -v d="$d" -v t="$t" -F': *' '{gsub(/ +$/, "", $1); print "numatune" t d t $1 t $2}'
    [ -n "$p" ] && [ -d "/proc/$p/task" ] && for k in /proc/$p/task/*; do
      echo "thread$t$d$t\${k##*/}$t$(awk '/^Cpus_allowed_list:/ {print $2}' "$k/status")$t$(awk '/^Mems_allowed_list:/ {print $2}' "$k/status")$t$(cat "$k/comm")"
    done
  done
else
  echo "virsh\${t}0"
fi
`;
}

function runningDomain(facts: LibvirtHostFacts, name: string): DomainPinning | undefined {
  return facts.running.find((domain) => domain.name === name);
}

/** Applies one tab-separated fact line to facts. */
function readLine(facts: LibvirtHostFacts, fields: string[]): void {
  const [kind, a = '', b = '', c = '', d = '', e = ''] = fields;
  const dom = () => runningDomain(facts, a);
  switch (kind) {
    case 'online': facts.cpusOnline = parseCpuList(a); break;
    case 'cpu': facts.cpus.push({ id: Number(a), core: Number(b), socket: Number(c), node: Number(d), siblings: parseCpuList(e) }); break;
    case 'node': facts.nodes.push({ id: Number(a), cpus: parseCpuList(b) }); break;
    case 'hugepages': facts.hugepages.push({ node: Number(a), sizeKiB: Number(b), total: Number(c), free: Number(d), surplus: Number(e) }); break;
    case 'hugepage_default': facts.defaultHugepageKiB = a ? Number(a) : null; break;
    case 'pci': facts.pci.push({ address: a, class: b, node: Number(c), netdevs: d.split(' ').filter(Boolean) }); break;
    case 'virsh': facts.virsh = a === '1'; break;
    case 'dom': facts.running.push({ name: a, pid: b ? Number(b) : null, libvirt: { vcpupin: {}, emulatorpin: null, numaMode: null, numaNodeset: null }, kernel: [] }); break;
    case 'vcpupin': if (dom()) dom()!.libvirt.vcpupin[b] = c; break;
    case 'emulatorpin': if (dom()) dom()!.libvirt.emulatorpin = b; break;
    case 'numatune':
      if (dom() && b === 'numa_mode') dom()!.libvirt.numaMode = c || null;
      if (dom() && b === 'numa_nodeset') dom()!.libvirt.numaNodeset = c || null;
      break;
    case 'thread': dom()?.kernel.push({ tid: Number(b), cpus: c, mems: d, comm: fields.slice(5).join('\t') }); break;
  }
}

export function parseLibvirtFacts(output: string): LibvirtHostFacts {
  const facts: LibvirtHostFacts = { virsh: false, cpusOnline: [], cpus: [], nodes: [], defaultHugepageKiB: null, hugepages: [], pci: [], running: [] };
  for (const line of output.split('\n')) {
    if (line) readLine(facts, line.split('\t'));
  }
  facts.cpus.sort((x, y) => x.id - y.id);
  facts.nodes.sort((x, y) => x.id - y.id);
  return facts;
}

/** The NUMA node of each host CPU (node 0 for a host without NUMA nodes in sysfs). */
export function nodeOfCpu(facts: LibvirtHostFacts): Map<number, number> {
  const map = new Map<number, number>();
  for (const node of facts.nodes) for (const cpu of node.cpus) map.set(cpu, node.id);
  for (const cpu of facts.cpus) if (!map.has(cpu.id)) map.set(cpu.id, cpu.node);
  return map;
}
