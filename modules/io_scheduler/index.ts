/**
 * io_scheduler: the block I/O scheduler (elevator) of every whole disk matching a name
 * pattern. Live through /sys/block/DEV/queue/scheduler; persisted by a udev rule file
 * the task owns, because multi-queue kernels (5.0+) ignore `elevator=` on the command line.
 */
import { awkReader, configGlobs, readWith, defineModule, fileDiff, quote, READ_FN, catFileProbe, parseFileBlock, writeFileCommand, sh, shellCode, type Change, type Command, fileClaims } from '../../src/kit/index.js';

export const DEVICE_PATTERN = '^[a-z0-9*?\\[\\]-]+$';
export const SCHEDULERS = ['none', 'mq-deadline', 'kyber', 'bfq', 'noop', 'deadline', 'cfq'] as const;
/** Legacy single-queue names and what multi-queue kernels call them. */
export const MQ_NAMES: Record<string, string> = { noop: 'none', deadline: 'mq-deadline' };

const RULES_DIR = '/etc/udev/rules.d';
/** Directories udev reads rules from, highest priority first for files of the same name. */
const UDEV_DIRS = ['/etc/udev/rules.d', '/run/udev/rules.d', '/usr/local/lib/udev/rules.d', '/usr/lib/udev/rules.d', '/lib/udev/rules.d'];
/** Rule lines (comments aside) that assign a scheduler, as `rule FILE LINE`. */
const SCHEDULER_RULES_READER = awkReader({
  name: 'udev_scheduler',
  line: 'if ($0 !~ /^[[:space:]]*#/ && $0 ~ /ATTR\\{queue\\/scheduler\\}=[^=]/) print "rule", kc_file, $0',
});

/**
 * `dev NAME TEXT` for each /sys/block/NAME/queue/scheduler file (one line each): awk
 * reads a file in one system call, the shell's read builtin a byte per call (30 per
 * disk, and hosts with a SAN have hundreds of disks).
 */
const SCHEDULERS_READER = awkReader({
  name: 'schedulers',
  line: 'schedulers_d = kc_file; sub("/queue/scheduler$", "", schedulers_d); sub(".*/", "", schedulers_d); print "dev", schedulers_d, $0',
});

/** Virtual devices a broad pattern must not catch unless it names them. */
const SKIPPED = /^(loop|ram|zram|dm-)/;

export interface IoSchedulerParams {
  devices: string;
  /** null only for `kvmconf facts`, which reports without planning. */
  scheduler: string | null;
  persist: boolean;
}

export interface BlockDevice {
  name: string;
  /** The active scheduler; `none` for a queue without scheduler support. */
  selected: string;
  available: string[];
  /** false when the file reads a bare `none`: the queue cannot use a scheduler at all. */
  supportsScheduler: boolean;
}

export interface IoSchedulerState {
  kernel: string;
  devices: BlockDevice[];
  /** Wanted schedulers the kernel has registered (a queue lists them) or modprobe can load (the kernel loads them on first selection). */
  loadable: string[];
  udevadm: boolean;
  udevRunning: boolean;
  /** Other rule files that assign queue/scheduler, with the assigning line. */
  rules: Array<{ file: string; line: string }>;
  /** Content of the owned rule file, null when absent. */
  file: string | null;
}

/** `vd*`, `nvme*n*`, `sd[a-c]` -> a file-name-safe word: vd_star, nvme_star_n_star, sd_a-c. */
export function sanitisePattern(pattern: string): string {
  return pattern.replace(/\*/g, '_star_').replace(/\?/g, '_q_').replace(/[[\]]/g, '_').replace(/_+/g, '_').replace(/^_|_$/g, '');
}

export function rulePath(pattern: string): string {
  return `${RULES_DIR}/60-kvmconf-io-scheduler-${sanitisePattern(pattern)}.rules`;
}

/** fnmatch(3) as udev's KERNEL== uses it, for the characters the schema allows. */
export function globMatch(pattern: string, name: string): boolean {
  let source = '';
  for (let i = 0; i < pattern.length; i++) {
    const char = pattern[i]!;
    if (char === '*') source += '.*';
    else if (char === '?') source += '.';
    else if (char === '[' && pattern.indexOf(']', i + 2) > i) {
      const close = pattern.indexOf(']', i + 2);
      source += `[${pattern.slice(i + 1, close).replace(/[\\^]/g, '\\$&')}]`;
      i = close;
    } else source += char.replace(/[-[\]]/g, '\\$&');
  }
  return new RegExp(`^${source}$`).test(name);
}

/** Whether the pattern selects `name`: broad patterns leave loop/ram/zram/dm devices alone. */
export function selects(pattern: string, name: string): boolean {
  if (!globMatch(pattern, name)) return false;
  const prefix = SKIPPED.exec(name)?.[1];
  return !prefix || pattern.startsWith(prefix);
}

/** `[mq-deadline] kyber bfq none` / `none` (no scheduler support) -> selected and choices. */
export function parseSchedulerLine(name: string, text: string): BlockDevice {
  const words = text.trim().split(/\s+/).filter(Boolean);
  const bracketed = words.find((word) => word.startsWith('['));
  const available = words.map((word) => word.replace(/^\[|\]$/g, ''));
  if (!bracketed) return { name, selected: available[0] ?? 'none', available, supportsScheduler: false };
  return { name, selected: bracketed.slice(1, -1), available, supportsScheduler: true };
}

function isMultiQueue(state: IoSchedulerState): boolean {
  const match = /^(\d+)\./.exec(state.kernel);
  return (match !== null && Number(match[1]) >= 5) || state.devices.some((device) => device.supportsScheduler && (device.available.includes('mq-deadline') || device.available.includes('none')));
}

/** The name this kernel knows the wanted scheduler by, and why it differs from what was asked. */
export function effectiveScheduler(params: IoSchedulerParams, state: IoSchedulerState): { name: string; note?: string } {
  const asked = params.scheduler!;
  if (!isMultiQueue(state)) return { name: asked };
  if (asked === 'cfq') throw new Error('cfq does not exist on multi-queue kernels (Linux 5.0 and later): choose bfq, its successor, or mq-deadline');
  const mapped = MQ_NAMES[asked];
  return mapped ? { name: mapped, note: `${asked} is called ${mapped} on multi-queue kernels` } : { name: asked };
}

const listed = (name: string) => `*${quote(` ${name} `)}*|*${quote(`[${name}]`)}*`;

/** Prints `loadable NAME` when the first queue lists NAME or modprobe can load it; nothing when the first queue lists MOOT. */
function loadableCheck(name: string, moot: string | null): string {
  const modprobe = `if command -v modprobe >/dev/null 2>&1 && modprobe -nq ${quote(`${name}-iosched`)} 2>/dev/null; then echo ${quote(`loadable ${name}`)}; fi`;
  return `case $kc_first in ${listed(name)}) echo ${quote(`loadable ${name}`)} ;; ${moot ? `${listed(moot)}) ;; ` : ''}*) ${modprobe} ;; esac`;
}

export function renderRule(pattern: string, scheduler: string): string {
  return (
    '# Managed by kvmconf (io_scheduler); edits here are overwritten.\n' +
    `ACTION=="add|change", SUBSYSTEM=="block", ENV{DEVTYPE}=="disk", KERNEL=="${pattern}", ATTR{queue/scheduler}="${scheduler}"\n`
  );
}

/** Reloads udev's rules when udevd runs; in a container without it the rule waits for the next boot. */
export const RELOAD_COMMAND = shellCode`if command -v udevadm >/dev/null 2>&1 && [ -S /run/udev/control ]; then udevadm control --reload-rules; else echo 'kvmconf: udevd is not running here; the rule applies from the next boot'; fi`;

/** Atomic write of the owned rule file (guarded by the content the plan saw), then a reload of udev's rules. */
export function ruleCommands(path: string, content: string, previous: string | null): Command[] {
  return [writeFileCommand(path, content, previous), RELOAD_COMMAND];
}

function devicePath(name: string): string {
  return `/sys/block/${name}/queue/scheduler`;
}

export const ioScheduler = defineModule<IoSchedulerParams, IoSchedulerState>({
  name: 'io_scheduler',
  summary: 'block I/O scheduler of matching disks, live in sysfs and persisted by a udev rule',
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['devices', 'scheduler'],
    properties: {
      devices: { type: 'string', pattern: DEVICE_PATTERN, minLength: 1, maxLength: 64 },
      scheduler: { enum: [...SCHEDULERS] },
      persist: { type: 'boolean' },
    },
  },
  factsParams: { devices: '*', scheduler: null, persist: false },

  normalize: (raw) => {
    const input = raw as { devices: string; scheduler: string; persist?: boolean };
    return { devices: input.devices, scheduler: input.scheduler, persist: input.persist ?? true };
  },

  claims: (params) => [
    ...(params.scheduler ? [{ kind: 'sysfs' as const, path: devicePath(params.devices), value: params.scheduler }] : []),
    ...fileClaims(params.persist && params.scheduler ? [rulePath(params.devices)] : []),
  ],

  probe: (params) => {
    const wanted = params.scheduler ? [...new Set([params.scheduler, MQ_NAMES[params.scheduler] ?? params.scheduler])].filter((name) => name !== 'none') : [];
    // Two names only for deadline: the asked one, then its multi-queue name.
    const [asked, multiQueue] = wanted;
    return [
      READ_FN,
      `if kc_read /proc/sys/kernel/osrelease; then echo "kernel $kc_v"; else echo "kernel $(uname -r)"; fi`,
      `set --; kc_first=; for kc_d in /sys/block/*; do`,
      `  [ -e "$kc_d" ] || continue`,
      `  if [ -r "$kc_d/queue/scheduler" ]; then set -- "$@" "$kc_d/queue/scheduler"; else printf 'noqueue %s\\n' "\${kc_d##*/}"; fi`,
      `  [ -n "$kc_first" ] || { kc_read "$kc_d/queue/scheduler" && kc_first=" $kc_v "; }`,
      `done`,
      `if [ "$#" -gt 0 ]; then ${readWith(SCHEDULERS_READER, '"$@"')}; fi`,
      // A scheduler a queue lists is registered, and one that lists the multi-queue name makes the
      // old name moot (effectiveScheduler): only a scheduler no queue lists needs modprobe's word.
      ...wanted.map((name) => loadableCheck(name, name === asked ? multiQueue ?? null : null)),
      `if command -v udevadm >/dev/null 2>&1; then echo udevadm; fi`,
      `if [ -S /run/udev/control ]; then echo udevd; fi`,
      // One awk over every rule file for the lines that assign a scheduler.
      configGlobs(UDEV_DIRS, '*.rules'),
      readWith(SCHEDULER_RULES_READER, '$kc_g'),
      `echo '@@owned'`,
      catFileProbe(rulePath(params.devices)),
    ].join('\n');
  },

  parse(output) {
    const owned = output.indexOf('@@owned\n');
    if (owned < 0) throw new Error('io_scheduler probe output is truncated');
    const state: IoSchedulerState = {
      kernel: '', devices: [], loadable: [], udevadm: false, udevRunning: false, rules: [],
      file: parseFileBlock(output.slice(owned + '@@owned\n'.length)),
    };
    for (const line of output.slice(0, owned).split('\n')) {
      const [kind = '', first = '', ...rest] = line.split(' ');
      if (kind === 'kernel') state.kernel = first;
      else if (kind === 'dev') state.devices.push(parseSchedulerLine(first, rest.join(' ')));
      else if (kind === 'loadable') state.loadable.push(first);
      else if (kind === 'udevadm') state.udevadm = true;
      else if (kind === 'udevd') state.udevRunning = true;
      else if (kind === 'rule') state.rules.push({ file: first, line: rest.join(' ') });
    }
    return state;
  },

  diff(params, actual, context) {
    if (!params.scheduler) return [];
    const { name: wanted, note } = effectiveScheduler(params, actual);
    const changes: Change[] = [];
    const matched = actual.devices.filter((device) => selects(params.devices, device.name));
    if (!matched.length) {
      context.warn(`no block device with a scheduler matches '${params.devices}' on this host${params.persist ? '; the udev rule still applies to disks that appear later' : ''}`);
    }
    for (const device of matched) {
      if (device.selected === wanted) continue;
      if (!device.supportsScheduler) {
        throw new Error(`${device.name}: this queue cannot use an I/O scheduler (${devicePath(device.name)} reads '${device.available.join(' ')}'); narrow the devices pattern`);
      }
      const reasons = note ? [note] : [];
      if (!device.available.includes(wanted)) {
        if (!actual.loadable.includes(wanted)) {
          throw new Error(`${device.name}: the kernel does not offer the ${wanted} scheduler (choices: ${device.available.join(', ')}) and modprobe cannot load it`);
        }
        reasons.push(`the kernel loads the ${wanted} module when it is selected`);
      }
      changes.push({
        module: 'io_scheduler', target: devicePath(device.name), scope: 'runtime', before: device.selected, after: wanted,
        ...(reasons.length ? { reason: reasons.join('; ') } : {}),
        commands: [sh`kc_set_choice ${devicePath(device.name)} ${wanted}`],
      });
    }
    if (params.persist) {
      const path = rulePath(params.devices);
      const content = renderRule(params.devices, wanted);
      if (actual.file !== content) {
        const reasons = note ? [note] : [];
        if (!actual.udevRunning) reasons.push('udevd is not running here: the rule applies from the next boot');
        changes.push({
          module: 'io_scheduler', target: path, scope: 'persist',
          before: actual.file === null ? null : (/ATTR\{queue\/scheduler\}="([^"]*)"/.exec(actual.file)?.[1] ?? 'present'), after: wanted,
          ...(reasons.length ? { reason: reasons.join('; ') } : {}),
          diff: fileDiff(path, actual.file, content),
          commands: ruleCommands(path, content, actual.file),
        });
      }
      for (const warning of overrideWarnings(actual, path, wanted)) context.warn(warning);
    }
    return changes;
  },
});

/** udev applies rules in file-name order (an /etc file hides a same-named one elsewhere); a later ATTR write wins. */
export function overrideWarnings(state: IoSchedulerState, ownPath: string, wanted: string): string[] {
  const ownName = ownPath.slice(ownPath.lastIndexOf('/') + 1);
  const chosen = new Map<string, string>();
  for (const dir of UDEV_DIRS) {
    for (const { file } of state.rules) {
      const base = file.slice(file.lastIndexOf('/') + 1);
      if (file.startsWith(`${dir}/`) && !chosen.has(base)) chosen.set(base, file);
    }
  }
  const warnings: string[] = [];
  for (const { file, line } of state.rules) {
    const base = file.slice(file.lastIndexOf('/') + 1);
    if (base === ownName || chosen.get(base) !== file || base < ownName) continue;
    const value = /ATTR\{queue\/scheduler\}="([^"]*)"/.exec(line)?.[1];
    if (value === undefined || value === wanted) continue;
    warnings.push(`${file} is applied after ${ownPath} and sets queue/scheduler to ${value} for the disks it matches (${line.trim()}), so it may undo ${wanted} at boot`);
  }
  return [...new Set(warnings)];
}
