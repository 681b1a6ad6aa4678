import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderFactsText, table } from '../../src/commands/facts-text.js';
import type { HostFacts } from '../../src/kit/host-facts.js';

const facts: HostFacts = {
  osId: 'debian', osVersion: '12', osLike: [], kernel: '6.1.0-18-amd64', bootId: '3f2c', arch: 'x86_64', uid: 0, systemd: true,
  cpusOnline: [0, 1, 2, 3], cpuFlags: ['vmx'], threadSiblings: { 0: [0, 2], 1: [1, 3], 2: [0, 2], 3: [1, 3] },
  numaNodes: [{ id: 0, cpus: [0, 2], memTotalKiB: 8_388_608, memFreeKiB: 4_194_304 }, { id: 1, cpus: [1, 3], memTotalKiB: 8_388_608, memFreeKiB: 2_097_152 }],
  hugepageSizesKiB: [2048, 1048576], memTotalKiB: 16_777_216, resctrl: [],
};

const libvirt = {
  host: {
    virsh: true, cpusOnline: [0, 1, 2, 3], cpus: [], nodes: [], defaultHugepageKiB: 2048,
    hugepages: [
      { node: 0, sizeKiB: 2048, total: 512, free: 100, surplus: 0 },
      { node: 1, sizeKiB: 2048, total: 512, free: 512, surplus: 0 },
      { node: 0, sizeKiB: 1048576, total: 2, free: 1, surplus: 0 },
    ],
    pci: [{ address: '0000:81:00.0', class: '0x020000', node: 1, netdevs: ['ens1f0'] }, { address: '0000:00:1f.2', class: '0x010601', node: 0, netdevs: [] }],
    running: [{ name: 'web1', pid: 4242, libvirt: { vcpupin: { 0: '2', 1: '0' }, emulatorpin: '0,2', numaMode: 'strict', numaNodeset: '0' }, kernel: [] }],
    hostdevs: [],
  },
  domains: [],
};

test('facts --format text: NUMA nodes, PCI devices by node and domains with their pinning as tables', () => {
  const text = renderFactsText([{ host: 'hv1', facts, modules: { libvirt_domain: libvirt, thp: { enabled: { selected: 'never', available: ['always', 'never'] }, tmpfiles: null } } }, { host: 'hv2', error: 'ssh: timeout' }]);
  assert.equal(
    text,
    [
      'hv1: debian 12, kernel 6.1.0-18-amd64, x86_64, 4 CPUs, 16.0 GiB, boot_id 3f2c',
      '',
      '  NUMA nodes',
      '    node  cpus  siblings  memory   free     2M free/total  1G free/total',
      '    0     0,2   0,2       8.0 GiB  4.0 GiB  100/512        1/2',
      '    1     1,3   1,3       8.0 GiB  2.0 GiB  512/512        -',
      '',
      '  PCI devices',
      '    node  address       class     driver  netdevs',
      '    0     0000:00:1f.2  0x010601  -',
      '    1     0000:81:00.0  0x020000  -       ens1f0',
      '',
      '  running domains',
      '    domain  pid   vcpupin  emulatorpin  numa',
      '    web1    4242  0:2 1:0  0,2          strict 0',
      '',
      '  settings',
      '    thp: enabled=never',
      '',
      'hv2: error: ssh: timeout',
      '',
    ].join('\n'),
  );
});

test('table pads every column but the last', () => {
  assert.deepEqual(table(['a', 'bb'], [['ccc', 'd']]), ['a    bb', 'ccc  d']);
});

test('facts --format text: a domain\'s vhost-net workers, where they may run and what places them', () => {
  const vhost = [{ tid: 4300, comm: 'vhost-4242', cpus: '0-3', mems: '0-1' }];
  const host = { ...libvirt.host, running: [{ ...libvirt.host.running[0]!, vhost }, { name: 'web2', pid: 5000, libvirt: libvirt.host.running[0]!.libvirt, kernel: [] }] };
  const text = renderFactsText([{ host: 'hv1', facts, modules: { libvirt_domain: { host, domains: [] } } }]);
  const at = text.indexOf('  running domains');
  assert.deepEqual(text.slice(at).split('\n').slice(0, 4), [
    '  running domains',
    '    domain  pid   vcpupin  emulatorpin  numa      vhost-net workers (follow emulatorpin)',
    '    web1    4242  0:2 1:0  0,2          strict 0  vhost-4242 on 0-3 (kernel threads in the emulator cgroup)',
    '    web2    5000  0:2 1:0  0,2          strict 0  -',
  ]);
});

test('facts --format text: the room left for placement per node, after the running domains\' pinning', () => {
  const cpus = Array.from({ length: 8 }, (_, id) => ({ id, core: id, socket: id < 4 ? 0 : 1, node: id < 4 ? 0 : 1, siblings: [id] }));
  const host = {
    ...libvirt.host, cpusOnline: [0, 1, 2, 3, 4, 5, 6, 7], cpus, nodes: [{ id: 0, cpus: [0, 1, 2, 3] }, { id: 1, cpus: [4, 5, 6, 7] }],
    running: [{ name: 'web1', pid: 4242, libvirt: { vcpupin: { 0: '1', 1: '2' }, emulatorpin: '1-2', numaMode: 'strict', numaNodeset: '0' }, kernel: [] }],
  };
  const text = renderFactsText([{ host: 'hv1', facts, modules: { libvirt_domain: { host, domains: [] } } }]);
  const at = text.indexOf('  free for placement');
  assert.deepEqual(text.slice(at).trimEnd().split('\n'), [
    '  free for placement (CPUs pinned alone by running domains taken, first core of each node kept for the host)',
    '    node  online  pinned  host core  free for guests  2M free  1G free',
    '    0     0-3     1-2     0          3 (1)            100      1',
    '    1     4-7     -       4          5-7 (3)          512      0',
  ]);
});

test('facts --format text: SR-IOV PFs with their VF count, VFs with their PF, and the running domain holding a VF', () => {
  const host = {
    ...libvirt.host,
    pci: [
      { address: '0000:81:00.0', class: '0x020000', node: 1, netdevs: ['ens1f0'], driver: 'ixgbe', sriov: { totalvfs: 63, numvfs: 2 } },
      { address: '0000:81:10.0', class: '0x020000', node: 1, netdevs: [], driver: 'vfio-pci', physfn: '0000:81:00.0' },
      { address: '0000:81:10.2', class: '0x020000', node: 1, netdevs: ['ens1f0v1'], driver: 'ixgbevf', physfn: '0000:81:00.0' },
      { address: '0000:00:1f.2', class: '0x010601', node: -1, netdevs: [], driver: 'ahci' },
    ],
    hostdevs: [{ domain: 'web1', address: '0000:81:10.0' }],
  };
  const text = renderFactsText([{ host: 'hv1', facts, modules: { libvirt_domain: { host, domains: [] } } }]);
  const at = text.indexOf('  PCI devices');
  assert.deepEqual(text.slice(at, text.indexOf('\n\n', at)).split('\n'), [
    '  PCI devices',
    '    node  address       class     driver    netdevs   sr-iov              held by',
    '    -     0000:00:1f.2  0x010601  ahci',
    '    1     0000:81:00.0  0x020000  ixgbe     ens1f0    PF 2/63 VFs',
    '    1     0000:81:10.0  0x020000  vfio-pci            VF of 0000:81:00.0  web1',
    '    1     0000:81:10.2  0x020000  ixgbevf   ens1f0v1  VF of 0000:81:00.0',
  ]);
});
