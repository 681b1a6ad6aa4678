/**
 * The kvmconf command as users run it: exit codes, output formats and reports,
 * against this machine over `connection: local` in check mode (which never writes).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, ROOT } from '../helpers/paths.js';

const dir = mkdtempSync(join(tmpdir(), 'kvmconf-cli-'));
const kvmconf = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', cwd: ROOT, env: { ...process.env, CI: 'true' } });
const current = readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8').match(/\[(\w+)\]/)![1]!;
const other = current === 'never' ? 'madvise' : 'never';

function playbook(name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

const inSync = playbook('in-sync.yaml', `- hosts: all\n  tasks:\n    - thp: {enabled: ${current}, persist: false}\n`);
const drifted = playbook('drifted.yaml', `- name: tune\n  hosts: localhost\n  tasks:\n    - thp: {enabled: ${other}, persist: false}\n      tags: [memory]\n`);

test('exit 0 when the host is in the desired state', () => {
  const run = kvmconf('apply', '--check', inSync);
  assert.equal(run.status, 0, run.stderr + run.stdout);
  assert.match(run.stdout, /localhost +ok=1 changed=0/);
});

test('exit 2 on drift in check mode, with the change line, and nothing written', () => {
  const run = kvmconf('apply', '--check', drifted);
  assert.equal(run.status, 2, run.stderr);
  assert.match(run.stdout, new RegExp(`thp enabled: ${current} -> ${other} \\(runtime\\)`));
  assert.match(readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8'), new RegExp(`\\[${current}\\]`));
  assert.doesNotMatch(run.stdout, /\x1b\[/, 'no colour when not on a terminal');
});

test('--tags that select nothing leave nothing to do', () => {
  assert.equal(kvmconf('apply', '--check', '--tags', 'network', drifted).status, 0);
  assert.equal(kvmconf('apply', '--check', '--skip-tags', 'memory', drifted).status, 0);
  assert.equal(kvmconf('apply', '--check', '--tags', 'memory', drifted).status, 2);
});

test('--format json prints the versioned report on stdout only; --report writes JUnit', () => {
  const junit = join(dir, 'report.xml');
  const run = kvmconf('apply', '--check', '--format', 'json', '--report', junit, drifted);
  assert.equal(run.status, 2, run.stderr);
  const report = JSON.parse(run.stdout);
  assert.equal(report.version, 1);
  assert.equal(report.mode, 'check');
  assert.equal(report.exitCode, 2);
  assert.equal(report.hosts[0].tasks[0].changes[0].after, other);
  const xml = readFileSync(junit, 'utf8');
  assert.match(xml, /<testcase [^>]*classname="localhost"[^>]*name="thp"/);
  assert.match(xml, /<failure /);
});

test('bad input exits 1 naming file, line and field, before any host is contacted', () => {
  const bad = playbook('bad.yaml', `- hosts: all\n  tasks:\n    - thp: {enabled: sometimes}\n`);
  const run = kvmconf('apply', '--check', bad);
  assert.equal(run.status, 1);
  assert.match(run.stderr, /bad.yaml:3:13 \(\$\[0\].tasks\[0\].thp.enabled\): thp: 'enabled' must be one of/);
  assert.equal(run.stdout, '');
});

test('--limit naming no host is an error with a suggestion', () => {
  const run = kvmconf('apply', '--check', '--limit', 'localhots', inSync);
  assert.equal(run.status, 1);
  assert.match(run.stderr, /localhots/);
  assert.match(run.stderr, /did you mean 'localhost'\?/);
});

test('validate checks without connecting; schema and modules list the modules', () => {
  const run = kvmconf('validate', drifted);
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, /valid \(1 plays, 1 tasks, 1 hosts\)/);
  const schema = JSON.parse(kvmconf('schema').stdout);
  assert.ok(schema.items.properties.tasks.items.properties.sysctl);
  assert.match(kvmconf('modules').stdout, /^sysctl +kernel parameters/m);
});

test('the shipped playbooks validate against the example inventory', () => {
  for (const name of ['virtual-host.yaml', 'site.yaml', 'guests.yaml']) {
    const run = kvmconf('validate', join(ROOT, 'playbooks', name), '-i', join(ROOT, 'inventory.example.yaml'));
    assert.equal(run.status, 0, `${name}: ${run.stderr}`);
    assert.equal(run.stderr, '', `${name}: no warnings`);
  }
});

test('validate: a guest asking more channels than its hypervisor gives the domain queues is an error with its location', () => {
  const inventory = playbook('linked.yaml', 'all:\n  children:\n    hv: { hosts: { hv1: {} } }\n    guests: { hosts: { web1: { kvmconf_hypervisor: hv1 } } }\n');
  const guests = (combined: number) =>
    playbook(`linked-${combined}.yaml`, `- hosts: hv\n  tasks:\n    - libvirt_domain: { name: web1, interfaces: [{ match: { index: 0 }, queues: 4 }] }\n- hosts: guests\n  tasks:\n    - ethtool: { interface: eth0, combined: ${combined} }\n`);
  const error = kvmconf('validate', guests(8), '-i', inventory);
  assert.equal(error.status, 1);
  assert.match(error.stderr, /linked-8\.yaml:6:\d+.*on host web1: web1 eth0 \(domain web1\): 8 combined channels asked but the hypervisor gives the NIC 4 queues/);
  const warning = kvmconf('validate', guests(2), '-i', inventory);
  assert.equal(warning.status, 0, warning.stderr);
  assert.match(warning.stderr, /warning: web1: task 'ethtool': web1 eth0 \(domain web1\): 2 combined channels for 4 hypervisor queues/);
});

test('unknown options and missing arguments exit 1', () => {
  assert.equal(kvmconf('apply', '--chek', inSync).status, 1);
  assert.equal(kvmconf('apply').status, 1);
});

test('check mode is never cut short by serial and max_fail_percentage; apply stops there and lists the hosts to resume', () => {
  const inventory = playbook('one-down.yaml', 'all:\n  hosts:\n    down: { ansible_host: 127.0.0.1, ansible_port: 1 }\n    localhost: { ansible_connection: local }\n');
  const rolling = playbook('rolling.yaml', `- hosts: all\n  serial: 1\n  max_fail_percentage: 0\n  reboot: pending\n  tasks:\n    - thp: {enabled: ${current}, persist: false}\n`);
  const check = kvmconf('apply', '--check', '--format', 'json', rolling, '-i', inventory);
  assert.equal(check.status, 1, check.stderr);
  assert.deepEqual(JSON.parse(check.stdout).hosts.map((h: { host: string; status: string }) => `${h.host} ${h.status}`), ['down unreachable', 'localhost ok']);

  const retry = join(dir, 'rolling.retry');
  const run = kvmconf('apply', '--format', 'json', '--retry-file', retry, rolling, '-i', inventory);
  assert.equal(run.status, 1, run.stderr);
  const report = JSON.parse(run.stdout);
  assert.deepEqual(report.hosts.map((h: { host: string; status: string }) => `${h.host} ${h.status}`), ['down unreachable', 'localhost skipped']);
  assert.equal(report.retryFile, retry);
  assert.match(run.stderr, new RegExp(`2 host\\(s\\) did not finish; resume with --limit @${retry}`));
  assert.equal(readFileSync(retry, 'utf8'), '# hosts that did not finish; resume with --limit @FILE\ndown\nlocalhost\n');
  const resumed = kvmconf('apply', '--check', '--format', 'json', '--limit', `@${retry},!down`, rolling, '-i', inventory);
  assert.deepEqual(JSON.parse(resumed.stdout).hosts.map((h: { host: string }) => h.host), ['localhost']);
});
