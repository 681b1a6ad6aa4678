/**
 * sysctl: any kernel parameter, live in /proc/sys and persisted in a sysctl.d file
 * that this task owns whole. Runtime and persisted state are planned separately.
 */
import { defineModule, fileDiff, type Change, fileClaims } from '../../src/kit/index.js';
import {
  SYSCTL_FILE_PATTERN, SYSCTL_KEY_PATTERN, SYSCTL_VALUE_PATTERN, canonicalValue, overrideWarnings, settingsSummary,
  parseSysctlProbe, renderSysctlFile, setSysctlCommand, sysctlProbe, writeSysctlFileCommand, type SysctlState,
} from '../lib/sysctl-conf.js';

export const DEFAULT_SYSCTL_FILE = '/etc/sysctl.d/90-kvmconf.conf';

const value = { anyOf: [{ type: 'integer' }, { type: 'string', pattern: SYSCTL_VALUE_PATTERN, minLength: 1 }] };

export interface SysctlParams {
  settings: Record<string, string>;
  file: string;
  persist: boolean;
}

export const sysctl = defineModule<SysctlParams, SysctlState>({
  name: 'sysctl',
  summary: 'kernel parameters under /proc/sys, live and persisted in /etc/sysctl.d',
  schema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      settings: { type: 'object', minProperties: 1, propertyNames: { pattern: SYSCTL_KEY_PATTERN }, additionalProperties: value },
      name: { type: 'string', pattern: SYSCTL_KEY_PATTERN },
      value,
      file: { type: 'string', pattern: SYSCTL_FILE_PATTERN },
      persist: { type: 'boolean' },
    },
    oneOf: [{ required: ['settings'], not: { anyOf: [{ required: ['name'] }, { required: ['value'] }] } }, { required: ['name', 'value'], not: { required: ['settings'] } }],
  },

  /** Accepts Ansible's `name`/`value` form as well as a `settings` map; values canonical. */
  normalize(raw) {
    const input = raw as { settings?: Record<string, string | number>; name?: string; value?: string | number; file?: string; persist?: boolean };
    const settings = input.settings ?? { [input.name!]: input.value! };
    return {
      settings: Object.fromEntries(Object.entries(settings).map(([key, v]) => [key, canonicalValue(v)])),
      file: input.file ?? DEFAULT_SYSCTL_FILE,
      persist: input.persist ?? true,
    };
  },

  claims: (params) => [
    ...Object.entries(params.settings).map(([key, value]) => ({ kind: 'sysctl' as const, key, value, persistedIn: params.persist ? params.file : null })),
    ...fileClaims(params.persist ? [params.file] : []),
  ],

  probe: (params) => sysctlProbe(Object.keys(params.settings), params.file),

  parse: (output, params) => parseSysctlProbe(output, Object.keys(params.settings)),

  diff(params, actual, context) {
    const changes: Change[] = [];
    for (const [key, value] of Object.entries(params.settings)) {
      const live = actual.runtime[key];
      if (live === null || live === undefined) throw new Error(`${key}: no such sysctl on this kernel (is its module loaded?)`);
      if (live !== value) changes.push({ module: 'sysctl', target: key, scope: 'runtime', before: live, after: value, commands: [setSysctlCommand(key, value)] });
    }
    if (params.persist) {
      const content = renderSysctlFile(params.settings, 'sysctl');
      if (actual.file !== content) {
        changes.push({
          module: 'sysctl', target: params.file, scope: 'persist',
          before: settingsSummary(actual.file), after: settingsSummary(content),
          diff: fileDiff(params.file, actual.file, content),
          commands: [writeSysctlFileCommand(params.file, content, actual.file)],
        });
      }
      overrideWarnings(actual, params.file, params.settings).forEach(context.warn);
    }
    return changes;
  },
});
