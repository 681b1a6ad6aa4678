/** Runs a module's pure functions the way the engine does, for module unit tests. */
import { changeCommands as plannedCommands, type Change, type Diagnostic, type Module, type PlanContext } from '../../src/kit/module.js';
import type { HostFacts } from '../../src/kit/host-facts.js';
import type { Claim } from '../../src/kit/claims.js';
import { MODULES } from '../../modules/index.js';
import { parseFacts } from '../../src/engine/facts.js';
import { compile } from '../../src/config/schema.js';

export const TWO_NODE_FACTS: HostFacts = parseFacts(
  'os_id=debian\nos_version=12\nos_like=\nkernel=6.1.0-28-amd64\narch=x86_64\nuid=0\nsystemd=1\ncpus_online=0-1\n' +
    'cpu_flags=fpu pse pdpe1gb vmx\nsiblings 0 0\nsiblings 1 1\nnode 0 0 768000 600000\nnode 1 1 768000 610000\n' +
    'hugepage_sizes=1048576 2048\nmem_total=1536000\n',
);

export function normalize<P>(module: Module<P, unknown>, raw: unknown): P {
  const validate = compile(module.schema);
  if (!validate(raw)) throw new Error(`schema rejected ${JSON.stringify(raw)}: ${JSON.stringify(validate.errors)}`);
  return module.normalize ? module.normalize(raw) : (raw as P);
}

/** What a task of the named module with these playbook parameters claims, as the engine prepares it. */
export function claimsOf(moduleName: string, raw: unknown): Claim[] {
  const module = MODULES.find((candidate) => candidate.name === moduleName);
  if (!module) throw new Error(`no module ${moduleName}`);
  return module.claims?.(normalize(module, raw)) ?? [];
}

export function schemaAccepts(module: Module<unknown, unknown>, raw: unknown): boolean {
  return compile(module.schema)(raw) as boolean;
}

/**
 * A module's diff() as a reviewer reads it: each change's commands are kept, but not
 * enumerable, so tests compare what changes with deepEqual and still read
 * `change.commands` (or changeCommands) for what runs.
 */
export function diffOf<P, A>(module: Module<P, A>, params: P, actual: A, context: PlanContext): Change[] {
  return module.diff(params, actual, context).map((planned) => {
    const { commands, ...change } = planned;
    Object.defineProperty(change, 'commands', { value: plannedCommands(module.name, planned), enumerable: false });
    return change;
  });
}

/** The commands a change was planned with. */
export function changeCommands(module: { name: string }, change: Change): string[] {
  return plannedCommands(module.name, change);
}

export function plan<P, A>(module: Module<P, A>, raw: unknown, output: string, facts: HostFacts = TWO_NODE_FACTS, tasks: Array<{ module: string; name: string; params: unknown }> = []) {
  const params = normalize(module as Module<P, unknown>, raw);
  const actual = module.parse(output, params);
  const warnings: Diagnostic[] = [];
  const changes: Change[] = diffOf(module, params, actual, { facts, tasks, claims: [], warn: (message) => warnings.push({ severity: 'warning', message }) });
  return { params, actual, changes, warnings, commands: (change: Change) => changeCommands(module, change) };
}
