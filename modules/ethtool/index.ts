/**
 * ethtool (inside guests): the number of combined channels (queues) of a multi-queue
 * virtio-net interface. Live through `ethtool -L IFACE combined M` with a read-back;
 * persisted by an owned udev rule that runs ethtool when the interface appears.
 *
 * Why udev and not a systemd .link file: udev applies only the FIRST .link file that
 * matches an interface, so a kvmconf .link sorting before 99-default.link would drop
 * the default NamePolicy and silently rename interfaces (enp1s0 -> eth0) at the next
 * boot; a udev rule adds to the existing rules and needs no systemd >= 239.
 * The rule sorts after 80-net-setup-link.rules so that NAME (the predictable name) is
 * set when it is matched; a second line covers interfaces udev does not rename.
 */
import { defineModule, fileDiff, catFileProbe, parseFileBlock, writeFileCommand, sh, type Change, type Command, fileClaims } from '../../src/kit/index.js';

/** Interface names (IFNAMSIZ 15) or shell/udev globs over them. */
export const IFACE_PATTERN = '^[A-Za-z0-9_.*?-]{1,15}$';

export interface EthtoolParams {
  interface: string;
  combined: number;
  persist: boolean;
}

export interface Channels {
  maxCombined: number | null;
  combined: number | null;
}

export interface EthtoolState {
  ethtool: string | null;
  /** Per matching interface: its channels, or null when the driver has no channel support. */
  interfaces: Record<string, Channels | null>;
  rule: string | null;
}

export function rulePath(iface: string): string {
  return `/etc/udev/rules.d/81-kvmconf-ethtool-${iface.replace(/\*/g, 'all').replace(/\?/g, 'any')}.rules`;
}

export function renderRule(iface: string, combined: number, ethtool: string): string {
  const run = `RUN+="${ethtool} -L $name combined ${combined}"`;
  return [
    '# Managed by kvmconf (ethtool); edits here are overwritten.',
    `ACTION=="add", SUBSYSTEM=="net", NAME=="${iface}", ${run}`,
    `ACTION=="add", SUBSYSTEM=="net", NAME=="", KERNEL=="${iface}", ${run}`,
    '',
  ].join('\n');
}

/** `ethtool -l` output: the Combined line under "Pre-set maximums" and under "Current hardware settings". */
export function parseChannels(text: string): Channels | null {
  if (!/Pre-set maximums/.test(text)) return null;
  const [max = '', current = ''] = text.split(/Current hardware settings:/);
  const combined = (part: string) => {
    const match = /^Combined:\s*(\S+)/m.exec(part);
    return match && /^\d+$/.test(match[1]!) ? Number(match[1]) : null;
  };
  return { maxCombined: combined(max), combined: combined(current) };
}

export const ethtool = defineModule<EthtoolParams, EthtoolState>({
  name: 'ethtool',
  summary: 'multi-queue virtio-net channels inside a guest (ethtool -L), persisted by a udev rule',
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['interface', 'combined'],
    properties: {
      interface: { type: 'string', pattern: IFACE_PATTERN, not: { enum: ['.', '..'] } },
      combined: { type: 'integer', minimum: 1, maximum: 1024 },
      persist: { type: 'boolean' },
    },
  },
  normalize: (raw) => ({ persist: true, ...(raw as Omit<EthtoolParams, 'persist'>) }),

  claims: (params) => fileClaims(params.persist ? [rulePath(params.interface)] : []),

  probe: (params) => {
    if (!new RegExp(IFACE_PATTERN).test(params.interface)) throw new Error(`bad interface name ${params.interface}`);
    return [
      `echo "ethtool=$(command -v ethtool)"`,
      `for kc_i in $(ls /sys/class/net); do case "$kc_i" in ${params.interface}) ;; *) continue ;; esac`,
      `  printf '@@iface %s\\n' "$kc_i"; ethtool -l "$kc_i" 2>&1; echo '@@iface-end'`,
      `done`,
      `echo '@@rule'`,
      catFileProbe(rulePath(params.interface)),
    ].join('\n');
  },

  parse(output) {
    const [head = '', rule = ''] = output.split('@@rule\n');
    const state: EthtoolState = { ethtool: /^ethtool=(\/\S+)$/m.exec(head)?.[1] ?? null, interfaces: {}, rule: parseFileBlock(rule) };
    for (const block of head.split('@@iface ').slice(1)) {
      const name = block.slice(0, block.indexOf('\n'));
      state.interfaces[name] = parseChannels(block.slice(name.length + 1).split('@@iface-end')[0]!);
    }
    return state;
  },

  diff(params, actual, context) {
    const names = Object.keys(actual.interfaces);
    if (!names.length) throw new Error(`no network interface matches '${params.interface}'`);
    if (!actual.ethtool) throw new Error('ethtool is not installed in this guest');
    const changes: Change[] = [];
    for (const name of names) {
      const channels = actual.interfaces[name];
      if (!channels || channels.maxCombined === null || channels.combined === null) {
        if (params.interface === name) throw new Error(`${name}: the driver has no combined channels (ethtool -l); is it a multi-queue virtio-net NIC?`);
        context.warn(`${name}: no combined channels (skipped)`);
        continue;
      }
      if (params.combined > channels.maxCombined) {
        throw new Error(
          `${name}: combined ${params.combined} is above the pre-set maximum ${channels.maxCombined} (the hypervisor's virtio-net queues for this NIC; more queues take a guest restart after the domain is changed)`,
        );
      }
      if (params.combined < channels.maxCombined) {
        context.warn(`${name}: ${params.combined} combined channels for the ${channels.maxCombined} queues the hypervisor gives this NIC; the other queues stay idle`);
      }
      if (channels.combined !== params.combined) {
        changes.push({
          module: 'ethtool', target: `${name}:combined`, scope: 'runtime', before: String(channels.combined), after: String(params.combined),
          commands: setChannelsCommands(name, params.combined),
        });
      }
    }
    const path = rulePath(params.interface);
    const rule = params.persist ? renderRule(params.interface, params.combined, actual.ethtool) : null;
    if (params.persist && rule !== actual.rule) {
      changes.push({
        module: 'ethtool', target: path, scope: 'persist', before: actual.rule === null ? null : 'present', after: `combined ${params.combined} on add`,
        diff: fileDiff(path, actual.rule, rule),
        commands: [writeFileCommand(path, rule!, actual.rule)],
      });
    }
    return changes;
  },

});

/** `ethtool -L`, read back from the device: a driver that grants fewer channels fails the step. */
function setChannelsCommands(iface: string, combined: number): Command[] {
  return [
    sh`ethtool -L ${iface} combined ${combined}`,
    sh`kc_got=$(ethtool -l ${iface} | awk '/^Current hardware settings/ {c = 1} c && /^Combined:/ {print $2}')`,
    sh`[ "$kc_got" = ${combined} ] || kc_fail ${`${iface}:combined: asked for ${combined} combined channels, the device has`} "$kc_got"`,
  ];
}
