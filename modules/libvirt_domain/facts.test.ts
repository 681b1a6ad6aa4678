/**
 * The libvirt fact reader (one awk for every file the facts probe reads), run by the
 * system's awk on directive lines and files made here; and the whole probe on this machine.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FACT_READER, libvirtFactsProbe, parseLibvirtFacts } from './facts.js';

const dir = mkdtempSync(join(tmpdir(), 'kvmconf-facts-'));
const file = (name: string, content: string): string => {
  writeFileSync(join(dir, name), content);
  return join(dir, name);
};
const read = (directives: string[]): string[] =>
  execFileSync('awk', [FACT_READER], { input: directives.join('\n') + '\n', encoding: 'utf8' }).split('\n').filter(Boolean);

test('fields: text, a file\'s first line, the word after a key; a missing file is an empty field, not the end', () => {
  const siblings = file('thread_siblings_list', '0,2\n');
  const status = file('status', 'Name:\tqemu\nCpus_allowed_list:\t0-3\nMems_allowed_list:\t1\n');
  const gone = join(dir, 'vanished-thread-status');
  assert.deepEqual(read([
    `\x01T\t=cpu\t=0\t@${siblings}`,
    `\x01T\t=thread\t=web 1\t=42\t^Cpus_allowed_list:^${status}\t^Mems_allowed_list:^${status}\t^Cpus_allowed_list:^${gone}\t@${gone}`,
    `\x01L\tvirsh\t1`,
  ]), ['cpu\t0\t0,2', 'thread\tweb 1\t42\t0-3\t1\t\t', 'virsh\t1']);
});

test('virsh blocks: vcpupin, emulatorpin and numatune lines become fact lines of their domain', () => {
  assert.deepEqual(read([
    '\x01V\tvcpupin\tweb1', ' VCPU   CPU Affinity', '----------------------', ' 0      2', ' 1      0-3', '',
    '\x01V\temulatorpin\tweb1', 'emulator: CPU Affinity', '----------------------------------', '       *: 0-1', '',
    '\x01V\tnumatune\tweb1', 'numa_mode      : strict', 'numa_nodeset   : 1', '',
    '\x01L\tdom\tweb2\t7',
  ]), [
    'vcpupin\tweb1\t0\t2', 'vcpupin\tweb1\t1\t0-3', 'emulatorpin\tweb1\t0-1',
    'numatune\tweb1\tnuma_mode\tstrict', 'numatune\tweb1\tnuma_nodeset\t1', 'numatune\tweb1\t\t', 'dom\tweb2\t7',
  ]);
});

test('the whole probe on this machine: CPUs, nodes and PCI devices as sysfs has them', () => {
  const facts = parseLibvirtFacts(execFileSync('sh', ['-c', libvirtFactsProbe('qemu:///system')], { encoding: 'utf8' }));
  assert.ok(facts.cpus.length > 0 && facts.cpus.every((cpu) => cpu.siblings.includes(cpu.id)), JSON.stringify(facts.cpus));
  assert.deepEqual(facts.cpusOnline, facts.cpus.map((cpu) => cpu.id));
  if (facts.nodes.length) assert.deepEqual(facts.nodes.flatMap((node) => node.cpus).sort((a, b) => a - b), facts.cpusOnline);
});
