/**
 * Inventory sources as Ansible reads them, each `-i` in order into one inventory:
 * a file (an executable script, YAML, or INI), a folder of sources (read in name order,
 * recursively, skipping what Ansible skips), or a comma-separated host list
 * (`-i 'hv1,hv2:2222,'`). group_vars/ and host_vars/ are read beside each source.
 */
import { accessSync, constants, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { InputError, InputErrors } from '../errors.js';
import { HostPatternError, parseHostPattern } from './host-ranges.js';
import { IniInventoryReader } from './ini-inventory.js';
import type { Inventory } from './inventory.js';
import { InventoryBuilder, resolveInventory } from './inventory-model.js';
import { isMapping } from './inventory-vars.js';
import { ScriptInventoryReader } from './script-inventory.js';
import { InventoryFile, YamlInventoryReader, loadVarsFiles, pathKind } from './yaml-inventory.js';
import { readText } from './yaml-source.js';

/** Names Ansible skips inside an inventory folder (INVENTORY_IGNORE_EXTS and the vars folders). */
const IGNORED_NAMES = /^\.|^(host_vars|group_vars|vars_plugins)$|(\.pyc|\.pyo|\.swp|\.bak|~|\.rpm|\.md|\.txt|\.rst|\.orig|\.ini|\.cfg|\.retry)$/;
const YAML_EXTENSIONS = /\.(ya?ml|json)$/;

/** An executable program, not a data file that merely has its x bit set. */
function isScript(file: string, text: string): boolean {
  try {
    accessSync(file, constants.X_OK);
  } catch {
    return false;
  }
  return text.startsWith('#!') || text.startsWith('\x7fELF');
}

/** Without a telling extension, YAML when it reads as a mapping, else INI (Ansible tries them in that order). */
function looksLikeYaml(file: string, text: string): boolean {
  if (YAML_EXTENSIONS.test(file)) return true;
  if (/\.[^/.]+$/.test(file)) return false;
  try {
    return isMapping(new InventoryFile(file, text).source.data);
  } catch {
    return false;
  }
}

function collect(builder: InventoryBuilder, read: () => void): void {
  try {
    read();
  } catch (error) {
    if (error instanceof InputErrors) builder.errors.push(...error.errors);
    else if (error instanceof InputError) builder.errors.push(error);
    else throw error;
  }
}

function readFile(builder: InventoryBuilder, file: string): void {
  collect(builder, () => {
    const text = readText(file);
    const dir = dirname(resolve(file));
    if (isScript(file, text)) new ScriptInventoryReader(builder, file, dir).read();
    else if (looksLikeYaml(file, text)) new YamlInventoryReader(builder, new InventoryFile(file, text), dir).read();
    else new IniInventoryReader(builder, file, text, dir).read();
  });
}

function readFolder(builder: InventoryBuilder, folder: string): void {
  for (const entry of readdirSync(folder).sort()) {
    if (IGNORED_NAMES.test(entry)) continue;
    const path = join(folder, entry);
    const kind = pathKind(path);
    if (kind === 'dir') readFolder(builder, path);
    else if (kind === 'file') readFile(builder, path);
  }
}

/** `-i 'hv1,hv2:2222,'`: hosts in `ungrouped`, as Ansible's host_list plugin. */
function readHostList(builder: InventoryBuilder, list: string): void {
  for (const item of list.split(',').map((part) => part.trim()).filter(Boolean)) {
    collect(builder, () => {
      let pattern;
      try {
        pattern = parseHostPattern(item);
      } catch (error) {
        if (error instanceof HostPatternError) throw new InputError(error.message, { file: list });
        throw error;
      }
      if (pattern.hosts.length !== 1) throw new InputError(`host ranges are not expanded in a host list: '${item}'`, { file: list });
      const known = builder.hosts.has(pattern.hosts[0]!);
      const host = builder.host(pattern.hosts[0]!, process.cwd(), 'ungrouped');
      if (!known && pattern.port !== undefined) host.vars.ansible_port = pattern.port;
    });
  }
}

/** Every source read into one inventory; all input errors of all sources at once. */
export function loadInventory(sources: string | string[]): Inventory {
  const list = typeof sources === 'string' ? [sources] : sources;
  const builder = new InventoryBuilder();
  const basedirs: string[] = [];
  for (const source of list) {
    const kind = pathKind(source);
    if (kind === undefined && source.includes(',')) readHostList(builder, source);
    else if (kind === undefined) throw new InputError(`cannot read: ${readError(source)}`, { file: source });
    else {
      basedirs.push(kind === 'dir' ? resolve(source) : dirname(resolve(source)));
      if (kind === 'dir') readFolder(builder, source);
      else readFile(builder, source);
    }
  }
  builder.findCycles();
  loadVarsFiles(builder, basedirs);
  builder.throwErrors();
  return resolveInventory(builder, list.join(','));
}

function readError(path: string): string {
  try {
    statSync(path);
    return 'not a file or folder';
  } catch (error) {
    return (error as NodeJS.ErrnoException).code ?? (error as Error).message;
  }
}
