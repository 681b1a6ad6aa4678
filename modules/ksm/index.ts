/**
 * ksm: kernel samepage merging. Live in /sys/kernel/mm/ksm (run: 0 stop, 1 run,
 * 2 stop and unmerge every shared page; merge_across_nodes), persisted through an
 * owned tmpfiles.d file (KSM has no sysctl), and the ksm/ksmtuned units that RHEL
 * ships, which would otherwise turn KSM back on.
 *
 * merge_across_nodes can only change while no page is shared (the kernel answers
 * EBUSY otherwise), so its command unmerges first, waits for pages_shared to read 0,
 * writes the value, and sets run back.
 */
import { defineModule, READ_FN, sh, inline, type Change, type Diagnostic, type Command, fileClaims } from '../../src/kit/index.js';
import { parseTmpfiles, renderTmpfiles, tmpfilesPath, tmpfilesProbe } from '../lib/tmpfiles.js';
import { tmpfilesChange } from '../lib/tmpfiles-values.js';
import { parseUnitProbe, planUnit, unitProbe, type UnitsState } from '../lib/systemd.js';

export const KSM_DIR = '/sys/kernel/mm/ksm';
export const KSM_TMPFILES = tmpfilesPath('ksm');
export const KSM_UNITS = ['ksm.service', 'ksmtuned.service'];
/** How long the merge_across_nodes command waits for pages_shared to reach 0. */
export const UNMERGE_TIMEOUT_SECONDS = 60;

const RUN_VALUE = { stop: '0', run: '1', unmerge: '2' } as const;
export type KsmRun = keyof typeof RUN_VALUE;
const RUN_NAME: Record<string, KsmRun> = { '0': 'stop', '1': 'run', '2': 'unmerge' };
/** Statistics and settings the probe reports (in this order). */
const FILES = ['run', 'merge_across_nodes', 'pages_shared', 'pages_sharing', 'pages_unshared', 'pages_volatile', 'full_scans', 'pages_to_scan', 'sleep_millisecs', 'max_page_sharing', 'use_zero_pages'];

/** Statistics KSM updates as it scans, as opposed to its settings. */
const COUNTERS = new Set(['pages_shared', 'pages_sharing', 'pages_unshared', 'pages_volatile', 'full_scans']);

export interface KsmParams {
  run?: KsmRun;
  merge_across_nodes?: '0' | '1';
  /** What to do with the ksm and ksmtuned units. */
  services: 'stopped' | 'started' | 'unmanaged';
  persist: boolean;
}

export interface KsmState {
  /** False when the kernel has no /sys/kernel/mm/ksm. */
  present: boolean;
  /** File name -> value, for the files this kernel has. */
  values: Record<string, string>;
  units: UnitsState;
  tmpfiles: string | null;
}

const runName = (value: string | undefined): string | null => (value === undefined ? null : (RUN_NAME[value] ?? value));

/** Whether the live run value already is what `run` asks: `stop` is also met by 2 (stopped and unmerged). */
function runMet(wanted: KsmRun, live: string | undefined): boolean {
  return live === RUN_VALUE[wanted] || (wanted === 'stop' && live === '2');
}

/**
 * The merge_across_nodes change in the order the kernel requires: save run, write 2
 * (unmerge), wait until pages_shared reads 0 (at most `timeout` seconds, then restore run
 * and fail with the count), write the value and read it back, then set run to `restore`
 * (the wanted run value, or the saved one when null) and read it back.
 * `root` prefixes every path so the logic can run against a fake sysfs tree.
 */
export function mergeAcrossNodesCommands(value: '0' | '1', restore: string | null, root = '', timeout = UNMERGE_TIMEOUT_SECONDS): Command[] {
  const file = (name: string) => `${root}${KSM_DIR}/${name}`;
  const restoreRun = inline(sh`kc_write_value ${file('run')} "$kc_run"`);
  const failUnmerged = `pages after ${timeout} s of unmerging (run=2), so merge_across_nodes cannot change; run set back to`;
  return [
    sh`kc_run=$(cat ${file('run')})`,
    sh`kc_write_value ${file('run')} 2`,
    sh`kc_i=0; while [ "$(cat ${file('pages_shared')})" != 0 ]; do if [ "$kc_i" -ge ${timeout} ]; then ${restoreRun}; kc_fail ${'KSM still shares'} "$(cat ${file('pages_shared')})" ${failUnmerged} "$kc_run"; fi; sleep 1; kc_i=$((kc_i + 1)); done`,
    sh`if ! (kc_set_value ${file('merge_across_nodes')} ${value}); then ${restoreRun}; kc_fail ${'merge_across_nodes was not changed; run set back to'} "$kc_run"; fi`,
    restore === null ? sh`kc_set_value ${file('run')} "$kc_run"` : sh`kc_set_value ${file('run')} ${restore}`,
  ];
}

/** Write a run value and read it back; 2 unmerges every shared page before the write returns. */
export function runCommand(run: KsmRun, root = ''): Command {
  return sh`kc_set_value ${`${root}${KSM_DIR}/run`} ${RUN_VALUE[run]}`;
}

/** The boot-time file: merge_across_nodes first (it must be written while nothing is merged), run last. */
function desiredTmpfiles(params: KsmParams): string | null {
  const writes = [
    ...(params.merge_across_nodes === undefined ? [] : [{ path: `${KSM_DIR}/merge_across_nodes`, value: params.merge_across_nodes }]),
    ...(params.run === undefined ? [] : [{ path: `${KSM_DIR}/run`, value: RUN_VALUE[params.run] }]),
  ];
  return writes.length ? renderTmpfiles(writes, 'ksm') : null;
}

const baseName = (path: string) => path.slice(path.lastIndexOf('/') + 1);

export const ksm = defineModule<KsmParams, KsmState>({
  name: 'ksm',
  summary: 'kernel samepage merging: run state, merge_across_nodes and the ksm/ksmtuned services',
  schema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      run: {
        enum: ['stop', 'run', 'unmerge'],
        description: 'stop (0): no new merging, shared pages stay shared; run (1): merge; unmerge (2): stop and unshare every merged page. stop is also met when run reads 2',
      },
      merge_across_nodes: {
        enum: [0, 1, true, false],
        description: '0/false: merge only pages of the same NUMA node (recommended on NUMA hosts). Changing it unmerges every shared page first (the kernel refuses it while pages are shared), then sets run back',
      },
      services: {
        enum: ['stopped', 'started', 'unmanaged'],
        description: 'the ksm and ksmtuned units: stopped and disabled (default when run is stop or unmerge), started and enabled, or left alone (default otherwise). Units the host does not have (Debian ships none) are reported as warnings',
      },
      persist: { type: 'boolean', description: `true (default): run and merge_across_nodes are written at every boot by ${KSM_TMPFILES}, which this task owns` },
    },
    anyOf: [{ required: ['run'] }, { required: ['merge_across_nodes'] }, { required: ['services'] }],
  },
  factsParams: { services: 'unmanaged', persist: false },

  normalize(raw) {
    const input = raw as { run?: KsmRun; merge_across_nodes?: number | boolean; services?: KsmParams['services']; persist?: boolean };
    const merge = input.merge_across_nodes;
    return {
      ...(input.run === undefined ? {} : { run: input.run }),
      ...(merge === undefined ? {} : { merge_across_nodes: merge === true || merge === 1 ? '1' : '0' }),
      services: input.services ?? (input.run === 'stop' || input.run === 'unmerge' ? 'stopped' : 'unmanaged'),
      persist: input.persist ?? true,
    } as KsmParams;
  },

  claims: (params) => fileClaims(params.persist ? [KSM_TMPFILES] : []),

  rules(params, facts) {
    const diagnostics: Diagnostic[] = [];
    if (params.services === 'started' && (params.run === 'stop' || params.run === 'unmerge')) {
      diagnostics.push({ severity: 'error', message: `services: started with run: ${params.run}: ksmtuned turns KSM back on by itself; use services: stopped` });
    }
    if (params.services === 'started' && params.run === 'run') {
      diagnostics.push({ severity: 'warning', message: 'ksmtuned starts and stops KSM by itself depending on free memory, so run may read 0 later and show as drift' });
    }
    if (params.merge_across_nodes !== undefined && facts.numaNodes.length <= 1) {
      diagnostics.push({ severity: 'warning', message: `merge_across_nodes: this host has ${facts.numaNodes.length || 'no'} NUMA node${facts.numaNodes.length === 1 ? '' : 's'}, so the setting has no effect here` });
    }
    if (params.services !== 'unmanaged' && !facts.systemd) {
      diagnostics.push({ severity: 'warning', message: 'this host does not run systemd: the ksm and ksmtuned services are not managed' });
    }
    return diagnostics;
  },

  /** The merge counters move on their own; a saved plan depends on the settings only. */
  planState: (actual) => ({ ...actual, values: Object.fromEntries(Object.entries(actual.values).filter(([name]) => !COUNTERS.has(name))) }),

  probe: () =>
    [
      READ_FN,
      `if [ -d ${KSM_DIR} ]; then`,
      `  for kc_f in ${FILES.join(' ')}; do if [ -f ${KSM_DIR}/$kc_f ]; then kc_read ${KSM_DIR}/$kc_f; echo "ksm $kc_f $kc_v"; fi; done`,
      `else echo 'ksm-absent'; fi`,
      `echo '@@units'`,
      unitProbe(KSM_UNITS),
      `echo '@@tmpfiles'`,
      tmpfilesProbe(KSM_TMPFILES),
    ].join('\n'),

  parse(output) {
    const units = output.indexOf('@@units\n');
    const tmpfiles = output.indexOf('@@tmpfiles\n', units);
    if (units < 0 || tmpfiles < 0) throw new Error('ksm probe output is truncated');
    const head = output.slice(0, units);
    const values: Record<string, string> = {};
    for (const line of head.split('\n')) {
      const [kind, name, ...rest] = line.split(' ');
      if (kind === 'ksm' && name) values[name] = rest.join(' ').trim();
    }
    return {
      present: !head.includes('ksm-absent'),
      values,
      units: parseUnitProbe(output.slice(units + '@@units\n'.length, tmpfiles)),
      tmpfiles: parseTmpfiles(output.slice(tmpfiles + '@@tmpfiles\n'.length)),
    };
  },

  diff(params, actual, context) {
    if (!actual.present) throw new Error(`KSM is not built into this kernel (no ${KSM_DIR}; CONFIG_KSM is off): nothing to configure`);
    const changes: Change[] = [];
    const live = actual.values;
    if (params.services !== 'unmanaged' && actual.units.systemd) {
      const wish = params.services === 'stopped' ? { enabled: false, state: 'stopped' as const } : { enabled: true, state: 'started' as const };
      for (const unit of KSM_UNITS) {
        changes.push(...planUnit('ksm', unit, wish, actual.units, { absentOk: true, warn: context.warn, absentNote: 'nothing to do for it (Debian and Ubuntu ship no KSM units)' }));
      }
    }
    const mergeChange = params.merge_across_nodes !== undefined && live.merge_across_nodes !== params.merge_across_nodes;
    if (params.merge_across_nodes !== undefined) {
      if (live.merge_across_nodes === undefined) throw new Error(`${KSM_DIR}/merge_across_nodes is missing: this kernel is built without NUMA support`);
      if (mergeChange) {
        const back = params.run ? `${params.run} (${RUN_VALUE[params.run]})` : `its current value (${live.run ?? '?'})`;
        changes.push({
          module: 'ksm', target: `${KSM_DIR}/merge_across_nodes`, scope: 'runtime', before: live.merge_across_nodes, after: params.merge_across_nodes,
          reason: `every shared page is unmerged first (run=2; ${live.pages_shared ?? '?'} pages shared now), then run is set to ${back}`,
          commands: mergeAcrossNodesCommands(params.merge_across_nodes, params.run ? RUN_VALUE[params.run] : null),
        });
      }
    }
    if (params.run !== undefined) {
      if (live.run === undefined) throw new Error(`${KSM_DIR}/run is missing`);
      if (!runMet(params.run, live.run)) {
        changes.push({ module: 'ksm', target: `${KSM_DIR}/run`, scope: 'runtime', before: runName(live.run), after: params.run, commands: [runCommand(params.run)] });
      }
      const shared = Number(live.pages_shared ?? 0);
      if (params.run === 'stop' && shared > 0 && !mergeChange) {
        context.warn(`run: stop leaves ${shared} pages merged (${live.pages_sharing ?? '?'} sharing them) until run: unmerge; stopping KSM or its services does not unshare them`);
      }
    }
    if (params.persist) {
      const desired = desiredTmpfiles(params);
      if (desired !== actual.tmpfiles) {
        changes.push(tmpfilesChange('ksm', KSM_TMPFILES, actual.tmpfiles, desired, baseName));
      }
    }
    return changes;
  },
});
