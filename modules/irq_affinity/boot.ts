/**
 * The boot-time half of irq_affinity: a script and a systemd oneshot unit the task
 * owns. IRQ numbers change between boots and device re-probes, so the script does
 * not replay numbers: it matches the IRQs again (same device, same action glob) and
 * spreads them with the same rule as the planner (see queueIndex in plan.ts).
 */
import { quote } from '../../src/kit/index.js';

const SCRIPT_DIR = '/usr/local/libexec/kvmconf';
const UNIT_DIR = '/etc/systemd/system';

export function scriptPath(name: string): string {
  return `${SCRIPT_DIR}/irq-affinity-${name}`;
}

export function unitFileName(name: string): string {
  return `kvmconf-irq-affinity-${name}.service`;
}

export function unitPath(name: string): string {
  return `${UNIT_DIR}/${unitFileName(name)}`;
}

/** systemd-escape for a path component: `br-lan` -> `br\x2dlan`. */
export function systemdEscape(text: string): string {
  return [...text].map((char, index) => (/[A-Za-z0-9:_]/.test(char) || (char === '.' && index > 0) ? char : `\\x${char.charCodeAt(0).toString(16).padStart(2, '0')}`)).join('');
}

/** The device unit systemd makes for a network interface; it starts the unit again when the NIC comes back. */
export function netDeviceUnit(iface: string): string {
  return `sys-subsystem-net-devices-${systemdEscape(iface)}.device`;
}

export interface BootSpec {
  name: string;
  /** sysfs path of the device whose MSI vectors are pinned; null: every IRQ whose actions match. */
  device: string | null;
  iface: string | null;
  match: string;
  /** One CPU per slot of the round-robin, in order. */
  cpus: number[];
  /** What the unit's Description says. */
  what: string;
}

/**
 * Lists the IRQ numbers of a device's MSI vectors (or its legacy irq) in "$@", or every
 * IRQ when no device is given. Shared by the probe and the boot script so both see the same set.
 */
export function irqListShell(device: string | null, indent = ''): string[] {
  if (device === null) return [`${indent}set --; for kc_i in /proc/irq/[0-9]*; do [ -d "$kc_i" ] && set -- "$@" "\${kc_i##*/}"; done`];
  return [
    `${indent}kc_dev=${quote(device)}`,
    `${indent}set --`,
    `${indent}if [ -e "$kc_dev" ]; then`,
    // A virtio NIC's device is the virtio bus device; its vectors belong to the PCI function above it.
    `${indent}  kc_dev=$(cd -P "$kc_dev" && pwd); [ -d "$kc_dev/msi_irqs" ] || kc_dev=\${kc_dev%/*}`,
    `${indent}  for kc_i in "$kc_dev"/msi_irqs/*; do [ -e "$kc_i" ] && set -- "$@" "\${kc_i##*/}"; done`,
    `${indent}  if [ "$#" -eq 0 ] && [ -r "$kc_dev/irq" ]; then read -r kc_i < "$kc_dev/irq" && [ "$kc_i" != 0 ] && set -- "$kc_i"; fi`,
    `${indent}fi`,
  ];
}

/** The awk program that gives each matched IRQ (lines `IRQ ACTIONS`, sorted by IRQ) its CPU; mirrors assignCpus(). */
export const ASSIGN_AWK =
  'BEGIN { n = split(cpus, c, ","); k = 0 } ' +
  '{ a = $0; sub(/^[0-9]+ /, "", a); sub(/,.*/, "", a); sub(/@.*/, "", a); ' +
  'if (match(a, /[0-9]+$/)) q = substr(a, RSTART) + 0; else q = k++; print $1, c[q % n + 1] }';

export function renderScript(spec: BootSpec): string {
  return [
    '#!/bin/sh',
    `# Managed by kvmconf (irq_affinity ${spec.name}); edits here are overwritten.`,
    '# Pins the IRQs again at boot and when the device comes back: IRQ numbers are not',
    '# stable, so they are matched again by device and action name, then spread queue i to CPU i.',
    `kc_match=${quote(spec.match)}`,
    `kc_cpus=${spec.cpus.join(',')}`,
    ...irqListShell(spec.device),
    ...(spec.device === null ? [] : [`[ "$#" -gt 0 ] || { echo ${quote(`${spec.device}: no IRQs (device absent?); nothing to pin`)} >&2; exit 0; }`]),
    'for kc_n in "$@"; do',
    '  kc_a=$(cat "/sys/kernel/irq/$kc_n/actions" 2>/dev/null) && [ -n "$kc_a" ] || continue',
    '  [ -r "/proc/irq/$kc_n/smp_affinity_list" ] || continue',
    '  case "$kc_a" in $kc_match) printf \'%s %s\\n\' "$kc_n" "$kc_a" ;; esac',
    `done | sort -n | awk -v cpus="$kc_cpus" ${quote(ASSIGN_AWK)} | {`,
    '  kc_rc=0',
    '  while read -r kc_n kc_c; do',
    '    if ! printf \'%s\\n\' "$kc_c" > "/proc/irq/$kc_n/smp_affinity_list"; then echo "IRQ $kc_n: the kernel refused CPU $kc_c (managed IRQ?)" >&2; kc_rc=1; fi',
    '  done',
    '  exit $kc_rc',
    '}',
    '',
  ].join('\n');
}

export function renderUnit(spec: BootSpec): string {
  const device = spec.iface ? netDeviceUnit(spec.iface) : null;
  return [
    `# Managed by kvmconf (irq_affinity ${spec.name}); edits here are overwritten.`,
    '[Unit]',
    `Description=kvmconf: pin the IRQs of ${spec.what}`,
    // After irqbalance so its first placement at boot does not have the last word.
    `After=systemd-udevd.service systemd-modules-load.service irqbalance.service${device ? ` ${device}` : ''}`,
    '',
    '[Service]',
    'Type=oneshot',
    `ExecStart=${scriptPath(spec.name)}`,
    '',
    '[Install]',
    // The device unit wants it too, so a NIC that is re-probed (new IRQ numbers) is pinned again.
    `WantedBy=multi-user.target${device ? ` ${device}` : ''}`,
    '',
  ].join('\n');
}
