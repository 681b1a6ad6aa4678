/** What the SSH and local transports share about a running command's output. */
import { StringDecoder } from 'node:string_decoder';
import { TransportError, type ExecOptions } from './types.js';

/**
 * Bytes of stdout and stderr together that one command may send before it is stopped
 * and the host fails: a host printing without end (hostile, or a runaway command)
 * would otherwise fill the controller's memory, once per fork. The largest real output,
 * a gather of libvirt domain XML, stays far below it.
 */
export const MAX_OUTPUT_BYTES = 64 * 1024 * 1024;

/**
 * A command's output as it arrives: UTF-8 decoded across chunk borders, stdout relayed
 * to the caller's onStdout while the exec is unsettled, nothing kept once it is settled.
 * A throwing onStdout or output past the limit fails the exec (`fail` stops the command
 * and rejects).
 */
export class CommandOutput {
  stdout = '';
  stderr = '';
  private bytes = 0;
  private readonly out = new StringDecoder('utf8');
  private readonly err = new StringDecoder('utf8');

  constructor(
    private readonly host: string,
    private readonly options: ExecOptions,
    private readonly settled: () => boolean,
    private readonly fail: (error: unknown) => void,
  ) {}

  /** Counts a chunk; false (and the exec failed) once the output passes the limit. */
  private within(chunk: Buffer): boolean {
    if (this.settled()) return false;
    const limit = this.options.maxOutputBytes ?? MAX_OUTPUT_BYTES;
    this.bytes += chunk.length;
    if (this.bytes <= limit) return true;
    this.fail(new TransportError('output-limit', this.host, `host ${this.host} sent more than ${limit} bytes of output for one command; the command was stopped`, this.end().stdout));
    return false;
  }

  readonly takeStdout = (chunk: Buffer): void => {
    if (!this.within(chunk)) return;
    const text = this.out.write(chunk);
    if (text === '') return;
    this.stdout += text;
    if (!this.options.onStdout) return;
    try {
      this.options.onStdout(text);
    } catch (error) {
      this.fail(error);
    }
  };

  readonly takeStderr = (chunk: Buffer): void => {
    if (this.within(chunk)) this.stderr += this.err.write(chunk);
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
