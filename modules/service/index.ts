/**
 * service: one systemd unit enabled or disabled (persist) and started or stopped
 * (runtime), each read back from systemd. The unit logic lives in lib/systemd.ts,
 * shared with the modules that manage units of their own (ksm).
 */
import { defineModule } from '../../src/kit/index.js';
import { UNIT_NAME_PATTERN, parseUnitProbe, planUnit, unitName, unitProbe, type UnitsState } from '../lib/systemd.js';

export interface ServiceParams {
  /** Full unit name, `.service` added when the name has no unit type suffix. */
  name: string;
  enabled?: boolean;
  state?: 'started' | 'stopped';
  absent_ok: boolean;
}

export const service = defineModule<ServiceParams, UnitsState>({
  name: 'service',
  summary: 'a systemd unit enabled/disabled and started/stopped',
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['name'],
    properties: {
      name: {
        type: 'string', pattern: UNIT_NAME_PATTERN, minLength: 1, maxLength: 255,
        description: 'systemd unit name; `.service` is implied when the name has no unit type suffix (tuned -> tuned.service)',
      },
      enabled: { type: 'boolean', description: 'started at boot (systemctl enable/disable)' },
      state: { enum: ['started', 'stopped'], description: 'running now (systemctl start/stop)' },
      absent_ok: { type: 'boolean', description: 'false (default): a unit that does not exist fails the task; true: it is reported as a warning and nothing changes' },
    },
    anyOf: [{ required: ['enabled'] }, { required: ['state'] }],
  },

  claims: (params) => [{ kind: 'unit', unit: params.name, ...(params.state === undefined ? {} : { state: params.state }), ...(params.enabled === undefined ? {} : { enabled: params.enabled }) }],

  normalize(raw) {
    const input = raw as { name: string; enabled?: boolean; state?: 'started' | 'stopped'; absent_ok?: boolean };
    return {
      name: unitName(input.name),
      ...(input.enabled === undefined ? {} : { enabled: input.enabled }),
      ...(input.state === undefined ? {} : { state: input.state }),
      absent_ok: input.absent_ok ?? false,
    };
  },

  rules(params, facts) {
    return facts.systemd ? [] : [{ severity: 'error', message: `${params.name}: this host does not run systemd (no /run/systemd/system), so the service module cannot manage it` }];
  },

  probe: (params) => unitProbe([params.name]),

  parse: (output) => parseUnitProbe(output),

  diff: (params, actual, context) =>
    planUnit('service', params.name, { enabled: params.enabled, state: params.state }, actual, {
      absentOk: params.absent_ok,
      warn: context.warn,
      absentNote: params.absent_ok ? 'nothing to do' : 'set absent_ok: true if that is expected',
    }),
});
