/**
 * numa_placement parameters: the guests to place (by name or glob) with what each needs,
 * the host CPUs kept for the host, and the restart policy handed to libvirt_domain.
 */
import { formatCpuList, parseCpuList } from '../../src/kit/index.js';
import { CPUSET_PATTERN, DOMAIN_GLOB_PATTERN, DOMAIN_NAME_PATTERN, HUGEPAGE_SIZES } from '../libvirt_domain/params.js';
import type { ThreadPolicy } from './placement.js';

/** A PCI address (0000:81:00.0) or a network interface name. */
const NEAR_PATTERN = '^([0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\\.[0-7]|[A-Za-z0-9_.-]{1,15})$';
const URI_PATTERN = '^(qemu|qemu\\+unix)://[A-Za-z0-9_.-]*/(system|session)$';

export interface PlacementGuestParams {
  name?: string;
  pattern?: string;
  /** vCPU count to give the domain; absent: the count its config has. */
  vcpus?: number;
  hugepages?: false | { sizeKiB: number };
  threads: ThreadPolicy;
  near?: string;
  emulator: 'shared' | 'dedicated';
  numa_nodes?: number;
}

export interface PlacementParams {
  uri: string;
  /** Canonical host CPU list kept for the host; absent: the first core of every node. */
  reserved?: string;
  guests: PlacementGuestParams[];
  restart: boolean;
  restart_timeout: number;
  force_restart: boolean;
}

const says = (schema: Record<string, unknown>, description: string) => ({ ...schema, description });
const obj = (properties: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({ type: 'object', additionalProperties: false, properties, ...extra });

export const PLACEMENT_SCHEMA: Record<string, unknown> = obj(
  {
    uri: says({ type: 'string', pattern: URI_PATTERN }, 'libvirt connection URI (default qemu:///system)'),
    reserved: says({ type: 'string', pattern: `^$|${CPUSET_PATTERN}` }, 'host CPUs no guest is placed on (housekeeping), e.g. "0,8", "" for none; default: the first core (with its thread siblings) of every NUMA node'),
    guests: says({
      type: 'array',
      minItems: 1,
      items: obj(
        {
          name: says({ type: 'string', pattern: DOMAIN_NAME_PATTERN }, 'libvirt domain name; the domain must exist'),
          pattern: says({ type: 'string', pattern: DOMAIN_GLOB_PATTERN }, 'shell glob over domain names; every match is placed with these needs'),
          vcpus: says({ type: 'integer', minimum: 1, maximum: 4096 }, 'vCPUs (sets <vcpu>); default: the count the domain has'),
          hugepages: says({ anyOf: [{ const: false }, { enum: Object.keys(HUGEPAGE_SIZES) }] }, 'back the guest with hugepages of this size (2M or 1G) from its node(s); false: normal pages (default, memory backing left alone)'),
          threads: says({ enum: ['prefer', 'isolate', 'require'] }, 'thread siblings: prefer (together when possible, default), isolate (one vCPU per core, the core\'s other threads left idle), require (vCPUs on sibling threads; the host needs SMT)'),
          near: says({ type: 'string', pattern: NEAR_PATTERN }, 'a PCI device address or network interface: the guest goes to its NUMA node when that node has room'),
          emulator: says({ enum: ['shared', 'dedicated'] }, 'emulator threads: shared (on the guest\'s vCPU CPUs, default) or dedicated (one more host CPU of their own)'),
          numa_nodes: says({ type: 'integer', minimum: 1, maximum: 64 }, 'exactly this many guest NUMA cells on as many host nodes (vCPUs split evenly); default: one node when the guest fits one, else as few as it needs'),
        },
        { oneOf: [{ required: ['name'] }, { required: ['pattern'] }] },
      ),
    }, 'the guests to place and what each needs'),
    restart: says({ type: 'boolean' }, 'true: a running guest whose new placement waits for a start is restarted (as libvirt_domain restart)'),
    restart_timeout: says({ type: 'integer', minimum: 1, maximum: 3600 }, 'seconds for the graceful shutdown (default 300)'),
    force_restart: says({ type: 'boolean' }, 'destroy a guest not shut down within restart_timeout (default false)'),
  },
  { required: ['guests'] },
);

type RawGuest = Omit<PlacementGuestParams, 'hugepages' | 'threads' | 'emulator'> & { hugepages?: false | string; threads?: ThreadPolicy; emulator?: 'shared' | 'dedicated' };
interface RawParams { uri?: string; reserved?: string; guests: RawGuest[]; restart?: boolean; restart_timeout?: number; force_restart?: boolean }

export function normalizePlacementParams(raw: unknown): PlacementParams {
  const input = raw as RawParams;
  return {
    uri: input.uri ?? 'qemu:///system',
    ...(input.reserved !== undefined ? { reserved: formatCpuList(parseCpuList(input.reserved)) } : {}),
    guests: input.guests.map(({ hugepages, threads, emulator, ...rest }) => ({
      ...rest,
      ...(hugepages ? { hugepages: { sizeKiB: HUGEPAGE_SIZES[hugepages]! } } : hugepages === false ? { hugepages: false as const } : {}),
      threads: threads ?? 'prefer',
      emulator: emulator ?? 'shared',
    })),
    restart: input.restart ?? false,
    restart_timeout: input.restart_timeout ?? 300,
    force_restart: input.force_restart ?? false,
  };
}
