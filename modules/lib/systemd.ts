/**
 * systemd unit state shared by every module that starts, stops, enables or disables
 * units (service, ksm): one read-only probe of `systemctl show`, a pure planner that
 * turns "enabled/started" wishes into changes, and commands that read the result back
 * through `systemctl is-enabled` / `systemctl is-active`.
 */
import { inline, quote, sh, type Change, type Command } from '../../src/kit/index.js';

/** Unit type suffixes systemd knows; a name without one is a service. */
export const UNIT_TYPES = ['service', 'socket', 'device', 'mount', 'automount', 'swap', 'target', 'path', 'timer', 'slice', 'scope'];

/** Unit names: letters, digits and `:_.@-`, never starting with `-` (so never an option). */
export const UNIT_NAME_PATTERN = '^[A-Za-z0-9_][A-Za-z0-9:_.@-]*$';

/** `tuned` -> `tuned.service`; `dev-hugepages.mount` stays as written. */
export function unitName(name: string): string {
  const suffix = name.slice(name.lastIndexOf('.') + 1);
  return name.includes('.') && UNIT_TYPES.includes(suffix) ? name : `${name}.service`;
}

export interface UnitState {
  /** LoadState: loaded, not-found, masked, error, bad-setting. */
  load: string;
  /** ActiveState: active, inactive, failed, activating, deactivating, reloading. */
  active: string;
  sub: string;
  /** UnitFileState: enabled, disabled, static, masked, indirect, generated, ...; '' when none. */
  file: string;
  /** Set when `systemctl show` itself failed; its message. */
  error?: string;
}

export interface UnitsState {
  /** False when the host does not run systemd (no /run/systemd/system). */
  systemd: boolean;
  units: Record<string, UnitState>;
}

export interface UnitWish {
  enabled?: boolean;
  state?: 'started' | 'stopped';
}

const PROPERTIES = 'LoadState,ActiveState,SubState,UnitFileState';
/** States that need no `systemctl enable`; asking enabled: false of them needs no disable either. */
const ENABLED = ['enabled', 'alias'];
const NOT_ENABLED = ['disabled', 'static', 'indirect', 'generated', 'transient', 'masked', 'masked-runtime', 'linked', 'linked-runtime', ''];
const RUNNING = ['active', 'reloading', 'refreshing'];
const STOPPED = ['inactive', 'failed'];

/**
 * Read-only probe of the units' state: one `systemctl show` of them all, printed between
 * `@@unit-all NAMES` and `@@unit-all-end` (a block per unit, in order, blank lines between);
 * when that fails, each unit on its own between `@@unit NAME` and `@@rc STATUS`, so an
 * error names its unit.
 */
export function unitProbe(units: string[]): string {
  const names = units.map((unit) => quote(unit)).join(' ');
  const eachAlone = [
    `  for kc_u in ${names}; do`,
    `    echo "@@unit $kc_u"; systemctl show --no-pager -p ${PROPERTIES} -- "$kc_u" 2>&1; echo "@@rc $?"`,
    `  done`,
  ];
  return [
    `if [ -d /run/systemd/system ]; then`,
    ...(units.length > 1
      ? [
          `  if kc_o=$(systemctl show --no-pager -p ${PROPERTIES} -- ${names} 2>/dev/null); then`,
          `    printf '@@unit-all %s\\n%s\\n@@unit-all-end\\n' ${quote(units.join(' '))} "$kc_o"`,
          `  else`,
          ...eachAlone.map((line) => `  ${line}`),
          `  fi`,
        ]
      : eachAlone),
    `else echo '@@no-systemd'; fi`,
  ].join('\n');
}

function unitState(lines: string[], rc: string): UnitState {
  const fields = new Map(lines.filter((l) => /^[A-Za-z]+=/.test(l)).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1).trim()]));
  const unit: UnitState = { load: fields.get('LoadState') ?? '', active: fields.get('ActiveState') ?? '', sub: fields.get('SubState') ?? '', file: fields.get('UnitFileState') ?? '' };
  if (rc !== '0' || !unit.load) unit.error = lines.join(' ').trim() || 'no output';
  return unit;
}

export function parseUnitProbe(output: string): UnitsState {
  const state: UnitsState = { systemd: !output.includes('@@no-systemd'), units: {} };
  let current: { name: string; lines: string[] } | undefined;
  let all: { names: string[]; lines: string[] } | undefined;
  for (const line of output.split('\n')) {
    if (all) {
      if (line !== '@@unit-all-end') { all.lines.push(line); continue; }
      // One block per unit, in the order asked; a count that differs leaves every unit without a state.
      const { names } = all;
      const blocks = all.lines.join('\n').split(/\n\s*\n/);
      const miscounted = `systemctl show printed ${blocks.length} blocks for ${names.length} units`;
      names.forEach((name, i) => {
        state.units[name] = blocks.length === names.length ? unitState(blocks[i]!.split('\n'), '0') : { ...unitState([], '0'), error: miscounted };
      });
      all = undefined;
    } else if (line.startsWith('@@unit-all ')) {
      all = { names: line.slice('@@unit-all '.length).trim().split(/\s+/), lines: [] };
    } else if (line.startsWith('@@unit ')) {
      current = { name: line.slice('@@unit '.length).trim(), lines: [] };
    } else if (line.startsWith('@@rc ') && current) {
      state.units[current.name] = unitState(current.lines, line.slice('@@rc '.length).trim());
      current = undefined;
    } else if (current) {
      current.lines.push(line);
    }
  }
  return state;
}

/** How a user would name the unit's run state: started, stopped, failed, or systemd's word. */
export function runState(unit: UnitState): string {
  if (RUNNING.includes(unit.active)) return 'started';
  if (unit.active === 'inactive') return 'stopped';
  return unit.active || 'unknown';
}

export interface PlanUnitOptions {
  /** An absent unit is a warning and no change instead of an error. */
  absentOk: boolean;
  warn(message: string): void;
  /** Appended to the absent-unit warning or error, e.g. how to accept it. */
  absentNote?: string;
}

export function isAbsent(unit: UnitState | undefined): boolean {
  return unit?.load === 'not-found';
}

/**
 * The changes that bring one unit to the wish: runtime (start/stop) first, then
 * persist (enable/disable). Throws when systemd cannot do what is asked.
 */
export function planUnit(module: string, name: string, wish: UnitWish, state: UnitsState, options: PlanUnitOptions): Change[] {
  if (!state.systemd) throw new Error(`${name}: this host does not run systemd (no /run/systemd/system)`);
  const unit = state.units[name];
  if (!unit) throw new Error(`${name}: the probe did not report this unit (gather output cut short?)`);
  if (unit.error && !isAbsent(unit)) throw new Error(`${name}: systemctl show failed: ${unit.error}`);
  if (isAbsent(unit)) {
    const message = `${name} does not exist on this host${options.absentNote ? `; ${options.absentNote}` : ''}`;
    if (!options.absentOk) throw new Error(message);
    options.warn(message);
    return [];
  }
  const masked = unit.load === 'masked' || unit.file.startsWith('masked');
  if (masked && (wish.state === 'started' || wish.enabled === true)) {
    throw new Error(`${name} is masked: it cannot be ${wish.state === 'started' ? 'started' : 'enabled'} (run 'systemctl unmask ${name}' if it should run)`);
  }
  if (unit.load !== 'loaded' && !masked && (wish.state === 'started' || wish.enabled === true)) {
    throw new Error(`${name} failed to load (LoadState=${unit.load}); see 'systemctl status ${name}'`);
  }
  const changes: Change[] = [];
  const push = (change: Change) => changes.push({ ...change, commands: unitCommands(change) });
  if (wish.state === 'started' && !RUNNING.includes(unit.active)) {
    push({ module, target: name, scope: 'runtime', before: runState(unit), after: 'started' });
  }
  if (wish.state === 'stopped' && !STOPPED.includes(unit.active)) {
    push({ module, target: name, scope: 'runtime', before: runState(unit), after: 'stopped' });
  }
  if (wish.enabled === true && !ENABLED.includes(unit.file)) {
    if (['static', 'indirect', 'generated', 'transient'].includes(unit.file)) {
      throw new Error(`${name} is ${unit.file}: it has no [Install] section to enable; it runs when another unit or its trigger wants it`);
    }
    push({ module, target: name, scope: 'persist', before: unit.file || null, after: 'enabled' });
  }
  if (wish.enabled === false && !NOT_ENABLED.includes(unit.file)) {
    push({ module, target: name, scope: 'persist', before: unit.file, after: 'disabled' });
  }
  return changes;
}

/** Commands for a change planUnit made: act, then read the state back from systemd. */
export function unitCommands(change: Change): Command[] {
  const unit = change.target;
  const failure = (asked: string) => inline(sh`kc_fail ${`${unit}: asked ${asked}, systemd reports`} "$kc_got"`);
  if (change.scope === 'runtime' && change.after === 'started') {
    return [sh`systemctl start ${unit}`, sh`kc_got=$(systemctl is-active ${unit}) || true`, sh`[ "$kc_got" = active ] || ${failure('started')}`];
  }
  if (change.scope === 'runtime') {
    return [sh`systemctl stop ${unit}`, sh`kc_got=$(systemctl is-active ${unit}) || true`, sh`[ "$kc_got" = inactive ] || [ "$kc_got" = failed ] || ${failure('stopped')}`];
  }
  if (change.after === 'enabled') {
    return [sh`systemctl enable ${unit}`, sh`kc_got=$(systemctl is-enabled ${unit}) || true`, sh`[ "$kc_got" = enabled ] || ${failure('enabled')}`];
  }
  const disable = change.before === 'enabled-runtime' ? sh`systemctl disable --runtime ${unit}` : sh`systemctl disable ${unit}`;
  return [
    disable,
    sh`kc_got=$(systemctl is-enabled ${unit}) || true`,
    sh`[ "$kc_got" != enabled ] && [ "$kc_got" != enabled-runtime ] || ${failure('disabled')}`,
  ];
}
