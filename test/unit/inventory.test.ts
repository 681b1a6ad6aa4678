import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError, InputErrors } from '../../src/errors.js';
import { becomeDefault, becomeFor, connectionSpec, loadInventory, localInventory, shellWords, type ConnectionDefaults, type InventoryHost } from '../../src/config/inventory.js';
import { ROOT } from '../helpers/paths.js';
import { inspect } from 'node:util';
import { Secret } from '../../src/secret.js';
import { shellCommand } from '../../src/engine/become.js';
import { READ_UID } from '../../src/kit/remote-lib.js';
import { execFileSync } from 'node:child_process';


const FIXTURES = join(ROOT, 'test', 'fixtures', 'inventory');
const ANSIBLE = join(FIXTURES, 'ansible', 'inventory.yaml');
const broken = (name: string): string => join(FIXTURES, 'broken', name);

/** The messages (and hints, after ` | `) of a load that must fail, file names relative to the fixtures. */
function failures(file: string): string[] {
  try {
    loadInventory(file);
  } catch (error) {
    if (!(error instanceof InputErrors)) throw error;
    return error.errors.map((e) => e.message.replaceAll(`${FIXTURES}/`, '') + (e.hint ? ` | ${e.hint}` : ''));
  }
  return assert.fail(`${file} loaded without errors`);
}

function host(inventory: ReturnType<typeof loadInventory>, name: string): InventoryHost {
  const found = inventory.hosts.get(name);
  assert.ok(found, `host ${name} missing`);
  return found;
}

describe('loadInventory: structure', () => {
  const inventory = loadInventory(ANSIBLE);

  test('hosts in order of first appearance, with all their groups', () => {
    assert.deepEqual(
      [...inventory.hosts.values()].map((h) => [h.name, h.groups]),
      [
        ['standalone', ['all', 'ungrouped']],
        ['hv1', ['all', 'hypervisors']],
        ['hv2', ['all', 'backup', 'hypervisors', 'storage']],
        ['hv3', ['all', 'hypervisors', 'rack1']],
        ['localhost', ['all', 'local']],
        ['nas1', ['all', 'storage']],
      ],
    );
  });

  test('groups with every host of their descendants and their direct children', () => {
    assert.deepEqual(
      [...inventory.groups.values()].map(({ name, hosts, children }) => ({ name, hosts, children })),
      [
        { name: 'all', hosts: ['standalone', 'hv1', 'hv2', 'hv3', 'localhost', 'nas1'], children: ['ungrouped', 'hypervisors', 'local', 'storage', 'backup'] },
        { name: 'ungrouped', hosts: ['standalone'], children: [] },
        { name: 'hypervisors', hosts: ['hv1', 'hv2', 'hv3'], children: ['rack1'] },
        { name: 'rack1', hosts: ['hv3'], children: [] },
        { name: 'local', hosts: ['localhost'], children: [] },
        { name: 'storage', hosts: ['hv2', 'nas1'], children: [] },
        { name: 'backup', hosts: ['hv2'], children: [] },
      ],
    );
    assert.equal(inventory.file, ANSIBLE);
    assert.equal(host(inventory, 'hv1').inventoryDir, join(FIXTURES, 'ansible'));
  });

  test('groups at the root without all:, numeric strings and yes/no as Ansible reads them', () => {
    const top = loadInventory(join(FIXTURES, 'toplevel.yaml'));
    assert.deepEqual([...top.groups.values()].map((g) => [g.name, g.hosts, g.children]), [
      ['all', ['web1.example.com', 'web2.example.com', 'db1.example.com', 'fe80::1'], ['ungrouped', 'web', 'db']],
      ['ungrouped', [], []],
      ['web', ['web1.example.com', 'web2.example.com'], []],
      ['db', ['db1.example.com', 'fe80::1'], []],
    ]);
    // YAML 1.1 as Ansible reads it: yes is true; quoted numbers stay strings, which connectionSpec reads.
    assert.deepEqual(host(top, 'db1.example.com').vars, { ansible_become: true, ansible_port: '5522', ansible_ssh_timeout: '7' });
    assert.equal(connectionSpec(host(top, 'db1.example.com'), { hostKeyChecking: 'strict', connectTimeoutMs: 1000, keepaliveIntervalMs: 2000 }).port, 5522);
    assert.deepEqual(host(top, 'fe80::1').groups, ['all', 'db']);
    assert.equal(becomeDefault(host(top, 'db1.example.com')), true);
    assert.equal(becomeDefault(host(top, 'web1.example.com')), undefined);
  });

  test('localInventory: this machine only, without SSH', () => {
    const local = localInventory();
    assert.deepEqual([...local.hosts.values()].map((h) => [h.name, h.vars, h.groups]), [['localhost', { ansible_connection: 'local' }, ['all', 'local']]]);
    assert.deepEqual(local.groups.get('local'), { name: 'local', hosts: ['localhost'], directHosts: ['localhost'], children: [], vars: {} });
    assert.deepEqual(local.groups.get('all')?.hosts, ['localhost']);
    assert.equal(connectionSpec(local.hosts.get('localhost')!, { hostKeyChecking: 'strict', connectTimeoutMs: 1000, keepaliveIntervalMs: 2000 }).connection, 'local');
  });
});

describe('loadInventory: variable precedence', () => {
  const inventory = loadInventory(ANSIBLE);

  test('a host only in all: inventory all vars, then group_vars/all', () => {
    assert.deepEqual(host(inventory, 'standalone').vars, {
      ansible_user: 'root',
      from_all: 'all-inline',
      depth: 'all',
      cross: 'all-file',
      file_depth: 'all-file',
      ansible_host: '10.0.0.9',
    });
  });

  test('child groups beat parents, files beat the inventory, host vars beat groups, host_vars beat host vars', () => {
    assert.deepEqual(host(inventory, 'hv1').vars, {
      ansible_user: 'root',
      from_all: 'all-inline',
      depth: 'hypervisors',
      // As in Ansible, group_vars/all (a file) outranks every group's vars written in the inventory file.
      cross: 'all-file',
      kvmconf_known_hosts_file: './known_hosts',
      same_group: 'hv1-inline',
      name_tie: 'hypervisors',
      file_depth: 'hypervisors-file',
      // group_vars/hypervisors/: 10-base.yaml, then 20-more.yml; .hidden.yaml and README.md skipped.
      folder_order: '20',
      ansible_host: '10.0.0.5',
      ansible_port: 2222,
      host_level: 'hv1-file',
    });
  });

  test('the deepest group wins, in the inventory file and among group_vars files', () => {
    const vars = host(inventory, 'hv3').vars;
    assert.equal(vars.depth, 'rack1');
    assert.equal(vars.file_depth, 'rack1-file');
    assert.equal(vars.rack, 'r1', 'vars of a group defined twice are merged');
    // group_vars/hypervisors wins over the vars of hypervisors in the inventory file.
    assert.equal(vars.same_group, 'hypervisors-file');
    // host_vars/hv3/: a.yaml then b.yaml.
    assert.equal(vars.order, 'b');
    assert.equal(vars.only_a, true);
  });

  test('same depth: by ansible_group_priority, then by name', () => {
    const vars = host(inventory, 'hv2').vars;
    assert.equal(vars.name_tie, 'storage', 'storage sorts after hypervisors');
    assert.equal(vars.prio, 'backup', 'backup has ansible_group_priority 5');
    assert.equal('ansible_group_priority' in vars, false, 'ansible_group_priority orders groups and is not a variable');
    assert.equal(host(inventory, 'nas1').vars.prio, 'storage');
  });

  test('vars of a group not in the inventory are ignored', () => {
    for (const h of inventory.hosts.values()) assert.notEqual(h.vars.ansible_port, 'not checked either');
  });
});

describe('loadInventory: errors, with file, line, column and path', () => {
  test('a group that is not a mapping', () => {
    assert.deepEqual(failures(broken('group-not-mapping.yaml')), [
      "broken/group-not-mapping.yaml:3:5 ($.all.children.hypervisors): group 'hypervisors' must be a mapping with hosts, vars or children, not a list | list its hosts as keys of a mapping: `hosts: {hv1: , hv2: }`",
      "broken/group-not-mapping.yaml:4:5 ($.all.children.storage): group 'storage' must be a mapping with hosts, vars or children, not a string",
    ]);
  });

  test('hosts and children written as lists', () => {
    assert.deepEqual(failures(broken('hosts-list.yaml')), [
      "broken/hosts-list.yaml:4:7 ($.all.children.hypervisors.hosts): 'hosts' of group 'hypervisors' must be a mapping of host names to their variables, not a list | write each host as a key (`hv1:` or `hv1: {ansible_host: 10.0.0.5}`), not as a list item (`- hv1`); lists are a common slip when converting INI inventories",
      "broken/hosts-list.yaml:7:7 ($.all.children.hypervisors.children): 'children' of group 'hypervisors' must be a mapping of group names, not a list | write each child group as a key (`rack1:`), not as a list item (`- rack1`)",
    ]);
  });

  test('host and group names, and host ranges', () => {
    assert.deepEqual(failures(broken('names.yaml')), [
      'broken/names.yaml:3:5 ($.all.hosts["web[01:100]"]): host range [01:100] in \'web[01:100]\' must have begin and end of equal length when zero-padded',
      'broken/names.yaml:4:5 ($.all.hosts["bad host"]): invalid host name \'bad host\': \' \' not allowed (use letters, digits and _ . : -)',
      'broken/names.yaml:7:5 ($.all.children["kvm/hosts"]): invalid group name \'kvm/hosts\': \'/\' not allowed (use letters, digits and _ . : -)',
    ]);
  });

  test('a group that is its own descendant, within one definition or across several', () => {
    assert.deepEqual(failures(broken('cycle.yaml')), [
      "broken/cycle.yaml:7:13 ($.all.children.a.children.b.children.a): group 'a' is its own descendant: a > b > a",
      "broken/cycle.yaml:10:9 ($.all.children.c.children.c): group 'c' is its own descendant: c > c",
      "broken/cycle.yaml:16:5 ($.y.children.x): group 'x' is its own descendant: x > y > x",
    ]);
  });

  test('connection variables are type-checked, user variables and templates are not', () => {
    assert.deepEqual(failures(broken('connection-vars.yaml')), [
      "broken/connection-vars.yaml:3:5 ($.all.vars.ansible_port): 'ansible_port' must be >= 1",
      "broken/connection-vars.yaml:6:7 ($.all.hosts.hv1.ansible_port): 'ansible_port' must be <= 65535",
      'broken/connection-vars.yaml:7:7 ($.all.hosts.hv1.ansible_connection): \'ansible_connection\' must be one of "ssh", "local"',
      "broken/connection-vars.yaml:9:7 ($.all.hosts.hv2.ansible_port): 'ansible_port' must be integer",
      "broken/connection-vars.yaml:10:7 ($.all.hosts.hv2.ansible_host): 'ansible_host' must NOT have fewer than 1 characters",
      "broken/connection-vars.yaml:11:7 ($.all.hosts.hv2.ansible_ssh_timeout): 'ansible_ssh_timeout' must be > 0",
      'broken/connection-vars.yaml:12:7 ($.all.hosts.hv2.kvmconf_host_key_checking): \'kvmconf_host_key_checking\' must be one of "strict", "accept-new", "off"',
      'broken/connection-vars.yaml:13:7 ($.all.hosts.hv2.ansible_become): \'ansible_become\' must be a boolean (true/false or yes/no), not "maybe"',
      "broken/connection-vars.yaml:15:7 ($.all.hosts.hv2.ansible_ssh_private_key_file): 'ansible_ssh_private_key_file' must be string",
      "broken/connection-vars.yaml:18:7 ($.all.hosts.hv3.ansible_ssh_common_args): 'ansible_ssh_common_args' has an unbalanced quote",
    ]);
  });

  test('keys that are not strings; keys inside a variable\'s value are the user\'s business', () => {
    assert.deepEqual(failures(broken('keys.yaml')), [
      "broken/keys.yaml:3:5 ($.all.hosts): host name must be a string, not a number: 4 | quote it to use it as a name: '4':",
      'broken/keys.yaml:4:5 ($.all.hosts): host name must be a string, not null: ~',
      'broken/keys.yaml:5:7 ($.all.hosts): host name must be a string, not a list: [a, b]',
      "broken/keys.yaml:8:7 ($.all.hosts.hv1): variable name must be a string, not a number: 1 | quote it to use it as a name: '1':",
    ]);
  });

  test('unknown keys with did-you-mean, host values that are not mappings, all as a child', () => {
    assert.deepEqual(failures(broken('unknown-key.yaml')), [
      "broken/unknown-key.yaml:2:3 ($.all.host): unknown key 'host' | did you mean 'hosts'?",
      "broken/unknown-key.yaml:6:7 ($.all.children.hypervisors.var): unknown key 'var' | did you mean 'vars'?",
      "broken/unknown-key.yaml:8:9 ($.all.children.hypervisors.hosts.hv2): host 'hv2' must map to a mapping of its variables, or to nothing, not a string | to give its address write `hv2: {ansible_host: 10.0.0.5}`",
      "broken/unknown-key.yaml:9:9 ($.all.children.hypervisors.hosts.hv3): host 'hv3' must map to a mapping of its variables, or to nothing, not a list",
      "broken/unknown-key.yaml:11:9 ($.all.children.hypervisors.children.all): 'all' cannot be a child group: every group is already inside 'all'",
    ]);
  });

  test('an empty inventory, and one that is not a mapping', () => {
    assert.deepEqual(failures(broken('empty.yaml')), ['broken/empty.yaml ($): the inventory is empty: expected groups such as `all: {hosts: {...}}`']);
    assert.deepEqual(failures(broken('not-a-mapping.yaml')), [
      "broken/not-a-mapping.yaml:1:1 ($): an inventory is a mapping of group names (usually just 'all') to their hosts, vars and children, not a list | an INI inventory is read as INI when its name does not end in .yaml, .yml or .json",
    ]);
  });

  test('errors in group_vars and host_vars files name those files', () => {
    const messages = failures(broken('vars-files/inventory.yaml'));
    assert.equal(messages.length, 3);
    assert.equal(messages[0], "broken/vars-files/group_vars/all.yaml:1:1 ($.ansible_port): 'ansible_port' must be <= 65535");
    assert.equal(messages[1], 'broken/vars-files/group_vars/ungrouped.yml:1:1 ($): a variables file must be a mapping of variable names to values, not a list');
    assert.match(messages[2]!, /^broken\/vars-files\/host_vars\/hv1\/broken\.yaml:2:1: invalid YAML: /);
  });

  test('a missing inventory file', () => {
    assert.throws(() => loadInventory(join(FIXTURES, 'missing.yaml')), (error: unknown) => {
      assert.ok(error instanceof InputError);
      assert.equal(error.message, `${join(FIXTURES, 'missing.yaml')}: cannot read: ENOENT`);
      return true;
    });
  });
});

describe('connectionSpec', () => {
  const defaults: ConnectionDefaults = {
    hostKeyChecking: 'accept-new',
    knownHostsFile: '/cli/known_hosts',
    connectTimeoutMs: 10_000,
    keepaliveIntervalMs: 15_000,
    privateKeyFile: '~/.ssh/cli_key',
    user: 'cliuser',
  };
  const bare: ConnectionDefaults = { hostKeyChecking: 'strict', connectTimeoutMs: 5000, keepaliveIntervalMs: 30_000 };
  const make = (vars: Record<string, unknown>, name = 'hv9'): InventoryHost => ({ name, vars, groups: ['all'], inventoryDir: '/inv' });

  test('hosts of the Ansible fixture', () => {
    const inventory = loadInventory(ANSIBLE);
    assert.deepEqual(connectionSpec(host(inventory, 'hv1'), defaults), {
      name: 'hv1',
      connection: 'ssh',
      host: '10.0.0.5',
      port: 2222,
      user: 'root',
      privateKeyFiles: [join(homedir(), '.ssh', 'cli_key')],
      knownHostsFile: join(FIXTURES, 'ansible', 'known_hosts'),
      hostKeyChecking: 'accept-new',
      connectTimeoutMs: 10_000,
      keepaliveIntervalMs: 15_000,
    });
    assert.equal(connectionSpec(host(inventory, 'hv2'), defaults).proxyJump, 'admin@bastion:2200');
    assert.equal(connectionSpec(host(inventory, 'hv2'), defaults).host, 'hv2');
    const local = connectionSpec(host(inventory, 'localhost'), defaults);
    assert.equal(local.connection, 'local');
    assert.equal(local.host, 'localhost');
  });

  test('no vars: the inventory name and the defaults, nothing else', () => {
    assert.deepEqual(connectionSpec(make({}), bare), { name: 'hv9', connection: 'ssh', host: 'hv9', hostKeyChecking: 'strict', connectTimeoutMs: 5000, keepaliveIntervalMs: 30_000 });
    assert.deepEqual(connectionSpec(make({}), defaults), {
      name: 'hv9',
      connection: 'ssh',
      host: 'hv9',
      user: 'cliuser',
      privateKeyFiles: [join(homedir(), '.ssh', 'cli_key')],
      knownHostsFile: '/cli/known_hosts',
      hostKeyChecking: 'accept-new',
      connectTimeoutMs: 10_000,
      keepaliveIntervalMs: 15_000,
    });
  });

  test('every connection variable, inventory winning over the command line', () => {
    assert.deepEqual(
      connectionSpec(
        make({
          ansible_host: 'hv9.mgmt.example.com',
          ansible_port: 2200,
          ansible_user: 'admin',
          ansible_ssh_private_key_file: 'keys/hv9',
          ansible_connection: 'ssh',
          kvmconf_known_hosts_file: 'known_hosts',
          kvmconf_host_key_checking: 'off',
          kvmconf_proxy_jump: 'jump@bastion',
          ansible_ssh_timeout: 2.5,
        }),
        defaults,
      ),
      {
        name: 'hv9',
        connection: 'ssh',
        host: 'hv9.mgmt.example.com',
        port: 2200,
        user: 'admin',
        privateKeyFiles: ['/inv/keys/hv9'],
        knownHostsFile: '/inv/known_hosts',
        hostKeyChecking: 'off',
        proxyJump: 'jump@bastion',
        connectTimeoutMs: 2500,
        keepaliveIntervalMs: 15_000,
      },
    );
  });

  test('paths: ~ expands, absolute paths stay, no inventory folder means the working directory', () => {
    assert.deepEqual(connectionSpec(make({ ansible_ssh_private_key_file: '~/.ssh/id_hv' }), bare).privateKeyFiles, [join(homedir(), '.ssh/id_hv')]);
    assert.deepEqual(connectionSpec(make({ ansible_ssh_private_key_file: '/keys/id' }), bare).privateKeyFiles, ['/keys/id']);
    assert.deepEqual(connectionSpec({ name: 'x', vars: { ansible_private_key_file: 'id' }, groups: ['all'] }, bare).privateKeyFiles, [join(process.cwd(), 'id')]);
  });

  test('older aliases: ansible_ssh_host, ansible_ssh_port, ansible_ssh_user', () => {
    const spec = connectionSpec(make({ ansible_ssh_host: '10.1.1.1', ansible_ssh_port: '2022', ansible_ssh_user: 'old' }), bare);
    assert.deepEqual([spec.host, spec.port, spec.user], ['10.1.1.1', 2022, 'old']);
    const both = connectionSpec(make({ ansible_host: 'new', ansible_ssh_host: 'old', ansible_port: 1, ansible_ssh_port: 2 }), bare);
    assert.deepEqual([both.host, both.port], ['new', 1]);
  });

  test('ssh arguments: -J, -o ProxyJump, StrictHostKeyChecking, UserKnownHostsFile', () => {
    const spec = (vars: Record<string, unknown>) => connectionSpec(make(vars), defaults);
    assert.equal(spec({ ansible_ssh_common_args: '-J bastion' }).proxyJump, 'bastion');
    assert.equal(spec({ ansible_ssh_common_args: '-Jops@bastion:2222' }).proxyJump, 'ops@bastion:2222');
    assert.equal(spec({ ansible_ssh_extra_args: '-o ProxyJump=jump1,jump2' }).proxyJump, 'jump1,jump2');
    assert.equal(spec({ ansible_ssh_common_args: "-o 'ProxyJump bastion'" }).proxyJump, 'bastion');
    assert.equal(spec({ ansible_ssh_common_args: '-oProxyJump=none' }).proxyJump, undefined);
    assert.equal(spec({ ansible_ssh_common_args: '-J first', ansible_ssh_extra_args: '-J second' }).proxyJump, 'first');
    assert.equal(spec({ ansible_ssh_common_args: '-J args', kvmconf_proxy_jump: 'var' }).proxyJump, 'var');

    const off = spec({ ansible_ssh_common_args: '-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ServerAliveInterval=5 -C' });
    assert.equal(off.hostKeyChecking, 'off');
    assert.equal(off.knownHostsFile, '/dev/null');
    assert.equal(off.proxyJump, undefined);
    assert.equal(off.keepaliveIntervalMs, 15_000, 'other -o options are ignored');
    assert.equal(spec({ ansible_ssh_extra_args: '-o StrictHostKeyChecking=accept-new' }).hostKeyChecking, 'accept-new');
    assert.equal(spec({ ansible_ssh_extra_args: '-o StrictHostKeyChecking=yes' }).hostKeyChecking, 'strict');
    assert.equal(spec({ ansible_ssh_extra_args: '-o StrictHostKeyChecking=no', kvmconf_host_key_checking: 'strict' }).hostKeyChecking, 'strict');
    assert.equal(spec({ ansible_host_key_checking: false }).hostKeyChecking, 'off');
    assert.equal(spec({ ansible_host_key_checking: true }).hostKeyChecking, 'accept-new');
    assert.equal(spec({ ansible_ssh_common_args: '-o "UserKnownHostsFile ~/kh other"' }).knownHostsFile, join(homedir(), 'kh'));
    assert.equal(spec({ ansible_ssh_common_args: '-o UserKnownHostsFile=kh' }).knownHostsFile, '/inv/kh');
    assert.equal(spec({ ansible_ssh_common_args: '-o UserKnownHostsFile=kh', kvmconf_known_hosts_file: '/var' }).knownHostsFile, '/var');
  });

  describe('host key checking: inventory data never weakens it silently', () => {
    const weakening = [
      { ansible_ssh_common_args: '-o StrictHostKeyChecking=no' },
      { ansible_ssh_extra_args: '-oStrictHostKeyChecking=off' },
      { ansible_host_key_checking: false },
      { ansible_ssh_host_key_checking: 'no' },
      { kvmconf_host_key_checking: 'off' },
    ];
    const resolved = (vars: Record<string, unknown>, base: ConnectionDefaults) => {
      const warnings: string[] = [];
      return { mode: connectionSpec(make(vars), base, warnings).hostKeyChecking, warnings };
    };

    test('an explicit --host-key-checking strict wins over every inventory spelling, and says so', () => {
      const strict: ConnectionDefaults = { ...bare, hostKeyCheckingExplicit: true };
      for (const vars of weakening) {
        const { mode, warnings } = resolved(vars, strict);
        assert.equal(mode, 'strict', JSON.stringify(vars));
        assert.equal(warnings.length, 1);
        assert.match(warnings[0]!, /^host 'hv9': .* ignored: --host-key-checking strict was given$/);
      }
      const { warnings } = resolved({ ansible_ssh_common_args: '-o StrictHostKeyChecking=no' }, strict);
      assert.equal(warnings[0], "host 'hv9': StrictHostKeyChecking in ansible_ssh_common_args ignored: --host-key-checking strict was given");
    });

    test('an explicit --host-key-checking off is kept: the inventory does not override the command line either way', () => {
      const off: ConnectionDefaults = { ...bare, hostKeyChecking: 'off', hostKeyCheckingExplicit: true };
      assert.deepEqual(resolved({ kvmconf_host_key_checking: 'strict' }, off), { mode: 'off', warnings: [] });
    });

    test('without the flag, weakening is honoured with a warning naming host and variable', () => {
      for (const vars of weakening) {
        const { mode, warnings } = resolved(vars, bare);
        assert.equal(mode, 'off', JSON.stringify(vars));
        assert.equal(warnings.length, 1);
        assert.match(warnings[0]!, /^host 'hv9': host key checking weakened to 'off' by the inventory \(.+\); a changed host key is still refused$/);
      }
      assert.equal(resolved({ ansible_host_key_checking: false }, bare).warnings[0], "host 'hv9': host key checking weakened to 'off' by the inventory (ansible_host_key_checking: false); a changed host key is still refused");
    });

    test('strengthening is silent; true and matching values change nothing', () => {
      assert.deepEqual(resolved({ kvmconf_host_key_checking: 'strict' }, defaults), { mode: 'strict', warnings: [] });
      assert.deepEqual(resolved({ ansible_host_key_checking: true }, bare), { mode: 'strict', warnings: [] });
      assert.deepEqual(resolved({ ansible_ssh_common_args: '-o StrictHostKeyChecking=yes' }, bare), { mode: 'strict', warnings: [] });
    });
  });

  test('Ansible connection variables kvmconf does not act on are warned about by name, never by value', () => {
    const warnings: string[] = [];
    connectionSpec(make({ ansible_become_method: 'su', ansible_become_flags: '-H -S', ansible_become_password: 's3cret', ansible_ssh_pass: 'hunter2' }), bare, warnings);
    assert.deepEqual(warnings, [
      "host 'hv9': ansible_become_method other than sudo is not supported and is ignored: kvmconf becomes the user with sudo only",
      "host 'hv9': ansible_become_flags is not supported and is ignored: kvmconf runs sudo -n, or sudo -S when given a password",
    ]);
    assert.doesNotMatch(warnings.join('\n'), /s3cret|hunter2/);
    const fine: string[] = [];
    connectionSpec(make({ ansible_become_method: 'sudo', ansible_become_user: 'root' }), bare, fine);
    assert.deepEqual(fine, []);
  });

  test('ansible_ssh_pass (or ansible_password) becomes the login password, held as a secret; --ask-pass is the default', () => {
    const spec = connectionSpec(make({ ansible_ssh_pass: 'hunter2' }), bare);
    assert.equal(spec.password?.reveal(), 'hunter2');
    assert.doesNotMatch(JSON.stringify(spec) + String(spec.password) + inspect(spec), /hunter2/);
    assert.equal(connectionSpec(make({ ansible_password: 'pw2' }), bare).password?.reveal(), 'pw2');
    assert.equal(connectionSpec(make({}), { ...bare, password: new Secret('asked') }).password?.reveal(), 'asked');
    assert.equal(connectionSpec(make({}), bare).password, undefined);
  });

  test('bad values reaching connectionSpec (e.g. rendered templates) are input errors', () => {
    const message = (vars: Record<string, unknown>) => {
      try {
        connectionSpec(make(vars), defaults);
      } catch (error) {
        assert.ok(error instanceof InputError);
        return error.message;
      }
      return assert.fail('no error');
    };
    assert.equal(message({ ansible_port: 70000 }), "host 'hv9': ansible_port must be a port number 1..65535, not 70000");
    assert.equal(message({ ansible_port: 'ssh' }), 'host \'hv9\': ansible_port must be a port number 1..65535, not "ssh"');
    assert.equal(message({ ansible_connection: 'winrm' }), "host 'hv9': ansible_connection must be ssh or local, not 'winrm'");
    assert.equal(message({ ansible_user: 42 }), "host 'hv9': ansible_user must be a non-empty string, not 42");
    assert.equal(message({ kvmconf_host_key_checking: 'ask' }), "host 'hv9': kvmconf_host_key_checking must be strict, accept-new or off, not 'ask'");
    assert.equal(message({ ansible_ssh_common_args: '-o "ProxyJump=x' }), 'host \'hv9\': ansible_ssh_common_args has an unbalanced quote: -o "ProxyJump=x');
    assert.equal(message({ ansible_ssh_timeout: 0 }), "host 'hv9': ansible_ssh_timeout must be a number of seconds, not 0");
  });

  test('shellWords splits as a shell does', () => {
    assert.deepEqual(shellWords(`-o 'A B' -o "C \\"D\\"" E\\ F  -J x`), ['-o', 'A B', '-o', 'C "D"', 'E F', '-J', 'x']);
    assert.deepEqual(shellWords(''), []);
    assert.equal(shellWords("'open"), undefined);
  });
});

describe('becomeDefault', () => {
  const become = (value: unknown) => becomeDefault({ name: 'h', vars: value === undefined ? {} : { ansible_become: value } });

  test("ansible_become in Ansible's spellings", () => {
    assert.equal(become(undefined), undefined);
    assert.equal(become(true), true);
    assert.equal(become(false), false);
    assert.equal(become('yes'), true);
    assert.equal(become('No'), false);
    assert.equal(become('True'), true);
    assert.throws(() => become('maybe'), { name: 'InputError', message: 'host \'h\': ansible_become must be a boolean, not "maybe"' });
  });

  test('from the inventory file', () => {
    const inventory = loadInventory(ANSIBLE);
    assert.equal(becomeDefault(host(inventory, 'nas1')), true);
    assert.equal(becomeDefault(host(inventory, 'hv1')), undefined);
  });
});

describe('becomeFor', () => {
  const play = { become: true };
  test('off unless the play, the host or the command line asks for it', () => {
    assert.equal(becomeFor('h', {}, { become: false }), undefined);
    assert.deepEqual(becomeFor('h', { ansible_become: 'yes' }, { become: false }), { user: 'root' });
    assert.deepEqual(becomeFor('h', {}, play), { user: 'root' });
  });

  test("the user: the host's ansible_become_user over the play's become_user, root by default", () => {
    assert.equal(becomeFor('h', {}, { become: true, becomeUser: 'svc' })?.user, 'svc');
    assert.equal(becomeFor('h', { ansible_become_user: 'ops' }, { become: true, becomeUser: 'svc' })?.user, 'ops');
    assert.throws(() => becomeFor('h', { ansible_become_user: 'root; id' }, play), /ansible_become_user must be a user name/);
  });

  test("the password: the host's variables over --ask-become-pass; one line, held as a secret", () => {
    const asked = new Secret('asked');
    assert.equal(becomeFor('h', {}, play, asked)?.password, asked);
    assert.equal(becomeFor('h', { ansible_become_pass: 'mine' }, play, asked)?.password?.reveal(), 'mine');
    assert.equal(becomeFor('h', { ansible_sudo_pass: 'old' }, play)?.password?.reveal(), 'old');
    assert.throws(() => becomeFor('h', { ansible_become_password: 'two\nlines' }, play), { message: "host 'h': ansible_become_password must be one line of text" });
    assert.equal(JSON.stringify(becomeFor('h', { ansible_become_password: 'hidden' }, play)), '{"user":"root","password":"<secret>"}');
  });
});

describe('shellCommand', () => {
  test('without a password: sudo -n, never a prompt; the user quoted', () => {
    assert.equal(shellCommand(undefined), 'exec /bin/sh -s');
    assert.equal(shellCommand({ user: 'root' }), `if ${READ_UID}; [ "$kc_uid" = 0 ]; then exec /bin/sh -s; else exec sudo -n -- /bin/sh -s; fi`);
    assert.match(shellCommand({ user: 'svc$' }), /sudo -u 'svc\$' -n --/);
  });

  test('the login shell reads its own uid with builtins, under dash, bash and busybox sh', () => {
    for (const shell of [['/bin/sh'], ['/bin/bash'], ['/bin/busybox', 'sh']]) {
      const printed = execFileSync(shell[0]!, [...shell.slice(1), '-c', `${READ_UID}; echo "$kc_uid"`], { encoding: 'utf8' });
      assert.equal(printed, `${process.getuid!()}\n`, shell.join(' '));
    }
  });

  test('with a password: it is read from standard input, never part of the command', () => {
    const command = shellCommand({ user: 'root', password: new Secret('p4ss') });
    assert.doesNotMatch(command, /p4ss/);
    assert.match(command, /^IFS= read -r kc_pw; /);
    assert.match(command, /\| sudo -S -p '' -- \/bin\/sh -s$/);
  });
});

describe('connection variables checked where they were written', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kvmconf-origin-'));
  mkdirSync(join(dir, 'group_vars'));
  writeFileSync(join(dir, 'hosts.yml'), 'all:\n  hosts:\n    hv1:\n      ansible_port: "{{ base_port | int }}"\n    hv2:\n      ansible_port: "{{ custom }}"\n    hv3:\n  vars:\n    custom: abc\n');
  writeFileSync(join(dir, 'group_vars', 'all.yml'), 'base_port: 2200\nansible_user: "{{ missing }}"\n');
  writeFileSync(join(dir, 'hosts.ini'), '[hv]\nhv7 ansible_host=10.0.0.7\n\n[hv:vars]\nansible_port="{{ nope }}"\n');
  const defaults: ConnectionDefaults = { hostKeyChecking: 'strict', connectTimeoutMs: 1000, keepaliveIntervalMs: 1000 };
  const errorOf = (file: string, name: string, extra?: Record<string, unknown>): string => {
    try {
      connectionSpec(host(loadInventory([join(dir, file)]), name), { ...defaults, ...(extra && { extraVars: extra }) });
    } catch (error) {
      assert.ok(error instanceof InputError);
      return error.message;
    }
    return assert.fail('no error');
  };

  test('a templated value is rendered with the host variables; -e wins over the inventory', () => {
    const inventory = loadInventory([join(dir, 'hosts.yml')]);
    const spec = (name: string, extraVars?: Record<string, unknown>) => connectionSpec(host(inventory, name), { ...defaults, ...(extraVars && { extraVars }) });
    assert.throws(() => spec('hv1'), /undefined variable 'missing'/);
    assert.equal(spec('hv1', { missing: 'ops' }).port, 2200);
    assert.equal(spec('hv1', { missing: 'ops' }).user, 'ops');
    assert.equal(spec('hv3', { ansible_user: 'root' }).user, 'root');
    assert.equal(spec('hv3', { ansible_user: 'root', ansible_port: '2222' }).port, 2222);
  });

  test('a bad value names the file, line and variable it came from (or -e)', () => {
    assert.match(errorOf('hosts.yml', 'hv3'), /group_vars\/all\.yml:2:\d+ \(\$\.ansible_user\): undefined variable 'missing'/);
    assert.match(errorOf('hosts.yml', 'hv2', { missing: 'x' }), /hosts\.yml:6:\d+ \(\$\.all\.hosts\.hv2\.ansible_port\): host 'hv2': ansible_port must be a port number 1\.\.65535, not "abc"/);
    assert.match(errorOf('hosts.yml', 'hv3', { missing: 'x', ansible_port: 'none' }), /^-e \(ansible_port\): host 'hv3': ansible_port must be a port number/);
    assert.match(errorOf('hosts.ini', 'hv7'), /hosts\.ini:5: undefined variable 'nope'/);
  });
});
