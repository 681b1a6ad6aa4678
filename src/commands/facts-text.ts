/**
 * `kvmconf facts --format text`: what a person needs to place guests, as tables: NUMA
 * nodes with their CPUs, thread siblings and free hugepages per size, PCI devices by
 * node (SR-IOV PFs and VFs, and the running domain holding a device), running domains with their pinning, then the settings the modules manage.
 */
import type { HostFacts } from '../kit/host-facts.js';
import { formatCpuList } from '../kit/host-facts.js';
import type { DomainPinning, HugepagePool, LibvirtHostFacts, PciDevice } from '../../modules/libvirt_domain/facts.js';
import { vhostWorkers } from '../../modules/libvirt_domain/vhost.js';
import { freeCapacity } from '../../modules/numa_placement/capacity.js';

export interface HostFactsReport {
  host: string;
  error?: string;
  facts?: HostFacts;
  modules?: Record<string, unknown>;
}

/** Columns padded to their widest cell, two spaces apart; the last column is not padded. */
export function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)));
  const line = (cells: string[]): string => cells.map((cell, column) => (column === cells.length - 1 ? cell : cell.padEnd(widths[column]!))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)];
}

/** 2048 -> `2M`, 1048576 -> `1G`. */
function sizeLabel(kib: number): string {
  return kib >= 1048576 ? `${kib / 1048576}G` : kib >= 1024 ? `${kib / 1024}M` : `${kib}K`;
}

const gib = (kib: number): string => `${(kib / 1048576).toFixed(1)} GiB`;

function numaTable(facts: HostFacts, pools: HugepagePool[]): string[] {
  const sizes = [...new Set(pools.map((pool) => pool.sizeKiB))].sort((a, b) => a - b);
  const rows = facts.numaNodes.map((node) => {
    const siblings = [...new Set(node.cpus.map((cpu) => formatCpuList(facts.threadSiblings[cpu] ?? [cpu])))].join(' ');
    const free = sizes.map((size) => {
      const pool = pools.find((entry) => entry.node === node.id && entry.sizeKiB === size);
      return pool ? `${pool.free}/${pool.total}` : '-';
    });
    return [String(node.id), formatCpuList(node.cpus), siblings, gib(node.memTotalKiB), gib(node.memFreeKiB), ...free];
  });
  return table(['node', 'cpus', 'siblings', 'memory', 'free', ...sizes.map((size) => `${sizeLabel(size)} free/total`)], rows);
}

/** `PF 2/4 VFs` for a PF, `VF of ADDRESS` for a VF, empty otherwise. */
function sriovCell(device: PciDevice): string {
  if (device.sriov) return `PF ${device.sriov.numvfs}/${device.sriov.totalvfs} VFs`;
  return device.physfn ? `VF of ${device.physfn}` : '';
}

/**
 * Devices by node with their driver; on a host with SR-IOV or devices given to guests,
 * the PF/VF column and the running domain that holds each device.
 */
function pciTable(host: LibvirtHostFacts): string[] {
  const devices = [...host.pci].sort((a, b) => a.node - b.node || a.address.localeCompare(b.address));
  const holders = (address: string) => (host.hostdevs ?? []).filter((held) => held.address === address).map((held) => held.domain).join(',');
  const sriov = devices.some((device) => sriovCell(device));
  const held = (host.hostdevs ?? []).length > 0;
  const rows = devices.map((device) => [
    device.node < 0 ? '-' : String(device.node), device.address, device.class, device.driver ?? '-', device.netdevs.join(','),
    ...(sriov ? [sriovCell(device)] : []), ...(held ? [holders(device.address)] : []),
  ]);
  return table(['node', 'address', 'class', 'driver', 'netdevs', ...(sriov ? ['sr-iov'] : []), ...(held ? ['held by'] : [])], rows);
}

/** A domain's vhost-net workers and where they may run; how they follow emulatorpin (vhost.ts). */
function vhostCell(domain: DomainPinning): string {
  const workers = vhostWorkers(domain);
  if (!workers.length) return '-';
  const where = workers[0]!.kind === 'kthread' ? 'kernel threads in the emulator cgroup' : 'QEMU threads';
  return `${workers.map((worker) => `${worker.comm} on ${worker.cpus}`).join(', ')} (${where})`;
}

function domainTable(host: LibvirtHostFacts): string[] {
  const vhost = host.running.some((domain) => vhostWorkers(domain).length > 0);
  const rows = host.running.map((domain) => {
    const vcpus = Object.entries(domain.libvirt.vcpupin).map(([vcpu, cpus]) => `${vcpu}:${cpus}`).join(' ');
    const numa = domain.libvirt.numaMode ? `${domain.libvirt.numaMode} ${domain.libvirt.numaNodeset ?? ''}`.trim() : '-';
    return [domain.name, domain.pid === null ? '-' : String(domain.pid), vcpus || '-', domain.libvirt.emulatorpin ?? '-', numa, ...(vhost ? [vhostCell(domain)] : [])];
  });
  return table(['domain', 'pid', 'vcpupin', 'emulatorpin', 'numa', ...(vhost ? ['vhost-net workers (follow emulatorpin)'] : [])], rows);
}

/** Room for new guests per node after the running domains' pinning (what numa_placement starts from). */
function capacityTable(host: LibvirtHostFacts): string[] {
  const nodes = freeCapacity(host);
  const sizes = [...new Set(host.hugepages.map((pool) => pool.sizeKiB))].sort((a, b) => a - b);
  const list = (cpus: number[]) => formatCpuList(cpus) || '-';
  const rows = nodes.map((n) => [String(n.node), list(n.online), list(n.pinned), list(n.housekeeping), `${list(n.free)} (${n.free.length})`, ...sizes.map((size) => String(n.hugepages[size] ?? 0))]);
  return table(['node', 'online', 'pinned', 'host core', 'free for guests', ...sizes.map((size) => `${sizeLabel(size)} free`)], rows);
}

const isScalar = (value: unknown): value is string | number | boolean => ['string', 'number', 'boolean'].includes(typeof value) && value !== '';

/** `key=value` of a view's scalars; a nested object shows its `selected` value, or its own scalars. */
function scalars(view: Record<string, unknown>, depth: number): string[] {
  return Object.entries(view).flatMap(([key, value]) => {
    if (isScalar(value)) return [`${key}=${value}`];
    if (value === null || typeof value !== 'object' || Array.isArray(value) || depth > 0) return [];
    const selected = (value as { selected?: unknown }).selected;
    return isScalar(selected) ? [`${key}=${selected}`] : scalars(value as Record<string, unknown>, depth + 1);
  });
}

/** A module's view in one line. */
function moduleLine(name: string, view: unknown): string {
  return `${name}: ${view !== null && typeof view === 'object' ? scalars(view as Record<string, unknown>, 0).join(' ') : String(view)}`;
}

/** Modules whose view the tables already show, or too large for one line. */
const TABLED = new Set(['libvirt_domain', 'hugepages', 'kernel_cmdline', 'io_scheduler']);

function section(title: string, lines: string[]): string[] {
  return lines.length > 1 ? ['', `  ${title}`, ...lines.map((line) => `    ${line}`)] : [];
}

function hostText(report: HostFactsReport): string[] {
  if (report.error !== undefined || !report.facts) return [`${report.host}: error: ${report.error ?? 'no facts'}`];
  const { facts } = report;
  const libvirt = (report.modules?.libvirt_domain as { host?: LibvirtHostFacts } | undefined)?.host;
  const pools = libvirt?.hugepages ?? [];
  const head = `${report.host}: ${facts.osId} ${facts.osVersion}, kernel ${facts.kernel}, ${facts.arch}, ${facts.cpusOnline.length} CPUs, ${gib(facts.memTotalKiB)}, boot_id ${facts.bootId || '-'}`;
  const settings = Object.entries(report.modules ?? {}).filter(([name]) => !TABLED.has(name)).map(([name, view]) => moduleLine(name, view));
  return [
    head,
    ...section('NUMA nodes', numaTable(facts, pools)),
    ...(libvirt ? section('PCI devices', pciTable(libvirt)) : []),
    ...(libvirt ? section('running domains', domainTable(libvirt)) : []),
    ...(libvirt?.nodes.length ? section('free for placement (CPUs pinned alone by running domains taken, first core of each node kept for the host)', capacityTable(libvirt)) : []),
    ...(settings.length ? ['', '  settings', ...settings.map((line) => `    ${line}`)] : []),
  ];
}

export function renderFactsText(reports: HostFactsReport[]): string {
  return reports.map((report) => hostText(report).join('\n') + '\n').join('\n');
}
