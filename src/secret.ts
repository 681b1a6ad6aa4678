/**
 * A password held for a run (sudo, SSH login). It prints as `<secret>` however it is
 * printed (template, JSON, util.inspect, an error message), so a report, a log line or
 * a stack trace cannot carry it by accident; `reveal()` is the one way to its text.
 */
import { inspect } from 'node:util';

export class Secret {
  readonly #text: string;

  constructor(text: string) {
    this.#text = text;
  }

  reveal(): string {
    return this.#text;
  }

  toString(): string {
    return '<secret>';
  }

  toJSON(): string {
    return '<secret>';
  }

  [inspect.custom](): string {
    return '<secret>';
  }
}
