/**
 * Host facts every planner and rule may use, gathered in the same round trip as the
 * module probes: OS, kernel, CPUs, NUMA topology, hugepage sizes, boot tooling.
 */
import { READ_FN } from '../kit/remote-lib.js';
import { awkReader, readWith } from '../kit/awk-reader.js';
import { parseCpuList, type HostFacts } from '../kit/host-facts.js';
import type { ProbeSection } from './script.js';

/**
 * The uid (awk's own /proc/self/status: a child of the shell, the same user),
 * /etc/os-release (read, not sourced: its variables stay out of the gather's shell), the
 * CPU flags, each CPU's thread siblings and each node's CPUs and memory. CPU and node
 * lists are binary sysfs attributes that answer a one-byte read (the shell's read
 * builtin) with nothing, and the builtin reads a byte per system call (a thousand for
 * /proc/cpuinfo): an awk reader takes them all.
 */
const FACTS_READER = awkReader({
  name: 'facts',
  functions: [
    'function facts_id(path, kind) { sub("/" kind ".*", "", path); sub(".*/(cpu|node)", "", path); return path }',
    // A value as the shell would read it: '...' literal, "..." with \" \\ \$ \` unescaped.
    'function facts_unquote(v,   out, c, i) {',
    '  if (v ~ /^\'.*\'$/) return substr(v, 2, length(v) - 2)',
    '  if (v !~ /^".*"$/) return v',
    '  v = substr(v, 2, length(v) - 2); out = ""',
    '  for (i = 1; i <= length(v); i++) { c = substr(v, i, 1); if (c == "\\\\" && index("\\"\\\\$`", substr(v, i + 1, 1))) { i++; c = substr(v, i, 1) }; out = out c }',
    '  return out',
    '}',
  ].join('\n'),
  begin: 'facts_flagged = 0; facts_flags = ""; facts_count = 0; split("", facts_os); split("", facts_cpus); split("", facts_order); split("", facts_total); split("", facts_free)',
  line: [
    'if (kc_file == "/proc/self/status") { if ($1 == "Uid:") print "uid=" $2; return }',
    'if (kc_file == "/etc/os-release") { if (match($0, /^(ID|VERSION_ID|ID_LIKE)=/)) facts_os[substr($0, 1, RLENGTH - 1)] = facts_unquote(substr($0, RLENGTH + 1)); return }',
    'if (kc_file == "/proc/cpuinfo") { if (!facts_flagged && $0 ~ /^flags.*:/) { facts_flags = $0; sub(/^[^:]*:/, "", facts_flags); facts_flagged = 1 }; return }',
    'if (kc_file ~ /thread_siblings_list$/) { print "siblings", facts_id(kc_file, "topology"), $0; return }',
    'if (kc_file ~ /cpulist$/) { facts_n = facts_id(kc_file, "cpulist"); facts_cpus[facts_n] = $0; facts_order[++facts_count] = facts_n; return }',
    'if ($3 == "MemTotal:") facts_total[facts_id(kc_file, "meminfo")] = $4',
    'if ($3 == "MemFree:") facts_free[facts_id(kc_file, "meminfo")] = $4',
  ].join('\n'),
  end: [
    'print "os_id=" facts_os["ID"]; print "os_version=" facts_os["VERSION_ID"]; print "os_like=" facts_os["ID_LIKE"]',
    'print "cpu_flags=" facts_flags',
    'for (facts_i = 1; facts_i <= facts_count; facts_i++) { facts_n = facts_order[facts_i]; print "node", facts_n, facts_cpus[facts_n], facts_total[facts_n] + 0, facts_free[facts_n] + 0 }',
  ].join('\n'),
});

/** Shell builtins and one awk reader (uname too on kernels without /proc/sys/kernel/arch, before 6.1). */
export const FACTS_PROBE = READ_FN + `
if kc_read /proc/sys/kernel/osrelease; then echo "kernel=$kc_v"; else echo "kernel=$(uname -r)"; fi
kc_read /proc/sys/kernel/random/boot_id; echo "boot_id=$kc_v"
if kc_read /proc/sys/kernel/arch; then echo "arch=$kc_v"; else echo "arch=$(uname -m)"; fi
[ -r /proc/self/status ] || echo "uid=$(id -u)"
if [ -d /run/systemd/system ]; then echo systemd=1; else echo systemd=0; fi
kc_read /sys/devices/system/cpu/online; echo "cpus_online=$kc_v"
${readWith(FACTS_READER, '/proc/self/status /etc/os-release /proc/cpuinfo /sys/devices/system/cpu/cpu[0-9]*/topology/thread_siblings_list /sys/devices/system/node/node[0-9]*/cpulist /sys/devices/system/node/node[0-9]*/meminfo')}
kc_s=; for kc_d in /sys/kernel/mm/hugepages/hugepages-*kB; do [ -d "$kc_d" ] || continue; kc_d=\${kc_d##*/hugepages-}; kc_s="$kc_s\${kc_d%kB} "; done
echo "hugepage_sizes=$kc_s"
kc_t=; if [ -r /proc/meminfo ]; then while read -r kc_k kc_n kc_rest; do if [ "$kc_k" = MemTotal: ]; then kc_t=$kc_n; break; fi; done < /proc/meminfo; fi
echo "mem_total=$kc_t"
kc_s=; for kc_d in /sys/fs/resctrl/info/*; do [ -e "$kc_d" ] || continue; case "$kc_d" in *_MON) ;; *) kc_s="$kc_s\${kc_d##*/} " ;; esac; done
echo "resctrl=$kc_s"
`;

/** The facts probe in a gather. */
export const FACTS_SECTION: ProbeSection = { id: 'facts', script: FACTS_PROBE };

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

