import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  appendKnownHost,
  entryMatchesName,
  fingerprintSha256,
  hashHostName,
  hostKeyAlgorithmsFor,
  hostKeyName,
  keyBlobType,
  knownKeyTypes,
  matchHostKey,
  parseKnownHosts,
  readKnownHosts,
} from '../../src/transport/known-hosts.js';

// Keys and fingerprints made with ssh-keygen (-t ed25519 / -t ecdsa; -l -E sha256).
const ED1 = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKVZecTLpytSeXgvDW7M3TJQTRWG+BwiRAP0h82lh34y';
const ED1_FP = 'SHA256:iCQ6ntyYdRpy0+x+D4zyJotK04V6/DHK3ngqwnwrczc';
const ED2 = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFZcFDFlSqqDELeMxICW8kOGWlv4GdJki9CZMHq//5Pw';
const ED2_FP = 'SHA256:joqLeSPTayaI2fPwQ01tClsZ08dn0PV1/AEskCC7iCA';
const EC3 =
  'ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBA7+c/10lgl186D2WzXjEMj1a3/MZwRYDuZn6OgnjWc6Uko/zM/5QlWwHRH/Sdpn6bh4hIhGQS7LY6jGZyILOPw=';
// `ssh-keygen -H` of "[127.0.0.1]:2222 ED1" and "example.com ED1".
const HASHED_PORT = `|1|pt3d+nvFulZRrPvsmc+Wf2idkLM=|B6u19ZyH9ViN38mr1PmgpMAnrTg= ${ED1}`;
const HASHED_PLAIN = `|1|vy1h/NVNIAgXOMX9d+OBl4lK/S8=|mT8GXwaRI/xeFXiZd5nVIIHiP0g= ${ED1}`;

const blob = (line: string): Buffer => Buffer.from(line.split(' ')[1] ?? '', 'base64');

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('known_hosts parsing', () => {
  test('skips comments and blank lines, reports invalid lines, keeps line numbers', () => {
    const text = [
      '# a comment',
      '',
      '   ',
      `host1 ${ED1} a comment with spaces`,
      'garbage line',
      `host2 ssh-ed25519 not-base64!`,
      `host3 ssh-rsa ${ED1.split(' ')[1]}`, // type does not match the key blob
      `@bogus host4 ${ED1}`,
      `host5\t${ED2}\r`,
    ].join('\n');
    const parsed = parseKnownHosts(text);
    assert.deepEqual(
      parsed.entries.map((e) => [e.line, e.hosts, e.keyType]),
      [
        [4, 'host1', 'ssh-ed25519'],
        [9, 'host5', 'ssh-ed25519'],
      ],
    );
    assert.deepEqual(parsed.invalidLines, [5, 6, 7, 8]);
  });

  test('markers and hashed names are recognised', () => {
    const parsed = parseKnownHosts(`@revoked * ${ED1}\n@cert-authority *.example.com ${ED2}\n${HASHED_PLAIN}\n`);
    assert.equal(parsed.entries[0]?.marker, 'revoked');
    assert.equal(parsed.entries[1]?.marker, 'cert-authority');
    assert.equal(parsed.entries[2]?.marker, undefined);
    assert.ok(parsed.entries[2]?.hashed);
    assert.equal(parsed.entries[2]?.hashed?.salt.length, 20);
  });

  test('hostKeyName uses [host]:port for ports other than 22', () => {
    assert.equal(hostKeyName('Example.COM', 22), 'example.com');
    assert.equal(hostKeyName('10.0.0.5', 2222), '[10.0.0.5]:2222');
  });

  test('key blob type and SHA256 fingerprints agree with ssh-keygen', () => {
    assert.equal(keyBlobType(blob(ED1)), 'ssh-ed25519');
    assert.equal(keyBlobType(blob(EC3)), 'ecdsa-sha2-nistp256');
    assert.equal(fingerprintSha256(blob(ED1)), ED1_FP);
    assert.equal(fingerprintSha256(blob(ED2)), ED2_FP);
  });
});

describe('known_hosts matching', () => {
  const check = (text: string, names: string[], key: string) => matchHostKey(parseKnownHosts(text).entries, names, blob(key));

  test('plain names and comma lists', () => {
    const text = `web1,10.0.0.5 ${ED1}\n`;
    assert.equal(check(text, ['web1'], ED1), 'match');
    assert.equal(check(text, ['10.0.0.5'], ED1), 'match');
    assert.equal(check(text, ['WEB1'.toLowerCase()], ED1), 'match');
    assert.equal(check(text, ['web2'], ED1), 'unknown');
    assert.deepEqual(check(text, ['web1'], ED2), { changed: [1] });
  });

  test('the [host]:port form only matches that port', () => {
    const text = `[10.0.0.5]:2222 ${ED1}\n10.0.0.6 ${ED2}\n`;
    assert.equal(check(text, [hostKeyName('10.0.0.5', 2222)], ED1), 'match');
    assert.equal(check(text, [hostKeyName('10.0.0.5', 22)], ED1), 'unknown');
    assert.equal(check(text, [hostKeyName('10.0.0.5', 2223)], ED1), 'unknown');
    // A plain entry is for port 22 only.
    assert.equal(check(text, [hostKeyName('10.0.0.6', 22)], ED2), 'match');
    assert.equal(check(text, [hostKeyName('10.0.0.6', 2222)], ED2), 'unknown');
  });

  test('hashed entries made by ssh-keygen -H match their names only', () => {
    const text = `${HASHED_PORT}\n${HASHED_PLAIN}\n`;
    assert.equal(check(text, ['[127.0.0.1]:2222'], ED1), 'match');
    assert.equal(check(text, ['example.com'], ED1), 'match');
    assert.equal(check(text, ['[127.0.0.1]:2223'], ED1), 'unknown');
    assert.equal(check(text, ['127.0.0.1'], ED1), 'unknown');
    assert.deepEqual(check(text, ['example.com'], ED2), { changed: [2] });
    // Our own hashing is what ssh-keygen -H does: same salt, same result.
    const salt = Buffer.from('pt3d+nvFulZRrPvsmc+Wf2idkLM=', 'base64');
    assert.equal(`${hashHostName('[127.0.0.1]:2222', salt)} ${ED1}`, HASHED_PORT);
  });

  test('wildcards and negated patterns', () => {
    const text = `*.example.com,!bad.example.com ${ED1}\n`;
    assert.equal(check(text, ['a.example.com'], ED1), 'match');
    assert.equal(check(text, ['bad.example.com'], ED1), 'unknown');
    assert.equal(check(text, ['example.com'], ED1), 'unknown');
    assert.equal(check(`h?st ${ED1}\n`, ['host'], ED1), 'match');
    assert.equal(check(`h?st ${ED1}\n`, ['hoost'], ED1), 'unknown');
  });

  test('@revoked refuses the key even when it is also listed as known', () => {
    const text = `web1 ${ED1}\n# revoked after the leak\n@revoked web1,web2 ${ED1}\n`;
    assert.deepEqual(check(text, ['web1'], ED1), { revoked: 3 });
    assert.deepEqual(check(text, ['web2'], ED1), { revoked: 3 });
    // Only that key is revoked, and only for the hosts on the line.
    assert.equal(check(`@revoked web2 ${ED1}\nweb1 ${ED1}\n`, ['web1'], ED1), 'match');
    assert.deepEqual(check(`@revoked * ${ED2}\nweb1 ${ED1}\n`, ['web1'], ED2), { revoked: 1 });
    assert.equal(check(`@revoked * ${ED2}\nweb1 ${ED1}\n`, ['web1'], ED1), 'match');
  });

  test('@cert-authority lines are neither a match nor a conflict', () => {
    const text = `@cert-authority *.example.com ${ED1}\n`;
    assert.equal(check(text, ['a.example.com'], ED1), 'unknown');
    assert.equal(check(text, ['a.example.com'], ED2), 'unknown');
  });

  test('several keys for one host: any of them matches; another key lists every entry as changed', () => {
    const text = `# two keys\nweb1 ${ED1}\nother ${ED2}\nweb1 ${EC3}\n`;
    assert.equal(check(text, ['web1'], ED1), 'match');
    assert.equal(check(text, ['web1'], EC3), 'match');
    assert.deepEqual(check(text, ['web1'], ED2), { changed: [2, 4] });
  });

  test('any of several names matches (the name given and the HostName)', () => {
    const text = `[10.0.0.5]:2222 ${ED1}\n`;
    assert.equal(check(text, ['[alias]:2222', '[10.0.0.5]:2222'], ED1), 'match');
    assert.equal(check(text, ['[alias]:2222'], ED1), 'unknown');
  });

  test('host key algorithms: the known types first, then the defaults', () => {
    const entries = parseKnownHosts(`web1 ${EC3}\nweb1 ${ED1}\nweb2 ${ED2}\n`).entries;
    assert.deepEqual(knownKeyTypes(entries, ['web1']), ['ecdsa-sha2-nistp256', 'ssh-ed25519']);
    assert.deepEqual(knownKeyTypes(entries, ['web3']), []);
    const algos = hostKeyAlgorithmsFor(['ssh-rsa']);
    assert.deepEqual(algos.slice(0, 3), ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa']);
    assert.ok(algos.includes('ssh-ed25519'));
    assert.equal(new Set(algos).size, algos.length);
    assert.deepEqual(hostKeyAlgorithmsFor(['ecdsa-sha2-nistp256']).slice(0, 2), ['ecdsa-sha2-nistp256', 'ssh-ed25519']);
    assert.equal(hostKeyAlgorithmsFor([])[0], 'ssh-ed25519');
  });
});

describe('known_hosts appending', () => {
  test('creates the directory (0700) and the file (0600) when absent', async () => {
    const base = await mkdtemp(join(tmpdir(), 'kvmconf-kh-'));
    dirs.push(base);
    const file = join(base, 'sub', 'known_hosts');
    const line = await appendKnownHost(file, '[10.0.0.5]:2222', blob(ED1));
    assert.equal(line, `[10.0.0.5]:2222 ${ED1}`);
    assert.equal(await readFile(file, 'utf8'), `${line}\n`);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.equal((await stat(join(base, 'sub'))).mode & 0o777, 0o700);
    const back = await readKnownHosts(file);
    assert.equal(matchHostKey(back.entries, ['[10.0.0.5]:2222'], blob(ED1)), 'match');
  });

  test('keeps the existing bytes, adding a newline only when the last line lacks one', async () => {
    const base = await mkdtemp(join(tmpdir(), 'kvmconf-kh-'));
    dirs.push(base);
    const file = join(base, 'known_hosts');
    const before = `# keep me\r\n\nweb1 ${ED2} comment`;
    await writeFile(file, before);
    await appendKnownHost(file, 'web2', blob(ED1));
    assert.equal(await readFile(file, 'utf8'), `${before}\nweb2 ${ED1}\n`);
    await appendKnownHost(file, 'web3', blob(EC3));
    assert.equal(await readFile(file, 'utf8'), `${before}\nweb2 ${ED1}\nweb3 ${EC3}\n`);
  });

  test('writes a hashed entry when every existing entry is hashed (or when asked to)', async () => {
    const base = await mkdtemp(join(tmpdir(), 'kvmconf-kh-'));
    dirs.push(base);
    const file = join(base, 'known_hosts');
    await writeFile(file, `${HASHED_PLAIN}\n`);
    const line = await appendKnownHost(file, '[10.0.0.9]:2222', blob(ED2));
    assert.match(line, /^\|1\|[A-Za-z0-9+/=]{28}\|[A-Za-z0-9+/=]{28} ssh-ed25519 /);
    const entries = parseKnownHosts(await readFile(file, 'utf8')).entries;
    assert.equal(entries.length, 2);
    assert.ok(entries[1] && entryMatchesName(entries[1], '[10.0.0.9]:2222'));
    assert.ok(entries[1] && !entryMatchesName(entries[1], '10.0.0.9'));

    const plainFile = join(base, 'plain');
    await writeFile(plainFile, `web1 ${ED1}\n`);
    assert.equal(await appendKnownHost(plainFile, 'web2', blob(ED1)), `web2 ${ED1}`);
    assert.match(await appendKnownHost(plainFile, 'web3', blob(ED1), true), /^\|1\|/);
  });
});
