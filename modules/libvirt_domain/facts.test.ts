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

test('SR-IOV and holders: a PF\'s VF counts, a VF\'s PF from its physfn uevent, the driver; a status XML names what a domain holds', () => {
  const uevent = file('pf-uevent', 'DRIVER=ixgbe\nPCI_CLASS=20000\nPCI_SLOT_NAME=0000:81:00.0\n');
  const vfUevent = file('vf-uevent', 'DRIVER=vfio-pci\nPCI_SLOT_NAME=0000:81:10.0\n');
  const total = file('sriov_totalvfs', '63\n');
  const numvfs = file('sriov_numvfs', '2\n');
  const status = file('web 1.xml', [
    "<domstatus state='running'>", "  <domain type='kvm'>", "    <devices>",
    "      <interface type='hostdev' managed='yes'>", '        <source>', "          <address type='pci' domain='0x0000' bus='0x81' slot='0x10' function='0x0'/>", '        </source>',
    "        <address type='pci' domain='0x0000' bus='0x07' slot='0x00' function='0x0'/>", '      </interface>', '    </devices>', '  </domain>', '</domstatus>', '',
  ].join('\n'));
  const none = join(dir, 'absent');
  const lines = read([
    `\x01T\t=pci\t=0000:81:00.0\t=0x020000\t=1\t=ens1f0 \t%DRIVER%${uevent}\t@${total}\t@${numvfs}\t%PCI_SLOT_NAME%${none}`,
    `\x01T\t=pci\t=0000:81:10.0\t=0x020000\t=1\t=\t%DRIVER%${vfUevent}\t@${none}\t@${none}\t%PCI_SLOT_NAME%${uevent}`,
    `\x01X\t${status}`,
  ]);
  assert.deepEqual(lines, ['pci\t0000:81:00.0\t0x020000\t1\tens1f0 \tixgbe\t63\t2\t', 'pci\t0000:81:10.0\t0x020000\t1\t\tvfio-pci\t\t\t0000:81:00.0', 'hostdev\tweb 1\t0000:81:10.0']);
  const facts = parseLibvirtFacts(lines.join('\n'));
  assert.deepEqual(facts.pci, [
    { address: '0000:81:00.0', class: '0x020000', node: 1, netdevs: ['ens1f0'], driver: 'ixgbe', sriov: { totalvfs: 63, numvfs: 2 } },
    { address: '0000:81:10.0', class: '0x020000', node: 1, netdevs: [], driver: 'vfio-pci', physfn: '0000:81:00.0' },
  ]);
  assert.deepEqual(facts.hostdevs, [{ domain: 'web 1', address: '0000:81:10.0' }]);
  assert.deepEqual(parseLibvirtFacts('pci\t0000:00:1f.2\t0x010601\t0\t').pci, [{ address: '0000:00:1f.2', class: '0x010601', node: 0, netdevs: [] }], 'a line recorded before the SR-IOV fields');
});
