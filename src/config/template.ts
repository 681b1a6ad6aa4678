/**
 * `{{ name }}` and `{{ name.key }}` substitution in task parameters, from inventory and
 * play vars. A value that is only a template keeps the variable's type (a number stays
 * a number); inside longer text it is interpolated. No expressions: rendered values are
 * validated by the module schema like any literal.
 */
import { InputError, didYouMean, type SourceLocation } from '../errors.js';

const TEMPLATE = /\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)\s*\}\}/g;
const WHOLE = /^\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)\s*\}\}$/;

export function hasTemplate(value: unknown): boolean {
  if (typeof value === 'string') return value.includes('{{');
  if (Array.isArray(value)) return value.some(hasTemplate);
  if (value && typeof value === 'object') return Object.values(value).some(hasTemplate);
  return false;
}

function lookup(name: string, vars: Record<string, unknown>, where: SourceLocation): unknown {
  let value: unknown = vars;
  for (const part of name.split('.')) {
    if (value === null || typeof value !== 'object' || !(part in value)) {
      throw new InputError(`undefined variable '${name}'`, where, didYouMean(name.split('.')[0]!, Object.keys(vars)));
    }
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

export function render(value: unknown, vars: Record<string, unknown>, where: SourceLocation): unknown {
  if (typeof value === 'string') {
    const whole = WHOLE.exec(value);
    if (whole) return lookup(whole[1]!, vars, where);
    if (value.includes('{{') && !new RegExp(TEMPLATE.source).test(value)) throw new InputError(`malformed template in '${value}'`, where);
    return value.replace(TEMPLATE, (_, name: string) => {
      const found = lookup(name, vars, where);
      if (found !== null && typeof found === 'object') throw new InputError(`variable '${name}' is not a scalar and cannot be interpolated into text`, where);
      return String(found);
    });
  }
  if (Array.isArray(value)) return value.map((item) => render(item, vars, where));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, render(item, vars, where)]));
  }
  return value;
}
