/**
 * Sysctl persistence shared by every module that persists through /etc/sysctl.d
 * (sysctl, hugepages, numa_balancing): each task owns one whole file, rendered
 * canonically, and the boot-time load order is read so a later file that overrides
 * ours is reported instead of silently winning at the next boot.
 */
import { quote } from '../../src/shell.js';
import { catFileProbe, parseFileBlock, writeFileCommand } from '../../src/engine/remote-lib.js';

/** Directories systemd-sysctl reads, highest priority first for files of the same name. */
const SYSCTL_DIRS = ['/etc/sysctl.d', '/run/sysctl.d', '/usr/local/lib/sysctl.d', '/usr/lib/sysctl.d', '/lib/sysctl.d'];

export const SYSCTL_KEY_PATTERN = '^(?!.*\\.\\.)(?!.*//)[a-z0-9_][a-zA-Z0-9_.:/-]*[a-zA-Z0-9_]$';
/** Values are numbers or short words separated by spaces: nothing a shell could read as syntax. */
export const SYSCTL_VALUE_PATTERN = '^[A-Za-z0-9_.:,/+ -]*$';
export const SYSCTL_FILE_PATTERN = '^/etc/sysctl\\.d/[A-Za-z0-9_.-]+\\.conf$';

/** `vm.swappiness` -> /proc/sys/vm/swappiness; a key written with slashes keeps dots in names (eth0.1). */
export function sysctlPath(key: string): string {
  return '/proc/sys/' + (key.includes('/') ? key : key.replace(/\./g, '/'));
}

/** The form the kernel prints, whitespace folded, so "4096  87380\t6291456" never flaps. */
export function canonicalValue(value: string | number): string {
  return String(value).trim().split(/\s+/).join(' ');
}

export interface SysctlState {
  /** Live values by key; null when the kernel has no such key. */
  runtime: Record<string, string | null>;
  /** Content of the file this task owns, null when absent. */
  file: string | null;
  /** For each key, the file that sets it last at boot, with its value. */
  lastSetBy: Record<string, { file: string; value: string }>;
}

/** Probe printing live values, the owned file, and every boot-time sysctl file's settings in load order. */
export function sysctlProbe(keys: string[], file: string): string {
  const runtime = keys.map((key) => {
    const path = quote(sysctlPath(key));
    return `if [ -r ${path} ]; then printf 'runtime %s ' ${quote(key)}; kc_v=$(tr '\\t\\n' '  ' < ${path}); echo "$kc_v"; else printf 'missing %s\\n' ${quote(key)}; fi`;
  });
  const dirs = SYSCTL_DIRS.join(' ');
  return [
    ...runtime,
    // Unique basenames in sorted order, each from the first directory that has it; then /etc/sysctl.conf.
    `{ for kc_f in $(for kc_d in ${dirs}; do ls "$kc_d" 2>/dev/null | grep '\\.conf$'; done | sort -u); do`,
    `  for kc_d in ${dirs}; do if [ -f "$kc_d/$kc_f" ]; then echo "$kc_d/$kc_f"; break; fi; done`,
    `done; echo /etc/sysctl.conf; } | while read -r kc_p; do`,
    `  [ -f "$kc_p" ] && awk -v f="$kc_p" '/^[ \t]*[#;]/ {next} /=/ {k=$0; sub(/=.*/, "", k); v=$0; sub(/^[^=]*=/, "", v); gsub(/^[ \t-]+|[ \t]+$/, "", k); gsub(/^[ \t]+|[ \t]+$/, "", v); print "setting", f, k, v}' "$kc_p"`,
    `done`,
    `echo '@@owned'`,
    catFileProbe(file),
  ].join('\n');
}

/** sysctl.d lets keys use / or . as separator; compare them in dotted form. */
function dotted(key: string): string {
  return key.replace(/\//g, '.');
}

export function parseSysctlProbe(output: string, keys: string[]): SysctlState {
  const owned = output.indexOf('@@owned\n');
  if (owned < 0) throw new Error('sysctl probe output is truncated');
  const state: SysctlState = { runtime: {}, file: parseFileBlock(output.slice(owned + '@@owned\n'.length)), lastSetBy: {} };
  const wanted = new Map(keys.map((key) => [dotted(key), key]));
  for (const line of output.slice(0, owned).split('\n')) {
    const [kind, key = '', ...rest] = line.split(' ');
    if (kind === 'runtime') state.runtime[key] = canonicalValue(rest.join(' '));
    else if (kind === 'missing') state.runtime[key] = null;
    else if (kind === 'setting' && wanted.has(dotted(rest[0] ?? ''))) {
      state.lastSetBy[wanted.get(dotted(rest[0]!))!] = { file: key, value: canonicalValue(rest.slice(1).join(' ')) };
    }
  }
  return state;
}

/** The exact content kvmconf writes: a header, then `key = value` lines in the given order. */
export function renderSysctlFile(settings: Record<string, string>, owner: string): string {
  const lines = Object.entries(settings).map(([key, value]) => `${key} = ${value}`);
  return `# Managed by kvmconf (${owner}); edits here are overwritten.\n${lines.join('\n')}\n`;
}

/** One-line form of a config file for change lines: its non-comment lines joined; null when absent. */
export function settingsSummary(content: string | null): string | null {
  if (content === null) return null;
  return content.split('\n').map((line) => line.trim()).filter((line) => line && !line.startsWith('#')).join('; ') || '(empty)';
}

/** Runtime write with read-back: a kernel that grants less (nr_hugepages) fails the step. */
export function setSysctlCommand(key: string, value: string): string {
  return `kc_set_value ${quote(sysctlPath(key))} ${quote(value)}`;
}

export function writeSysctlFileCommand(file: string, content: string, previous: string | null): string {
  return writeFileCommand(file, content, previous);
}

/** Warnings for keys a later boot-time file sets to something else than ours. */
export function overrideWarnings(state: SysctlState, file: string, settings: Record<string, string>): string[] {
  return Object.entries(settings).flatMap(([key, value]) => {
    const last = state.lastSetBy[key];
    if (!last || last.file === file || last.value === value) return [];
    return [`${key}: ${last.file} is loaded after ${file} and sets ${last.value}, so ${value} is lost at the next boot; remove it there or rename ${file} to sort later`];
  });
}
