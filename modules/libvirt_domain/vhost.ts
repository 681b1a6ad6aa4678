/**
 * vhost-net workers of running domains: where the kernel lets them run, against where
 * the guest's vCPUs run. Each virtio-net queue pair with vhost has a worker that moves
 * the guest's packets; on another NUMA node than the guest it crosses the interconnect
 * for every packet.
 *
 * kvmconf places them through the emulator, not by pinning them itself: before Linux 6.4
 * a worker is a kernel thread `vhost-QEMUPID` that joins the cgroups of the QEMU process
 * (so libvirt's emulator cpuset, i.e. cputune.emulatorpin, confines it); from 6.4 it is a
 * thread of the QEMU process, created by an emulator thread, and inherits that thread's
 * affinity. Either way emulatorpin on the guest's node places them, and survives guest
 * restarts, which pinning a thread id would not.
 */
import { formatCpuList, parseCpuList, type Diagnostic } from '../../src/kit/index.js';
import type { DomainPinning, QemuThread } from './facts.js';

export interface VhostWorker extends QemuThread {
  /** kthread: a kernel thread in the domain's cgroup (before 6.4); thread: one of QEMU's own threads. */
  kind: 'kthread' | 'thread';
}

/**
 * Shell for the facts probe, inside its loop over running domains ($d the name, $p the
 * QEMU pid): the threads of the QEMU process's cgroup named vhost-PID that are not its
 * own are its vhost kernel threads (a QEMU in the root cgroup is skipped: that would be
 * every thread of the host, read once per domain), printed as `vhost` fact lines (builtins only: cgroup
 * v2's cgroup.threads, v1's cpuset tasks file; kc_read from READ_FN).
 */
export const VHOST_KTHREADS_PROBE = `    kc_cg=; kc_cgf=
    [ -n "$p" ] && [ -r "/proc/$p/cgroup" ] && while IFS= read -r kc_l; do
      case $kc_l in 0::/ | *:cpuset:/) ;; 0::*) kc_cgf=/sys/fs/cgroup\${kc_l#0::}/cgroup.threads ;; *:cpuset:*) kc_cg=/sys/fs/cgroup/cpuset\${kc_l#*:cpuset:}/tasks ;; esac
    done < "/proc/$p/cgroup"
    [ -r "$kc_cgf" ] || kc_cgf=$kc_cg
    [ -n "$kc_cgf" ] && [ -r "$kc_cgf" ] && while read -r kc_t; do
      [ -d "/proc/$p/task/$kc_t" ] && continue
      kc_read "/proc/$kc_t/comm" && [ "$kc_v" = "vhost-$p" ] || continue
      printf '\\001T\\t=vhost\\t=%s\\t=%s\\t^Cpus_allowed_list:^%s\\t^Mems_allowed_list:^%s\\t@%s\\n' "$d" "$kc_t" "/proc/$kc_t/status" "/proc/$kc_t/status" "/proc/$kc_t/comm"
    done < "$kc_cgf"`;

const isVhost = (thread: QemuThread) => /^vhost-\d+$/.test(thread.comm);
const isVcpu = (thread: QemuThread) => /^CPU \d+\/(KVM|TCG|HVF|WHPX)$/.test(thread.comm);

/** The domain's vhost workers, whichever kernel made them. */
export function vhostWorkers(domain: DomainPinning): VhostWorker[] {
  return [
    ...domain.kernel.filter(isVhost).map((thread) => ({ ...thread, kind: 'thread' as const })),
    // facts saved by a kvmconf without this field have no kernel threads listed
    ...(domain.vhost ?? []).filter(isVhost).map((thread) => ({ ...thread, kind: 'kthread' as const })),
  ];
}

/** How a worker follows the emulator, for the facts output. */
export function vhostPlacementNote(worker: VhostWorker): string {
  return worker.kind === 'kthread'
    ? 'kernel thread in the emulator cgroup: follows cputune.emulatorpin'
    : 'thread of the QEMU process (Linux 6.4+): follows cputune.emulatorpin';
}

/**
 * A warning per domain whose vhost workers may run on a NUMA node its vCPUs do not use.
 * Nothing when the vCPUs are not confined to fewer nodes than the host has (nothing to
 * be local to), or when the domain has no vhost workers (no vhost, or no network).
 */
export function vhostDiagnostics(domain: DomainPinning, nodeOf: Map<number, number>): Diagnostic[] {
  const workers = vhostWorkers(domain);
  const vcpus = domain.kernel.filter(isVcpu);
  if (!workers.length || !vcpus.length) return [];
  const nodesOf = (cpus: number[]) => [...new Set(cpus.map((cpu) => nodeOf.get(cpu) ?? 0))].sort((a, b) => a - b);
  const guestNodes = nodesOf(vcpus.flatMap((thread) => parseCpuList(thread.cpus)));
  if (guestNodes.length >= new Set(nodeOf.values()).size) return [];
  const away = workers.filter((worker) => nodesOf(parseCpuList(worker.cpus)).some((node) => !guestNodes.includes(node)));
  if (!away.length) return [];
  const guestCpus = [...nodeOf].filter(([, node]) => guestNodes.includes(node)).map(([cpu]) => cpu);
  const listed = away.map((worker) => `${worker.comm} (CPUs ${worker.cpus})`).join(', ');
  return [{
    severity: 'warning',
    message:
      `domain ${domain.name}: vhost-net workers ${listed} may run off NUMA node ${guestNodes.join(',')}, where its vCPUs run: ` +
      `set cputune.emulatorpin to CPUs of node ${guestNodes.join(',')} (${formatCpuList(guestCpus)}); the workers follow the emulator`,
  }];
}
