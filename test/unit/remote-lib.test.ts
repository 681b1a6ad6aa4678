import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, readdirSync, statSync, chmodSync, existsSync, lstatSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { READ_FN, REMOTE_LIB, writeFileCommand, removeFileCommand, catFileProbe, parseFileBlock, printJoined } from '../../src/kit/remote-lib.js';
import { buildGatherScript, newMark, splitSections } from '../../src/engine/script.js';

function run(commands: string[], env: Record<string, string> = {}) {
  return spawnSync('/bin/sh', ['-c', `${REMOTE_LIB}\nset -e\n${commands.join('\n')}`], { encoding: 'utf8', env: { ...process.env, ...env } });
}

function sandbox() {
  const dir = mkdtempSync(join(tmpdir(), 'kvmconf-lib-'));
  return { dir, backups: join(dir, 'backups') };
}

const hostile = "a'b\"c $(touch /tmp/kvmconf-pwned) `id` ; rm -rf /\n\\n%s\n";

test('kc_write_file writes content byte for byte, hostile text stays inert', () => {
  const { dir, backups } = sandbox();
  const path = join(dir, 'etc', 'x.conf');
  const result = run([writeFileCommand(path, hostile, null)], { KC_BACKUP_DIR: backups });
  assert.equal(result.status, 0, result.stderr);
  assert.equal(readFileSync(path, 'utf8'), hostile);
  assert.equal(existsSync('/tmp/kvmconf-pwned'), false);
  assert.equal((statSync(path).mode & 0o777).toString(8), '644');
});

test('kc_write_file keeps a timestamped backup and the original mode', () => {
  const { dir, backups } = sandbox();
  const path = join(dir, 'grub');
  writeFileSync(path, 'old\n');
  chmodSync(path, 0o600);
  const result = run([writeFileCommand(path, 'new\n', 'old\n')], { KC_BACKUP_DIR: backups });
  assert.equal(result.status, 0, result.stderr);
  assert.equal(readFileSync(path, 'utf8'), 'new\n');
  assert.equal((statSync(path).mode & 0o777).toString(8), '600');
  const backupDir = join(backups, dir);
  const saved = readdirSync(backupDir).filter((name) => name.startsWith('grub.'));
  assert.equal(saved.length, 1);
  assert.equal(readFileSync(join(backupDir, saved[0]!), 'utf8'), 'old\n');
  assert.deepEqual(readdirSync(dir).filter((name) => name.startsWith('.kvmconf')), [], 'no temporary file left');
});

test('kc_write_file refuses when the file changed since it was read', () => {
  const { dir, backups } = sandbox();
  const path = join(dir, 'f');
  writeFileSync(path, 'someone else wrote this\n');
  const result = run([writeFileCommand(path, 'ours\n', 'what we read\n')], { KC_BACKUP_DIR: backups });
  assert.notEqual(result.status, 0);
  assert.match(result.stderr, /changed since it was read/);
  assert.equal(readFileSync(path, 'utf8'), 'someone else wrote this\n');
});

test('kc_remove_file moves the file to the backups', () => {
  const { dir, backups } = sandbox();
  const path = join(dir, 'owned.conf');
  writeFileSync(path, 'x\n');
  const result = run([removeFileCommand(path, 'x\n')], { KC_BACKUP_DIR: backups });
  assert.equal(result.status, 0, result.stderr);
  assert.equal(existsSync(path), false);
  assert.equal(readdirSync(join(backups, dir)).length, 1);
});

test('kc_set_value fails with both values when the kernel grants less', () => {
  const { dir } = sandbox();
  // A FIFO-free stand-in for a sysfs file that caps what it accepts: a file we rewrite via a function.
  const path = join(dir, 'nr_hugepages');
  writeFileSync(path, '0\n');
  const result = run([`kc_write_value() { printf '12\\n' > "$1"; }`, `kc_set_value ${path} 512`]);
  assert.notEqual(result.status, 0);
  assert.match(result.stderr, /asked for '512', the kernel has '12'/);
});

test('kc_set_choice reads the bracket back', () => {
  const { dir } = sandbox();
  const path = join(dir, 'enabled');
  writeFileSync(path, 'always [madvise] never\n');
  const ok = run([`kc_write_value() { printf 'always madvise [never]\\n' > "$1"; }`, `kc_set_choice ${path} never`]);
  assert.equal(ok.status, 0, ok.stderr);
  writeFileSync(path, 'always [madvise] never\n');
  const bad = run([`kc_write_value() { :; }`, `kc_set_choice ${path} never`]);
  assert.match(bad.stderr, /asked for 'never', the kernel selected 'madvise'/);
});

test('catFileProbe and parseFileBlock round-trip content exactly', () => {
  const { dir } = sandbox();
  for (const content of ['a\nb\n', 'no newline', '', '\n\n', '  lead and trail  \n\tx\\y \\\n-n\n', hostile]) {
    const path = join(dir, 'f');
    writeFileSync(path, content);
    const out = spawnSync('/bin/sh', ['-c', catFileProbe(path)], { encoding: 'utf8' }).stdout;
    assert.equal(parseFileBlock(out), content);
  }
  const absent = spawnSync('/bin/sh', ['-c', catFileProbe(join(dir, 'nope'))], { encoding: 'utf8' }).stdout;
  assert.equal(parseFileBlock(absent), null);
});

test('kc_read joins a file\'s lines with spaces using builtins only; an unreadable file gives status 1', () => {
  const { dir } = sandbox();
  writeFileSync(join(dir, 'v'), 'always [madvise] never\nsecond\tline');
  const out = spawnSync('/bin/sh', ['-c', `${READ_FN}\nkc_read "$1"; echo "$?[$kc_v]"; kc_read "$1.nope"; echo "$?[$kc_v]"`, 'sh', join(dir, 'v')], { encoding: 'utf8' });
  assert.equal(out.stdout, '0[always [madvise] never second\tline]\n1[]\n');
  assert.equal(out.stderr, '');
});

test('printJoined prints what kc_read and printf print, on its own and in a gather\'s one awk', () => {
  const { dir } = sandbox();
  writeFileSync(join(dir, 'lines'), 'always [madvise] never\nsecond\tline\n');
  writeFileSync(join(dir, 'no newline'), 'one line');
  writeFileSync(join(dir, 'empty'), '');
  const files = ['lines', 'no newline', 'empty', 'missing'].map((name) => join(dir, name));
  const byShell = spawnSync('/bin/sh', ['-c', `${READ_FN}\n${files.map((file) => `kc_read '${file}'; printf 'tag %s\\n' "$kc_v"`).join('\n')}`], { encoding: 'utf8' }).stdout;
  assert.equal(byShell, 'tag always [madvise] never second\tline\ntag one line\ntag \ntag \n');
  const probe = files.map((file) => printJoined('tag', file)).join('\n');
  assert.equal(spawnSync('/bin/sh', ['-c', probe], { encoding: 'utf8' }).stdout, byShell, 'on its own');
  const mark = newMark();
  const gathered = spawnSync('/bin/sh', ['-s'], { input: buildGatherScript([{ id: 'p', script: probe }], mark), encoding: 'utf8' });
  assert.deepEqual(splitSections(gathered.stdout, mark).get('p'), { output: byShell, status: 0 }, 'deferred');
});

test('kc_write_file and kc_remove_file refuse a symbolic link made after gather: link and target untouched', () => {
  const { dir, backups } = sandbox();
  const target = join(dir, 'sysctl.conf');
  writeFileSync(target, 'vm.swappiness = 60\n');
  const link = join(dir, '99-sysctl.conf');
  symlinkSync('sysctl.conf', link);
  for (const command of [writeFileCommand(link, 'new\n', 'vm.swappiness = 60\n'), writeFileCommand(link, 'new\n'), removeFileCommand(link)]) {
    const result = run([command], { KC_BACKUP_DIR: backups });
    assert.equal(result.status, 1, command);
    assert.match(result.stderr, new RegExp(`^kvmconf: ${link} is a symbolic link to ${target}: kvmconf neither replaces a link with a file nor writes through it`));
    assert.equal(lstatSync(link).isSymbolicLink(), true);
    assert.equal(readFileSync(target, 'utf8'), 'vm.swappiness = 60\n');
  }
  assert.equal(existsSync(backups), false, 'nothing backed up: nothing was about to change');
});

test('catFileProbe reports a symbolic link (dangling too) and parseFileBlock refuses it, naming the link and its target', () => {
  const { dir } = sandbox();
  writeFileSync(join(dir, 'real.conf'), 'x\n');
  symlinkSync('real.conf', join(dir, 'link.conf'));
  symlinkSync('nowhere.conf', join(dir, 'dangling.conf'));
  for (const [name, target] of [['link.conf', 'real.conf'], ['dangling.conf', 'nowhere.conf']] as const) {
    const out = spawnSync('/bin/sh', ['-c', catFileProbe(join(dir, name))], { encoding: 'utf8' }).stdout;
    assert.throws(() => parseFileBlock(out), { message: `${join(dir, name)} is a symbolic link to ${join(dir, target)}: kvmconf neither replaces a link with a file nor writes through it; point the task at the real file, or replace the link with a regular file` });
  }
});

test('writes within one second keep every original: backups never overwrite each other', () => {
  const { dir, backups } = sandbox();
  const path = join(dir, 'sysctl.conf');
  writeFileSync(path, 'v1\n');
  const result = run([writeFileCommand(path, 'v2\n', 'v1\n'), writeFileCommand(path, 'v3\n', 'v2\n'), removeFileCommand(path, 'v3\n')], { KC_BACKUP_DIR: backups });
  assert.equal(result.status, 0, result.stderr);
  const saved = readdirSync(join(backups, dir)).map((name) => readFileSync(join(backups, dir, name), 'utf8')).sort();
  assert.deepEqual(saved, ['v1\n', 'v2\n', 'v3\n']);
});

test('a backup folder that cannot be written stops the write before anything changes', () => {
  const { dir } = sandbox();
  const path = join(dir, 'grub');
  writeFileSync(path, 'old\n');
  const blocker = join(dir, 'not-a-folder');
  writeFileSync(blocker, '');
  const result = run([writeFileCommand(path, 'new\n', 'old\n')], { KC_BACKUP_DIR: blocker });
  assert.notEqual(result.status, 0);
  assert.match(result.stderr, /cannot make a backup of .*grub/);
  assert.equal(readFileSync(path, 'utf8'), 'old\n');
  assert.deepEqual(readdirSync(dir).filter((name) => name.startsWith('.kvmconf')), [], 'no temporary file left');
});

test('a temporary file left by a write a crash cut short is removed by the next write into its folder; other files stay', () => {
  const { dir, backups } = sandbox();
  writeFileSync(join(dir, '.kvmconf.Jvr1Rp'), 'vm.swappiness = 11\n');
  writeFileSync(join(dir, '.kvmconf.keep'), 'not a mktemp name\n');
  const result = run([writeFileCommand(join(dir, 'b.conf'), 'x\n', null)], { KC_BACKUP_DIR: backups });
  assert.equal(result.status, 0, result.stderr);
  assert.deepEqual(readdirSync(dir).filter((name) => name.startsWith('.kvmconf')), ['.kvmconf.keep']);
});
