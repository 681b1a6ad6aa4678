import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { IRQS_READER, irqAffinity, pinCommands, type IrqAffinityState } from './index.js';
import { ASSIGN_AWK, netDeviceUnit, renderScript, renderUnit, systemdEscape } from './boot.js';
import { assignCpus, envValue, queueNumber, setEnvValue, type IrqInfo } from './plan.js';
import { cpuMask, formatCpuList, parseCpuList, parseCpuMask } from '../../src/kit/cpu-list.js';
import { readWith } from '../../src/kit/awk-reader.js';
import { quote } from '../../src/kit/shell.js';
import { REMOTE_LIB } from '../../src/kit/remote-lib.js';
import { fixture } from '../../test/helpers/paths.js';
import { TWO_NODE_FACTS, normalize, plan, schemaAccepts } from '../../test/helpers/plan.js';
import { parseFacts } from '../../src/engine/facts.js';

const VM_INPUT = fixture('irq_affinity', 'devvm-debian12-eth0-input-nosystemd.probe');
const VM_ALL = fixture('irq_affinity', 'devvm-debian12-virtio-all-nosystemd.probe');
const MLX5 = fixture('irq_affinity', 'handwritten-rhel9-mlx5-node1-irqbalance-running.probe');
const NVME = fixture('irq_affinity', 'handwritten-debian12-nvme-managed.probe');
const RHEL_FACTS = parseFacts('os_id=rhel\nos_version=9\nos_like=fedora\nkernel=5.14.0\narch=x86_64\nuid=0\nsystemd=1\ncpus_online=0-7\n');
const MLX5_TASK = { interface: 'ens1f0', node: 'auto' };
const keys = (changes: Array<{ target: string; scope: string }>) => changes.map((c) => `${c.target} (${c.scope})`);

test('cpulist: lists and masks as the kernel writes them', () => {
  assert.deepEqual(parseCpuList('0-2,5,7-8'), [0, 1, 2, 5, 7, 8]);
  assert.deepEqual(parseCpuList(''), []);
  assert.throws(() => parseCpuList('3-1'), /backwards/);
  assert.throws(() => parseCpuList('0;reboot'), /not a CPU list/);
  assert.equal(formatCpuList([5, 0, 1, 2, 8, 7]), '0-2,5,7-8');
  assert.equal(cpuMask([0, 1]), '3');
  assert.equal(cpuMask([0, 33]), '2,00000001');
  assert.equal(cpuMask([]), '0');
  assert.deepEqual(parseCpuMask('00000000,00000003'), [0, 1]);
  assert.deepEqual(parseCpuMask('2,00000001'), [0, 33]);
});

test('parse: the real probe of a virtio NIC (vectors on the PCI function above virtio2, numa_node -1, no systemd)', () => {
  const params = normalize(irqAffinity, { interface: 'eth0', match: 'virtio*-input.*', node: 'auto' });
  const state = irqAffinity.parse(VM_INPUT, params);
  assert.deepEqual(state.device, { path: '/sys/devices/pci0000:00/0000:00:03.0', numaNode: -1 });
  assert.deepEqual(state.online, [0, 1]);
  assert.deepEqual(state.nodes, { 0: [0, 1] });
  assert.deepEqual(state.irqs, [{ irq: 38, actions: 'virtio2-input.0', affinity: [0, 1], effective: [1], managed: null }]);
  assert.equal(state.units.systemd, false);
  assert.deepEqual(state.irqbalanceFiles, { '/etc/default/irqbalance': null, '/etc/sysconfig/irqbalance': null });
});

test('plan: node auto on a NIC without a NUMA node uses every online CPU; persist needs systemd', () => {
  const task = { interface: 'eth0', match: 'virtio*-input.*', node: 'auto', persist: false };
  const { changes, warnings } = plan(irqAffinity, task, VM_INPUT);
  assert.deepEqual(warnings, []);
  assert.equal(changes.length, 1);
  const [pin] = changes;
  assert.deepEqual({ ...pin, commands: undefined }, {
    module: 'irq_affinity', target: '/proc/irq/38/smp_affinity_list', scope: 'runtime', before: '0-1', after: '0', commands: undefined,
    reason: 'IRQ 38 (virtio2-input.0); /sys/devices/pci0000:00/0000:00:03.0 reports no NUMA node (numa_node -1): every online CPU is used',
  });
  assert.deepEqual(pin!.commands, pinCommands({ irq: 38, actions: 'virtio2-input.0', affinity: [0, 1], effective: [1], managed: null }, 0));
  assert.throws(() => plan(irqAffinity, { ...task, persist: true }, VM_INPUT), /does not run systemd/);
});

test('plan: a glob over every virtio IRQ spreads queue i to CPU i, unnumbered ones in IRQ order', () => {
  const { changes } = plan(irqAffinity, { match: 'virtio*', cpus: [1, 0], persist: false }, VM_ALL);
  const got = Object.fromEntries(changes.map((c) => [c.reason!.replace(/^IRQ \d+ \((.*)\)$/, '$1'), c.after]));
  // Numbered: req.0/input.0/output.0 -> cpus[0] = 1. Unnumbered (config, inflate, ...) take slots 0, 1, 2 ... in IRQ order.
  assert.equal(got['virtio2-input.0'], '1');
  assert.equal(got['virtio2-output.0'], '1');
  assert.equal(got['virtio1-req.0'], '1');
  assert.equal(got['virtio0-config'], '1');
  assert.equal(got['virtio0-inflate'], '0');
  assert.equal(changes.length, 16);
});

test('plan: mlx5 on node 1, irqbalance running: leave warns; each queue on its CPU; the unit and script persist it', () => {
  const { changes, warnings } = plan(irqAffinity, MLX5_TASK, MLX5, RHEL_FACTS);
  assert.match(warnings.map((w) => w.message).join('\n'), /irqbalance is running: it moves IRQs every 10 s and may undo this pinning/);
  assert.deepEqual(keys(changes), [
    '/proc/irq/120/smp_affinity_list (runtime)', '/proc/irq/121/smp_affinity_list (runtime)', '/proc/irq/122/smp_affinity_list (runtime)',
    '/proc/irq/123/smp_affinity_list (runtime)', '/proc/irq/124/smp_affinity_list (runtime)', '/proc/irq/125/smp_affinity_list (runtime)',
    '/usr/local/libexec/kvmconf/irq-affinity-ens1f0 (persist)', '/etc/systemd/system/kvmconf-irq-affinity-ens1f0.service (persist)',
    'kvmconf-irq-affinity-ens1f0.service (persist)',
  ]);
  // async0 has no queue number: slot 0; comp0..comp4 -> 4,5,6,7,4.
  assert.deepEqual(changes.slice(0, 6).map((c) => c.after), ['4', '4', '5', '6', '7', '4']);
  assert.ok(changes.every((c) => c.commands && c.commands.length > 0), 'every change carries its commands');
  const unit = changes[7]!.diff!.after;
  assert.match(unit, /WantedBy=multi-user\.target sys-subsystem-net-devices-ens1f0\.device/);
  assert.match(unit, /ExecStart=\/usr\/local\/libexec\/kvmconf\/irq-affinity-ens1f0/);
  assert.deepEqual(changes[7]!.commands!.slice(1), ['systemctl daemon-reload']);
  assert.match(changes[6]!.commands![0]!, /^kc_write_file \/usr\/local\/libexec\/kvmconf\/irq-affinity-ens1f0 0755 absent /);
  assert.deepEqual(changes[8]!.commands![0], 'systemctl enable kvmconf-irq-affinity-ens1f0.service');
});

test('plan: irqbalance ban edits IRQBALANCE_BANNED_CPULIST line by line and restarts the running daemon before the IRQs move', () => {
  const { changes, warnings } = plan(irqAffinity, { ...MLX5_TASK, irqbalance: 'ban', persist: false }, MLX5, RHEL_FACTS);
  assert.deepEqual(warnings, []);
  assert.deepEqual(keys(changes).slice(0, 2), ['/etc/sysconfig/irqbalance:IRQBALANCE_BANNED_CPULIST (persist)', 'irqbalance.service (runtime)']);
  const edit = changes[0]!;
  assert.equal(edit.before, null);
  assert.equal(edit.after, '4-7');
  assert.equal(edit.diff!.after, edit.diff!.before.replace('#IRQBALANCE_BANNED_CPULIST=\n', '#IRQBALANCE_BANNED_CPULIST=\nIRQBALANCE_BANNED_CPULIST=4-7\n'));
  assert.equal(changes[1]!.commands![0], 'systemctl restart irqbalance.service');
  assert.throws(
    () => plan(irqAffinity, { ...MLX5_TASK, irqbalance: 'ban' }, MLX5, RHEL_FACTS, [
      { module: 'irq_affinity', name: 'a', params: { irqbalance: 'ban' } }, { module: 'irq_affinity', name: 'b', params: { irqbalance: 'ban' } },
    ]),
    /2 irq_affinity tasks set irqbalance: ban/,
  );
});

test('plan: irqbalance stop stops and disables it, read back from systemd', () => {
  const { changes } = plan(irqAffinity, { ...MLX5_TASK, irqbalance: 'stop', persist: false }, MLX5, RHEL_FACTS);
  assert.deepEqual(keys(changes).slice(0, 2), ['irqbalance.service (runtime)', 'irqbalance.service (persist)']);
  assert.deepEqual(changes.slice(0, 2).map((c) => c.commands![0]), ['systemctl stop irqbalance.service', 'systemctl disable irqbalance.service']);
});

test('plan: a managed IRQ is a failure with the reason, never a change; so is one the kernel delivers elsewhere', () => {
  assert.throws(() => plan(irqAffinity, { pci: '0000:3d:00.0', cpus: '0-3' }, NVME), /IRQ 130 \(nvme0q1\) is a managed IRQ: its driver spreads it over 0 and the kernel refuses moves \(EIO\)/);
  // Asked as the kernel already has it: nothing to do, even for managed IRQs.
  const same = plan(irqAffinity, { pci: '0000:3d:00.0', cpus: [3, 0, 1, 2], persist: false }, NVME);
  assert.deepEqual(same.changes, []);
  const elsewhere = MLX5.replace('irq 123|5|5|', 'irq 123|6|2|');
  assert.throws(() => plan(irqAffinity, MLX5_TASK, elsewhere, RHEL_FACTS), /IRQ 123 \(mlx5_comp2@pci:0000:81:00.0\): smp_affinity_list is 6 but the kernel delivers it on CPU 2/);
});

test('plan: input and host errors name the problem', () => {
  assert.throws(() => plan(irqAffinity, { interface: 'eth9', node: 'auto' }, VM_INPUT.replace(/^device .*\nnuma .*\n/m, 'nodevice\n').replace(/^irq .*\n/m, '')), /interface eth9 does not exist on this host/);
  assert.throws(() => plan(irqAffinity, { interface: 'eth0', match: 'nothing*', cpus: [0] }, VM_INPUT.replace(/^irq .*\n/m, '')), /no IRQ of eth0 \(nothing\*\) was found/);
  assert.throws(() => plan(irqAffinity, { interface: 'eth0', cpus: [4] }, VM_INPUT), /CPU 4 is not online/);
  assert.throws(() => plan(irqAffinity, { interface: 'eth0', node: 3 }, VM_INPUT), /NUMA node 3 has no online CPU/);
  assert.throws(() => normalize(irqAffinity, { match: 'virtio*', node: 'auto' }), /node: auto reads the NUMA node of the device/);
  for (const bad of [
    { interface: 'eth0' }, { interface: 'eth0', cpus: [0], node: 0 }, { interface: 'eth0', pci: '0000:00:03.0', cpus: [0] },
    { match: 'virtio$(reboot)', cpus: [0] }, { interface: '../x', cpus: [0] }, { pci: '0000:00:03.0;x', cpus: [0] }, { cpus: [0] },
    { match: '*', cpus: '0,;1' }, { match: '*', cpus: [0], irqbalance: 'off' },
  ]) assert.equal(schemaAccepts(irqAffinity, bad), false, JSON.stringify(bad));
  assert.equal(schemaAccepts(irqAffinity, { pci: '0000:81:00.0', match: 'mlx5_comp*', cpus: '4-7', irqbalance: 'ban', name: 'mlx5' }), true);
});

test('plan: converged state changes nothing (script, unit and enable state as apply left them)', () => {
  const first = plan(irqAffinity, MLX5_TASK, MLX5, RHEL_FACTS);
  const script = first.changes.find((c) => c.target.endsWith('irq-affinity-ens1f0'))!.diff!.after;
  const unit = first.changes.find((c) => c.target.endsWith('.service') && c.diff)!.diff!.after;
  let converged = MLX5;
  for (const { after, target } of first.changes.filter((c) => c.scope === 'runtime')) {
    const irq = target.split('/')[3];
    converged = converged.replace(new RegExp(`^irq ${irq}\\|[^|]*\\|[^|]*\\|`, 'm'), `irq ${irq}|${after}|${after}|`);
  }
  converged = converged
    .replace('\nLoadState=not-found\nActiveState=inactive\nSubState=dead\nUnitFileState=\n@@unit-all-end\n', '\nLoadState=loaded\nActiveState=inactive\nSubState=dead\nUnitFileState=enabled\n@@unit-all-end\n')
    .replace('@@script\n@@file-absent\n@@unit\n@@file-absent\n', `@@script\n@@file-present\n${script}\n@@file-end\n@@unit\n@@file-present\n${unit}\n@@file-end\n`);
  const again = plan(irqAffinity, MLX5_TASK, converged, RHEL_FACTS);
  assert.deepEqual(again.changes, []);
});

test('queue numbers and the boot script\'s awk spread IRQs exactly as the planner does', () => {
  assert.equal(queueNumber('virtio0-input.3'), 3);
  assert.equal(queueNumber('mlx5_comp7@pci:0000:81:00.0'), 7);
  assert.equal(queueNumber('nvme0q2'), 2);
  assert.equal(queueNumber('virtio0-config'), null);
  assert.equal(queueNumber('i40e-eth0-TxRx-11,other'), 11);
  const irqs: IrqInfo[] = [
    ...irqAffinity.parse(VM_ALL, normalize(irqAffinity, { match: 'virtio*', cpus: [0] })).irqs,
    ...irqAffinity.parse(MLX5, normalize(irqAffinity, MLX5_TASK)).irqs,
  ];
  for (const cpus of [[0], [1, 0], [4, 5, 6], [2, 3, 0, 1, 7]]) {
    const expected = assignCpus(irqs, cpus).map(({ irq, cpu }) => `${irq.irq} ${cpu}`).join('\n');
    const input = [...irqs].sort((a, b) => a.irq - b.irq).map((irq) => `${irq.irq} ${irq.actions}`).join('\n') + '\n';
    const awk = spawnSync('awk', ['-v', `cpus=${cpus.join(',')}`, ASSIGN_AWK], { input, encoding: 'utf8' });
    assert.equal(awk.stdout.trim(), expected, `cpus ${cpus}`);
  }
});

test('boot script: matches again by device and glob on a sysfs tree and writes each IRQ its CPU', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'kvmconf-irq-'));
  const pci = path.join(root, 'sys/devices/pci0000:00/0000:00:03.0');
  fs.mkdirSync(path.join(pci, 'virtio2'), { recursive: true });
  fs.mkdirSync(path.join(root, 'sys/class/net/eth0'), { recursive: true });
  fs.symlinkSync(path.join(pci, 'virtio2'), path.join(root, 'sys/class/net/eth0/device'));
  const vectors: Array<[number, string]> = [[37, 'virtio2-config'], [38, 'virtio2-input.0'], [39, 'virtio2-output.0'], [40, 'virtio2-input.1'], [41, 'virtio2-output.1'], [9, 'acpi']];
  for (const [irq, action] of vectors) {
    if (irq !== 9) fs.mkdirSync(path.join(pci, 'msi_irqs', String(irq)), { recursive: true });
    fs.mkdirSync(path.join(root, 'sys/kernel/irq', String(irq)), { recursive: true });
    fs.writeFileSync(path.join(root, 'sys/kernel/irq', String(irq), 'actions'), `${action}\n`);
    fs.mkdirSync(path.join(root, 'proc/irq', String(irq)), { recursive: true });
    fs.writeFileSync(path.join(root, 'proc/irq', String(irq), 'smp_affinity_list'), '0-3\n');
  }
  const spec = { name: 'eth0', device: '/sys/class/net/eth0/device', iface: 'eth0', match: 'virtio*-input.*', cpus: [2, 3], what: 'eth0' };
  const script = renderScript(spec).replaceAll('/sys/', `${root}/sys/`).replaceAll('/proc/', `${root}/proc/`);
  assert.equal(spawnSync('sh', ['-n'], { input: renderScript(spec) }).status, 0);
  const run = spawnSync('sh', ['-s'], { input: script, encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  const read = (irq: number) => fs.readFileSync(path.join(root, 'proc/irq', String(irq), 'smp_affinity_list'), 'utf8').trim();
  assert.deepEqual(vectors.map(([irq]) => read(irq)), ['0-3', '2', '0-3', '3', '0-3', '0-3']);
  fs.rmSync(root, { recursive: true });
  assert.match(renderUnit(spec), /^After=systemd-udevd\.service systemd-modules-load\.service irqbalance\.service sys-subsystem-net-devices-eth0\.device$/m);
  assert.equal(netDeviceUnit('br-lan.10'), 'sys-subsystem-net-devices-br\\x2dlan.10.device');
  assert.equal(systemdEscape('.x'), '\\x2ex');
});

test('shell: a refused write fails with the kernel\'s reason and the managed-IRQ explanation; a read-back mismatch fails', () => {
  const irq: IrqInfo = { irq: 130, actions: 'nvme0q1', affinity: [0], effective: [0], managed: null };
  const full = pinCommands(irq, 2).map((command) => command.replaceAll('/proc/irq/130/smp_affinity_list', '/dev/full'));
  const refused = spawnSync('sh', ['-c', `${REMOTE_LIB}\n${full.join('\n')}`], { encoding: 'utf8' });
  assert.equal(refused.status, 1);
  assert.match(refused.stderr, /IRQ 130 \(nvme0q1\): the kernel refused CPU 2 \(No space left on device\); a managed IRQ/);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvmconf-irq-'));
  const file = path.join(dir, 'aff');
  const stubborn = pinCommands(irq, 2).map((command) => command.replace(/> \/proc\/irq\/130\/smp_affinity_list/, '> /dev/null').replaceAll('/proc/irq/130/smp_affinity_list', file));
  fs.writeFileSync(file, '0\n');
  const mismatch = spawnSync('sh', ['-c', `${REMOTE_LIB}\n${stubborn.join('\n')}`], { encoding: 'utf8' });
  assert.equal(mismatch.status, 1);
  assert.match(mismatch.stderr, /IRQ 130 \(nvme0q1\): asked for CPU 2, smp_affinity_list reads 0/);
  fs.rmSync(dir, { recursive: true });
});

test('env file edits keep every other byte', () => {
  assert.equal(setEnvValue(null, 'K', '1'), 'K=1\n');
  assert.equal(setEnvValue('A=1\nK="0"\n# K=5\n', 'K', '2-3'), 'A=1\nK=2-3\n# K=5\n');
  assert.equal(setEnvValue('A=1', 'K', '2'), 'A=1\nK=2\n');
  assert.equal(envValue('K="0-1"\n#K=3\n', 'K'), '0-1');
  assert.equal(envValue('#K=3\n', 'K'), null);
  void TWO_NODE_FACTS;
  void (null as unknown as IrqAffinityState);
});

test('the IRQ reader: managed from the debugfs flags, - for a file it cannot read, no line without smp_affinity_list', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvmconf-irqs-'));
  const write = (name: string, text: string) => {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), text);
  };
  write('9/smp_affinity_list', '0-1\n');
  write('debug/9', 'handler:  handle_edge_irq\nddstate:  0x10000000\n           IRQD_AFFINITY_MANAGED\nnode:     0\n');
  write('10/smp_affinity_list', '1\n');
  write('10/effective_affinity_list', '1\n');
  write('debug/10', 'handler:  handle_edge_irq\nnode:     0\n');
  write('12/smp_affinity_list', '2\n');
  const irq = (n: number, act: string) => `${quote(`n=${n}`)} ${quote(`act=${act}`)} ${['smp_affinity_list', 'effective_affinity_list'].map((f) => quote(path.join(dir, String(n), f))).join(' ')} ${quote(path.join(dir, 'debug', String(n)))}`;
  const out = spawnSync('/bin/sh', ['-c', readWith(IRQS_READER, [irq(9, 'nvme0q1'), irq(10, "a b'c"), irq(11, 'gone'), irq(12, 'no debugfs')].join(' '))], { encoding: 'utf8' });
  assert.equal(out.stdout, "irq 9|0-1|-|managed|nvme0q1\nirq 10|1|1|unmanaged|a b'c\nirq 12|2|-|-|no debugfs\n", out.stderr);
});
