/**
 * kernel_module: load or blacklist a kernel module and set its parameters, as the guide
 * tunes `kvm halt_poll_ns`, `kvm_intel nested` or `vfio-pci ids`. A writable parameter
 * (mode with a w bit under /sys/module/NAME/parameters) is written live and read back;
 * a read-only one keeps the value the module was loaded with, so a difference waits for
 * a module reload. kvmconf unloads a module only with `reload: when-unused` and only while
 * nothing uses it (refcnt 0, no holders): unloading a NIC or storage driver in use can cut
 * the host off. The options and blacklist lines live in a modprobe.d file the task owns;
 * a loaded module is named in a modules-load.d file it owns too, so systemd-modules-load
 * loads it at boot (nothing else may: no device, no VM yet). Other modprobe.d files and
 * the kernel command line that override the owned options are warned about.
 */
import { awkReader, readWith, defineModule, fileDiff, quote, InputError, inline, words, sh, READ_FN, catFileProbe, parseFileBlock, writeFileCommand, removeFileCommand, fileClaims, type Change, type Command } from '../../src/kit/index.js';
import { conflictWarnings, modprobeProbe, parseModprobeProbe, sysName, type ModprobeView } from '../lib/modprobe.js';

export const MODULE_NAME_PATTERN = '^[a-z0-9][a-z0-9_-]{0,55}$';
export const OPTION_NAME_PATTERN = '^[a-z0-9_]{1,64}$';
/** Numbers, words, PCI ids and lists (`8086:10fb,10de:1b80`); no quote, space, `$` or backslash. */
export const OPTION_VALUE_PATTERN = '^[A-Za-z0-9_.:,+/-]{1,255}$';
const FILE_PATTERN = '^/etc/modprobe\\.d/[A-Za-z0-9_.-]+\\.conf$';

/** loaded: loaded now with its options; blacklisted: not loaded by alias at boot; unconfigured: kvmconf's file removed. */
export type ModuleState = 'loaded' | 'blacklisted' | 'unconfigured';

/** never: a read-only parameter waits for a module reload; when-unused: kvmconf reloads the module while nothing uses it. */
export type ReloadPolicy = 'never' | 'when-unused';

export interface KernelModuleParams {
  name: string;
  state: ModuleState;
  /** option -> value as written to modprobe.d and /sys (booleans as 1/0, which bool and int parameters both take). */
  options: Record<string, string>;
  persist: boolean;
  file: string;
  reload: ReloadPolicy;
}

export interface ParamState {
  /** The live value, whitespace folded; null when the module has no such parameter. */
  value: string | null;
  /** Mode has a w bit: the kernel takes a new value without a reload. */
  writable: boolean;
}

export interface KernelModuleState extends ModprobeView {
  loaded: boolean;
  /** Compiled into the kernel (no initstate, or listed in modules.builtin): modprobe.d options never reach it. */
  builtin: boolean;
  /** modprobe resolves the name for this kernel (null: not asked, the module is loaded or there is no modprobe). */
  available: boolean | null;
  refcnt: number;
  /** Modules that use this one (/sys/module/NAME/holders). */
  holders: string[];
  params: Record<string, ParamState>;
  file: string | null;
  /** The modules-load.d file's content (null: absent). */
  boot: string | null;
}

/** The modules-load.d file that loads the module at boot (state loaded, persist). */
export function bootFile(name: string): string {
  return `/etc/modules-load.d/kvmconf-${name}.conf`;
}

/**
 * `builtin` when modules.builtin lists the module kc_arg["name"]: it names files and may
 * spell `_` as `-`. Through the gather's awk: the file is several KB, which the shell's
 * read builtin takes a system call per byte for.
 */
const BUILTIN_READER = awkReader({
  name: 'builtin_module',
  begin: 'builtin_module_found = 0',
  line: 'if (!builtin_module_found && builtin_module_name($0) == kc_arg["name"]) builtin_module_found = 1',
  end: 'if (builtin_module_found) print "builtin"',
  functions: `function builtin_module_name(line, n) { n = line; sub(/.*\\//, "", n); if (!sub(/\\.ko.*$/, "", n)) return ""; gsub(/-/, "_", n); return n }`,
});

function paramPath(name: string, option: string): string {
  return `/sys/module/${sysName(name)}/parameters/${option}`;
}

/** Y/N, y/n, 1/0 -> '1'/'0' (how bool and invbool parameters read and write); anything else null. */
export function flag(text: string): '1' | '0' | null {
  if (/^[Yy1]$/.test(text)) return '1';
  if (/^[Nn0]$/.test(text)) return '0';
  return null;
}

/** A bool parameter prints Y/N but takes 1/0 as well: those compare as flags, the rest as text. */
export function sameValue(live: string, wanted: string): boolean {
  if (live === wanted) return true;
  return /^[YyNn]$/.test(live) && flag(live) !== null && flag(live) === flag(wanted);
}

export function renderModprobe(params: KernelModuleParams): string | null {
  const header = `# Managed by kvmconf (kernel_module ${params.name}); edits here are overwritten.\n`;
  if (params.state === 'blacklisted') return `${header}blacklist ${params.name}\n`;
  const options = Object.entries(params.options).map(([option, value]) => `${option}=${value}`);
  if (params.state === 'unconfigured' || !params.persist || !options.length) return null;
  return `${header}options ${params.name} ${options.join(' ')}\n`;
}

/** The modules-load.d file: the module's name while it should load at boot, else none. */
export function renderBootFile(params: KernelModuleParams): string | null {
  if (params.state !== 'loaded' || !params.persist) return null;
  return `# Managed by kvmconf (kernel_module ${params.name}): loaded at boot; edits here are overwritten.\n${params.name}\n`;
}

export const kernelModule = defineModule<KernelModuleParams, KernelModuleState>({
  name: 'kernel_module',
  summary: 'load or blacklist a kernel module; its parameters set live when writable (else reloaded while unused with reload: when-unused, or pending a module reload), persisted in modprobe.d',
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['name'],
    properties: {
      name: { type: 'string', pattern: MODULE_NAME_PATTERN, description: 'module name as modprobe takes it (- and _ alike)' },
      state: { enum: ['loaded', 'blacklisted', 'unconfigured'], description: 'loaded (default), blacklisted (never unloaded live), unconfigured (the owned file removed)' },
      options: {
        type: 'object', maxProperties: 64,
        propertyNames: { pattern: OPTION_NAME_PATTERN },
        additionalProperties: { anyOf: [{ type: 'integer' }, { type: 'boolean' }, { type: 'string', pattern: OPTION_VALUE_PATTERN }] },
        description: 'parameter -> value (booleans written 1/0, read back as Y/N or 1/0); only with state loaded',
      },
      persist: { type: 'boolean', description: 'write the options to the modprobe.d file (default true)' },
      file: { type: 'string', pattern: FILE_PATTERN, maxLength: 255, description: 'default /etc/modprobe.d/kvmconf-NAME.conf' },
      reload: {
        enum: ['never', 'when-unused'],
        description: 'never (default): a read-only parameter that differs waits for a module reload; when-unused: the module is reloaded (rmmod, modprobe) when nothing uses it (refcnt 0, no holders)',
      },
    },
  },

  normalize(raw) {
    const input = raw as { name: string; state?: ModuleState; options?: Record<string, string | number | boolean>; persist?: boolean; file?: string; reload?: ReloadPolicy };
    const state = input.state ?? 'loaded';
    if (state !== 'loaded' && input.options && Object.keys(input.options).length) {
      throw new InputError(`kernel_module ${input.name}: options are only set with state loaded, not ${state}`);
    }
    const options = Object.fromEntries(Object.entries(input.options ?? {}).map(([option, value]) => [option, typeof value === 'boolean' ? (value ? '1' : '0') : String(value)]));
    return { name: input.name, state, options, persist: input.persist ?? true, file: input.file ?? `/etc/modprobe.d/kvmconf-${input.name}.conf`, reload: input.reload ?? 'never' };
  },

  claims: (params) => fileClaims(params.state === 'loaded' && !params.persist ? [] : [params.file, bootFile(params.name)]),

  probe: (params) => {
    const dir = quote(`/sys/module/${sysName(params.name)}`);
    const options = Object.keys(params.options).map(quote);
    return [
      READ_FN,
      `if [ -d ${dir} ]; then`,
      `  echo loaded`,
      `  if [ -e ${dir}/initstate ]; then kc_read ${dir}/refcnt; printf 'refcnt %s\\n' "$kc_v"; else echo builtin; fi`,
      `  for kc_h in ${dir}/holders/*; do [ -e "$kc_h" ] && printf 'holder %s\\n' "\${kc_h##*/}"; done`,
      ...(options.length
        ? [
            `  for kc_p in ${options.join(' ')}; do if kc_read ${dir}/parameters/$kc_p; then printf 'param %s %s\\n' "$kc_p" "$kc_v"; else printf 'noparam %s\\n' "$kc_p"; fi; done`,
            // One stat for every parameter: root may write any file, so only the mode tells what the kernel accepts.
            `  (cd ${dir}/parameters 2>/dev/null && stat -c 'mode %a %n' ${options.join(' ')} 2>/dev/null)`,
          ]
        : []),
      `else`,
      // A built-in module without parameters has no /sys/module entry: modules.builtin says so.
      `  kc_read /proc/sys/kernel/osrelease; kc_b=/lib/modules/$kc_v/modules.builtin`,
      `  ${readWith(BUILTIN_READER, `${quote(`name=${sysName(params.name)}`)} "$kc_b"`)}`,
      `  if command -v modprobe >/dev/null 2>&1; then if modprobe -nq ${quote(params.name)} 2>/dev/null; then echo available; else echo unavailable; fi; fi`,
      `fi`,
      modprobeProbe(params.name),
      `echo '@@owned'`,
      catFileProbe(params.file),
      `echo '@@boot'`,
      catFileProbe(bootFile(params.name)),
    ].join('\n');
  },

  parse(output, params) {
    const owned = output.indexOf('@@owned\n');
    const boot = output.indexOf('\n@@boot\n', owned);
    if (owned < 0 || boot < 0) throw new Error('kernel_module probe output is truncated');
    const file = parseFileBlock(output.slice(owned + '@@owned\n'.length, boot + 1));
    const lines = output.slice(0, owned).split('\n');
    const state: KernelModuleState = {
      loaded: false, builtin: false, available: null, refcnt: 0, holders: [], params: {}, file, boot: parseFileBlock(output.slice(boot + '\n@@boot\n'.length)),
      ...parseModprobeProbe(params.name, lines),
    };
    for (const line of lines) {
      const [kind = '', first = '', ...rest] = line.split(' ');
      if (kind === 'loaded') state.loaded = true;
      else if (kind === 'builtin') state.builtin = true;
      else if (kind === 'available') state.available = true;
      else if (kind === 'unavailable') state.available = false;
      else if (kind === 'refcnt') state.refcnt = Number(first) || 0;
      else if (kind === 'holder') state.holders.push(first);
      else if (kind === 'param') state.params[first] = { value: rest.join(' ').trim(), writable: state.params[first]?.writable ?? false };
      else if (kind === 'noparam') state.params[first] = { value: null, writable: false };
      else if (kind === 'mode') {
        const option = rest.join(' ');
        const entry = state.params[option] ?? { value: null, writable: false };
        state.params[option] = { ...entry, writable: (parseInt(first, 8) & 0o222) !== 0 };
      }
    }
    return state;
  },

  diff(params, actual, context) {
    if (params.state === 'loaded' && actual.builtin) {
      if (Object.keys(params.options).length && params.persist) {
        context.warn(`${params.name} is built into this kernel: a modprobe.d file has no effect, none is written; keep the values across reboots with kernel_cmdline (${sysName(params.name)}.OPTION=VALUE)`);
      }
      return builtinChanges(params, actual);
    }
    const changes = fileChanges(params, actual);
    if (params.state === 'blacklisted' && actual.loaded) {
      context.warn(`${params.name} is loaded: the blacklist only stops it loading by alias at the next boot; kvmconf does not unload it (modprobe -r ${params.name} when nothing uses it)`);
    }
    if (params.state !== 'loaded') return changes;
    if (params.persist) moduleConflicts(params, actual).forEach((warning) => context.warn(warning));
    if (!actual.loaded) return [...changes, loadChange(params, actual, context)];
    return [...changes, ...parameterChanges(params, actual)];
  },
});

/** The owned modprobe.d and modules-load.d files written or removed; first, so a load right after reads them. */
function fileChanges(params: KernelModuleParams, actual: KernelModuleState): Change[] {
  if (params.state === 'loaded' && !params.persist) return [];
  return [ownedFileChange(params.file, actual.file, renderModprobe(params)), ownedFileChange(bootFile(params.name), actual.boot, renderBootFile(params))].filter((c): c is Change => c !== null);
}

function ownedFileChange(path: string, current: string | null, content: string | null): Change | null {
  if (current === content) return null;
  const commands: Command[] = [content === null ? removeFileCommand(path, current) : writeFileCommand(path, content, current)];
  return { module: 'kernel_module', target: path, scope: 'persist', before: summary(current), after: summary(content), diff: fileDiff(path, current, content), commands };
}

/** The option and blacklist lines of a file, for the one-line view of the change. */
function summary(content: string | null): string | null {
  if (content === null) return null;
  return content.split('\n').filter((line) => line && !line.startsWith('#')).join('; ') || '(empty)';
}

/** modprobe with the options on its command line when there is no file to hold them. */
function modprobeCommand(params: KernelModuleParams): Command {
  if (params.persist) return sh`modprobe ${params.name}`;
  return sh`modprobe ${params.name} ${words(Object.entries(params.options).map(([option, value]) => `${option}=${value}`))}`;
}

function readBackCommands(params: KernelModuleParams): Command[] {
  return Object.entries(params.options).map(([option, value]) => readBackCommand(params.name, option, value));
}

/** modprobe, then the module and each option read back from /sys. */
function loadChange(params: KernelModuleParams, actual: KernelModuleState, context: { warn(message: string): void }): Change {
  if (actual.available === false) throw new Error(`modprobe cannot find ${params.name} for the running kernel: install the module first`);
  const options = Object.entries(params.options);
  const commands: Command[] = [
    sh`${inline(modprobeCommand(params))} || kc_fail ${`modprobe ${params.name} failed`}`,
    sh`[ -d ${`/sys/module/${sysName(params.name)}`} ] || kc_fail ${`${params.name} is not in /sys/module after modprobe`}`,
    ...readBackCommands(params),
  ];
  if (!params.persist && !options.length) context.warn(`persist is false: ${params.name} is loaded now, but nothing loads it at the next boot`);
  const after = options.length ? `loaded ${options.map(([option, value]) => `${option}=${value}`).join(' ')}` : 'loaded';
  return { module: 'kernel_module', target: params.name, scope: 'runtime', before: 'not loaded', after, commands };
}

/** An option whose live value differs from the wanted one. */
interface Difference {
  option: string;
  live: string;
  wanted: string;
}

/** Writable parameters set live and read back; read-only ones reloaded together, or waiting for a reload. */
export function parameterChanges(params: KernelModuleParams, actual: KernelModuleState): Change[] {
  const differing = differences(params, actual);
  const readOnly = differing.filter(({ option }) => !actual.params[option]!.writable);
  const writable = differing.filter(({ option }) => actual.params[option]!.writable);
  return [...readOnlyChanges(params, actual, readOnly), ...writable.map((difference) => liveChange(params.name, difference))];
}

function differences(params: KernelModuleParams, actual: KernelModuleState): Difference[] {
  return Object.entries(params.options).flatMap(([option, wanted]) => {
    const live = actual.params[option]?.value;
    if (live === null || live === undefined) throw new Error(`${params.name} has no parameter ${option} (no ${paramPath(params.name, option)})`);
    return sameValue(live, wanted) ? [] : [{ option, live, wanted }];
  });
}

function liveChange(name: string, { option, live, wanted }: Difference): Change {
  return {
    module: 'kernel_module', target: `${name} ${option}`, scope: 'runtime', before: live, after: wanted,
    commands: [sh`kc_write_value ${paramPath(name, option)} ${writtenValue(live, wanted)}`, readBackCommand(name, option, wanted)],
  };
}

/** Something holds the module: unloading it would fail or cut its users off. */
export function inUse(actual: KernelModuleState): boolean {
  return actual.refcnt > 0 || actual.holders.length > 0;
}

function users(actual: KernelModuleState): string {
  return `refcnt ${actual.refcnt}${actual.holders.length ? `, held by ${actual.holders.join(', ')}` : ''}`;
}

function readOnlyChanges(params: KernelModuleParams, actual: KernelModuleState, readOnly: Difference[]): Change[] {
  if (!readOnly.length) return [];
  if (params.reload === 'when-unused' && !inUse(actual)) return [reloadChange(params, readOnly)];
  return readOnly.map((difference) => pendingChange(params, actual, difference));
}

/**
 * A read-only option kvmconf does not reload now. With reload: never and the option
 * persisted, only the next boot (or a reload by hand) applies it, so it waits for a
 * reboot: a rollout that may reboot finishes it, and none stops guests for a reload
 * that would not come.
 */
function pendingChange(params: KernelModuleParams, actual: KernelModuleState, { option, live, wanted }: Difference): Change {
  const reload = reloadByHand(params.name);
  const persisted = params.persist ? '' : '; persist is false, so a reload brings the default back: set persist to keep it';
  const byReboot = params.reload === 'never' && params.persist;
  const reason = params.reload === 'when-unused'
    ? `read-only parameter: ${params.name} is in use (${users(actual)}), so kvmconf does not reload it; it takes the new value when reloaded with its users stopped (${reload}) or the host boots${persisted}`
    : `read-only parameter: it takes the new value when the host boots${byReboot ? ' (modules-load.d loads it with the modprobe.d options)' : ''} or ${params.name} is reloaded by hand${inUse(actual) ? ` (in use: ${users(actual)})` : ''} (${reload})${persisted}; reload: when-unused lets kvmconf reload it while nothing uses it`;
  return { module: 'kernel_module', target: `${params.name} ${option}`, scope: 'pending', pendingOn: byReboot ? 'reboot' : 'module-reload', before: live, after: wanted, reason };
}

/** One reload sets every read-only option that differs; the change names them all. */
function reloadChange(params: KernelModuleParams, readOnly: Difference[]): Change {
  const [single] = readOnly.length === 1 ? readOnly : [];
  const values = (pick: (difference: Difference) => string) => single ? pick(single) : readOnly.map((difference) => `${difference.option}=${pick(difference)}`).join(' ');
  const transient = params.persist ? '' : '; persist is false: the options go on modprobe\'s command line, and the next load brings the defaults back';
  return {
    module: 'kernel_module', target: `${params.name} ${readOnly.map(({ option }) => option).join(' ')}`, scope: 'runtime',
    before: values(({ live }) => live), after: values(({ wanted }) => wanted),
    reason: `read-only parameter: nothing uses ${params.name} (refcnt 0, no holders), so it is reloaded with the new value${transient}`,
    commands: reloadCommands(params),
  };
}

/**
 * The module alone is unloaded: `modprobe -r` would also unload the modules it depends on
 * that nothing else uses (kvm under kvm_intel), losing their live parameters unannounced.
 */
export function reloadByHand(name: string): string {
  return `rmmod ${sysName(name)} && modprobe ${name}`;
}

/** Unload and load again (fails if something started using the module meanwhile), then read every option back. */
export function reloadCommands(params: KernelModuleParams): Command[] {
  return [
    sh`rmmod ${sysName(params.name)} && ${inline(modprobeCommand(params))} || kc_fail ${`reloading ${params.name} failed (did something start using it?)`}`,
    ...readBackCommands(params),
  ];
}

/** Values in two places mean the same: equal text, or the same flag however spelt. */
function sameSetting(found: string, wanted: string): boolean {
  return found === wanted || (flag(found) !== null && flag(found) === flag(wanted));
}

/** Other modprobe.d files and the kernel command line that set the owned options otherwise. */
export function moduleConflicts(params: KernelModuleParams, actual: KernelModuleState, same = sameSetting): string[] {
  return conflictWarnings({ name: params.name, owned: params.file, wanted: params.options, same }, actual);
}

/** A parameter that reads 1/0 takes 1/0 (an old int-typed `nested`): Y/N asked of it is written as a digit. */
function writtenValue(live: string, wanted: string): string {
  return /^[01]$/.test(live) && flag(wanted) !== null ? flag(wanted)! : wanted;
}

/** Reads a parameter back, Y/N and 1/0 compared as flags. */
export function readBackCommand(name: string, option: string, wanted: string): Command {
  const path = paramPath(name, option);
  const check = flag(wanted) === null
    ? sh`[ "$kc_got" = ${wanted} ]`
    : sh`case "$kc_got" in Y|y|1) [ ${flag(wanted)!} = 1 ] ;; N|n|0) [ ${flag(wanted)!} = 0 ] ;; *) false ;; esac`;
  return sh`kc_got=$(kc_read_value ${path}); ${inline(check)} || kc_fail ${`${name}: asked for ${option}=${wanted}, the kernel has`} "$kc_got"`;
}

/** A built-in module is always there; its read-only parameters are set only on the kernel command line. */
function builtinChanges(params: KernelModuleParams, actual: KernelModuleState): Change[] {
  const writable = (option: string) => actual.params[option]?.writable === true && actual.params[option]?.value !== null;
  const readOnly = Object.entries(params.options).filter(([option, wanted]) => {
    const live = actual.params[option]?.value;
    return !writable(option) && (live == null || !sameValue(live, wanted));
  });
  if (readOnly.length) {
    const args = readOnly.map(([option, value]) => `${sysName(params.name)}.${option}=${value}`).join(' ');
    throw new Error(`${params.name} is built into this kernel: modprobe.d options never reach it; set ${args} with the kernel_cmdline module`);
  }
  return parameterChanges({ ...params, options: Object.fromEntries(Object.entries(params.options).filter(([option]) => writable(option))) }, actual);
}

/** What the loaded module's parameters need: for a built-in one only live writes, never a reload. */
export function liveChanges(params: KernelModuleParams, actual: KernelModuleState): Change[] {
  return actual.builtin ? builtinChanges(params, actual) : parameterChanges(params, actual);
}
