import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadPlaybook, playbookSchema } from '../../src/config/playbook.js';
import { InputErrors, InputError } from '../../src/errors.js';
import { MODULES, MODULES_BY_NAME } from '../../modules/index.js';
import { prepareTasks, selectedByTags } from '../../src/engine/prepare.js';
import { render } from '../../src/config/template.js';
import { ajv } from '../../src/config/schema.js';

function write(text: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'kvmconf-pb-')), 'site.yaml');
  writeFileSync(file, text);
  return file;
}

function errorsOf(text: string): string[] {
  const file = write(text);
  try {
    loadPlaybook(file, MODULES_BY_NAME);
  } catch (error) {
    const list = error instanceof InputErrors ? error.errors : [error as InputError];
    return list.map((e) => `${e.message.replace(file, 'site.yaml')}${e.hint ? ` | ${e.hint}` : ''}`);
  }
  return [];
}

test('a valid playbook loads with defaults', () => {
  const book = loadPlaybook(write('- hosts: hypervisors\n  become: true\n  serial: 25%\n  tasks:\n    - thp: {enabled: never}\n      tags: memory\n'), MODULES_BY_NAME);
  const play = book.plays[0]!;
  assert.equal(play.hosts, 'hypervisors');
  assert.deepEqual(play.serial, ['25%']);
  assert.equal(play.maxFailPercentage, 100);
  assert.deepEqual(play.tasks.map((t) => [t.name, t.module, t.tags]), [['thp', 'thp', ['memory']]]);
  assert.equal(play.tasks[0]!.where.line, 5);
});

test("Ansible's habits: YAML 1.1 booleans, FQCN module names, and an answer for each Ansible-only keyword", () => {
  const book = loadPlaybook(write('- hosts: all\n  become: yes\n  tasks:\n    - numa_balancing: {enabled: no}\n'), MODULES_BY_NAME);
  assert.equal(book.plays[0]!.become, true);
  assert.deepEqual(book.plays[0]!.tasks[0]!.params, { enabled: false });
  const errors = errorsOf(
    '- hosts: all\n  gather_facts: no\n  handlers: []\n  tasks:\n' +
      '    - ansible.posix.sysctl: {name: vm.swappiness, value: 10}\n' +
      '    - sysctl: {name: vm.swappiness, value: 10}\n      when: big\n' +
      '    - sysctl: {name: vm.swappiness, value: 10}\n      loop: [1]\n      register: out\n      notify: reboot\n',
  );
  assert.deepEqual(errors, [
    "site.yaml:2:3 ($[0].gather_facts): 'gather_facts' is Ansible's, not kvmconf's | kvmconf always gathers what its modules need, in one round trip per host: remove 'gather_facts'",
    "site.yaml:3:3 ($[0].handlers): 'handlers' is Ansible's, not kvmconf's | kvmconf has no handlers: changes that need a reboot, module reload or guest restart are reported as pending (exit 3), or finished by the play's 'reboot: pending' and 'reload: pending'; libvirt_domain restarts guests with 'restart: true'",
    "site.yaml:5:7 ($[0].tasks[0][\"ansible.posix.sysctl\"]): unknown module 'ansible.posix.sysctl' | did you mean kvmconf's 'sysctl'? (kvmconf modules have short names)",
    "site.yaml:7:7 ($[0].tasks[1].when): 'when' is Ansible's, not kvmconf's | kvmconf plays are declarative: select hosts with inventory groups (hosts: or --limit) and give per-host values with group or host vars, instead of 'when'",
    "site.yaml:9:7 ($[0].tasks[2].loop): 'loop' is Ansible's, not kvmconf's | kvmconf plays are declarative: list every key in one task instead of a 'loop' (sysctl: a 'settings:' map; hugepages: 'pools:'; io_scheduler: a device pattern)",
    "site.yaml:10:7 ($[0].tasks[2].register): 'register' is Ansible's, not kvmconf's | kvmconf has no task results to register: every task reports its changes in the run report (--format json)",
    "site.yaml:11:7 ($[0].tasks[2].notify): 'notify' is Ansible's, not kvmconf's | kvmconf has no handlers: a change that needs a reboot, module reload or guest restart is reported as pending (exit 3), or finished by the play's 'reboot: pending' and 'reload: pending'; libvirt_domain restarts guests with 'restart: true'",
  ]);
  // Ansible's module loading and blacklisting is kernel_module's job.
  for (const name of ['community.general.modprobe', 'community.general.kernel_blacklist']) {
    const [error] = errorsOf(`- hosts: all\n  tasks:\n    - ${name}: {name: kvm_intel}\n`);
    assert.match(error!, new RegExp(`unknown module '${name.replace(/\./g, '\\.')}' \\| did you mean kvmconf's 'kernel_module'\\?`));
  }
});

test('one sysctl task per key (the usual Ansible shape) is refused with settings: and file: named', () => {
  const book = loadPlaybook(write('- hosts: all\n  tasks:\n    - sysctl: {name: vm.swappiness, value: 10}\n    - sysctl: {name: vm.dirty_ratio, value: 5}\n'), MODULES_BY_NAME);
  assert.throws(() => prepareTasks(book.plays[0]!, MODULES_BY_NAME, {}, 'hv1', {}), (error: unknown) => {
    assert.ok(error instanceof InputError);
    assert.match(error.hint ?? '', /one 'settings:' map, not one task per key\), or give one task another 'file:'/);
    return true;
  });
});

test('unknown module names the line, column and a suggestion', () => {
  assert.deepEqual(errorsOf('- hosts: all\n  tasks:\n    - sysctll: {name: vm.swappiness, value: 10}\n'), [
    "site.yaml:3:7 ($[0].tasks[0].sysctll): unknown module or task key 'sysctll' | did you mean 'sysctl'?",
  ]);
});

test('unknown play key and bad module value are both reported, each with its position', () => {
  assert.deepEqual(errorsOf('- hosts: all\n  becom: true\n  tasks:\n    - thp:\n        enabled: sometimes\n'), [
    "site.yaml:2:3 ($[0].becom): unknown key 'becom' | did you mean 'become'?",
    'site.yaml:5:9 ($[0].tasks[0].thp.enabled): thp: \'enabled\' must be one of "always", "madvise", "never"',
  ]);
});

test('unknown module parameter suggests the right one', () => {
  assert.deepEqual(errorsOf('- hosts: all\n  tasks:\n    - thp: {enable: never}\n'), [
    "site.yaml:3:13 ($[0].tasks[0].thp.enable): thp: unknown key 'enable' | did you mean 'enabled'?",
  ]);
});

test('a module missing every alternative key says which it needs', () => {
  assert.deepEqual(errorsOf('- hosts: all\n  tasks:\n    - thp: {persist: true}\n'), ["site.yaml:3:7 ($[0].tasks[0].thp): thp: needs one of 'enabled', 'defrag'"]);
});

test('YAML syntax errors name the line', () => {
  const [message] = errorsOf('- hosts: all\n  tasks:\n    - thp: {enabled: never\n');
  assert.match(message!, /^site.yaml:\d+:\d+: invalid YAML/);
});

test('a task naming two modules is refused', () => {
  assert.deepEqual(errorsOf('- hosts: all\n  tasks:\n    - thp: {enabled: never}\n      sysctl: {name: vm.swappiness, value: 1}\n'), [
    'site.yaml:3:7 ($[0].tasks[0]): a task names one module, this one names thp, sysctl',
  ]);
});

test('templates render per host and are validated after rendering', () => {
  const book = loadPlaybook(write('- hosts: all\n  vars: {swap: 10}\n  tasks:\n    - sysctl: {name: vm.swappiness, value: "{{ swap }}"}\n    - sysctl: {name: vm.dirty_ratio, value: "{{ ratio }}", file: /etc/sysctl.d/91-x.conf}\n'), MODULES_BY_NAME);
  const play = book.plays[0]!;
  assert.throws(() => prepareTasks(play, MODULES_BY_NAME, { swap: 10 }, 'hv1', {}), /undefined variable 'ratio'/);
  const tasks = prepareTasks(play, MODULES_BY_NAME, { swap: 10, ratio: 5 }, 'hv1', {});
  assert.deepEqual((tasks[0]!.params as { settings: object }).settings, { 'vm.swappiness': '10' });
  assert.throws(() => prepareTasks(play, MODULES_BY_NAME, { swap: '1; reboot', ratio: 5 }, 'hv1', {}), /on host hv1, rendered parameters are invalid/);
});

test('a task renders once per distinct value of the variables its templates read, whatever else differs', () => {
  const play = loadPlaybook(write('- hosts: all\n  tasks:\n    - sysctl: {name: vm.swappiness, value: "{{ swap | default(fallback) }}"}\n    - thp: {enabled: never}\n'), MODULES_BY_NAME).plays[0]!;
  const cache = new Map();
  const swappiness = (vars: Record<string, unknown>) => (prepareTasks(play, MODULES_BY_NAME, vars, 'hv1', {}, cache)[0]!.params as { settings: object }).settings;
  assert.deepEqual(swappiness({ swap: 10, fallback: 1, rack: 'a' }), { 'vm.swappiness': '10' });
  const shared = prepareTasks(play, MODULES_BY_NAME, { swap: 10, fallback: 1, rack: 'b' }, 'hv2', {}, cache);
  assert.equal(prepareTasks(play, MODULES_BY_NAME, { swap: 10, fallback: 2 }, 'hv3', {}, cache), shared, 'same rendering, same prepared tasks');
  assert.deepEqual(swappiness({ swap: 20, fallback: 1 }), { 'vm.swappiness': '20' });
  assert.deepEqual(swappiness({ fallback: 3 }), { 'vm.swappiness': '3' });
  assert.deepEqual(swappiness({ fallback: 4, swap: 10 }), { 'vm.swappiness': '10' });
  assert.throws(() => swappiness({ swap: 5 }), /filter argument 'fallback' is neither a literal nor a defined variable/);
  assert.deepEqual(swappiness({ swap: 5, fallback: 0 }), { 'vm.swappiness': '5' });
});

test('two tasks owning one file are refused before any host is contacted', () => {
  const book = loadPlaybook(write('- hosts: all\n  tasks:\n    - sysctl: {name: vm.swappiness, value: 1}\n    - name: second\n      sysctl: {name: vm.dirty_ratio, value: 5}\n'), MODULES_BY_NAME);
  assert.throws(() => prepareTasks(book.plays[0]!, MODULES_BY_NAME, {}, 'hv1', {}), /90-kvmconf.conf is owned by task 'sysctl' .* and by task 'second'/);
});

test('two tasks setting one sysctl key, sysfs path or unit state differently are refused, naming both; equal values pass', () => {
  const prepare = (yaml: string) => prepareTasks(loadPlaybook(write(yaml), MODULES_BY_NAME).plays[0]!, MODULES_BY_NAME, {}, 'hv1', {});
  assert.throws(
    () => prepare('- hosts: all\n  tasks:\n    - name: low swap\n      sysctl: {name: vm.swappiness, value: 1}\n    - name: other file\n      sysctl: {name: vm.swappiness, value: 10, file: /etc/sysctl.d/91-x.conf}\n'),
    /sysctl vm.swappiness: task 'other file' sets 10 but task 'low swap' \(.*site.yaml:4:7.*\) sets 1/,
  );
  assert.throws(
    () => prepare('- hosts: all\n  tasks:\n    - name: no thp\n      thp: {enabled: never}\n    - name: raw\n      sysfs: {settings: {/sys/kernel/mm/transparent_hugepage/enabled: always}}\n'),
    /\/sys\/kernel\/mm\/transparent_hugepage\/enabled: task 'raw' sets always but task 'no thp' .* sets never/,
  );
  assert.throws(
    () => prepare('- hosts: all\n  tasks:\n    - service: {name: ksm, state: stopped}\n    - name: ksm on\n      service: {name: ksm.service, state: started, enabled: true}\n'),
    /ksm.service state: task 'ksm on' sets started but task 'service' .* sets stopped/,
  );
  assert.equal(prepare('- hosts: all\n  tasks:\n    - sysctl: {name: vm.swappiness, value: 1}\n    - sysctl: {name: vm.swappiness, value: 1, file: /etc/sysctl.d/91-x.conf}\n').length, 2);
});

test('tags select tasks as Ansible does', () => {
  assert.equal(selectedByTags(['memory'], { tags: ['memory'] }), true);
  assert.equal(selectedByTags(['net'], { tags: ['memory'] }), false);
  assert.equal(selectedByTags(['always'], { tags: ['memory'] }), true);
  assert.equal(selectedByTags(['memory'], { skipTags: ['memory'] }), false);
  assert.equal(selectedByTags([], {}), true);
  // `never`: only when --tags names one of the task's tags (Ansible's special tag)
  assert.equal(selectedByTags(['never', 'rps'], {}), false);
  assert.equal(selectedByTags(['never', 'rps'], { tags: ['all'] }), false);
  assert.equal(selectedByTags(['never', 'rps'], { tags: ['rps'] }), true);
  assert.equal(selectedByTags(['never', 'rps'], { tags: ['never'] }), true);
  assert.equal(selectedByTags(['never', 'rps'], { tags: ['rps'], skipTags: ['rps'] }), false);
  assert.equal(selectedByTags(['never', 'always'], {}), true, 'always wins over never, as in Ansible');
  assert.equal(selectedByTags(['always'], { skipTags: ['all'] }), true);
  assert.equal(selectedByTags(['always'], { skipTags: ['all', 'always'] }), false);
  assert.equal(selectedByTags([], { tags: ['untagged'] }), true);
  assert.equal(selectedByTags(['memory'], { tags: ['untagged'] }), false);
  assert.equal(selectedByTags(['memory'], { tags: ['tagged'] }), true);
  assert.equal(selectedByTags(['memory'], { skipTags: ['tagged'] }), false);
  assert.equal(selectedByTags([], { skipTags: ['tagged'] }), true);
});

test('a whole-value template keeps the type; interpolation makes text', () => {
  const where = { file: 'x' };
  assert.equal(render('{{ n }}', { n: 4 }, where), 4);
  assert.equal(render('pages-{{ n }}', { n: 4 }, where), 'pages-4');
  assert.equal(render('{{ a.b }}', { a: { b: 'x' } }, where), 'x');
  assert.throws(() => render('{{ nope }}', { nop: 1 }, where), /undefined variable 'nope'/);
});

test('Jinja filters a tuning playbook needs, with typed results', () => {
  const where = { file: 'x' };
  const vars = { n: '512', flag: 'yes', name: 'Never', list: ['a', 'b'], empty: '', map: { k: 1 }, zero: 0 };
  const cases: Array<[string, unknown]> = [
    ['{{ missing | default(128) }}', 128],
    ["{{ missing | d('x') }}", 'x'],
    ['{{ n | default(1) }}', '512'],
    ['{{ empty | default(7, true) }}', 7],
    ['{{ zero | default(7) }}', 0],
    ['{{ n | int }}', 512],
    ['{{ "12.9" | int }}', 12],
    ['{{ name | int }}', 0],
    ['{{ missing | default("64") | int }}', 64],
    ['{{ flag | bool }}', true],
    ['{{ "off" | bool }}', false],
    ['{{ zero | string }}', '0'],
    ['{{ name | lower }}', 'never'],
    ['{{ name | upper }}', 'NEVER'],
    ["{{ list | join(',') }}", 'a,b'],
    ['{{ list | length }}', 2],
    ['{{ map | length }}', 1],
    ['{{ 5 }}', 5],
    ['size-{{ n | int }}M', 'size-512M'],
  ];
  for (const [template, value] of cases) assert.deepStrictEqual(render(template, vars, where), value, template);
  assert.throws(() => render('{{ n | round }}', vars, where), /unknown filter 'round' \(kvmconf has: default, int, bool, string, lower, upper, join, length\)/);
  assert.throws(() => render('{{ missing | int }}', vars, where), /undefined variable 'missing'/);
  assert.throws(() => render('{{ n + 1 }}', vars, where), /malformed template expression/);
  assert.throws(() => render('{{ zero | join(",") }}', vars, where), /join needs a list/);
});

test('variables are own properties: JavaScript internals are undefined', () => {
  const where = { file: 'x' };
  for (const name of ['__proto__', 'constructor', 'toString', 'n.constructor']) {
    assert.throws(() => render(`{{ ${name} }}`, { n: 1 }, where), new RegExp(`undefined variable '${name.replace('.', '\\.')}'`));
  }
});

test('the assembled playbook schema compiles and knows every module', () => {
  const schema = playbookSchema(MODULES);
  const validate = ajv.compile({ ...schema, $schema: undefined, $id: 'kvmconf-playbook-test' });
  assert.equal(validate([{ hosts: 'all', tasks: [{ thp: { enabled: 'never' } }] }]), true);
  assert.equal(validate([{ hosts: 'all', tasks: [{ thp: { enabled: 'sometimes' } }] }]), false);
});

test('module_defaults: a play sets parameters every task of that module starts from; the task wins key by key', () => {
  const book = loadPlaybook(
    write(
      '- hosts: hypervisors\n  module_defaults:\n    libvirt_domain: { restart: true, restart_timeout: 120 }\n  tasks:\n' +
        '    - libvirt_domain: { name: web1, restart_timeout: 30 }\n    - libvirt_domain: { name: db1 }\n    - thp: { enabled: never }\n',
    ),
    MODULES_BY_NAME,
  );
  assert.deepEqual(book.plays[0]!.tasks.map((t) => t.params), [
    { restart: true, restart_timeout: 30, name: 'web1' },
    { restart: true, restart_timeout: 120, name: 'db1' },
    { enabled: 'never' },
  ]);
});

test('module_defaults: an unknown module is named with a suggestion; a bad default value is reported', () => {
  assert.deepEqual(errorsOf('- hosts: all\n  module_defaults:\n    libvirt_domian: { restart: true }\n  tasks:\n    - thp: { enabled: never }\n'), [
    "site.yaml:3:5 ($[0].module_defaults.libvirt_domian): module_defaults: unknown module 'libvirt_domian' | did you mean 'libvirt_domain'?",
  ]);
  const [bad] = errorsOf('- hosts: all\n  module_defaults:\n    libvirt_domain: { restart: "yes" }\n  tasks:\n    - libvirt_domain: { name: web1 }\n');
  assert.equal(bad, "site.yaml:3:23 ($[0].module_defaults.libvirt_domain.restart): libvirt_domain: 'restart' must be boolean", 'reported where the default is written');
});

test('the merged kernel_cmdline task keeps the place the playbook gives it; an implicit one comes last', () => {
  const explicit = loadPlaybook(
    write('- hosts: all\n  tasks:\n    - thp: {enabled: never}\n    - name: boot args\n      kernel_cmdline: {args: {elevator: deadline}}\n    - sysctl: {name: vm.swappiness, value: 1}\n'),
    MODULES_BY_NAME,
  );
  assert.deepEqual(prepareTasks(explicit.plays[0]!, MODULES_BY_NAME, {}, 'hv1', {}).map((task) => task.name), ['thp', 'boot args', 'sysctl']);
  const implicit = loadPlaybook(write('- hosts: all\n  tasks:\n    - thp: {enabled: never}\n    - sysctl: {name: vm.swappiness, value: 1}\n'), MODULES_BY_NAME);
  assert.deepEqual(prepareTasks(implicit.plays[0]!, MODULES_BY_NAME, {}, 'hv1', {}).map((task) => task.name), ['thp', 'sysctl', 'kernel command line (for thp)']);
});
