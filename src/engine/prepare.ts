/**
 * Turns a play's tasks into what runs on one host: tags filtered, templates rendered
 * with the host's vars, parameters validated against the module schema and normalised,
 * kernel command line tokens of all modules merged into one kernel_cmdline task, and
 * files owned by two tasks refused. Pure: no host is contacted.
 */
import type { Diagnostic, KernelArgs, Module } from '../kit/module.js';
import type { Play, Task } from '../config/playbook.js';
import { InputError, formatLocation } from '../errors.js';
import { render } from '../config/template.js';
import { compile } from '../config/schema.js';

export interface PreparedTask {
  name: string;
  module: Module;
  params: unknown;
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

export function selectedByTags(taskTags: string[], filter: TagFilter): boolean {
  if (filter.skipTags?.some((tag) => taskTags.includes(tag))) return false;
  if (!filter.tags?.length || filter.tags.includes('all')) return true;
  return taskTags.includes('always') || filter.tags.some((tag) => taskTags.includes(tag));
}

/** Validates and normalises one task's rendered parameters. */
function prepareTask(task: Task, params: unknown, modules: Map<string, Module>, hostName: string): PreparedTask {
  const module = modules.get(task.module)!;
  const validate = compile(module.schema);
  if (!validate(params)) {
    const detail = (validate.errors ?? []).map((e) => `${e.instancePath || 'parameters'} ${e.message}`).join('; ');
    throw new InputError(`${task.module}: on host ${hostName}, rendered parameters are invalid: ${detail}`, task.where);
  }
  return { name: task.name, module, params: module.normalize ? module.normalize(params) : params, tags: task.tags, where: task.where };
}

const tokenName = (token: string): string => token.split('=')[0]!;

/**
 * Merges every task's kernelArgs into the play's kernel_cmdline task (created when absent).
 * Each task's tokens keep their order (hugepagesz=1G hugepages=4 pairs stay together);
 * a name two tasks both mention must be asked identically by both.
 */
function mergeKernelArgs(tasks: PreparedTask[], modules: Map<string, Module>): PreparedTask[] {
  const cmdline = modules.get('kernel_cmdline');
  if (!cmdline) return tasks;
  const explicit = tasks.filter((task) => task.module === cmdline);
  const sources = tasks.flatMap((task) => {
    const args = task.module === cmdline ? (task.params as KernelArgs) : task.module.kernelArgs?.(task.params);
    return args && (args.tokens.length || args.absent?.length || task.module === cmdline) ? [{ task, args }] : [];
  });
  if (!sources.length) return tasks;
  const claimedBy = new Map<string, { task: PreparedTask; tokens: string[] }>();
  const tokens: string[] = [];
  const absent: string[] = [];
  for (const { task, args } of sources) {
    for (const name of new Set([...args.tokens.map(tokenName), ...(args.absent ?? [])])) {
      const wanted = args.tokens.filter((token) => tokenName(token) === name);
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
    tokens.push(...args.tokens.filter((token) => claimedBy.get(tokenName(token))!.task === task));
  }
  const first = explicit[0] ?? sources[0]!.task;
  const contributors = sources.filter(({ task }) => task.module !== cmdline).map(({ task }) => task.module.name);
  const merged: PreparedTask = {
    ...first,
    name: explicit[0]?.name ?? `kernel command line (for ${contributors.join(', ')})`,
    module: cmdline,
    params: { tokens, absent } satisfies KernelArgs,
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
    for (const file of task.module.ownedFiles?.(task.params) ?? []) {
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

/** One play's prepared tasks by rendered parameters: hosts whose parameters render alike share them. */
export type PreparedCache = Map<string, PreparedTask[]>;

/**
 * A host's tasks. Only rendering depends on the host: validation, normalising and
 * merging run once per distinct rendered input when a cache is given (the tasks are
 * then shared, and never mutated).
 */
export function prepareTasks(play: Play, modules: Map<string, Module>, vars: Record<string, unknown>, hostName: string, filter: TagFilter, cache?: PreparedCache): PreparedTask[] {
  const selected = play.tasks.filter((task) => selectedByTags([...play.tags, ...task.tags], filter));
  const rendered = selected.map((task) => render(task.params, vars, task.where));
  const key = cache && dataKey(rendered);
  const hit = key === undefined ? undefined : cache!.get(key);
  if (hit) return hit;
  const tasks = mergeKernelArgs(selected.map((task, index) => prepareTask(task, rendered[index], modules, hostName)), modules);
  checkOwnedFiles(tasks);
  if (key !== undefined) cache!.set(key, tasks);
  return tasks;
}
