/**
 * `-e/--extra-vars`, as ansible-playbook reads them: `key=value` pairs (values stay text,
 * split like a shell line), an inline YAML/JSON mapping (`'{"pages": 512}'`), or
 * `@FILE` (a YAML or JSON file). Repeatable; a later one wins. They have the highest
 * precedence of all variables, over play vars and inventory vars.
 */
import { InputError } from '../errors.js';
import { isMapping, kindOf, shellWords } from './inventory-vars.js';
import { fileText } from './vault.js';
import { ANSIBLE_YAML, parseYaml } from './yaml-source.js';
import { readInputFile } from './input-file.js';

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

function checkNames(vars: Record<string, unknown>, origin: string): Record<string, unknown> {
  for (const key of Object.keys(vars)) if (!NAME.test(key)) throw new InputError(`-e ${origin}: '${key}' is not a variable name (letters, digits and _, not starting with a digit)`);
  return vars;
}

function mapping(text: string, file: string, origin: string): Record<string, unknown> {
  const data = parseYaml(text, file, ANSIBLE_YAML).data;
  if (data === null || data === undefined) return {};
  if (!isMapping(data)) throw new InputError(`-e ${origin}: extra vars must be a mapping of names to values, not a ${kindOf(data)}`);
  return checkNames(data, origin);
}

export function parseExtraVars(arg: string): Record<string, unknown> {
  if (arg.startsWith('@')) {
    const file = arg.slice(1);
    return mapping(fileText(readInputFile(file, 'cannot read -e @FILE'), file), file, arg);
  }
  if (/^\s*[{[]/.test(arg)) return mapping(arg, '-e', `'${arg}'`);
  const words = shellWords(arg);
  if (!words) throw new InputError(`-e '${arg}': unbalanced quote`);
  const vars: Record<string, unknown> = {};
  for (const word of words) {
    const equals = word.indexOf('=');
    if (equals < 1) throw new InputError(`-e '${arg}': expected key=value, got '${word}'`, undefined, 'or give a YAML/JSON mapping, or @FILE');
    vars[word.slice(0, equals)] = word.slice(equals + 1);
  }
  return checkNames(vars, `'${arg}'`);
}

/** Every -e in order, later ones winning. */
export function extraVars(args: string[] | undefined): Record<string, unknown> {
  return Object.assign({}, ...(args ?? []).map(parseExtraVars));
}
