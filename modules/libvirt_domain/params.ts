/**
 * libvirt_domain parameters: the JSON Schema (tight patterns: every value ends up in
 * XML or on a virsh command line), the canonical shape the planner uses, and normalize().
 */

export const DOMAIN_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$';
/** Shell-style glob over domain names: the name characters plus * ? [ ] ! */
export const DOMAIN_GLOB_PATTERN = '^[A-Za-z0-9_.+*?\\[\\]!-]{1,64}$';
export const CPUSET_PATTERN = '^[0-9]{1,4}(-[0-9]{1,4})?(,[0-9]{1,4}(-[0-9]{1,4})?)*$';
const MAC_PATTERN = '^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$';
const TARGET_PATTERN = '^[A-Za-z0-9_.-]{1,15}$';
const DISK_PATTERN = '^[a-z]{2,3}[a-z0-9]{1,6}$';
const DEVICE_PATH_PATTERN = '^/dev/[A-Za-z0-9_.:/-]{1,200}$';
const URI_PATTERN = '^(qemu|qemu\\+unix)://[A-Za-z0-9_.-]*/(system|session)$';

export const HUGEPAGE_SIZES: Record<string, number> = { '2M': 2048, '1G': 1048576 };
export const IOTUNE_KEYS = ['total_bytes_sec', 'read_bytes_sec', 'write_bytes_sec', 'total_iops_sec', 'read_iops_sec', 'write_iops_sec'] as const;
export type IotuneKey = (typeof IOTUNE_KEYS)[number];
export const MEMTUNE_KEYS = ['hard_limit', 'soft_limit', 'swap_hard_limit', 'min_guarantee'] as const;
export type MemtuneKey = (typeof MEMTUNE_KEYS)[number];

export interface InterfaceMatch {
  mac?: string;
  target?: string;
  index?: number;
}

/** One <cachetune>: the vCPUs whose cache allocation it sets, one <cache> per cache id, level and type. */
export interface CacheTune {
  vcpus: string;
  caches: Array<{ id: number; level: number; type: CacheType; size_kib: number }>;
}
export type CacheType = 'both' | 'code' | 'data';

export interface DomainParams {
  name?: string;
  pattern?: string;
  uri: string;
  vcpu?: { count?: number; current?: number; placement?: 'static' | 'auto'; cpuset?: string };
  cputune?: { vcpupin?: Record<string, string>; emulatorpin?: string; shares?: number; period?: number; quota?: number; cachetune?: CacheTune[] };
  numatune?: { mode?: 'strict' | 'preferred' | 'interleave' | 'restrictive'; nodeset?: string; placement?: 'auto' };
  cpu?: {
    mode?: 'host-passthrough' | 'host-model';
    topology?: { sockets: number; cores: number; threads: number };
    numa?: Array<{ id: number; cpus: string; memory_kib: number }>;
  };
  memory_backing?: { hugepages?: false | { sizeKiB?: number; nodeset?: string }; locked?: boolean; nosharepages?: boolean };
  memtune?: Partial<Record<MemtuneKey, number>>;
  interfaces?: Array<{ match: InterfaceMatch; model?: string; queues?: number; rx_frames?: number }>;
  disks?: Array<{ target: string; cache?: string; io?: string; iotune?: Partial<Record<IotuneKey, number>> }>;
  scsi_queues?: number;
  blkiotune?: { weight?: number; devices?: Array<{ path: string; weight: number }> };
  restart: boolean;
  restart_timeout: number;
  force_restart: boolean;
  /** Internal (kvmconf facts): probe the host only, no domain. */
  factsOnly?: boolean;
}

const int = (minimum: number, maximum?: number) => ({ type: 'integer', minimum, ...(maximum === undefined ? {} : { maximum }) });
const cpuset = { type: 'string', pattern: CPUSET_PATTERN };
const obj = (properties: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({ type: 'object', additionalProperties: false, properties, ...extra });
/** A parameter with its description: what it sets, its unit, and when libvirt applies it. */
const says = (schema: Record<string, unknown>, description: string) => ({ ...schema, description });
const LIVE = 'Set in the config and live on a running domain';
const AT_START = 'Set in the config; a running guest takes it at its next start (pending, or restarted when restart: true)';

export const DOMAIN_SCHEMA: Record<string, unknown> = obj(
  {
    name: says({ type: 'string', pattern: DOMAIN_NAME_PATTERN }, 'libvirt domain name (virsh list --all); the domain must exist'),
    pattern: says({ type: 'string', pattern: DOMAIN_GLOB_PATTERN }, 'shell glob over domain names (* ? [set] [!set]); no match is a warning'),
    uri: says({ type: 'string', pattern: URI_PATTERN }, 'libvirt connection URI (default qemu:///system)'),
    vcpu: says(obj({
      count: says(int(1, 4096), `maximum vCPUs (<vcpu>). ${AT_START}`),
      current: says(int(1, 4096), `vCPUs online at start (<vcpu current>). ${LIVE} when raised up to the running maximum (hotplug); lowered at the next start (an unplug needs the guest's ACPI cooperation)`),
      placement: says({ enum: ['static', 'auto'] }, `vCPU placement: auto asks numad. ${AT_START}`),
      cpuset: says(cpuset, `host CPUs for all vCPUs without their own pin, e.g. "2-7". ${AT_START}`),
    }, { minProperties: 1 }), 'vCPU count, placement and default CPU set'),
    cputune: says(obj(
      {
        vcpupin: says({ type: 'object', minProperties: 1, propertyNames: { pattern: '^[0-9]{1,4}$' }, additionalProperties: cpuset }, `vCPU number -> host CPU list, e.g. { 0: "2", 1: "3" }. ${LIVE} (virsh vcpupin)`),
        emulatorpin: says(cpuset, `host CPUs of the qemu emulator threads. ${LIVE} (virsh emulatorpin)`),
        shares: says(int(2, 262144), `relative CPU weight (cpu.shares / cpu.weight). ${LIVE} (virsh schedinfo)`),
        period: says(int(1000, 1000000), `CFS period of each vCPU, microseconds. ${LIVE} (virsh schedinfo)`),
        quota: says({ type: 'integer', minimum: -1, maximum: 17592186044415, not: { enum: [0] } }, `CFS quota of each vCPU per period, microseconds; -1 unlimited. ${LIVE} (virsh schedinfo)`),
        // [] removes every cache allocation; the host needs resctrl (Intel RDT / AMD PQoS)
        cachetune: says({
          type: 'array',
          items: obj(
            {
              vcpus: says(cpuset, 'the vCPUs this allocation is for'),
              caches: says({
                type: 'array',
                minItems: 1,
                items: obj({ id: says(int(0, 1023), 'cache id (resctrl domain)'), level: says({ enum: [2, 3] }, 'cache level'), type: says({ enum: ['both', 'code', 'data'] }, 'code/data need CDP'), size_kib: says(int(1, 2 ** 40), 'size, KiB') }, { required: ['id', 'level', 'type', 'size_kib'] }),
              }, 'one allocation per cache id, level and type'),
            },
            { required: ['vcpus', 'caches'] },
          ),
        }, `cache allocation (CAT through resctrl), owned as a whole set; [] removes all. ${AT_START}`),
      },
      { minProperties: 1 },
    ), 'CPU pinning and scheduler tuning'),
    numatune: says(obj(
      {
        mode: says({ enum: ['strict', 'preferred', 'interleave', 'restrictive'] }, `memory policy. ${AT_START}; live only on a running domain that has no policy yet, together with nodeset`),
        nodeset: says(cpuset, `HOST NUMA nodes of the guest's memory, e.g. "0". ${LIVE} only in restrictive mode, or on a running domain without a policy; otherwise at the next start`),
        placement: says({ enum: ['auto'] }, `auto: numad chooses the nodes. ${AT_START}`),
      },
      { minProperties: 1, not: { required: ['nodeset', 'placement'] } },
    ), 'host NUMA memory policy (<numatune><memory>)'),
    cpu: says(obj(
      {
        mode: says({ enum: ['host-passthrough', 'host-model'] }, `guest CPU model; host-passthrough for performance. ${AT_START}`),
        topology: says(obj({ sockets: says(int(1, 256), 'guest sockets'), cores: says(int(1, 1024), 'cores per socket'), threads: says(int(1, 16), 'threads per core') }, { required: ['sockets', 'cores', 'threads'] }), `guest sockets x cores x threads, must make the vCPU count. ${AT_START}`),
        numa: says({ type: 'array', minItems: 1, items: obj({ id: says(int(0, 255), 'guest cell id'), cpus: says(cpuset, 'guest vCPUs of the cell'), memory_kib: says(int(1024), 'memory of the cell, KiB') }, { required: ['id', 'cpus', 'memory_kib'] }) }, `guest NUMA cells; every vCPU in one cell, memory adding up to the guest's. ${AT_START}`),
      },
      { minProperties: 1 },
    ), 'guest CPU model, topology and NUMA cells'),
    memory_backing: says(obj(
      {
        hugepages: says({
          anyOf: [
            { const: false },
            obj({ size_kib: says({ enum: [2048, 1048576] }, 'page size, KiB'), size: says({ enum: Object.keys(HUGEPAGE_SIZES) }, 'page size: 2M or 1G'), nodeset: says(cpuset, 'GUEST NUMA cells (cpu.numa ids) these pages back, not host nodes') }, { not: { required: ['size', 'size_kib'] }, dependencies: { nodeset: { anyOf: [{ required: ['size'] }, { required: ['size_kib'] }] } } }),
          ],
        }, `hugepage backing: {} for the host's default size, a size, or false for none; the host pool must have the pages free. ${AT_START}`),
        locked: says({ type: 'boolean' }, `lock guest memory in host RAM (needs memtune.hard_limit_kib). ${AT_START}`),
        nosharepages: says({ type: 'boolean' }, `keep KSM from merging this guest's pages. ${AT_START}`),
      },
      { minProperties: 1 },
    ), 'how guest memory is backed'),
    memtune: says(obj({
      hard_limit_kib: says(int(1024, 2 ** 52), `memory limit of the qemu process, KiB (guest memory plus overhead). ${LIVE}, unless below what the process uses now (then at the next start); never above swap_hard_limit_kib`),
      soft_limit_kib: says(int(1024, 2 ** 52), `memory the host reclaims down to under contention, KiB. ${LIVE}`),
      swap_hard_limit_kib: says(int(1024, 2 ** 52), `limit of memory plus swap, KiB. ${LIVE}, set together with hard_limit_kib`),
      min_guarantee_kib: says(int(1024, 2 ** 52), 'refused: libvirt\'s QEMU driver does not support it'),
    }, { minProperties: 1 }), 'memory limits of the qemu process (<memtune>)'),
    interfaces: says({
      type: 'array',
      minItems: 1,
      items: obj(
        {
          match: says(obj({ mac: says({ type: 'string', pattern: MAC_PATTERN }, 'MAC address'), target: says({ type: 'string', pattern: TARGET_PATTERN }, 'live tap device (vnetN); only while the domain runs'), index: says(int(0, 255), 'position among the interfaces of the config, from 0') }, { minProperties: 1, maxProperties: 1 }), 'the interface: by mac, by live target (vnetN) or by index in the config'),
          model: says({ enum: ['virtio', 'e1000', 'e1000e', 'rtl8139'] }, `NIC model. ${AT_START}`),
          queues: says(int(1, 256), `virtio-net queue pairs (multi-queue; match the guest's channels with ethtool). ${AT_START}`),
          rx_frames: says(int(0, 65535), `rx interrupt coalescing, frames. ${AT_START}`),
        },
        { required: ['match'], minProperties: 2 },
      ),
    }, 'network interfaces of the domain'),
    disks: says({
      type: 'array',
      minItems: 1,
      items: obj(
        {
          target: says({ type: 'string', pattern: DISK_PATTERN }, 'guest disk target, e.g. vda'),
          cache: says({ enum: ['none', 'writeback', 'writethrough', 'directsync', 'unsafe'] }, `host page cache mode. ${AT_START}`),
          io: says({ enum: ['native', 'threads', 'io_uring'] }, `I/O mode; native needs cache none or directsync. ${AT_START}`),
          iotune: says(obj(Object.fromEntries(IOTUNE_KEYS.map((key) => [key, says(int(0, 2 ** 52), `${key.replace(/_/g, ' ').replace('sec', 'per second')}; 0 unlimited`)])), { minProperties: 1 }), `I/O throttling. ${LIVE} (virsh blkdeviotune) when the disk is attached to the running domain`),
        },
        { required: ['target'], minProperties: 2 },
      ),
    }, 'disks of the domain'),
    scsi_queues: says(int(1, 256), `queues of every virtio-scsi controller. ${AT_START}`),
    blkiotune: says(obj(
      {
        weight: says(int(100, 1000), `block I/O weight of the domain. ${LIVE} (virsh blkiotune)`),
        devices: says({ type: 'array', minItems: 1, items: obj({ path: says({ type: 'string', pattern: DEVICE_PATH_PATTERN, not: { pattern: '\\.\\.' } }, 'host block device'), weight: says(int(100, 1000), 'weight on that device') }, { required: ['path', 'weight'] }) }, `per host device weights. ${LIVE}`),
      },
      { minProperties: 1 },
    ), 'block I/O weights (<blkiotune>)'),
    restart: says({ type: 'boolean' }, 'true: a running guest whose settings wait for a start is shut down gracefully and started again (default false: reported pending)'),
    restart_timeout: says(int(1, 3600), 'seconds to wait for the graceful shutdown (default 300)'),
    force_restart: says({ type: 'boolean' }, 'true: destroy the guest when it has not shut down within restart_timeout (default false: fail instead)'),
  },
  { oneOf: [{ required: ['name'] }, { required: ['pattern'] }] },
);

type RawParams = Omit<DomainParams, 'memory_backing' | 'memtune' | 'restart' | 'restart_timeout' | 'force_restart' | 'uri'> & {
  uri?: string;
  memory_backing?: { hugepages?: false | { size_kib?: number; size?: string; nodeset?: string }; locked?: boolean; nosharepages?: boolean };
  memtune?: Record<string, number>;
  restart?: boolean;
  restart_timeout?: number;
  force_restart?: boolean;
};

/** Canonical params: defaults filled, hugepage size in KiB, memtune keys without their unit suffix, cpusets in libvirt's form. */
export function normalizeDomainParams(raw: unknown, formatCpus: (list: string) => string): DomainParams {
  const input = raw as RawParams;
  const params: DomainParams = { ...input, uri: input.uri ?? 'qemu:///system', restart: input.restart ?? false, restart_timeout: input.restart_timeout ?? 300, force_restart: input.force_restart ?? false } as DomainParams;
  if (input.memory_backing) {
    const { hugepages, ...rest } = input.memory_backing;
    params.memory_backing = { ...rest };
    if (hugepages === false) params.memory_backing.hugepages = false;
    else if (hugepages) {
      const sizeKiB = hugepages.size_kib ?? (hugepages.size ? HUGEPAGE_SIZES[hugepages.size] : undefined);
      params.memory_backing.hugepages = { ...(sizeKiB ? { sizeKiB } : {}), ...(hugepages.nodeset ? { nodeset: formatCpus(hugepages.nodeset) } : {}) };
    }
  }
  if (input.memtune) params.memtune = Object.fromEntries(Object.entries(input.memtune).map(([key, value]) => [key.replace(/_kib$/, ''), value]));
  if (params.vcpu?.cpuset) params.vcpu = { ...params.vcpu, cpuset: formatCpus(params.vcpu.cpuset) };
  if (params.cputune) {
    const { vcpupin, emulatorpin, cachetune } = params.cputune;
    params.cputune = {
      ...params.cputune,
      ...(vcpupin ? { vcpupin: Object.fromEntries(Object.entries(vcpupin).map(([v, c]) => [String(Number(v)), formatCpus(c)])) } : {}),
      ...(emulatorpin ? { emulatorpin: formatCpus(emulatorpin) } : {}),
      ...(cachetune ? { cachetune: cachetune.map((tune) => ({ ...tune, vcpus: formatCpus(tune.vcpus) })) } : {}),
    };
  }
  if (params.numatune?.nodeset) params.numatune = { ...params.numatune, nodeset: formatCpus(params.numatune.nodeset) };
  if (params.cpu?.numa) params.cpu = { ...params.cpu, numa: [...params.cpu.numa].sort((a, b) => a.id - b.id).map((c) => ({ ...c, cpus: formatCpus(c.cpus) })) };
  return params;
}
