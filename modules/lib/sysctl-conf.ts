/**
 * Sysctl persistence shared by every module that persists through /etc/sysctl.d
 * (sysctl, hugepages, numa_balancing): each task owns one whole file, rendered
 * canonically, and the boot-time load order is read so a later file that overrides
 * ours is reported instead of silently winning at the next boot.
 */
import { awkReader, configGlobs, readWith, quote, sh, catFileProbe, parseFileBlock, writeFileCommand, type Command } from '../../src/kit/index.js';

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

/**
 * Live values (`k=KEY` before a /proc/sys file: its lines joined, tabs as spaces) and the
 * `KEY = VALUE` lines of boot-time files (`k=` before each).
 */
const SYSCTL_READER = awkReader({
  name: 'sysctl',
  functions: 'function sysctl_flush() { if (sysctl_key != "") { gsub(/\\t/, " ", sysctl_v); print "runtime", sysctl_key, sysctl_v }; sysctl_key = "" }',
  begin: 'sysctl_key = ""; sysctl_v = ""',
  line: [
    'if (kc_fnr == 1) { sysctl_flush(); if (kc_arg["k"] != "") { sysctl_key = kc_arg["k"]; sysctl_v = $0; return } }',
    'if (sysctl_key != "") { sysctl_v = sysctl_v " " $0; return }',
    'if ($0 ~ /^[ \\t]*[#;]/) return',
    'if ($0 ~ /=/) { sysctl_n = $0; sub(/=.*/, "", sysctl_n); sysctl_x = $0; sub(/^[^=]*=/, "", sysctl_x); gsub(/^[ \\t-]+|[ \\t]+$/, "", sysctl_n); gsub(/^[ \\t]+|[ \\t]+$/, "", sysctl_x); print "setting", kc_file, sysctl_n, sysctl_x }',
  ].join('\n'),
  end: 'sysctl_flush()',
});

/**
 * Probe printing live values, the owned file, and the settings of every boot-time sysctl
 * file (`file PATH` for each, highest-priority directory first); the parser works out
 * which of them systemd-sysctl loads and in what order. One awk reads the live values
 * (a /proc/sys number answers a one-byte read, as the shell's read builtin does, with
 * its first digit only) and every file.
 */
export function sysctlProbe(keys: string[], file: string): string {
  const runtime = keys.map((key) => {
    const path = quote(sysctlPath(key));
    return `if [ -r ${path} ]; then set -- "$@" k=${quote(key)} ${path}; else printf 'missing %s\\n' ${quote(key)}; fi`;
  });
  return [
    'set --',
    ...runtime,
    // A file name already found in a higher-priority directory hides the others: not read.
    configGlobs(SYSCTL_DIRS, '*.conf'),
    `kc_seen=/; for kc_f in $kc_g; do`,
    `  case "$kc_seen" in *"/\${kc_f##*/}/"*) continue ;; esac`,
    `  if [ -f "$kc_f" ]; then kc_seen="$kc_seen\${kc_f##*/}/"; printf 'file %s\\n' "$kc_f"; set -- "$@" k= "$kc_f"; fi`,
    `done`,
    `if [ -f /etc/sysctl.conf ]; then echo 'file /etc/sysctl.conf'; set -- "$@" k= /etc/sysctl.conf; fi`,
    `if [ "$#" -gt 0 ]; then ${readWith(SYSCTL_READER, '"$@"')}; fi`,
    `echo '@@owned'`,
    catFileProbe(file),
  ].join('\n');
}

const SYSTEM_CONF = '/etc/sysctl.conf';

/**
 * The boot-time files systemd-sysctl reads, in its order: each file name from the first
 * directory that has it, sorted by name, then /etc/sysctl.conf.
 */
export function sysctlLoadOrder(files: string[]): string[] {
  const chosen = new Map<string, string>();
  for (const path of files) {
    const base = path.slice(path.lastIndexOf('/') + 1);
    if (path !== SYSTEM_CONF && !chosen.has(base)) chosen.set(base, path);
  }
  const order = [...chosen.keys()].sort().map((base) => chosen.get(base)!);
  return files.includes(SYSTEM_CONF) ? [...order, SYSTEM_CONF] : order;
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
  const files: string[] = [];
  const settings: Array<{ file: string; key: string; value: string }> = [];
  for (const line of output.slice(0, owned).split('\n')) {
    const [kind, key = '', ...rest] = line.split(' ');
    if (kind === 'runtime') state.runtime[key] = canonicalValue(rest.join(' '));
    else if (kind === 'missing') state.runtime[key] = null;
    else if (kind === 'file') files.push(line.slice('file '.length));
    else if (kind === 'setting' && wanted.has(dotted(rest[0] ?? ''))) {
      settings.push({ file: key, key: wanted.get(dotted(rest[0]!))!, value: canonicalValue(rest.slice(1).join(' ')) });
    }
  }
  // Output without `file` lines lists only the loaded files' settings, already in load order.
  const rank = files.length ? new Map(sysctlLoadOrder(files).map((file, index) => [file, index])) : null;
  const loaded = rank ? settings.filter((s) => rank.has(s.file)).sort((a, b) => rank.get(a.file)! - rank.get(b.file)!) : settings;
  for (const { file, key, value } of loaded) state.lastSetBy[key] = { file, value };
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
export function setSysctlCommand(key: string, value: string): Command {
  return sh`kc_set_value ${sysctlPath(key)} ${value}`;
}

export function writeSysctlFileCommand(file: string, content: string, previous: string | null): Command {
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
