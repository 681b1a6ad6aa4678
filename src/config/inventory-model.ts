/**
 * The inventory as Ansible builds it, whatever the sources: groups, hosts, parent/child
 * edges and variables, filled by the YAML, INI and script readers in the order the
 * sources are read, then resolved into hosts with their final variables.
 *
 * Variable precedence follows Ansible's defaults (lowest to highest):
 *   1. vars of group `all` written in the inventory sources
 *   2. vars of the host's other groups written in the sources, parents before
 *      children (by depth, then `ansible_group_priority`, then name)
 *   3. group_vars/all files, 4. group_vars/<group> files in the same group order,
 *      each once per inventory source (a later source's files win)
 *   5. vars of the host written in the sources
 *   6. host_vars/<host> files, once per inventory source
 * so a group's group_vars file always wins over that group's vars in an inventory file.
 */
import { InputError, InputErrors, type SourceLocation } from '../errors.js';
import type { Inventory, InventoryGroup, InventoryHost } from './inventory.js';

export interface GroupDefinition {
  name: string;
  /** Hosts listed directly under the group, in the order they were added. */
  hosts: string[];
  children: string[];
  parents: string[];
  vars: Record<string, unknown>;
  /** Variables of group_vars files, one entry per inventory source. */
  fileVars: Array<Record<string, unknown>>;
  /** `ansible_group_priority`: among groups of one depth, higher wins (default 1). */
  priority: number;
}

export interface HostDefinition {
  name: string;
  direct: Set<string>;
  vars: Record<string, unknown>;
  /** Variables of host_vars files, one entry per inventory source. */
  fileVars: Array<Record<string, unknown>>;
  /** Folder of the source that first named the host: relative paths in its vars resolve against it. */
  dir: string;
}

/** Where each variable of a vars object was written, for errors found after the merge. */
const ORIGINS = new WeakMap<object, Map<string, SourceLocation>>();

/** Object.assign for inventory variables, remembering where each one was written. */
export function assignVars(target: Record<string, unknown>, vars: Record<string, unknown>, locate: (key: string) => SourceLocation): void {
  Object.assign(target, vars);
  let origins = ORIGINS.get(target);
  if (!origins) ORIGINS.set(target, (origins = new Map()));
  for (const key of Object.keys(vars)) origins.set(key, locate(key));
}

/** Where the variable that won the merge came from: the last layer that sets it. */
function originIn(layers: Array<Record<string, unknown> | undefined>): (key: string) => SourceLocation | undefined {
  return (key) => {
    for (let index = layers.length - 1; index >= 0; index--) {
      const layer = layers[index];
      if (layer && Object.prototype.hasOwnProperty.call(layer, key)) return ORIGINS.get(layer)?.get(key);
    }
    return undefined;
  };
}

interface Edge {
  parent: string;
  child: string;
  where: SourceLocation;
}

export class InventoryBuilder {
  readonly errors: InputError[] = [];
  readonly groups = new Map<string, GroupDefinition>();
  readonly hosts = new Map<string, HostDefinition>();
  readonly edges: Edge[] = [];

  constructor() {
    this.group('all');
    this.group('ungrouped');
  }

  group(name: string): GroupDefinition {
    let group = this.groups.get(name);
    if (!group) {
      group = { name, hosts: [], children: [], parents: [], vars: {}, fileVars: [], priority: 1 };
      this.groups.set(name, group);
    }
    return group;
  }

  /** The host, created in `dir` when new, and a member of `group` when one is given. */
  host(name: string, dir: string, group?: string): HostDefinition {
    let host = this.hosts.get(name);
    if (!host) {
      host = { name, direct: new Set(), vars: {}, fileVars: [], dir };
      this.hosts.set(name, host);
    }
    if (group !== undefined) {
      const definition = this.group(group);
      // A host is in the group's hosts exactly when the group is in host.direct (a set: no scan of the group).
      if (!host.direct.has(group)) definition.hosts.push(name);
      host.direct.add(group);
    }
    return host;
  }

  addChild(parent: string, child: string, where: SourceLocation): void {
    const group = this.group(parent);
    this.group(child);
    if (group.children.includes(child)) return;
    group.children.push(child);
    this.group(child).parents.push(parent);
    this.edges.push({ parent, child, where });
  }

  /** Group variables; `ansible_group_priority` orders groups and is not a variable, as in Ansible. */
  setGroupVars(name: string, vars: Record<string, unknown>, locate: (key: string) => SourceLocation): void {
    const group = this.group(name);
    const { ansible_group_priority: priority, ...rest } = vars;
    if (priority !== undefined && Number.isInteger(Number(priority))) group.priority = Number(priority);
    assignVars(group.vars, rest, locate);
  }

  /** A group that is its own descendant, reported at the `children` entry closing the loop. */
  findCycles(): void {
    const state = new Map<string, 'active' | 'done'>();
    const stack: string[] = [];
    const visit = (name: string): void => {
      state.set(name, 'active');
      stack.push(name);
      for (const edge of this.edges.filter((e) => e.parent === name)) {
        const seen = state.get(edge.child);
        if (seen === 'active') {
          const loop = [...stack.slice(stack.indexOf(edge.child)), edge.child];
          this.errors.push(new InputError(`group '${edge.child}' is its own descendant: ${loop.join(' > ')}`, edge.where));
        } else if (seen === undefined) visit(edge.child);
      }
      stack.pop();
      state.set(name, 'done');
    };
    for (const name of this.groups.keys()) if (!state.has(name)) visit(name);
  }

  /** Every error so far, in reading order (source by source, top to bottom), as one throw. */
  throwErrors(): void {
    if (!this.errors.length) return;
    const files = [...new Set(this.errors.map((error) => error.where?.file))];
    const rank = (error: InputError): number[] => [files.indexOf(error.where?.file), error.where?.line ?? 0, error.where?.column ?? 0];
    const sorted = this.errors
      .map((error) => ({ error, key: rank(error) }))
      .sort((a, b) => a.key[0]! - b.key[0]! || a.key[1]! - b.key[1]! || a.key[2]! - b.key[2]!)
      .map(({ error }) => error);
    throw new InputErrors(sorted);
  }
}

/** The hosts and groups with every layer of variables applied. */
export function resolveInventory(builder: InventoryBuilder, file: string): Inventory {
  const groups = builder.groups;
  // As Ansible reconciles once all sources are read: `ungrouped`, the groups a source put
  // under `all` itself, then every group without a parent, in order of appearance.
  const explicit = groups.get('all')!.children.filter((name) => name !== 'ungrouped');
  for (const group of groups.values()) if (group.name !== 'all' && group.parents.length === 0) group.parents.push('all');
  const orphans = [...groups.values()].filter((group) => group.parents.includes('all') && group.name !== 'ungrouped' && !explicit.includes(group.name));
  groups.get('all')!.children = ['ungrouped', ...explicit, ...orphans.map((group) => group.name)];
  const depths = new Map<string, number>();
  const depth = (name: string): number => {
    let known = depths.get(name);
    if (known === undefined) {
      known = name === 'all' ? 0 : 1 + Math.max(...groups.get(name)!.parents.map(depth));
      depths.set(name, known);
    }
    return known;
  };
  const ancestors = (name: string, into: Set<string>): Set<string> => {
    into.add(name);
    for (const parent of groups.get(name)!.parents) if (!into.has(parent)) ancestors(parent, into);
    return into;
  };
  const priority = (name: string): number => groups.get(name)!.priority;
  const order = (a: string, b: string): number => depth(a) - depth(b) || priority(a) - priority(b) || (a < b ? -1 : a > b ? 1 : 0);
  const all = groups.get('all')!;
  const sources = Math.max(0, ...[...groups.values(), ...builder.hosts.values()].map((item) => item.fileVars.length));

  const hosts = new Map<string, InventoryHost>();
  for (const host of builder.hosts.values()) {
    const member = new Set<string>(['all']);
    for (const name of host.direct) ancestors(name, member);
    if ([...member].every((name) => name === 'all' || name === 'ungrouped')) member.add('ungrouped');
    else member.delete('ungrouped');
    const ranked = [...member].filter((name) => name !== 'all').sort(order);
    const layers: Array<Record<string, unknown> | undefined> = [all.vars, ...ranked.map((name) => groups.get(name)!.vars)];
    for (let source = 0; source < sources; source++) layers.push(all.fileVars[source]);
    for (let source = 0; source < sources; source++) for (const name of ranked) layers.push(groups.get(name)!.fileVars[source]);
    layers.push(host.vars);
    for (let source = 0; source < sources; source++) layers.push(host.fileVars[source]);
    const vars: Record<string, unknown> = Object.assign({}, ...layers);
    hosts.set(host.name, { name: host.name, vars, groups: [...member].sort(), inventoryDir: host.dir, origin: originIn(layers) });
  }

  const inventoryGroups = new Map<string, InventoryGroup>();
  for (const group of groups.values()) {
    const members = [...hosts.values()].filter((host) => host.groups.includes(group.name)).map((host) => host.name);
    inventoryGroups.set(group.name, { name: group.name, hosts: members, directHosts: directHosts(group, hosts), children: [...group.children], vars: { ...group.vars } });
  }
  return { file, hosts, groups: inventoryGroups };
}

/**
 * Hosts listed under the group itself, as Ansible keeps them: `ungrouped` holds exactly
 * the hosts in no other group (those listed under it first), `all` none of its own.
 */
function directHosts(group: GroupDefinition, hosts: Map<string, InventoryHost>): string[] {
  if (group.name === 'all') return [];
  if (group.name !== 'ungrouped') return [...group.hosts];
  const ungrouped = (name: string): boolean => hosts.get(name)!.groups.includes('ungrouped');
  const listed = group.hosts.filter(ungrouped);
  return [...listed, ...[...hosts.keys()].filter((name) => ungrouped(name) && !listed.includes(name))];
}
