import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { sriov, renderRule, rulePath, parseSriov, heldGuard, sriovProbe } from './index.js';
import { parseVfLines, staleSettings, vfCommands } from './vf.js';
import { HOSTDEV_AWK, HOSTDEV_DOMAIN_AWK, hostdevProbe } from '../lib/pci-hostdev.js';
import { REMOTE_LIB } from '../../src/kit/remote-lib.js';
import { fixture } from '../../test/helpers/paths.js';
import { claimsOf, normalize, plan, schemaAccepts } from '../../test/helpers/plan.js';

const NVME_0 = fixture('sriov', 'devvm-debian12-nvme-pf-numvfs0.probe');
const NVME_2 = fixture('sriov', 'devvm-debian12-nvme-pf-numvfs2.probe');
const IXGBE = fixture('sriov', 'handwritten-rhel9-ixgbe-4vfs-one-held.probe');
const PF = '/sys/bus/pci/devices/0000:00:03.0/sriov_numvfs';
const RULE = '/etc/udev/rules.d/70-kvmconf-sriov-0000-00-03-0.rules';
const keys = (changes: Array<{ target: string; scope: string; before: string | null; after: string | null }>) => changes.map((c) => `${c.target} (${c.scope}) ${c.before} -> ${c.after}`);

/** The fixture with the rule file present, as the probe prints it after an apply. */
/** The line the probe adds when autoprobe is asked (the recorded fixtures come from a task without it). */
const withAutoprobe = (output: string, value: string) => output.replace(/^(@@[0-9a-f]{16}@)numvfs (\d+)$/m, `$1numvfs $2\n$1autoprobe ${value}`);
const withRule = (output: string, rule: string) => output.replace(/@@file-absent\n?$/, `@@file-present\n${rule}\n@@file-end\n`);

test('parse: the recorded probe of QEMU\'s NVMe PF, before and after 2 VFs', () => {
  const params = normalize(sriov, { pci: '0000:00:03.0', numvfs: 2 });
  const off = sriov.parse(NVME_0, params);
  assert.deepEqual({ ...off, rule: off.rule }, {
    device: '0000:00:03.0', missing: null, driver: 'nvme', node: -1, total: 4, numvfs: 0, autoprobe: null, netdevs: [], vfs: [], held: [], heldUnknown: false, vfSettings: null, rule: null,
  });
  const on = sriov.parse(NVME_2, params);
  assert.equal(on.numvfs, 2);
  assert.deepEqual(on.vfs, [{ index: 0, address: '0000:00:03.1', driver: null }, { index: 1, address: '0000:00:03.2', driver: null }]);
});

test('plan 0 -> 2: the count (read back), the bind rule; converged after: nothing, the rule byte-identical', () => {
  const { changes, commands } = plan(sriov, { pci: '0000:00:03.0', numvfs: 2 }, NVME_0);
  assert.deepEqual(keys(changes), [`${PF} (runtime) 0 -> 2`, `${RULE} (persist) null -> sriov_numvfs=2 on bind`]);
  const count = commands(changes[0]!);
  assert.equal(count.length, 2, 'the guard and the write: no VF to destroy, no 0 first');
  assert.match(count[0]!, /kc_read_value \/sys\/bus\/pci\/devices\/0000:00:03\.0\/sriov_numvfs.*= 0 \]/);
  assert.equal(count[1], `kc_set_value ${PF} 2`);
  const rule = changes[1]!.diff!.after;
  assert.equal(rule, '# Managed by kvmconf (sriov); edits here are overwritten.\nACTION=="add|bind", SUBSYSTEM=="pci", KERNEL=="0000:00:03.0", DRIVER=="?*", ATTR{sriov_numvfs}="2"\n');
  const [write, reload] = commands(changes[1]!);
  assert.ok(write!.startsWith(`kc_write_file ${RULE} 0644 absent '# Managed by kvmconf (sriov)`), write);
  assert.match(reload!, /udevadm control --reload-rules/);
  assert.deepEqual(plan(sriov, { pci: '0000:00:03.0', numvfs: 2 }, withRule(NVME_2, rule)).changes, []);
});

test('autoprobe false: written before the VFs are made, and in the rule before the count; converged after', () => {
  const wanted = { pci: '0000:00:03.0', numvfs: 2, autoprobe: false };
  assert.ok(!sriovProbe(normalize(sriov, { pci: '0000:00:03.0', numvfs: 2 })).includes('sriov_drivers_autoprobe'), 'not read unless asked');
  assert.ok(sriovProbe(normalize(sriov, wanted)).includes('kc_read "$kc_sd/sriov_drivers_autoprobe"'));
  const { changes, commands } = plan(sriov, wanted, withAutoprobe(NVME_0, '1'));
  assert.deepEqual(keys(changes), [
    '/sys/bus/pci/devices/0000:00:03.0/sriov_drivers_autoprobe (runtime) 1 -> 0',
    `${PF} (runtime) 0 -> 2`,
    `${RULE} (persist) null -> sriov_numvfs=2 (autoprobe 0) on bind`,
  ]);
  assert.deepEqual(commands(changes[0]!), ['kc_set_value /sys/bus/pci/devices/0000:00:03.0/sriov_drivers_autoprobe 0']);
  assert.equal(changes[0]!.reason, undefined, 'the VFs made in this run follow it');
  const rule = changes[2]!.diff!.after;
  assert.match(rule, /DRIVER=="\?\*", ATTR\{sriov_drivers_autoprobe\}="0", ATTR\{sriov_numvfs\}="2"\n$/);
  assert.deepEqual(plan(sriov, wanted, withRule(withAutoprobe(NVME_2, '0'), rule)).changes, []);
  // VFs there already keep their drivers: the change says it applies to VFs made from now on.
  const later = plan(sriov, wanted, withRule(withAutoprobe(NVME_2, '1'), rule));
  assert.deepEqual(keys(later.changes), ['/sys/bus/pci/devices/0000:00:03.0/sriov_drivers_autoprobe (runtime) 1 -> 0']);
  assert.equal(later.changes[0]!.reason, 'the 2 VFs there are keep their host drivers; it applies to VFs made from now on');
  assert.throws(() => plan(sriov, wanted, NVME_0), /autoprobe: \/sys\/bus\/pci\/devices\/0000:00:03\.0\/sriov_drivers_autoprobe is absent or unreadable/);
  assert.deepEqual(sriov.claims!(normalize(sriov, wanted)).map((claim) => ('path' in claim ? claim.path : '')).slice(1), [PF, '/sys/bus/pci/devices/0000:00:03.0/sriov_drivers_autoprobe']);
});

test('plan 2 -> 3 goes through 0, as the kernel requires, and says so; 2 -> 0 writes 0 and removes the rule', () => {
  const rule = renderRule('0000:00:03.0', 2, null, {});
  const { changes, commands } = plan(sriov, { pci: '0000:00:03.0', numvfs: 3 }, withRule(NVME_2, rule));
  assert.deepEqual(keys(changes), [`${PF} (runtime) 2 -> 3`, `${RULE} (persist) present -> sriov_numvfs=3 on bind`]);
  assert.match(changes[0]!.reason!, /through 0: the kernel changes a non-zero count only so; VFs 0-1 are destroyed/);
  const steps = commands(changes[0]!);
  assert.deepEqual(steps.slice(-2), [`kc_write_value ${PF} 0`, `kc_set_value ${PF} 3`]);
  assert.match(steps.join('\n'), /grep -F -e 0000:00:03\.1 -e 0000:00:03\.2/, 'no domain started since holds a VF');
  const off = plan(sriov, { pci: '0000:00:03.0', numvfs: 0 }, withRule(NVME_2, rule));
  assert.deepEqual(keys(off.changes), [`${PF} (runtime) 2 -> 0`, `${RULE} (persist) present -> null`]);
  assert.equal(off.commands(off.changes[0]!).at(-1), `kc_set_value ${PF} 0`);
  assert.match(off.commands(off.changes[1]!)[0]!, /^kc_remove_file \/etc\/udev\/rules\.d\/70-kvmconf-sriov-0000-00-03-0\.rules [0-9a-f]{64}$/);
  assert.deepEqual(keys(plan(sriov, { pci: '0000:00:03.0', numvfs: 2, persist: false }, withRule(NVME_2, rule)).changes), [`${RULE} (persist) present -> null`]);
});

test('errors name the device and the path: too many VFs, no such device, no SR-IOV, no driver', () => {
  assert.throws(() => plan(sriov, { pci: '0000:00:03.0', numvfs: 5 }, NVME_0), /numvfs 5: 0000:00:03\.0 offers at most 4 VFs \(\/sys\/bus\/pci\/devices\/0000:00:03\.0\/sriov_totalvfs\)/);
  const mark = /^@@sriov-probe\t(\S+)/.exec(NVME_0)![1]!;
  const gone = NVME_0.split('\n').filter((line) => !line.startsWith(mark) || line === `${mark}rule`).join('\n').replace('\n', `\n${mark}missing\n`);
  assert.throws(() => plan(sriov, { pci: '0000:00:04.0', numvfs: 1 }, gone), /PCI device 0000:00:04\.0 does not exist on this host \(\/sys\/bus\/pci\/devices\/0000:00:04\.0 is absent\)/);
  assert.throws(() => plan(sriov, { interface: 'eth9', numvfs: 1 }, gone), /interface eth9 has no PCI device on this host \(\/sys\/class\/net\/eth9\/device is absent or no PCI device\)/);
  const plain = NVME_0.replace(new RegExp(`^${mark}(total|numvfs) .*\n`, 'gm'), '');
  assert.throws(() => plan(sriov, { pci: '0000:00:03.0', numvfs: 1 }, plain), /0000:00:03\.0 is not an SR-IOV physical function: \/sys\/bus\/pci\/devices\/0000:00:03\.0\/sriov_totalvfs is absent/);
  const unbound = NVME_0.replace(`${mark}driver nvme`, `${mark}driver `);
  assert.throws(() => plan(sriov, { pci: '0000:00:03.0', numvfs: 1 }, unbound), /no driver is bound to 0000:00:03\.0: the kernel takes \/sys\/bus\/pci\/devices\/0000:00:03\.0\/sriov_numvfs only from the PF's driver/);
  assert.throws(() => plan(sriov, { pci: '0000:00:03.0', numvfs: 2, vfs: { 0: { trust: true } } }, NVME_0), /vfs: 0000:00:03\.0 \(driver nvme\) has no network interface/);
});

test('a VF held by a running domain refuses a count change, naming the domain and the VF; unknown holders refuse too', () => {
  assert.throws(() => plan(sriov, { pci: '0000:3b:00.0', numvfs: 8 }, IXGBE), /cannot change \/sys\/bus\/pci\/devices\/0000:3b:00\.0\/sriov_numvfs from 4 to 8: VF 0 \(0000:3b:10\.0\) is held by running domain 'web1'; the kernel destroys every VF/);
  assert.throws(() => plan(sriov, { pci: '0000:3b:00.0', numvfs: 0 }, IXGBE), /from 4 to 0: VF 0 \(0000:3b:10\.0\) is held by running domain 'web1'/);
  const mark = /^@@sriov-probe\t(\S+)/.exec(IXGBE)![1]!;
  const unknown = IXGBE.replace(new RegExp(`^${mark}held\t.*\n`, 'gm'), '').replace(`${mark}iplink`, `${mark}held-unreadable\n${mark}iplink`);
  assert.throws(() => plan(sriov, { pci: '0000:3b:00.0', numvfs: 2 }, unknown), /cannot tell whether a running domain holds a VF of 0000:3b:00\.0: \/run\/libvirt\/qemu is not readable/);
  assert.deepEqual(plan(sriov, { pci: '0000:3b:00.0', numvfs: 4, persist: false }, unknown).changes, [], 'the same count destroys nothing: no need to know');
});

test('VF settings: only what differs is set, vlan with its qos; the rule runs ip link for every VF asked', () => {
  const vfs = { 0: { mac: '52:54:00:AA:BB:01', vlan: 10, spoofchk: false, trust: true }, 1: { mac: '52:54:00:aa:bb:02', trust: true }, 2: { vlan: 100 }, 3: { spoofchk: false } };
  const { changes, commands } = plan(sriov, { interface: 'enp59s0f0', numvfs: 4, vfs }, IXGBE);
  assert.deepEqual(keys(changes), [
    'enp59s0f0 vf 1 (runtime) mac=00:00:00:00:00:00 trust=off -> mac=52:54:00:aa:bb:02 trust=on',
    'enp59s0f0 vf 3 (runtime) spoofchk=on -> spoofchk=off',
    '/etc/udev/rules.d/70-kvmconf-sriov-enp59s0f0.rules (persist) null -> sriov_numvfs=4 on bind with 4 VF setting(s)',
  ], 'vf 0 is as asked, vf 2 has vlan 100 already (its qos is not asked)');
  assert.match(commands(changes[0]!)[0]!, /^ip link set dev enp59s0f0 vf 1 mac 52:54:00:aa:bb:02 trust on \|\| kc_fail/);
  assert.equal(changes[2]!.diff!.after.split('\n')[1], 'ACTION=="add|bind", SUBSYSTEM=="pci", KERNEL=="0000:3b:00.0", DRIVER=="?*", ATTR{sriov_numvfs}="4"'
    + ', RUN+="/sbin/ip link set dev enp59s0f0 vf 0 mac 52:54:00:aa:bb:01 vlan 10 spoofchk off trust on", RUN+="/sbin/ip link set dev enp59s0f0 vf 1 mac 52:54:00:aa:bb:02 trust on"'
    + ', RUN+="/sbin/ip link set dev enp59s0f0 vf 2 vlan 100", RUN+="/sbin/ip link set dev enp59s0f0 vf 3 spoofchk off"');
  assert.equal(rulePath({ pci: null, interface: 'enp59s0f0' }), '/etc/udev/rules.d/70-kvmconf-sriov-enp59s0f0.rules');
});

test('a PF named by its interface in one task and by its PCI address in another is refused: their rules and counts would fight', () => {
  const byAddress = { module: 'sriov', name: 'VFs of the uplink', params: { pci: '0000:3b:00.0', interface: null, numvfs: 2, persist: true, vfs: {} } };
  assert.throws(
    () => plan(sriov, { interface: 'enp59s0f0', numvfs: 4 }, IXGBE, undefined, [byAddress]),
    /interface enp59s0f0 is PF 0000:3b:00.0, which task 'VFs of the uplink' manages too \(by its PCI address\): name the PF in one sriov task/,
  );
  // Another PF's task is no conflict.
  plan(sriov, { interface: 'enp59s0f0', numvfs: 4 }, IXGBE, undefined, [{ ...byAddress, params: { ...byAddress.params, pci: '0000:3b:00.1' } }]);
});

test('ip -o link VF parts (iproute2 print_vfinfo): MAC, vlan, qos, spoof checking, trust; a vlan change keeps qos', () => {
  const state = parseSriov(IXGBE, normalize(sriov, { pci: '0000:3b:00.0', numvfs: 4, vfs: { 0: { trust: true } } }));
  assert.deepEqual(state.vfSettings, {
    0: { mac: '52:54:00:aa:bb:01', vlan: 10, qos: 0, spoofchk: false, trust: true },
    1: { mac: '00:00:00:00:00:00', vlan: 0, qos: 0, spoofchk: true, trust: false },
    2: { mac: '52:54:00:aa:bb:03', vlan: 100, qos: 3, spoofchk: true, trust: false },
    3: { mac: '00:00:00:00:00:00', vlan: 0, qos: 0, spoofchk: true, trust: false },
  });
  assert.deepEqual(parseVfLines('    vf 7     link/ether 02:00:00:00:00:07 brd ff:ff:ff:ff:ff:ff, link-state auto'), { 7: { mac: '02:00:00:00:00:07', vlan: 0, qos: 0 } }, 'a driver that reports no spoofchk/trust');
  assert.deepEqual(staleSettings({ vlan: 20 }, state.vfSettings![2]), { vlan: 20 }, 'qos not asked: ip sets vlan 20 alone (the kernel resets qos)');
  assert.deepEqual(staleSettings({ qos: 5, vlan: 100 }, state.vfSettings![2]), { vlan: 100, qos: 5 });
  assert.deepEqual(staleSettings({ trust: true }, undefined), { trust: true }, 'a VF not there yet gets everything asked');
});

test('a count change resets the VFs: their settings are planned again after it', () => {
  const mark = /^@@sriov-probe\t(\S+)/.exec(IXGBE)![1]!;
  const free = IXGBE.replace(new RegExp(`^${mark}held\t.*\n`, 'gm'), '');
  const { changes } = plan(sriov, { pci: '0000:3b:00.0', numvfs: 2, vfs: { 0: { mac: '52:54:00:aa:bb:01' } } }, free);
  assert.deepEqual(keys(changes).slice(0, 2), ['/sys/bus/pci/devices/0000:3b:00.0/sriov_numvfs (runtime) 4 -> 2', 'enp59s0f0 vf 0 (runtime) null -> mac=52:54:00:aa:bb:01']);
});

test('input: exactly one of pci/interface, VF numbers below numvfs, unicast MACs; claims the rule and the sysfs path', () => {
  for (const bad of [{ numvfs: 1 }, { pci: '0000:03:00.0', interface: 'eth0', numvfs: 1 }, { pci: '3:00.0', numvfs: 1 }, { pci: '0000:03:00.0', numvfs: -1 },
    { pci: '0000:03:00.0', numvfs: 2, vfs: { 0: { mac: '52:54:00:aa:bb' } } }, { pci: '0000:03:00.0', numvfs: 2, vfs: { x: { trust: true } } }, { pci: '0000:03:00.0', numvfs: 2, vfs: { 0: {} } },
    { pci: '0000:03:00.0', numvfs: 2, vfs: { 0: { vlan: 4096 } } }, { interface: 'eth0;reboot', numvfs: 1 }]) {
    assert.equal(schemaAccepts(sriov, bad), false, JSON.stringify(bad));
  }
  assert.throws(() => normalize(sriov, { pci: '0000:03:00.0', numvfs: 2, vfs: { 2: { trust: true } } }), /sriov 0000:03:00\.0: vfs\.2: there is no VF 2 with numvfs 2/);
  assert.throws(() => normalize(sriov, { pci: '0000:03:00.0', numvfs: 2, vfs: { 0: { mac: '01:00:5e:00:00:01' } } }), /multicast address/);
  assert.throws(() => normalize(sriov, { pci: '0000:03:00.0', numvfs: 2, vfs: { 0: { qos: 2 } } }), /qos needs vlan/);
  assert.deepEqual(claimsOf('sriov', { pci: '0000:03:00.0', numvfs: 2 }), [
    { kind: 'file', path: '/etc/udev/rules.d/70-kvmconf-sriov-0000-03-00-0.rules' },
    { kind: 'sysfs', path: '/sys/bus/pci/devices/0000:03:00.0/sriov_numvfs', value: '2' },
  ]);
});

/** A fake `ip` on PATH: `set` records its arguments, `-o link show` prints FILE. */
function fakeIp(dir: string, shown: string): string {
  fs.writeFileSync(path.join(dir, 'shown'), shown);
  fs.writeFileSync(path.join(dir, 'ip'), `#!/bin/sh\ncase "$*" in *" set "*|"link set"*) echo "$*" >> ${dir}/calls ;; *) cat ${dir}/shown ;; esac\n`, { mode: 0o755 });
  return dir;
}

test('shell: ip link set, then the VF read back; a setting the driver did not take fails the step naming it', () => {
  const dir = fakeIp(fs.mkdtempSync(path.join(os.tmpdir(), 'kvmconf-sriov-')), '');
  const run = (shown: string) => {
    fs.writeFileSync(path.join(dir, 'shown'), shown);
    const script = `${REMOTE_LIB}\nset -e\n${vfCommands('enp59s0f0', 1, { mac: '52:54:00:aa:bb:02', vlan: 10, trust: true }).join('\n')}`;
    return spawnSync('sh', ['-c', script], { encoding: 'utf8', env: { ...process.env, PATH: `${dir}:${process.env.PATH}` } });
  };
  const head = '6: enp59s0f0: <UP> mtu 1500\\    link/ether a0:36:9f:11:22:33 brd ff:ff:ff:ff:ff:ff\\    vf 0     link/ether 00:00:00:00:00:00 brd ff:ff:ff:ff:ff:ff, vlan 10, trust on';
  const ok = run(`${head}\\    vf 1     link/ether 52:54:00:aa:bb:02 brd ff:ff:ff:ff:ff:ff, vlan 10, spoof checking on, link-state auto, trust on\n`);
  assert.equal(ok.status, 0, ok.stderr);
  assert.equal(fs.readFileSync(path.join(dir, 'calls'), 'utf8'), 'link set dev enp59s0f0 vf 1 mac 52:54:00:aa:bb:02 vlan 10 trust on\n');
  const vlan100 = run(`${head}\\    vf 1     link/ether 52:54:00:aa:bb:02 brd ff:ff:ff:ff:ff:ff, vlan 100, spoof checking on, link-state auto, trust on\n`);
  assert.equal(vlan100.status, 1);
  assert.match(vlan100.stderr, /enp59s0f0 vf 1: asked for vlan 10, ip link shows:/, 'vlan 100 is not vlan 10');
  const untrusted = run(`${head}\\    vf 1     link/ether 52:54:00:aa:bb:02 brd ff:ff:ff:ff:ff:ff, vlan 10, spoof checking on, link-state auto, trust off\n`);
  assert.match(untrusted.stderr, /asked for trust on/, 'vf 0 trusts, vf 1 does not');
  fs.rmSync(dir, { recursive: true });
});

/** Status XML as libvirtd writes it for a running domain: a VF as hostdev and as interface type='hostdev'. */
const STATUS_XML = `<domstatus state='running' reason='booted' pid='4242'>
  <domain type='kvm' id='3'>
    <name>web1</name>
    <devices>
      <hostdev mode='subsystem' type='pci' managed='yes'>
        <driver name='vfio'/>
        <source>
          <address domain='0x0000' bus='0x3b' slot='0x10' function='0x0'/>
        </source>
        <alias name='hostdev0'/>
        <address type='pci' domain='0x0000' bus='0x07' slot='0x00' function='0x0'/>
      </hostdev>
      <interface type='hostdev' managed='yes'>
        <mac address='52:54:00:aa:bb:03'/>
        <driver name='vfio'/>
        <source>
          <address type='pci' domain='0x0000' bus='0x3b' slot='0x10' function='0x4'/>
        </source>
        <address type='pci' domain='0x0000' bus='0x08' slot='0x00' function='0x0'/>
      </interface>
      <hostdev mode='subsystem' type='usb' managed='yes'>
        <source><vendor id='0x1234'/><product id='0xbeef'/><address bus='1' device='2'/></source>
      </hostdev>
      <disk type='file' device='disk'><source file='/var/lib/libvirt/images/web1.qcow2'/><address type='pci' domain='0x0000' bus='0x04' slot='0x00' function='0x0'/></disk>
    </devices>
  </domain>
</domstatus>
`;

test('holders: one awk over the status XML; the guest-side address, USB and disks are no holders', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvmconf-hostdev-'));
  fs.writeFileSync(path.join(dir, 'web1.xml'), STATUS_XML);
  fs.writeFileSync(path.join(dir, 'idle vm.xml'), STATUS_XML.replace(/bus='0x3b' slot='0x10' function='0x0'/, "bus='0x5e' slot='0x00' function='0x1'").replace(/<interface[\s\S]*<\/interface>/, ''));
  const program = `${HOSTDEV_AWK}\n${HOSTDEV_DOMAIN_AWK}\nFNR == 1 { hd_reset(); dom = hd_domain(FILENAME) }\n{ hd_line($0, dom, "held") }`;
  const out = spawnSync('awk', [program, path.join(dir, 'idle vm.xml'), path.join(dir, 'web1.xml')], { encoding: 'utf8' });
  assert.equal(out.stdout, 'held\tidle vm\t0000:5e:00.1\nheld\tweb1\t0000:3b:10.0\nheld\tweb1\t0000:3b:10.4\n');
  assert.match(hostdevProbe('@@x@held'), /^if \[ -d \/run\/libvirt\/qemu \]/);
  fs.rmSync(dir, { recursive: true });
});

test('shell: the apply-time guard fails when a domain started since holds a VF, and passes otherwise', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvmconf-held-'));
  const run = () => spawnSync('sh', ['-c', `${REMOTE_LIB}\nset -e\n${heldGuard('0000:3b:00.0', ['0000:3b:10.0', '0000:3b:10.2']).join('\n')}`], { encoding: 'utf8', env: { ...process.env, KC_LIBVIRT_STATUS_DIR: dir } });
  assert.equal(run().status, 0, 'no running domain');
  fs.writeFileSync(path.join(dir, 'other.xml'), STATUS_XML.replace(/bus='0x3b' slot='0x10'/g, "bus='0x5e' slot='0x00'"));
  assert.equal(run().status, 0, run().stderr);
  fs.writeFileSync(path.join(dir, 'web1.xml'), STATUS_XML);
  const held = run();
  assert.equal(held.status, 1);
  assert.match(held.stderr, /a VF of 0000:3b:00\.0 is held by a running domain now: held\tweb1\t0000:3b:10\.0/);
  fs.rmSync(dir, { recursive: true });
});
