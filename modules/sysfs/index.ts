/**
 * sysfs: any sysfs attribute (the linux-system-roles kernel_settings role's `sysfs`
 * section), live and persisted by a tmpfiles.d file the task owns, whose `w` lines
 * systemd-tmpfiles writes at every boot. Choice files such as `[mq-deadline] none`
 * compare by their bracketed word and are selected with a read-back of the bracket.
 */
import { defineModule, quote, sh, READ_FN, catFileProbe, parseFileBlock, type Change, fileClaims } from '../../src/kit/index.js';
import { renderTmpfiles, tmpfilesPath } from '../lib/tmpfiles.js';
import { tmpfilesChange } from '../lib/tmpfiles-values.js';

/** Under /sys, plain path segments only: no `..`, no globs (tmpfiles would expand them), no spaces. */
export const SYSFS_PATH_PATTERN = '^/sys(/(?!\\.\\.?(/|$))[A-Za-z0-9_.:@+-]+)+$';
/** Words and numbers; no `%` (a tmpfiles specifier), backslash or quote. */
export const SYSFS_VALUE_PATTERN = '^[A-Za-z0-9_.:,/+ -]+$';
const NAME_PATTERN = '^[a-z0-9][a-z0-9_.-]{0,47}$';

export interface SysfsParams {
  /** path -> value, whitespace folded. */
  settings: Record<string, string>;
  name: string;
  persist: boolean;
}

export interface SysfsValue {
  /** The value as compared: the bracketed word of a choice file, else the folded content. */
  current: string;
  /** True for `a [b] c` files. */
  choice: boolean;
  choices: string[];
}

export interface SysfsState {
  /** null: the attribute does not exist or cannot be read. */
  values: Record<string, SysfsValue | null>;
  file: string | null;
}

export function canonical(value: string | number): string {
  return String(value).trim().split(/\s+/).join(' ');
}

/** `always madvise [never]` -> never (choice); `128` -> 128. */
export function readValue(text: string): SysfsValue {
  const folded = canonical(text);
  const bracketed = /\[([^\]]*)\]/.exec(folded);
  if (!bracketed) return { current: folded, choice: false, choices: [] };
  return { current: bracketed[1]!, choice: true, choices: folded.split(' ').map((word) => word.replace(/^\[|\]$/g, '')) };
}

export function persistPath(params: SysfsParams): string {
  return tmpfilesPath(`sysfs-${params.name}`);
}

function render(params: SysfsParams): string {
  return renderTmpfiles(Object.entries(params.settings).map(([path, value]) => ({ path, value })), 'sysfs');
}

export const sysfs = defineModule<SysfsParams, SysfsState>({
  name: 'sysfs',
  summary: 'any sysfs attribute (bracket choice files read by their selected word), live and persisted by tmpfiles.d',
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['settings'],
    properties: {
      settings: {
        type: 'object', minProperties: 1, maxProperties: 256,
        propertyNames: { pattern: SYSFS_PATH_PATTERN, maxLength: 255 },
        additionalProperties: { anyOf: [{ type: 'integer' }, { type: 'string', pattern: SYSFS_VALUE_PATTERN, maxLength: 255 }] },
        description: 'sysfs path -> value; for choice files (`[mq-deadline] none`) the word to select',
      },
      name: { type: 'string', pattern: NAME_PATTERN, description: 'the owned file is /etc/tmpfiles.d/kvmconf-sysfs-NAME.conf (default: settings)' },
      persist: { type: 'boolean' },
    },
  },

  normalize(raw) {
    const input = raw as { settings: Record<string, string | number>; name?: string; persist?: boolean };
    return {
      settings: Object.fromEntries(Object.entries(input.settings).map(([path, value]) => [path, canonical(value)])),
      name: input.name ?? 'settings',
      persist: input.persist ?? true,
    };
  },

  claims: (params) => [
    ...Object.entries(params.settings).map(([path, value]) => ({ kind: 'sysfs' as const, path, value })),
    ...fileClaims(params.persist ? [persistPath(params)] : []),
  ],

  probe: (params) =>
    [
      READ_FN,
      `for kc_f in ${Object.keys(params.settings).map(quote).join(' ')}; do`,
      `  if [ -f "$kc_f" ] && kc_read "$kc_f"; then printf 'value %s %s\\n' "$kc_f" "$kc_v"; else printf 'missing %s\\n' "$kc_f"; fi`,
      `done`,
      `echo '@@owned'`,
      catFileProbe(persistPath(params)),
    ].join('\n'),

  parse(output) {
    const owned = output.indexOf('@@owned\n');
    if (owned < 0) throw new Error('sysfs probe output is truncated');
    const state: SysfsState = { values: {}, file: parseFileBlock(output.slice(owned + '@@owned\n'.length)) };
    for (const line of output.slice(0, owned).split('\n')) {
      const [kind = '', path = '', ...rest] = line.split(' ');
      if (kind === 'value') state.values[path] = readValue(rest.join(' '));
      else if (kind === 'missing') state.values[path] = null;
    }
    return state;
  },

  diff(params, actual) {
    const changes: Change[] = [];
    for (const [path, value] of Object.entries(params.settings)) {
      const live = actual.values[path];
      if (live === null || live === undefined) throw new Error(`${path}: no such sysfs attribute on this host (or it cannot be read)`);
      if (live.current === value) continue;
      if (live.choice && !live.choices.includes(value)) throw new Error(`${path}: '${value}' is not one of its choices (${live.choices.join(', ')})`);
      changes.push({
        module: 'sysfs', target: path, scope: 'runtime' as const, before: live.current, after: value,
        commands: [live.choice ? sh`kc_set_choice ${path} ${value}` : sh`kc_set_value ${path} ${value}`],
      });
    }
    if (params.persist) {
      const path = persistPath(params);
      const content = render(params);
      if (actual.file !== content) changes.push(tmpfilesChange('sysfs', path, actual.file, content, (p) => p));
    }
    return changes;
  },
});
