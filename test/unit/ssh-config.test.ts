import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  SSH_DEFAULTS,
  expandPath,
  hostKeyCheckingFromConfig,
  localUserName,
  parseProxyJump,
  resolveSshConfig,
} from '../../src/transport/ssh-config.js';

let home: string;
let cfg: string;
let marker: string;

before(async () => {
  home = await mkdtemp(join(tmpdir(), 'kvmconf-sshcfg-'));
  marker = join(home, 'match-exec-ran');
  await mkdir(join(home, '.ssh', 'conf.d'), { recursive: true });
  await writeFile(join(home, '.ssh', 'conf.d', '10-hv3.conf'), 'Host hv3\n  HostName 10.0.0.7\n  User included\n');
  await writeFile(join(home, '.ssh', 'conf.d', 'ignored.txt'), 'Host hv3\n  HostName 10.9.9.9\n');
  cfg = join(home, '.ssh', 'config');
  await writeFile(
    cfg,
    [
      '# kvmconf test config',
      'Include conf.d/*.conf missing.conf',
      '',
      'Host hv1',
      '  HostName 10.0.0.5',
      '  user admin',
      '  Port 2222',
      '  IdentityFile ~/.ssh/id_%h_%r',
      '  IdentityFile "%d/keys/with space"',
      '  ProxyJump jump@bastion.example:2200',
      '  ConnectTimeout 7',
      '  ServerAliveInterval 20',
      '  ServerAliveCountMax 5',
      '  UserKnownHostsFile ~/.ssh/kh_%n /etc/ssh/other_hosts',
      '  StrictHostKeyChecking accept-new',
      '  HashKnownHosts yes',
      'Host hv2',
      '  HostName %h.lab.example',
      '  ProxyJump none',
      `Match exec "touch ${marker}"`,
      '  Port 9999',
      'Match user deploy',
      '  Port 2200',
      'Host proxied',
      '  ProxyCommand ssh -W %h:%p bastion',
      'Host agentless',
      '  IdentityAgent none',
      'Host *',
      '  User fallback',
      '  ConnectTimeout 3',
      '  StrictHostKeyChecking no',
      '  IdentityFile ~/.ssh/common',
      '',
    ].join('\n'),
  );
});

after(async () => {
  await rm(home, { recursive: true, force: true });
});

const resolve = (query: Parameters<typeof resolveSshConfig>[0]) => resolveSshConfig({ sshConfigFile: cfg, ...query }, { home });

describe('ssh_config resolution', () => {
  test('values from the matching Host block, with ~ and %h/%r/%d/%n expanded', async () => {
    const r = await resolve({ host: 'hv1' });
    assert.deepEqual(r, {
      host: 'hv1',
      hostName: '10.0.0.5',
      port: 2222,
      user: 'admin',
      identityFiles: [join(home, '.ssh', 'id_10.0.0.5_admin'), join(home, 'keys', 'with space'), join(home, '.ssh', 'common')],
      proxyJump: 'jump@bastion.example:2200',
      connectTimeoutMs: 7_000,
      keepaliveIntervalMs: 20_000,
      keepaliveCountMax: 5,
      knownHostsFiles: [join(home, '.ssh', 'kh_hv1'), '/etc/ssh/other_hosts'],
      globalKnownHostsFiles: ['/etc/ssh/ssh_known_hosts', '/etc/ssh/ssh_known_hosts2'],
      hostKeyChecking: 'accept-new',
      hashKnownHosts: true,
      configFile: cfg,
    });
  });

  test('explicit values (inventory, CLI) win over ssh_config', async () => {
    const r = await resolve({
      host: 'hv1',
      port: 22,
      user: 'root',
      privateKeyFiles: ['/keys/inventory_key', '~/.ssh/id_%r'],
      knownHostsFile: '/tmp/kh',
      hostKeyChecking: 'strict',
      proxyJump: 'ops@other-bastion',
      connectTimeoutMs: 1_234,
      keepaliveIntervalMs: 0,
    });
    assert.equal(r.hostName, '10.0.0.5'); // not given explicitly: still from ssh_config
    assert.equal(r.port, 22);
    assert.equal(r.user, 'root');
    // Explicit keys first, then the IdentityFiles (expanded with the explicit user).
    assert.deepEqual(r.identityFiles, [
      '/keys/inventory_key',
      join(home, '.ssh', 'id_root'),
      join(home, '.ssh', 'id_10.0.0.5_root'),
      join(home, 'keys', 'with space'),
      join(home, '.ssh', 'common'),
    ]);
    assert.deepEqual(r.knownHostsFiles, ['/tmp/kh']);
    assert.equal(r.hostKeyChecking, 'strict');
    assert.equal(r.proxyJump, 'ops@other-bastion');
    assert.equal(r.connectTimeoutMs, 1_234);
    assert.equal(r.keepaliveIntervalMs, 0);
  });

  test('Host * supplies what nothing earlier set; built-in defaults fill the rest', async () => {
    const r = await resolve({ host: 'elsewhere.example' });
    assert.equal(r.hostName, 'elsewhere.example');
    assert.equal(r.port, SSH_DEFAULTS.port);
    assert.equal(r.user, 'fallback');
    assert.equal(r.connectTimeoutMs, 3_000);
    assert.equal(r.keepaliveIntervalMs, SSH_DEFAULTS.keepaliveIntervalMs);
    assert.equal(r.keepaliveCountMax, SSH_DEFAULTS.keepaliveCountMax);
    assert.equal(r.hostKeyChecking, 'off'); // StrictHostKeyChecking no
    assert.deepEqual(r.identityFiles, [join(home, '.ssh', 'common')]);
    assert.deepEqual(r.knownHostsFiles, [join(home, '.ssh', 'known_hosts')]);
    assert.equal(r.proxyJump, undefined);
    assert.equal(r.hashKnownHosts, undefined);
  });

  test('HostName %h, ProxyJump none, Match user, and Match exec is never run', async () => {
    const hv2 = await resolve({ host: 'hv2' });
    assert.equal(hv2.hostName, 'hv2.lab.example');
    assert.equal(hv2.proxyJump, undefined);
    assert.equal(hv2.port, 22, 'the Match exec block must not apply');
    assert.equal(existsSync(marker), false, 'Match exec must not run a command');
    const deploy = await resolve({ host: 'hv2', user: 'deploy' });
    assert.equal(deploy.port, 2200);
    assert.equal(deploy.user, 'deploy');
  });

  test('Include is inlined, relative to ~/.ssh, with wildcards; missing includes are skipped', async () => {
    const r = await resolve({ host: 'hv3' });
    assert.equal(r.hostName, '10.0.0.7');
    assert.equal(r.user, 'included');
  });

  test('ProxyCommand and IdentityAgent are reported', async () => {
    assert.equal((await resolve({ host: 'proxied' })).proxyCommand, 'ssh -W %h:%p bastion');
    assert.equal((await resolve({ host: 'agentless' })).identityAgent, 'none');
    assert.equal((await resolve({ host: 'hv1' })).identityAgent, undefined);
  });

  test("sshConfigFile '' disables ssh_config; a missing default file is fine, a missing named one is an error", async () => {
    const none = await resolveSshConfig({ host: 'hv1', sshConfigFile: '' }, { home });
    assert.equal(none.hostName, 'hv1');
    assert.equal(none.user, localUserName());
    assert.equal(none.port, 22);
    assert.equal(none.configFile, undefined);
    assert.deepEqual(none.identityFiles, []);
    assert.equal(none.hostKeyChecking, SSH_DEFAULTS.hostKeyChecking);

    const emptyHome = await mkdtemp(join(tmpdir(), 'kvmconf-sshcfg-empty-'));
    try {
      const dflt = await resolveSshConfig({ host: 'hv1' }, { home: emptyHome });
      assert.equal(dflt.hostName, 'hv1');
      assert.deepEqual(dflt.knownHostsFiles, [join(emptyHome, '.ssh', 'known_hosts')]);
      // The default file is ~/.ssh/config under the given home.
      await mkdir(join(emptyHome, '.ssh'));
      await writeFile(join(emptyHome, '.ssh', 'config'), 'Host hv1\n  Hostname 192.0.2.1\n');
      assert.equal((await resolveSshConfig({ host: 'hv1' }, { home: emptyHome })).hostName, '192.0.2.1');
      await assert.rejects(resolveSshConfig({ host: 'hv1', sshConfigFile: join(emptyHome, 'nope') }, { home: emptyHome }), /cannot read ssh_config/);
    } finally {
      await rm(emptyHome, { recursive: true, force: true });
    }
  });

  test('bad values are reported', async () => {
    const bad = join(home, 'bad_config');
    await writeFile(bad, 'Host a\n  Port twenty\nHost b\n  StrictHostKeyChecking maybe\nHost c\n  ConnectTimeout soon\n');
    await assert.rejects(resolveSshConfig({ host: 'a', sshConfigFile: bad }, { home }), /Port "twenty"/);
    await assert.rejects(resolveSshConfig({ host: 'b', sshConfigFile: bad }, { home }), /StrictHostKeyChecking "maybe"/);
    await assert.rejects(resolveSshConfig({ host: 'c', sshConfigFile: bad }, { home }), /ConnectTimeout "soon"/);
  });
});

describe('ssh_config helpers', () => {
  test('StrictHostKeyChecking maps to the engine modes', () => {
    assert.equal(hostKeyCheckingFromConfig('yes'), 'strict');
    assert.equal(hostKeyCheckingFromConfig('ask'), 'strict');
    assert.equal(hostKeyCheckingFromConfig('Accept-New'), 'accept-new');
    assert.equal(hostKeyCheckingFromConfig('no'), 'off');
    assert.equal(hostKeyCheckingFromConfig('off'), 'off');
    assert.equal(hostKeyCheckingFromConfig(undefined), undefined);
  });

  test('token expansion', () => {
    const ctx = { home: '/home/me', localUser: 'me', remoteUser: 'root', hostName: 'h.example', originalHost: 'h', port: 2222 };
    assert.equal(expandPath('~', ctx), '/home/me');
    assert.equal(expandPath('~/.ssh/%r@%h:%p', ctx), '/home/me/.ssh/root@h.example:2222');
    assert.equal(expandPath('%d/%u/%n/100%%/%x', ctx), '/home/me/me/h/100%/%x');
    assert.equal(expandPath('/abs/~notexpanded', ctx), '/abs/~notexpanded');
  });

  test('ProxyJump parsing: users, ports, IPv6, several hops', () => {
    assert.deepEqual(parseProxyJump('bastion'), [{ host: 'bastion' }]);
    assert.deepEqual(parseProxyJump('ops@bastion.example:2200'), [{ user: 'ops', host: 'bastion.example', port: 2200 }]);
    assert.deepEqual(parseProxyJump('a@j1:22, j2 ,[2001:db8::1]:2200'), [
      { user: 'a', host: 'j1', port: 22 },
      { host: 'j2' },
      { host: '2001:db8::1', port: 2200 },
    ]);
    assert.deepEqual(parseProxyJump('ssh://u@j3:2022'), [{ user: 'u', host: 'j3', port: 2022 }]);
    assert.deepEqual(parseProxyJump('2001:db8::2'), [{ host: '2001:db8::2' }]);
    assert.throws(() => parseProxyJump('j1:notaport'), /bad port/);
    assert.throws(() => parseProxyJump('@j1'), /not \[user@\]host\[:port\]/);
  });
});

describe('the system ssh_config and known hosts', () => {
  test("the system file is read after the user's (first value wins); a named file (-F) replaces both", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kvmconf-sshsys-'));
    await mkdir(join(dir, '.ssh'));
    await writeFile(join(dir, '.ssh', 'config'), 'Host hv1\n  Port 2201\n');
    const system = join(dir, 'ssh_config');
    await writeFile(system, 'Include /nonexistent/*.conf\nHost *\n  HashKnownHosts yes\n  Port 2299\n  GlobalKnownHostsFile /etc/ssh/fleet_hosts\n');
    const both = await resolveSshConfig({ host: 'hv1' }, { home: dir, systemConfigFile: system });
    assert.equal(both.port, 2201, "the user's value wins");
    assert.equal(both.hashKnownHosts, true, 'HashKnownHosts from the system file is honoured');
    assert.deepEqual(both.globalKnownHostsFiles, ['/etc/ssh/fleet_hosts']);
    const other = await resolveSshConfig({ host: 'hv2' }, { home: dir, systemConfigFile: system });
    assert.equal(other.port, 2299);
    const named = await resolveSshConfig({ host: 'hv2', sshConfigFile: join(dir, '.ssh', 'config') }, { home: dir, systemConfigFile: system });
    assert.equal(named.port, 22);
    assert.equal(named.hashKnownHosts, undefined);
  });
});
