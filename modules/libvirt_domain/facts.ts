/**
 * Host facts a guest tuner needs, read in the gather round trip: NUMA topology with
 * thread siblings, hugepage pools per node and size (free and surplus), PCI devices'
 * NUMA node, and each running domain's pinning twice: as libvirt reports it
 * (vcpupin/emulatorpin/numatune) and as the kernel enforces it (Cpus_allowed_list /
 * Mems_allowed_list of every thread of the qemu process). Fields are tab-separated.
 * SR-IOV: each PF's VF count and each VF's PF, and which running domain holds which
 * PCI device (libvirt's status XML, read by the same awk: see modules/lib/pci-hostdev.ts).
 */
import { parseCpuList, quote, READ_FN, type Command } from '../../src/kit/index.js';
import { VHOST_KTHREADS_PROBE } from './vhost.js';
import { HOSTDEV_AWK, HOSTDEV_DOMAIN_AWK, LIBVIRT_STATUS_DIR, parseHeld, type HeldDevice } from '../lib/pci-hostdev.js';

export interface HostCpu { id: number; core: number; socket: number; node: number; siblings: number[] }
export interface HugepagePool { node: number; sizeKiB: number; total: number; free: number; surplus: number }
export interface PciDevice {
  address: string;
  class: string;
  /** -1: the platform gives no NUMA information. */
  node: number;
  netdevs: string[];
  /** The bound driver (uevent DRIVER=); absent when none is bound. */
  driver?: string;
  /** An SR-IOV PF's sriov_totalvfs and sriov_numvfs. */
  sriov?: { totalvfs: number; numvfs: number };
  /** A VF's PF address. */
  physfn?: string;
}
export interface QemuThread { tid: number; comm: string; cpus: string; mems: string }
export interface DomainPinning {
  name: string;
  pid: number | null;
  libvirt: { vcpupin: Record<string, string>; emulatorpin: string | null; numaMode: string | null; numaNodeset: string | null };
  kernel: QemuThread[];
  /** vhost-net kernel threads in the domain's cgroup (kernels before 6.4; see vhost.ts). */
  vhost: QemuThread[];
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
  /** Host PCI devices held by running domains (hostdev or interface type='hostdev' sources). */
  hostdevs: HeldDevice[];
}

/**
 * What the fact reader does with each line the probe's shell part prints. A line that
 * starts with \001 is a directive: `L` prints its text, `V TOOL [DOMAIN]` says that the
 * lines up to the next directive are that virsh tool's output (the domain stays the last
 * one named: the shell names it, virsh's `echo` switches tools inside one virsh run), `X FILE` reads
 * a running domain's status XML for the host devices it holds, and `T FIELD...` prints a
 * fact line whose fields are `=TEXT`, `@FILE` (the file's first line), `^KEY^FILE` (the
 * word after KEY in FILE) or `%KEY%FILE` (the value of KEY= in FILE, as uevent files
 * have them). One awk reads every file it is asked for with getline, so a
 * vanished thread or a missing attribute gives an empty field instead of ending the run,
 * and sysfs's binary attributes (thread_siblings_list, node cpulist), which the shell's
 * byte-wise read sees as empty, come out whole.
 */
export const FACT_READER = String.raw`${HOSTDEV_AWK}${HOSTDEV_DOMAIN_AWK}
function assigned(k, f,   l, e) {
  if (!(f in aseen)) {
    aseen[f] = 1
    while ((getline l < f) > 0) { e = index(l, "="); if (e) av[f SUBSEP substr(l, 1, e - 1)] = substr(l, e + 1) }
    close(f)
  }
  return (f SUBSEP k) in av ? av[f SUBSEP k] : ""
}
function first(f,   l) { l = ""; if ((getline l < f) <= 0) l = ""; close(f); return l }
function keyed(k, f,   l, s, w) {
  if (!(f in seen)) {
    seen[f] = 1
    while ((getline l < f) > 0) { s = l; sub(/^[ 	]+/, "", s); split(s, w, /[ 	]+/); kv[f SUBSEP w[1]] = w[2] }
    close(f)
  }
  return (f SUBSEP k) in kv ? kv[f SUBSEP k] : ""
}
function field(x,   c, p) {
  c = substr(x, 1, 1)
  if (c == "=") return substr(x, 2)
  if (c == "@") return first(substr(x, 2))
  if (c == "%") { split(substr(x, 2), p, "%"); return assigned(p[1], substr(x, length(p[1]) + 3)) }
  split(substr(x, 2), p, "^")
  return keyed(p[1], substr(x, length(p[1]) + 3))
}
substr($0, 1, 1) == "" {
  tool = ""
  n = split(substr($0, 2), f, "	")
  if (f[1] == "L") print substr($0, 4)
  else if (f[1] == "V") { tool = f[2]; if (n > 2) dom = f[3] }
  else if (f[1] == "X") { hd_reset(); xd = hd_domain(f[2]); while ((getline xl < f[2]) > 0) hd_line(xl, xd, "hostdev"); close(f[2]) }
  else if (f[1] == "T") { out = field(f[2]); for (i = 3; i <= n; i++) out = out "	" field(f[i]); print out }
  next
}
tool == "numatune" { split($0, w, /: */); sub(/ +$/, "", w[1]); print "numatune	" dom "	" w[1] "	" w[2]; next }
{ s = $0; sub(/^[ 	]+/, "", s); split(s, w, /[ 	]+/) }
tool == "vcpupin" && w[1] ~ /^[0-9]+$/ { print "vcpupin	" dom "	" w[1] "	" w[2] }
tool == "emulatorpin" && w[1] == "*:" { print "emulatorpin	" dom "	" w[2] }
`;

/**
 * kc_vq NAME sets kc_q to NAME quoted for virsh's own command language (the one-string
 * form `virsh "cmd1; cmd2"`): in double quotes, with \ and " escaped. Builtins only.
 * Probes and the apply steps of libvirt_domain share it.
 */
export const VIRSH_QUOTE_FN = [
  'kc_vq() {',
  '  kc_r=$1; kc_q=',
  '  while :; do',
  '    case $kc_r in',
  '      *[\\\\\\"]*) kc_p=${kc_r%%[\\\\\\"]*}; kc_r=${kc_r#"$kc_p"}; kc_q="$kc_q$kc_p\\\\${kc_r%"${kc_r#?}"}"; kc_r=${kc_r#?} ;;',
  '      *) kc_q="\\"$kc_q$kc_r\\""; return ;;',
  '    esac',
  '  done',
  '}',
].join('\n') as Command; // constant shell code: a probe splices it, apply scripts too

/** One virsh run's commands: each tool's output after a directive that names it. */
const PINNING_READS = ['vcpupin', 'emulatorpin', 'numatune'].map((tool) => `echo '\x01V\t${tool}'; ${tool} $kc_q`).join('; ');

/**
 * Read-only probe; `uri` is libvirt's connection URI. Globs, tests and printf are shell
 * builtins, so the processes it starts are one awk, `virsh list` and one virsh per
 * running domain, however many CPUs, devices and qemu threads the host has.
 */
export function libvirtFactsProbe(uri: string): string {
  const virsh = `virsh -c ${quote(uri)}`;
  return `${READ_FN}
${VIRSH_QUOTE_FN}
{
printf '\\001T\\t=online\\t@/sys/devices/system/cpu/online\\n'
for c in /sys/devices/system/cpu/cpu[0-9]*; do
  [ -r "$c/topology/core_id" ] || continue
  n=; for l in "$c"/node[0-9]*; do [ -e "$l" ] && n=\${l##*node}; break; done
  printf '\\001T\\t=cpu\\t=%s\\t@%s\\t@%s\\t=%s\\t@%s\\n' "\${c##*cpu}" "$c/topology/core_id" "$c/topology/physical_package_id" "\${n:-0}" "$c/topology/thread_siblings_list"
done
for n in /sys/devices/system/node/node[0-9]*; do
  [ -d "$n" ] || continue
  printf '\\001T\\t=node\\t=%s\\t@%s\\n' "\${n##*node}" "$n/cpulist"
  for h in "$n"/hugepages/hugepages-*kB; do
    [ -d "$h" ] || continue
    s=\${h##*hugepages-}
    printf '\\001T\\t=hugepages\\t=%s\\t=%s\\t@%s\\t@%s\\t@%s\\n' "\${n##*node}" "\${s%kB}" "$h/nr_hugepages" "$h/free_hugepages" "$h/surplus_hugepages"
  done
done
printf '\\001T\\t=hugepage_default\\t^Hugepagesize:^/proc/meminfo\\n'
for d in /sys/bus/pci/devices/*; do
  [ -r "$d/numa_node" ] || continue
  nets=; for i in "$d"/net/*; do [ -e "$i" ] && nets="$nets\${i##*/} "; done
  printf '\\001T\\t=pci\\t=%s\\t@%s\\t@%s\\t=%s\\t%%DRIVER%%%s\\t@%s\\t@%s\\t%%PCI_SLOT_NAME%%%s\\n' "\${d##*/}" "$d/class" "$d/numa_node" "$nets" "$d/uevent" "$d/sriov_totalvfs" "$d/sriov_numvfs" "$d/physfn/uevent"
done
for x in ${LIBVIRT_STATUS_DIR}/*.xml; do [ -e "$x" ] && printf '\\001X\\t%s\\n' "$x"; done
if command -v virsh >/dev/null 2>&1; then
  printf '\\001L\\tvirsh\\t1\\n'
  ${virsh} list --name </dev/null 2>/dev/null | while IFS= read -r d; do
    [ -n "$d" ] || continue
    kc_read "/run/libvirt/qemu/$d.pid"; p=$kc_v
    printf '\\001L\\tdom\\t%s\\t%s\\n' "$d" "$p"
    printf '\\001V\\t\\t%s\\n' "$d"
    kc_vq "$d"
    ${virsh} "${PINNING_READS}" </dev/null 2>/dev/null
    [ -n "$p" ] && [ -d "/proc/$p/task" ] && for k in /proc/$p/task/*; do
      printf '\\001T\\t=thread\\t=%s\\t=%s\\t^Cpus_allowed_list:^%s\\t^Mems_allowed_list:^%s\\t@%s\\n' "$d" "\${k##*/}" "$k/status" "$k/status" "$k/comm"
    done
${VHOST_KTHREADS_PROBE}
  done
else
  printf '\\001L\\tvirsh\\t0\\n'
fi
} | awk ${quote(FACT_READER)}
`;
}

function runningDomain(facts: LibvirtHostFacts, name: string): DomainPinning | undefined {
  return facts.running.find((domain) => domain.name === name);
}

/** `pci ADDRESS CLASS NODE NETDEVS DRIVER TOTALVFS NUMVFS PHYSFN`; lines recorded before the SR-IOV fields end after NETDEVS. */
function pciDevice(fields: string[]): PciDevice {
  const [, address = '', cls = '', node = '', netdevs = '', driver = '', total = '', numvfs = '', physfn = ''] = fields;
  const device: PciDevice = { address, class: cls, node: Number(node), netdevs: netdevs.split(' ').filter(Boolean) };
  if (driver) device.driver = driver;
  if (/^\d+$/.test(total) && Number(total) > 0) device.sriov = { totalvfs: Number(total), numvfs: Number(numvfs) || 0 };
  if (physfn) device.physfn = physfn;
  return device;
}

/** Applies one tab-separated fact line to facts. */
function readLine(facts: LibvirtHostFacts, fields: string[]): void {
  const [kind, a = '', b = '', c = '', d = '', e = ''] = fields;
  const dom = () => runningDomain(facts, a);
  const thread = (): QemuThread => ({ tid: Number(b), cpus: c, mems: d, comm: fields.slice(5).join('\t') });
  switch (kind) {
    case 'online': facts.cpusOnline = parseCpuList(a); break;
    case 'cpu': facts.cpus.push({ id: Number(a), core: Number(b), socket: Number(c), node: Number(d), siblings: parseCpuList(e) }); break;
    case 'node': facts.nodes.push({ id: Number(a), cpus: parseCpuList(b) }); break;
    case 'hugepages': facts.hugepages.push({ node: Number(a), sizeKiB: Number(b), total: Number(c), free: Number(d), surplus: Number(e) }); break;
    case 'hugepage_default': facts.defaultHugepageKiB = a ? Number(a) : null; break;
    case 'pci': facts.pci.push(pciDevice(fields)); break;
    case 'hostdev': { const held = parseHeld(fields); if (held) facts.hostdevs.push(held); break; }
    case 'virsh': facts.virsh = a === '1'; break;
    case 'dom': facts.running.push({ name: a, pid: b ? Number(b) : null, libvirt: { vcpupin: {}, emulatorpin: null, numaMode: null, numaNodeset: null }, kernel: [], vhost: [] }); break;
    case 'vcpupin': if (dom()) dom()!.libvirt.vcpupin[b] = c; break;
    case 'emulatorpin': if (dom()) dom()!.libvirt.emulatorpin = b; break;
    case 'numatune':
      if (dom() && b === 'numa_mode') dom()!.libvirt.numaMode = c || null;
      if (dom() && b === 'numa_nodeset') dom()!.libvirt.numaNodeset = c || null;
      break;
    case 'thread': dom()?.kernel.push(thread()); break;
    case 'vhost': dom()?.vhost.push(thread()); break;
  }
}

export function parseLibvirtFacts(output: string): LibvirtHostFacts {
  const facts: LibvirtHostFacts = { virsh: false, cpusOnline: [], cpus: [], nodes: [], defaultHugepageKiB: null, hugepages: [], pci: [], running: [], hostdevs: [] };
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
