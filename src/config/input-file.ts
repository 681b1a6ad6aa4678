/**
 * Every file kvmconf reads as input (playbooks, inventories, group_vars and host_vars,
 * -e @FILE, --limit @FILE, ansible.cfg) comes through here: size-checked before it is
 * read, since a 50 MB YAML file exhausts Node's heap while parsing, and a UTF-8 byte
 * order mark (Windows editors write one) dropped.
 */
import { closeSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { InputError } from '../errors.js';

/** Input files larger than this are refused unread. */
export const MAX_INPUT_BYTES = 8 * 1024 * 1024;

const MIB = 1024 * 1024;

function tooLarge(file: string, size?: number): InputError {
  const found = size === undefined ? '' : `${size} bytes, `;
  return new InputError(`too large to read: ${found}over the ${MAX_INPUT_BYTES / MIB} MiB limit of one input file`, { file }, 'nothing was parsed; split the file (group_vars/ and host_vars/ folders take several)');
}

/** A pipe or device has no size to check: read it in chunks and stop past the limit. */
function readStream(fd: number, file: string): Buffer {
  const chunks: Buffer[] = [];
  let total = 0;
  for (;;) {
    const chunk = Buffer.allocUnsafe(64 * 1024);
    const read = readSync(fd, chunk, 0, chunk.length, null);
    if (read === 0) return Buffer.concat(chunks, total);
    total += read;
    if (total > MAX_INPUT_BYTES) throw tooLarge(file);
    chunks.push(chunk.subarray(0, read));
  }
}

/** The file's text; `what` words the unreadable case ("cannot read limit file: ENOENT"). */
export function readInputFile(file: string, what = 'cannot read'): string {
  let fd: number | undefined;
  try {
    fd = openSync(file, 'r');
    const stat = fstatSync(fd);
    if (stat.isFile() && stat.size > MAX_INPUT_BYTES) throw tooLarge(file, stat.size);
    const bytes = stat.isFile() ? readFileSync(fd) : readStream(fd, file);
    return bytes.toString('utf8').replace(/^\uFEFF/, '');
  } catch (error) {
    if (error instanceof InputError) throw error;
    throw new InputError(`${what}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { file });
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
