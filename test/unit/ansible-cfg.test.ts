// ansible.cfg and ANSIBLE_* settings, found in Ansible's order; the command line's use
// of them is tested in test/integration/cli.test.ts.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findAnsibleConfig, loadAnsibleConfig, parseDefaults } from '../../src/config/ansible-cfg.js';

const root = mkdtempSync(join(tmpdir(), 'kvmconf-cfg-'));
function folder(name: string, cfg?: string, file = 'ansible.cfg'): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o755);
  if (cfg !== undefined) writeFileSync(join(dir, file), cfg);
  return dir;
}

describe('finding ansible.cfg', () => {
  const home = folder('home', '[defaults]\nforks = 3\n', '.ansible.cfg');
  const cwd = folder('project', '[defaults]\nforks = 2\n');
  const elsewhere = folder('elsewhere', '[defaults]\nforks = 1\n');

  test('ANSIBLE_CONFIG (file or folder), then ./ansible.cfg, then ~/.ansible.cfg', () => {
    assert.equal(findAnsibleConfig({ ANSIBLE_CONFIG: join(elsewhere, 'ansible.cfg') }, cwd, home).file, join(elsewhere, 'ansible.cfg'));
    assert.equal(findAnsibleConfig({ ANSIBLE_CONFIG: elsewhere }, cwd, home).file, join(elsewhere, 'ansible.cfg'));
    assert.equal(findAnsibleConfig({}, cwd, home).file, join(cwd, 'ansible.cfg'));
    assert.equal(findAnsibleConfig({}, folder('empty'), home).file, join(home, '.ansible.cfg'));
  });

  test('./ansible.cfg in a world-writable folder is ignored, with the reason', () => {
    const open = folder('open', '[defaults]\nhost_key_checking = False\n');
    chmodSync(open, 0o777);
    const found = findAnsibleConfig({}, open, home);
    assert.equal(found.file, join(home, '.ansible.cfg'));
    assert.deepEqual(found.warnings, [`${join(open, 'ansible.cfg')} ignored: ${open} is world-writable (as Ansible does)`]);
  });
});

describe('reading settings', () => {
  test("configparser's syntax: sections, = and :, comments, ; inline comments, continuation lines", () => {
    const values = parseDefaults('# top\n[ssh_connection]\nforks = 9\n[defaults]\nforks: 7 ; seven\n; note\ninventory = a,\n  b\nremote_user=ops#not a comment\n', 'x.cfg');
    assert.deepEqual(Object.fromEntries([...values].map(([key, { value, line }]) => [key, [value, line]])), {
      forks: ['7', 5],
      inventory: ['a,\nb', 7],
      remote_user: ['ops#not a comment', 9],
    });
    assert.throws(() => parseDefaults('[defaults]\nnonsense\n', 'x.cfg'), { message: "x.cfg:2: cannot read line 'nonsense': expected key = value" });
  });

  test('typed values, paths against the file, the environment winning over the file', () => {
    const dir = folder('typed', '[defaults]\ninventory = hosts, /abs/inv\nremote_user = ops\nprivate_key_file = ~/.ssh/fleet\nhost_key_checking = False\nforks = 8\ntimeout = 30\n');
    const config = loadAnsibleConfig({}, dir, '/home/u');
    assert.deepEqual(config.inventory, { value: [join(dir, 'hosts'), '/abs/inv'], origin: `${join(dir, 'ansible.cfg')}:2` });
    assert.equal(config.remoteUser?.value, 'ops');
    assert.equal(config.privateKeyFile?.value, '/home/u/.ssh/fleet');
    assert.equal(config.hostKeyChecking?.value, false);
    assert.deepEqual([config.forks?.value, config.timeout?.value], [8, 30]);
    const env = loadAnsibleConfig({ ANSIBLE_INVENTORY: 'other.yaml', ANSIBLE_HOST_KEY_CHECKING: 'true', ANSIBLE_FORKS: '2' }, dir, '/home/u');
    assert.deepEqual(env.inventory, { value: [join(dir, 'other.yaml')], origin: 'ANSIBLE_INVENTORY' });
    assert.deepEqual([env.hostKeyChecking?.value, env.forks?.value], [true, 2]);
  });

  test('a bad value is an input error at its line', () => {
    const dir = folder('bad', '[defaults]\n\nforks = many\n');
    assert.throws(() => loadAnsibleConfig({}, dir, '/home/u'), { message: `${join(dir, 'ansible.cfg')}:3 (forks): 'many' is not a whole number of at least 1` });
    assert.throws(() => loadAnsibleConfig({ ANSIBLE_HOST_KEY_CHECKING: 'maybe' }, folder('none'), '/home/u'), { message: "ANSIBLE_HOST_KEY_CHECKING must be a boolean (True or False), not 'maybe'" });
  });
});
