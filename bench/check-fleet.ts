/**
 * Fleet check benchmark: `kvmconf apply --check` of a playbook against N inventory
 * hosts, each its own SSH connection to a real sshd on 127.0.0.1, and the same hosts
 * over `connection: local` for the engine's own overhead. Prints wall time, time per
 * host, remote execs per host and peak memory.
 *
 *   npm run build && node dist/bench/check-fleet.js [HOSTS=50] [PLAYBOOK=playbooks/virtual-host.yaml]
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSshd } from '../test/helpers/sshd.js';
import { ROOT } from '../test/helpers/paths.js';
import { loadInventory } from '../src/config/inventory.js';
import { loadPlaybook } from '../src/config/playbook.js';
import { runPlaybook } from '../src/engine/runner.js';
import { MODULES_BY_NAME } from '../modules/index.js';

const hosts = Number(process.argv[2] ?? 50);
const playbookFile = process.argv[3] ?? join(ROOT, 'playbooks', 'virtual-host.yaml');
const dir = mkdtempSync(join(tmpdir(), 'kvmconf-bench-'));

async function measure(label: string, inventoryFile: string): Promise<void> {
  const started = process.hrtime.bigint();
  const report = await runPlaybook(loadPlaybook(playbookFile, MODULES_BY_NAME), loadInventory(inventoryFile), MODULES_BY_NAME, {
    mode: 'check', forks: 50, commandTimeoutMs: 120_000, detailedExitCode: false, toolVersion: 'bench',
    connection: { hostKeyChecking: 'strict', connectTimeoutMs: 30_000, keepaliveIntervalMs: 15_000 },
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const execs = report.hosts.reduce((sum, host) => sum + host.execCount, 0);
  const failed = report.hosts.filter((host) => host.status === 'failed' || host.status === 'unreachable');
  console.log(
    `${label.padEnd(22)} ${String(report.hosts.length).padStart(3)} hosts  ${seconds.toFixed(2)} s wall  ` +
      `${((seconds * 1000) / Math.max(1, report.hosts.length)).toFixed(1)} ms/host  ${(execs / Math.max(1, report.hosts.length)).toFixed(1)} execs/host  ` +
      `peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB${failed.length ? `  FAILED: ${failed.length} (${failed[0]!.error})` : ''}`,
  );
}

const names = Array.from({ length: hosts }, (_, i) => `hv${String(i + 1).padStart(3, '0')}`);
const local = join(dir, 'local.yaml');
writeFileSync(local, `all:\n  hosts:\n${names.map((name) => `    ${name}: {ansible_connection: local}`).join('\n')}\n`);
await measure('connection: local', local);

const sshd = await startSshd({ user: 'root', config: ['MaxStartups 200', 'MaxSessions 200', 'PermitRootLogin prohibit-password'] });
try {
  writeFileSync(join(dir, 'known_hosts'), sshd.hostKeyLine + '\n');
  const ssh = join(dir, 'ssh.yaml');
  writeFileSync(
    ssh,
    `all:\n  vars:\n    ansible_host: 127.0.0.1\n    ansible_port: ${sshd.port}\n    ansible_user: root\n    ansible_ssh_private_key_file: ${sshd.clientKeyFile}\n    kvmconf_known_hosts_file: ${join(dir, 'known_hosts')}\n  hosts:\n${names.map((name) => `    ${name}:`).join('\n')}\n`,
  );
  await measure('ssh to 127.0.0.1', ssh);
} finally {
  await sshd.stop();
}
