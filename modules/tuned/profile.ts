/**
 * Reads tuned profiles the way tuned loads them: tuned.conf files found by name in the
 * profile directories (/etc first, a file already loaded skipped so a profile can include
 * the packaged one of the same name), `include=` chains loaded before the profile that
 * names them, units merged with later options winning (`replace=`, `drop=`, `enabled=`).
 * The result says what the profile sets that other kvmconf modules also manage.
 */

/** Profile directories, highest priority first: tuned 2.23+ (.../profiles) and older (Debian 12's 2.20). */
export const TUNED_PROFILE_DIRS = ['/etc/tuned/profiles', '/etc/tuned', '/run/tuned/profiles', '/usr/lib/tuned/profiles', '/usr/lib/tuned'];

export interface IniSection {
  name: string;
  options: Record<string, string>;
}

/** Python ConfigParser as tuned configures it: `=` only, `#`/`;` full-line and ` #` inline comments, indented continuation lines. */
export function parseIni(text: string): IniSection[] {
  const sections: IniSection[] = [];
  let section: IniSection | null = null;
  let lastKey: string | null = null;
  for (const raw of text.split('\n')) {
    if (/^\s*[#;]/.test(raw) || raw.trim() === '') {
      if (raw.trim() === '') lastKey = null;
      continue;
    }
    const line = raw.replace(/\s#.*$/, '');
    if (lastKey && section && /^\s/.test(line)) {
      section.options[lastKey] = `${section.options[lastKey]} ${line.trim()}`.trim();
      continue;
    }
    const header = /^\[([^\]]+)\]/.exec(line.trim());
    if (header) {
      const name = header[1]!;
      section = sections.find((s) => s.name === name) ?? null;
      if (!section) sections.push((section = { name, options: {} }));
      lastKey = null;
      continue;
    }
    const eq = line.indexOf('=');
    if (!section || eq < 0) continue;
    lastKey = line.slice(0, eq).trim();
    section.options[lastKey] = line.slice(eq + 1).trim();
  }
  return sections;
}

export interface Option {
  value: string;
  /** The profile whose file set it. */
  from: string;
}

export interface Unit {
  type: string;
  enabled: boolean;
  devices: string;
  unameRegex: string | null;
  cpuinfoRegex: string | null;
  options: Record<string, Option>;
}

export interface MergedProfile {
  /** Profile names in load order, includes first, with the file each came from. */
  loaded: Array<{ name: string; file: string }>;
  units: Record<string, Unit>;
  variables: Record<string, string>;
}

const UNIT_KEYS = new Set(['type', 'enabled', 'replace', 'drop', 'devices', 'devices_udev_regex', 'cpuinfo_regex', 'uname_regex', 'script_pre', 'script_post', 'priority']);

function truthy(value: string | undefined, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  return /^(1|true|yes|on|y)$/i.test(value.trim());
}

/**
 * Loads `names` (a merged profile is several names) from `files` (path -> content of every
 * tuned.conf the probe found). Throws with tuned's own wording for a missing profile.
 */
export function loadProfiles(names: string[], files: Record<string, string>): MergedProfile {
  const processed: string[] = [];
  const order: Array<{ name: string; file: string; sections: IniSection[] }> = [];
  const locate = (name: string): string | null | '' => {
    let result: string | null = null;
    for (const dir of TUNED_PROFILE_DIRS) {
      const file = `${dir}/${name}/tuned.conf`;
      if (processed.includes(file)) {
        result = '';
        continue;
      }
      if (file in files) return file;
    }
    return result;
  };
  const load = (list: string[], depth: number) => {
    if (depth > 20) throw new Error('tuned profile includes nest more than 20 deep');
    for (const entry of list) {
      const conditional = entry.startsWith('-');
      const name = conditional ? entry.slice(1) : entry;
      if (!name || name.includes('$')) continue;
      const file = locate(name);
      if (file === '') continue;
      if (file === null) {
        if (conditional) continue;
        throw new Error(`cannot find tuned profile '${name}' in ${TUNED_PROFILE_DIRS.join(', ')}`);
      }
      processed.push(file);
      const sections = parseIni(files[file]!);
      const include = sections.find((s) => s.name === 'main')?.options.include;
      if (include) load(include.split(/\s*[,;]\s*/).map((item) => item.trim()).filter(Boolean), depth + 1);
      order.push({ name, file, sections });
    }
  };
  load(names, 0);

  const units: Record<string, Unit> = {};
  for (const { name, sections } of order) {
    for (const section of sections) {
      if (section.name === 'main') continue;
      const o = section.options;
      const options: Record<string, Option> = {};
      for (const [key, value] of Object.entries(o)) if (!UNIT_KEYS.has(key)) options[key] = { value, from: name };
      const incoming: Unit = {
        type: o.type ?? section.name,
        enabled: truthy(o.enabled, true),
        devices: o.devices ?? '*',
        unameRegex: o.uname_regex ?? null,
        cpuinfoRegex: o.cpuinfo_regex ?? null,
        options,
      };
      const existing = units[section.name];
      if (!existing || truthy(o.replace, false)) {
        units[section.name] = incoming;
        continue;
      }
      existing.type = incoming.type;
      existing.enabled = incoming.enabled;
      existing.devices = incoming.devices;
      if (incoming.unameRegex !== null) existing.unameRegex = incoming.unameRegex;
      if (incoming.cpuinfoRegex !== null) existing.cpuinfoRegex = incoming.cpuinfoRegex;
      for (const key of (o.drop ?? '').split(/\s*[,;]\s*|\s+/).filter(Boolean)) delete existing.options[key];
      Object.assign(existing.options, incoming.options);
    }
  }
  const variables = Object.fromEntries(Object.entries(units.variables?.options ?? {}).map(([key, option]) => [key, option.value]));
  delete units.variables;
  return { loaded: order.map(({ name, file }) => ({ name, file })), units, variables };
}

export type SettingKind = 'sysctl' | 'thp' | 'elevator' | 'cmdline' | 'sysfs';

export interface ProfileSetting {
  kind: SettingKind;
  /** sysctl key, `transparent_hugepages`, `elevator`, a kernel argument name, or a sysfs path glob. */
  key: string;
  value: string;
  from: string;
  /** Applies only on some CPUs (cpuinfo_regex): tuned decides on the host. */
  conditional: boolean;
  /** [disk] devices the elevator applies to (`*` = all). */
  devices?: string;
}

/** `${name}` from the profile's [variables]; `${f:function}` calls stay as written. */
function expand(value: string, variables: Record<string, string>): string {
  let text = value;
  for (let i = 0; i < 5 && /\$\{(?!f:)[^}]+\}/.test(text); i++) {
    text = text.replace(/\$\{(?!f:)([^}]+)\}/g, (whole, name: string) => variables[name] ?? whole);
  }
  return text;
}

/** What the merged profile sets that kvmconf modules manage, for a host whose `uname -a` is `uname`. */
export function profileSettings(profile: MergedProfile, uname: string): ProfileSetting[] {
  const settings: ProfileSetting[] = [];
  for (const unit of Object.values(profile.units)) {
    if (!unit.enabled) continue;
    if (unit.unameRegex !== null) {
      let matches = true;
      try {
        matches = new RegExp(unit.unameRegex, 'm').test(uname);
      } catch {
        matches = true;
      }
      if (!matches) continue;
    }
    const conditional = unit.cpuinfoRegex !== null;
    const add = (kind: SettingKind, key: string, option: Option, extra: Partial<ProfileSetting> = {}) =>
      settings.push({ kind, key, value: expand(option.value, profile.variables), from: option.from, conditional, ...extra });
    if (unit.type === 'sysctl') {
      for (const [key, option] of Object.entries(unit.options)) add('sysctl', key.replace(/\//g, '.'), option);
    } else if (unit.type === 'vm') {
      const option = unit.options.transparent_hugepages ?? unit.options.transparent_hugepage;
      if (option) add('thp', 'transparent_hugepages', option);
      const defrag = unit.options['transparent_hugepage.defrag'];
      if (defrag) add('sysfs', '/sys/kernel/mm/transparent_hugepage/defrag', defrag);
    } else if (unit.type === 'sysfs') {
      // Each option is a path glob (tuned expands it with Python's glob) and the value it writes.
      for (const [path, option] of Object.entries(unit.options)) add('sysfs', path, option);
    } else if (unit.type === 'disk') {
      const option = unit.options.elevator;
      if (option) add('elevator', 'elevator', option, { devices: unit.devices });
    } else if (unit.type === 'bootloader') {
      for (const [key, option] of Object.entries(unit.options)) {
        if (!key.startsWith('cmdline')) continue;
        for (const token of expand(option.value, profile.variables).split(/\s+/).filter(Boolean)) {
          settings.push({ kind: 'cmdline', key: token.split('=')[0]!, value: token, from: option.from, conditional });
        }
      }
    }
  }
  return settings;
}
