/**
 * Quoting for everything that reaches a remote shell. Values are schema-validated
 * before they get here; quoting is the second wall, so a value is inert whatever it holds.
 */

/** POSIX single-quote a value: the result is always exactly one shell word. */
export function quote(value: string | number): string {
  const text = String(value);
  if (text !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(text)) return text;
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/** Tagged template that quotes every interpolated value: sh`echo ${x} > ${path}`. */
export function sh(strings: TemplateStringsArray, ...values: Array<string | number>): string {
  return strings.reduce((out, part, i) => out + part + (i < values.length ? quote(values[i]!) : ''), '');
}

/** Joins commands so the first failure stops the rest. */
export function all(...commands: string[]): string {
  return commands.join(' && ');
}
