/**
 * sriov: the SR-IOV virtual functions of a physical function (PF): `sriov_numvfs`, and
 * for a network PF each VF's MAC, VLAN, qos, spoof checking and trust (`ip link set dev
 * PF vf N ...`). Persisted by a udev rule on the PF's `bind` event (and `add`, see
 * renderRule): the kernel takes sriov_numvfs only from the PF's bound driver
 * (sriov_configure), and a bind event (kernel 4.14+) comes exactly then, at boot, on a
 * driver reload or a rebind.
 *
 * The kernel changes a non-zero count only through 0 (EBUSY otherwise), which destroys
 * every VF: a VF held by a running libvirt domain (its status XML names it as a hostdev
 * source) refuses the change at plan time, and again in the apply step, before 0 is written.
 */
import { defineModule, fileDiff, quote, words, READ_FN, catFileProbe, parseFileBlock, writeFileCommand, removeFileCommand, sh, shellCode, InputError, type Change, type Claim, type Command, type PlanContext } from '../../src/kit/index.js';
import { randomBytes } from 'node:crypto';
import { RELOAD_COMMAND } from '../io_scheduler/index.js';
import { IFACE_PATTERN, PCI_PATTERN } from '../irq_affinity/index.js';
import { HOSTDEV_PROGRAM, LIBVIRT_STATUS_DIR, hostdevProbe, parseHeld, type HeldDevice } from '../lib/pci-hostdev.js';
import { describe, parseVfLines, staleSettings, vfArguments, vfCommands, type VfSettings, type VfState } from './vf.js';

const MODULE = 'sriov';
/** First line of the probe's output: the random marker every line parse trusts starts with. */
const HEADER = '@@sriov-probe';
const MAC_PATTERN = '^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$';

export interface SriovParams {
  pci: string | null;
  interface: string | null;
  numvfs: number;
  persist: boolean;
  /** sriov_drivers_autoprobe: false leaves new VFs without a host driver (for vfio-pci); null: not managed. */
  autoprobe: boolean | null;
  /** VF number -> the settings asked for it (MAC lowercase). */
  vfs: Record<number, VfSettings>;
}

export interface VirtualFunction {
  index: number;
  address: string;
  driver: string | null;
}

export interface SriovState {
  /** The PF's PCI address; null when the interface named has no PCI device, or the device is absent. */
  device: string | null;
  /** The address or interface the task names, when it is not on this host. */
  missing: string | null;
  driver: string | null;
  node: number | null;
  /** sriov_totalvfs; null when the device is no SR-IOV PF. */
  total: number | null;
  numvfs: number | null;
  /** sriov_drivers_autoprobe; null when not asked for (or the kernel has none). */
  autoprobe: boolean | null;
  netdevs: string[];
  vfs: VirtualFunction[];
  held: HeldDevice[];
  /** /run/libvirt/qemu exists but could not be read: holders unknown. */
  heldUnknown: boolean;
  /** VF settings as `ip link` shows them; null when not read (no VF settings asked, or no netdev). */
  vfSettings: Record<number, VfState> | null;
  rule: string | null;
}

export const devicePath = (address: string): string => `/sys/bus/pci/devices/${address}`;
export const numvfsPath = (address: string): string => `${devicePath(address)}/sriov_numvfs`;
export const autoprobePath = (address: string): string => `${devicePath(address)}/sriov_drivers_autoprobe`;
/** How sysfs and the rule write a boolean attribute. */
const bit = (on: boolean): '1' | '0' => (on ? '1' : '0');

/** The owned rule file, named after what the task names (`:` and `.` spelled `-`). */
export function rulePath(params: Pick<SriovParams, 'pci' | 'interface'>): string {
  return `/etc/udev/rules.d/70-kvmconf-sriov-${(params.pci ?? params.interface ?? '').replace(/[:.]/g, '-')}.rules`;
}

/**
 * The rule: the count written when the PF's driver binds, then (RUN runs after every
 * ATTR assignment) each VF's settings through the PF's netdev, by its name now. `add`
 * too: a driver bound in the initramfs (an NVMe boot disk, a NIC with MODULES=most) sent
 * its bind event before this rule was there, and the boot's coldplug replays only `add`
 * events. DRIVER=="?*" skips a hotplug `add`, where no driver is bound yet and the write
 * would fail (the bind event that follows sets it); a count the PF has already is taken
 * by the kernel without EBUSY, so add and bind both matching is harmless.
 */
export function renderRule(address: string, numvfs: number, netdev: string | null, vfs: Record<number, VfSettings>, autoprobe: boolean | null = null): string {
  const runs = Object.entries(vfs).map(([vf, settings]) => `, RUN+="/sbin/ip link set dev ${netdev} vf ${vf} ${vfArguments(settings).join(' ')}"`);
  // udev assigns ATTRs in the order written: autoprobe before the VFs it applies to are made.
  const probe = autoprobe === null ? '' : `ATTR{sriov_drivers_autoprobe}="${bit(autoprobe)}", `;
  return `# Managed by kvmconf (sriov); edits here are overwritten.\nACTION=="add|bind", SUBSYSTEM=="pci", KERNEL=="${address}", DRIVER=="?*", ${probe}ATTR{sriov_numvfs}="${numvfs}"${runs.join('')}\n`;
}

/** kc_uev FILE: DRIVER= and PCI_SLOT_NAME= of a PCI device's uevent into kc_drv and kc_slot, builtins only. */
const UEVENT_FN = `kc_uev() { kc_drv=; kc_slot=; [ -r "$1" ] || return 1; while IFS='=' read -r kc_k kc_x; do case $kc_k in DRIVER) kc_drv=$kc_x ;; PCI_SLOT_NAME) kc_slot=$kc_x ;; esac; done < "$1"; } 2>/dev/null`;

export function sriovProbe(params: SriovParams, mark = `@@${randomBytes(8).toString('hex')}@`): string {
  const out = (key: string, format = '', ...args: string[]) => `printf '${mark}${key}${format ? ` ${format}` : ''}\\n'${args.map((a) => ` ${a}`).join('')}`;
  const locate = params.pci !== null
    ? `kc_sd=${quote(devicePath(params.pci))}`
    : `kc_sd=; if kc_uev ${quote(`/sys/class/net/${params.interface}/device/uevent`)} && [ -n "$kc_slot" ]; then kc_sd=/sys/bus/pci/devices/$kc_slot; fi`;
  const wantsVfs = Object.keys(params.vfs).length > 0;
  return [
    `printf '${HEADER}\\t%s\\n' '${mark}'`,
    READ_FN,
    UEVENT_FN,
    locate,
    `kc_n=`,
    `if [ -n "$kc_sd" ] && [ -d "$kc_sd" ]; then`,
    `  ${out('pf', '%s', '"${kc_sd##*/}"')}`,
    `  kc_uev "$kc_sd/uevent"; ${out('driver', '%s', '"$kc_drv"')}`,
    `  kc_read "$kc_sd/numa_node" && ${out('node', '%s', '"$kc_v"')}`,
    `  kc_read "$kc_sd/sriov_totalvfs" && ${out('total', '%s', '"$kc_v"')}`,
    `  kc_read "$kc_sd/sriov_numvfs" && ${out('numvfs', '%s', '"$kc_v"')}`,
    // read only when asked: the probe (and its recorded fixtures) of a task without it stay as they were
    ...(params.autoprobe !== null ? [`  kc_read "$kc_sd/sriov_drivers_autoprobe" && ${out('autoprobe', '%s', '"$kc_v"')}`] : []),
    `  for kc_f in "$kc_sd"/net/*; do [ -e "$kc_f" ] || continue; kc_n=\${kc_n:-\${kc_f##*/}}; ${out('netdev', '%s', '"${kc_f##*/}"')}; done`,
    // a VF's address and driver from its uevent: a link resolved without readlink's process per VF
    `  for kc_f in "$kc_sd"/virtfn*; do [ -e "$kc_f" ] || continue; kc_uev "$kc_f/uevent"; ${out('vf', '%s %s %s', '"${kc_f##*virtfn}"', '"$kc_slot"', '"$kc_drv"')}; done`,
    `else ${out('missing')}; fi`,
    hostdevProbe(`${mark}held`),
    ...(wantsVfs ? [`if [ -n "$kc_n" ] && command -v ip >/dev/null 2>&1; then ${out('iplink')}; ip -o link show dev "$kc_n" 2>/dev/null; echo; ${out('end')}; fi`] : []),
    out('rule'),
    catFileProbe(rulePath(params)),
  ].join('\n');
}

const numberOrNull = (text: string | undefined): number | null => (text !== undefined && /^-?\d+$/.test(text.trim()) ? Number(text) : null);

export function parseSriov(output: string, params: SriovParams): SriovState {
  const lines = output.split('\n');
  const header = lines[0]?.split('\t');
  if (header?.[0] !== HEADER || !/^@@[0-9a-f]{16}@$/.test(header[1] ?? '')) throw new Error('sriov probe output has no marker line');
  const mark = header[1]!;
  const ruleAt = output.indexOf(`\n${mark}rule\n`);
  if (ruleAt < 0) throw new Error('sriov probe output is truncated');
  const state: SriovState = {
    device: null, missing: null, driver: null, node: null, total: null, numvfs: null, autoprobe: null, netdevs: [], vfs: [], held: [], heldUnknown: false, vfSettings: null,
    rule: parseFileBlock(output.slice(ruleAt + `\n${mark}rule\n`.length)),
  };
  const body = output.slice(0, ruleAt).split('\n');
  for (let i = 1; i < body.length; i++) {
    const line = body[i]!;
    if (!line.startsWith(mark)) continue;
    const [key = '', ...rest] = line.slice(mark.length).split(/[ \t]/);
    if (key === 'iplink') {
      const end = body.indexOf(`${mark}end`, i + 1);
      if (end < 0) throw new Error('sriov probe output is truncated (ip link)');
      state.vfSettings = parseVfLines(body.slice(i + 1, end).join('\n'));
      i = end;
      continue;
    }
    readLine(state, key, rest, line, mark);
  }
  if (!state.device) state.missing = params.pci ?? params.interface;
  state.vfs.sort((x, y) => x.index - y.index);
  return state;
}

function readLine(state: SriovState, key: string, rest: string[], line: string, mark: string): void {
  const [a = '', b = '', c = ''] = rest;
  switch (key) {
    case 'pf': state.device = a; break;
    case 'driver': state.driver = a || null; break;
    case 'node': state.node = numberOrNull(a); break;
    case 'total': state.total = numberOrNull(a); break;
    case 'numvfs': state.numvfs = numberOrNull(a); break;
    case 'autoprobe': state.autoprobe = a === '1' ? true : a === '0' ? false : null; break;
    case 'netdev': state.netdevs.push(a); break;
    case 'vf': state.vfs.push({ index: Number(a), address: b, driver: c || null }); break;
    case 'held-unreadable': state.heldUnknown = true; break;
    case 'held': {
      const held = parseHeld(line.slice(mark.length).split('\t'));
      if (held) state.held.push(held);
      break;
    }
  }
}

/** The errors that stop the task before any write: each names the device and the path. */
function checkDevice(params: SriovParams, actual: SriovState): string {
  if (!actual.device) {
    if (params.interface !== null) throw new Error(`interface ${params.interface} has no PCI device on this host (/sys/class/net/${params.interface}/device is absent or no PCI device)`);
    throw new Error(`PCI device ${params.pci} does not exist on this host (${devicePath(params.pci!)} is absent)`);
  }
  const address = actual.device;
  if (actual.total === null || actual.numvfs === null) throw new Error(`${address} is not an SR-IOV physical function: ${devicePath(address)}/sriov_totalvfs is absent`);
  if (params.numvfs > actual.total) throw new Error(`numvfs ${params.numvfs}: ${address} offers at most ${actual.total} VFs (${devicePath(address)}/sriov_totalvfs)`);
  if (params.numvfs !== actual.numvfs && !actual.driver) {
    throw new Error(`no driver is bound to ${address}: the kernel takes ${numvfsPath(address)} only from the PF's driver; bind one first`);
  }
  return address;
}

/**
 * Two tasks of one PF, one naming its interface and one its PCI address, would each write
 * a rule and a count of their own and undo each other at every run. The task naming the
 * interface resolves it here, so it refuses; a failed plan changes nothing on the host.
 */
function checkOnePfTask(params: SriovParams, address: string, tasks: PlanContext['tasks']): void {
  if (params.interface === null) return;
  const other = tasks.find((task) => task.module === MODULE && (task.params as SriovParams).pci === address);
  if (other) throw new Error(`interface ${params.interface} is PF ${address}, which task '${other.name}' manages too (by its PCI address): name the PF in one sriov task`);
}

/** A count change destroys every VF there is: refused while a running domain holds one. */
function checkNotHeld(address: string, wanted: number, actual: SriovState): void {
  if (!actual.numvfs) return;
  if (actual.heldUnknown) throw new Error(`cannot tell whether a running domain holds a VF of ${address}: ${LIBVIRT_STATUS_DIR} is not readable (run with become)`);
  const held = actual.vfs.flatMap((vf) => actual.held.filter((h) => h.address === vf.address).map((h) => `VF ${vf.index} (${vf.address}) is held by running domain '${h.domain}'`));
  if (held.length) throw new Error(`cannot change ${numvfsPath(address)} from ${actual.numvfs} to ${wanted}: ${held.join('; ')}; the kernel destroys every VF on a change: stop the guests or detach their VFs first`);
}

/** Apply-time guard: the count is still what the plan read (a count change destroys the VFs there are). */
function countGuard(address: string, before: number): Command {
  const path = numvfsPath(address);
  return sh`kc_got=$(kc_read_value ${path}); [ "$kc_got" = ${String(before)} ] || kc_fail ${`${path} changed since it was read (${before}, now`} "$kc_got)"`;
}

/**
 * Apply-time guard: no domain started since the gather holds one of the VFs, read by the
 * probe's own awk (KC_LIBVIRT_STATUS_DIR moves the folder, for tests).
 */
export function heldGuard(address: string, vfAddresses: string[]): Command[] {
  return [
    shellCode`set -- "\${KC_LIBVIRT_STATUS_DIR:-/run/libvirt/qemu}"/*.xml; kc_held=`,
    sh`[ ! -e "$1" ] || kc_held=$(awk -v tag=held ${HOSTDEV_PROGRAM} "$@" | grep -F ${words(vfAddresses.flatMap((a) => ['-e', a]))} || :)`,
    sh`[ -z "$kc_held" ] || kc_fail ${`a VF of ${address} is held by a running domain now:`} "$kc_held"`,
  ];
}

/**
 * The kernel reads autoprobe when it makes VFs: first, so a count change in the same run
 * follows it. VFs there already keep (or stay without) their drivers.
 */
function autoprobeChange(params: SriovParams, address: string, actual: SriovState, countChanges: boolean): Change | null {
  if (params.autoprobe === null) return null;
  const path = autoprobePath(address);
  if (actual.autoprobe === null) throw new Error(`autoprobe: ${path} is absent or unreadable (the kernel has it from Linux 4.12)`);
  if (actual.autoprobe === params.autoprobe) return null;
  const drivers = params.autoprobe ? 'stay as they are (no driver bound until re-probed)' : 'keep their host drivers';
  const existing = actual.numvfs && !countChanges ? `the ${actual.numvfs} VFs there are ${drivers}; it applies to VFs made from now on` : undefined;
  return {
    module: MODULE, target: path, scope: 'runtime', before: bit(actual.autoprobe), after: bit(params.autoprobe),
    ...(existing ? { reason: existing } : {}),
    commands: [sh`kc_set_value ${path} ${bit(params.autoprobe)}`],
  };
}

function numvfsChange(params: SriovParams, address: string, actual: SriovState): Change | null {
  const before = actual.numvfs!;
  if (before === params.numvfs) return null;
  checkNotHeld(address, params.numvfs, actual);
  const path = numvfsPath(address);
  const through = before > 0 && params.numvfs > 0;
  const commands: Command[] = [
    countGuard(address, before),
    ...(before > 0 && actual.vfs.length ? heldGuard(address, actual.vfs.map((vf) => vf.address)) : []),
    // the kernel refuses N while M > 0 VFs exist (EBUSY): 0 first
    ...(through ? [sh`kc_write_value ${path} 0`] : []),
    sh`kc_set_value ${path} ${String(params.numvfs)}`,
  ];
  const reason = through ? `through 0: the kernel changes a non-zero count only so; VFs 0-${before - 1} are destroyed and created again, their settings reset` : undefined;
  return { module: MODULE, target: path, scope: 'runtime', before: String(before), after: String(params.numvfs), ...(reason ? { reason } : {}), commands };
}

/** The PF's netdev that takes the VF settings; an error when VF settings are asked of a PF without one. */
function netdevOf(params: SriovParams, address: string, actual: SriovState): string | null {
  if (!Object.keys(params.vfs).length) return null;
  const netdev = params.interface ?? actual.netdevs[0];
  if (!netdev) throw new Error(`vfs: ${address} (driver ${actual.driver ?? 'none'}) has no network interface; VF MAC/VLAN/spoofchk/trust are set through a network PF's netdev`);
  if (!new RegExp(IFACE_PATTERN).test(netdev)) throw new Error(`vfs: ${address}'s interface name ${JSON.stringify(netdev)} cannot be written in a udev rule`);
  if (actual.vfSettings === null) throw new Error(`vfs: cannot read the VFs of ${netdev}: ip (iproute2) is not installed on this host`);
  return netdev;
}

function vfChanges(params: SriovParams, netdev: string | null, actual: SriovState, reset: boolean): Change[] {
  if (netdev === null) return [];
  return Object.entries(params.vfs).flatMap(([key, wanted]): Change[] => {
    const vf = Number(key);
    const current = reset ? undefined : actual.vfSettings?.[vf];
    const stale = staleSettings(wanted, current);
    const keys = Object.keys(stale) as Array<keyof VfSettings>;
    if (!keys.length) return [];
    return [{ module: MODULE, target: `${netdev} vf ${vf}`, scope: 'runtime', before: describe(current, keys), after: describe(stale, keys), commands: vfCommands(netdev, vf, stale) }];
  });
}

function ruleChange(params: SriovParams, address: string, netdev: string | null, actual: SriovState): Change | null {
  const path = rulePath(params);
  const content = params.persist && params.numvfs > 0 ? renderRule(address, params.numvfs, netdev, params.vfs, params.autoprobe) : null;
  if (actual.rule === content) return null;
  const commands: Command[] = [content === null ? removeFileCommand(path, actual.rule) : writeFileCommand(path, content, actual.rule), RELOAD_COMMAND];
  const autoprobe = params.autoprobe === null ? '' : ` (autoprobe ${bit(params.autoprobe)})`;
  const after = content === null ? null : `sriov_numvfs=${params.numvfs}${autoprobe} on bind${Object.keys(params.vfs).length ? ` with ${Object.keys(params.vfs).length} VF setting(s)` : ''}`;
  return { module: MODULE, target: path, scope: 'persist', before: actual.rule === null ? null : 'present', after, diff: fileDiff(path, actual.rule, content), commands };
}

export const sriov = defineModule<SriovParams, SriovState>({
  name: MODULE,
  summary: 'SR-IOV VFs of a PF: sriov_numvfs (through 0, refused while a running domain holds a VF), VF mac/vlan/spoofchk/trust, persisted by a udev bind rule',
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['numvfs'],
    oneOf: [{ required: ['pci'] }, { required: ['interface'] }],
    properties: {
      pci: { type: 'string', pattern: PCI_PATTERN, description: 'the PF\'s PCI address, 0000:03:00.0' },
      interface: { type: 'string', pattern: IFACE_PATTERN, description: 'a netdev whose device is the PF' },
      numvfs: { type: 'integer', minimum: 0, maximum: 65535, description: 'VFs to enable; 0 disables SR-IOV' },
      persist: { type: 'boolean', description: 'keep the count and VF settings in a udev rule (default true)' },
      autoprobe: { type: 'boolean', description: 'sriov_drivers_autoprobe: false makes VFs without binding a host driver (VFs for vfio-pci passthrough); unset: left as it is' },
      vfs: {
        type: 'object', maxProperties: 256,
        propertyNames: { pattern: '^(0|[1-9][0-9]{0,4})$' },
        additionalProperties: {
          type: 'object', additionalProperties: false, minProperties: 1,
          properties: {
            mac: { type: 'string', pattern: MAC_PATTERN },
            vlan: { type: 'integer', minimum: 0, maximum: 4095, description: '0 removes the VLAN' },
            qos: { type: 'integer', minimum: 0, maximum: 7, description: '802.1p priority, with vlan' },
            spoofchk: { type: 'boolean' },
            trust: { type: 'boolean' },
          },
        },
        description: 'VF number -> settings set through the PF\'s netdev (ip link set dev PF vf N ...)',
      },
    },
  },

  normalize(raw) {
    const input = raw as { pci?: string; interface?: string; numvfs: number; persist?: boolean; autoprobe?: boolean; vfs?: Record<string, VfSettings> };
    const who = input.pci ?? `interface ${input.interface}`;
    const vfs: Record<number, VfSettings> = {};
    for (const [key, settings] of Object.entries(input.vfs ?? {}).sort(([a], [b]) => Number(a) - Number(b))) {
      const vf = Number(key);
      if (vf >= input.numvfs) throw new InputError(`sriov ${who}: vfs.${key}: there is no VF ${key} with numvfs ${input.numvfs}`);
      const mac = settings.mac?.toLowerCase();
      // the kernel refuses a multicast address for a VF (EINVAL): said before any connection
      if (mac && parseInt(mac.slice(0, 2), 16) & 1) throw new InputError(`sriov ${who}: vfs.${key}.mac ${mac} is a multicast address; a VF needs a unicast one`);
      if (settings.qos && settings.vlan === undefined) throw new InputError(`sriov ${who}: vfs.${key}.qos needs vlan (the priority is part of the VLAN tag)`);
      vfs[vf] = { ...settings, ...(mac ? { mac } : {}) };
    }
    return { pci: input.pci ?? null, interface: input.interface ?? null, numvfs: input.numvfs, persist: input.persist ?? true, autoprobe: input.autoprobe ?? null, vfs };
  },

  claims: (params): Claim[] => [
    { kind: 'file', path: rulePath(params) },
    ...(params.pci !== null ? [{ kind: 'sysfs', path: numvfsPath(params.pci), value: String(params.numvfs) } as Claim] : []),
    ...(params.pci !== null && params.autoprobe !== null ? [{ kind: 'sysfs', path: autoprobePath(params.pci), value: bit(params.autoprobe) } as Claim] : []),
  ],

  probe: (params) => sriovProbe(params),
  parse: (output, params) => parseSriov(output, params),

  diff(params, actual, context) {
    const address = checkDevice(params, actual);
    checkOnePfTask(params, address, context.tasks);
    const netdev = netdevOf(params, address, actual);
    const count = numvfsChange(params, address, actual);
    const autoprobe = autoprobeChange(params, address, actual, count !== null);
    return [autoprobe, count, ...vfChanges(params, netdev, actual, count !== null), ruleChange(params, address, netdev, actual)].filter((c): c is Change => c !== null);
  },
});
