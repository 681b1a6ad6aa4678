/**
 * Quoting for everything that reaches a remote shell. Values are schema-validated
 * before they get here; quoting is the second wall, so a value is inert whatever it holds.
 *
 * Commands that apply runs are of type `Command`, which only this file makes: `sh`
 * quotes every value interpolated into it, `shellCode` takes fixed text with no value
 * in it, and `glob` lets a pattern through unquoted only when it holds nothing but
 * glob characters. A plain string, or a template with a value spliced in by hand,
 * is not a Command, so the compiler refuses it where a change's commands go.
 */

declare const COMMAND: unique symbol;

/** Shell text whose every value was quoted (or checked, for a glob) on its way in. */
export type Command = string & { readonly [COMMAND]: true };

/** A finished Command or a checked glob, spliced into `sh` as it is. */
export class Verbatim {
  constructor(readonly text: string) {}
}

/** POSIX single-quote a value: the result is always exactly one shell word. */
export function quote(value: string | number): string {
  const text = String(value);
  if (text !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(text)) return text;
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/** Tagged template that quotes every interpolated value: sh`kc_set_value ${path} ${value}`. */
export function sh(strings: TemplateStringsArray, ...values: Array<string | number | Verbatim>): Command {
  return strings.reduce((out, part, i) => {
    if (i >= values.length) return out + part;
    const value = values[i]!;
    return out + part + (value instanceof Verbatim ? value.text : quote(value));
  }, '') as Command;
}

/** Fixed shell text written in the source (function libraries, loops over "$@"): it takes no value. */
export function shellCode(strings: TemplateStringsArray, ..._none: never[]): Command {
  return strings.join('') as Command;
}

/** A Command already built, to splice into another `sh` unquoted. */
export function inline(command: Command): Verbatim {
  return new Verbatim(command);
}

/** Several values as separate words, each quoted: sh`tuned-adm profile ${words(names)}`. */
export function words(values: ReadonlyArray<string | number>): Verbatim {
  return new Verbatim(values.map(quote).join(' '));
}

/**
 * A deliberate glob (a udev KERNEL== or shell case pattern), spliced unquoted: only
 * letters, digits and `_.-*?[]` pass, so it can match names but never run anything.
 */
export function glob(pattern: string): Verbatim {
  if (!/^[A-Za-z0-9_.*?[\]-]+$/.test(pattern)) throw new Error(`not a plain glob pattern: ${JSON.stringify(pattern)}`);
  return new Verbatim(pattern);
}

/** Joins commands so the first failure stops the rest. */
export function all(...commands: Command[]): Command {
  return commands.join(' && ') as Command;
}
