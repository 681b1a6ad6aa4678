/**
 * `kvmconf inventory --list | --graph [GROUP] | --host NAME`: what kvmconf resolved from
 * the inventory sources, in `ansible-inventory`'s own output shapes, so the two can be
 * compared (the test suite does, for every inventory of its corpus).
 */
import { InputError, didYouMean } from '../errors.js';
import type { Inventory } from '../config/inventory.js';
import { inventoryFrom, runSecrets } from './shared.js';
import type { SecretFlags } from './secrets.js';

interface InventoryFlags extends SecretFlags {
  inventory?: string[];
  local?: boolean;
  list?: boolean;
  graph?: string | boolean;
  host?: string;
}

/** `ansible-inventory --list`: groups reachable from `all` with their direct hosts and children, empty ones left out. */
export function inventoryList(inventory: Inventory): Record<string, unknown> {
  const hostvars: Record<string, unknown> = {};
  for (const host of inventory.hosts.values()) if (Object.keys(host.vars).length) hostvars[host.name] = host.vars;
  const result: Record<string, unknown> = { _meta: { hostvars } };
  const seen = new Set<string>();
  const visit = (name: string): void => {
    seen.add(name);
    const group = inventory.groups.get(name)!;
    const entry: Record<string, string[]> = {};
    if (group.directHosts.length) entry.hosts = group.directHosts;
    if (group.children.length) entry.children = group.children;
    if (Object.keys(entry).length) result[name] = entry;
    for (const child of group.children) if (!seen.has(child)) visit(child);
  };
  visit('all');
  return result;
}

/** `ansible-inventory --graph`: child groups first, then the group's own hosts. */
export function inventoryGraph(inventory: Inventory, start = 'all'): string {
  const lines: string[] = [];
  const line = (text: string, depth: number): number => lines.push(depth ? `${'  |'.repeat(depth)}--${text}` : text);
  const visit = (name: string, depth: number): void => {
    const group = inventory.groups.get(name)!;
    line(`@${name}:`, depth);
    for (const child of group.children) visit(child, depth + 1);
    for (const host of group.directHosts) line(host, depth + 1);
  };
  visit(start, 0);
  return lines.join('\n') + '\n';
}

export async function inventoryCommand(flags: InventoryFlags): Promise<void> {
  const chosen = [flags.list, flags.graph, flags.host].filter((flag) => flag !== undefined && flag !== false).length;
  if (chosen !== 1) throw new InputError('give exactly one of --list, --graph [GROUP], --host NAME');
  await runSecrets(flags);
  const inventory = inventoryFrom(flags);
  if (flags.host !== undefined) {
    const host = inventory.hosts.get(flags.host);
    if (!host) throw new InputError(`no host '${flags.host}' in the inventory`, undefined, didYouMean(flags.host, inventory.hosts.keys()));
    process.stdout.write(JSON.stringify(host.vars, null, 4) + '\n');
    return;
  }
  if (flags.graph !== undefined && flags.graph !== false) {
    const group = typeof flags.graph === 'string' ? flags.graph : 'all';
    if (!inventory.groups.has(group)) throw new InputError(`no group '${group}' in the inventory`, undefined, didYouMean(group, inventory.groups.keys()));
    process.stdout.write(inventoryGraph(inventory, group));
    return;
  }
  process.stdout.write(JSON.stringify(inventoryList(inventory), null, 4) + '\n');
}
