/**
 * irq_affinity: pins the IRQs of a device's queues to CPUs, queue i to CPU i.
 * Live through /proc/irq/N/smp_affinity_list, read back (a managed IRQ the kernel
 * will not move fails with the reason, never counts as changed); persisted by a
 * oneshot unit and script the task owns that match the IRQs again at boot; irqbalance
 * left alone (with a warning when it runs), told to keep off the CPUs, or stopped.
 */
import { awkReader, readWith, CPULIST_PATTERN, formatCpuList, parseCpuList, sh, shellCode, type Command, defineModule, fileDiff, quote, osFamily, READ_FN, catFileProbe, parseFileBlock, writeFileCommand, type Change, type PlanContext, fileClaims } from '../../src/kit/index.js';
import { parseUnitProbe, planUnit, unitCommands, unitProbe, type UnitsState } from '../lib/systemd.js';
import { BANNED_KEY, assignCpus, envValue, setEnvValue, type IrqInfo } from './plan.js';
import { irqListShell, renderScript, renderUnit, scriptPath, unitFileName, unitPath, type BootSpec } from './boot.js';

export const IFACE_PATTERN = '^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,14}$';
export const PCI_PATTERN = '^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\\.[0-7]$';
/** A shell `case` glob over action names: no quotes, spaces, `$` or backslashes. */
export const MATCH_PATTERN = '^[A-Za-z0-9_.:@*?\\[\\]!-]{1,64}$';
const NAME_PATTERN = '^[a-z0-9][a-z0-9_.-]{0,47}$';
export const IRQBALANCE_UNIT = 'irqbalance.service';
export const IRQBALANCE_FILES = { debian: '/etc/default/irqbalance', rhel: '/etc/sysconfig/irqbalance' } as const;

export interface IrqAffinityParams {
  name: string;
  interface: string | null;
  pci: string | null;
  match: string;
  cpus: number[] | null;
  node: 'auto' | number | null;
  irqbalance: 'leave' | 'ban' | 'stop';
  persist: boolean;
}

export interface IrqAffinityState {
  online: number[];
  nodes: Record<number, number[]>;
  /** The device asked for: null when absent on the host; undefined when the task names none. */
  device?: { path: string; numaNode: number } | null;
  irqs: IrqInfo[];
  units: UnitsState;
  /** irqbalance's environment files, by path; null content when absent. */
  irqbalanceFiles: Record<string, string | null>;
  script: string | null;
  unit: string | null;
}

/** The sysfs path of the device the task names, or null for a bare action glob. */
export function devicePath(params: Pick<IrqAffinityParams, 'interface' | 'pci'>): string | null {
  if (params.interface) return `/sys/class/net/${params.interface}/device`;
  if (params.pci) return `/sys/bus/pci/devices/${params.pci}`;
  return null;
}

function describe(params: IrqAffinityParams): string {
  const device = params.interface ?? params.pci;
  if (!device) return `the IRQs named ${params.match}`;
  return params.match === '*' ? device : `${device} (${params.match})`;
}

function defaultName(input: { interface?: string; pci?: string; match?: string }): string {
  const base = input.interface ?? input.pci ?? input.match ?? 'irqs';
  return (base.toLowerCase().replace(/[^a-z0-9_.-]+/g, '_').replace(/^[^a-z0-9]+/, '') || 'irqs').slice(0, 48);
}

export function resolveCpus(params: IrqAffinityParams, state: IrqAffinityState): { cpus: number[]; note?: string } {
  if (params.cpus) {
    const offline = params.cpus.filter((cpu) => !state.online.includes(cpu));
    if (offline.length) throw new Error(`CPU ${formatCpuList(offline)} is not online on this host (online: ${formatCpuList(state.online)})`);
    return { cpus: params.cpus };
  }
  let node = params.node!;
  let note: string | undefined;
  if (node === 'auto') {
    if (!state.device) throw new Error('node: auto needs the device (interface or pci) to read its NUMA node');
    if (state.device.numaNode < 0) {
      return { cpus: state.online, note: `${state.device.path} reports no NUMA node (numa_node -1): every online CPU is used` };
    }
    node = state.device.numaNode;
    note = `${state.device.path} is on NUMA node ${node}`;
  }
  const cpus = (state.nodes[node] ?? []).filter((cpu) => state.online.includes(cpu));
  if (!cpus.length) throw new Error(`NUMA node ${node} has no online CPU on this host (nodes: ${Object.keys(state.nodes).join(', ') || 'none'})`);
  return { cpus, ...(note ? { note } : {}) };
}

export function bootSpec(params: IrqAffinityParams, cpus: number[]): BootSpec {
  return { name: params.name, device: devicePath(params), iface: params.interface, match: params.match, cpus, what: describe(params) };
}

/** The commands that pin one IRQ, read it back and check the effective affinity. */
export function pinCommands(irq: IrqInfo, cpu: number): Command[] {
  const file = `/proc/irq/${irq.irq}/smp_affinity_list`;
  const effective = `/proc/irq/${irq.irq}/effective_affinity_list`;
  const label = `IRQ ${irq.irq} (${irq.actions})`;
  const why = 'a managed IRQ (its driver spreads the queues itself) or one the interrupt controller cannot move';
  return [
    sh`kc_err=$( { env printf '%s\\n' ${cpu} > ${file}; } 2>&1 ) || kc_fail ${`${label}: the kernel refused CPU ${cpu}`} "($(printf '%s' "$kc_err" | sed 's/.*: //'));" ${why}`,
    sh`kc_got=$(cat ${file}); [ "$kc_got" = ${cpu} ] || kc_fail ${`${label}: asked for CPU ${cpu}, smp_affinity_list reads`} "$kc_got"`,
    sh`kc_got=$(cat ${effective} 2>/dev/null) || kc_got=; [ -z "$kc_got" ] || [ "$kc_got" = ${cpu} ] || kc_fail ${`${label}: asked for CPU ${cpu}, the kernel delivers it on CPU`} "$kc_got"`,
  ];
}

function irqbalanceFile(state: IrqAffinityState, family: string): string {
  const existing = Object.entries(state.irqbalanceFiles).find(([, content]) => content !== null);
  if (existing) return existing[0];
  return family === 'rhel' || family === 'suse' ? IRQBALANCE_FILES.rhel : IRQBALANCE_FILES.debian;
}

/** `node N CPUS` per NUMA node: cpulist is a binary attribute on recent kernels, which the read builtin gets nothing of. */
const NODES_READER = awkReader({
  name: 'irq_nodes',
  line: 'if (kc_fnr == 1) { irq_nodes_n = kc_file; sub(/\\/cpulist$/, "", irq_nodes_n); sub(/.*node/, "", irq_nodes_n); print "node", irq_nodes_n, $0 }',
});

/**
 * `irq N|AFFINITY|EFFECTIVE|MANAGED|ACTIONS` per IRQ, in the order of the calls' `n=`
 * arguments, from its /proc/irq lists and its debugfs entry (`-` for one that cannot be
 * read; an IRQ without a readable smp_affinity_list is left out). Awk reads a file in
 * one system call, the read builtin a byte per call: a debugfs entry is hundreds of
 * bytes, and a host has hundreds of IRQs.
 */
export const IRQS_READER = awkReader({
  name: 'irqs',
  begin: 'irqs_count = 0; split("", irqs_order); split("", irqs_act); split("", irqs_aff); split("", irqs_eff); split("", irqs_m)',
  line: [
    'irqs_n = kc_arg["n"]',
    'if (!(irqs_n in irqs_act)) { irqs_act[irqs_n] = kc_arg["act"]; irqs_order[++irqs_count] = irqs_n }',
    'if (kc_file ~ /\\/smp_affinity_list$/) irqs_aff[irqs_n] = $0',
    'else if (kc_file ~ /\\/effective_affinity_list$/) irqs_eff[irqs_n] = $0',
    'else if ($0 ~ /IRQD_AFFINITY_MANAGED/) irqs_m[irqs_n] = "managed"',
    'else if (!(irqs_n in irqs_m)) irqs_m[irqs_n] = "unmanaged"',
  ].join('\n'),
  end: [
    'for (irqs_i = 1; irqs_i <= irqs_count; irqs_i++) {',
    '  irqs_n = irqs_order[irqs_i]',
    '  if (irqs_n in irqs_aff) print "irq " irqs_n "|" irqs_aff[irqs_n] "|" (irqs_n in irqs_eff ? irqs_eff[irqs_n] : "-") "|" (irqs_n in irqs_m ? irqs_m[irqs_n] : "-") "|" irqs_act[irqs_n]',
    '}',
  ].join('\n'),
});

export const irqAffinity = defineModule<IrqAffinityParams, IrqAffinityState>({
  name: 'irq_affinity',
  summary: 'IRQs of a device\'s queues pinned to CPUs (queue i to CPU i), live in /proc/irq and re-applied at boot by a unit; irqbalance kept off or stopped',
  schema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      name: { type: 'string', pattern: NAME_PATTERN, description: 'suffix of the owned unit and script; default from interface, pci or match' },
      interface: { type: 'string', pattern: IFACE_PATTERN, description: 'network interface whose MSI-X vectors are pinned' },
      pci: { type: 'string', pattern: PCI_PATTERN, description: 'PCI function (0000:3b:00.0) whose MSI-X vectors are pinned' },
      match: { type: 'string', pattern: MATCH_PATTERN, description: 'glob over the IRQ action names (/proc/interrupts last column), e.g. virtio*-input.*; narrows interface/pci' },
      cpus: {
        anyOf: [{ type: 'array', minItems: 1, maxItems: 4096, items: { type: 'integer', minimum: 0, maximum: 8191 } }, { type: 'string', pattern: CPULIST_PATTERN }],
        description: 'CPUs, a list or a cpulist string (0-3,8); queue i goes to the i-th',
      },
      node: { anyOf: [{ const: 'auto' }, { type: 'integer', minimum: 0, maximum: 1023 }], description: 'the CPUs of a NUMA node; auto: the device\'s own node (all online CPUs when it reports none)' },
      irqbalance: { enum: ['leave', 'ban', 'stop'], description: 'leave (default, warns when it runs), ban (IRQBALANCE_BANNED_CPULIST), stop (stopped and disabled)' },
      persist: { type: 'boolean', description: 'true (default): a oneshot unit re-applies the pinning at boot and when the NIC comes back' },
    },
    allOf: [
      { anyOf: [{ required: ['interface'] }, { required: ['pci'] }, { required: ['match'] }] },
      { oneOf: [{ required: ['cpus'] }, { required: ['node'] }] },
      { not: { required: ['interface', 'pci'] } },
    ],
  },

  normalize(raw) {
    const input = raw as { name?: string; interface?: string; pci?: string; match?: string; cpus?: number[] | string; node?: 'auto' | number; irqbalance?: IrqAffinityParams['irqbalance']; persist?: boolean };
    if (input.node === 'auto' && !input.interface && !input.pci) throw new Error('node: auto reads the NUMA node of the device: give interface or pci with it');
    const cpus = input.cpus === undefined ? null : typeof input.cpus === 'string' ? parseCpuList(input.cpus) : [...new Set(input.cpus)];
    return {
      name: input.name ?? defaultName(input),
      interface: input.interface ?? null,
      pci: input.pci ?? null,
      match: input.match ?? '*',
      cpus,
      node: input.node ?? null,
      irqbalance: input.irqbalance ?? 'leave',
      persist: input.persist ?? true,
    };
  },

  claims: (params) => fileClaims(params.persist ? [scriptPath(params.name), unitPath(params.name)] : []),

  probe: (params) =>
    [
      READ_FN,
      `if kc_read /sys/devices/system/cpu/online; then echo "online $kc_v"; fi`,
      readWith(NODES_READER, '/sys/devices/system/node/node[0-9]*/cpulist'),
      ...(devicePath(params) === null
        ? []
        : [
            ...irqListShell(devicePath(params)),
            `if [ -e ${quote(devicePath(params)!)} ]; then echo "device $kc_dev"; if kc_read "$kc_dev/numa_node"; then echo "numa $kc_v"; fi; else echo nodevice; fi`,
          ]),
      ...(devicePath(params) === null ? irqListShell(null) : []),
      `kc_match=${quote(params.match)}`,
      // Each IRQ number is taken off the front; a matched one puts its reader arguments at the back.
      `kc_c=$#; while [ "$kc_c" -gt 0 ]; do`,
      `  kc_n=$1; shift; kc_c=$((kc_c - 1))`,
      `  kc_read "/sys/kernel/irq/$kc_n/actions" && [ -n "$kc_v" ] || continue`,
      `  case "$kc_v" in $kc_match) ;; *) continue ;; esac`,
      `  set -- "$@" "n=$kc_n" "act=$kc_v" "/proc/irq/$kc_n/smp_affinity_list" "/proc/irq/$kc_n/effective_affinity_list" "/sys/kernel/debug/irq/irqs/$kc_n"`,
      `done`,
      `if [ "$#" -gt 0 ]; then ${readWith(IRQS_READER, '"$@"')}; fi`,
      `echo '@@units'`,
      unitProbe([IRQBALANCE_UNIT, unitFileName(params.name)]),
      ...Object.values(IRQBALANCE_FILES).flatMap((path) => [`echo ${quote(`@@env ${path}`)}`, catFileProbe(path)]),
      `echo '@@script'`,
      catFileProbe(scriptPath(params.name)),
      `echo '@@unit'`,
      catFileProbe(unitPath(params.name)),
    ].join('\n'),

  parse(output, params) {
    const cut = (marker: string, from: number): number => {
      const at = output.indexOf(`${marker}\n`, from);
      if (at < 0) throw new Error(`irq_affinity probe output is truncated (no ${marker})`);
      return at;
    };
    const units = cut('@@units', 0);
    const envStarts = Object.values(IRQBALANCE_FILES).map((path) => cut(`@@env ${path}`, units));
    const script = cut('@@script', units);
    const unit = cut('@@unit', script);
    const state: IrqAffinityState = {
      online: [], nodes: {}, irqs: [],
      units: parseUnitProbe(output.slice(units + '@@units\n'.length, envStarts[0])),
      irqbalanceFiles: {},
      script: parseFileBlock(output.slice(script + '@@script\n'.length, unit)),
      unit: parseFileBlock(output.slice(unit + '@@unit\n'.length)),
    };
    Object.values(IRQBALANCE_FILES).forEach((path, i) => {
      const start = envStarts[i]! + `@@env ${path}\n`.length;
      state.irqbalanceFiles[path] = parseFileBlock(output.slice(start, envStarts[i + 1] ?? script));
    });
    if (devicePath(params) !== null) state.device = null;
    for (const line of output.slice(0, units).split('\n')) {
      const space = line.indexOf(' ');
      const kind = space < 0 ? line : line.slice(0, space);
      const rest = space < 0 ? '' : line.slice(space + 1).trim();
      if (kind === 'online') state.online = parseCpuList(rest);
      else if (kind === 'node') {
        const [id = '', list = ''] = rest.split(' ');
        state.nodes[Number(id)] = parseCpuList(list);
      } else if (kind === 'device') state.device = { path: rest, numaNode: -1 };
      else if (kind === 'numa' && state.device) state.device.numaNode = Number(rest);
      else if (kind === 'irq') {
        const [irq = '', affinity = '', effective = '', managed = '', ...actions] = rest.split('|');
        state.irqs.push({
          irq: Number(irq), actions: actions.join('|'), affinity: parseCpuList(affinity),
          effective: effective === '-' ? null : parseCpuList(effective),
          managed: managed === 'managed' ? true : managed === 'unmanaged' ? false : null,
        });
      }
    }
    return state;
  },

  diff(params, actual, context) {
    const what = describe(params);
    if (actual.device === null) throw new Error(`${params.interface ? `interface ${params.interface}` : `PCI device ${params.pci}`} does not exist on this host (${devicePath(params)} is absent)`);
    if (!actual.irqs.length) throw new Error(`no IRQ of ${what} was found: ${actual.device ? `${actual.device.path} has no MSI vectors matching '${params.match}'` : `no action name matches '${params.match}' in /sys/kernel/irq`}`);
    const { cpus, note } = resolveCpus(params, actual);
    const changes: Change[] = [];
    const refused: string[] = [];
    const pins: Change[] = [];
    for (const { irq, cpu } of assignCpus(actual.irqs, cpus)) {
      const label = `IRQ ${irq.irq} (${irq.actions})`;
      const held = irq.affinity.length === 1 && irq.affinity[0] === cpu;
      if (held) {
        // The mask is right but the kernel delivers elsewhere: it did not move the IRQ.
        if (irq.effective && irq.effective.length && !(irq.effective.length === 1 && irq.effective[0] === cpu)) {
          refused.push(`${label}: smp_affinity_list is ${cpu} but the kernel delivers it on CPU ${formatCpuList(irq.effective)}`);
        }
        continue;
      }
      if (irq.managed === true) {
        refused.push(`${label} is a managed IRQ: its driver spreads it over ${formatCpuList(irq.affinity)} and the kernel refuses moves (EIO)`);
        continue;
      }
      pins.push({
        module: 'irq_affinity', target: `/proc/irq/${irq.irq}/smp_affinity_list`, scope: 'runtime',
        before: formatCpuList(irq.affinity), after: String(cpu),
        reason: [label, ...(note ? [note] : [])].join('; '),
        commands: pinCommands(irq, cpu),
      });
    }
    if (refused.length) throw new Error(`the kernel will not pin every IRQ of ${what}:\n  ${refused.join('\n  ')}`);

    // irqbalance first, so a restarted daemon has the ban before the IRQs move.
    changes.push(...irqbalanceChanges(params, actual, cpus, context));
    changes.push(...pins);
    if (params.persist) changes.push(...persistChanges(params, actual, cpus));
    return changes;
  },
});

function irqbalanceChanges(params: IrqAffinityParams, actual: IrqAffinityState, cpus: number[], context: PlanContext): Change[] {
  const unit = actual.units.units[IRQBALANCE_UNIT];
  const installed = actual.units.systemd && unit !== undefined && unit.load !== 'not-found';
  const running = installed && ['active', 'reloading', 'activating'].includes(unit!.active);
  if (params.irqbalance === 'leave') {
    if (running) context.warn(`irqbalance is running: it moves IRQs every 10 s and may undo this pinning (irqbalance: ban keeps it off CPU ${formatCpuList(cpus)}, stop stops it)`);
    return [];
  }
  if (params.irqbalance === 'stop') {
    return planUnit('irq_affinity', IRQBALANCE_UNIT, { state: 'stopped', enabled: false }, actual.units, { absentOk: true, warn: () => {}, absentNote: 'nothing to stop' })
      .map((change) => ({ ...change, commands: unitCommands(change) }));
  }
  const bans = context.tasks.filter((task) => task.module === 'irq_affinity' && (task.params as IrqAffinityParams).irqbalance === 'ban');
  if (bans.length > 1) throw new Error(`${bans.length} irq_affinity tasks set irqbalance: ban; the banned list is one setting: give it to one task with every CPU (cpus:) and irqbalance: leave to the others`);
  if (!installed) {
    context.warn('irqbalance is not installed here: nothing to ban');
    return [];
  }
  const path = irqbalanceFile(actual, osFamily(context.facts));
  const current = actual.irqbalanceFiles[path] ?? null;
  const list = formatCpuList(cpus);
  const before = envValue(current, BANNED_KEY);
  if (before !== null && before === list) return [];
  if (envValue(current, 'IRQBALANCE_BANNED_CPUS') !== null) context.warn(`${path} also sets IRQBALANCE_BANNED_CPUS; irqbalance 1.8 and later prefer ${BANNED_KEY}`);
  const content = setEnvValue(current, BANNED_KEY, list);
  const changes: Change[] = [{
    module: 'irq_affinity', target: `${path}:${BANNED_KEY}`, scope: 'persist', before, after: list,
    diff: fileDiff(path, current, content), commands: [writeFileCommand(path, content, current)],
  }];
  if (running) {
    changes.push({
      module: 'irq_affinity', target: IRQBALANCE_UNIT, scope: 'runtime', before: 'started', after: 'restarted',
      reason: `irqbalance reads ${BANNED_KEY} when it starts`,
      commands: [sh`systemctl restart ${IRQBALANCE_UNIT}`, sh`kc_got=$(systemctl is-active ${IRQBALANCE_UNIT}) || true`, shellCode`[ "$kc_got" = active ] || kc_fail 'irqbalance.service: restarted, systemd reports' "$kc_got"`],
    });
  }
  return changes;
}

function persistChanges(params: IrqAffinityParams, actual: IrqAffinityState, cpus: number[]): Change[] {
  if (!actual.units.systemd) throw new Error('persist: this host does not run systemd (no /run/systemd/system), so no unit can pin the IRQs at boot; set persist: false');
  const spec = bootSpec(params, cpus);
  const changes: Change[] = [];
  const script = renderScript(spec);
  const unit = renderUnit(spec);
  const scriptFile = scriptPath(params.name);
  const unitFile = unitPath(params.name);
  const name = unitFileName(params.name);
  if (actual.script !== script) {
    changes.push({
      module: 'irq_affinity', target: scriptFile, scope: 'persist', before: actual.script === null ? null : 'present', after: `CPU ${formatCpuList(cpus)}`,
      diff: fileDiff(scriptFile, actual.script, script), commands: [writeFileCommand(scriptFile, script, actual.script, '0755')],
    });
  }
  if (actual.unit !== unit) {
    changes.push({
      module: 'irq_affinity', target: unitFile, scope: 'persist', before: actual.unit === null ? null : 'present', after: 'present',
      diff: fileDiff(unitFile, actual.unit, unit), commands: [writeFileCommand(unitFile, unit, actual.unit), shellCode`systemctl daemon-reload`],
    });
  }
  const state = actual.units.units[name];
  if (state?.file !== 'enabled') {
    const change: Change = { module: 'irq_affinity', target: name, scope: 'persist', before: state && state.load !== 'not-found' ? state.file || null : null, after: 'enabled' };
    changes.push({ ...change, commands: unitCommands(change) });
  }
  return changes;
}
