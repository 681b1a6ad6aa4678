/**
 * INI inventories, read as Ansible's ini plugin reads them: host lines
 * (`hv[01:20].example.com:2222 ansible_user=root`, split like a POSIX shell with
 * `#` comments), `[group]`, `[group:children]`, `[group:vars]` sections, values typed
 * as Python literals (see python-literal.ts). A `:vars` or `:children` entry naming a
 * group that no section declares is an error, as in Ansible. Errors name file and line.
 */
import { InputError, type SourceLocation } from '../errors.js';
import { HostPatternError, parseHostPattern } from './host-ranges.js';
import { assignVars, type InventoryBuilder } from './inventory-model.js';
import { checkVars } from './inventory-vars.js';
import { iniValue } from './python-literal.js';
import { nameProblem } from './yaml-inventory.js';
import type { YamlSource } from './yaml-source.js';

const SECTION = /^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$/;
const GROUP_NAME = /^([^:\]\s]+)\s*(?:#.*)?$/;

/** shlex.split(line, comments=True) in POSIX mode: quotes, backslashes, `#` comments. */
export function shlexSplit(line: string): string[] | undefined {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote === "'") {
      if (c === "'") quote = undefined;
      else word += c;
    } else if (quote === '"') {
      if (c === '"') quote = undefined;
      else if (c === '\\' && (line[i + 1] === '"' || line[i + 1] === '\\')) word += line[++i];
      else word += c;
    } else if (c === '#') break;
    else if (/\s/.test(c)) {
      if (inWord) words.push(word);
      [word, inWord] = ['', false];
    } else {
      inWord = true;
      if (c === '"' || c === "'") quote = c;
      else if (c === '\\') {
        if (i + 1 >= line.length) return undefined;
        word += line[++i];
      } else word += c;
    }
  }
  if (quote) return undefined;
  if (inWord) words.push(word);
  return words;
}

interface Pending {
  state: 'vars' | 'children';
  line: number;
  parents: string[];
}

/** One INI inventory file read into the builder. */
export class IniInventoryReader {
  private group = 'ungrouped';
  private state = 'hosts';
  private line = 0;
  /** Groups named by `:vars` or `:children` entries before any section declared them. */
  private readonly pending = new Map<string, Pending>();

  constructor(
    private readonly builder: InventoryBuilder,
    private readonly file: string,
    private readonly text: string,
    private readonly dir: string,
  ) {}

  read(): void {
    for (const raw of this.text.split(/\r?\n/)) {
      this.line++;
      const line = raw.trim();
      if (!line || line.startsWith('#') || line.startsWith(';')) continue;
      try {
        this.readLine(line);
      } catch (error) {
        if (!(error instanceof InputError)) throw error;
        this.builder.errors.push(error);
      }
    }
    for (const [name, pending] of this.pending) {
      const where = { file: this.file, line: pending.line };
      if (pending.state === 'vars') this.builder.errors.push(new InputError(`section [${name}:vars] is for a group that no section declares`, where, `declare it with [${name}] or [${name}:children]`));
      else this.builder.errors.push(new InputError(`[${pending.parents.at(-1)}:children] names group '${name}', which no section declares`, where, `declare it with [${name}] (it may stay empty)`));
    }
  }

  private where(): SourceLocation {
    return { file: this.file, line: this.line };
  }

  private readLine(line: string): void {
    const section = SECTION.exec(line);
    if (section) return this.startSection(section[1]!, section[2] ?? 'hosts');
    if (line.startsWith('[') && line.endsWith(']')) {
      throw new InputError(`invalid section header '${line}'`, this.where(), 'write [group], [group:children] or [group:vars], without spaces');
    }
    if (this.state === 'hosts') this.hostLine(line);
    else if (this.state === 'vars') this.varsLine(line);
    else this.childLine(line);
  }

  private startSection(name: string, state: string): void {
    if (!['hosts', 'children', 'vars'].includes(state)) throw new InputError(`section [${name}:${state}] has unknown type '${state}'`, this.where(), 'the types are :children and :vars');
    const problem = nameProblem('group', name);
    if (problem) throw new InputError(problem, this.where());
    [this.group, this.state] = [name, state];
    const known = this.builder.groups.has(name);
    if (!known && state === 'vars' && !this.pending.has(name)) this.pending.set(name, { state, line: this.line, parents: [] });
    this.builder.group(name);
    const pending = this.pending.get(name);
    if (pending && state !== 'vars') {
      if (pending.state === 'children') this.declareChild(name);
      else this.pending.delete(name);
    }
  }

  /** A group named under `:children` earlier is now declared: link it (and its own pending parents). */
  private declareChild(name: string): void {
    const pending = this.pending.get(name)!;
    this.pending.delete(name);
    for (const parent of pending.parents) {
      this.builder.addChild(parent, name, { file: this.file, line: pending.line });
      if (this.pending.get(parent)?.state === 'children') this.declareChild(parent);
    }
  }

  private hostLine(line: string): void {
    const tokens = shlexSplit(line);
    if (!tokens) throw new InputError(`cannot split host line '${line}': unbalanced quote or trailing backslash`, this.where());
    let pattern;
    try {
      pattern = parseHostPattern(tokens[0]!);
    } catch (error) {
      if (error instanceof HostPatternError) throw new InputError(error.message, this.where());
      throw error;
    }
    if (pattern.hosts.some((host) => host === '---')) throw new InputError(`host '---' is a sign of a YAML file`, this.where(), 'name YAML inventories .yaml or .yml');
    const problem = pattern.hosts.map((host) => nameProblem('host', host)).find((found) => found !== undefined);
    if (problem) throw new InputError(problem, this.where());
    const vars: Record<string, unknown> = {};
    for (const token of tokens.slice(1)) {
      const equals = token.indexOf('=');
      if (equals < 0) throw new InputError(`expected key=value after the host name, got '${token}'`, this.where());
      vars[token.slice(0, equals)] = iniValue(token.slice(equals + 1));
    }
    this.check(vars);
    for (const name of pattern.hosts) {
      const known = this.builder.hosts.has(name);
      const host = this.builder.host(name, this.dir, this.group);
      if (!known && pattern.port !== undefined) host.vars.ansible_port = pattern.port;
      const where = this.where();
      assignVars(host.vars, vars, () => where);
    }
  }

  private varsLine(line: string): void {
    const equals = line.indexOf('=');
    if (equals < 0) throw new InputError(`expected key=value in [${this.group}:vars], got '${line}'`, this.where());
    const vars = { [line.slice(0, equals).trim()]: iniValue(line.slice(equals + 1).trim()) };
    this.check(vars);
    const where = this.where();
    this.builder.setGroupVars(this.group, vars, () => where);
  }

  private childLine(line: string): void {
    const match = GROUP_NAME.exec(line);
    if (!match) throw new InputError(`expected a group name in [${this.group}:children], got '${line}'`, this.where());
    const child = match[1]!;
    if (child === 'all') throw new InputError("'all' cannot be a child group: every group is already inside 'all'", this.where());
    const problem = nameProblem('group', child);
    if (problem) throw new InputError(problem, this.where());
    if (this.builder.groups.has(child)) return this.builder.addChild(this.group, child, this.where());
    const pending = this.pending.get(child);
    if (pending) pending.parents.push(this.group);
    else this.pending.set(child, { state: 'children', line: this.line, parents: [this.group] });
  }

  /** Connection variables type-checked at this line, as YAML ones are at theirs. */
  private check(vars: Record<string, unknown>): void {
    const where = this.where();
    const source: YamlSource = { file: this.file, data: vars, locate: () => where };
    this.builder.errors.push(...checkVars(vars, source, []));
  }
}
