/**
 * The kvmconf command as users run it: exit codes, output formats and reports,
 * against this machine (`--local`) in check mode (which never writes).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, CLI_ENV, ROOT } from '../helpers/paths.js';

const dir = mkdtempSync(join(tmpdir(), 'kvmconf-cli-'));
const kvmconf = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', cwd: ROOT, env: CLI_ENV });
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
  const run = kvmconf('apply', '--check', '--local', inSync);
  assert.equal(run.status, 0, run.stderr + run.stdout);
  assert.match(run.stdout, /localhost +ok=1 changed=0/);
});

test('exit 2 on drift in check mode, with the change line, and nothing written', () => {
  const run = kvmconf('apply', '--check', '--local', drifted);
  assert.equal(run.status, 2, run.stderr);
  assert.match(run.stdout, new RegExp(`thp enabled: ${current} -> ${other} \\(runtime\\)`));
  assert.match(readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8'), new RegExp(`\\[${current}\\]`));
  assert.doesNotMatch(run.stdout, /\x1b\[/, 'no colour when not on a terminal');
});

test('--tags that select nothing leave nothing to do', () => {
  assert.equal(kvmconf('apply', '--check', '--local', '--tags', 'network', drifted).status, 0);
  assert.equal(kvmconf('apply', '--check', '--local', '--skip-tags', 'memory', drifted).status, 0);
  assert.equal(kvmconf('apply', '--check', '--local', '--tags', 'memory', drifted).status, 2);
  const typo = kvmconf('apply', '--check', '--local', '--tags', 'memroy', drifted);
  assert.equal(typo.status, 0);
  assert.match(typo.stderr, /warning: --tags memroy: no play or task of .*drifted\.yaml has this tag; did you mean 'memory'\?/);
});

test('--format json prints the versioned report on stdout only; --report writes JUnit', () => {
  const junit = join(dir, 'report.xml');
  const run = kvmconf('apply', '--check', '--local', '--format', 'json', '--report', junit, drifted);
  assert.equal(run.status, 2, run.stderr);
  const report = JSON.parse(run.stdout);
  assert.equal(report.version, 1);
  assert.equal(report.mode, 'check');
  assert.equal(report.exitCode, 2);
  assert.equal(report.hosts[0].tasks[0].changes[0].after, other);
  const xml = readFileSync(junit, 'utf8');
  assert.match(xml, /<testcase [^>]*classname="localhost"[^>]*name="thp"/);
  assert.match(xml, /<failure message="1 change\(s\) to make" type="drift">/);
});

test('the JSON report records the run settings, each task\'s status and the host\'s kernel and boot_id', () => {
  const run = kvmconf('apply', '--check', '--local', '--format', 'json', '--tags', 'memory', '--reboot', 'pending', drifted);
  const report = JSON.parse(run.stdout);
  assert.deepEqual(report.run.inventory, ['local']);
  assert.deepEqual(report.run.tags, ['memory']);
  assert.deepEqual(report.run.plays[0], { name: 'tune', hosts: 'localhost', serial: [], maxFailPercentage: 100, reboot: 'pending', reload: 'never', guests: 'refuse', rebootTimeoutS: 600 });
  const [host] = report.hosts;
  assert.equal(host.tasks[0].status, 'changed');
  assert.equal(host.kernel, readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim());
  assert.equal(host.bootId, readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim());
  assert.ok(host.distribution);
});

test('bad input still writes every --report file, saying why', () => {
  const bad = playbook('bad-report.yaml', `- hosts: all\n  tasks:\n    - thp: {enabled: sometimes}\n`);
  const files = ['input.xml', 'input.json', 'input.md', 'input.html'].map((name) => join(dir, name));
  const run = kvmconf('apply', '--check', '--local', ...files.flatMap((file) => ['--report', file]), bad);
  assert.equal(run.status, 1);
  const [xml, json, md, html] = files.map((file) => readFileSync(file, 'utf8'));
  assert.match(xml!, /<testcase classname="[^"]*bad-report.yaml" name="input" [^>]*>\s*<error message="[^"]*thp: &apos;enabled&apos; must be one of[^"]*" type="input">/);
  assert.equal(JSON.parse(json!).exitCode, 1);
  assert.match(JSON.parse(json!).inputError, /thp: 'enabled' must be one of/);
  assert.match(md!, /### Input error/);
  assert.match(html!, /<section id="input-error">/);
});

test('--report FILE.md and FILE.html by extension, and Markdown appended to $GITHUB_STEP_SUMMARY', () => {
  const summary = join(dir, 'step-summary.md');
  writeFileSync(summary, 'earlier step\n');
  const md = join(dir, 'run.md');
  const html = join(dir, 'run.html');
  const run = spawnSync(process.execPath, [CLI, 'apply', '--check', '--local', '--report', md, '--report', html, drifted], {
    encoding: 'utf8',
    cwd: ROOT,
    env: { ...CLI_ENV, GITHUB_STEP_SUMMARY: summary },
  });
  assert.equal(run.status, 2, run.stderr);
  assert.match(readFileSync(md, 'utf8'), new RegExp(`- thp enabled: ${current} -> ${other} \\(runtime\\): 1 of 1 hosts`));
  assert.match(readFileSync(html, 'utf8'), /^<!DOCTYPE html>/);
  const appended = readFileSync(summary, 'utf8');
  assert.ok(appended.startsWith('earlier step\n## kvmconf check: '), appended);
  assert.equal(kvmconf('apply', '--check', '--local', '--format', 'markdown', drifted).stdout, readFileSync(md, 'utf8'));
});

test('bad input exits 1 naming file, line and field, before any host is contacted', () => {
  const bad = playbook('bad.yaml', `- hosts: all\n  tasks:\n    - thp: {enabled: sometimes}\n`);
  const run = kvmconf('apply', '--check', '--local', bad);
  assert.equal(run.status, 1);
  assert.match(run.stderr, /bad.yaml:3:13 \(\$\[0\].tasks\[0\].thp.enabled\): thp: 'enabled' must be one of/);
  assert.equal(run.stdout, '');
});

test('--limit naming no host is an error with a suggestion', () => {
  const run = kvmconf('apply', '--check', '--local', '--limit', 'localhots', inSync);
  assert.equal(run.status, 1);
  assert.match(run.stderr, /localhots/);
  assert.match(run.stderr, /did you mean 'localhost'\?/);
});

test('validate checks without connecting; schema and modules list the modules', () => {
  const run = kvmconf('validate', '--local', drifted);
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

test('without an inventory nothing is targeted: apply, --check, validate and facts refuse, naming -i and --local', () => {
  for (const args of [['apply', inSync], ['apply', '--check', inSync], ['validate', inSync], ['facts']]) {
    const run = kvmconf(...args);
    assert.equal(run.status, 1, args.join(' '));
    assert.match(run.stderr, /kvmconf: no inventory: nothing is targeted by default\n.*-i INVENTORY.*--local/, args.join(' '));
    assert.equal(run.stdout, '');
  }
  const both = kvmconf('apply', '--check', '--local', '-i', join(ROOT, 'inventory.example.yaml'), inSync);
  assert.equal(both.status, 1);
  assert.match(both.stderr, /--local and -i\/--inventory exclude each other/);
});

test('host key checking: an inventory that weakens it is warned about, and never beats --host-key-checking', () => {
  const inventory = playbook('weak-keys.yaml', 'all:\n  vars: { ansible_ssh_common_args: "-o StrictHostKeyChecking=no" }\n  hosts: { hv1: {} }\n');
  const plain = kvmconf('validate', inSync, '-i', inventory);
  assert.equal(plain.status, 0, plain.stderr);
  assert.match(plain.stderr, /warning: host 'hv1': host key checking weakened to 'off' by the inventory \(StrictHostKeyChecking in ansible_ssh_common_args\); a changed host key is still refused/);
  const strict = kvmconf('validate', inSync, '-i', inventory, '--host-key-checking', 'strict');
  assert.match(strict.stderr, /warning: host 'hv1': StrictHostKeyChecking in ansible_ssh_common_args ignored: --host-key-checking strict was given/);
});

test('a connection value that only breaks when rendered is an input error before any host is contacted', () => {
  const inventory = playbook('bad-port.yaml', 'all:\n  vars: { p: ssh }\n  hosts: { hv1: { ansible_port: "{{ p }}" }, hv2: {} }\n');
  for (const args of [['validate', inSync], ['apply', '--check', inSync]]) {
    const run = kvmconf(...args, '-i', inventory);
    assert.equal(run.status, 1, run.stderr);
    assert.match(run.stderr, /host 'hv1': ansible_port must be a port number 1\.\.65535/);
    assert.equal(run.stdout, '', 'no report: nothing ran');
  }
});

test('ansible.cfg: its inventory is used (and named) without -i; host_key_checking = False only with a warning, never over the flag', () => {
  const project = join(dir, 'project');
  mkdirSync(project, { recursive: true });
  chmodSync(project, 0o755);
  writeFileSync(join(project, 'ansible.cfg'), '[defaults]\ninventory = hosts\nhost_key_checking = False\nremote_user = ops\n');
  writeFileSync(join(project, 'hosts'), '[hv]\nhv[1:2]\n');
  writeFileSync(join(project, 'other.ini'), '[hv]\nhv9\n');
  const run = (env: Record<string, string>, ...args: string[]) =>
    spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', cwd: project, env: { ...CLI_ENV, HOME: project, ...env } });
  const plain = run({}, 'validate', inSync);
  assert.equal(plain.status, 0, plain.stderr);
  assert.match(plain.stdout, /valid \(1 plays, 1 tasks, 2 hosts\)/);
  assert.match(plain.stderr, new RegExp(`kvmconf: inventory ${join(project, 'hosts')} \\(from ${join(project, 'ansible.cfg')}:2\\)`));
  assert.match(plain.stderr, /warning: host key checking is off: host_key_checking = False \(.*ansible\.cfg:3\); unknown host keys are accepted, a changed host key is still refused/);
  const strict = run({}, 'validate', inSync, '--host-key-checking', 'strict');
  assert.doesNotMatch(strict.stderr, /host key checking is off/);
  const env = run({ ANSIBLE_INVENTORY: 'other.ini' }, 'validate', inSync);
  assert.match(env.stdout, /1 hosts/);
  assert.match(env.stderr, /\(from ANSIBLE_INVENTORY\)/);
  assert.match(run({}, 'validate', inSync, '-i', 'other.ini').stdout, /1 hosts/, '-i wins over both');
});

test('-e beats play vars; | default(...) gives way to inventory and -e', () => {
  const played = playbook('play-vars.yaml', `- hosts: all\n  vars: { mode: ${other} }\n  tasks:\n    - thp: {enabled: "{{ mode }}", persist: false}\n`);
  assert.equal(kvmconf('apply', '--check', '--local', played).status, 2);
  assert.equal(kvmconf('apply', '--check', '--local', played, '-e', `mode=${current}`).status, 0);
  const defaulted = playbook('defaulted.yaml', `- hosts: all\n  tasks:\n    - thp: {enabled: "{{ mode | default('${current}') }}", persist: false}\n`);
  assert.equal(kvmconf('apply', '--check', '--local', defaulted).status, 0);
  assert.equal(kvmconf('apply', '--check', '--local', defaulted, '-e', `{"mode": "${other}"}`).status, 2);
  const inventory = playbook('mode-inventory.yaml', `all:\n  vars: { mode: ${other} }\n  hosts: { localhost: { ansible_connection: local } }\n`);
  assert.equal(kvmconf('apply', '--check', '-i', inventory, defaulted).status, 2);
});

test('--list-hosts and --list-tasks print the plan in ansible-playbook\'s layout, after --limit and --tags, contacting nothing', () => {
  const inventory = playbook('list-inventory.ini', '[hv]\nhv[1:3]\n');
  const site = playbook('list.yaml', '- name: tune\n  hosts: hv\n  tags: [host]\n  tasks:\n    - name: thp off\n      thp: {enabled: never}\n      tags: [memory]\n    - numa_balancing: {enabled: false}\n');
  const run = kvmconf('apply', site, '-i', inventory, '--list-hosts', '--list-tasks', '--limit', '!hv2', '--tags', 'memory');
  assert.equal(run.status, 0, run.stderr);
  assert.equal(run.stdout, `\nplaybook: ${site}\n\n  play #1 (hv): tune\tTAGS: [host]\n    pattern: ['hv']\n    hosts (2):\n      hv1\n      hv3\n    tasks:\n      thp off\tTAGS: [host, memory]\n`);
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

test('an unwritable --report path is refused before any host is contacted: exit 1, nothing done', () => {
  const inventory = playbook('down.yaml', 'all:\n  hosts:\n    down: { ansible_host: 127.0.0.1, ansible_port: 1 }\n');
  for (const [report, code] of [[join(dir, 'no-such-dir', 'r.json'), 'ENOENT'], [dir, 'EISDIR']] as const) {
    const run = kvmconf('apply', '--report', report, drifted, '-i', inventory);
    assert.equal(run.status, 1, run.stderr);
    assert.match(run.stderr, new RegExp(`^kvmconf: --report ${report}: cannot write there: ${code}\n    nothing was done`));
    assert.doesNotMatch(run.stderr, /unreachable|down/, 'no host was contacted');
    assert.equal(run.stdout, '');
  }
});

test('a report that cannot be written at the end is an error naming it; stdout keeps the report and its own exit code', () => {
  const run = kvmconf('apply', '--check', '--local', '--format', 'json', '--report', '/dev/full', drifted);
  assert.equal(run.status, 1, 'a lost report is an error, not drift');
  assert.match(run.stderr, /kvmconf: error: cannot write report \/dev\/full: ENOSPC \(the run's own exit code is 2\)/);
  assert.equal(JSON.parse(run.stdout).exitCode, 2, 'the report on stdout is complete');
});

test('hostile YAML through the CLI: an alias bomb and JavaScript internals as variables are input errors with file:line, a BOM is read past', () => {
  let bomb = '- hosts: all\n  vars:\n    l0: &l0 [x, x, x, x, x, x, x, x, x]\n';
  for (let i = 1; i < 10; i++) bomb += `    l${i}: &l${i} [${Array(9).fill(`*l${i - 1}`).join(', ')}]\n`;
  const bombFile = playbook('bomb.yaml', `${bomb}  tasks:\n    - thp: {enabled: never, persist: false}\n`);
  const exploded = kvmconf('validate', '--local', bombFile);
  assert.equal(exploded.status, 1);
  assert.match(exploded.stderr, new RegExp(`^kvmconf: ${bombFile}:4:\\d+: YAML aliases expand too far`));
  assert.doesNotMatch(exploded.stderr, /internal error|ReferenceError|    at /);
  for (const name of ['__proto__', 'constructor', 'toString']) {
    const run = kvmconf('validate', '--local', playbook(`${name}.yaml`, `- hosts: all\n  tasks:\n    - sysctl: {name: vm.swappiness, value: "{{ ${name} }}"}\n`));
    assert.equal(run.status, 1, name);
    assert.match(run.stderr, new RegExp(`:3:\\d+ \\(\\$\\[0\\]\\.tasks\\[0\\]\\.sysctl\\): undefined variable '${name}'`));
  }
  const bom = kvmconf('validate', '--local', playbook('bom.yaml', `\uFEFF- hosts: all\n  tasks:\n    - thp: {enabled: never, persist: false}\n`));
  assert.equal(bom.status, 0, bom.stderr);
});

test('saved plans: --check --out writes one, show renders it, apply PLAN runs it; another version, an old plan and options it fixes are refused', () => {
  const planFile = join(dir, 'reviewed.plan');
  assert.equal(kvmconf('apply', '--local', '--out', planFile, inSync).status, 1, '--out needs --check');
  const check = kvmconf('apply', '--check', '--local', '--out', planFile, '-e', 'db_password=hunter2', inSync);
  assert.equal(check.status, 0, check.stderr);
  assert.match(check.stderr, /plan written to .*reviewed\.plan; apply it with: kvmconf apply .*reviewed\.plan/);
  const plan = JSON.parse(readFileSync(planFile, 'utf8'));
  assert.deepEqual([plan.format, plan.hosts[0].host, plan.extraVarsOmitted], ['kvmconf-plan', 'localhost', ['db_password']]);
  assert.doesNotMatch(readFileSync(planFile, 'utf8'), /hunter2/);
  assert.match(kvmconf('show', planFile).stdout, /^plan made .* by kvmconf .*\nplaybook: .*in-sync\.yaml/);
  assert.match(kvmconf('show', planFile, '--format', 'markdown').stdout, /^# kvmconf plan: 0 of 1 hosts change/);
  assert.deepEqual(JSON.parse(kvmconf('show', planFile, '--format', 'json').stdout), plan);

  const missing = kvmconf('apply', planFile);
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /left out the secret variables db_password: give them again with -e/);
  const apply = kvmconf('apply', planFile, '-e', 'db_password=hunter2');
  assert.equal(apply.status, 0, apply.stderr);
  assert.match(apply.stdout, /localhost +ok=1 changed=0.*\n.*\(apply mode\)/);
  assert.match(kvmconf('apply', planFile, '--local', '--limit', 'x').stderr, /is a plan: .*do not give --local, --limit/);
  assert.match(kvmconf('apply', planFile, '--plan-max-age', '0').stderr, /older than --plan-max-age \(0s\)/);
  writeFileSync(planFile, readFileSync(planFile, 'utf8').replace(/"toolVersion": "[^"]*"/, '"toolVersion": "0.0.1"'));
  const other = kvmconf('apply', planFile, '-e', 'db_password=hunter2');
  assert.equal(other.status, 1);
  assert.match(other.stderr, /made by kvmconf 0\.0\.1, this is kvmconf .*: a plan only runs with the version that made it/);
});

test('report show renders a saved JSON report in any format; report diff says what drifted since', () => {
  const old = join(dir, 'old.json');
  const now = join(dir, 'now.json');
  assert.equal(kvmconf('apply', '--check', '--local', '--report', old, inSync).status, 0);
  assert.equal(kvmconf('apply', '--check', '--local', '--report', now, drifted).status, 2);
  const direct = kvmconf('apply', '--check', '--local', '--format', 'html', drifted).stdout;
  const shown = kvmconf('report', 'show', now, '--format', 'html');
  assert.equal(shown.status, 0, shown.stderr);
  // The same page, but for the timestamps of the two runs.
  assert.equal(shown.stdout.replace(/started [^;<]+/, ''), direct.replace(/started [^;<]+/, ''));
  assert.match(kvmconf('report', 'show', now, '--format', 'md').stdout, /^## kvmconf check: /);
  assert.match(kvmconf('report', 'show', now).stdout, new RegExp(`thp enabled: ${current} -> ${other}`));
  const diff = kvmconf('report', 'diff', old, now);
  assert.equal(diff.status, 2);
  assert.match(diff.stdout, new RegExp(`^\\+ localhost \\(tune\\): thp enabled: ${current} -> ${other} \\(runtime\\)$`, 'm'));
  assert.equal(kvmconf('report', 'diff', now, old).status, 0);
  const bad = kvmconf('report', 'show', now, '--format', 'pdf');
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /--format pdf: one of text, json, junit, md, markdown, html/);
});

test('facts --format text prints tables, not JSON', () => {
  const run = kvmconf('facts', '--local', '--format', 'text');
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, /^localhost: \S+ .*kernel .*boot_id [0-9a-f-]{36}$/m);
  assert.match(run.stdout, /^ {4}node +cpus +siblings +memory +free/m);
  assert.doesNotMatch(run.stdout, /[{}]/);
  assert.ok(run.stdout.split('\n').length < 100, `${run.stdout.split('\n').length} lines`);
});
