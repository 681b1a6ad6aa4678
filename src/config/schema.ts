/** ajv validation whose errors name file, line, column and JSON path, with did-you-mean. */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { InputError, didYouMean } from '../errors.js';
import type { PathSegment, YamlSource } from './yaml-source.js';

export const ajv = new Ajv({ allErrors: true, strict: true, strictRequired: false, allowUnionTypes: true, useDefaults: false });

const compiled = new WeakMap<object, ValidateFunction>();

export function compile(schema: Record<string, unknown>): ValidateFunction {
  let validate = compiled.get(schema);
  if (!validate) {
    validate = ajv.compile(schema);
    compiled.set(schema, validate);
  }
  return validate;
}

function pathOf(instancePath: string): PathSegment[] {
  return instancePath
    .split('/')
    .slice(1)
    .map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((part) => (/^\d+$/.test(part) ? Number(part) : part));
}

function describe(error: ErrorObject, schemaKeys: (path: PathSegment[]) => string[]): { path: PathSegment[]; message: string; hint?: string } {
  const path = pathOf(error.instancePath);
  const field = path.length ? `'${path[path.length - 1]}'` : 'document';
  switch (error.keyword) {
    case 'additionalProperties': {
      const key = (error.params as { additionalProperty: string }).additionalProperty;
      return { path: [...path, key], message: `unknown key '${key}'`, hint: didYouMean(key, schemaKeys(path)) };
    }
    case 'enum':
      return { path, message: `${field} must be one of ${(error.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}` };
    case 'required':
      return { path, message: `missing required key '${(error.params as { missingProperty: string }).missingProperty}'` };
    default:
      return { path, message: `${field} ${error.message ?? 'is invalid'}` };
  }
}

/** One message for a failed anyOf/oneOf: the keys it needs, or the alternatives' own complaints. */
function describeChoice(choice: ErrorObject, all: ErrorObject[]): { path: PathSegment[]; message: string; hint?: string } {
  const path = pathOf(choice.instancePath);
  const branches = all.filter((e) => e !== choice && e.schemaPath.startsWith(`${choice.schemaPath}/`) && e.instancePath === choice.instancePath);
  const required = [...new Set(branches.filter((e) => e.keyword === 'required').map((e) => `'${(e.params as { missingProperty: string }).missingProperty}'`))];
  const field = path.length ? `'${path[path.length - 1]}'` : '';
  if (required.length && branches.every((e) => e.keyword === 'required' || e.keyword === 'not')) {
    return { path, message: `${field ? `${field} ` : ''}needs ${choice.keyword === 'oneOf' ? 'exactly one of' : 'one of'} ${required.join(', ')}` };
  }
  const reasons = [...new Set(branches.map((e) => e.message ?? ''))].filter(Boolean);
  return { path, message: `${field || 'parameters'} ${reasons.length ? reasons.join(', or ') : choice.message ?? 'is invalid'}` };
}

/** Keys a schema allows at an object path, for suggestions. */
function keysAt(schema: Record<string, unknown>, path: PathSegment[]): string[] {
  let node: Record<string, unknown> | undefined = schema;
  for (const segment of path) {
    if (!node) return [];
    node = (typeof segment === 'number' ? node.items : (node.properties as Record<string, unknown> | undefined)?.[segment]) as Record<string, unknown> | undefined;
  }
  return Object.keys((node?.properties as object | undefined) ?? {});
}

/**
 * Validates `data` and locates each error in the YAML source: under `base` (a path), or
 * where `base` (a function of the error's path in `data`) says the value was written.
 * oneOf/anyOf noise is dropped when a more specific error explains the same spot.
 */
export function validateAt(schema: Record<string, unknown>, data: unknown, source: YamlSource, base: PathSegment[] | ((path: PathSegment[]) => PathSegment[]), label = ''): InputError[] {
  const sourcePath = typeof base === 'function' ? base : (path: PathSegment[]) => [...base, ...path];
  const validate = compile(schema);
  if (validate(data)) return [];
  const all = validate.errors ?? [];
  const inBranch = (error: ErrorObject): boolean => /\/(anyOf|oneOf)\/\d+\//.test(error.schemaPath);
  const direct = all.filter((error) => !inBranch(error) && !['anyOf', 'oneOf'].includes(error.keyword));
  // Errors inside anyOf/oneOf branches only explain the choice; show them when nothing plainer is wrong.
  const errors = direct.length ? direct : all.filter((error) => ['anyOf', 'oneOf'].includes(error.keyword));
  const seen = new Set<string>();
  return errors.flatMap((error) => {
    const { path, message, hint } = ['anyOf', 'oneOf'].includes(error.keyword) ? describeChoice(error, all) : describe(error, (p) => keysAt(schema, p));
    const text = `${label}${message}`;
    const key = `${path.join('/')}|${text}`;
    if (seen.has(key)) return [];
    seen.add(key);
    return [new InputError(text, source.locate(sourcePath(path)), hint)];
  });
}
