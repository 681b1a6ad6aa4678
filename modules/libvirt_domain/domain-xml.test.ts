import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ensurePath, findPath, parseXml, reformat, removeElement, serializeXml, toKiB, xpathOf, type Step } from './domain-xml.js';
import { fixture as readFixture } from '../../test/helpers/paths.js';

const fixture = (name: string) => readFixture('libvirt_domain', name);

/** Lines of b that are not in a (as a multiset), to see exactly what an edit touched. */
function addedLines(a: string, b: string): string[] {
  const left = a.split('\n');
  return b.split('\n').filter((line) => {
    const i = left.indexOf(line);
    if (i < 0) return true;
    left.splice(i, 1);
    return false;
  });
}

test('parse + serialise keeps every element, attribute and the whitespace of real libvirt XML', () => {
  const xml = fixture('kc-probe.live.xml');
  const again = reformat(xml);
  assert.equal(reformat(again), again, 'stable');
  assert.equal(again.split('\n').length, xml.trimEnd().split('\n').length);
  assert.match(again, /<seclabel type="dynamic" model="dac" relabel="yes">/);
});

test('a new cputune lands after vcpu, indented like its siblings, nothing else moves', () => {
  const xml = fixture('kc-probe.inactive.xml');
  const root = parseXml(xml);
  ensurePath(root, [{ name: 'cputune' }, { name: 'vcpupin', attrs: { vcpu: '0' } }]).setAttribute('cpuset', '1');
  const out = serializeXml(root);
  assert.deepEqual(addedLines(reformat(xml), out), ['  <cputune>', '    <vcpupin vcpu="0" cpuset="1"/>', '  </cputune>']);
  assert.match(out, /<vcpu placement="static">2<\/vcpu>\n {2}<cputune>/);
  assert.deepEqual(addedLines(out, reformat(xml)), []);
});

test('children are inserted in libvirt order inside an existing parent', () => {
  const root = parseXml(`<domain>\n  <cputune>\n    <vcpupin vcpu='0' cpuset='0'/>\n  </cputune>\n</domain>`);
  ensurePath(root, [{ name: 'cputune' }, { name: 'shares' }]).appendChild(root.ownerDocument!.createTextNode('2048'));
  ensurePath(root, [{ name: 'cputune' }, { name: 'emulatorpin' }]).setAttribute('cpuset', '1');
  assert.equal(serializeXml(root), '<domain>\n  <cputune>\n    <shares>2048</shares>\n    <vcpupin vcpu="0" cpuset="0"/>\n    <emulatorpin cpuset="1"/>\n  </cputune>\n</domain>');
});

test('removing an element takes its indentation; an emptied parent closes up', () => {
  const root = parseXml(`<domain>\n  <memoryBacking>\n    <locked/>\n  </memoryBacking>\n  <vcpu>2</vcpu>\n</domain>`);
  removeElement(findPath(root, [{ name: 'memoryBacking' }, { name: 'locked' }])!);
  assert.equal(serializeXml(root), '<domain>\n  <memoryBacking/>\n  <vcpu>2</vcpu>\n</domain>');
});

test('paths select by attribute, by a child attribute (case-insensitive MAC), by a child text and by index', () => {
  const root = parseXml(fixture('kc-tuned.inactive.xml'));
  const nic: Step[] = [{ name: 'devices' }, { name: 'interface', child: { name: 'mac', attr: 'address', value: '52:54:00:12:34:56'.toUpperCase() } }];
  assert.equal(findPath(root, [...nic, { name: 'driver' }])?.getAttribute('queues'), '2');
  assert.equal(findPath(root, [{ name: 'devices' }, { name: 'controller', index: 1 }])?.getAttribute('type'), 'usb');
  assert.equal(findPath(root, [{ name: 'devices' }, { name: 'controller', attrs: { type: 'scsi', model: 'virtio-scsi' } }, { name: 'driver' }])?.getAttribute('queues'), '2');
  assert.throws(() => ensurePath(root, [{ name: 'devices' }, { name: 'interface', child: { name: 'mac', attr: 'address', value: '00:00:00:00:00:01' } }]), /no <interface> matching mac address=00:00:00:00:00:01/);
  const device = ensurePath(root, [{ name: 'blkiotune' }, { name: 'device', child: { name: 'path', value: '/dev/sda' } }, { name: 'weight' }]);
  assert.equal(device.parentNode?.nodeName, 'device');
  assert.match(serializeXml(root), /<device>\n\s+<path>\/dev\/sda<\/path>\n\s+<weight\/>\n\s+<\/device>/);
});

test('xpathOf builds what virsh dumpxml --xpath reads', () => {
  assert.equal(xpathOf([{ name: 'cputune' }, { name: 'vcpupin', attrs: { vcpu: '3' } }], 'cpuset'), "/domain/cputune/vcpupin[@vcpu='3']/@cpuset");
  assert.equal(xpathOf([{ name: 'devices' }, { name: 'interface', index: 0 }, { name: 'driver' }], 'queues'), '/domain/devices/interface[1]/driver/@queues');
  assert.equal(xpathOf([{ name: 'blkiotune' }, { name: 'device', child: { name: 'path', value: '/dev/sda' } }, { name: 'weight' }]), "/domain/blkiotune/device[path='/dev/sda']/weight/text()");
});

test('toKiB converts libvirt scaled integers', () => {
  assert.equal(toKiB('64', 'MiB'), 65536);
  assert.equal(toKiB('1', 'G'), 1048576);
  assert.equal(toKiB('2048', null), 2048);
  assert.equal(toKiB('1048576', 'b'), 1024);
  assert.equal(toKiB('1', 'GB'), 976563);
  assert.throws(() => toKiB('1', 'parsecs'), /unknown libvirt memory unit/);
});

test('malformed XML is an error, not a silent empty document', () => {
  assert.throws(() => parseXml('<domain><vcpu>2</domain>'), /invalid domain XML/);
});
