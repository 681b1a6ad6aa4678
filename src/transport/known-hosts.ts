/**
 * OpenSSH known_hosts files: parsing, matching a presented host key, and
 * appending new entries (for host key checking `accept-new`).
 *
 * Line format (sshd(8), "SSH_KNOWN_HOSTS FILE FORMAT"):
 *   [@marker] hostnames keytype base64-key [comment]
 * where hostnames is a comma-separated list of patterns (`*`, `?`, `!negated`),
 * `[host]:port` for a port other than 22, or a single hashed name
 * `|1|base64(salt)|base64(HMAC-SHA1(salt, name))`.
 */

import { createHash, createHmac, randomBytes } from 'node:crypto';
import { mkdir, open } from 'node:fs/promises';
import { dirname } from 'node:path';
import { forget, readParsed } from './file-cache.js';

export interface KnownHostsEntry {
  /** 1-based line number in the file. */
  line: number;
  /**
   * `revoked`: the key must never be accepted for the hosts on the line.
   * `cert-authority`: the key is a CA for host certificates. Host certificates are
   * not supported by this engine, so such lines are parsed but never used to accept
   * or refuse a key.
   */
  marker?: 'revoked' | 'cert-authority';
  /** The raw hostnames field. */
  hosts: string;
  /** Set for a hashed entry (`|1|salt|hmac`). */
  hashed?: { salt: Buffer; hmac: Buffer };
  /** Patterns of a plain entry, lower-cased. */
  patterns: string[];
  keyType: string;
  keyBlob: Buffer;
}

export interface ParsedKnownHosts {
  entries: KnownHostsEntry[];
  /** Line numbers that are neither blank, comments nor valid entries (ignored, like OpenSSH does). */
  invalidLines: number[];
}

/** Result of checking a presented key against a file. */
export type HostKeyMatch =
  | 'match'
  | 'unknown'
  /** The host is known with other key(s): the 1-based lines of those entries. */
  | { changed: number[] }
  /** The presented key is listed as `@revoked` for this host on that line. */
  | { revoked: number };

/** The name a host is recorded under: `host` for port 22, `[host]:port` otherwise. */
export function hostKeyName(host: string, port: number): string {
  const h = host.toLowerCase();
  return port === 22 ? h : `[${h}]:${port}`;
}

/** `|1|salt|hmac` for a name, as `ssh-keygen -H` writes it (fresh random salt unless given). */
export function hashHostName(name: string, salt: Buffer = randomBytes(20)): string {
  const hmac = createHmac('sha1', salt).update(name).digest();
  return `|1|${salt.toString('base64')}|${hmac.toString('base64')}`;
}

/** The algorithm name inside an SSH wire-format public key blob (e.g. `ssh-ed25519`). */
export function keyBlobType(blob: Buffer): string {
  if (blob.length < 4) return 'unknown';
  const len = blob.readUInt32BE(0);
  if (len <= 0 || len > 64 || 4 + len > blob.length) return 'unknown';
  return blob.subarray(4, 4 + len).toString('latin1');
}

/** OpenSSH-style fingerprint: `SHA256:` + unpadded base64 of the SHA-256 of the key blob. */
export function fingerprintSha256(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

const B64 = /^[A-Za-z0-9+/]+={0,2}$/;

export function parseKnownHosts(text: string): ParsedKnownHosts {
  const entries: KnownHostsEntry[] = [];
  const invalidLines: number[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const raw = (lines[i] ?? '').replace(/\r$/, '').trim();
    if (raw === '' || raw.startsWith('#')) continue;
    const fields = raw.split(/[ \t]+/);
    let marker: KnownHostsEntry['marker'];
    if (fields[0]?.startsWith('@')) {
      const m = fields.shift();
      if (m === '@revoked') marker = 'revoked';
      else if (m === '@cert-authority') marker = 'cert-authority';
      else {
        invalidLines.push(lineNo);
        continue;
      }
    }
    const [hosts, keyType, keyB64] = fields;
    if (!hosts || !keyType || !keyB64 || !B64.test(keyB64)) {
      invalidLines.push(lineNo);
      continue;
    }
    const keyBlob = Buffer.from(keyB64, 'base64');
    if (keyBlob.length === 0 || keyBlobType(keyBlob) !== keyType) {
      invalidLines.push(lineNo);
      continue;
    }
    const entry: KnownHostsEntry = { line: lineNo, hosts, patterns: [], keyType, keyBlob };
    if (marker) entry.marker = marker;
    if (hosts.startsWith('|')) {
      const parts = hosts.split('|');
      // ['', '1', salt, hmac]
      if (parts.length !== 4 || parts[1] !== '1' || !parts[2] || !parts[3]) {
        invalidLines.push(lineNo);
        continue;
      }
      entry.hashed = { salt: Buffer.from(parts[2], 'base64'), hmac: Buffer.from(parts[3], 'base64') };
    } else {
      entry.patterns = hosts.toLowerCase().split(',').filter((p) => p !== '');
    }
    entries.push(entry);
  }
  return { entries, invalidLines };
}

function globToRegExp(pattern: string): RegExp {
  let re = '';
  for (const ch of pattern) {
    if (ch === '*') re += '.*';
    else if (ch === '?') re += '.';
    else re += ch.replace(/[\\^$.|+()[\]{}]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** Whether an entry's hostnames field covers `name` (as produced by hostKeyName). */
export function entryMatchesName(entry: KnownHostsEntry, name: string): boolean {
  const n = name.toLowerCase();
  if (entry.hashed) {
    const hmac = createHmac('sha1', entry.hashed.salt).update(n).digest();
    return hmac.equals(entry.hashed.hmac);
  }
  let matched = false;
  for (const p of entry.patterns) {
    if (p.startsWith('!')) {
      if (globToRegExp(p.slice(1)).test(n)) return false;
    } else if (globToRegExp(p).test(n)) {
      matched = true;
    }
  }
  return matched;
}

/** Entries (not markers) that apply to any of the names. */
function hostEntries(entries: KnownHostsEntry[], names: string[]): KnownHostsEntry[] {
  return entries.filter((e) => !e.marker && names.some((n) => entryMatchesName(e, n)));
}

/**
 * Checks the key a server presented against one file's entries for any of `names`.
 * Order: a matching `@revoked` line refuses; a plain entry with the same key accepts;
 * any other entry for the host means the key changed (a key of another type counts
 * too, so that a key-type downgrade is not silently accepted as new); else unknown.
 */
export function matchHostKey(entries: KnownHostsEntry[], names: string[], key: Buffer): HostKeyMatch {
  const revoked = entries.find(
    (e) => e.marker === 'revoked' && e.keyBlob.equals(key) && names.some((n) => entryMatchesName(e, n)),
  );
  if (revoked) return { revoked: revoked.line };
  const known = hostEntries(entries, names);
  if (known.some((e) => e.keyBlob.equals(key))) return 'match';
  if (known.length > 0) return { changed: known.map((e) => e.line) };
  return 'unknown';
}

/** Key types known for the names, in file order, without duplicates. */
export function knownKeyTypes(entries: KnownHostsEntry[], names: string[]): string[] {
  const types: string[] = [];
  for (const e of hostEntries(entries, names)) if (!types.includes(e.keyType)) types.push(e.keyType);
  return types;
}

/** Host key algorithms ssh2 offers by default, most preferred first. */
export const DEFAULT_HOST_KEY_ALGORITHMS = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256',
  'ssh-rsa',
] as const;

/**
 * Host key algorithms to offer so that the server picks a key type we already know:
 * the algorithms for the known key types first, then the rest of the defaults.
 */
export function hostKeyAlgorithmsFor(keyTypes: string[]): string[] {
  const preferred: string[] = [];
  for (const t of keyTypes) {
    const algos = t === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [t];
    for (const a of algos) {
      if ((DEFAULT_HOST_KEY_ALGORITHMS as readonly string[]).includes(a) && !preferred.includes(a)) preferred.push(a);
    }
  }
  return [...preferred, ...DEFAULT_HOST_KEY_ALGORITHMS.filter((a) => !preferred.includes(a))];
}

/** Reads and parses a known_hosts file; a missing file is an empty one. */
export async function readKnownHosts(file: string): Promise<ParsedKnownHosts & { text: string }> {
  try {
    // parsed once per content for the whole run (the result is shared: read only)
    return readParsed(file, 'known_hosts', (data) => {
      const text = data.toString('utf8');
      return { ...parseKnownHosts(text), text };
    });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { entries: [], invalidLines: [], text: '' };
    throw err;
  }
}

/** One known_hosts line (without newline) for a name and key blob. */
export function formatKnownHostsLine(name: string, key: Buffer, hashed = false): string {
  return `${hashed ? hashHostName(name) : name} ${keyBlobType(key)} ${key.toString('base64')}`;
}

/**
 * Appends an entry for `name` to the file, leaving its existing bytes as they are.
 * Creates the directory (0700) and the file (0600) when absent. The entry is hashed
 * when `hash` is true, or when it is undefined and every existing entry is hashed.
 */
export async function appendKnownHost(file: string, name: string, key: Buffer, hash?: boolean): Promise<string> {
  const existing = await readKnownHosts(file);
  const useHash = hash ?? (existing.entries.length > 0 && existing.entries.every((e) => e.hashed));
  const line = formatKnownHostsLine(name, key, useHash);
  const prefix = existing.text !== '' && !existing.text.endsWith('\n') ? '\n' : '';
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const fh = await open(file, 'a', 0o600);
  try {
    await fh.write(`${prefix}${line}\n`);
  } finally {
    await fh.close();
    forget(file);
  }
  return line;
}
