/**
 * What modprobe will give a module when it next loads it: every modprobe.d file it reads,
 * in its order, with the options each sets for the module, and the module's options on
 * the kernel command line. A module that owns one modprobe.d file uses this to warn when
 * another file or the command line overrides it.
 */
import { awkReader, configGlobs, printJoined, quote, readWith } from '../../src/kit/index.js';
import { tokenizeCmdline } from './grub.js';

/** Directories modprobe reads, highest priority first for files of the same name (modprobe.d(5)). */
export const MODPROBE_DIRS = ['/etc/modprobe.d', '/run/modprobe.d', '/usr/local/lib/modprobe.d', '/usr/lib/modprobe.d', '/lib/modprobe.d'];

/** A modprobe.d file and its `options` lines for one module. */
export interface ModprobeFile {
  file: string;
  lines: string[];
}

/** A file modprobe reads and the options (name spelt with `_`) it sets for the module. */
export interface ModprobeSetting {
  file: string;
  options: Record<string, string>;
}

export interface ModprobeView {
  /** Every modprobe.d file modprobe would read, in its order. */
  configs: ModprobeSetting[];
  /** `MODULE.option=value` of the kernel command line, which modprobe applies after every file. */
  cmdline: Record<string, string>;
}

/** Module and parameter names as /sys/module and modules.builtin spell them: modprobe takes `-` for `_`. */
export function sysName(name: string): string {
  return name.replace(/-/g, '_');
}

function basename(file: string): string {
  return file.slice(file.lastIndexOf('/') + 1);
}

/** The `options` lines of module `m=NAME` (either of `-` and `_` matching both) as `opt FILE LINE`. */
const MODPROBE_READER = awkReader({
  name: 'modprobe',
  begin: 'modprobe_m = ""',
  line: [
    'if (modprobe_m != kc_arg["m"]) { modprobe_m = kc_arg["m"]; modprobe_re = modprobe_m; gsub(/[-_]/, "[-_]", modprobe_re); modprobe_re = "^[[:space:]]*options[[:space:]]+" modprobe_re "[[:space:]]" }',
    'if ($0 ~ modprobe_re) print "opt", kc_file, $0',
  ].join('\n'),
});

/**
 * Probe lines `cmdline TEXT`, `conf FILE` for every modprobe.d file and `opt FILE LINE`
 * for each `options MODULE ...` line of the module, printed by awk (in a gather, the
 * gather's one awk).
 */
export function modprobeProbe(name: string): string {
  return [
    printJoined('cmdline', '/proc/cmdline'),
    configGlobs(MODPROBE_DIRS, '*.conf'),
    `for kc_f in $kc_g; do [ -f "$kc_f" ] && printf 'conf %s\\n' "$kc_f"; done`,
    readWith(MODPROBE_READER, `m=${quote(name)} $kc_g`),
  ].join('\n');
}

/** Reads the probe's cmdline, conf and opt lines; other lines are left to the caller. */
export function parseModprobeProbe(name: string, lines: readonly string[]): ModprobeView {
  const files: ModprobeFile[] = [];
  let cmdline: Record<string, string> = {};
  for (const line of lines) {
    const space = line.indexOf(' ');
    const kind = space < 0 ? line : line.slice(0, space);
    const rest = space < 0 ? '' : line.slice(space + 1);
    if (kind === 'conf') files.push({ file: rest.trim(), lines: [] });
    else if (kind === 'cmdline') cmdline = cmdlineOptions(name, rest);
    else if (kind === 'opt') {
      const file = rest.slice(0, rest.indexOf(' '));
      files.find((entry) => entry.file === file)?.lines.push(rest.slice(file.length + 1));
    }
  }
  return { configs: modprobeOrder(name, files), cmdline };
}

/** The options the `options MODULE ...` lines of a file's content set, the last one winning. */
export function fileOptions(name: string, lines: readonly string[]): Record<string, string> {
  const options: Record<string, string> = {};
  for (const line of lines) {
    const words = line.trim().split(/\s+/);
    if (words[0] !== 'options' || sysName(words[1] ?? '') !== sysName(name)) continue;
    for (const word of words.slice(2)) {
      if (word.startsWith('#')) break;
      const eq = word.indexOf('=');
      if (eq > 0) options[sysName(word.slice(0, eq))] = word.slice(eq + 1);
    }
  }
  return options;
}

/**
 * libkmod reads every *.conf of its directories in file-name order (a name in /etc hides the
 * same name elsewhere), appends the kernel command line's module options last, and passes
 * all of them to the module, whose parser keeps the last value: the last setter wins.
 */
export function modprobeOrder(name: string, files: readonly ModprobeFile[]): ModprobeSetting[] {
  const chosen = new Map<string, ModprobeFile>();
  for (const dir of MODPROBE_DIRS) {
    for (const entry of files) {
      if (entry.file.startsWith(`${dir}/`) && !chosen.has(basename(entry.file))) chosen.set(basename(entry.file), entry);
    }
  }
  return [...chosen.keys()].sort().map((base) => {
    const entry = chosen.get(base)!;
    return { file: entry.file, options: fileOptions(name, entry.lines) };
  });
}

/** The module's `MODULE.option=value` tokens of a kernel command line (quotes around the value dropped). */
export function cmdlineOptions(name: string, cmdline: string): Record<string, string> {
  const options: Record<string, string> = {};
  const prefix = `${sysName(name)}.`;
  for (const token of tokenizeCmdline(cmdline)) {
    const eq = token.indexOf('=');
    const key = sysName(eq < 0 ? token : token.slice(0, eq));
    if (eq < 0 || !key.startsWith(prefix)) continue;
    options[key.slice(prefix.length)] = token.slice(eq + 1).replace(/^"(.*)"$/, '$1');
  }
  return options;
}

export interface ConflictCheck {
  /** Module name as the kernel command line spells it. */
  name: string;
  /** The modprobe.d file the task owns. */
  owned: string;
  /** option -> the value the task wants. */
  wanted: Record<string, string>;
  /** Whether a value set elsewhere means the same as the wanted one (flags spelt Y or 1, say). */
  same(found: string, wanted: string): boolean;
}

/** Other settings of the owned options, and which one modprobe ends up using. */
export function conflictWarnings(check: ConflictCheck, view: ModprobeView): string[] {
  const own = basename(check.owned);
  const warnings: string[] = [];
  for (const [option, wanted] of Object.entries(check.wanted)) {
    for (const { file, options } of view.configs) {
      const value = options[option];
      // The owned file, or one of its name elsewhere that it hides, never conflicts.
      if (value === undefined || basename(file) === own || check.same(value, wanted)) continue;
      warnings.push(
        basename(file) > own
          ? `${file} sets ${option}=${value} and is read after ${check.owned}, so its value wins at the next load: remove it there`
          : `${file} also sets ${option}=${value}; ${check.owned} is read after it and wins, but the two disagree`,
      );
    }
    const cmdline = view.cmdline[option];
    if (cmdline !== undefined && !check.same(cmdline, wanted)) {
      warnings.push(`the kernel command line has ${sysName(check.name)}.${option}=${cmdline}, which modprobe applies after every modprobe.d file: it wins until it is removed and the host rebooted`);
    }
  }
  return warnings;
}
