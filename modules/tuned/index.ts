/**
 * tuned: the tuned daemon's profile (virtual-host on hypervisors, virtual-guest in guests)
 * and its service. tuned keeps the chosen profile in /etc/tuned/active_profile itself, so a
 * profile switch persists. The profile's own sysctl, THP, elevator and kernel-argument
 * settings are read so that a fight with another task of the play is reported, not repeated.
 */
import { awkReader, readWith, READ_FN, defineModule, quote, catFileProbe, parseFileBlock, writeFileCommand, sh, shellCode, words, type Change, type Command, type TaskClaims, claimsOfKind, kernelArgName, kernelArgsOf } from '../../src/kit/index.js';
import { TUNED_PROFILE_DIRS, loadProfiles, profileSettings, type ProfileSetting } from './profile.js';
import { MQ_NAMES } from '../io_scheduler/index.js';
import { THP_ENABLED } from '../thp/index.js';

export const PROFILE_PATTERN = '^[A-Za-z0-9_.-]+( [A-Za-z0-9_.-]+)*$';
export const ACTIVE_PROFILE_FILE = '/etc/tuned/active_profile';
export const PROFILE_MODE_FILE = '/etc/tuned/profile_mode';
const NOT_INSTALLED = 'tuned is not installed: install the tuned package';
/** is-enabled answers that mean the unit starts at boot. */
const ENABLED_STATES = new Set(['enabled', 'static', 'indirect', 'alias', 'generated']);

const TUNED_MAIN_CONF = '/etc/tuned/tuned-main.conf';

/** `kc_prefix_lines TAG TEXT` prints each line of TEXT after TAG and a space, with builtins only. */
const PREFIX_LINES_FN = [
  `kc_nl='\n'`,
  `kc_prefix_lines() { kc_px=$2; while [ -n "$kc_px" ]; do printf '%s %s\\n' "$1" "\${kc_px%%"$kc_nl"*}"; case $kc_px in *"$kc_nl"*) kc_px=\${kc_px#*"$kc_nl"} ;; *) kc_px= ;; esac; done; }`,
].join('\n');

/**
 * `kc_tuned_bus METHOD` sets kc_o to the string the tuned daemon returns for a method of its
 * D-Bus control interface; fails when the daemon does not answer (never starts it).
 */
const BUS_FN = `kc_tuned_bus() { kc_o=$(busctl --auto-start=no call com.redhat.tuned /Tuned com.redhat.tuned.control "$1" 2>/dev/null) || return 1; case $kc_o in 's "'*'"') kc_o=\${kc_o#'s "'}; kc_o=\${kc_o%'"'} ;; *) return 1 ;; esac; }`;

/** `reapply VALUE` of tuned-main.conf's last reapply_sysctl line. */
const REAPPLY_READER = awkReader({
  name: 'tuned_reapply',
  begin: 'tuned_reapply_v = ""; tuned_reapply_seen = 0',
  line: 'if (match($0, /^[[:space:]]*reapply_sysctl[[:space:]]*=[[:space:]]*/)) { tuned_reapply_v = substr($0, RLENGTH + 1); tuned_reapply_seen = 1 }',
  end: 'if (tuned_reapply_seen) print "reapply " tuned_reapply_v',
});

/**
 * `@@conf PATH`, the file and `@@conf-end` for the tuned.conf of kc_arg["profile"] and of
 * every profile it includes (a leading '-' marks an optional include), in each profile
 * directory in order. Only paths in kc_arg["known"] (newline-separated regular files the
 * shell found) are opened: mawk exits on reading a folder.
 */
const PROFILES_READER = awkReader({
  name: 'tuned_profiles',
  line: '',
  end: 'tuned_profiles_walk(kc_arg["profile"], kc_arg["known"])',
  functions: `function tuned_profiles_walk(todo, known_list, known, dirs, nd, parts, np, n, i, p, f, line, inc, seen) {
  split(known_list, parts, "\\n"); for (i in parts) known[parts[i]] = 1
  nd = split("${TUNED_PROFILE_DIRS.join(' ')}", dirs, " ")
  seen = " "
  for (n = 1; todo != "" && n <= 64; n++) {
    np = split(todo, parts); if (np == 0) break
    p = parts[1]; sub(/^-/, "", p)
    todo = ""; for (i = 2; i <= np; i++) todo = todo " " parts[i]
    if (p == "" || p ~ "[/$]" || index(seen, " " p " ")) continue
    seen = seen p " "
    for (i = 1; i <= nd; i++) {
      f = dirs[i] "/" p "/tuned.conf"
      if (!(f in known)) continue
      print "@@conf " f
      while ((getline line < f) > 0) {
        print line
        if (match(line, /^[[:space:]]*include[[:space:]]*=/)) { inc = substr(line, RLENGTH + 1); gsub(/[,;]/, " ", inc); todo = todo " " inc }
      }
      close(f)
      print ""
      print "@@conf-end"
    }
  }
}`,
});

export interface TunedParams {
  /** One profile or several merged ones, space separated; '' only for `kvmconf facts`. */
  profile: string;
  service: boolean;
}

export interface TunedState {
  installed: boolean;
  /** What tuned-adm reports the daemon runs (post-loaded profile included; `list` ends with what `active` prints); null: none. */
  active: string | null;
  postLoaded: string | null;
  /** tuned-adm said the daemon is not running and only showed the preset. */
  admNotRunning: boolean;
  available: string[];
  systemd: boolean;
  /** `systemctl is-enabled tuned` / `is-active tuned` output ('' when systemctl could not tell). */
  enabled: string;
  activeState: string;
  /** /run/tuned/tuned.pid names a live process. */
  daemon: boolean;
  /** reapply_sysctl of tuned-main.conf (tuned's default: on). */
  reapplySysctl: boolean;
  /** Raw content of /etc/tuned/active_profile and /etc/tuned/profile_mode (null: absent). */
  presetFile: string | null;
  modeFile: string | null;
  /** tuned.conf files of the wanted profile and everything it includes, by path. */
  profileFiles: Record<string, string>;
}

const running = (state: TunedState) => state.daemon || state.activeState === 'active' || (state.active !== null && !state.admNotRunning);
const preset = (state: TunedState) => state.presetFile?.trim() || null;
/** tuned's rule: an empty mode file means manual when a profile is preset. */
const manual = (state: TunedState) => {
  const mode = state.modeFile?.trim() ?? '';
  return mode === 'manual' || (mode === '' && preset(state) !== null);
};

/** The active profile without the post-loaded one tuned-adm appends to it. */
function activeProfile(state: TunedState): string | null {
  if (!running(state) || state.active === null) return null;
  const post = state.postLoaded;
  if (post && state.active.endsWith(` ${post}`)) return state.active.slice(0, -post.length - 1);
  if (post && state.active === post) return null;
  return state.active;
}

export function parseTunedProbe(output: string): TunedState {
  const state: TunedState = {
    installed: true, active: null, postLoaded: null, admNotRunning: false, available: [], systemd: false, enabled: '', activeState: '',
    daemon: false, reapplySysctl: true, presetFile: null, modeFile: null, profileFiles: {},
  };
  const presetAt = output.indexOf('@@preset\n');
  const modeAt = output.indexOf('@@mode\n');
  const confAt = output.indexOf('@@profiles\n');
  if (presetAt < 0 || modeAt < 0 || confAt < 0) throw new Error('tuned probe output is truncated');
  state.presetFile = parseFileBlock(output.slice(presetAt + '@@preset\n'.length, modeAt));
  state.modeFile = parseFileBlock(output.slice(modeAt + '@@mode\n'.length, confAt));
  for (const line of output.slice(0, presetAt).split('\n')) {
    const space = line.indexOf(' ');
    const kind = space < 0 ? line : line.slice(0, space);
    const rest = space < 0 ? '' : line.slice(space + 1);
    if (kind === 'absent') state.installed = false;
    else if (kind === 'adm-list') {
      const current = /^Current active profile: (.*)$/.exec(rest);
      const post = /^Current post-loaded profile: (.*)$/.exec(rest);
      if (current) state.active = current[1]!.trim() || null;
      else if (post) state.postLoaded = post[1]!.trim() || null;
      else if (rest.startsWith('It seems that tuned daemon is not running')) state.admNotRunning = true;
      else if (rest.startsWith('- ')) state.available.push(rest.slice(2).trim().split(/\s+/)[0]!);
    } else if (kind === 'profile-file') {
      const name = rest.split('/').at(-2);
      if (name && !state.available.includes(name)) state.available.push(name);
    } else if (kind === 'systemd') state.systemd = true;
    else if (kind === 'enabled') state.enabled = rest.trim();
    else if (kind === 'active') state.activeState = rest.trim();
    else if (kind === 'daemon') state.daemon = true;
    else if (kind === 'reapply' && rest.trim()) state.reapplySysctl = /^(1|true|yes|on)$/i.test(rest.trim());
  }
  state.available.sort();
  const confs = output.slice(confAt + '@@profiles\n'.length);
  for (const match of confs.matchAll(/^@@conf (\S+)\n([\s\S]*?)\n@@conf-end$/gm)) state.profileFiles[match[1]!] = match[2]!;
  return state;
}

function tunedAdmProfile(names: string[]): Command {
  return sh`tuned-adm profile ${words(names)}`;
}

/** `tuned-adm profile` and a read-back of what the daemon then reports. */
export function profileSwitchCommands(profile: string, postLoaded: string | null): Command[] {
  const expected = postLoaded ? `${profile} ${postLoaded}` : profile;
  return [
    tunedAdmProfile(profile.split(' ')),
    shellCode`kc_got=$(tuned-adm active 2>/dev/null | sed -n 's/^Current active profile: //p')`,
    sh`[ "$kc_got" = ${expected} ] || kc_fail "tuned-adm: asked for profile "${expected}", tuned reports '$kc_got'"`,
  ];
}

export const tuned = defineModule<TunedParams, TunedState>({
  name: 'tuned',
  summary: 'tuned profile and service; reports profile settings that fight other tasks',
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['profile'],
    properties: {
      profile: { type: 'string', pattern: PROFILE_PATTERN, maxLength: 256 },
      service: { type: 'boolean' },
    },
  },
  factsParams: { profile: '', service: false },

  normalize: (raw) => {
    const input = raw as { profile: string; service?: boolean };
    return { profile: input.profile, service: input.service ?? true };
  },

  probe: (params) =>
    [
      READ_FN,
      PREFIX_LINES_FN,
      // The tuned.conf files of every profile directory: the profiles there, and the files the awk below may open.
      `kc_k=; for kc_f in ${TUNED_PROFILE_DIRS.map((dir) => `${dir}/*/tuned.conf`).join(' ')}; do if [ -f "$kc_f" ]; then kc_k="$kc_k$kc_f$kc_nl"; fi; done`,
      BUS_FN,
      `if ! command -v tuned-adm >/dev/null 2>&1; then echo absent`,
      // The running daemon's answers over D-Bus, as the lines tuned-adm prints them (busctl, a C
      // program, starts in a tenth of tuned-adm's Python); when the daemon does not answer, tuned-adm
      // itself: `list` prints what `active` prints after the profiles (tuned 2.7 and later).
      `elif command -v busctl >/dev/null 2>&1 && kc_tuned_bus active_profile; then`,
      `  if [ -n "$kc_o" ]; then echo "adm-list Current active profile: $kc_o"; else echo 'adm-list No current active profile.'; fi`,
      `  if kc_tuned_bus post_loaded_profile && [ -n "$kc_o" ]; then echo "adm-list Current post-loaded profile: $kc_o"; fi`,
      `  kc_prefix_lines profile-file "$kc_k"`,
      `else kc_prefix_lines adm-list "$(tuned-adm list 2>/dev/null)"; fi`,
      `if [ -d /run/systemd/system ]; then echo systemd; fi`,
      `if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then printf 'enabled %s\\n' "$(systemctl is-enabled tuned 2>/dev/null)"; printf 'active %s\\n' "$(systemctl is-active tuned 2>/dev/null)"; fi`,
      `if kc_read /run/tuned/tuned.pid && kill -0 "$kc_v" 2>/dev/null; then echo daemon; fi`,
      readWith(REAPPLY_READER, TUNED_MAIN_CONF),
      `echo '@@preset'`,
      catFileProbe(ACTIVE_PROFILE_FILE),
      `echo '@@mode'`,
      catFileProbe(PROFILE_MODE_FILE),
      `echo '@@profiles'`,
      // Every tuned.conf of the wanted profiles and of what they include, in every profile
      // directory: the awk follows the includes among the regular files the shell found.
      readWith(PROFILES_READER, `${quote(`profile=${params.profile}`)} "known=$kc_k"`),
    ].join('\n'),

  parse: (output) => parseTunedProbe(output),

  diff(params, actual, context) {
    if (!actual.installed) throw new Error(NOT_INSTALLED);
    if (!params.profile) return [];
    const names = params.profile.split(' ');
    if (actual.available.length) {
      const unknown = names.filter((name) => !actual.available.includes(name));
      if (unknown.length) throw new Error(`unknown tuned profile ${unknown.map((n) => `'${n}'`).join(', ')}; available: ${actual.available.join(', ')}`);
    }
    try {
      const merged = loadProfiles(names, actual.profileFiles);
      const uname = `Linux ${context.facts.kernel} ${context.facts.arch}`;
      conflictWarnings(profileSettings(merged, uname), params.profile, actual.reapplySysctl, context.claims).forEach((warning) => context.warn(warning));
    } catch (error) {
      if (!actual.available.length) throw error;
      context.warn(`cannot read the files of tuned profile '${params.profile}' (${(error as Error).message}): its settings were not checked against the other tasks`);
    }

    const changes: Change[] = [];
    const isRunning = running(actual);
    if (params.service) {
      if (!actual.systemd) throw new Error('this host does not run systemd: kvmconf cannot enable or start tuned here; set service: false');
      if (actual.enabled === 'masked') throw new Error('tuned.service is masked: unmask it (systemctl unmask tuned) if tuned should run');
      if (actual.enabled === '' || actual.enabled === 'not-found') throw new Error('tuned.service is not known to systemd although tuned-adm is installed: reinstall the tuned package');
      if (!ENABLED_STATES.has(actual.enabled)) {
        changes.push({
          module: 'tuned', target: 'tuned.service', scope: 'persist', before: actual.enabled, after: 'enabled', reason: 'tuned must start at boot to apply its profile',
          commands: [shellCode`systemctl enable tuned`, shellCode`[ "$(systemctl is-enabled tuned)" = enabled ] || kc_fail 'tuned.service is still not enabled'`],
        });
      }
      if (!isRunning) {
        changes.push({
          module: 'tuned', target: 'tuned.service', scope: 'runtime', before: actual.activeState || 'inactive', after: 'active',
          commands: [shellCode`systemctl start tuned`, shellCode`systemctl is-active --quiet tuned || kc_fail 'tuned did not start: see journalctl -u tuned'`],
        });
      }
    }
    const switchProfile = profileSwitchCommands(params.profile, actual.postLoaded);
    const persists = `tuned keeps the profile in ${ACTIVE_PROFILE_FILE} (mode manual) and loads it at every start, so the switch persists`;
    if (isRunning || params.service) {
      // A tuned about to be started loads the preset in manual mode, its recommendation in auto mode.
      const effective = isRunning ? activeProfile(actual) : manual(actual) ? preset(actual) : null;
      if (effective !== params.profile) {
        changes.push({
          module: 'tuned', target: 'profile', scope: 'runtime', before: effective, after: params.profile,
          reason: actual.active === null && isRunning ? `tuned runs without a profile (tuned-adm off); ${persists}` : persists,
          commands: switchProfile,
        });
      } else if (preset(actual) !== params.profile || !manual(actual)) {
        changes.push({
          module: 'tuned', target: ACTIVE_PROFILE_FILE, scope: 'persist', before: `${preset(actual) ?? '(none)'} (${manual(actual) ? 'manual' : 'auto'})`, after: `${params.profile} (manual)`,
          reason: 'in auto mode tuned picks its recommended profile at every start; selecting the profile again with tuned-adm makes the choice stick',
          commands: switchProfile,
        });
      }
    } else if (preset(actual) !== params.profile || !manual(actual)) {
      changes.push({
        module: 'tuned', target: ACTIVE_PROFILE_FILE, scope: 'persist', before: preset(actual), after: params.profile,
        reason: 'tuned is not running and service is false: the profile is stored for tuned to load when it starts',
        commands: [writeFileCommand(ACTIVE_PROFILE_FILE, `${params.profile}\n`, actual.presetFile), writeFileCommand(PROFILE_MODE_FILE, 'manual\n', actual.modeFile)],
      });
    }
    return changes;
  },

  rules(params, facts) {
    if (params.service && !facts.systemd) {
      return [{ severity: 'error', message: 'tuned: service management needs systemd, which this host does not run; set service: false' }];
    }
    return [];
  },
});

// ---------------------------------------------------------------- conflicts with other tasks

function canonical(value: string): string {
  return value.trim().split(/\s+/).join(' ');
}

/** Whether tuned's value (with its `>N` / `<N` only-raise / only-lower forms) leaves `ours` alone. */
function tunedAgrees(tunedValue: string, ours: string): boolean {
  const modifier = /^([<>])\s*(-?\d+)$/.exec(tunedValue.trim());
  if (modifier && /^-?\d+$/.test(ours.trim())) {
    const limit = Number(modifier[2]);
    return modifier[1] === '>' ? Number(ours) >= limit : Number(ours) <= limit;
  }
  return canonical(tunedValue) === canonical(ours);
}

function sets(setting: ProfileSetting): string {
  return `tuned profile '${setting.from}' ${setting.conditional ? 'may set (on some CPUs)' : 'sets'}`;
}

function sysctlConflicts(settings: ProfileSetting[], { task, claims }: TaskClaims, reapply: string, reapplySysctl: boolean): string[] {
  const keys = claimsOfKind(claims, 'sysctl');
  return settings.filter((s) => s.kind === 'sysctl').flatMap((setting) => {
    const ours = keys.find((claim) => claim.key === setting.key);
    if (!ours || tunedAgrees(setting.value, ours.value)) return [];
    const winner = ours.persistedIn !== null && reapplySysctl
      ? `at boot ${reapply} and ${ours.persistedIn} sets ${ours.value} again, so ${ours.value} wins; kvmconf keeps it at run time too`
      : `${ours.persistedIn !== null ? reapply : 'the sysctl task does not persist'}, so tuned's ${setting.value} wins at every boot and profile load and kvmconf sets ${ours.value} back at each run: the two alternate; align them or drop the key from the profile`;
    return [`sysctl ${setting.key}: ${sets(setting)} ${setting.value} but task '${task}' sets ${ours.value}; ${winner}`];
  });
}

/** vm.nr_hugepages is the system-wide pool of the default page size. */
function hugepageConflicts(settings: ProfileSetting[], { task, claims }: TaskClaims, reapply: string): string[] {
  const pool = claimsOfKind(claims, 'hugepage-pool').find((claim) => claim.sizeKiB === null && claim.node === null);
  const setting = settings.find((s) => s.kind === 'sysctl' && s.key === 'vm.nr_hugepages');
  if (!pool || !setting || tunedAgrees(setting.value, String(pool.count))) return [];
  const ours = String(pool.count);
  return [
    `vm.nr_hugepages: ${sets(setting)} ${setting.value} but task '${task}' asks for ${ours}; tuned writes its value whenever it starts or loads the profile, ${reapply}; ` +
      `kvmconf sets ${ours} back at each run, so the pool shrinks and grows: align them or drop vm.nr_hugepages from the profile`,
  ];
}

function thpConflicts(settings: ProfileSetting[], { task, claims }: TaskClaims): string[] {
  const enabled = claimsOfKind(claims, 'sysfs').find((claim) => claim.path === THP_ENABLED)?.value;
  const setting = settings.find((s) => s.kind === 'thp');
  if (enabled === undefined || !setting || canonical(setting.value) === enabled) return [];
  const onCmdline = claimsOfKind(claims, 'kernel-arg').some((claim) => claim.token === `transparent_hugepage=${enabled}`);
  const winner = onCmdline
    ? `task '${task}' puts transparent_hugepage=${enabled} on the kernel command line and tuned leaves THP alone when the command line sets it, so ${enabled} wins once the host has rebooted with it; until then tuned sets ${setting.value} whenever it loads the profile`
    : `tuned sets ${setting.value} at every boot and profile load and kvmconf sets ${enabled} back at each run: the two alternate`;
  return [`transparent hugepages: ${sets(setting)} ${setting.value} but task '${task}' sets ${enabled}; ${winner}`];
}

function schedulerConflicts(settings: ProfileSetting[], { task, claims }: TaskClaims): string[] {
  const setting = settings.find((s) => s.kind === 'elevator');
  if (!setting) return [];
  return claimsOfKind(claims, 'sysfs').flatMap(({ path, value }) => {
    const devices = SCHEDULER_PATH.exec(path)?.[1];
    if (devices === undefined || mqName(setting.value) === mqName(value)) return [];
    return [
      `I/O scheduler: ${sets(setting)} elevator=${setting.value} for ${setting.devices === '*' ? 'all disks' : `disks ${setting.devices}`} but task '${task}' sets ${value} for ${devices}; ` +
        `tuned applies its elevator when it starts (after udev's rules) and when disks appear, so ${setting.value} wins at boot and kvmconf sets ${value} back at each run: the two alternate; align them or drop elevator from the profile`,
    ];
  });
}

function cmdlineConflicts(settings: ProfileSetting[], { task, claims }: TaskClaims): string[] {
  const { tokens, absent = [] } = kernelArgsOf(claims);
  const names = new Set([...tokens.map(kernelArgName), ...absent]);
  return settings.filter((s) => s.kind === 'cmdline' && names.has(s.key) && !tokens.includes(s.value)).map((setting) => {
    const ours = tokens.filter((token) => kernelArgName(token) === setting.key).join(' ') || 'it absent';
    return `kernel command line ${setting.key}: ${sets(setting)} ${setting.value} through its bootloader plugin ($tuned_params, after GRUB_CMDLINE_LINUX) but task '${task}' wants ${ours}; the later argument usually wins, which is tuned's: align them`;
  });
}

const SCHEDULER_PATH = /^\/sys\/block\/(.+)\/queue\/scheduler$/;

/** A scheduler as blk-mq names it (deadline is mq-deadline). */
function mqName(name: string): string {
  return MQ_NAMES[canonical(name)] ?? canonical(name);
}

/** A glob as Python's glob matches a path: `*`, `?` and `[...]` within one path component. */
function globMatcher(pattern: string): RegExp {
  const source = pattern.replace(/\[!?([^\]/]*)\]|[*?]|[^*?[]+|\[/g, (part, set: string | undefined) => {
    if (set !== undefined) return `[${part[1] === '!' ? '^' : ''}${set.replace(/[\\\]^]/g, '\\$&')}]`;
    if (part === '*') return '[^/]*';
    if (part === '?') return '[^/]';
    return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  });
  return new RegExp(`^${source}$`);
}

/**
 * A [sysfs] path (or [vm] transparent_hugepage.defrag) that a task of the play writes too.
 * Either may be a glob (io_scheduler's devices on the task's side), so each is matched
 * against the other.
 */
function sysfsConflicts(settings: ProfileSetting[], { task, claims }: TaskClaims): string[] {
  const overlap = (pattern: string, path: string) => pattern === path || globMatcher(pattern).test(path) || globMatcher(path).test(pattern);
  const same = (path: string, a: string, b: string) => SCHEDULER_PATH.test(path) ? mqName(a) === mqName(b) : canonical(a) === canonical(b);
  return settings.filter((s) => s.kind === 'sysfs').flatMap((setting) =>
    claimsOfKind(claims, 'sysfs').filter(({ path, value }) => overlap(setting.key, path) && !same(path, setting.value, value)).map(({ path, value }) =>
      `sysfs ${path}: ${sets(setting)} ${setting.value}${setting.key === path ? '' : ` (through ${setting.key})`} but task '${task}' sets ${value}; ` +
        `tuned writes it when it starts (after systemd-tmpfiles and udev at boot) and whenever it loads the profile, so ${setting.value} wins at boot and kvmconf sets ${value} back at each run: the two alternate; align them or drop the path from the profile`));
}

/** One warning per setting the profile and another task of the play both set, differently, with who wins. */
export function conflictWarnings(settings: ProfileSetting[], profile: string, reapplySysctl: boolean, tasks: readonly TaskClaims[]): string[] {
  const reapply = reapplySysctl
    ? 'tuned then re-applies /etc/sysctl.d (reapply_sysctl = 1)'
    : 'tuned starts after systemd-sysctl and does not re-apply /etc/sysctl.d (reapply_sysctl = 0)';
  const warnings: string[] = [];
  for (const task of tasks) {
    warnings.push(
      ...sysctlConflicts(settings, task, reapply, reapplySysctl),
      ...hugepageConflicts(settings, task, reapply),
      ...thpConflicts(settings, task),
      ...schedulerConflicts(settings, task),
      ...sysfsConflicts(settings, task),
      ...cmdlineConflicts(settings, task),
    );
  }
  return warnings.map((warning) => (warning.includes(profile) ? warning : `${warning} (included by profile ${profile})`));
}
