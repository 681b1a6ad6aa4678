/**
 * The value typing of Ansible's INI inventories: each value goes through Python's
 * `ast.literal_eval`, and stays a string when that fails. So `port=22` is a number,
 * `x=True` a boolean, `l=[1, 'a']` a list, `z=007` and `yes` stay strings. This is the
 * subset of Python literals that has a JSON value (numbers, strings, True/False/None,
 * lists, tuples, dicts); anything else (sets, bytes, complex numbers, expressions)
 * is kept as the text it was, which is what Ansible ends up storing for most of them.
 */

class NotLiteral extends Error {}

const ESCAPES: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', "'": "'", '"': '"', a: '\x07', b: '\b', f: '\f', v: '\v', '0': '\0', '\n': '' };

class Reader {
  private pos = 0;

  constructor(private readonly text: string) {}

  /** The whole text as one literal, with only spaces and a `# comment` after it. */
  document(): unknown {
    const value = this.value();
    this.skip();
    if (this.pos < this.text.length) throw new NotLiteral();
    return value;
  }

  /** Whitespace and Python comments. */
  private skip(): void {
    for (;;) {
      while (/\s/.test(this.text[this.pos] ?? '')) this.pos++;
      if (this.text[this.pos] !== '#') return;
      while (this.pos < this.text.length && this.text[this.pos] !== '\n') this.pos++;
    }
  }

  private value(): unknown {
    this.skip();
    const c = this.text[this.pos];
    if (c === undefined) throw new NotLiteral();
    if (c === '[') return this.sequence(']');
    if (c === '(') return this.tuple();
    if (c === '{') return this.dict();
    if (c === '+' || c === '-') {
      this.pos++;
      const operand = this.value();
      if (typeof operand !== 'number') throw new NotLiteral();
      return c === '-' ? -operand : operand;
    }
    const word = /^[A-Za-z_][A-Za-z0-9_]*/.exec(this.text.slice(this.pos))?.[0];
    if (word !== undefined && !/^[rRuU]$/.test(word)) return this.constant(word);
    if (word !== undefined || c === '"' || c === "'") return this.strings();
    return this.number();
  }

  private constant(word: string): unknown {
    this.pos += word.length;
    if (word === 'True') return true;
    if (word === 'False') return false;
    if (word === 'None') return null;
    throw new NotLiteral();
  }

  /** One string literal, or several side by side, which Python joins. */
  private strings(): string {
    let result = this.string();
    for (;;) {
      const save = this.pos;
      this.skip();
      if (!/^[rRuU]?['"]/.test(this.text.slice(this.pos))) {
        this.pos = save;
        return result;
      }
      result += this.string();
    }
  }

  private string(): string {
    let raw = false;
    if (/[rR]/.test(this.text[this.pos]!)) [raw, this.pos] = [true, this.pos + 1];
    else if (/[uU]/.test(this.text[this.pos]!)) this.pos++;
    const quote = this.text.startsWith(this.text[this.pos]!.repeat(3), this.pos) ? this.text[this.pos]!.repeat(3) : this.text[this.pos]!;
    if (quote[0] !== '"' && quote[0] !== "'") throw new NotLiteral();
    this.pos += quote.length;
    let out = '';
    for (;;) {
      if (this.pos >= this.text.length) throw new NotLiteral();
      if (this.text.startsWith(quote, this.pos)) {
        this.pos += quote.length;
        return out;
      }
      const c = this.text[this.pos++]!;
      if (c === '\n' && quote.length === 1) throw new NotLiteral();
      if (c !== '\\') {
        out += c;
        continue;
      }
      const next = this.text[this.pos++] ?? '';
      if (raw) out += c + next;
      else if (next in ESCAPES) out += ESCAPES[next];
      else if (next === 'x' || next === 'u' || next === 'U') {
        const length = next === 'x' ? 2 : next === 'u' ? 4 : 8;
        const hex = this.text.slice(this.pos, this.pos + length);
        if (!new RegExp(`^[0-9a-fA-F]{${length}}$`).test(hex)) throw new NotLiteral();
        out += String.fromCodePoint(parseInt(hex, 16));
        this.pos += length;
      } else out += c + next;
    }
  }

  private number(): number {
    const rest = this.text.slice(this.pos);
    const based = /^0([xX][0-9a-fA-F_]+|[oO][0-7_]+|[bB][01_]+)/.exec(rest);
    const decimal = /^(?:\d(?:_?\d)*)?(?:\.(?:\d(?:_?\d)*)?)?(?:[eE][+-]?\d(?:_?\d)*)?/.exec(rest);
    if (based) {
      this.pos += based[0].length;
      const digits = based[1]!.slice(1).replace(/_/g, '');
      return parseInt(digits, { x: 16, o: 8, b: 2 }[based[1]![0]!.toLowerCase() as 'x' | 'o' | 'b']);
    }
    const text = decimal?.[0] ?? '';
    if (!/\d/.test(text)) throw new NotLiteral();
    // Python 3 refuses 007 (a leading zero on a non-zero integer).
    if (/^0+\d/.test(text) && !/[.eE]/.test(text) && /[1-9]/.test(text)) throw new NotLiteral();
    if (/^[jJ]/.test(rest.slice(text.length))) throw new NotLiteral();
    this.pos += text.length;
    return Number(text.replace(/_/g, ''));
  }

  private items(close: string, item: () => void): void {
    this.pos++;
    for (;;) {
      this.skip();
      if (this.text[this.pos] === close) break;
      item();
      this.skip();
      if (this.text[this.pos] === ',') this.pos++;
      else if (this.text[this.pos] !== close) throw new NotLiteral();
    }
    this.pos++;
  }

  private sequence(close: string): unknown[] {
    const list: unknown[] = [];
    this.items(close, () => list.push(this.value()));
    return list;
  }

  /** `(1, 2)` is a tuple (a list in JSON); `(1)` is just 1. */
  private tuple(): unknown {
    const start = this.pos;
    const list = this.sequence(')');
    const inner = this.text.slice(start + 1, this.pos - 1).replace(/#[^\n]*/g, '').trim();
    return list.length === 1 && !inner.endsWith(',') ? list[0] : list;
  }

  private dict(): Record<string, unknown> {
    const dict: Record<string, unknown> = {};
    let isSet = false;
    this.items('}', () => {
      const key = this.value();
      this.skip();
      if (this.text[this.pos] !== ':') {
        isSet = true;
        return;
      }
      this.pos++;
      if (typeof key !== 'string' && typeof key !== 'number' && typeof key !== 'boolean' && key !== null) throw new NotLiteral();
      dict[String(key)] = this.value();
    });
    if (isSet) throw new NotLiteral();
    return dict;
  }
}

/** The typed value of an INI inventory value: the Python literal, else the text itself. */
export function iniValue(text: string): unknown {
  try {
    return new Reader(text).document();
  } catch (error) {
    if (error instanceof NotLiteral) return text;
    throw error;
  }
}
