import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { sysctl } from './index.js';
import { parseSysctlProbe, sysctlLoadOrder, sysctlPath, sysctlProbe } from '../lib/sysctl-conf.js';
import { fixture } from '../../test/helpers/paths.js';
import { plan, schemaAccepts } from '../../test/helpers/plan.js';

const settings = { 'net.ipv4.conf.all.arp_filter': 1, 'net.ipv4.ip_local_port_range': '32768 60999', 'vm.swappiness': 10 };

test('fresh Debian 12 host: runtime drift per key and the owned file to create', () => {
  const { changes, commands } = plan(sysctl, { settings }, fixture('sysctl', 'debian12-no-owned-file.txt'));
  assert.deepEqual(
    changes.map((c) => [c.target, c.scope, c.before, c.after]),
    [
      ['net.ipv4.conf.all.arp_filter', 'runtime', '0', '1'],
      ['vm.swappiness', 'runtime', '60', '10'],
      ['/etc/sysctl.d/90-kvmconf.conf', 'persist', null, 'net.ipv4.conf.all.arp_filter = 1; net.ipv4.ip_local_port_range = 32768 60999; vm.swappiness = 10'],
    ],
  );
  assert.deepEqual(commands(changes[0]!), ["kc_set_value /proc/sys/net/ipv4/conf/all/arp_filter 1"]);
  assert.match(commands(changes[2]!)[0]!, /^kc_write_file \/etc\/sysctl.d\/90-kvmconf.conf 0644 absent '# Managed by kvmconf/);
});

test('tabs in the live value do not flap; a later file that overrides ours is reported', () => {
  const { changes, warnings } = plan(sysctl, { settings }, fixture('sysctl', 'owned-file-overridden-by-later-file.txt'));
  assert.deepEqual(changes, []);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!.message, /vm.swappiness: \/etc\/sysctl.d\/99-local.conf is loaded after \/etc\/sysctl.d\/90-kvmconf.conf and sets 60/);
});

test("Ansible's name/value form is accepted and normalised", () => {
  const { params } = plan(sysctl, { name: 'vm.swappiness', value: ' 10 ' }, fixture('sysctl', 'debian12-no-owned-file.txt'));
  assert.deepEqual(params.settings, { 'vm.swappiness': '10' });
});

test('a key the kernel does not have fails the task', () => {
  const output = 'missing vm.nope\n@@owned\n@@file-absent\n';
  assert.throws(() => plan(sysctl, { name: 'vm.nope', value: 1 }, output), /vm.nope: no such sysctl on this kernel/);
});

test('hostile keys, values and files are rejected by the schema', () => {
  for (const value of ['1; rm -rf /', '$(reboot)', '`id`', "1'", '1\n2', '"1"']) {
    assert.equal(schemaAccepts(sysctl, { name: 'vm.swappiness', value }), false, value);
  }
  for (const name of ['vm.swappiness;id', '../etc/passwd', 'vm/../../etc/shadow', 'vm..x', 'vm swappiness', '$(x)', 'vm.']) {
    assert.equal(schemaAccepts(sysctl, { name, value: 1 }), false, name);
  }
  assert.equal(schemaAccepts(sysctl, { settings, file: '/etc/sysctl.d/../../etc/passwd' }), false);
  assert.equal(schemaAccepts(sysctl, { settings, file: '/etc/sysctl.d/95-mine.conf' }), true);
  assert.equal(schemaAccepts(sysctl, { settings, name: 'vm.swappiness', value: 1 }), false, 'settings and name together');
});

test('every boot-time file is listed; the parser keeps what systemd-sysctl loads, in its order', () => {
  const output = [
    'file /etc/sysctl.d/50-pid-max.conf',
    'file /etc/sysctl.d/99-local.conf',
    'file /usr/lib/sysctl.d/50-pid-max.conf',
    'file /usr/lib/sysctl.d/10-early.conf',
    'file /etc/sysctl.conf',
    'runtime vm.swappiness 10',
    'setting /etc/sysctl.d/99-local.conf vm.swappiness 60',
    // Hidden by /etc/sysctl.d/50-pid-max.conf (same name, higher priority), which sets nothing.
    'setting /usr/lib/sysctl.d/50-pid-max.conf vm.swappiness 70',
    'setting /usr/lib/sysctl.d/10-early.conf vm.swappiness 5',
    'setting /etc/sysctl.conf vm/swappiness 1',
    '@@owned',
    '@@file-absent',
    '',
  ].join('\n');
  const { warnings } = plan(sysctl, { name: 'vm.swappiness', value: 10 }, output);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!.message, /vm.swappiness: \/etc\/sysctl.conf is loaded after \/etc\/sysctl.d\/90-kvmconf.conf and sets 1/);
  assert.deepEqual(
    sysctlLoadOrder(['/etc/sysctl.d/50-a.conf', '/etc/sysctl.d/99-z.conf', '/run/sysctl.d/60-b.conf', '/usr/lib/sysctl.d/50-a.conf', '/usr/lib/sysctl.d/10-c.conf', '/etc/sysctl.conf']),
    ['/usr/lib/sysctl.d/10-c.conf', '/etc/sysctl.d/50-a.conf', '/run/sysctl.d/60-b.conf', '/etc/sysctl.d/99-z.conf', '/etc/sysctl.conf'],
  );
});

test('the probe reads multi-digit /proc/sys values whole (a one-byte read gets only the first digit)', () => {
  const keys = ['kernel.pid_max', 'vm.swappiness', 'kernel.osrelease'];
  const output = spawnSync('/bin/sh', ['-c', `(\n${sysctlProbe(keys, '/etc/sysctl.d/90-kvmconf-test-absent.conf')}\n) </dev/null`], { encoding: 'utf8' }).stdout;
  const state = parseSysctlProbe(output, keys);
  for (const key of keys) assert.equal(state.runtime[key], readFileSync(sysctlPath(key), 'utf8').trim().split(/\s+/).join(' '), key);
  assert.equal(state.file, null);
});
