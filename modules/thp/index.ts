/**
 * thp: transparent hugepages. Live through sysfs (bracket format: `always madvise [never]`);
 * `enabled` persists through the kernel command line (transparent_hugepage=), which
 * the engine merges into the play's one kernel_cmdline edit; `defrag` has no boot
 * parameter and persists through a tmpfiles.d entry.
 */
import { defineModule, fileClaims, fileDiff, READ_FN, sh, type Change } from '../../src/kit/index.js';
import { parseTmpfiles, renderTmpfiles, tmpfilesCommand, tmpfilesPath, tmpfilesProbe } from '../lib/tmpfiles.js';

const THP_DIR = '/sys/kernel/mm/transparent_hugepage';
/** The sysfs path a thp task's `enabled` claim names (tuned's conflict check looks for it). */
export const THP_ENABLED = `${THP_DIR}/enabled`;
const SETTINGS = ['enabled', 'defrag'] as const;
const TMPFILES = tmpfilesPath('thp');

export interface ThpParams {
  enabled?: string;
  defrag?: string;
  persist: boolean;
}

export interface Choice {
  selected: string;
  available: string[];
}

export interface ThpState {
  enabled: Choice | null;
  defrag: Choice | null;
  tmpfiles: string | null;
}

/** `always madvise [never]` -> selected never, available all three. */
export function parseChoice(line: string): Choice | null {
  const words = line.trim().split(/\s+/).filter(Boolean);
  const selected = words.find((word) => word.startsWith('['));
  if (!selected) return null;
  return { selected: selected.slice(1, -1), available: words.map((word) => word.replace(/^\[|\]$/g, '')) };
}

export const thp = defineModule<ThpParams, ThpState>({
  name: 'thp',
  summary: 'transparent hugepages enabled/defrag, live in sysfs and persisted across boots',
  schema: {
    type: 'object',
    additionalProperties: false,
    minProperties: 1,
    properties: {
      enabled: { enum: ['always', 'madvise', 'never'] },
      defrag: { enum: ['always', 'defer', 'defer+madvise', 'madvise', 'never'] },
      persist: { type: 'boolean' },
    },
    anyOf: [{ required: ['enabled'] }, { required: ['defrag'] }],
  },
  factsParams: { enabled: undefined, defrag: undefined, persist: false },

  normalize: (raw) => ({ persist: true, ...(raw as Partial<ThpParams>) }),

  claims: (params) => [
    ...SETTINGS.flatMap((setting) => (params[setting] ? [{ kind: 'sysfs' as const, path: `${THP_DIR}/${setting}`, value: params[setting]! }] : [])),
    ...(params.persist && params.enabled ? [{ kind: 'kernel-arg' as const, token: `transparent_hugepage=${params.enabled}` }] : []),
    ...fileClaims(params.persist && params.defrag ? [TMPFILES] : []),
  ],

  probe: () =>
    [
      READ_FN,
      ...SETTINGS.map((s) => `kc_read ${THP_DIR}/${s}; printf '%s %s\\n' ${s} "$kc_v"`),
      `echo '@@tmpfiles'`,
      tmpfilesProbe(TMPFILES),
    ].join('\n'),

  parse(output) {
    const [head = '', tail = ''] = output.split('@@tmpfiles\n');
    const lines = new Map(head.split('\n').map((line) => [line.split(' ')[0], line.slice(line.indexOf(' ') + 1)]));
    return {
      enabled: parseChoice(lines.get('enabled') ?? ''),
      defrag: parseChoice(lines.get('defrag') ?? ''),
      tmpfiles: parseTmpfiles(tail),
    };
  },

  diff(params, actual) {
    const changes: Change[] = [];
    for (const setting of SETTINGS) {
      const wanted = params[setting];
      if (!wanted) continue;
      const current = actual[setting];
      if (!current) throw new Error(`${THP_DIR}/${setting} is missing: this kernel has no transparent hugepage support`);
      if (!current.available.includes(wanted)) throw new Error(`${setting}=${wanted} is not offered by this kernel (choices: ${current.available.join(', ')})`);
      if (current.selected !== wanted) {
        const commands = [sh`kc_set_choice ${`${THP_DIR}/${setting}`} ${wanted}`];
        changes.push({ module: 'thp', target: setting, scope: 'runtime', before: current.selected, after: wanted, commands });
      }
    }
    const desired = desiredTmpfiles(params);
    if (params.persist && desired !== actual.tmpfiles) {
      changes.push({
        module: 'thp', target: TMPFILES, scope: 'persist', before: actual.tmpfiles === null ? null : 'present', after: desired === null ? null : `defrag=${params.defrag}`,
        diff: fileDiff(TMPFILES, actual.tmpfiles, desired),
        commands: [tmpfilesCommand(TMPFILES, desired, actual.tmpfiles)!],
      });
    }
    return changes;
  },
});

function desiredTmpfiles(params: ThpParams): string | null {
  return params.defrag ? renderTmpfiles([{ path: `${THP_DIR}/defrag`, value: params.defrag }], 'thp') : null;
}
