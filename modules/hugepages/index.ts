/**
 * hugepages: static hugepage pools (global and per NUMA node, any size the kernel
 * offers), the default hugepage size, and hugetlbfs mount points.
 *
 * Live: /sys/kernel/mm/hugepages/hugepages-SIZEkB and
 * /sys/devices/system/node/nodeN/hugepages/hugepages-SIZEkB. Every pool write is read
 * back: a kernel that grants fewer pages than asked (fragmentation; 1G pages at run
 * time often give 0) fails the step with both numbers.
 *
 * Persisted, per pool: `cmdline` (hugepagesz=/hugepages= tokens merged by the engine
 * into the play's kernel_cmdline edit; the reliable way for 1G pages), `sysctl`
 * (vm.nr_hugepages in an owned sysctl.d file; the default-size pool only) or
 * `tmpfiles` (an owned tmpfiles.d file written at boot; per-node pools). Mounts persist
 * as /etc/fstab lines, identified by mount point, every other line kept byte for byte.
 */
import {
  awkReader, readWith, defineModule, fileDiff, quote, READ_FN, catFileProbe, parseFileBlock, removeFileCommand, writeFileCommand, sh, shellCode, inline, type Change, type Diagnostic, type Claim, fileClaims, kernelArgClaims, type KernelArgs, type HostFacts, type Command, type HugepagePoolSummary,
} from '../../src/kit/index.js';
import { parseSysctlProbe, renderSysctlFile, settingsSummary, sysctlProbe, overrideWarnings, writeSysctlFileCommand, type SysctlState } from '../lib/sysctl-conf.js';
import { parseTmpfiles, renderTmpfiles, tmpfilesPath, tmpfilesProbe, type SysfsWrite } from '../lib/tmpfiles.js';
import { tmpfilesChange } from '../lib/tmpfiles-values.js';
import { editFstab, type WantedMount } from './fstab.js';

export const HUGEPAGES_SYSCTL_FILE = '/etc/sysctl.d/90-kvmconf-hugepages.conf';
export const HUGEPAGES_TMPFILES = tmpfilesPath('hugepages');
export const FSTAB = '/etc/fstab';
const SYSCTL_KEY = 'vm.nr_hugepages';
const GLOBAL_DIR = '/sys/kernel/mm/hugepages';
const NODE_DIR = '/sys/devices/system/node';
const GiB = 1048576;

/** `2M`, `1G`, `2048kB`, `1048576kB`, `64K`; /proc/mounts also prints `1024M`. */
/** The default size and HugePages_ counters of /proc/meminfo, and the mounts: hugetlbfs ones and those at `want` (` PATH ... `). */
const MEMINFO_MOUNTS_READER = awkReader({
  name: 'hugepages',
  line: [
    'if (kc_file == "/proc/meminfo") { if ($1 == "Hugepagesize:") print "default", $2; else if ($1 ~ /^HugePages_/) { sub(/:$/, "", $1); print "meminfo", $1, $2 }; return }',
    'if ($3 == "hugetlbfs" || index(kc_arg["want"], " " $2 " ")) print "mount", $2, $3, $4',
  ].join('\n'),
});

const SIZE_PATTERN = '^[1-9][0-9]{0,8}(kB|K|M|G)$';
const MOUNT_PATH_PATTERN = '^(/[A-Za-z0-9_.-]+)+$';

export type PoolPersist = 'cmdline' | 'sysctl' | 'tmpfiles' | 'none';

export interface Pool {
  /** Page size in KiB; null = the default size, which only the host knows (nr_hugepages without default_size). */
  sizeKiB: number | null;
  /** NUMA node, or null for the global pool of that size. */
  node: number | null;
  count: number;
  persist: PoolPersist;
  /** false: never written at run time; a difference is reported as pending a reboot. */
  runtime: boolean;
  /** Where the pool came from, for messages. */
  from: 'nr_hugepages' | 'pools';
}

export interface HugepageMount {
  path: string;
  sizeKiB: number;
  persist: boolean;
}

export interface HugepagesParams {
  pools: Pool[];
  /** default_size in KiB, null when not managed. */
  defaultSizeKiB: number | null;
  mounts: HugepageMount[];
}

export interface PoolState {
  nr: number;
  free: number;
  surplus: number;
  /** Reserved pages (global pools only; the kernel has no per-node count). */
  resv: number | null;
}

export interface LiveMount {
  path: string;
  vfstype: string;
  options: string;
}

export interface HugepagesState {
  /** Hugepagesize from /proc/meminfo: the running default size; null without hugetlb. */
  defaultSizeKiB: number | null;
  /** HugePages_Total, _Free, _Rsvd, _Surp of the default size. */
  meminfo: Record<string, number>;
  /** Global pools by size in KiB. */
  global: Record<number, PoolState>;
  /** Per-node pools: node -> size in KiB -> state. */
  nodes: Record<number, Record<number, PoolState>>;
  /** hugetlbfs mounts, and whatever is mounted on a wanted mount point. */
  mounts: LiveMount[];
  sysctl: SysctlState;
  tmpfiles: string | null;
  fstab: string | null;
}

// ---------------------------------------------------------------- sizes

/** Page size text in KiB; NaN when it is not a size. */
export function parseSize(text: string): number {
  const match = /^(\d+)(kB|KB|K|k|M|G)?$/.exec(text.trim());
  if (!match) return NaN;
  const unit = match[2] ?? 'K';
  return Number(match[1]) * (unit === 'M' ? 1024 : unit === 'G' ? GiB : 1);
}

/** KiB as the kernel command line and users write it: 1G, 2M, 64K. */
export function formatSize(kib: number): string {
  if (kib % GiB === 0) return `${kib / GiB}G`;
  if (kib % 1024 === 0) return `${kib / 1024}M`;
  return `${kib}K`;
}

// ---------------------------------------------------------------- pools

interface ResolvedPool extends Pool {
  sizeKiB: number;
}

export function poolDir(pool: { sizeKiB: number; node: number | null }, root = ''): string {
  return pool.node === null ? `${root}${GLOBAL_DIR}/hugepages-${pool.sizeKiB}kB` : `${root}${NODE_DIR}/node${pool.node}/hugepages/hugepages-${pool.sizeKiB}kB`;
}

function poolLabel(pool: Pool): string {
  const size = pool.sizeKiB === null ? 'default-size' : formatSize(pool.sizeKiB);
  return `${size} pool${pool.node === null ? '' : ` on node${pool.node}`}${pool.from === 'nr_hugepages' ? ' (nr_hugepages)' : ''}`;
}

function resolvePools(params: HugepagesParams, defaultKiB: number | null): ResolvedPool[] {
  return params.pools.map((pool) => {
    const sizeKiB = pool.sizeKiB ?? defaultKiB;
    if (sizeKiB === null) throw new Error('nr_hugepages: this kernel has no hugetlb support (no Hugepagesize in /proc/meminfo)');
    return { ...pool, sizeKiB };
  });
}

/**
 * Pools that contradict each other or cannot work. `defaultKiB` is the default size at
 * the next boot when known; pools whose size is unknown are checked only by what is known.
 */
function poolProblems(pools: Pool[], defaultKiB: number | null): string[] {
  const problems: string[] = [];
  const size = (pool: Pool) => pool.sizeKiB ?? defaultKiB;
  const seen = new Map<string, Pool>();
  for (const pool of pools) {
    if (!pool.runtime && pool.persist === 'none') problems.push(`${poolLabel(pool)}: runtime: false with persist: none would never set it`);
    const known = size(pool);
    if (known === null) continue;
    const key = `${known}/${pool.node}`;
    const other = seen.get(key);
    if (other) problems.push(`${poolLabel(pool)} is given twice (also as ${poolLabel(other)})`);
    seen.set(key, pool);
  }
  for (const pool of pools.filter((p) => p.node !== null)) {
    const global = pools.find((p) => p.node === null && size(p) !== null && size(p) === size(pool));
    if (global) problems.push(`${poolLabel(global)} and ${poolLabel(pool)}: a global count spreads pages over every node and undoes per-node counts; give either one global count or per-node counts for ${formatSize(size(pool)!)}`);
  }
  const bySysctl = pools.filter((pool) => pool.persist === 'sysctl');
  if (bySysctl.length > 1) problems.push(`${bySysctl.map(poolLabel).join(' and ')} both persist through vm.nr_hugepages; only one pool is the default-size pool`);
  for (const pool of bySysctl) {
    if (size(pool) !== null && defaultKiB !== null && size(pool) !== defaultKiB) {
      problems.push(`${poolLabel(pool)}: persist: sysctl sets vm.nr_hugepages, which is the ${formatSize(defaultKiB)} (default-size) pool on this host; use persist: tmpfiles or cmdline for ${formatSize(size(pool)!)} pages`);
    }
  }
  return problems;
}

/**
 * Command writing one pool and reading it back: a kernel that grants fewer pages (or
 * keeps more, for pages in use) fails with both numbers. `root` prefixes the sysfs
 * paths so the logic can run against a fake tree.
 */
export function poolCommands(pool: { sizeKiB: number; node: number | null; count: number }, current: number, root = ''): Command[] {
  const dir = poolDir(pool, root);
  const size = formatSize(pool.sizeKiB);
  const label = `${size} pool${pool.node === null ? '' : ` on node${pool.node}`}`;
  const hint =
    pool.count < current
      ? ' (pages still in use cannot be freed)'
      : pool.sizeKiB >= GiB
        ? ` (free memory is too fragmented for ${size} pages at run time; allocate them at boot: runtime: false with persist: ${pool.node === null ? 'cmdline' : 'tmpfiles'}, then reboot)`
        : ` (not enough free contiguous memory${pool.node === null ? '' : ` on node${pool.node}`}; free some or allocate at boot)`;
  // A pool that could not grow is set back: the pages the kernel did grant would otherwise
  // stay reserved, starving the host of memory that nobody asked for.
  const setBack = inline(pool.count > current ? sh`kc_write_value ${`${dir}/nr_hugepages`} ${current}; ` : shellCode``);
  const note = pool.count > current ? `${hint}; the pool was set back to ${current}` : hint;
  return [
    sh`kc_write_value ${`${dir}/nr_hugepages`} ${pool.count}`,
    sh`kc_got=$(( $(cat ${`${dir}/nr_hugepages`}) - $(cat ${`${dir}/surplus_hugepages`}) ))`,
    sh`[ "$kc_got" -eq ${pool.count} ] || { ${setBack}kc_fail ${`${label}: asked ${pool.count}, granted`} "$kc_got"${note}; }`,
  ];
}

// ---------------------------------------------------------------- mounts

export function mountCommands(mount: HugepageMount): Command[] {
  const path = mount.path;
  return [
    sh`mkdir -p ${path}`,
    sh`mount -t hugetlbfs -o ${`pagesize=${formatSize(mount.sizeKiB)}`} none ${path}`,
    sh`awk -v p=${path} '$2 == p && $3 == "hugetlbfs" {found = 1} END {exit !found}' /proc/mounts || kc_fail ${`${mount.path}: no hugetlbfs mount there after mounting`}`,
  ];
}

function pagesizeOf(options: string, defaultKiB: number | null): number | null {
  const option = options.split(',').find((o) => o.startsWith('pagesize='));
  return option ? parseSize(option.slice('pagesize='.length)) : defaultKiB;
}

const samePagesize = (key: string, have: string, want: string) => (key === 'pagesize' ? parseSize(have) === parseSize(want) : have === want);

function wantedFstab(params: HugepagesParams): WantedMount[] {
  return params.mounts.filter((m) => m.persist).map((m) => ({ spec: 'none', file: m.path, vfstype: 'hugetlbfs', options: { pagesize: formatSize(m.sizeKiB) } }));
}

/**
 * The /etc/fstab edit (atomic, backed up, guarded by the content it was planned from),
 * then a systemd daemon-reload so the mount units follow. `path` is overridable for tests;
 * `content` is the edited file when the planner has already made it.
 */
export function fstabCommands(params: HugepagesParams, current: string | null, path = FSTAB, content = editFstab(current, wantedFstab(params), samePagesize).content): Command[] {
  return [writeFileCommand(path, content, current), shellCode`if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi`];
}

// ---------------------------------------------------------------- persistence

function desiredSysctl(pools: Pool[]): string | null {
  const pool = pools.find((p) => p.persist === 'sysctl');
  return pool ? renderSysctlFile({ [SYSCTL_KEY]: String(pool.count) }, 'hugepages') : null;
}

function desiredTmpfiles(pools: ResolvedPool[]): string | null {
  const writes: SysfsWrite[] = pools.filter((p) => p.persist === 'tmpfiles').map((p) => ({ path: `${poolDir(p)}/nr_hugepages`, value: String(p.count) }));
  return writes.length ? renderTmpfiles(writes, 'hugepages') : null;
}

/** `node1/1G` or `1G` for a tmpfiles path. */
function tmpfilesLabel(path: string): string {
  const match = /(?:node(\d+)\/hugepages\/)?hugepages-(\d+)kB\/nr_hugepages$/.exec(path);
  return match ? `${match[1] === undefined ? '' : `node${match[1]}/`}${formatSize(Number(match[2]))}` : path;
}

function persistedBy(pool: Pool): string {
  if (pool.persist === 'cmdline') return 'the kernel command line';
  return pool.persist === 'sysctl' ? HUGEPAGES_SYSCTL_FILE : HUGEPAGES_TMPFILES;
}

// ---------------------------------------------------------------- facts checks

const isX86 = (facts: HostFacts) => facts.arch === '' || /^(x86_64|i[3-6]86)$/.test(facts.arch);

function factProblems(params: HugepagesParams, facts: HostFacts): string[] {
  const problems: string[] = [];
  const offered = facts.hugepageSizesKiB;
  if (!offered.length) return ['this kernel has no hugetlb support (no /sys/kernel/mm/hugepages)'];
  const sizes = new Map<number, string>();
  params.pools.forEach((pool) => pool.sizeKiB !== null && sizes.set(pool.sizeKiB, poolLabel(pool)));
  params.mounts.forEach((mount) => sizes.set(mount.sizeKiB, `mount ${mount.path}`));
  if (params.defaultSizeKiB !== null) sizes.set(params.defaultSizeKiB, 'default_size');
  for (const [size, where] of sizes) {
    if (size === GiB && isX86(facts) && !facts.cpuFlags.includes('pdpe1gb')) {
      problems.push(`${where}: 1G pages need the pdpe1gb CPU flag, which this CPU does not have`);
    } else if (!offered.includes(size)) {
      problems.push(`${where}: ${formatSize(size)} pages are not offered by this kernel (sizes: ${offered.map(formatSize).join(', ')})`);
    }
  }
  const nodes = facts.numaNodes.map((node) => node.id);
  const perNode = new Map<number, number>();
  let global = 0;
  for (const pool of params.pools) {
    const kib = pool.count * (pool.sizeKiB ?? params.defaultSizeKiB ?? 0);
    if (pool.node === null) global += kib;
    else if (!nodes.includes(pool.node)) problems.push(`${poolLabel(pool)}: NUMA node ${pool.node} does not exist on this host (nodes: ${nodes.join(', ') || 'none'})`);
    else perNode.set(pool.node, (perNode.get(pool.node) ?? 0) + kib);
  }
  const gib = (kib: number) => `${(kib / GiB).toFixed(1)} GiB`;
  for (const [node, kib] of perNode) {
    const total = facts.numaNodes.find((n) => n.id === node)!.memTotalKiB;
    if (total && kib > total) problems.push(`node${node}: its pools ask ${gib(kib)} of hugepages but the node has ${gib(total)} of memory`);
  }
  const all = global + [...perNode.values()].reduce((a, b) => a + b, 0);
  if (facts.memTotalKiB && all > facts.memTotalKiB) problems.push(`the pools ask ${gib(all)} of hugepages but the host has ${gib(facts.memTotalKiB)} of memory`);
  return problems;
}

/**
 * What a saved plan depends on: pool sizes, mounts and files. Free, reserved and surplus
 * counts move as guests start and stop, and apply's own read-back guards the sizes it sets.
 */
function stableState(actual: HugepagesState): unknown {
  const sizes = (pools: Record<number, PoolState>) => Object.fromEntries(Object.entries(pools).map(([size, pool]) => [size, pool.nr]));
  const { meminfo: _counters, global, nodes, ...rest } = actual;
  return { ...rest, global: sizes(global), nodes: Object.fromEntries(Object.entries(nodes).map(([node, pools]) => [node, sizes(pools)])) };
}

/**
 * Every pool the task manages, requested against what the kernel has: the persistent
 * count (surplus pages come and go with overcommit), as the planner compares it.
 */
export function poolSummary(params: HugepagesParams, actual: HugepagesState): HugepagePoolSummary[] {
  const defaultKiB = params.defaultSizeKiB ?? actual.defaultSizeKiB;
  return params.pools.flatMap((pool) => {
    const sizeKiB = pool.sizeKiB ?? defaultKiB;
    if (sizeKiB === null) return [];
    const live = pool.node === null ? actual.global[sizeKiB] : actual.nodes[pool.node]?.[sizeKiB];
    return [{ node: pool.node, sizeKiB, requested: pool.count, granted: live ? live.nr - live.surplus : 0, ...(live ? { free: live.free } : {}) }];
  });
}

// ---------------------------------------------------------------- probe

function probeScript(params: HugepagesParams): string {
  const wanted = ` ${params.mounts.map((m) => m.path).join(' ')} `;
  return [
    READ_FN,
    // Pool counts are plain sysfs attributes: read with the shell's read builtin.
    `for kc_d in ${GLOBAL_DIR}/hugepages-*kB; do`,
    `  [ -d "$kc_d" ] || continue; kc_s=\${kc_d##*hugepages-}; kc_p="global \${kc_s%kB}"`,
    `  for kc_f in nr free surplus resv; do kc_read "$kc_d/\${kc_f}_hugepages"; kc_p="$kc_p $kc_v"; done; echo "$kc_p"`,
    `done`,
    `for kc_d in ${NODE_DIR}/node[0-9]*/hugepages/hugepages-*kB; do`,
    `  [ -d "$kc_d" ] || continue; kc_n=\${kc_d#${NODE_DIR}/node}; kc_s=\${kc_d##*hugepages-}; kc_p="node \${kc_n%%/*} \${kc_s%kB}"`,
    `  for kc_f in nr free surplus; do kc_read "$kc_d/\${kc_f}_hugepages"; kc_p="$kc_p $kc_v"; done; echo "$kc_p"`,
    `done`,
    // One awk for the default size, the meminfo counters and the mounts.
    readWith(MEMINFO_MOUNTS_READER, `want=${quote(wanted)} /proc/meminfo /proc/mounts`),
    `echo '@@sysctl'`,
    sysctlProbe([SYSCTL_KEY], HUGEPAGES_SYSCTL_FILE),
    `echo '@@tmpfiles'`,
    tmpfilesProbe(HUGEPAGES_TMPFILES),
    `echo '@@fstab'`,
    catFileProbe(FSTAB),
  ].join('\n');
}

function parseProbe(output: string): HugepagesState {
  const markers = ['@@sysctl\n', '@@tmpfiles\n', '@@fstab\n'];
  const at: number[] = [];
  for (const marker of markers) {
    const index = output.indexOf(marker, at.length ? at[at.length - 1] : 0);
    if (index < 0 || (index > 0 && output[index - 1] !== '\n')) throw new Error('hugepages probe output is truncated');
    at.push(index);
  }
  const section = (i: number) => output.slice(at[i]! + markers[i]!.length, at[i + 1] ?? output.length);
  const state: HugepagesState = {
    defaultSizeKiB: null, meminfo: {}, global: {}, nodes: {}, mounts: [],
    sysctl: parseSysctlProbe(section(0), [SYSCTL_KEY]),
    tmpfiles: parseTmpfiles(section(1)),
    fstab: parseFileBlock(section(2)),
  };
  const numbers = (words: string[]) => words.map((w) => (/^\d+$/.test(w) ? Number(w) : NaN));
  for (const line of output.slice(0, at[0]).split('\n')) {
    const words = line.trim().split(/\s+/);
    if (words[0] === 'default') state.defaultSizeKiB = Number(words[1]);
    else if (words[0] === 'meminfo' && words.length === 3) state.meminfo[words[1]!] = Number(words[2]);
    else if (words[0] === 'global' && words.length === 6) {
      const [size, nr, free, surplus, resv] = numbers(words.slice(1)) as [number, number, number, number, number];
      state.global[size] = { nr, free, surplus, resv };
    } else if (words[0] === 'node' && words.length === 6) {
      const [node, size, nr, free, surplus] = numbers(words.slice(1)) as [number, number, number, number, number];
      (state.nodes[node] ??= {})[size] = { nr, free, surplus, resv: null };
    } else if (words[0] === 'mount' && words.length === 4) {
      state.mounts.push({ path: words[1]!, vfstype: words[2]!, options: words[3]! });
    }
  }
  return state;
}

// ---------------------------------------------------------------- module

interface RawPool {
  size: string;
  count: number;
  node?: number;
  persist?: PoolPersist;
  runtime?: boolean;
}

interface RawParams {
  nr_hugepages?: number;
  pools?: RawPool[];
  default_size?: string;
  mounts?: Array<{ path: string; size: string; persist?: boolean }>;
  persist?: boolean | 'sysctl' | 'cmdline';
}

const SIZE = { type: 'string', pattern: SIZE_PATTERN };

/** The kernel command line tokens of the pools persisted there (with default_hugepagesz when asked). */
export function cmdlineArgs(params: HugepagesParams): KernelArgs {
  const tokens = params.defaultSizeKiB === null ? [] : [`default_hugepagesz=${formatSize(params.defaultSizeKiB)}`];
  const byCmdline = params.pools.filter((pool) => pool.persist === 'cmdline' && pool.node === null);
  // hugepages= before any hugepagesz= counts pages of the default size.
  for (const pool of byCmdline.filter((p) => p.sizeKiB === null)) tokens.push(`hugepages=${pool.count}`);
  for (const pool of byCmdline.filter((p) => p.sizeKiB !== null)) tokens.push(`hugepagesz=${formatSize(pool.sizeKiB!)}`, `hugepages=${pool.count}`);
  return { tokens };
}

export const hugepages = defineModule<HugepagesParams, HugepagesState>({
  name: 'hugepages',
  summary: 'static hugepage pools (global and per NUMA node), the default hugepage size and hugetlbfs mounts',
  schema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      nr_hugepages: {
        type: 'integer', minimum: 0, maximum: 1000000000,
        description: 'pages in the default-size pool (vm.nr_hugepages; of default_size when given). Persisted as `persist` says',
      },
      pools: {
        type: 'array',
        items: {
          type: 'object',
          additionalProperties: false,
          required: ['size', 'count'],
          properties: {
            size: { ...SIZE, description: 'page size: 2M, 1G (2048kB and 1048576kB are read the same)' },
            count: { type: 'integer', minimum: 0, maximum: 1000000000 },
            node: { type: 'integer', minimum: 0, maximum: 1023, description: 'NUMA node; without it, the global pool of that size' },
            persist: {
              enum: ['cmdline', 'sysctl', 'tmpfiles', 'none'],
              description:
                `how the pool survives a reboot. Defaults: per-node pools -> tmpfiles (${HUGEPAGES_TMPFILES}; the only way for them); global pools of 1G and more -> cmdline (hugepagesz=1G hugepages=N, allocated before memory fragments: the reliable way); ` +
                `other global pools -> sysctl (vm.nr_hugepages in ${HUGEPAGES_SYSCTL_FILE}) when they are the default size, tmpfiles otherwise. sysctl only holds the default-size pool; none: runtime only`,
            },
            runtime: {
              type: 'boolean',
              description: 'true (default): also set the pool now, failing when the kernel grants fewer pages; false: leave the running pool alone and report a pending reboot (for 1G pools on fragmented hosts)',
            },
          },
          if: { required: ['node'] },
          then: { properties: { persist: { enum: ['tmpfiles', 'none'] } } },
        },
      },
      default_size: {
        ...SIZE,
        description: 'the default hugepage size (default_hugepagesz= on the kernel command line); it changes only at boot, so a difference is reported as pending a reboot',
      },
      mounts: {
        type: 'array',
        items: {
          type: 'object',
          additionalProperties: false,
          required: ['path', 'size'],
          properties: {
            path: { type: 'string', pattern: MOUNT_PATH_PATTERN, maxLength: 255, not: { pattern: '(^|/)\\.\\.?(/|$)' }, description: 'mount point, e.g. /dev/hugepages1G' },
            size: { ...SIZE, description: 'page size of the hugetlbfs mount (pagesize=)' },
            persist: { type: 'boolean', description: `true (default): an ${FSTAB} line for the mount point (other lines are kept byte for byte)` },
          },
        },
      },
      persist: {
        enum: [true, false, 'sysctl', 'cmdline'],
        description: 'how nr_hugepages survives a reboot: sysctl (default, also `true`) or cmdline (hugepages=N); false: nothing of this task is persisted unless a pool or mount says so itself. default_size always goes on the kernel command line',
      },
    },
    anyOf: [{ required: ['nr_hugepages'] }, { required: ['pools'] }, { required: ['default_size'] }, { required: ['mounts'] }],
  },
  factsParams: { pools: [], defaultSizeKiB: null, mounts: [] },

  normalize(raw) {
    const input = raw as RawParams;
    const persistAll = input.persist !== false;
    const defaultSizeKiB = input.default_size === undefined ? null : parseSize(input.default_size);
    const pools: Pool[] = [];
    if (input.nr_hugepages !== undefined) {
      const persist = input.persist === false ? 'none' : input.persist === 'cmdline' ? 'cmdline' : 'sysctl';
      pools.push({ sizeKiB: defaultSizeKiB, node: null, count: input.nr_hugepages, persist, runtime: true, from: 'nr_hugepages' });
    }
    for (const pool of input.pools ?? []) {
      const sizeKiB = parseSize(pool.size);
      const node = pool.node ?? null;
      const fallback: PoolPersist = !persistAll ? 'none'
        : node !== null ? 'tmpfiles'
          : sizeKiB >= GiB ? 'cmdline'
            : defaultSizeKiB === null || defaultSizeKiB === sizeKiB ? 'sysctl' : 'tmpfiles';
      pools.push({ sizeKiB, node, count: pool.count, persist: pool.persist ?? fallback, runtime: pool.runtime ?? true, from: 'pools' });
    }
    const mounts = (input.mounts ?? []).map((m) => ({ path: m.path, sizeKiB: parseSize(m.size), persist: m.persist ?? persistAll }));
    return { pools, defaultSizeKiB, mounts };
  },

  claims: (params) => [
    ...params.pools.map(({ sizeKiB, node, count }): Claim => ({ kind: 'hugepage-pool', sizeKiB, node, count })),
    ...kernelArgClaims(cmdlineArgs(params)),
    ...fileClaims(params.pools.length ? [HUGEPAGES_SYSCTL_FILE, HUGEPAGES_TMPFILES] : []),
  ],

  rules(params, facts) {
    const problems = [...poolProblems(params.pools, params.defaultSizeKiB), ...factProblems(params, facts)];
    const paths = params.mounts.map((m) => m.path);
    paths.filter((path, i) => paths.indexOf(path) !== i).forEach((path) => problems.push(`mount ${path} is given twice`));
    return problems.map((message): Diagnostic => ({ severity: 'error', message }));
  },

  probe: probeScript,

  parse: (output) => parseProbe(output),
  planState: stableState,
  reportSummary: (params, actual) => ({ hugepages: poolSummary(params, actual) }),

  diff(params, actual, context) {
    const changes: Change[] = [];
    const running = actual.defaultSizeKiB;
    if (params.defaultSizeKiB !== null && params.defaultSizeKiB !== running) {
      changes.push({
        module: 'hugepages', target: 'default_hugepagesz', scope: 'pending', pendingOn: 'reboot',
        before: running === null ? null : formatSize(running), after: formatSize(params.defaultSizeKiB),
        reason: `the default hugepage size is chosen at boot: default_hugepagesz=${formatSize(params.defaultSizeKiB)} goes on the kernel command line`,
      });
    }
    const nextDefault = params.defaultSizeKiB ?? running;
    const problems = poolProblems(params.pools, nextDefault);
    if (problems.length) throw new Error(problems.join('; '));
    const pools = resolvePools(params, nextDefault);

    const runtime: Change[] = [];
    for (const pool of pools) {
      const live = pool.node === null ? actual.global[pool.sizeKiB] : actual.nodes[pool.node]?.[pool.sizeKiB];
      if (!live) throw new Error(`${poolLabel(pool)}: ${poolDir(pool)} does not exist on this host`);
      const persistent = live.nr - live.surplus;
      if (persistent === pool.count) continue;
      const target = `${poolDir(pool)}/nr_hugepages`;
      if (!pool.runtime) {
        changes.push({ module: 'hugepages', target, scope: 'pending', pendingOn: 'reboot', before: String(persistent), after: String(pool.count), reason: `runtime: false; allocated at the next boot by ${persistedBy(pool)}` });
        continue;
      }
      const inUse = live.nr - live.free + (live.resv ?? 0);
      if (pool.count < persistent && inUse > pool.count) {
        throw new Error(`${poolLabel(pool)}: cannot shrink to ${pool.count}: ${inUse} of its ${live.nr} pages are in use (${live.free} free${live.resv ? `, ${live.resv} of them reserved` : ''}); stop the guests using them first`);
      }
      const reason = pool.count > persistent && pool.sizeKiB >= GiB ? `${formatSize(pool.sizeKiB)} pages need that much contiguous free memory each; when memory is fragmented the kernel grants fewer and this step fails` : undefined;
      runtime.push({ module: 'hugepages', target, scope: 'runtime', before: String(persistent), after: String(pool.count), ...(reason ? { reason } : {}), commands: poolCommands(pool, persistent) });
    }
    // Shrink before growing, so freed memory can serve the larger pools.
    runtime.sort((a, b) => Number(Number(a.after) > Number(a.before)) - Number(Number(b.after) > Number(b.before)));
    changes.push(...runtime);

    for (const mount of params.mounts) {
      const here = actual.mounts.filter((m) => m.path === mount.path);
      const top = here[here.length - 1];
      if (!top) {
        changes.push({
          module: 'hugepages', target: mount.path, scope: 'runtime', before: null, after: `hugetlbfs pagesize=${formatSize(mount.sizeKiB)}`,
          reason: 'libvirtd sees hugepage mounts only when it starts: restart it (systemctl restart libvirtd) before guests use this one',
          commands: mountCommands(mount),
        });
      } else if (top.vfstype !== 'hugetlbfs') {
        throw new Error(`mount ${mount.path}: a ${top.vfstype} file system is mounted there`);
      } else if (pagesizeOf(top.options, running) !== mount.sizeKiB) {
        const size = pagesizeOf(top.options, running);
        throw new Error(`mount ${mount.path}: hugetlbfs is mounted there with pagesize=${size === null ? '?' : formatSize(size)}, not ${formatSize(mount.sizeKiB)}; unmount it first (stop the guests using it)`);
      }
    }

    if (params.pools.length) {
      const sysctl = desiredSysctl(pools);
      if (sysctl !== actual.sysctl.file) {
        changes.push({
          module: 'hugepages', target: HUGEPAGES_SYSCTL_FILE, scope: 'persist', before: settingsSummary(actual.sysctl.file), after: settingsSummary(sysctl),
          diff: fileDiff(HUGEPAGES_SYSCTL_FILE, actual.sysctl.file, sysctl),
          commands: [sysctl === null ? removeFileCommand(HUGEPAGES_SYSCTL_FILE, actual.sysctl.file) : writeSysctlFileCommand(HUGEPAGES_SYSCTL_FILE, sysctl, actual.sysctl.file)],
        });
      }
      const tmpfiles = desiredTmpfiles(pools);
      if (tmpfiles !== actual.tmpfiles) {
        changes.push(tmpfilesChange('hugepages', HUGEPAGES_TMPFILES, actual.tmpfiles, tmpfiles, tmpfilesLabel));
      }
      const defaultPool = pools.find((p) => p.node === null && p.sizeKiB === nextDefault && p.persist !== 'none');
      if (defaultPool?.persist === 'sysctl') {
        overrideWarnings(actual.sysctl, HUGEPAGES_SYSCTL_FILE, { [SYSCTL_KEY]: String(defaultPool.count) }).forEach(context.warn);
      } else if (defaultPool) {
        const last = actual.sysctl.lastSetBy[SYSCTL_KEY];
        if (last && last.value !== String(defaultPool.count)) {
          context.warn(`${SYSCTL_KEY}: ${last.file} sets ${last.value} at boot, after ${persistedBy(defaultPool)} set ${defaultPool.count}; remove it there`);
        }
      }
    }

    const fstab = wantedFstab(params);
    if (fstab.length) {
      const edit = editFstab(actual.fstab, fstab, samePagesize);
      if (edit.content !== actual.fstab) {
        changes.push({
          module: 'hugepages', target: FSTAB, scope: 'persist', before: edit.before.join('; ') || null, after: edit.after.join('; '),
          diff: fileDiff(FSTAB, actual.fstab, edit.content),
          ...(edit.before.length > edit.after.length ? { reason: 'a mount point had several lines: the later ones are removed' } : {}),
          commands: fstabCommands(params, actual.fstab, FSTAB, edit.content),
        });
      }
    }
    return changes;
  },

});
