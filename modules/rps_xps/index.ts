/**
 * rps_xps: Receive Packet Steering and Transmit Packet Steering of one interface.
 * rps_cpus and rps_flow_cnt on every rx queue, xps_cpus spreading the CPUs over the
 * tx queues (each CPU sends on one queue), net.core.rps_sock_flow_entries.
 *
 * Persisted by a udev rule on the net device rather than a boot unit: udev writes the
 * attributes whenever the interface is added or renamed (boot, driver re-probe, hotplug),
 * which a oneshot unit would only see at boot. rps_sock_flow_entries is a sysctl and
 * goes to a sysctl.d file, as the sysctl module does it.
 */
import { CPULIST_PATTERN, cpuMask, formatCpuList, parseCpuList, parseCpuMask, sh, type Command, defineModule, fileDiff, quote, READ_FN, catFileProbe, parseFileBlock, writeFileCommand, type Change, type PlanContext, fileClaims } from '../../src/kit/index.js';
import { overrideWarnings, parseSysctlProbe, renderSysctlFile, setSysctlCommand, sysctlProbe, type SysctlState } from '../lib/sysctl-conf.js';
import { RELOAD_COMMAND } from '../io_scheduler/index.js';
import { IFACE_PATTERN } from '../irq_affinity/index.js';

export const SOCK_FLOW_KEY = 'net.core.rps_sock_flow_entries';
export const SOCK_FLOW_FILE = '/etc/sysctl.d/90-kvmconf-rps.conf';

/** `all`: every CPU online when kvmconf runs, for guests of any size. */
export type CpuChoice = number[] | 'all';

export interface RpsXpsParams {
  interface: string;
  rps_cpus: CpuChoice | null;
  xps_cpus: CpuChoice | null;
  rps_flow_cnt: number | null;
  sock_flow_entries: number | null;
  persist: boolean;
}

export interface RpsXpsState {
  exists: boolean;
  /** Attribute values by queue-relative path (`rx-0/rps_cpus`); null when the kernel refuses the read. */
  queues: Record<string, string | null>;
  online: number[];
  rule: string | null;
  udevRunning: boolean;
  sysctl: SysctlState | null;
}

export function rulePath(iface: string): string {
  return `/etc/udev/rules.d/60-kvmconf-rps-xps-${iface}.rules`;
}

const CPU_CHOICE = [{ type: 'array', minItems: 1, items: { type: 'integer', minimum: 0, maximum: 8191 } }, { type: 'string', pattern: CPULIST_PATTERN }, { const: 'all' }] as const;

const powerOfTwo = (n: number) => n === 0 || (n > 0 && (n & (n - 1)) === 0);

/** rx-N / tx-N names sorted by N. */
function queuesOf(state: RpsXpsState, kind: 'rx' | 'tx'): string[] {
  const names = new Set(Object.keys(state.queues).map((key) => key.split('/')[0]!).filter((name) => name.startsWith(`${kind}-`)));
  return [...names].sort((a, b) => Number(a.slice(3)) - Number(b.slice(3)));
}

/** The CPUs of tx queue `index` of `count`: the j-th CPU of the list sends on queue j mod count. */
export function xpsShare(cpus: readonly number[], index: number, count: number): number[] {
  return cpus.filter((_, j) => j % count === index);
}

/** The CPU list a choice names on this host: `all` is every online CPU. */
export function resolveCpus(choice: CpuChoice | null, state: RpsXpsState): number[] | null {
  return choice === 'all' ? state.online : choice;
}

/** What each queue attribute should read, by queue-relative path, in write order. */
export function desiredAttributes(params: RpsXpsParams, state: RpsXpsState): Array<{ attr: string; value: string; cpus?: number[] }> {
  const wanted: Array<{ attr: string; value: string; cpus?: number[] }> = [];
  const rx = queuesOf(state, 'rx');
  const tx = queuesOf(state, 'tx');
  const rpsCpus = resolveCpus(params.rps_cpus, state);
  const xpsCpus = resolveCpus(params.xps_cpus, state);
  for (const queue of rx) {
    if (rpsCpus) wanted.push({ attr: `${queue}/rps_cpus`, value: cpuMask(rpsCpus), cpus: rpsCpus });
    if (params.rps_flow_cnt !== null) wanted.push({ attr: `${queue}/rps_flow_cnt`, value: String(params.rps_flow_cnt) });
  }
  if (xpsCpus) {
    tx.forEach((queue, index) => {
      const cpus = xpsShare(xpsCpus, index, tx.length);
      wanted.push({ attr: `${queue}/xps_cpus`, value: cpuMask(cpus), cpus });
    });
  }
  return wanted;
}

export function renderRule(iface: string, attributes: Array<{ attr: string; value: string }>): string {
  const assignments = attributes.map(({ attr, value }) => `ATTR{queues/${attr}}="${value}"`).join(', ');
  // "move" too: a NIC renamed by 80-net-setup-link (eth0 -> enp0s2) is added under its kernel
  // name, and only the move event that follows the rename carries the name the task gives.
  return `# Managed by kvmconf (rps_xps); edits here are overwritten.\nACTION=="add|move", SUBSYSTEM=="net", KERNEL=="${iface}", ${assignments}\n`;
}

/** Write a queue attribute and read it back; masks compare without commas and leading zeros. */
export function queueCommands(file: string, value: string, mask: boolean): Command[] {
  const canon = mask ? value.replace(/,/g, '').replace(/^0+(?=.)/, '') : value;
  const read = mask ? sh`kc_got=$(tr -d ',\\n' < ${file} | sed 's/^0*//'); [ -n "$kc_got" ] || kc_got=0` : sh`kc_got=$(cat ${file})`;
  return [sh`kc_write_value ${file} ${value}`, read, sh`[ "$kc_got" = ${canon} ] || kc_fail ${`${file}: asked for ${value}, the kernel has`} "$kc_got"`];
}

function sameValue(current: string | null, wanted: { value: string; cpus?: number[] }): boolean {
  if (current === null) return false;
  if (wanted.cpus) return formatCpuList(parseCpuMask(current)) === formatCpuList(wanted.cpus);
  return current.trim() === wanted.value;
}

export const rpsXps = defineModule<RpsXpsParams, RpsXpsState>({
  name: 'rps_xps',
  summary: 'RPS/XPS of an interface\'s queues (rps_cpus, xps_cpus, rps_flow_cnt) and rps_sock_flow_entries, live and persisted by a udev rule',
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['interface'],
    properties: {
      interface: { type: 'string', pattern: IFACE_PATTERN },
      rps_cpus: { anyOf: [...CPU_CHOICE], description: 'CPUs that process the packets of every rx queue (all: every online CPU)' },
      xps_cpus: { anyOf: [...CPU_CHOICE], description: 'CPUs spread over the tx queues: the j-th CPU sends on queue j mod queues (all: every online CPU)' },
      rps_flow_cnt: { type: 'integer', minimum: 0, maximum: 1073741824, description: 'flow table entries per rx queue (a power of two, or 0)' },
      sock_flow_entries: { type: 'integer', minimum: 0, maximum: 1073741824, description: 'net.core.rps_sock_flow_entries (a power of two, or 0)' },
      persist: { type: 'boolean' },
    },
    anyOf: [{ required: ['rps_cpus'] }, { required: ['xps_cpus'] }, { required: ['rps_flow_cnt'] }, { required: ['sock_flow_entries'] }],
  },

  normalize(raw) {
    const input = raw as { interface: string; rps_cpus?: number[] | string; xps_cpus?: number[] | string; rps_flow_cnt?: number; sock_flow_entries?: number; persist?: boolean };
    const list = (value: number[] | string | undefined): CpuChoice | null =>
      value === undefined ? null : value === 'all' ? 'all' : typeof value === 'string' ? parseCpuList(value) : [...new Set(value)].sort((a, b) => a - b);
    // The kernel rounds both up to a power of two and reads back the rounded size: only canonical input, so nothing flaps.
    for (const key of ['rps_flow_cnt', 'sock_flow_entries'] as const) {
      const value = input[key];
      if (value !== undefined && !powerOfTwo(value)) throw new Error(`${key}: ${value} is not a power of two; the kernel would use ${2 ** Math.ceil(Math.log2(value))}`);
    }
    return {
      interface: input.interface, rps_cpus: list(input.rps_cpus), xps_cpus: list(input.xps_cpus),
      rps_flow_cnt: input.rps_flow_cnt ?? null, sock_flow_entries: input.sock_flow_entries ?? null, persist: input.persist ?? true,
    };
  },

  claims: (params) => fileClaims(params.persist ? [...(params.rps_cpus || params.xps_cpus || params.rps_flow_cnt !== null ? [rulePath(params.interface)] : []), ...(params.sock_flow_entries !== null ? [SOCK_FLOW_FILE] : [])] : []),

  probe: (params) => {
    const dir = `/sys/class/net/${params.interface}/queues`;
    return [
      READ_FN,
      `if kc_read /sys/devices/system/cpu/online; then echo "online $kc_v"; fi`,
      `if [ -d ${quote(dir)} ]; then echo exists; for kc_f in ${quote(dir)}/rx-*/rps_cpus ${quote(dir)}/rx-*/rps_flow_cnt ${quote(dir)}/tx-*/xps_cpus; do`,
      // xps_cpus of a single-queue device refuses reads (ENOENT): reported so the planner can say why.
      // (the shell's read builtin sees that as an empty file, so cat reads those; not an awk
      // reader: mawk exits on a read error, and the gather's one awk would lose every probe's output).
      `  [ -e "$kc_f" ] || continue; kc_q=\${kc_f#${dir}/}`,
      `  case "$kc_q" in *xps_cpus) kc_v=$(cat "$kc_f" 2>/dev/null) ;; *) kc_read "$kc_f" ;; esac && printf 'q %s %s\\n' "$kc_q" "$kc_v" || printf 'unreadable %s\\n' "$kc_q"`,
      `done; fi`,
      `if [ -S /run/udev/control ]; then echo udevd; fi`,
      `echo '@@rule'`,
      catFileProbe(rulePath(params.interface)),
      ...(params.sock_flow_entries !== null ? [`echo '@@sysctl'`, sysctlProbe([SOCK_FLOW_KEY], SOCK_FLOW_FILE)] : []),
    ].join('\n');
  },

  parse(output, params) {
    const ruleAt = output.indexOf('@@rule\n');
    if (ruleAt < 0) throw new Error('rps_xps probe output is truncated');
    const sysctlAt = output.indexOf('@@sysctl\n', ruleAt);
    const state: RpsXpsState = {
      exists: false, queues: {}, online: [], udevRunning: false,
      rule: parseFileBlock(output.slice(ruleAt + '@@rule\n'.length, sysctlAt < 0 ? undefined : sysctlAt)),
      sysctl: params.sock_flow_entries !== null && sysctlAt >= 0 ? parseSysctlProbe(output.slice(sysctlAt + '@@sysctl\n'.length), [SOCK_FLOW_KEY]) : null,
    };
    for (const line of output.slice(0, ruleAt).split('\n')) {
      const [kind = '', first = '', ...rest] = line.split(' ');
      if (kind === 'online') state.online = parseCpuList(first);
      else if (kind === 'exists') state.exists = true;
      else if (kind === 'udevd') state.udevRunning = true;
      else if (kind === 'q') state.queues[first] = rest.join(' ').trim();
      else if (kind === 'unreadable') state.queues[first] = null;
    }
    return state;
  },

  diff(params, actual, context: PlanContext) {
    const base = `/sys/class/net/${params.interface}/queues`;
    if (!actual.exists) throw new Error(`interface ${params.interface} does not exist on this host (${base} is absent)`);
    if ((params.rps_cpus === 'all' || params.xps_cpus === 'all') && actual.online.length === 0) throw new Error('all: the online CPUs could not be read (/sys/devices/system/cpu/online)');
    for (const [key, cpus] of [['rps_cpus', resolveCpus(params.rps_cpus, actual)], ['xps_cpus', resolveCpus(params.xps_cpus, actual)]] as const) {
      const offline = (cpus ?? []).filter((cpu) => !actual.online.includes(cpu));
      if (offline.length) throw new Error(`${key}: CPU ${formatCpuList(offline)} is not online on this host (online: ${formatCpuList(actual.online)})`);
    }
    if (params.xps_cpus && queuesOf(actual, 'tx').length < 2) {
      throw new Error(`xps_cpus: ${params.interface} has ${queuesOf(actual, 'tx').length} tx queue; the kernel keeps XPS for multi-queue devices (ethtool -L ${params.interface} combined N first)`);
    }
    const wanted = desiredAttributes(params, actual);
    const changes: Change[] = [];
    for (const attribute of wanted) {
      const current = actual.queues[attribute.attr] ?? null;
      if (sameValue(current, attribute)) continue;
      const file = `${base}/${attribute.attr}`;
      const show = (value: string | null) => (value === null ? null : attribute.cpus ? formatCpuList(parseCpuMask(value)) || '(none)' : value);
      changes.push({
        module: 'rps_xps', target: file, scope: 'runtime', before: show(current), after: attribute.cpus ? formatCpuList(attribute.cpus) || '(none)' : attribute.value,
        ...(attribute.cpus ? { reason: `mask ${attribute.value}` } : {}),
        commands: queueCommands(file, attribute.value, attribute.cpus !== undefined),
      });
    }
    if (params.sock_flow_entries !== null) {
      const value = String(params.sock_flow_entries);
      const live = actual.sysctl?.runtime[SOCK_FLOW_KEY];
      if (live === null || live === undefined) throw new Error(`${SOCK_FLOW_KEY}: no such sysctl on this kernel (built without CONFIG_RPS?)`);
      if (live !== value) changes.push({ module: 'rps_xps', target: SOCK_FLOW_KEY, scope: 'runtime', before: live, after: value, commands: [setSysctlCommand(SOCK_FLOW_KEY, value)] });
    }
    if (params.persist) {
      if (wanted.length) {
        const path = rulePath(params.interface);
        const content = renderRule(params.interface, wanted);
        if (actual.rule !== content) {
          changes.push({
            module: 'rps_xps', target: path, scope: 'persist', before: actual.rule === null ? null : 'present', after: wanted.map(({ attr, value }) => `${attr}=${value}`).join(' '),
            ...(actual.udevRunning ? {} : { reason: 'udevd is not running here: the rule applies from the next boot' }),
            diff: fileDiff(path, actual.rule, content), commands: [writeFileCommand(path, content, actual.rule), RELOAD_COMMAND],
          });
        }
        if (queuesOf(actual, 'tx').length > 1 && params.xps_cpus) context.warn(`the rule spreads xps_cpus over the ${queuesOf(actual, 'tx').length} tx queues ${params.interface} has now; after ethtool -L changes that, run kvmconf again`);
      }
      if (params.sock_flow_entries !== null) {
        const settings = { [SOCK_FLOW_KEY]: String(params.sock_flow_entries) };
        const content = renderSysctlFile(settings, 'rps_xps');
        const current = actual.sysctl?.file ?? null;
        if (current !== content) {
          changes.push({
            module: 'rps_xps', target: SOCK_FLOW_FILE, scope: 'persist', before: current === null ? null : 'present', after: `${SOCK_FLOW_KEY} = ${params.sock_flow_entries}`,
            diff: fileDiff(SOCK_FLOW_FILE, current, content), commands: [writeFileCommand(SOCK_FLOW_FILE, content, current)],
          });
        }
        if (actual.sysctl) overrideWarnings(actual.sysctl, SOCK_FLOW_FILE, settings).forEach((warning) => context.warn(warning));
      }
    }
    return changes;
  },
});
