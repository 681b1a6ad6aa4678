/**
 * YAML inventories in Ansible's shape (`all`/`children`/`hosts`/`vars`, host ranges and
 * `host:port` keys), and the group_vars/ and host_vars/ files beside every inventory
 * source. Every mistake is reported with file, line, column and JSON path, in one pass.
 */
import { readdirSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { LineCounter, isAlias, isMap, isScalar, isSeq, type Document, type YAMLMap } from 'yaml';
import { InputError, InputErrors, type SourceLocation } from '../errors.js';
import { HostPatternError, parseHostPattern, type HostPattern } from './host-ranges.js';
import { checkVars, isMapping, kindOf } from './inventory-vars.js';
import { assignVars, type GroupDefinition, type InventoryBuilder } from './inventory-model.js';
import { validateAt } from './schema.js';
import { ANSIBLE_YAML, jsonPath, parseYamlDocument, readText, type PathSegment, type YamlSource } from './yaml-source.js';

const NAME_CHARS = /^[A-Za-z0-9_.:-]+$/;

const GROUP_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: { hosts: {}, vars: {}, children: {} },
} as const;

export function nameProblem(kind: 'host' | 'group', name: string): string | undefined {
  if (name === '') return `empty ${kind} name`;
  if (NAME_CHARS.test(name)) return undefined;
  const bad = [...new Set(name.replace(/[A-Za-z0-9_.:-]/g, ''))].map((c) => `'${c}'`).join(', ');
  return `invalid ${kind} name '${name}': ${bad} not allowed (use letters, digits and _ . : -)`;
}

/**
 * One YAML file, kept twice: as data with locations (YamlSource), and as a syntax tree
 * for what the data loses: whether a key was a string at all, and how it was written.
 */
export class InventoryFile {
  readonly source: YamlSource;
  private readonly content: string;
  private readonly document: Document;
  private readonly lines: LineCounter;

  constructor(
    readonly file: string,
    text?: string,
  ) {
    this.content = text ?? readText(file);
    // Inventories and vars files are Ansible's own data: read them as Ansible does.
    // Parsed once: the data with locations and the syntax tree come from the same parse.
    ({ source: this.source, document: this.document, lines: this.lines } = parseYamlDocument(this.content, file, ANSIBLE_YAML));
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
    vars[key] = item;
  }
  errors.push(...checkVars(vars, input.source, path));
  return vars;
}

/** One YAML inventory file read into the builder. */
export class YamlInventoryReader {
  private readonly dir: string;

  constructor(
    private readonly builder: InventoryBuilder,
    private readonly input: InventoryFile,
    dir: string,
  ) {
    this.dir = dir;
  }

  /** The whole file: a mapping of top-level groups. */
  read(): void {
    const { input } = this;
    const data = input.source.data;
    if (data === null || data === undefined) {
      this.builder.errors.push(new InputError('the inventory is empty: expected groups such as `all: {hosts: {...}}`', input.locate([])));
      return;
    }
    if (!isMapping(data)) {
      this.builder.errors.push(
        new InputError(
          `an inventory is a mapping of group names (usually just 'all') to their hosts, vars and children, not a ${kindOf(data)}`,
          input.locate([]),
          /\.(ya?ml|json)$/.test(input.file) ? 'an INI inventory is read as INI when its name does not end in .yaml, .yml or .json' : undefined,
        ),
      );
      return;
    }
    const { names, errors } = input.keys([], 'group name');
    this.builder.errors.push(...errors);
    for (const [name, value] of Object.entries(data)) {
      const where = names.get(name);
      if (!where) continue;
      const problem = nameProblem('group', name);
      if (problem) {
        this.builder.errors.push(new InputError(problem, where));
        continue;
      }
      this.walkGroup(name, value, [name]);
    }
  }

  private walkGroup(name: string, value: unknown, path: string[]): void {
    const { input } = this;
    const group = this.builder.group(name);
    if (value === null || value === undefined) return;
    if (!isMapping(value)) {
      this.builder.errors.push(
        new InputError(
          `group '${name}' must be a mapping with hosts, vars or children, not a ${kindOf(value)}`,
          input.locate(path),
          Array.isArray(value) ? 'list its hosts as keys of a mapping: `hosts: {hv1: , hv2: }`' : undefined,
        ),
      );
      return;
    }
    this.builder.errors.push(...validateAt(GROUP_SCHEMA, value, input.source, path));
    for (const [key, item] of Object.entries(value)) {
      if (key === 'hosts') this.walkHosts(group, item, [...path, key]);
      else if (key === 'vars') {
        this.builder.setGroupVars(name, loadVars(input, item, [...path, key], `'vars' of group '${name}'`, this.builder.errors), (variable) => input.locate([...path, key, variable]));
      }
      else if (key === 'children') this.walkChildren(group, item, [...path, key]);
    }
  }

  private walkHosts(group: GroupDefinition, value: unknown, path: string[]): void {
    const { input } = this;
    if (value === null || value === undefined) return;
    if (Array.isArray(value)) {
      this.builder.errors.push(
        new InputError(
          `'hosts' of group '${group.name}' must be a mapping of host names to their variables, not a list`,
          input.locate(path),
          'write each host as a key (`hv1:` or `hv1: {ansible_host: 10.0.0.5}`), not as a list item (`- hv1`); lists are a common slip when converting INI inventories',
        ),
      );
      return;
    }
    if (!isMapping(value)) {
      this.builder.errors.push(new InputError(`'hosts' of group '${group.name}' must be a mapping of host names to their variables, not a ${kindOf(value)}`, input.locate(path)));
      return;
    }
    const { names, errors } = input.keys(path, 'host name');
    this.builder.errors.push(...errors);
    for (const [name, vars] of Object.entries(value)) {
      const where = names.get(name);
      if (!where) continue;
      const expanded = this.expand(name, where);
      if (!expanded) continue;
      const hosts = expanded.hosts.map((host) => this.builder.host(host, this.dir, group.name));
      if (expanded.port !== undefined) for (const host of hosts) host.vars.ansible_port ??= expanded.port;
      if (vars !== null && vars !== undefined && !isMapping(vars)) {
        this.builder.errors.push(
          new InputError(
            `host '${name}' must map to a mapping of its variables, or to nothing, not a ${kindOf(vars)}`,
            input.locate([...path, name]),
            typeof vars === 'string' ? `to give its address write \`${name}: {ansible_host: ${vars}}\`` : undefined,
          ),
        );
        continue;
      }
      const loaded = loadVars(input, vars, [...path, name], `host '${name}'`, this.builder.errors);
      for (const host of hosts) assignVars(host.vars, loaded, (variable) => input.locate([...path, name, variable]));
    }
  }

  private walkChildren(parent: GroupDefinition, value: unknown, path: string[]): void {
    const { input } = this;
    if (value === null || value === undefined) return;
    if (!isMapping(value)) {
      this.builder.errors.push(
        new InputError(
          `'children' of group '${parent.name}' must be a mapping of group names, not a ${kindOf(value)}`,
          input.locate(path),
          Array.isArray(value) ? 'write each child group as a key (`rack1:`), not as a list item (`- rack1`)' : undefined,
        ),
      );
      return;
    }
    const { names, errors } = input.keys(path, 'group name');
    this.builder.errors.push(...errors);
    for (const [name, item] of Object.entries(value)) {
      const where = names.get(name);
      if (!where) continue;
      const problem = name === 'all' ? "'all' cannot be a child group: every group is already inside 'all'" : nameProblem('group', name);
      if (problem) {
        this.builder.errors.push(new InputError(problem, where));
        continue;
      }
      this.builder.addChild(parent.name, name, where);
      this.walkGroup(name, item, [...path, name]);
    }
  }

  /** A host key's hosts (ranges expanded) and port; undefined after recording why not. */
  private expand(name: string, where: SourceLocation): HostPattern | undefined {
    let pattern: HostPattern;
    try {
      pattern = parseHostPattern(name);
    } catch (error) {
      if (!(error instanceof HostPatternError)) throw error;
      this.builder.errors.push(new InputError(error.message, where));
      return undefined;
    }
    const problems = pattern.hosts.map((host) => nameProblem('host', host)).filter((problem) => problem !== undefined);
    if (problems.length) this.builder.errors.push(new InputError(problems[0]!, where));
    return problems.length ? undefined : pattern;
  }
}

/** group_vars/ and host_vars/ in each source's folder (file and folder forms), one layer per source. */
export function loadVarsFiles(builder: InventoryBuilder, basedirs: string[]): void {
  const groupVars = basedirs.map((base) => folderListing(join(base, 'group_vars')));
  const hostVars = basedirs.map((base) => folderListing(join(base, 'host_vars')));
  for (const group of builder.groups.values()) group.fileVars = groupVars.map((folder) => varsFiles(folder, group.name, builder.errors));
  for (const host of builder.hosts.values()) host.fileVars = hostVars.map((folder) => varsFiles(folder, host.name, builder.errors));
}

interface FolderListing {
  path: string;
  /** Entry names, read once: a 100,000-host inventory is not 400,000 stat calls. */
  entries: Set<string>;
}

function folderListing(path: string): FolderListing {
  try {
    return { path, entries: new Set(readdirSync(path)) };
  } catch {
    return { path, entries: new Set() };
  }
}

/** Whether the folder may hold NAME's vars; names a listing does not show (`..`, `a/b`) are looked up. */
const mayHold = (folder: FolderListing, name: string): boolean =>
  name.includes('/') || name === '.' || name === '..' || ['', ...VARS_EXTENSIONS].some((ext) => folder.entries.has(name + ext));

function varsFiles(folder: FolderListing, name: string, errors: InputError[]): Record<string, unknown> {
  const vars: Record<string, unknown> = {};
  if (!mayHold(folder, name)) return vars;
  for (const file of varsFilesOf(join(folder.path, name))) {
    let input: InventoryFile;
    try {
      input = new InventoryFile(file);
    } catch (error) {
      if (error instanceof InputErrors) errors.push(...error.errors);
      else if (error instanceof InputError) errors.push(error);
      else throw error;
      continue;
    }
    assignVars(vars, loadVars(input, input.source.data, [], 'a variables file', errors), (variable) => input.locate([variable]));
  }
  return vars;
}

const VARS_EXTENSIONS = ['.yml', '.yaml', '.json'];

/**
 * As Ansible's host_group_vars finds them: the first of NAME, NAME.yml, NAME.yaml,
 * NAME.json that exists; a folder gives its files (no extension or one of those)
 * recursively in name order, hidden files and backups skipped.
 */
function varsFilesOf(base: string): string[] {
  for (const path of ['', ...VARS_EXTENSIONS].map((ext) => base + ext)) {
    const kind = pathKind(path);
    if (kind === 'file') return [path];
    if (kind === 'dir') return filesUnder(path);
  }
  return [];
}

/** What is at a path: a file, a folder, or nothing readable. */
export function pathKind(path: string): 'file' | 'dir' | undefined {
  try {
    const stat = statSync(path);
    return stat.isDirectory() ? 'dir' : stat.isFile() ? 'file' : undefined;
  } catch {
    return undefined;
  }
}

function filesUnder(folder: string): string[] {
  return readdirSync(folder)
    .sort()
    .filter((entry) => !entry.startsWith('.') && !entry.endsWith('~'))
    .flatMap((entry) => {
      const path = join(folder, entry);
      const ext = extname(entry);
      const kind = pathKind(path);
      if (kind === 'dir') return ext ? [] : filesUnder(path);
      return kind === 'file' && (!ext || VARS_EXTENSIONS.includes(ext)) ? [path] : [];
    });
}
