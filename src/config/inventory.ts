/**
 * Inventories in Ansible's YAML shape, so an existing Ansible YAML inventory (with its
 * group_vars/ and host_vars/ folders) works unchanged. Every mistake is reported with
 * file, line, column and JSON path, all in one pass.
 *
 * Variable precedence follows Ansible's defaults (lowest to highest):
 *   1. vars of group `all` written in the inventory file
 *   2. vars of the host's other groups written in the inventory file, parents before
 *      children (by depth, then `ansible_group_priority`, then name)
 *   3. group_vars/all files
 *   4. group_vars/<group> files, in the same group order
 *   5. vars of the host written in the inventory file
 *   6. host_vars/<host> files
 * so a group's group_vars file always wins over that group's vars in the inventory file.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { LineCounter, isAlias, isMap, isScalar, isSeq, parseDocument, type Document, type YAMLMap } from 'yaml';
import { InputError, InputErrors, type SourceLocation } from '../errors.js';
import type { ConnectionSpec, HostKeyChecking } from '../transport/types.js';
import { validateAt } from './schema.js';
import { jsonPath, parseYaml, type PathSegment, type YamlSource } from './yaml-source.js';

export interface InventoryHost {
  name: string;
  /** Variables after applying every layer of precedence. */
  vars: Record<string, unknown>;
  /** Every group the host is in, directly or through a child group; sorted, includes 'all'. */
  groups: string[];
  /** Folder of the inventory file: relative paths in vars resolve against it (default: cwd). */
  inventoryDir?: string;
}

export interface InventoryGroup {
  name: string;
  /** Every host of the group, including those of its descendants, in inventory order. */
  hosts: string[];
  /** Direct child groups, in order of appearance. */
  children: string[];
}

export interface Inventory {
  file: string;
  /** In order of first appearance in the inventory file. */
  hosts: Map<string, InventoryHost>;
  /** `all` and `ungrouped` first, then in order of first appearance. */
  groups: Map<string, InventoryGroup>;
}

export interface ConnectionDefaults {
  hostKeyChecking: HostKeyChecking;
  knownHostsFile?: string;
  connectTimeoutMs: number;
  keepaliveIntervalMs: number;
  privateKeyFile?: string;
  user?: string;
}

const NAME_CHARS = /^[A-Za-z0-9_.:-]+$/;
const HOST_RANGE = /\[[^\]]*:[^\]]*\]/;

const port = { type: 'integer', minimum: 1, maximum: 65535 };
const text = { type: 'string' };
const address = { type: 'string', minLength: 1 };

/** Connection variables are type-checked; any other variable is the user's own. */
export const VARS_SCHEMA = {
  type: 'object',
  properties: {
    ansible_host: address,
    ansible_ssh_host: address,
    ansible_port: port,
    ansible_ssh_port: port,
    ansible_user: text,
    ansible_ssh_user: text,
    ansible_connection: { enum: ['ssh', 'local'] },
    ansible_ssh_private_key_file: address,
    ansible_private_key_file: address,
    ansible_ssh_common_args: text,
    ansible_ssh_extra_args: text,
    ansible_ssh_timeout: { type: 'number', exclusiveMinimum: 0 },
    ansible_group_priority: { type: 'integer' },
    kvmconf_known_hosts_file: address,
    kvmconf_host_key_checking: { enum: ['strict', 'accept-new', 'off'] },
    kvmconf_proxy_jump: address,
    kvmconf_hypervisor: address,
    kvmconf_domain: address,
  },
} as const;

const GROUP_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: { hosts: {}, vars: {}, children: {} },
} as const;

/** Variables Ansible also accepts as numeric strings (`ansible_port: "2222"`). */
const NUMERIC_VARS = ['ansible_port', 'ansible_ssh_port', 'ansible_ssh_timeout', 'ansible_group_priority'];
/** Variables holding a boolean, which YAML 1.2 leaves as strings when written yes/no. */
const BOOLEAN_VARS = ['ansible_become', 'ansible_host_key_checking', 'ansible_ssh_host_key_checking'];

const isMapping = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object' && !Array.isArray(value);
const kindOf = (value: unknown): string => (value === null ? 'null' : Array.isArray(value) ? 'list' : typeof value === 'object' ? 'mapping' : typeof value);
const templated = (value: unknown): boolean => typeof value === 'string' && value.includes('{{');

/** Ansible's boolean spellings; undefined when the value is not one. */
function toBoolean(value: unknown): boolean | undefined {
  if (typeof value === 'boolean') return value;
  if (typeof value === 'number' && (value === 0 || value === 1)) return value === 1;
  if (typeof value !== 'string') return undefined;
  const lower = value.trim().toLowerCase();
  if (['yes', 'true', 'on', 'y', '1'].includes(lower)) return true;
  if (['no', 'false', 'off', 'n', '0'].includes(lower)) return false;
  return undefined;
}

function nameProblem(kind: 'host' | 'group', name: string): string | undefined {
  if (name === '') return `empty ${kind} name`;
  if (kind === 'host' && HOST_RANGE.test(name)) return `host ranges like '${name}' are not supported: list each host by name`;
  if (NAME_CHARS.test(name)) return undefined;
  const bad = [...new Set(name.replace(/[A-Za-z0-9_.:-]/g, ''))].map((c) => `'${c}'`).join(', ');
  return `invalid ${kind} name '${name}': ${bad} not allowed (use letters, digits and _ . : -)`;
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw new InputError(`cannot read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { file });
  }
}

/**
 * One YAML file, kept twice: as data with locations (YamlSource), and as a syntax tree
 * for what the data loses: whether a key was a string at all, and how it was written.
 */
class InventoryFile {
  readonly source: YamlSource;
  private readonly content: string;
  private readonly document: Document;
  private readonly lines = new LineCounter();

  constructor(readonly file: string) {
    this.content = readText(file);
    this.source = parseYaml(this.content, file);
    // Unique keys were checked by parseYaml above (in one pass; yaml's own check is quadratic).
    this.document = parseDocument(this.content, { lineCounter: this.lines, uniqueKeys: false, strict: true });
  }

  locate(path: PathSegment[]): SourceLocation {
    return this.source.locate(path);
  }

  /**
   * String keys of the mapping at `path` with the location of each key, and an error for
   * each key that is not a string (a number, null, a list...), described as `what`.
   */
  keys(path: string[], what: string): { names: Map<string, SourceLocation>; errors: InputError[] } {
    const names = new Map<string, SourceLocation>();
    const errors: InputError[] = [];
    let node: unknown = this.document.contents;
    for (const segment of path) {
      if (isAlias(node)) node = node.resolve(this.document);
      if (!isMap(node)) return { names, errors };
      node = this.child(node, segment);
    }
    if (isAlias(node)) node = node.resolve(this.document);
    if (!isMap(node)) return { names, errors };
    for (const pair of node.items) {
      const name = this.keyName(pair.key);
      const keyNode = isAlias(pair.key) ? pair.key.resolve(this.document) : pair.key;
      const range = (pair.key as { range?: [number, number, number] } | null)?.range;
      const position = range ? this.lines.linePos(range[0]) : undefined;
      if (name !== undefined) {
        names.set(name, { file: this.file, line: position?.line, column: position?.col, path: jsonPath([...path, name]) });
        continue;
      }
      const kind = kindOf(isScalar(keyNode) ? keyNode.value : isSeq(keyNode) ? [] : isMap(keyNode) ? {} : null);
      const shown = range && range[1] > range[0] ? this.content.slice(range[0], range[1]).trim() : '(empty)';
      errors.push(
        new InputError(
          `${what} must be a string, not ${kind === 'null' ? 'null' : `a ${kind}`}: ${shown}`,
          { file: this.file, line: position?.line, column: position?.col, path: jsonPath(path) },
          kind === 'number' || kind === 'boolean' ? `quote it to use it as a name: '${shown}':` : undefined,
        ),
      );
    }
    return { names, errors };
  }

  /** Values of a mapping by key name, built once per mapping: a lookup per host stays O(1). */
  private readonly indexes = new WeakMap<object, Map<string, unknown>>();

  private child(map: YAMLMap, name: string): unknown {
    let index = this.indexes.get(map);
    if (!index) {
      index = new Map();
      for (const pair of map.items) {
        const key = this.keyName(pair.key);
        if (key !== undefined && !index.has(key)) index.set(key, pair.value);
      }
      this.indexes.set(map, index);
    }
    return index.get(name);
  }

  private keyName(key: unknown): string | undefined {
    const node = isAlias(key) ? key.resolve(this.document) : key;
    return isScalar(node) && typeof node.value === 'string' ? node.value : undefined;
  }
}

interface GroupDefinition {
  name: string;
  /** Hosts listed directly under the group. */
  hosts: string[];
  children: string[];
  parents: string[];
  vars: Record<string, unknown>;
  fileVars: Record<string, unknown>;
  /** `ansible_group_priority`: among groups of one depth, higher wins (default 1). */
  priority: number;
}

interface HostDefinition {
  name: string;
  direct: Set<string>;
  vars: Record<string, unknown>;
  fileVars: Record<string, unknown>;
}

interface Edge {
  parent: string;
  child: string;
  where: SourceLocation;
}

/**
 * A mapping of variables, checked: keys must be strings and connection variables must
 * have their types. Values holding `{{ templates }}` are checked once rendered.
 */
function loadVars(input: InventoryFile, value: unknown, path: string[], owner: string, errors: InputError[]): Record<string, unknown> {
  if (value === null || value === undefined) return {};
  if (!isMapping(value)) {
    errors.push(new InputError(`${owner} must be a mapping of variable names to values, not a ${kindOf(value)}`, input.locate(path)));
    return {};
  }
  const { names, errors: keyErrors } = input.keys(path, 'variable name');
  errors.push(...keyErrors);
  const vars: Record<string, unknown> = {};
  // `<<: *defaults` merge keys, as Ansible's YAML 1.1 reader applies them: explicit keys win.
  const merged = names.has('<<') ? value['<<'] : undefined;
  const sources = merged === undefined ? [] : Array.isArray(merged) ? merged : [merged];
  const isMerge = sources.length > 0 && sources.every(isMapping);
  if (isMerge) for (const source of sources) Object.assign(vars, source);
  for (const [key, item] of Object.entries(value)) {
    if (!names.has(key) || (key === '<<' && isMerge)) continue;
    vars[key] = NUMERIC_VARS.includes(key) && typeof item === 'string' && /^\d+(\.\d+)?$/.test(item) ? Number(item) : item;
  }
  const checked = Object.fromEntries(Object.entries(vars).filter(([, item]) => !templated(item)));
  errors.push(...validateAt(VARS_SCHEMA, checked, input.source, path));
  for (const key of ['ansible_ssh_common_args', 'ansible_ssh_extra_args']) {
    const value = checked[key];
    if (typeof value === 'string' && shellWords(value) === undefined) errors.push(new InputError(`'${key}' has an unbalanced quote`, input.locate([...path, key])));
  }
  for (const key of BOOLEAN_VARS) {
    if (key in checked && checked[key] !== null && toBoolean(checked[key]) === undefined) {
      errors.push(new InputError(`'${key}' must be a boolean (true/false or yes/no), not ${JSON.stringify(checked[key])}`, input.locate([...path, key])));
    }
  }
  return vars;
}

class Loader {
  readonly errors: InputError[] = [];
  readonly groups = new Map<string, GroupDefinition>();
  readonly hosts = new Map<string, HostDefinition>();
  readonly edges: Edge[] = [];

  constructor(readonly input: InventoryFile) {
    this.group('all');
    this.group('ungrouped');
  }

  group(name: string): GroupDefinition {
    let group = this.groups.get(name);
    if (!group) {
      group = { name, hosts: [], children: [], parents: [], vars: {}, fileVars: {}, priority: 1 };
      this.groups.set(name, group);
    }
    return group;
  }

  host(name: string): HostDefinition {
    let host = this.hosts.get(name);
    if (!host) {
      host = { name, direct: new Set(), vars: {}, fileVars: {} };
      this.hosts.set(name, host);
    }
    return host;
  }

  root(data: unknown): void {
    const { input } = this;
    if (data === null || data === undefined) {
      this.errors.push(new InputError('the inventory is empty: expected groups such as `all: {hosts: {...}}`', input.locate([])));
      return;
    }
    if (!isMapping(data)) {
      this.errors.push(
        new InputError(
          `an inventory is a mapping of group names (usually just 'all') to their hosts, vars and children, not a ${kindOf(data)}`,
          input.locate([]),
          'INI inventories are not read: convert one with `ansible-inventory -i FILE --list --yaml`',
        ),
      );
      return;
    }
    const { names, errors } = input.keys([], 'group name');
    this.errors.push(...errors);
    for (const [name, value] of Object.entries(data)) {
      const where = names.get(name);
      if (!where) continue;
      const problem = nameProblem('group', name);
      if (problem) {
        this.errors.push(new InputError(problem, where));
        continue;
      }
      this.walkGroup(name, value, [name]);
    }
  }

  private walkGroup(name: string, value: unknown, path: string[]): void {
    const { input } = this;
    const group = this.group(name);
    if (value === null || value === undefined) return;
    if (!isMapping(value)) {
      this.errors.push(
        new InputError(
          `group '${name}' must be a mapping with hosts, vars or children, not a ${kindOf(value)}`,
          input.locate(path),
          Array.isArray(value) ? 'list its hosts as keys of a mapping: `hosts: {hv1: , hv2: }`' : undefined,
        ),
      );
      return;
    }
    this.errors.push(...validateAt(GROUP_SCHEMA, value, input.source, path));
    for (const [key, item] of Object.entries(value)) {
      if (key === 'hosts') this.walkHosts(group, item, [...path, key]);
      else if (key === 'vars') {
        const vars = loadVars(input, item, [...path, key], `'vars' of group '${name}'`, this.errors);
        // As in Ansible, this one orders groups and is not a variable.
        if (typeof vars.ansible_group_priority === 'number') group.priority = vars.ansible_group_priority;
        delete vars.ansible_group_priority;
        Object.assign(group.vars, vars);
      }
      else if (key === 'children') this.walkChildren(group, item, [...path, key]);
    }
  }

  private walkHosts(group: GroupDefinition, value: unknown, path: string[]): void {
    const { input } = this;
    if (value === null || value === undefined) return;
    if (Array.isArray(value)) {
      this.errors.push(
        new InputError(
          `'hosts' of group '${group.name}' must be a mapping of host names to their variables, not a list`,
          input.locate(path),
          'write each host as a key (`hv1:` or `hv1: {ansible_host: 10.0.0.5}`), not as a list item (`- hv1`); lists are a common slip when converting INI inventories',
        ),
      );
      return;
    }
    if (!isMapping(value)) {
      this.errors.push(new InputError(`'hosts' of group '${group.name}' must be a mapping of host names to their variables, not a ${kindOf(value)}`, input.locate(path)));
      return;
    }
    const { names, errors } = input.keys(path, 'host name');
    this.errors.push(...errors);
    for (const [name, vars] of Object.entries(value)) {
      const where = names.get(name);
      if (!where) continue;
      const problem = nameProblem('host', name);
      if (problem) {
        this.errors.push(new InputError(problem, where));
        continue;
      }
      const host = this.host(name);
      // A host is in group.hosts exactly when the group is in host.direct (a set: no scan of the group).
      if (!host.direct.has(group.name)) group.hosts.push(name);
      host.direct.add(group.name);
      if (vars !== null && vars !== undefined && !isMapping(vars)) {
        this.errors.push(
          new InputError(
            `host '${name}' must map to a mapping of its variables, or to nothing, not a ${kindOf(vars)}`,
            input.locate([...path, name]),
            typeof vars === 'string' ? `to give its address write \`${name}: {ansible_host: ${vars}}\`` : undefined,
          ),
        );
        continue;
      }
      Object.assign(host.vars, loadVars(input, vars, [...path, name], `host '${name}'`, this.errors));
    }
  }

  private walkChildren(parent: GroupDefinition, value: unknown, path: string[]): void {
    const { input } = this;
    if (value === null || value === undefined) return;
    if (!isMapping(value)) {
      this.errors.push(
        new InputError(
          `'children' of group '${parent.name}' must be a mapping of group names, not a ${kindOf(value)}`,
          input.locate(path),
          Array.isArray(value) ? 'write each child group as a key (`rack1:`), not as a list item (`- rack1`)' : undefined,
        ),
      );
      return;
    }
    const { names, errors } = input.keys(path, 'group name');
    this.errors.push(...errors);
    for (const [name, item] of Object.entries(value)) {
      const where = names.get(name);
      if (!where) continue;
      const problem = name === 'all' ? "'all' cannot be a child group: every group is already inside 'all'" : nameProblem('group', name);
      if (problem) {
        this.errors.push(new InputError(problem, where));
        continue;
      }
      this.group(name);
      if (!parent.children.includes(name)) {
        parent.children.push(name);
        this.group(name).parents.push(parent.name);
        this.edges.push({ parent: parent.name, child: name, where });
      }
      this.walkGroup(name, item, [...path, name]);
    }
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

  /** group_vars/ and host_vars/ beside the inventory file, file and folder forms. */
  loadVarsFiles(): void {
    const base = dirname(resolve(this.input.file));
    for (const group of this.groups.values()) group.fileVars = this.varsFiles(join(base, 'group_vars'), group.name);
    for (const host of this.hosts.values()) host.fileVars = this.varsFiles(join(base, 'host_vars'), host.name);
  }

  private varsFiles(folder: string, name: string): Record<string, unknown> {
    const vars: Record<string, unknown> = {};
    // Ansible's order: the folder form first, then NAME.yml, NAME.yaml, NAME.json.
    for (const file of [...filesUnder(join(folder, name)), ...['.yml', '.yaml', '.json'].map((ext) => join(folder, name + ext)).filter(isFile)]) {
      let input: InventoryFile;
      try {
        input = new InventoryFile(file);
      } catch (error) {
        if (error instanceof InputErrors) this.errors.push(...error.errors);
        else if (error instanceof InputError) this.errors.push(error);
        else throw error;
        continue;
      }
      Object.assign(vars, loadVars(input, input.source.data, [], 'a variables file', this.errors));
    }
    return vars;
  }
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** YAML and JSON files under a folder, recursively, in name order; hidden files skipped. */
function filesUnder(folder: string): string[] {
  let entries: string[];
  try {
    if (!statSync(folder).isDirectory()) return [];
    entries = readdirSync(folder).sort();
  } catch {
    return [];
  }
  return entries
    .filter((entry) => !entry.startsWith('.'))
    .flatMap((entry) => {
      const path = join(folder, entry);
      if (isFile(path)) return /\.(ya?ml|json)$/.test(entry) ? [path] : [];
      return filesUnder(path);
    });
}

export function loadInventory(file: string): Inventory {
  const input = new InventoryFile(file);
  const loader = new Loader(input);
  loader.root(input.source.data);
  loader.findCycles();
  loader.loadVarsFiles();
  if (loader.errors.length) {
    // In reading order: the inventory file first, then each vars file, top to bottom.
    const files = [...new Set(loader.errors.map((error) => error.where?.file))];
    const rank = (error: InputError): number[] => [files.indexOf(error.where?.file), error.where?.line ?? 0, error.where?.column ?? 0];
    const sorted = loader.errors
      .map((error) => ({ error, key: rank(error) }))
      .sort((a, b) => a.key[0]! - b.key[0]! || a.key[1]! - b.key[1]! || a.key[2]! - b.key[2]!)
      .map(({ error }) => error);
    throw new InputErrors(sorted);
  }

  const groups = loader.groups;
  // Groups without a parent are children of 'all'; its children list in group order.
  for (const group of groups.values()) if (group.name !== 'all' && group.parents.length === 0) group.parents.push('all');
  groups.get('all')!.children = [...groups.values()].filter((group) => group.parents.includes('all')).map((group) => group.name);
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

  const dir = dirname(resolve(file));
  const hosts = new Map<string, InventoryHost>();
  for (const host of loader.hosts.values()) {
    const member = new Set<string>(['all']);
    for (const name of host.direct) ancestors(name, member);
    if ([...member].every((name) => name === 'all' || name === 'ungrouped')) member.add('ungrouped');
    else member.delete('ungrouped');
    const ranked = [...member].filter((name) => name !== 'all').sort(order);
    const all = groups.get('all')!;
    const vars: Record<string, unknown> = { ...all.vars };
    for (const name of ranked) Object.assign(vars, groups.get(name)!.vars);
    Object.assign(vars, all.fileVars);
    for (const name of ranked) Object.assign(vars, groups.get(name)!.fileVars);
    Object.assign(vars, host.vars, host.fileVars);
    hosts.set(host.name, { name: host.name, vars, groups: [...member].sort(), inventoryDir: dir });
  }

  const inventoryGroups = new Map<string, InventoryGroup>();
  for (const group of groups.values()) {
    inventoryGroups.set(group.name, {
      name: group.name,
      hosts: [...hosts.values()].filter((host) => host.groups.includes(group.name)).map((host) => host.name),
      children: [...group.children],
    });
  }
  return { file, hosts, groups: inventoryGroups };
}

/** The inventory used when none is given: this machine, reached without SSH. */
export function localInventory(): Inventory {
  const host: InventoryHost = { name: 'localhost', vars: { ansible_connection: 'local' }, groups: ['all', 'local'], inventoryDir: process.cwd() };
  return {
    file: '<implicit localhost>',
    hosts: new Map([[host.name, host]]),
    groups: new Map([
      ['all', { name: 'all', hosts: ['localhost'], children: ['ungrouped', 'local'] }],
      ['ungrouped', { name: 'ungrouped', hosts: [], children: [] }],
      ['local', { name: 'local', hosts: ['localhost'], children: [] }],
    ]),
  };
}

/** Splits a command-line fragment as a POSIX shell would (quotes and backslashes). */
export function shellWords(line: string): string[] | undefined {
  const words: string[] = [];
  let current = '';
  let inWord = false;
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote === "'") {
      if (c === "'") quote = undefined;
      else current += c;
    } else if (quote === '"') {
      if (c === '"') quote = undefined;
      else if (c === '\\' && '"\\$`'.includes(line[i + 1] ?? 'x')) current += line[++i];
      else current += c;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(current);
      current = '';
      inWord = false;
    } else {
      inWord = true;
      if (c === "'" || c === '"') quote = c;
      else if (c === '\\' && i + 1 < line.length) current += line[++i];
      else current += c;
    }
  }
  if (quote) return undefined;
  if (inWord) words.push(current);
  return words;
}

interface SshArgs {
  proxyJump?: string;
  hostKeyChecking?: HostKeyChecking;
  knownHostsFile?: string;
}

/** What kvmconf honours from ssh options: -J, and -o ProxyJump, StrictHostKeyChecking, UserKnownHostsFile. */
function parseSshArgs(words: string[]): SshArgs {
  const found: SshArgs = {};
  const option = (text: string): void => {
    const match = /^\s*([A-Za-z]+)\s*(?:=\s*|\s+)(.*?)\s*$/.exec(text);
    if (!match) return;
    const key = match[1]!.toLowerCase();
    const value = match[2]!;
    // ssh keeps the first value it is given for an option; so do we.
    if (key === 'proxyjump') found.proxyJump ??= value;
    else if (key === 'userknownhostsfile') found.knownHostsFile ??= value.split(/\s+/)[0];
    else if (key === 'stricthostkeychecking') {
      // Ansible users write `-o StrictHostKeyChecking=no` to skip host key checks.
      const lower = value.toLowerCase();
      const mode: HostKeyChecking | undefined = ['no', 'off', 'false'].includes(lower) ? 'off' : lower === 'accept-new' ? 'accept-new' : ['yes', 'ask', 'true', 'on'].includes(lower) ? 'strict' : undefined;
      if (mode) found.hostKeyChecking ??= mode;
    }
  };
  for (let i = 0; i < words.length; i++) {
    const word = words[i]!;
    if (word === '-J') found.proxyJump ??= words[++i];
    else if (word.startsWith('-J')) found.proxyJump ??= word.slice(2);
    else if (word === '-o') option(words[++i] ?? '');
    else if (word.startsWith('-o')) option(word.slice(2));
  }
  return found;
}

function expandHome(path: string): string {
  return path === '~' ? homedir() : path.startsWith('~/') ? join(homedir(), path.slice(2)) : path;
}

/**
 * How to reach a host: its connection variables, with the command line's values as
 * defaults for whatever the inventory leaves out.
 */
export function connectionSpec(host: InventoryHost, defaults: ConnectionDefaults): ConnectionSpec {
  const { vars } = host;
  const dir = host.inventoryDir ?? process.cwd();
  const fail = (message: string): InputError => new InputError(`host '${host.name}': ${message}`);
  const text = (...names: string[]): string | undefined => {
    for (const name of names) {
      const value = vars[name];
      if (value === undefined || value === null) continue;
      if (typeof value !== 'string' || value === '') throw fail(`${name} must be a non-empty string, not ${JSON.stringify(value)}`);
      return value;
    }
    return undefined;
  };
  const number = (name: string, valid: (n: number) => boolean, expected: string): number | undefined => {
    const value = vars[name];
    if (value === undefined || value === null) return undefined;
    const parsed = typeof value === 'string' && /^\d+(\.\d+)?$/.test(value) ? Number(value) : value;
    if (typeof parsed !== 'number' || !valid(parsed)) throw fail(`${name} must be ${expected}, not ${JSON.stringify(value)}`);
    return parsed;
  };
  const inventoryPath = (path: string): string => resolve(dir, expandHome(path));

  const connection = text('ansible_connection') ?? 'ssh';
  if (connection !== 'ssh' && connection !== 'local') throw fail(`ansible_connection must be ssh or local, not '${connection}'`);
  const isPort = (n: number): boolean => Number.isInteger(n) && n >= 1 && n <= 65535;
  const port = number('ansible_port', isPort, 'a port number 1..65535') ?? number('ansible_ssh_port', isPort, 'a port number 1..65535');
  const timeout = number('ansible_ssh_timeout', (n) => n > 0, 'a number of seconds');

  const words: string[] = [];
  for (const name of ['ansible_ssh_common_args', 'ansible_ssh_extra_args']) {
    const value = text(name);
    if (value === undefined) continue;
    const split = shellWords(value);
    if (!split) throw fail(`${name} has an unbalanced quote: ${value}`);
    words.push(...split);
  }
  const args = parseSshArgs(words);

  const checking = text('kvmconf_host_key_checking');
  if (checking !== undefined && !['strict', 'accept-new', 'off'].includes(checking)) throw fail(`kvmconf_host_key_checking must be strict, accept-new or off, not '${checking}'`);
  let ansibleChecking: HostKeyChecking | undefined;
  for (const name of ['ansible_host_key_checking', 'ansible_ssh_host_key_checking']) {
    if (vars[name] === undefined || vars[name] === null) continue;
    const flag = toBoolean(vars[name]);
    if (flag === undefined) throw fail(`${name} must be a boolean, not ${JSON.stringify(vars[name])}`);
    if (!flag) ansibleChecking ??= 'off';
  }
  const hostKeyChecking = (checking as HostKeyChecking | undefined) ?? ansibleChecking ?? args.hostKeyChecking ?? defaults.hostKeyChecking;

  const keyFile = text('ansible_ssh_private_key_file', 'ansible_private_key_file');
  const privateKeyFiles = keyFile !== undefined ? [inventoryPath(keyFile)] : defaults.privateKeyFile !== undefined ? [resolve(expandHome(defaults.privateKeyFile))] : undefined;
  const knownHosts = text('kvmconf_known_hosts_file') ?? args.knownHostsFile;
  const knownHostsFile = knownHosts !== undefined ? inventoryPath(knownHosts) : defaults.knownHostsFile;
  let proxyJump = text('kvmconf_proxy_jump') ?? args.proxyJump;
  if (proxyJump?.toLowerCase() === 'none' || proxyJump === '') proxyJump = undefined;
  const user = text('ansible_user', 'ansible_ssh_user') ?? defaults.user;

  return {
    name: host.name,
    connection,
    host: text('ansible_host', 'ansible_ssh_host') ?? host.name,
    ...(port !== undefined && { port }),
    ...(user !== undefined && { user }),
    ...(privateKeyFiles !== undefined && { privateKeyFiles }),
    ...(knownHostsFile !== undefined && { knownHostsFile }),
    hostKeyChecking,
    ...(proxyJump !== undefined && { proxyJump }),
    connectTimeoutMs: timeout !== undefined ? Math.round(timeout * 1000) : defaults.connectTimeoutMs,
    keepaliveIntervalMs: defaults.keepaliveIntervalMs,
  };
}

/** The host's `ansible_become`, if set: plays and the CLI decide when it is not. */
export function becomeDefault(host: InventoryHost): boolean | undefined {
  const value = host.vars.ansible_become;
  if (value === undefined || value === null) return undefined;
  const flag = toBoolean(value);
  if (flag === undefined) throw new InputError(`host '${host.name}': ansible_become must be a boolean, not ${JSON.stringify(value)}`);
  return flag;
}
