/**
 * numa_balancing: the kernel's automatic NUMA balancing (kernel.numa_balancing), live
 * in /proc/sys and persisted in an owned sysctl.d file. Newer kernels read 2 or 3 when
 * memory tiering promotion is on (bit 1); `enabled` sets only the normal balancing
 * bit (bit 0), so a tiering setup is kept as it is.
 */
import { defineModule, fileDiff, type Change, fileClaims } from '../../src/kit/index.js';
import {
  overrideWarnings, parseSysctlProbe, renderSysctlFile, setSysctlCommand, settingsSummary, sysctlProbe, writeSysctlFileCommand, type SysctlState,
} from '../lib/sysctl-conf.js';

export const NUMA_BALANCING_FILE = '/etc/sysctl.d/90-kvmconf-numa-balancing.conf';
const KEY = 'kernel.numa_balancing';
/** NUMA_BALANCING_NORMAL; bit 1 (2) is NUMA_BALANCING_MEMORY_TIERING. */
const NORMAL = 1;

export interface NumaBalancingParams {
  enabled?: boolean;
  persist: boolean;
}

/** The live mode as a number; throws on anything the kernel does not print. */
export function balancingMode(value: string): number {
  if (!/^\d+$/.test(value)) throw new Error(`${KEY} reads '${value}', which is not a mode number`);
  return Number(value);
}

/** The value to hold: the live mode with the normal-balancing bit set or cleared. */
export function wantedMode(live: number, enabled: boolean): number {
  return enabled ? live | NORMAL : live & ~NORMAL;
}

function desiredFile(value: string): string {
  return renderSysctlFile({ [KEY]: value }, 'numa_balancing');
}

export const numaBalancing = defineModule<NumaBalancingParams, SysctlState>({
  name: 'numa_balancing',
  summary: 'automatic NUMA balancing (kernel.numa_balancing), live and persisted in /etc/sysctl.d',
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['enabled'],
    properties: {
      enabled: {
        type: 'boolean',
        description: 'automatic NUMA balancing on or off (bit 0 of kernel.numa_balancing; the memory tiering bit of newer kernels is kept). Turn it off when guests are pinned by hand; it has no effect on a host with one NUMA node',
      },
      persist: { type: 'boolean', description: `true (default): also written to ${NUMA_BALANCING_FILE}, which this task owns` },
    },
  },
  factsParams: { persist: false },

  normalize: (raw) => ({ persist: true, ...(raw as Partial<NumaBalancingParams>) }),

  claims: (params) => fileClaims(params.persist ? [NUMA_BALANCING_FILE] : []),

  probe: () => sysctlProbe([KEY], NUMA_BALANCING_FILE),

  parse: (output) => parseSysctlProbe(output, [KEY]),

  diff(params, actual, context) {
    if (params.enabled === undefined) return [];
    const live = actual.runtime[KEY];
    if (live === null || live === undefined) {
      throw new Error(`${KEY} is missing (/proc/sys/kernel/numa_balancing): this kernel is built without automatic NUMA balancing (CONFIG_NUMA_BALANCING)`);
    }
    if (context.facts.numaNodes.length <= 1) {
      context.warn(`${KEY}: this host has ${context.facts.numaNodes.length || 'no'} NUMA node${context.facts.numaNodes.length === 1 ? '' : 's'}, so automatic NUMA balancing has no effect here`);
    }
    const mode = balancingMode(live);
    const wanted = String(wantedMode(mode, params.enabled));
    const tiering = mode & 2 ? 'the memory tiering mode (value 2) is on and is kept' : undefined;
    const changes: Change[] = [];
    if (wanted !== live) {
      changes.push({ module: 'numa_balancing', target: KEY, scope: 'runtime', before: live, after: wanted, ...(tiering ? { reason: tiering } : {}), commands: [setSysctlCommand(KEY, wanted)] });
    }
    if (params.persist) {
      const content = desiredFile(wanted);
      if (actual.file !== content) {
        changes.push({
          module: 'numa_balancing', target: NUMA_BALANCING_FILE, scope: 'persist',
          before: settingsSummary(actual.file), after: settingsSummary(content),
          diff: fileDiff(NUMA_BALANCING_FILE, actual.file, content),
          commands: [writeSysctlFileCommand(NUMA_BALANCING_FILE, content, actual.file)],
        });
      }
      overrideWarnings(actual, NUMA_BALANCING_FILE, { [KEY]: wanted }).forEach(context.warn);
    }
    return changes;
  },
});
