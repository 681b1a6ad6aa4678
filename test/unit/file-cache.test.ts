import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listDirectory, readParsed, readText } from '../../src/transport/file-cache.js';
import { appendKnownHost, readKnownHosts } from '../../src/transport/known-hosts.js';

const dir = mkdtempSync(join(tmpdir(), 'kvmconf-file-cache-'));
const ED25519 = Buffer.concat([Buffer.from([0, 0, 0, 11]), Buffer.from('ssh-ed25519'), Buffer.from([0, 0, 0, 32]), Buffer.alloc(32, 7)]);
const config = join(dir, 'config');
const sub = join(dir, 'conf.d');
const known = join(dir, 'known_hosts');
let parses = 0;
const parse = (data: Buffer) => ({ n: ++parses, text: data.toString() });

test('files written in the last two seconds are read every time (file times tick coarsely)', () => {
  writeFileSync(config, 'Host a\n');
  mkdirSync(sub);
  assert.equal(readParsed(config, 'count', parse).n, 1);
  writeFileSync(config, 'Host b\n');
  assert.deepEqual(readParsed(config, 'count', parse), { n: 2, text: 'Host b\n' }, 'same size, same tick: read again');
  assert.deepEqual(listDirectory(sub), []);
});

test('a settled file is parsed once per content; a change is read again; a removed file throws as readFile does', async () => {
  await appendKnownHost(known, '[127.0.0.1]:2222', ED25519);
  await sleep(2100);
  const first = readParsed(config, 'count', parse);
  assert.equal(readParsed(config, 'count', parse), first, 'the same result, not parsed again');
  assert.equal(readText(config), 'Host b\n', 'another kind of the same file is its own parse');
  const hosts = await readKnownHosts(known);
  assert.equal(await readKnownHosts(known), hosts, 'known_hosts parsed once while unchanged');
  appendFileSync(config, 'Host c\n');
  assert.deepEqual(readParsed(config, 'count', parse), { n: first.n + 1, text: 'Host b\nHost c\n' });
  // accept-new appends a line: the next connection sees it at once
  await appendKnownHost(known, '[127.0.0.1]:2223', ED25519);
  assert.equal((await readKnownHosts(known)).entries.length, 2);
  rmSync(config);
  assert.throws(() => readText(config), { code: 'ENOENT' });
});

test('a directory listing follows entries added and removed', () => {
  assert.deepEqual(listDirectory(sub), [], 'settled by now: kept');
  writeFileSync(join(sub, 'a.conf'), '');
  assert.deepEqual(listDirectory(sub), ['a.conf']);
  rmSync(join(sub, 'a.conf'));
  assert.deepEqual(listDirectory(sub), []);
});
