/**
 * vhost_net: the experimental_zcopytx option of the vhost_net module (zero-copy transmit
 * for guests' virtio-net). Persisted in a modprobe.d file the task owns; a loaded module
 * keeps the value it was loaded with, so a running one is reloaded when no guest uses
 * it, and otherwise the change waits for a module reload.
 */
import { defineModule, fileDiff, READ_FN, catFileProbe, parseFileBlock, writeFileCommand, sh, shellCode, inline, type Change, type Command, fileClaims } from '../../src/kit/index.js';
import { tokenizeCmdline } from '../lib/grub.js';

export const MODPROBE_FILE = '/etc/modprobe.d/kvmconf-vhost-net.conf';
const MODULE_DIR = '/sys/module/vhost_net';
const PARAM = `${MODULE_DIR}/parameters/experimental_zcopytx`;
/** Directories modprobe reads, highest priority first for files of the same name (modprobe.d(5)). */
export const MODPROBE_DIRS = ['/etc/modprobe.d', '/run/modprobe.d', '/usr/local/lib/modprobe.d', '/usr/lib/modprobe.d', '/lib/modprobe.d'];

export const ZCOPY_SECURITY =
  'zero-copy transmit lets the host NIC send straight from guest memory, which turns off a mitigation: a guest can then hold host buffers (denial of service) ' +
  'and see data change under it after the send (information leak); enable it only for trusted guests';

export interface VhostNetParams {
  /** null only for `kvmconf facts`, which reports without planning. */
  experimental_zcopytx: 0 | 1 | null;
  persist: boolean;
}

export interface VhostNetState {
  loaded: boolean;
  builtin: boolean;
  /** Live value normalised to 0/1; null when not loaded. */
  value: 0 | 1 | null;
  refcnt: number;
  holders: string[];
  /** modprobe exists and resolves vhost_net for this kernel (null: no modprobe to ask). */
  available: boolean | null;
  /** `vhost_net.experimental_zcopytx=` on the kernel command line (wins over modprobe.d). */
  cmdline: 0 | 1 | null;
  /** Every modprobe.d file modprobe would read, in its order, with the value it sets (null: none). */
  configs: Array<{ file: string; value: 0 | 1 | null }>;
  /** Content of the owned file, null when absent. */
  file: string | null;
}

/** Y/N, y/n, 1/0 and other integers (non-zero enables) -> 0/1. */
export function normaliseFlag(text: string): 0 | 1 | null {
  const value = text.trim();
  if (/^[Yy]$/.test(value)) return 1;
  if (/^[Nn]$/.test(value)) return 0;
  if (/^-?\d+$/.test(value)) return Number(value) === 0 ? 0 : 1;
  return null;
}

export function renderModprobe(value: 0 | 1): string {
  return `# Managed by kvmconf (vhost_net); edits here are overwritten.\noptions vhost_net experimental_zcopytx=${value}\n`;
}

/** The value an `options vhost_net ...` line sets (module and option names treat - and _ alike), or null. */
function optionValue(line: string): 0 | 1 | null {
  const words = line.trim().split(/\s+/);
  if (words[0] !== 'options' || words[1]?.replace(/-/g, '_') !== 'vhost_net') return null;
  let found: 0 | 1 | null = null;
  for (const word of words.slice(2)) {
    if (word.startsWith('#')) break;
    const [name = '', value = ''] = word.split('=');
    if (name.replace(/-/g, '_') === 'experimental_zcopytx') found = normaliseFlag(value) ?? found;
  }
  return found;
}

/**
 * libkmod reads every *.conf of its directories in file-name order (a name in /etc hides the
 * same name elsewhere), appends the kernel command line's module options last, and passes
 * all of them to the module, whose parser keeps the last value: the last setter wins.
 */
export function modprobeOrder(files: Array<{ file: string; lines: string[] }>): Array<{ file: string; value: 0 | 1 | null }> {
  const chosen = new Map<string, { file: string; lines: string[] }>();
  for (const dir of MODPROBE_DIRS) {
    for (const entry of files) {
      const base = entry.file.slice(entry.file.lastIndexOf('/') + 1);
      if (entry.file.startsWith(`${dir}/`) && !chosen.has(base)) chosen.set(base, entry);
    }
  }
  return [...chosen.keys()].sort().map((base) => {
    const entry = chosen.get(base)!;
    let value: 0 | 1 | null = null;
    for (const line of entry.lines) value = optionValue(line) ?? value;
    return { file: entry.file, value };
  });
}

/** Atomic write of the owned modprobe.d file, guarded by the content the plan saw. */
export function persistCommand(path: string, value: 0 | 1, previous: string | null): Command {
  return writeFileCommand(path, renderModprobe(value), previous);
}

export function reloadCommands(value: 0 | 1, persist: boolean): Command[] {
  // Without the file, the option goes on modprobe's command line, which is read after modprobe.d.
  const load = persist ? shellCode`modprobe vhost_net` : sh`modprobe vhost_net ${`experimental_zcopytx=${value}`}`;
  return [
    sh`modprobe -r vhost_net && ${inline(load)} || kc_fail 'reloading vhost_net failed (did a guest start using it?)'`,
    sh`kc_got=$(cat ${PARAM}); case "$kc_got" in Y|y) kc_got=1 ;; N|n) kc_got=0 ;; esac`,
    sh`[ "$kc_got" = ${value} ] || kc_fail "vhost_net: asked for experimental_zcopytx=${value}, the reloaded module has $kc_got"`,
  ];
}

export const vhostNet = defineModule<VhostNetParams, VhostNetState>({
  name: 'vhost_net',
  summary: 'vhost_net zero-copy transmit (experimental_zcopytx), persisted in modprobe.d; reloads the module when no guest uses it',
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['experimental_zcopytx'],
    properties: {
      experimental_zcopytx: { anyOf: [{ enum: [0, 1] }, { type: 'boolean' }] },
      persist: { type: 'boolean' },
    },
  },
  factsParams: { experimental_zcopytx: null, persist: false },

  normalize(raw) {
    const input = raw as { experimental_zcopytx: 0 | 1 | boolean; persist?: boolean };
    const flag = input.experimental_zcopytx;
    return { experimental_zcopytx: flag === true || flag === 1 ? 1 : 0, persist: input.persist ?? true };
  },

  claims: (params) => fileClaims(params.persist && params.experimental_zcopytx !== null ? [MODPROBE_FILE] : []),

  probe: () =>
    [
      READ_FN,
      `if [ -d ${MODULE_DIR} ]; then`,
      `  echo loaded`,
      `  [ -e ${MODULE_DIR}/initstate ] || echo builtin`,
      `  kc_read ${PARAM}; printf 'value %s\\n' "$kc_v"`,
      `  kc_read ${MODULE_DIR}/refcnt; printf 'refcnt %s\\n' "$kc_v"`,
      `  for kc_h in ${MODULE_DIR}/holders/*; do [ -e "$kc_h" ] && printf 'holder %s\\n' "\${kc_h##*/}"; done`,
      `fi`,
      `if command -v modprobe >/dev/null 2>&1; then if modprobe -nq vhost_net 2>/dev/null; then echo available; else echo unavailable; fi; fi`,
      `kc_read /proc/cmdline; printf 'cmdline %s\\n' "$kc_v"`,
      // Every modprobe.d file is listed; one awk prints their vhost_net option lines.
      `set --; for kc_d in ${MODPROBE_DIRS.join(' ')}; do for kc_f in "$kc_d"/*.conf; do`,
      `  [ -f "$kc_f" ] || continue`,
      `  printf 'conf %s\\n' "$kc_f"; set -- "$@" "$kc_f"`,
      `done; done`,
      `if [ "$#" -gt 0 ]; then awk '/^[[:space:]]*options[[:space:]]+vhost[-_]net[[:space:]]/ { print "opt", FILENAME, $0 }' "$@"; fi`,
      `echo '@@owned'`,
      catFileProbe(MODPROBE_FILE),
    ].join('\n'),

  parse(output) {
    const owned = output.indexOf('@@owned\n');
    if (owned < 0) throw new Error('vhost_net probe output is truncated');
    const state: VhostNetState = {
      loaded: false, builtin: false, value: null, refcnt: 0, holders: [], available: null, cmdline: null, configs: [],
      file: parseFileBlock(output.slice(owned + '@@owned\n'.length)),
    };
    const files: Array<{ file: string; lines: string[] }> = [];
    for (const line of output.slice(0, owned).split('\n')) {
      const space = line.indexOf(' ');
      const kind = space < 0 ? line : line.slice(0, space);
      const rest = space < 0 ? '' : line.slice(space + 1);
      if (kind === 'loaded') state.loaded = true;
      else if (kind === 'builtin') state.builtin = true;
      else if (kind === 'value') state.value = normaliseFlag(rest);
      else if (kind === 'refcnt') state.refcnt = Number(rest.trim()) || 0;
      else if (kind === 'holder') state.holders.push(rest.trim());
      else if (kind === 'available') state.available = true;
      else if (kind === 'unavailable') state.available = false;
      else if (kind === 'conf') files.push({ file: rest.trim(), lines: [] });
      else if (kind === 'opt') {
        const file = rest.slice(0, rest.indexOf(' '));
        files.find((entry) => entry.file === file)?.lines.push(rest.slice(file.length + 1));
      } else if (kind === 'cmdline') {
        for (const token of tokenizeCmdline(rest)) {
          const match = /^vhost[-_]net\.experimental[-_]zcopytx=(.*)$/.exec(token);
          if (match) state.cmdline = normaliseFlag(match[1]!);
        }
      }
    }
    state.configs = modprobeOrder(files);
    return state;
  },

  diff(params, actual, context) {
    const wanted = params.experimental_zcopytx;
    if (wanted === null) return [];
    const changes: Change[] = [];
    const security = wanted === 1 ? [ZCOPY_SECURITY] : [];
    if (!actual.loaded && actual.available === false) context.warn('modprobe cannot find vhost_net for the running kernel: the option applies once the module is installed');

    if (params.persist) {
      const content = renderModprobe(wanted);
      if (actual.file !== content) {
        const old = actual.file === null ? null : optionValue(actual.file.split('\n').find((line) => optionValue(line) !== null) ?? '');
        const notes = actual.loaded ? [] : ['vhost_net is not loaded: the option applies when it is next loaded'];
        changes.push({
          module: 'vhost_net', target: MODPROBE_FILE, scope: 'persist',
          before: actual.file === null ? null : old === null ? '(no option)' : `experimental_zcopytx=${old}`, after: `experimental_zcopytx=${wanted}`,
          ...([...notes, ...security].length ? { reason: [...notes, ...security].join('; ') } : {}),
          diff: fileDiff(MODPROBE_FILE, actual.file, content),
          commands: [persistCommand(MODPROBE_FILE, wanted, actual.file)],
        });
      }
      conflictWarnings(actual, wanted).forEach((warning) => context.warn(warning));
    } else if (!actual.loaded) {
      context.warn('vhost_net is not loaded and persist is false: nothing changes now, and the module will load with its configured default');
    }

    if (actual.loaded && actual.value !== wanted) {
      if (actual.builtin) {
        throw new Error(`vhost_net is built into this kernel: experimental_zcopytx is read only at boot; set vhost_net.experimental_zcopytx=${wanted} with the kernel_cmdline module`);
      }
      const users = Math.max(actual.refcnt, actual.holders.length);
      const before = actual.value === null ? null : String(actual.value);
      if (users > 0) {
        const holders = actual.holders.length ? `, held by ${actual.holders.join(', ')}` : '';
        changes.push({
          module: 'vhost_net', target: 'experimental_zcopytx', scope: 'pending', pendingOn: 'module-reload', before, after: String(wanted),
          reason: [`vhost_net is in use by guests (${users} open vhost-net devices${holders}): reload it (modprobe -r vhost_net && modprobe vhost_net) with guests stopped`, ...security].join('; '),
        });
      } else {
        changes.push({
          module: 'vhost_net', target: 'experimental_zcopytx', scope: 'runtime', before, after: String(wanted),
          reason: ['no guest uses vhost_net: it is reloaded with the new option', ...security].join('; '),
          commands: reloadCommands(wanted, params.persist),
        });
      }
    }
    return changes;
  },
});

/** Other settings of the same option, and which one modprobe ends up using. */
export function conflictWarnings(state: VhostNetState, wanted: 0 | 1): string[] {
  const own = MODPROBE_FILE.slice(MODPROBE_FILE.lastIndexOf('/') + 1);
  const warnings: string[] = [];
  for (const { file, value } of state.configs) {
    const base = file.slice(file.lastIndexOf('/') + 1);
    if (file === MODPROBE_FILE || value === null || value === wanted) continue;
    if (base === own) continue; // hidden by the /etc file of the same name
    warnings.push(
      base > own
        ? `${file} sets experimental_zcopytx=${value} and is read after ${MODPROBE_FILE}, so its value wins at the next load: remove it there`
        : `${file} also sets experimental_zcopytx=${value}; ${MODPROBE_FILE} is read after it and wins, but the two disagree`,
    );
  }
  if (state.cmdline !== null && state.cmdline !== wanted) {
    warnings.push(`the kernel command line has vhost_net.experimental_zcopytx=${state.cmdline}, which modprobe applies after every modprobe.d file: it wins until it is removed and the host rebooted`);
  }
  return warnings;
}
