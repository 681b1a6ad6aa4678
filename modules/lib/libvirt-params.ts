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

export const DOMAIN_SCHEMA: Record<string, unknown> = obj(
  {
    name: { type: 'string', pattern: DOMAIN_NAME_PATTERN },
    pattern: { type: 'string', pattern: DOMAIN_GLOB_PATTERN },
    uri: { type: 'string', pattern: URI_PATTERN },
    vcpu: obj({ count: int(1, 4096), current: int(1, 4096), placement: { enum: ['static', 'auto'] }, cpuset }, { minProperties: 1 }),
    cputune: obj(
      {
        vcpupin: { type: 'object', minProperties: 1, propertyNames: { pattern: '^[0-9]{1,4}$' }, additionalProperties: cpuset },
        emulatorpin: cpuset,
        shares: int(2, 262144),
        period: int(1000, 1000000),
        quota: { type: 'integer', minimum: -1, maximum: 17592186044415, not: { enum: [0] } },
        // [] removes every cache allocation; the host needs resctrl (Intel RDT / AMD PQoS)
        cachetune: {
          type: 'array',
          items: obj(
            {
              vcpus: cpuset,
              caches: {
                type: 'array',
                minItems: 1,
                items: obj({ id: int(0, 1023), level: { enum: [2, 3] }, type: { enum: ['both', 'code', 'data'] }, size_kib: int(1, 2 ** 40) }, { required: ['id', 'level', 'type', 'size_kib'] }),
              },
            },
            { required: ['vcpus', 'caches'] },
          ),
        },
      },
      { minProperties: 1 },
    ),
    numatune: obj(
      { mode: { enum: ['strict', 'preferred', 'interleave', 'restrictive'] }, nodeset: cpuset, placement: { enum: ['auto'] } },
      { minProperties: 1, not: { required: ['nodeset', 'placement'] } },
    ),
    cpu: obj(
      {
        mode: { enum: ['host-passthrough', 'host-model'] },
        topology: obj({ sockets: int(1, 256), cores: int(1, 1024), threads: int(1, 16) }, { required: ['sockets', 'cores', 'threads'] }),
        numa: { type: 'array', minItems: 1, items: obj({ id: int(0, 255), cpus: cpuset, memory_kib: int(1024) }, { required: ['id', 'cpus', 'memory_kib'] }) },
      },
      { minProperties: 1 },
    ),
    memory_backing: obj(
      {
        hugepages: {
          anyOf: [
            { const: false },
            obj({ size_kib: { enum: [2048, 1048576] }, size: { enum: Object.keys(HUGEPAGE_SIZES) }, nodeset: cpuset }, { not: { required: ['size', 'size_kib'] }, dependencies: { nodeset: { anyOf: [{ required: ['size'] }, { required: ['size_kib'] }] } } }),
          ],
        },
        locked: { type: 'boolean' },
        nosharepages: { type: 'boolean' },
      },
      { minProperties: 1 },
    ),
    memtune: obj(Object.fromEntries(MEMTUNE_KEYS.map((key) => [`${key}_kib`, int(1024, 2 ** 52)])), { minProperties: 1 }),
    interfaces: {
      type: 'array',
      minItems: 1,
      items: obj(
        {
          match: obj({ mac: { type: 'string', pattern: MAC_PATTERN }, target: { type: 'string', pattern: TARGET_PATTERN }, index: int(0, 255) }, { minProperties: 1, maxProperties: 1 }),
          model: { enum: ['virtio', 'e1000', 'e1000e', 'rtl8139'] },
          queues: int(1, 256),
          rx_frames: int(0, 65535),
        },
        { required: ['match'], minProperties: 2 },
      ),
    },
    disks: {
      type: 'array',
      minItems: 1,
      items: obj(
        {
          target: { type: 'string', pattern: DISK_PATTERN },
          cache: { enum: ['none', 'writeback', 'writethrough', 'directsync', 'unsafe'] },
          io: { enum: ['native', 'threads', 'io_uring'] },
          iotune: obj(Object.fromEntries(IOTUNE_KEYS.map((key) => [key, int(0, 2 ** 52)])), { minProperties: 1 }),
        },
        { required: ['target'], minProperties: 2 },
      ),
    },
    scsi_queues: int(1, 256),
    blkiotune: obj(
      {
        weight: int(100, 1000),
        devices: { type: 'array', minItems: 1, items: obj({ path: { type: 'string', pattern: DEVICE_PATH_PATTERN, not: { pattern: '\\.\\.' } }, weight: int(100, 1000) }, { required: ['path', 'weight'] }) },
      },
      { minProperties: 1 },
    ),
    restart: { type: 'boolean' },
    restart_timeout: int(1, 3600),
    force_restart: { type: 'boolean' },
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
