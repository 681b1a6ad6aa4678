/** What the SSH and local transports share about a running command's output. */
import { StringDecoder } from 'node:string_decoder';
import type { ExecOptions } from './types.js';

/**
 * A command's output as it arrives: UTF-8 decoded across chunk borders, stdout relayed
 * to the caller's onStdout while the exec is unsettled. A throwing onStdout fails the
 * exec (onRelayError stops the command and rejects).
 */
export class CommandOutput {
  stdout = '';
  stderr = '';
  private readonly out = new StringDecoder('utf8');
  private readonly err = new StringDecoder('utf8');

  constructor(
    private readonly options: ExecOptions,
    private readonly settled: () => boolean,
    private readonly onRelayError: (error: unknown) => void,
  ) {}

  readonly takeStdout = (chunk: Buffer): void => {
    const text = this.out.write(chunk);
    if (text === '') return;
    this.stdout += text;
    if (!this.options.onStdout || this.settled()) return;
    try {
      this.options.onStdout(text);
    } catch (error) {
      this.onRelayError(error);
    }
  };

  readonly takeStderr = (chunk: Buffer): void => {
    this.stderr += this.err.write(chunk);
  };

  /** Flushes the decoders (a split multi-byte character at the end); safe to call twice. */
  end(): this {
    this.stdout += this.out.end();
    this.stderr += this.err.end();
    return this;
  }
}

/** The first line of a command, shortened, for messages. */
export function summarizeCommand(command: string): string {
  const firstLine = command.trim().split('\n')[0] ?? '';
  return firstLine.length > 80 ? `${firstLine.slice(0, 77)}...` : firstLine;
}
