/**
 * `{{ expression }}` in task parameters, from inventory, play and extra vars: a variable
 * (`name`, `name.key`) or a literal, then Jinja filters a tuning playbook needs:
 * `default(value[, true])`, `int`, `bool`, `string`, `lower`, `upper`, `join(sep)`,
 * `length`. A value that is only a template keeps its type (`"{{ n | int }}"` is a
 * number); inside longer text it is interpolated. Nothing else of Jinja: rendered
 * values are validated by the module schema like any literal.
 */
import { InputError, didYouMean, type SourceLocation } from '../errors.js';
import { revealed } from './vault.js';

const TEMPLATE = /\{\{(.*?)\}\}/gs;
const WHOLE = /^\{\{(.*?)\}\}$/s;
const FILTERS = ['default', 'd', 'int', 'bool', 'string', 'lower', 'upper', 'join', 'length', 'count'];

export function hasTemplate(value: unknown): boolean {
  if (typeof value === 'string') return value.includes('{{');
  if (Array.isArray(value)) return value.some(hasTemplate);
  if (value && typeof value === 'object') return Object.values(value).some(hasTemplate);
  return false;
}

/** A variable that is not set, carried through filters until `default` or the end. */
class Undefined {
  constructor(readonly name: string) {}
}

/**
 * Own properties only: `{{ constructor }}` or `{{ __proto__ }}` are undefined, not JavaScript
 * internals. `seen` collects the variables (top-level names) a template reads.
 */
function lookup(name: string, vars: Record<string, unknown>, seen?: Set<string>): unknown {
  seen?.add(name.split('.', 1)[0]!);
  let value: unknown = vars;
  for (const part of name.split('.')) {
    if (value === null || typeof value !== 'object' || !Object.hasOwn(value, part)) return new Undefined(name);
    value = (value as Record<string, unknown>)[part];
  }
  return revealed(value, `variable '${name}'`);
}

/** A filter argument or a literal operand: a number, a quoted string, true/false/none. */
function literal(text: string): { value: unknown } | undefined {
  const t = text.trim();
  if (/^-?\d+(\.\d+)?$/.test(t)) return { value: Number(t) };
  const quoted = /^(['"])(.*)\1$/s.exec(t);
  if (quoted) return { value: quoted[2]!.replace(/\\(['"\\])/g, '$1') };
  if (/^(true|True)$/.test(t)) return { value: true };
  if (/^(false|False)$/.test(t)) return { value: false };
  if (/^(none|None)$/.test(t)) return { value: null };
  if (t === '[]') return { value: [] };
  return undefined;
}

/** Splits on `sep` outside quotes and parentheses. */
function splitTop(text: string, sep: string): string[] {
  const parts: string[] = [];
  let [depth, quote, current] = [0, '', ''];
  for (const c of text) {
    if (quote) quote = c === quote ? '' : quote;
    else if (c === '"' || c === "'") quote = c;
    else if (c === '(') depth++;
    else if (c === ')') depth--;
    if (c === sep && !quote && depth === 0) {
      parts.push(current);
      current = '';
    } else current += c;
  }
  parts.push(current);
  return parts;
}

const truthy = (value: unknown): boolean => !(value === false || value === null || value === 0 || value === '' || (Array.isArray(value) && value.length === 0));

/** Ansible's `bool` filter: yes/on/true/1 are true, anything else false. */
function toBool(value: unknown): boolean {
  if (typeof value === 'boolean') return value;
  return ['yes', 'on', '1', 'true', 'y'].includes(String(value).trim().toLowerCase());
}

function toText(value: unknown): string {
  if (value === null) return 'None';
  if (typeof value === 'boolean') return value ? 'True' : 'False';
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}

function applyFilter(value: unknown, name: string, args: unknown[], fail: (message: string) => never): unknown {
  if (name === 'default' || name === 'd') return value instanceof Undefined || (args[1] === true && !truthy(value)) ? args[0] ?? '' : value;
  if (value instanceof Undefined) return value;
  switch (name) {
    case 'int': {
      // Jinja's int: a number or numeric text, else the default (0).
      const number = typeof value === 'number' ? value : typeof value === 'boolean' ? Number(value) : Number.parseFloat(String(value).trim());
      return Number.isFinite(number) ? Math.trunc(number) : (args[0] ?? 0);
    }
    case 'bool':
      return toBool(value);
    case 'string':
      return toText(value);
    case 'lower':
      return toText(value).toLowerCase();
    case 'upper':
      return toText(value).toUpperCase();
    case 'join':
      if (!Array.isArray(value)) return fail(`join needs a list, not ${JSON.stringify(value)}`);
      return value.map(toText).join(typeof args[0] === 'string' ? args[0] : '');
    case 'length':
    case 'count':
      if (typeof value === 'string' || Array.isArray(value)) return value.length;
      if (value !== null && typeof value === 'object') return Object.keys(value).length;
      return fail(`length needs a list, mapping or text, not ${JSON.stringify(value)}`);
  }
  return fail(`unknown filter '${name}'`);
}

/** One `{{ ... }}` expression's value (an Undefined when a variable is missing and no default caught it). */
function evaluate(expression: string, vars: Record<string, unknown>, fail: (message: string) => never, seen?: Set<string>): unknown {
  const [head, ...filters] = splitTop(expression, '|');
  const operand = head!.trim();
  const known = literal(operand);
  let value: unknown;
  if (known) value = known.value;
  else if (/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$/.test(operand)) value = lookup(operand, vars, seen);
  else fail(`malformed template expression '{{${expression}}}': expected a variable or a literal, then filters`);
  for (const filter of filters) {
    const call = /^\s*([A-Za-z_]+)\s*(?:\((.*)\))?\s*$/s.exec(filter);
    if (!call) fail(`malformed filter '${filter.trim()}' in '{{${expression}}}'`);
    const [, name, rawArgs] = call!;
    if (!FILTERS.includes(name!)) fail(`unknown filter '${name}' (kvmconf has: ${FILTERS.filter((f) => f !== 'd' && f !== 'count').join(', ')})`);
    const args = rawArgs === undefined || rawArgs.trim() === '' ? [] : splitTop(rawArgs, ',').map((arg) => {
      const parsed = literal(arg);
      if (!parsed) {
        const variable = lookup(arg.trim(), vars, seen);
        if (variable instanceof Undefined) fail(`filter argument '${arg.trim()}' is neither a literal nor a defined variable`);
        return variable;
      }
      return parsed.value;
    });
    value = applyFilter(value, name!, args, fail);
  }
  return value;
}

/**
 * Renders every template in a value. `seen`, when given, collects the variables read: every
 * expression reads the same ones whatever their values (filter arguments are read before
 * the filter runs), so a result holds for any vars that agree on them.
 */
export function render(value: unknown, vars: Record<string, unknown>, where: SourceLocation, seen?: Set<string>): unknown {
  const fail = (message: string, hint?: string): never => {
    throw new InputError(message, where, hint);
  };
  const defined = (result: unknown): unknown => {
    if (!(result instanceof Undefined)) return result;
    const root = result.name.split('.')[0]!;
    return fail(`undefined variable '${result.name}'`, didYouMean(root, Object.keys(vars)) ?? `give it a value in the inventory or with -e, or write {{ ${result.name} | default(...) }}`);
  };
  if (typeof value === 'string') {
    const whole = WHOLE.exec(value);
    if (whole && !whole[1]!.includes('}}')) return defined(evaluate(whole[1]!, vars, fail, seen));
    if (value.includes('{{') && !new RegExp(TEMPLATE.source, 's').test(value)) fail(`malformed template in '${value}'`);
    return value.replace(TEMPLATE, (_, expression: string) => {
      const found = defined(evaluate(expression, vars, fail, seen));
      if (found !== null && typeof found === 'object') fail(`'{{${expression}}}' is not a scalar and cannot be interpolated into text`);
      return String(found);
    });
  }
  if (Array.isArray(value)) return value.map((item) => render(item, vars, where, seen));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, render(item, vars, where, seen)]));
  }
  return value;
}
