/**
 * Host names as Ansible's inventory plugins read them: an optional `:port` suffix and
 * `[start:end:step]` ranges, numeric (zero padding kept: `hv[01:10]`) or alphabetic
 * (`db-[a:f]`), several per name (`r[1:2]-hv[01:04]`). The same rules as Ansible's
 * `expand_hostname_range` and `parse_address`, so one inventory gives one host list.
 */
import { isIPv6 } from 'node:net';

const LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
/** More hosts than this from one name is a typo (`[1:1000000]`), not a fleet. */
const MAX_HOSTS = 100_000;

export class HostPatternError extends Error {}

export interface HostPattern {
  hosts: string[];
  port?: number;
}

/** Splits `name:port` and `[v6 address]:port`; a colon inside brackets is part of a range. */
function splitPort(pattern: string): { name: string; port?: number } {
  const bracketed = /^\[([^\]]+)\]:(\d+)$/.exec(pattern);
  if (bracketed && isIPv6(bracketed[1]!)) return { name: bracketed[1]!, port: Number(bracketed[2]) };
  const match = /^((?:[^:[\]]|\[[^\]]*\])+):(\d+)$/.exec(pattern);
  if (match) return { name: match[1]!, port: Number(match[2]) };
  return { name: pattern };
}

/** The values of one `[begin:end(:step)]` range, as Ansible spells them. */
function rangeValues(range: string, pattern: string): string[] {
  const bounds = range.split(':');
  if (bounds.length !== 2 && bounds.length !== 3) throw new HostPatternError(`host range [${range}] in '${pattern}' must be begin:end or begin:end:step`);
  const begin = bounds[0] || '0';
  const end = bounds[1]!;
  const step = bounds.length === 3 ? Number(bounds[2]) : 1;
  if (!end) throw new HostPatternError(`host range [${range}] in '${pattern}' has no end value`);
  if (!Number.isInteger(step) || step < 1) throw new HostPatternError(`host range [${range}] in '${pattern}': the step must be a whole number of at least 1`);
  if (LETTERS.includes(begin) && LETTERS.includes(end) && begin.length === 1 && end.length === 1) {
    const [from, to] = [LETTERS.indexOf(begin), LETTERS.indexOf(end)];
    if (from > to) throw new HostPatternError(`host range [${range}] in '${pattern}' must have begin <= end`);
    return [...LETTERS.slice(from, to + 1)].filter((_, i) => i % step === 0);
  }
  if (!/^\d+$/.test(begin) || !/^\d+$/.test(end)) throw new HostPatternError(`host range [${range}] in '${pattern}' must be numbers or single letters`);
  // A leading zero asks for padding to the width of the bounds, which must then match.
  const width = begin.length > 1 && begin.startsWith('0') ? begin.length : 0;
  if (width && width !== end.length) throw new HostPatternError(`host range [${range}] in '${pattern}' must have begin and end of equal length when zero-padded`);
  const [from, to] = [Number(begin), Number(end)];
  if ((to - from) / step >= MAX_HOSTS) throw new HostPatternError(`host range [${range}] in '${pattern}' gives more than ${MAX_HOSTS} hosts`);
  const values: string[] = [];
  for (let n = from; n <= to; n += step) values.push(String(n).padStart(width, '0'));
  return values;
}

/** Every host name a name with ranges stands for, in Ansible's order. */
export function expandRanges(name: string): string[] {
  const open = name.indexOf('[');
  if (open < 0) return [name];
  const close = name.indexOf(']', open);
  if (close < 0) throw new HostPatternError(`unclosed '[' in host name '${name}'`);
  const [head, range, tail] = [name.slice(0, open), name.slice(open + 1, close), name.slice(close + 1)];
  const hosts = rangeValues(range, name).flatMap((value) => expandRanges(head + value + tail));
  if (hosts.length > MAX_HOSTS) throw new HostPatternError(`host name '${name}' gives more than ${MAX_HOSTS} hosts`);
  return hosts;
}

/** A host entry of an inventory: its hosts and the port written after it, if any. */
export function parseHostPattern(pattern: string): HostPattern {
  const trimmed = pattern.trim();
  const { name, port } = splitPort(trimmed);
  if (trimmed.endsWith(':') && port === undefined) throw new HostPatternError(`host '${pattern}' ends in ':', which is reserved for a port`);
  if (port !== undefined && (port < 1 || port > 65535)) throw new HostPatternError(`host '${pattern}': port ${port} is not 1..65535`);
  return { hosts: expandRanges(name), ...(port !== undefined && { port }) };
}
