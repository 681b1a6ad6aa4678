/**
 * Host facts every planner and rule may use, gathered in the same round trip as the
 * module probes: OS, kernel, CPUs, NUMA topology, hugepage sizes, boot tooling.
 */
import { READ_FN } from '../kit/remote-lib.js';
import { parseCpuList, type HostFacts } from '../kit/host-facts.js';
import type { ProbeSection } from './script.js';

/** Shell builtins and one awk (uname too on kernels without /proc/sys/kernel/arch, before 6.1). */
export const FACTS_PROBE = READ_FN + `
if [ -r /etc/os-release ]; then . /etc/os-release; fi
echo "os_id=$ID"; echo "os_version=$VERSION_ID"; echo "os_like=$ID_LIKE"
if kc_read /proc/sys/kernel/osrelease; then echo "kernel=$kc_v"; else echo "kernel=$(uname -r)"; fi
kc_read /proc/sys/kernel/random/boot_id; echo "boot_id=$kc_v"
if kc_read /proc/sys/kernel/arch; then echo "arch=$kc_v"; else echo "arch=$(uname -m)"; fi
kc_uid=; if [ -r /proc/self/status ]; then while read -r kc_k kc_u kc_rest; do if [ "$kc_k" = Uid: ]; then kc_uid=$kc_u; break; fi; done < /proc/self/status; fi
echo "uid=\${kc_uid:-$(id -u)}"
if [ -d /run/systemd/system ]; then echo systemd=1; else echo systemd=0; fi
kc_read /sys/devices/system/cpu/online; echo "cpus_online=$kc_v"
# CPU and node lists are binary sysfs attributes that answer a one-byte read (the shell's
# read builtin) with nothing: one awk reads all of them and the nodes' meminfo, and the
# CPU flags too (the builtin reads a byte per system call: a thousand for /proc/cpuinfo).
set --
[ -r /proc/cpuinfo ] && set -- /proc/cpuinfo
for c in /sys/devices/system/cpu/cpu[0-9]*; do [ -r "$c/topology/thread_siblings_list" ] && set -- "$@" "$c/topology/thread_siblings_list"; done
for n in /sys/devices/system/node/node[0-9]*; do [ -d "$n" ] && set -- "$@" "$n/cpulist" "$n/meminfo"; done
if [ "$#" -gt 0 ]; then awk '
  function id(path, kind) { sub("/" kind ".*", "", path); sub(".*/(cpu|node)", "", path); return path }
  FILENAME == "/proc/cpuinfo" { if (!flagged && $0 ~ /^flags.*:/) { flags = $0; sub(/^[^:]*:/, "", flags); flagged = 1 }; next }
  FILENAME ~ /thread_siblings_list$/ { print "siblings", id(FILENAME, "topology"), $0; next }
  FILENAME ~ /cpulist$/ { n = id(FILENAME, "cpulist"); cpus[n] = $0; order[++count] = n; next }
  $3 == "MemTotal:" { total[id(FILENAME, "meminfo")] = $4 }
  $3 == "MemFree:" { free[id(FILENAME, "meminfo")] = $4 }
  END { print "cpu_flags=" flags; for (i = 1; i <= count; i++) { n = order[i]; print "node", n, cpus[n], total[n] + 0, free[n] + 0 } }' "$@"; fi
kc_s=; for kc_d in /sys/kernel/mm/hugepages/hugepages-*kB; do [ -d "$kc_d" ] || continue; kc_d=\${kc_d##*/hugepages-}; kc_s="$kc_s\${kc_d%kB} "; done
echo "hugepage_sizes=$kc_s"
kc_t=; if [ -r /proc/meminfo ]; then while read -r kc_k kc_n kc_rest; do if [ "$kc_k" = MemTotal: ]; then kc_t=$kc_n; break; fi; done < /proc/meminfo; fi
echo "mem_total=$kc_t"
kc_s=; for kc_d in /sys/fs/resctrl/info/*; do [ -e "$kc_d" ] || continue; case "$kc_d" in *_MON) ;; *) kc_s="$kc_s\${kc_d##*/} " ;; esac; done
echo "resctrl=$kc_s"
`;

/** The facts probe in a gather: isolated, since it sources /etc/os-release. */
export const FACTS_SECTION: ProbeSection = { id: 'facts', script: FACTS_PROBE, isolated: true };

export function parseFacts(output: string): HostFacts {
  const kv = new Map<string, string>();
  const facts: HostFacts = {
    osId: 'unknown', osVersion: '', osLike: [], kernel: '', bootId: '', arch: '', uid: -1, systemd: false,
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
  facts.bootId = kv.get('boot_id') ?? '';
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

