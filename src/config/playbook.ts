/**
 * Playbooks: a YAML list of plays in Ansible's shape. Validation runs in three steps
 * (schema -> normalise -> rules); the task schema is assembled from the modules' own.
 */
import type { Module } from '../kit/module.js';
import { InputError, InputErrors, didYouMean, type SourceLocation } from '../errors.js';
import { validateAt } from './schema.js';
import { ANSIBLE_YAML, readYaml, type YamlSource } from './yaml-source.js';
import { ANSIBLE_ONLY_KEYWORDS, moduleForAnsibleName } from './ansible-habits.js';
import { hasTemplate } from './template.js';

export interface Task {
  name: string;
  module: string;
  /** Parameters as written; rendered per host when they hold `{{ var }}` templates. */
  params: unknown;
  tags: string[];
  where: SourceLocation;
}

export interface Play {
  name: string;
  hosts: string;
  become: boolean;
  /** become_user: whom sudo runs the scripts as (root when unset). */
  becomeUser?: string;
  vars: Record<string, unknown>;
  /** Batch sizes for rolling runs: numbers of hosts or percentages of the play's hosts. */
  serial: Array<number | string>;
  maxFailPercentage: number;
  tags: string[];
  /** What kvmconf may do to finish pending work (reboot, module reload) and how guests are treated. */
  finish: FinishPolicy;
  tasks: Task[];
  where: SourceLocation;
}

export type Allow = 'never' | 'pending';

/** refuse: running domains hold the host; shutdown: ACPI shutdown, restarted after; command: the user's hook gates it. */
export type GuestsPolicyName = 'refuse' | 'shutdown' | 'command';

export interface GuestsPolicy {
  policy: GuestsPolicyName;
  /** Seconds to wait for every domain to shut off (shutdown), or for the hook to end (command). */
  timeoutS: number;
  /** shutdown: destroy domains still running after the timeout. */
  force: boolean;
  /** command: run on the host (as the play's user, with become); exit 0 lets the reboot or reload go on. */
  command?: string;
  /** libvirt connection whose domains are listed, stopped and started again. */
  uri: string;
}

export interface FinishPolicy {
  reboot: Allow;
  reload: Allow;
  /** Seconds a host has to come back after a reboot (new boot_id, SSH answering). */
  rebootTimeoutS: number;
  guests: GuestsPolicy;
}

export const DEFAULT_GUESTS: GuestsPolicy = { policy: 'refuse', timeoutS: 120, force: false, uri: 'qemu:///system' };
export const DEFAULT_FINISH: FinishPolicy = { reboot: 'never', reload: 'never', rebootTimeoutS: 600, guests: DEFAULT_GUESTS };

export interface Playbook {
  file: string;
  plays: Play[];
  source: YamlSource;
}

const TASK_KEYWORDS = ['name', 'tags'];
const tags = { anyOf: [{ type: 'string', pattern: '^[A-Za-z0-9_.-]+$' }, { type: 'array', items: { type: 'string', pattern: '^[A-Za-z0-9_.-]+$' } }] };
const allow = { enum: ['never', 'pending'] };
const guests = {
  anyOf: [
    { enum: ['refuse', 'shutdown'] },
    {
      type: 'object',
      additionalProperties: false,
      required: ['policy'],
      properties: {
        policy: { enum: ['refuse', 'shutdown', 'command'] },
        timeout: { type: 'integer', minimum: 1 },
        force: { type: 'boolean' },
        command: { type: 'string', minLength: 1 },
        uri: { type: 'string', pattern: '^[a-z][a-z0-9+]*://[^\\s\'"]*$' },
      },
    },
  ],
};
const batch = { anyOf: [{ type: 'integer', minimum: 1 }, { type: 'string', pattern: '^([1-9][0-9]?|100)%$' }] };

export const PLAY_SCHEMA = {
  type: 'object',
  required: ['hosts', 'tasks'],
  additionalProperties: false,
  properties: {
    name: { type: 'string' },
    hosts: { anyOf: [{ type: 'string', minLength: 1 }, { type: 'array', items: { type: 'string', minLength: 1 }, minItems: 1 }] },
    become: { type: 'boolean' },
    become_user: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_.-]{0,31}\\$?$' },
    vars: { type: 'object', propertyNames: { pattern: '^[A-Za-z_][A-Za-z0-9_]*$' } },
    serial: { anyOf: [batch, { type: 'array', items: batch, minItems: 1 }] },
    max_fail_percentage: { type: 'number', minimum: 0, maximum: 100 },
    reboot: allow,
    reload: allow,
    reboot_timeout: { type: 'integer', minimum: 1 },
    guests,
    tags,
    /** Ansible's module_defaults: parameters every task of that module in the play starts from. */
    module_defaults: { type: 'object', additionalProperties: { type: 'object' } },
    tasks: { type: 'array', items: { type: 'object' } },
  },
} as const;

/** The whole playbook schema, assembled from the modules' schemas (for editors and docs). */
export function playbookSchema(modules: Module[]): Record<string, unknown> {
  const task = {
    type: 'object',
    additionalProperties: false,
    minProperties: 1,
    properties: { name: { type: 'string' }, tags, ...Object.fromEntries(modules.map((m) => [m.name, m.schema])) },
  };
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    title: 'kvmconf playbook',
    type: 'array',
    items: { ...PLAY_SCHEMA, properties: { ...PLAY_SCHEMA.properties, tasks: { type: 'array', items: task } } },
  };
}

const toList = (value: unknown): string[] => (value === undefined ? [] : Array.isArray(value) ? value.map(String) : [String(value)]);

type ModuleDefaults = Record<string, Record<string, unknown>>;

const isMapping = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** A play's module_defaults, each naming a known module. */
function loadModuleDefaults(play: Record<string, unknown>, index: number, source: YamlSource, modules: Map<string, Module>): { defaults: ModuleDefaults; errors: InputError[] } {
  const raw = isMapping(play.module_defaults) ? play.module_defaults : {};
  const errors = Object.keys(raw)
    .filter((name) => !modules.has(name))
    .map((name) => new InputError(`module_defaults: unknown module '${name}'`, source.locate([index, 'module_defaults', name]), didYouMean(name, [...modules.keys()])));
  return { defaults: raw as ModuleDefaults, errors };
}

/** An unknown task key: an Ansible keyword gets its own answer, an Ansible module name its kvmconf module. */
function unknownTaskKey(key: string, where: SourceLocation, modules: Map<string, Module>): InputError {
  const answer = ANSIBLE_ONLY_KEYWORDS[key];
  if (answer) return new InputError(`'${key}' is Ansible's, not kvmconf's`, where, answer);
  const module = moduleForAnsibleName(key, modules.keys());
  if (module) return new InputError(`unknown module '${key}'`, where, `did you mean kvmconf's '${module}'? (kvmconf modules have short names)`);
  return new InputError(`unknown module or task key '${key}'`, where, didYouMean(key, [...modules.keys(), ...TASK_KEYWORDS]));
}

/** Play keys the schema refuses: Ansible's own keywords get their answer. */
function ansiblePlayKeys(play: unknown, index: number, source: YamlSource): InputError[] {
  if (!isMapping(play)) return [];
  return Object.keys(play)
    .filter((key) => !(key in PLAY_SCHEMA.properties) && ANSIBLE_ONLY_KEYWORDS[key])
    .map((key) => new InputError(`'${key}' is Ansible's, not kvmconf's`, source.locate([index, key]), ANSIBLE_ONLY_KEYWORDS[key]));
}

function loadTask(
  raw: Record<string, unknown>,
  path: (string | number)[],
  source: YamlSource,
  modules: Map<string, Module>,
  defaults: ModuleDefaults,
): { task?: Task; errors: InputError[] } {
  const errors: InputError[] = [];
  const moduleKeys = Object.keys(raw).filter((key) => !TASK_KEYWORDS.includes(key));
  const known = moduleKeys.filter((key) => modules.has(key));
  for (const key of moduleKeys.filter((k) => !modules.has(k))) errors.push(unknownTaskKey(key, source.locate([...path, key]), modules));
  if (known.length !== 1) {
    if (errors.length === 0) errors.push(new InputError(known.length ? `a task names one module, this one names ${known.join(', ')}` : 'a task must name a module', source.locate(path)));
    return { errors };
  }
  const moduleName = known[0]!;
  const written = raw[moduleName] ?? {};
  // As in Ansible, the task's own parameters win over the play's module_defaults, key by key.
  const params = defaults[moduleName] && isMapping(written) ? { ...defaults[moduleName], ...written } : written;
  const paramsPath = [...path, moduleName];
  // A value that came from module_defaults is reported where module_defaults writes it.
  const whereWritten = (p: (string | number)[]) =>
    typeof p[0] === 'string' && isMapping(written) && !(p[0] in written) && defaults[moduleName] && p[0] in defaults[moduleName]
      ? [path[0]!, 'module_defaults', moduleName, ...p]
      : [...paramsPath, ...p];
  if (!hasTemplate(params)) errors.push(...validateAt(modules.get(moduleName)!.schema, params, source, whereWritten, `${moduleName}: `));
  if (raw.name !== undefined && typeof raw.name !== 'string') errors.push(new InputError("'name' must be a string", source.locate([...path, 'name'])));
  const task: Task = { name: typeof raw.name === 'string' ? raw.name : moduleName, module: moduleName, params, tags: toList(raw.tags), where: source.locate(paramsPath) };
  return { task, errors };
}

/** The play's finishing options (schema-valid input), with the defaults filled in. */
export function loadFinish(play: Record<string, unknown>): FinishPolicy {
  const raw = play.guests;
  const written = typeof raw === 'string' ? { policy: raw } : isMapping(raw) ? raw : {};
  const guests: GuestsPolicy = {
    policy: (written.policy as GuestsPolicyName | undefined) ?? DEFAULT_GUESTS.policy,
    timeoutS: (written.timeout as number | undefined) ?? DEFAULT_GUESTS.timeoutS,
    force: (written.force as boolean | undefined) ?? DEFAULT_GUESTS.force,
    uri: (written.uri as string | undefined) ?? DEFAULT_GUESTS.uri,
    ...(typeof written.command === 'string' ? { command: written.command } : {}),
  };
  return {
    reboot: (play.reboot as Allow | undefined) ?? DEFAULT_FINISH.reboot,
    reload: (play.reload as Allow | undefined) ?? DEFAULT_FINISH.reload,
    rebootTimeoutS: (play.reboot_timeout as number | undefined) ?? DEFAULT_FINISH.rebootTimeoutS,
    guests,
  };
}

/** `guests: {policy: command}` needs its command; a command with another policy is a mistake. */
function guestsErrors(play: Record<string, unknown>, index: number, source: YamlSource): InputError[] {
  const raw = play.guests;
  if (!isMapping(raw)) return [];
  if (raw.policy === 'command' && typeof raw.command !== 'string') return [new InputError("guests: policy 'command' needs a 'command' to run", source.locate([index, 'guests']))];
  if (raw.policy !== 'command' && raw.command !== undefined) return [new InputError(`guests: 'command' is only used with policy 'command', not '${String(raw.policy)}'`, source.locate([index, 'guests', 'command']))];
  return [];
}

export function loadPlaybook(file: string, modules: Map<string, Module>): Playbook {
  // YAML 1.1 as Ansible reads playbooks: `become: yes`, `enabled: no` are booleans.
  const source = readYaml(file, ANSIBLE_YAML);
  if (!Array.isArray(source.data)) throw new InputError('a playbook is a list of plays', source.locate([]));
  const errors: InputError[] = [];
  const plays: Play[] = [];
  source.data.forEach((raw: unknown, index: number) => {
    const habits = ansiblePlayKeys(raw, index, source);
    const withoutHabits = isMapping(raw) && habits.length ? Object.fromEntries(Object.entries(raw).filter(([key]) => !ANSIBLE_ONLY_KEYWORDS[key] || key in PLAY_SCHEMA.properties)) : raw;
    const playErrors = [...habits, ...validateAt(PLAY_SCHEMA, withoutHabits, source, [index])];
    const play = (raw ?? {}) as Record<string, unknown>;
    if (!playErrors.length) playErrors.push(...guestsErrors(play, index, source));
    errors.push(...playErrors);
    const tasks: Task[] = [];
    const { defaults, errors: defaultErrors } = loadModuleDefaults(play, index, source, modules);
    errors.push(...defaultErrors);
    if (!Array.isArray(play.tasks)) return;
    (play.tasks as unknown[]).forEach((rawTask, taskIndex) => {
      if (!rawTask || typeof rawTask !== 'object' || Array.isArray(rawTask)) return; // the play schema reported it
      const { task, errors: taskErrors } = loadTask(rawTask as Record<string, unknown>, [index, 'tasks', taskIndex], source, modules, defaults);
      errors.push(...taskErrors);
      if (task) tasks.push(task);
    });
    if (playErrors.length) return;
    plays.push({
      name: (play.name as string | undefined) ?? `play ${index + 1}`,
      hosts: toList(play.hosts).join(','),
      become: (play.become as boolean | undefined) ?? false,
      ...(typeof play.become_user === 'string' && { becomeUser: play.become_user }),
      vars: (play.vars as Record<string, unknown> | undefined) ?? {},
      serial: play.serial === undefined ? [] : (Array.isArray(play.serial) ? play.serial : [play.serial]) as Array<number | string>,
      maxFailPercentage: (play.max_fail_percentage as number | undefined) ?? 100,
      tags: toList(play.tags),
      finish: loadFinish(play),
      tasks,
      where: source.locate([index]),
    });
  });
  if (errors.length) throw new InputErrors(errors);
  return { file, plays, source };
}
