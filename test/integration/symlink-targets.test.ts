/**
 * Files kvmconf owns or edits, on a real file tree through the local connection:
 * a symbolic link at the target (Debian's /etc/sysctl.d/99-sysctl.conf -> ../sysctl.conf)
 * fails the task in check and apply alike, naming the link and its target; nothing is written.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { TEST_MODULES } from '../helpers/file-module.js';
import { loadInventory } from '../../src/config/inventory.js';
import { loadPlaybook } from '../../src/config/playbook.js';
import { runPlaybook } from '../../src/engine/runner.js';
import { renderText } from '../../src/report/text.js';
import { createLocalTransport } from '../../src/transport/local.js';
import { sysctl } from '../../modules/sysctl/index.js';

const root = mkdtempSync(join(tmpdir(), 'kvmconf-links-'));
const backups = join(root, 'backups');
process.env.KC_BACKUP_DIR = backups; // the local transport's shells inherit it

/** A Debian-like /etc: sysctl.conf, and 99-sysctl.conf in sysctl.d linking to it. */
function debianEtc(): { link: string; real: string } {
  const etc = mkdtempSync(join(root, 'etc-'));
  mkdirSync(join(etc, 'sysctl.d'));
  const real = join(etc, 'sysctl.conf');
  writeFileSync(real, '# 68 lines of the admin\'s settings\nvm.swappiness = 60\n');
  const link = join(etc, 'sysctl.d', '99-sysctl.conf');
  symlinkSync('../sysctl.conf', link);
  return { link, real };
}

function untouched({ link, real }: { link: string; real: string }): void {
  assert.equal(lstatSync(link).isSymbolicLink(), true, 'the link is still a link');
  assert.equal(readFileSync(real, 'utf8'), '# 68 lines of the admin\'s settings\nvm.swappiness = 60\n');
  assert.equal(existsSync(join(backups, dirname(real))), false, 'nothing was backed up: nothing was about to be written');
}

async function run(mode: 'check' | 'apply', path: string) {
  const dir = mkdtempSync(join(root, 'run-'));
  writeFileSync(join(dir, 'inventory.yaml'), 'all:\n  hosts:\n    hv1: { ansible_connection: local }\n');
  writeFileSync(join(dir, 'site.yaml'), `- hosts: all\n  tasks:\n    - name: persist swappiness\n      test_file: {path: ${path}, content: "vm.swappiness = 10\\n"}\n`);
  return runPlaybook(loadPlaybook(join(dir, 'site.yaml'), TEST_MODULES), loadInventory(join(dir, 'inventory.yaml')), TEST_MODULES, {
    mode, forks: 1, commandTimeoutMs: 30_000, detailedExitCode: false, toolVersion: 'test',
    connection: { hostKeyChecking: 'strict', connectTimeoutMs: 10_000, keepaliveIntervalMs: 5_000 },
  });
}

test('a symlinked target fails the task in check and apply alike, naming host, task, link and target; nothing is written', async () => {
  const etc = debianEtc();
  for (const mode of ['check', 'apply'] as const) {
    const report = await run(mode, etc.link);
    const host = report.hosts[0]!;
    assert.equal(host.status, 'failed', mode);
    assert.equal(host.error, 'planning failed; nothing was changed on this host');
    assert.equal(host.tasks[0]!.error, `${etc.link} is a symbolic link to ${etc.real}: kvmconf neither replaces a link with a file nor writes through it; point the task at the real file, or replace the link with a regular file`);
    assert.equal(host.execCount, 1, `${mode}: gather only`);
    assert.equal(report.exitCode, 1);
    const text = renderText(report, { color: false, diff: false });
    assert.match(text, /hv1/);
    assert.match(text, new RegExp(`persist swappiness.*\\n?.*${etc.link} is a symbolic link to ${etc.real}`));
    untouched(etc);
  }
});

test('pointed at the real file, the same task applies there and leaves the link working', async () => {
  const etc = debianEtc();
  const report = await run('apply', etc.real);
  assert.equal(report.hosts[0]!.status, 'changed', report.hosts[0]!.error);
  assert.equal(readFileSync(etc.link, 'utf8'), 'vm.swappiness = 10\n', 'read through the link');
  assert.equal(lstatSync(etc.link).isSymbolicLink(), true);
});

test('sysctl: its probe on a real tree refuses a file: that is a symbolic link', async () => {
  const etc = debianEtc();
  const params = sysctl.normalize!({ name: 'vm.swappiness', value: 10, file: etc.link });
  const transport = createLocalTransport('hv1');
  const { stdout } = await transport.exec(sysctl.probe(params));
  assert.throws(() => sysctl.parse(stdout, params), { message: new RegExp(`^${etc.link} is a symbolic link to ${etc.real}: `) });
  untouched(etc);
});
