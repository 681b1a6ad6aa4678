/**
 * The small libvirt guest the libvirt tests define (on this machine and inside a lab VM):
 * TCG, 64 MiB, no OS, a raw disk, a virtio-scsi controller and a user-mode NIC (no host
 * network), and a reader of its qemu threads' CPU and memory affinity from /proc.
 */
import { parseCpuList } from '../../src/kit/host-facts.js';

export function testDomainXml(name: string, disk: string): string {
  return `<domain type='qemu'>
  <name>${name}</name>
  <memory unit='MiB'>64</memory>
  <vcpu>2</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='${disk}'/><target dev='vda' bus='virtio'/></disk>
    <controller type='scsi' model='virtio-scsi'/>
    <interface type='user'><model type='virtio'/></interface>
    <memballoon model='none'/>
  </devices>
</domain>
`;
}

export interface QemuThread {
  /** The process's main thread (tid = pid): the emulator thread libvirt pins. */
  main: boolean;
  comm: string;
  cpus: number[];
  mems: string;
}

/** Prints `main|comm|Cpus_allowed_list|Mems_allowed_list` per thread of the domain's qemu process, main 1 for tid = pid. */
export function qemuThreadsScript(name: string): string {
  return `pid=$(cat /run/libvirt/qemu/${name}.pid) && for t in /proc/$pid/task/*; do ` +
    `printf '%s|%s|%s|%s\\n' "$([ "\${t##*/}" = "$pid" ] && echo 1 || echo 0)" "$(cat $t/comm)" "$(awk '/^Cpus_allowed_list/ {print $2}' $t/status)" "$(awk '/^Mems_allowed_list/ {print $2}' $t/status)"; done`;
}

export function parseQemuThreads(output: string): QemuThread[] {
  return output.trim().split('\n').map((line) => {
    const [main = '', comm = '', cpus = '', mems = ''] = line.split('|');
    return { main: main === '1', comm, cpus: parseCpuList(cpus), mems };
  });
}

/** The thread running vCPU n ("CPU 0/TCG", "CPU 0/KVM"). */
export const vcpuThread = (threads: QemuThread[], n: number) => threads.find((t) => new RegExp(`^CPU ${n}/`).test(t.comm));
/**
 * The emulator (main) thread, found by its tid: QEMU's unnamed helper threads (call_rcu)
 * carry the same comm, and /proc's task list is in name order, not tid order.
 */
export const emulatorThread = (threads: QemuThread[]) => threads.find((t) => t.main);
