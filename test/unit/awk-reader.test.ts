import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { awkReader, configGlobs, readWith } from '../../src/kit/awk-reader.js';
import { quote } from '../../src/kit/shell.js';
import { buildGatherScript, newMark, splitSections } from '../../src/engine/script.js';
import { AWKS, gatherWithAwk, probeWithAwk } from '../helpers/awks.js';

const runSh = (script: string) => spawnSync('/bin/sh', ['-s'], { input: script, encoding: 'utf8' });

/** Counts lines per file and prints the `tag=` argument in force at each file's first line. */
const COUNTER = awkReader({
  name: 'test_counter',
  begin: 'test_counter_lines = 0; test_counter_files = ""',
  line: 'if (kc_fnr == 1) { test_counter_files = test_counter_files " " kc_file; print "first", kc_arg["tag"], kc_file, $0 }\ntest_counter_lines++',
  end: 'print "total", test_counter_lines, "in" test_counter_files',
});
/** Prints the second field of lines starting with `keep`, `return` standing for next. */
const KEEPER = awkReader({
  name: 'test_keeper',
  line: 'if ($1 != "keep") return\nprint "kept", $2',
});

function tree(): string {
  const dir = mkdtempSync(join(tmpdir(), 'kvmconf-awk-reader-'));
  writeFileSync(join(dir, 'a.conf'), 'keep 1\nskip 2\nkeep 3\n');
  writeFileSync(join(dir, "it's here.conf"), 'keep quoted\nno newline at end');
  writeFileSync(join(dir, 'empty.conf'), '');
  mkdirSync(join(dir, 'folder.conf')); // a folder matching the glob: awk would give up on it
  return dir;
}

function probe(dir: string): string {
  const glob = `${quote(dir)}/*.conf`;
  return [
    'echo before',
    readWith(COUNTER, `tag=one ${glob} tag="two words" ${quote(dir)}/a.conf ${quote(dir)}/missing-*.conf`),
    'echo between',
    readWith(KEEPER, glob),
    readWith(COUNTER, ''),
    'echo after',
  ].join('\n');
}

test('a reader prints the same on its own and deferred into a gather\'s one awk', () => {
  const dir = tree();
  const alone = runSh(`{\n${probe(dir)}\n} </dev/null`);
  assert.equal(alone.status, 0, alone.stderr);
  assert.equal(
    alone.stdout,
    [
      'before',
      `first one ${dir}/a.conf keep 1`,
      `first one ${dir}/it's here.conf keep quoted`,
      `first two words ${dir}/a.conf keep 1`,
      `total 8 in ${dir}/a.conf ${dir}/it's here.conf ${dir}/a.conf`,
      'between',
      'kept 1',
      'kept 3',
      'kept quoted',
      'total 0 in',
      'after',
      '',
    ].join('\n'),
  );
  const mark = newMark();
  const script = buildGatherScript([{ id: 'p', script: probe(dir) }, { id: 'q', script: probe(dir) }], mark);
  assert.equal(script.match(/(^|; )awk /gm)?.length, 1, 'one awk for every call of both probes');
  const gathered = runSh(script);
  const sections = splitSections(gathered.stdout, mark);
  assert.deepEqual(sections.get('p'), { output: alone.stdout, status: 0 });
  assert.deepEqual(sections.get('q'), { output: alone.stdout, status: 0 });
});

test('the one awk, and a reader on its own, print the same under mawk, gawk and busybox awk', () => {
  const dir = tree();
  const reference = runSh(`{\n${probe(dir)}\n} </dev/null`).stdout;
  const mark = newMark();
  const gather = buildGatherScript([{ id: 'p', script: probe(dir) }], mark);
  for (const awk of AWKS) {
    assert.ok(existsSync(awk[0]!), `${awk[0]} is missing: install the packages in .ci/apt-packages`);
    const alone = runSh(`{\n${probeWithAwk(probe(dir), awk)}\n} </dev/null`);
    assert.equal(alone.stdout, reference, `${awk.join(' ')}, each call its own awk: ${alone.stderr}`);
    const gathered = runSh(gatherWithAwk(gather, awk));
    assert.equal(splitSections(gathered.stdout, mark).get('p')?.output, reference, `${awk.join(' ')}, one awk: ${gathered.stderr}`);
  }
});

test('a probe whose deferred output never came is missing, not parsed without it', () => {
  const dir = tree();
  const mark = newMark();
  const script = buildGatherScript([{ id: 'p', script: probe(dir) }, { id: 'plain', script: 'echo fine' }], mark);
  const cut = runSh(script.replace(/\nif \[ -n "\$kc_aw_args" \][^\n]*\n/, '\n'));
  const sections = splitSections(cut.stdout, mark);
  assert.equal(sections.has('p'), false);
  assert.deepEqual(sections.get('plain'), { output: 'fine\n', status: 0 });
});

test('config globs leave out /lib/X when it is /usr/lib/X, and only then', () => {
  const root = mkdtempSync(join(tmpdir(), 'kvmconf-globs-'));
  const dirs = [`${root}/etc/x.d`, `${root}/usr/lib/x.d`, `${root}/lib/x.d`];
  // configGlobs compares /lib/X with /usr/lib/X: rooted paths stand in for them here.
  const globs = configGlobs(['/etc/x.d', '/usr/lib/x.d', '/lib/x.d'], '*.conf').replaceAll('/etc/', `${root}/etc/`).replaceAll('/usr/lib/', `${root}/usr/lib/`).replaceAll(' /lib/', ` ${root}/lib/`).replaceAll("'/lib/", `'${root}/lib/`);
  dirs.forEach((d) => mkdirSync(d, { recursive: true }));
  const list = () => runSh(`${globs}\nfor f in $kc_g; do [ -f "$f" ] && echo "\${f#${root}}"; done`).stdout;
  writeFileSync(`${root}/etc/x.d/a.conf`, '');
  writeFileSync(`${root}/usr/lib/x.d/b.conf`, '');
  writeFileSync(`${root}/lib/x.d/c.conf`, '');
  assert.equal(list(), '/etc/x.d/a.conf\n/usr/lib/x.d/b.conf\n/lib/x.d/c.conf\n');
  spawnSync('rm', ['-rf', `${root}/lib/x.d`]);
  spawnSync('ln', ['-s', `${root}/usr/lib/x.d`, `${root}/lib/x.d`]);
  assert.equal(list(), '/etc/x.d/a.conf\n/usr/lib/x.d/b.conf\n');
});
