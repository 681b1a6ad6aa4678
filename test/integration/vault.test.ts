/**
 * Ansible Vault values as the real `ansible-vault` (Debian's ansible package) writes them:
 * inline `!vault` strings and whole files, format 1.1 and 1.2 (vault ids), password files
 * and password scripts. `kvmconf inventory --list` must equal `ansible-inventory --list`
 * on a vaulted inventory (vaulted strings shown as ciphertext, never as text).
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kvmconf } from '../helpers/cli-run.js';
import { decryptVault, useVaultSecrets, VaultText } from '../../src/config/vault.js';
import { parseYaml, ANSIBLE_YAML } from '../../src/config/yaml-source.js';
import { InputError } from '../../src/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'kvmconf-vault-'));
const passwordFile = join(dir, 'vault-pass');
const prodPasswordFile = join(dir, 'prod-pass');
const BECOME = 'pa$$ w0rd "quoted" \\ back';

const vault = (...args: string[]): string => execFileSync('ansible-vault', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], cwd: dir });
/** `name: !vault |` followed by the ciphertext, indented under `indent`. */
const encryptString = (value: string, name: string, indent: string, ...id: string[]): string =>
  vault('encrypt_string', ...(id.length ? id : ['--vault-password-file', passwordFile]), '--name', name, '--', value)
    .trimEnd()
    .split('\n')
    .map((line) => indent + line)
    .join('\n') + '\n';

let inventory: string;

before(() => {
  writeFileSync(passwordFile, 'correct horse\n');
  writeFileSync(prodPasswordFile, 'battery staple\n');
  mkdirSync(join(dir, 'inv', 'group_vars'), { recursive: true });
  inventory = join(dir, 'inv', 'hosts.yml');
  writeFileSync(
    inventory,
    'all:\n  hosts:\n    hv1:\n      ansible_host: 127.0.0.1\n' +
      encryptString(BECOME, 'ansible_become_password', '      ') +
      encryptString('2222', 'ansible_port', '      ') +
      '  children:\n    prod:\n      hosts:\n        hv2:\n      vars:\n' +
      encryptString('prod secret', 'api_token', '        ', '--vault-id', `prod@${prodPasswordFile}`),
  );
  const groupVars = join(dir, 'inv', 'group_vars', 'all.yml');
  writeFileSync(groupVars, 'numa_balancing: false\npages: 512\n');
  vault('encrypt', '--vault-password-file', passwordFile, groupVars);
});

test('ansible-vault is installed (the comparisons below need it)', () => {
  assert.match(vault('--version'), /^ansible-vault \[core /);
});

test('an inline !vault string decrypts to the text ansible-vault encrypted, and stays ciphertext in JSON', () => {
  const source = parseYaml(encryptString(BECOME, 'secret', ''), 'inline.yml', ANSIBLE_YAML);
  const value = (source.data as Record<string, unknown>).secret;
  assert.ok(value instanceof VaultText);
  assert.equal(value.location?.line, 1);
  assert.doesNotMatch(JSON.stringify(source.data), /pa\$\$/);
  assert.match(JSON.stringify(source.data), /__ansible_vault.*\$ANSIBLE_VAULT;1\.1;AES256/);
  useVaultSecrets([{ id: 'default', password: Buffer.from('correct horse') }]);
  assert.equal(value.reveal('secret'), BECOME);
});

test('format 1.2: the vault id in the header picks its password first; a wrong one is a clear error', () => {
  const text = vault('encrypt_string', '--vault-id', `prod@${prodPasswordFile}`, '--', 'labelled');
  assert.match(text, /\$ANSIBLE_VAULT;1\.2;AES256;prod/);
  const cipher = text.replace(/^!vault \|\n/, '').replace(/^\s+/gm, '');
  useVaultSecrets([
    { id: 'default', password: Buffer.from('correct horse') },
    { id: 'prod', password: Buffer.from('battery staple') },
  ]);
  assert.equal(decryptVault(cipher, 'x'), 'labelled');
  useVaultSecrets([{ id: 'default', password: Buffer.from('not it') }]);
  assert.throws(() => decryptVault(cipher, "variable 'x'", { file: 'f.yml', line: 7 }), (error: unknown) => {
    assert.ok(error instanceof InputError);
    assert.equal(error.message, "f.yml:7: no vault password given opens variable 'x' (tried vault ids: default)");
    return true;
  });
});

test('a tampered ciphertext fails its HMAC check: nothing is decrypted', () => {
  const text = vault('encrypt_string', '--vault-password-file', passwordFile, '--', 'integrity').replace(/^!vault \|\n/, '').replace(/^\s+/gm, '');
  const lines = text.split('\n');
  // Flip one hex digit of the payload's last line (inside the ciphertext).
  const last = lines.length - 1;
  lines[last] = lines[last]!.slice(0, -2) + (lines[last]!.endsWith('0') ? '1' : '0') + lines[last]!.slice(-1);
  useVaultSecrets([{ id: 'default', password: Buffer.from('correct horse') }]);
  assert.equal(decryptVault(text, 'x'), 'integrity');
  assert.throws(() => decryptVault(lines.join('\n'), 'x'), /no vault password given opens x|not a readable Ansible Vault/);
});

test("kvmconf inventory --list equals ansible-inventory's on a vaulted inventory (inline values and a vaulted group_vars file)", async () => {
  const ids = ['--vault-id', `default@${passwordFile}`, '--vault-id', `prod@${prodPasswordFile}`];
  const expected = JSON.parse(execFileSync('ansible-inventory', ['-i', inventory, ...ids, '--list'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }));
  const run = await kvmconf(['inventory', '-i', inventory, ...ids, '--list']);
  assert.equal(run.code, 0, run.stderr);
  assert.deepEqual(JSON.parse(run.stdout), expected);
  assert.equal(JSON.parse(run.stdout)._meta.hostvars.hv1.pages, 512, 'the vaulted group_vars file was decrypted');
  assert.doesNotMatch(run.stdout, /pa\$\$|prod secret/);
});

test('a vaulted file without a password is an error naming the file; a password script is run for it', async () => {
  const without = await kvmconf(['inventory', '-i', inventory, '--list']);
  assert.equal(without.code, 1);
  assert.match(without.stderr, /group_vars\/all\.yml: the file is encrypted with Ansible Vault and no vault password was given/);
  assert.match(without.stderr, /--vault-password-file/);

  const script = join(dir, 'vault-pass.sh');
  writeFileSync(script, "#!/bin/sh\nprintf '%s\\n' 'correct horse'\n");
  chmodSync(script, 0o700);
  const scripted = await kvmconf(['inventory', '-i', inventory, '--vault-password-file', script, '--host', 'hv1']);
  assert.equal(scripted.code, 0, scripted.stderr);
  assert.equal(JSON.parse(scripted.stdout).pages, 512);
});

test('--ask-vault-pass reads the password (from standard input without a terminal); vaulted vars reach templates', async () => {
  const playbook = join(dir, 'site.yaml');
  writeFileSync(playbook, '- hosts: hv1\n  tasks:\n    - sysctl:\n        settings:\n          vm.swappiness: "{{ pages }}"\n        file: /etc/sysctl.d/90-kvmconf-vault-test.conf\n');
  const run = await kvmconf(['apply', playbook, '-i', inventory, '--ask-vault-pass', '--list-tasks'], undefined, 'correct horse\n');
  assert.equal(run.code, 0, run.stderr);
  const validate = await kvmconf(['validate', playbook, '-i', inventory, '--vault-password-file', passwordFile, '-l', 'hv1'], undefined);
  assert.equal(validate.code, 0, validate.stderr);
  assert.match(validate.stdout, /valid/);
});

test('a vaulted connection variable is decrypted and checked like a plain one', async () => {
  const playbook = join(dir, 'ports.yaml');
  writeFileSync(playbook, '- hosts: all\n  tasks:\n    - sysctl:\n        settings: {vm.swappiness: 10}\n        file: /etc/sysctl.d/90-kvmconf-vault-test.conf\n');
  const reached = await kvmconf(['apply', playbook, '-i', inventory, '--vault-password-file', passwordFile, '--vault-id', `prod@${prodPasswordFile}`, '--check', '-l', 'hv1', '--connect-timeout', '5']);
  assert.equal(reached.report.hosts[0].status, 'unreachable');
  assert.match(reached.report.hosts[0].error, /127\.0\.0\.1:2222/, 'the decrypted port was used');

  const bad = join(dir, 'bad.yml');
  writeFileSync(bad, 'all:\n  hosts:\n    hv9:\n' + encryptString('not-a-port', 'ansible_port', '      '));
  const refused = await kvmconf(['validate', playbook, '-i', bad, '--vault-password-file', passwordFile]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /host 'hv9': ansible_port must be a port number 1\.\.65535/);
  assert.doesNotMatch(refused.stderr, /not-a-port/, 'a vaulted value is not echoed in errors');
});
