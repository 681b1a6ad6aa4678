/**
 * Turns a play's tasks into what runs on one host: tags filtered, templates rendered
 * with the host's vars, parameters validated against the module schema and normalised,
 * kernel argument claims of all tasks merged into the one command line task, and tasks
 * whose claims collide refused. Pure: no host is contacted.
 */
import type { Diagnostic, Module } from '../kit/module.js';
import { kernelArgName, kernelArgsOf, ownedFiles, type Claim, type KernelArgs } from '../kit/claims.js';
import type { Play, Task } from '../config/playbook.js';
import { InputError, formatLocation } from '../errors.js';
import { render } from '../config/template.js';
import { compile } from '../config/schema.js';

export interface PreparedTask {
  name: string;
  module: Module;
  params: unknown;
  /** What the task declared it sets; the merged command line task claims what its playbook task asked, none when implicit. */
  claims: Claim[];
  tags: string[];
  /** Where the task is written; implicit tasks point at the first contributing task. */
  where: Task['where'];
  /** Warnings found before connecting (checks across hosts), shown with the task. */
  notes?: Diagnostic[];
}

export interface TagFilter {
  tags?: string[];
  skipTags?: string[];
}

/**
 * Ansible's rules (Taggable.evaluate_tags): no --tags means `all`, which runs every task
 * but those tagged `never`; `always` runs unless skipped by name or by `all`; a task
 * without tags is `untagged`; `tagged` selects any task with a tag (not `never`).
 */
export function selectedByTags(taskTags: string[], filter: TagFilter): boolean {
  const tags = taskTags.length ? taskTags : ['untagged'];
  const has = (tag: string) => tags.includes(tag);
  const tagged = taskTags.length > 0;
  const only = filter.tags?.length ? filter.tags : ['all'];
  const run =
    has('always') || (only.includes('all') && !has('never')) || only.some(has) || (only.includes('tagged') && tagged && !has('never'));
  if (!run) return false;
  const skip = filter.skipTags ?? [];
  if (skip.includes('all')) return has('always') && !skip.includes('always');
  return !skip.some(has) && !(skip.includes('tagged') && tagged);
}

/** Validates and normalises one task's rendered parameters. */
function prepareTask(task: Task, params: unknown, modules: Map<string, Module>, hostName: string): PreparedTask {
  const module = modules.get(task.module)!;
  const validate = compile(module.schema);
  if (!validate(params)) {
    const detail = (validate.errors ?? []).map((e) => `${e.instancePath || 'parameters'} ${e.message}`).join('; ');
    throw new InputError(`${task.module}: on host ${hostName}, rendered parameters are invalid: ${detail}`, task.where);
  }
  const normalized = module.normalize ? module.normalize(params) : params;
  return { name: task.name, module, params: normalized, claims: module.claims?.(normalized) ?? [], tags: task.tags, where: task.where };
}

/** The module that edits the kernel command line, when the registry has one. */
const cmdlineModule = (modules: Map<string, Module>): Module | undefined => [...modules.values()].find((module) => module.fromKernelArgs);

/**
 * Merges every task's kernel argument claims into the play's command line task (created when absent).
 * Each task's tokens keep their order (hugepagesz=1G hugepages=4 pairs stay together);
 * a name two tasks both mention must be asked identically by both.
 */
function mergeKernelArgs(tasks: PreparedTask[], modules: Map<string, Module>): PreparedTask[] {
  const cmdline = cmdlineModule(modules);
  if (!cmdline) return tasks;
  const explicit = tasks.filter((task) => task.module === cmdline);
  const sources = tasks.flatMap((task) => {
    const args = kernelArgsOf(task.claims);
    return args.tokens.length || args.absent?.length || task.module === cmdline ? [{ task, args }] : [];
  });
  if (!sources.length) return tasks;
  const claimedBy = new Map<string, { task: PreparedTask; tokens: string[] }>();
  const tokens: string[] = [];
  const absent: string[] = [];
  for (const { task, args } of sources) {
    for (const name of new Set([...args.tokens.map(kernelArgName), ...(args.absent ?? [])])) {
      const wanted = args.tokens.filter((token) => kernelArgName(token) === name);
      const previous = claimedBy.get(name);
      if (previous && previous.tokens.join(' ') !== wanted.join(' ')) {
        throw new InputError(
          `kernel command line '${name}': task '${task.name}' wants ${wanted.join(' ') || 'it absent'} but task '${previous.task.name}' (${formatLocation(previous.task.where)}) wants ${previous.tokens.join(' ') || 'it absent'}`,
          task.where,
        );
      }
      if (!previous) {
        claimedBy.set(name, { task, tokens: wanted });
        if (!wanted.length) absent.push(name);
      }
    }
    tokens.push(...args.tokens.filter((token) => claimedBy.get(kernelArgName(token))!.task === task));
  }
  const first = explicit[0] ?? sources[0]!.task;
  const contributors = sources.filter(({ task }) => task.module !== cmdline).map(({ task }) => task.module.name);
  const merged: PreparedTask = {
    ...first,
    name: explicit[0]?.name ?? `kernel command line (for ${contributors.join(', ')})`,
    module: cmdline,
    params: cmdline.fromKernelArgs!({ tokens, absent } satisfies KernelArgs),
    claims: explicit[0]?.claims ?? [],
  };
  // The merged task stands where the playbook writes kernel_cmdline; an implicit one comes last.
  const at = explicit[0] ? tasks.indexOf(explicit[0]) : tasks.length;
  const others = tasks.filter((task) => task.module !== cmdline);
  const before = tasks.slice(0, at).filter((task) => task.module !== cmdline).length;
  return [...others.slice(0, before), merged, ...others.slice(before)];
}

function checkOwnedFiles(tasks: PreparedTask[]): void {
  const owners = new Map<string, PreparedTask>();
  for (const task of tasks) {
    for (const file of new Set(ownedFiles(task.claims))) {
      const other = owners.get(file);
      if (other) {
        throw new InputError(
          `${file} is owned by task '${other.name}' (${formatLocation(other.where)}) and by task '${task.name}'`,
          task.where,
          `each task owns its file whole: put the keys of both in one task (sysctl: one 'settings:' map, not one task per key), or give one task another 'file:'`,
        );
      }
      owners.set(file, task);
    }
  }
}

/** The settings a claim holds a value for (`sysctl vm.swappiness`), for the kinds two tasks may not set differently. */
function valueClaims(claim: Claim): Array<{ setting: string; value: string }> {
  if (claim.kind === 'sysctl') return [{ setting: `sysctl ${claim.key}`, value: claim.value }];
  if (claim.kind === 'sysfs') return [{ setting: claim.path, value: claim.value }];
  if (claim.kind !== 'unit') return [];
  return [
    ...(claim.state === undefined ? [] : [{ setting: `${claim.unit} state`, value: claim.state }]),
    ...(claim.enabled === undefined ? [] : [{ setting: `${claim.unit} enabled`, value: String(claim.enabled) }]),
  ];
}

/** Two tasks setting one sysctl key, sysfs path or unit state to different values would undo each other at every run. */
function checkValueClaims(tasks: PreparedTask[]): void {
  const setters = new Map<string, { task: PreparedTask; value: string }>();
  for (const task of tasks) {
    for (const held of task.claims.flatMap(valueClaims)) {
      const previous = setters.get(held.setting);
      if (previous && previous.value !== held.value) {
        throw new InputError(
          `${held.setting}: task '${task.name}' sets ${held.value} but task '${previous.task.name}' (${formatLocation(previous.task.where)}) sets ${previous.value}`,
          task.where,
          'the two would undo each other at every run: set it in one task',
        );
      }
      if (!previous) setters.set(held.setting, { task, value: held.value });
    }
  }
}

/**
 * A key equal for equal plain data (order of keys included) and undefined for anything
 * else (class instances such as vaulted values): those are never shared between hosts.
 */
export function dataKey(value: unknown): string | undefined {
  if (value === null || typeof value === 'boolean' || typeof value === 'undefined') return String(value);
  if (typeof value === 'number') return Object.is(value, -0) ? '-0' : String(value);
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value !== 'object') return undefined;
  const proto = Object.getPrototypeOf(value);
  const isArray = Array.isArray(value);
  if (!isArray && proto !== Object.prototype && proto !== null) return undefined;
  const parts: string[] = [];
  for (const [key, item] of Object.entries(value)) {
    const part = dataKey(item);
    if (part === undefined) return undefined;
    parts.push(isArray ? part : `${JSON.stringify(key)}:${part}`);
  }
  return isArray ? `[${parts.join(',')}]` : `{${parts.join(',')}}`;
}

interface Rendered {
  params: unknown;
  /** dataKey of params. */
  key: string | undefined;
}

/**
 * A task's rendered parameters by the values of the variables its templates read, so
 * hosts that agree on those render once (a task without templates reads none). Bounded:
 * a variable of its own per host would otherwise keep a rendering per host.
 */
const renderings = new WeakMap<Task, { reads: string[]; byValues: Map<string, Rendered> }>();
const RENDERINGS_PER_TASK = 1024;

/** The values of the named variables as one key; undefined when one cannot be keyed (a vaulted value). */
function valuesKey(names: string[], vars: Record<string, unknown>): string | undefined {
  const parts: string[] = [];
  for (const name of names) {
    const part = Object.hasOwn(vars, name) ? dataKey(vars[name]) : '-';
    if (part === undefined) return undefined;
    parts.push(part);
  }
  return parts.join('\0');
}

function renderParams(task: Task, vars: Record<string, unknown>): Rendered {
  const known = renderings.get(task);
  const knownKey = known && valuesKey(known.reads, vars);
  const hit = knownKey === undefined ? undefined : known!.byValues.get(knownKey);
  if (hit) return hit;
  const reads = new Set<string>();
  const params = render(task.params, vars, task.where, reads);
  const result = { params, key: dataKey(params) };
  const memo = known ?? { reads: [...reads], byValues: new Map<string, Rendered>() };
  if (!known) renderings.set(task, memo);
  // The reads were just learnt when the task had none on record: key this host's values by them.
  const key = known ? knownKey : valuesKey(memo.reads, vars);
  if (key !== undefined && memo.byValues.size < RENDERINGS_PER_TASK) memo.byValues.set(key, result);
  return result;
}

/** One play's prepared tasks by rendered parameters: hosts whose parameters render alike share them. */
export type PreparedCache = Map<string, PreparedTask[]>;

/**
 * A host's tasks. Only rendering depends on the host: validation, normalising and
 * merging run once per distinct rendered input when a cache is given (the tasks are
 * then shared, and never mutated).
 */
export function prepareTasks(play: Play, modules: Map<string, Module>, vars: Record<string, unknown>, hostName: string, filter: TagFilter, cache?: PreparedCache): PreparedTask[] {
  const selected = play.tasks.filter((task) => selectedByTags([...play.tags, ...task.tags], filter));
  const rendered = selected.map((task) => renderParams(task, vars));
  const key = cache && rendered.every((r) => r.key !== undefined) ? `[${rendered.map((r) => r.key).join(',')}]` : undefined;
  const hit = key === undefined ? undefined : cache!.get(key);
  if (hit) return hit;
  const tasks = mergeKernelArgs(selected.map((task, index) => prepareTask(task, rendered[index]!.params, modules, hostName)), modules);
  checkOwnedFiles(tasks);
  checkValueClaims(tasks);
  if (key !== undefined) cache!.set(key, tasks);
  return tasks;
}
