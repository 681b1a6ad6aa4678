/**
 * Files every connection of a run reads again: ssh_config, known_hosts and private
 * keys. Each is read and parsed once per content instead of once per host (on a
 * 1,000-host run that was open, fstat, read and close of half a dozen files, and a
 * key parse, per host). An entry is reused while one synchronous stat finds the same
 * inode, size, mtime and ctime, so a file edited between runs of one process, or a
 * known_hosts line appended by accept-new, is read again. File times tick coarsely (a
 * few ms), so a file written in the last two seconds is not kept at all: a second
 * same-size write within one tick would leave the stat unchanged (git's "racy clean").
 */
import { readdirSync, readFileSync, statSync, type Stats } from 'node:fs';

interface Entry {
  stamp: string;
  parsed: Map<string, unknown>;
  data: Buffer;
}

const entries = new Map<string, Entry>();

const stampOf = (s: Stats) => `${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`;
const SETTLED_MS = 2000;
const settled = (s: Stats) => Date.now() - Math.max(s.mtimeMs, s.ctimeMs) > SETTLED_MS;

/** The file's bytes, as readFile gives them; errors (ENOENT too) are thrown as readFile throws them. */
function current(file: string): Entry {
  const stats = statSync(file);
  const stamp = stampOf(stats);
  const known = entries.get(file);
  if (known?.stamp === stamp) return known;
  const entry: Entry = { stamp, parsed: new Map(), data: readFileSync(file) };
  if (settled(stats)) entries.set(file, entry);
  else entries.delete(file);
  return entry;
}

/**
 * `parse(bytes)` of the file, computed once per content and `kind` (a name for the
 * parser, so one file can be read as two things). The result is shared: treat it as
 * read only.
 */
export function readParsed<T>(file: string, kind: string, parse: (data: Buffer) => T): T {
  const entry = current(file);
  if (!entry.parsed.has(kind)) entry.parsed.set(kind, parse(entry.data));
  return entry.parsed.get(kind) as T;
}

/** The file's text (UTF-8), cached as readParsed caches. */
export function readText(file: string): string {
  return readParsed(file, 'text', (data) => data.toString('utf8'));
}

/** A directory's entry names, cached by the directory's stat (adding or removing an entry changes its mtime). */
export function listDirectory(dir: string): string[] {
  const stats = statSync(dir);
  const stamp = stampOf(stats);
  const known = directories.get(dir);
  if (known?.stamp === stamp) return known.names;
  const names = readdirSync(dir);
  if (settled(stats)) directories.set(dir, { stamp, names });
  else directories.delete(dir);
  return names;
}

const directories = new Map<string, { stamp: string; names: string[] }>();

/** Drops what is known of a file this process has just written. */
export function forget(file: string): void {
  entries.delete(file);
}
