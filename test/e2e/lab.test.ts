// The lab's own contract: one real VM shows the kernel facts kvmconf relies on.
// If the VM cannot boot, every test here fails with the reason (never skips).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import YAML from 'yaml';
import { startVm, stopAll, writeInventory, LAB_STATE_DIR, type Vm } from '../lab/lab.js';

describe('real-VM lab', () => {
  let booted: Vm | undefined;
  let bootError: unknown;

  before(async () => {
    try {
      booted = await startVm({ name: `labtest-${process.pid}` });
    } catch (e) {
      bootError = e; // every test below fails with this reason
    }
  });

  after(async () => {
    await stopAll();
  });

  /** The booted VM; throws (failing the test) with the reason when it did not boot. */
  function theVm(): Vm {
    if (!booted) throw new Error(`the lab VM did not boot: ${bootError instanceof Error ? bootError.message : String(bootError)}`);
    return booted;
  }

  async function run(cmd: string, user?: string): Promise<string> {
    const r = await theVm().ssh(cmd, { user });
    assert.equal(r.code, 0, `${cmd} failed (${r.code}): ${r.stderr}`);
    return r.stdout;
  }

  test('the guest has two NUMA nodes', async () => {
    const nodes = (await run('ls /sys/devices/system/node')).split(/\s+/).filter((n) => /^node\d+$/.test(n));
    assert.deepEqual(nodes.sort(), ['node0', 'node1']);
    assert.match(await run('numactl --hardware'), /available: 2 nodes \(0-1\)/);
  });

  test('transparent_hugepage/enabled has the bracket format', async () => {
    const thp = (await run('cat /sys/kernel/mm/transparent_hugepage/enabled')).trim();
    assert.match(thp, /^(\[always\] madvise never|always \[madvise\] never|always madvise \[never\])$/);
  });

  test('tuned-adm is installed', async () => {
    assert.match(await run('command -v tuned-adm'), /tuned-adm/);
  });

  test('2M hugepages can be allocated per NUMA node', async () => {
    const f = '/sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages';
    await run(`echo 16 > ${f}`);
    assert.equal((await run(`cat ${f}`)).trim(), '16');
    await run(`echo 0 > ${f}`);
  });

  test('kvmadmin has passwordless sudo; pwuser sudo asks for a password', async () => {
    assert.equal((await run('sudo -n id -u', 'kvmadmin')).trim(), '0');
    const r = await theVm().ssh('sudo -n true', { user: 'pwuser' });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /password is required/);
  });

  test('host-key verification is on: the VM key is in known_hosts, another key is refused', async () => {
    const vm = theVm();
    assert.match(fs.readFileSync(vm.knownHostsFile, 'utf8'), new RegExp(`^\\[127\\.0\\.0\\.1\\]:${vm.port} ssh-ed25519 AAAA`));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvmlab-hostkey-'));
    try {
      await promisify(execFile)('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'other')]);
      const other = fs.readFileSync(path.join(dir, 'other.pub'), 'utf8').split(' ').slice(0, 2).join(' ');
      const wrong = path.join(dir, 'known_hosts');
      fs.writeFileSync(wrong, `[127.0.0.1]:${vm.port} ${other}\n`);
      const args = ['-F', '/dev/null', '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=yes', '-o', `UserKnownHostsFile=${wrong}`,
        '-o', 'GlobalKnownHostsFile=/dev/null', '-o', 'IdentitiesOnly=yes', '-i', vm.keyFile, '-p', String(vm.port), 'root@127.0.0.1', 'true'];
      const err = await promisify(execFile)('ssh', args, { timeout: 60_000 }).then(
        () => assert.fail('ssh accepted a host key that is not the VM\'s'),
        (e: { code?: number; stderr?: string }) => e,
      );
      assert.equal(err.code, 255);
      assert.match(err.stderr ?? '', /REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('writeInventory writes an Ansible-style inventory', async () => {
    const file = path.join(LAB_STATE_DIR, 'run', `labtest-${process.pid}`, 'inventory.yaml');
    const vm = theVm();
    await writeInventory([vm], file);
    const doc = YAML.parse(fs.readFileSync(file, 'utf8'));
    assert.deepEqual(doc.all.children.hypervisors.hosts[vm.name], {
      ansible_host: '127.0.0.1',
      ansible_port: vm.port,
      ansible_user: 'root',
      ansible_ssh_private_key_file: vm.keyFile,
      kvmconf_known_hosts_file: vm.knownHostsFile,
    });
  });

  test('GRUB_CMDLINE_LINUX + update-grub + reboot changes /proc/cmdline', async () => {
    const token = `kvmlab_test=${randomBytes(4).toString('hex')}`;
    assert.doesNotMatch(await run('cat /proc/cmdline'), new RegExp(token));
    await run(`sed -i 's/^GRUB_CMDLINE_LINUX="\\(.*\\)"$/GRUB_CMDLINE_LINUX="\\1 ${token}"/' /etc/default/grub`);
    assert.match(await run('grep ^GRUB_CMDLINE_LINUX= /etc/default/grub'), new RegExp(token));
    await run('update-grub 2>&1');
    const vm = theVm();
    const bootBefore = await vm.bootId();
    await vm.reboot();
    assert.notEqual(await vm.bootId(), bootBefore);
    assert.match(await run('cat /proc/cmdline'), new RegExp(token));
  });
});
