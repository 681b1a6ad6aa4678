/**
 * Gather cost profiler: builds the gather script of a playbook's first play for this
 * machine, runs it once through /bin/sh under `strace -f -e trace=execve,clone,fork,vfork`
 * and prints, per section (host facts and each task's probe), the programs it executed,
 * the processes it created and the CPU time it used. Needs strace.
 *
 *   npm run build && node dist/bench/probe-cost.js [PLAYBOOK=playbooks/virtual-host.yaml]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../test/helpers/paths.js';
import { loadPlaybook } from '../src/config/playbook.js';
import { prepareTasks } from '../src/engine/prepare.js';
import { FACTS_SECTION } from '../src/engine/facts.js';
import { buildGatherScript, newMark } from '../src/engine/script.js';
import { MODULES_BY_NAME } from '../modules/index.js';

const playbookFile = process.argv[2] ?? join(ROOT, 'playbooks', 'virtual-host.yaml');
const play = loadPlaybook(playbookFile, MODULES_BY_NAME).plays[0]!;
const tasks = prepareTasks(play, MODULES_BY_NAME, { ...play.vars, inventory_hostname: 'localhost' }, 'localhost', {});
const sections = [{ ...FACTS_SECTION, name: 'host facts' }, ...tasks.map((task, i) => ({ id: `t${i}`, name: `${task.module.name}: ${task.name}`, script: task.module.probe(task.params) }))];

function cost(script: string): { execs: string[]; processes: number; cpuMs: number } {
  const dir = mkdtempSync(join(tmpdir(), 'kvmconf-probe-cost-'));
  const trace = join(dir, 'trace');
  const result = spawnSync('strace', ['-f', '-qq', '-e', 'trace=execve,clone,clone3,fork,vfork', '-o', trace, '/bin/sh', '-s'], { input: script, encoding: 'utf8' });
  if (result.error) throw result.error;
  const lines = readFileSync(trace, 'utf8').split('\n');
  const execs = lines.filter((l) => /execve\(/.test(l) && !/ENOENT/.test(l)).map((l) => /execve\("([^"]+)"/.exec(l)![1]!.split('/').pop()!).slice(1);
  const processes = lines.filter((l) => /\b(clone3?|v?fork)\(/.test(l) && !/CLONE_THREAD/.test(l) && !/= -1/.test(l)).length;
  // CPU without strace's overhead: the same script once more, timed by bash's `times`.
  const timed = spawnSync('/bin/bash', ['-c', '/bin/sh -s >/dev/null 2>&1; times'], { input: script, encoding: 'utf8' });
  const times = [...timed.stdout.trim().split('\n').pop()!.matchAll(/(\d+)m([\d.]+)s/g)].map((m) => Number(m[1]) * 60000 + Number(m[2]) * 1000);
  return { execs, processes, cpuMs: times.reduce((a, b) => a + b, 0) };
}

const total = cost(buildGatherScript(sections, newMark()));
console.log(`whole gather script: ${total.execs.length} programs executed, ${total.processes} processes created, ${total.cpuMs.toFixed(0)} ms CPU (shell and children)`);
for (const section of sections) {
  const one = cost(buildGatherScript([section], newMark()));
  const counts = new Map<string, number>();
  one.execs.forEach((e) => counts.set(e, (counts.get(e) ?? 0) + 1));
  const detail = [...counts].sort((a, b) => b[1] - a[1]).map(([name, n]) => `${n} ${name}`).join(', ');
  console.log(`  ${section.name.slice(0, 60).padEnd(60)} ${String(one.execs.length).padStart(3)} execs ${String(one.processes).padStart(3)} procs  ${detail}`);
}
