/** YAML files read with positions kept, so every later error can name file, line and column. */
import { LineCounter, parseDocument, isMap, isNode, isScalar, isSeq, visit, type Document, type DocumentOptions, type Pair, type ParseOptions, type ScalarTag, type SchemaOptions, type YAMLMap } from 'yaml';
import { InputError, InputErrors, type SourceLocation } from '../errors.js';
import { fileText, VaultText } from './vault.js';
import { readInputFile } from './input-file.js';

export type PathSegment = string | number;

export interface YamlSource {
  file: string;
  data: unknown;
  /** Location of the node at `path` (or its nearest existing parent). */
  locate(path: PathSegment[]): SourceLocation;
}

export function jsonPath(path: PathSegment[]): string {
  return '$' + path.map((segment) => (typeof segment === 'number' ? `[${segment}]` : /^[A-Za-z_][\w]*$/.test(segment) ? `.${segment}` : `[${JSON.stringify(segment)}]`)).join('');
}

const VAULT_TAG: ScalarTag = { tag: '!vault', resolve: (text: string) => new VaultText(text) as unknown as string };

type YamlOptions = ParseOptions & DocumentOptions & SchemaOptions;

const PYYAML_TRUE = /^(?:yes|Yes|YES|true|True|TRUE|on|On|ON)$/;
const PYYAML_FALSE = /^(?:no|No|NO|false|False|FALSE|off|Off|OFF)$/;

/**
 * YAML as Ansible reads it (PyYAML, YAML 1.1): `yes`/`no`/`on`/`off` are booleans, `0755`
 * is octal; unlike the yaml package's 1.1 schema, `y` and `n` stay strings, as in PyYAML.
 * Merge keys are left to the readers, which apply them with their own checks. `!vault`
 * strings stay encrypted until used (vault.ts).
 */
export const ANSIBLE_YAML: YamlOptions = {
  version: '1.1',
  merge: false,
  customTags: (tags) =>
    tags.map((tag) => {
      if (typeof tag !== 'object' || tag.tag !== 'tag:yaml.org,2002:bool' || !('test' in tag)) return tag;
      return { ...tag, test: tag.test!.test('true') ? PYYAML_TRUE : PYYAML_FALSE } as ScalarTag;
    }).concat(VAULT_TAG),
};

/** A parsed file as data with locations, and its syntax tree for readers that need how values were written. */
export interface ParsedYaml {
  source: YamlSource;
  document: Document;
  lines: LineCounter;
}

export function parseYaml(text: string, file: string, options: YamlOptions = {}): YamlSource {
  return parseYamlDocument(text, file, options).source;
}

export function parseYamlDocument(text: string, file: string, options: YamlOptions = {}): ParsedYaml {
  const lineCounter = new LineCounter();
  // yaml's own unique-key check compares every key with every earlier one of its map
  // (minutes for an inventory of 20,000 hosts); duplicateKeys does the same in one pass.
  const document: Document = parseDocument(text, { lineCounter, prettyErrors: false, strict: true, ...options, uniqueKeys: false });
  const errors = [...document.errors.map((error) => ({ pos: error.pos[0], message: error.message.split('\n')[0]! })), ...duplicateKeys(document)].sort((a, b) => a.pos - b.pos);
  if (errors.length > 0) {
    throw new InputErrors(
      errors.map((error) => {
        const { line, col } = lineCounter.linePos(error.pos);
        return new InputError(`invalid YAML: ${error.message}`, { file, line, column: col });
      }),
    );
  }
  const nodes = new NodeIndex(document);
  /** A map key's own position when the path ends in one (errors point at the key, as Ansible's do). */
  const keyNode = (path: PathSegment[]): unknown => {
    const last = path[path.length - 1];
    const parent = path.length ? nodes.at(path.slice(0, -1)) : undefined;
    if (typeof last !== 'string' || !isMap(parent)) return undefined;
    return nodes.pair(parent, last)?.key;
  };
  const locate = (path: PathSegment[]): SourceLocation => {
    for (let length = path.length; length >= 0; length--) {
      const node = keyNode(path.slice(0, length)) ?? nodes.at(path.slice(0, length));
      if (isNode(node) && node.range) {
        const { line, col } = lineCounter.linePos(node.range[0]);
        return { file, line, column: col, path: jsonPath(path) };
      }
    }
    return { file, path: jsonPath(path) };
  };
  // One more walk of the tree only for files that hold a `!vault` value (inventories can be large).
  if (text.includes('!vault')) placeVaultedValues(document, lineCounter, file);
  return { source: { file, data: toData(document, file, lineCounter), locate }, document, lines: lineCounter };
}

/**
 * document.getIn, with each mapping's keys indexed on first use: locating every host of
 * a 1,000-host group by a scan of its mapping made validating a large inventory quadratic.
 * The first of duplicate keys wins, as with getIn.
 */
class NodeIndex {
  private readonly maps = new WeakMap<YAMLMap, Map<unknown, Pair>>();

  constructor(private readonly document: Document) {}

  pair(map: YAMLMap, key: unknown): Pair | undefined {
    let byKey = this.maps.get(map);
    if (!byKey) {
      byKey = new Map();
      for (const pair of map.items) {
        const name = isScalar(pair.key) ? pair.key.value : pair.key;
        if (!byKey.has(name)) byKey.set(name, pair);
      }
      this.maps.set(map, byKey);
    }
    return byKey.get(key);
  }

  /** The node at `path` (scalars as nodes), or undefined. */
  at(path: PathSegment[]): unknown {
    let node: unknown = this.document.contents;
    for (const segment of path) {
      if (isMap(node)) node = this.pair(node, segment)?.value;
      else if (isSeq(node) && /^\d+$/.test(String(segment))) node = node.items[Number(segment)];
      else return undefined;
    }
    return node;
  }
}

/** Expansions an alias may make; a "billion laughs" file would otherwise fill the heap. */
const MAX_ALIAS_COUNT = 100;

/** The document as plain data; an alias bomb is an input error at its first alias, not yaml's ReferenceError. */
function toData(document: Document, file: string, lineCounter: LineCounter): unknown {
  try {
    return document.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (error) {
    if (!(error instanceof ReferenceError && /alias count/i.test(error.message))) throw error;
    let first: number | undefined;
    visit(document, { Alias: (_, alias) => { first ??= alias.range?.[0]; } });
    const { line, col } = lineCounter.linePos(first ?? 0);
    throw new InputError(`YAML aliases expand too far (over ${MAX_ALIAS_COUNT} copies per alias): refused as a possible alias bomb ("billion laughs")`, { file, line, column: col }, 'write the repeated values out, or use fewer nested aliases');
  }
}

/** A file's text (size-checked, see input-file.ts), decrypted when it is vaulted as a whole (`ansible-vault encrypt FILE`). */
export function readText(file: string): string {
  return fileText(readInputFile(file), file);
}

export function readYaml(file: string, options: YamlOptions = {}): YamlSource {
  return parseYaml(readText(file), file, options);
}

/** Gives each `!vault` value its file and line, for the errors of its decryption. */
function placeVaultedValues(document: Document, lineCounter: LineCounter, file: string): void {
  visit(document, {
    Scalar(_, node) {
      if (node.value instanceof VaultText && node.range) {
        const { line, col } = lineCounter.linePos(node.range[0]);
        node.value.location = { file, line, column: col };
      }
    },
  });
}

/** Keys repeated within one mapping, as yaml's uniqueKeys reports them, found with a set per mapping. */
export function duplicateKeys(document: Document): Array<{ pos: number; message: string }> {
  const found: Array<{ pos: number; message: string }> = [];
  visit(document, {
    Map(_, map) {
      const seen = new Set<unknown>();
      for (const pair of map.items) {
        const key = isScalar(pair.key) ? pair.key.value : pair.key;
        if (seen.has(key)) found.push({ pos: (pair.key as { range?: [number, number, number] } | null)?.range?.[0] ?? map.range?.[0] ?? 0, message: 'Map keys must be unique' });
        seen.add(key);
      }
    },
  });
  return found;
}
