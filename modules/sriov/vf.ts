/**
 * Per-VF settings of a network PF, as `ip link set dev PF vf N ...` sets them and
 * `ip -o link show dev PF` prints them. The format is iproute2's print_vfinfo (the same
 * from 4.x to 6.x): with -o every line of the device joins into one, parts separated by
 * a backslash, and each VF is one part:
 *
 *   vf 0     link/ether 52:54:00:aa:bb:01 brd ff:ff:ff:ff:ff:ff, vlan 10, qos 2, spoof checking off, link-state auto, trust on
 *
 * A VLAN or qos of 0 is not printed; `spoof checking` and `trust` are absent when the
 * driver does not report them.
 */
import { sh, inline, words, type Command } from '../../src/kit/index.js';

export interface VfSettings {
  mac?: string;
  vlan?: number;
  qos?: number;
  spoofchk?: boolean;
  trust?: boolean;
}

/** What `ip link` reports of one VF; a setting the driver does not report is absent. */
export interface VfState {
  mac: string;
  vlan: number;
  qos: number;
  spoofchk?: boolean;
  trust?: boolean;
}

const onOff = (value: string | undefined): boolean | undefined => (value === undefined ? undefined : value === 'on');

/** The VFs of `ip -o link show dev PF` output, by VF number. */
export function parseVfLines(output: string): Record<number, VfState> {
  const vfs: Record<number, VfState> = {};
  for (const part of output.split(/\\|\n/)) {
    const head = /^\s*vf (\d+)\s+link\/\S+ ([0-9a-fA-F:]+)/.exec(part);
    if (!head) continue;
    const word = (pattern: RegExp) => pattern.exec(part)?.[1];
    const state: VfState = { mac: head[2]!.toLowerCase(), vlan: Number(word(/, vlan (\d+)/) ?? 0), qos: Number(word(/, qos (\d+)/) ?? 0) };
    const spoofchk = onOff(word(/, spoof checking (on|off)/));
    const trust = onOff(word(/, trust (on|off)/));
    if (spoofchk !== undefined) state.spoofchk = spoofchk;
    if (trust !== undefined) state.trust = trust;
    vfs[Number(head[1])] = state;
  }
  return vfs;
}

/** The settings asked that the VF does not have now (all of them for a VF not there yet). */
export function staleSettings(wanted: VfSettings, current: VfState | undefined): VfSettings {
  const stale: VfSettings = {};
  const same = (key: keyof VfSettings) => current !== undefined && current[key] === wanted[key];
  if (wanted.mac !== undefined && !same('mac')) stale.mac = wanted.mac;
  // vlan and qos are one netlink attribute: set together, or the kernel resets qos to 0.
  if ((wanted.vlan !== undefined && !same('vlan')) || (wanted.qos !== undefined && !same('qos'))) {
    stale.vlan = wanted.vlan ?? current?.vlan ?? 0;
    if (wanted.qos !== undefined) stale.qos = wanted.qos;
  }
  if (wanted.spoofchk !== undefined && !same('spoofchk')) stale.spoofchk = wanted.spoofchk;
  if (wanted.trust !== undefined && !same('trust')) stale.trust = wanted.trust;
  return stale;
}

/** The arguments after `vf N`, in the order ip takes them. */
export function vfArguments(settings: VfSettings): string[] {
  const out: string[] = [];
  if (settings.mac !== undefined) out.push('mac', settings.mac);
  if (settings.vlan !== undefined) out.push('vlan', String(settings.vlan));
  if (settings.qos !== undefined && settings.qos > 0) out.push('qos', String(settings.qos));
  if (settings.spoofchk !== undefined) out.push('spoofchk', settings.spoofchk ? 'on' : 'off');
  if (settings.trust !== undefined) out.push('trust', settings.trust ? 'on' : 'off');
  return out;
}

/** `mac=..., vlan=...` for a change line; null for a VF that does not exist yet. */
export function describe(settings: VfSettings | VfState | undefined, keys: ReadonlyArray<keyof VfSettings>): string | null {
  if (!settings) return null;
  return keys.map((key) => {
    const value = settings[key];
    return `${key}=${value === undefined ? '(not reported)' : typeof value === 'boolean' ? (value ? 'on' : 'off') : value}`;
  }).join(' ');
}

/**
 * Case patterns the VF's part of `ip -o link show` must match once set: the MAC before
 * ` brd`, `, vlan N` ended by a comma or the line, the on/off words.
 */
function readBackPatterns(settings: VfSettings): Array<{ what: string; match: string[]; absent?: boolean }> {
  const checks: Array<{ what: string; match: string[]; absent?: boolean }> = [];
  if (settings.mac !== undefined) checks.push({ what: `mac ${settings.mac}`, match: [`link/ether ${settings.mac} `, `link/ether ${settings.mac}`] });
  if (settings.vlan !== undefined) {
    checks.push(settings.vlan === 0 ? { what: 'no vlan', match: [', vlan '], absent: true } : { what: `vlan ${settings.vlan}`, match: [`, vlan ${settings.vlan},`, `, vlan ${settings.vlan}`] });
  }
  if (settings.qos !== undefined && settings.qos > 0) checks.push({ what: `qos ${settings.qos}`, match: [`, qos ${settings.qos},`, `, qos ${settings.qos}`] });
  if (settings.spoofchk !== undefined) checks.push({ what: `spoof checking ${settings.spoofchk ? 'on' : 'off'}`, match: [`, spoof checking ${settings.spoofchk ? 'on' : 'off'}`] });
  if (settings.trust !== undefined) checks.push({ what: `trust ${settings.trust ? 'on' : 'off'}`, match: [`, trust ${settings.trust ? 'on' : 'off'}`] });
  return checks;
}

/**
 * `ip link set`, then the VF's part of `ip -o link show` read back: every setting asked
 * must show, or the step fails naming what the driver did not take (some refuse trust or
 * spoofchk silently on old firmware). The first match of each pair is inside the line,
 * the second at its end (the lowercase MAC as ip prints it).
 */
export function vfCommands(pf: string, vf: number, settings: VfSettings): Command[] {
  const set = sh`ip link set dev ${pf} vf ${vf} ${words(vfArguments(settings))}`;
  const read = sh`kc_got=$(ip -o link show dev ${pf} | tr '\\\\' '\\n' | grep -E ${`^ *vf ${vf} `}) || kc_fail ${`${pf} vf ${vf}: not shown by ip link after the change`}`;
  const checks = readBackPatterns(settings).map(({ what, match, absent }) => {
    const [inside = '', atEnd] = match;
    const hit = atEnd === undefined ? sh`*${inside}*` : sh`*${inside}*|*${atEnd}`;
    const fail = sh`kc_fail ${`${pf} vf ${vf}: asked for ${what}, ip link shows:`} "$kc_got"`;
    return absent ? sh`case "$kc_got" in ${inline(hit)}) ${inline(fail)} ;; esac` : sh`case "$kc_got" in ${inline(hit)}) ;; *) ${inline(fail)} ;; esac`;
  });
  return [sh`${inline(set)} || kc_fail ${`ip link set dev ${pf} vf ${vf} failed`}`, read, ...checks];
}
