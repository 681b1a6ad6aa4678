/**
 * Ansible's host patterns, for a play's `hosts:` and for `--limit`:
 *
 *   all, *                  every host
 *   hv1, hypervisors        a host, or every host of a group (and of its descendants)
 *   hv*, rack[12]*          globs, matched against group names and host names
 *   ~hv\d+                  a regular expression, matched from the start of host names
 *   a,b  a:b                union; `:` separates too, unless the whole comma-separated
 *                           part is an IPv6 address (so list addresses with commas)
 *   &pattern                intersection, !pattern exclusion
 *
 * As in Ansible, the plain terms are united first, then the intersections apply, then the
 * exclusions; a pattern of only `&`/`!` terms starts from all hosts.
 */
import { isIPv6 } from 'node:net';
import picomatch from 'picomatch';
import { InputError, didYouMean, type SourceLocation } from '../errors.js';
import type { Inventory } from './inventory.js';
import { readInputFile } from './input-file.js';

export interface ResolveOptions {
  /** Return [] instead of raising when the pattern, or one of its terms, matches nothing. */
  allowEmpty?: boolean;
  /** Where the pattern was written, for the error (e.g. a play's `hosts:`). */
  where?: SourceLocation;
}

const GLOB = /[*?[]/;

/** Splits `:` outside brackets, so `rack[1:2]` stays whole. */
function splitColons(term: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = '';
  for (const c of term) {
    if (c === '[') depth++;
    else if (c === ']' && depth > 0) depth--;
    if (c === ':' && depth === 0) {
      parts.push(current);
      current = '';
    } else current += c;
  }
  parts.push(current);
  return parts;
}

function isIPv6Literal(term: string): boolean {
  const bare = term.replace(/^[!&]/, '');
  return isIPv6(bare.startsWith('[') && bare.endsWith(']') ? bare.slice(1, -1) : bare);
}

/** The terms of a pattern, each keeping its `!` or `&` prefix. */
export function splitPattern(pattern: string, inventory?: Inventory): string[] {
  const known = (term: string): boolean => {
    const bare = term.replace(/^[!&]/, '');
    return inventory !== undefined && (inventory.hosts.has(bare) || inventory.groups.has(bare));
  };
  return pattern
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '')
    .flatMap((part) => (part.includes(':') && !isIPv6Literal(part) && !known(part) ? splitColons(part) : [part]))
    .map((term) => term.trim())
    .filter((term) => term !== '');
}

function byRegex(body: string, inventory: Inventory, where: SourceLocation | undefined): Set<string> {
  let regex: RegExp;
  try {
    // Sticky: anchored at the start of the name, as Ansible's re.match.
    regex = new RegExp(body, 'y');
  } catch (error) {
    throw new InputError(`invalid regular expression in host pattern '~${body}': ${(error as Error).message}`, where);
  }
  return new Set(
    [...inventory.hosts.keys()].filter((name) => {
      regex.lastIndex = 0;
      return regex.test(name);
    }),
  );
}

/** Hosts one term (without its prefix) selects, and whether it named something that exists. */
function match(term: string, inventory: Inventory, where: SourceLocation | undefined): { hosts: Set<string>; found: boolean } {
  // `[fe80::1]`: an IPv6 address in brackets, not a glob.
  const body = term.startsWith('[') && term.endsWith(']') && isIPv6(term.slice(1, -1)) ? term.slice(1, -1) : term;
  if (body === 'all' || body === '*') return { hosts: new Set(inventory.hosts.keys()), found: true };
  if (body.startsWith('~')) {
    const hosts = byRegex(body.slice(1), inventory, where);
    return { hosts, found: hosts.size > 0 };
  }
  const hosts = new Set<string>();
  if (GLOB.test(body)) {
    const test = picomatch(body, { dot: true });
    let found = false;
    for (const group of inventory.groups.values()) {
      if (!test(group.name)) continue;
      found = true;
      for (const host of group.hosts) hosts.add(host);
    }
    for (const host of inventory.hosts.keys()) if (test(host)) hosts.add(host);
    return { hosts, found: found || hosts.size > 0 };
  }
  const group = inventory.groups.get(body);
  for (const host of group?.hosts ?? []) hosts.add(host);
  if (inventory.hosts.has(body)) hosts.add(body);
  return { hosts, found: group !== undefined || hosts.size > 0 };
}

/** Host names a pattern selects, in inventory order. */
export function resolvePattern(pattern: string, inventory: Inventory, options: ResolveOptions = {}): string[] {
  const terms = splitPattern(pattern, inventory);
  if (terms.length === 0) {
    if (options.allowEmpty) return [];
    throw new InputError(`empty host pattern '${pattern}'`, options.where, "name hosts or groups, or 'all'");
  }
  const plain = terms.filter((term) => !term.startsWith('!') && !term.startsWith('&'));
  const ordered = [...(plain.length ? plain : ['all']), ...terms.filter((term) => term.startsWith('&')), ...terms.filter((term) => term.startsWith('!'))];

  const unmatched: string[] = [];
  let selected = new Set<string>();
  for (const term of ordered) {
    const prefix = term[0] === '!' || term[0] === '&' ? term[0] : '';
    const body = term.slice(prefix.length);
    if (body === '') throw new InputError(`empty term after '${prefix}' in host pattern '${pattern}'`, options.where);
    const { hosts, found } = match(body, inventory, options.where);
    if (!found) unmatched.push(body);
    if (prefix === '!') selected = new Set([...selected].filter((host) => !hosts.has(host)));
    else if (prefix === '&') selected = new Set([...selected].filter((host) => hosts.has(host)));
    else for (const host of hosts) selected.add(host);
  }
  const result = [...inventory.hosts.keys()].filter((host) => selected.has(host));
  if (options.allowEmpty) return result;

  if (unmatched.length) {
    const names = [...inventory.hosts.keys(), ...inventory.groups.keys()];
    const context = terms.length > 1 ? ` (in '${pattern}')` : '';
    const hints = unmatched
      .map((body) => {
        const plainName = !GLOB.test(body) && !body.startsWith('~');
        const suggestion = plainName ? didYouMean(body, names) : undefined;
        const subscript = /^.+\[(-?\d+|\d*[:-]\d*)\]$/.test(body) ? "subscripts like 'group[0]' are not supported" : undefined;
        const hint = suggestion ?? subscript;
        return hint && unmatched.length > 1 ? `'${body}': ${hint}` : hint;
      })
      .filter((hint): hint is string => hint !== undefined);
    const message =
      unmatched.length === 1
        ? `host pattern '${unmatched[0]}'${context} matches no host or group`
        : `host patterns ${unmatched.map((body) => `'${body}'`).join(', ')}${context} match no host or group`;
    throw new InputError(message, options.where, hints.length ? hints.join('; ') : undefined);
  }
  if (result.length === 0) throw new InputError(`host pattern '${pattern}' matches no hosts`, options.where);
  return result;
}

/**
 * A play's hosts narrowed by `--limit` (a pattern, or `@file` with one host or pattern
 * per line, as Ansible's retry files), in the play's order. A limit naming nothing that
 * exists is an error; a limit that merely selects none of this play's hosts gives [].
 */
export function limitHosts(hosts: string[], limit: string | undefined, inventory: Inventory): string[] {
  if (limit === undefined || limit.trim() === '') return hosts;
  const terms = limit.split(',').flatMap((part) => {
    const term = part.trim();
    if (!term.startsWith('@')) return [term];
    const file = term.slice(1);
    const lines = readInputFile(file, 'cannot read limit file')
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '' && !line.startsWith('#'));
    if (lines.length === 0) throw new InputError('limit file names no hosts', { file });
    return lines;
  });
  const allowed = new Set(resolvePattern(terms.join(','), inventory));
  return hosts.filter((host) => allowed.has(host));
}
