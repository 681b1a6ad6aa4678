/**
 * Fleet check benchmark: `kvmconf apply --check` of a playbook against N inventory
 * hosts, over `connection: local` (the engine's own overhead) and over SSH, each host
 * its own connection to one of several real sshd instances on 127.0.0.1 (one per 250
 * hosts). Each measurement runs in a fresh process so its peak memory is its own.
 * Prints wall time, time per host, controller CPU per host, remote execs per host
 * and peak memory.
 *
 * Sessions read root's ~/.bashrc as an empty file, as in bench/peer.ts
 * (KVMCONF_BENCH_BASHRC=keep leaves it as it is).
 *
 *   npm run build && node dist/bench/check-fleet.js [HOSTS=50] [PLAYBOOK=playbooks/virtual-host.yaml] [FORKS=50] [TRANSPORTS=local,ssh]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startSshd, type SshdInstance } from '../test/helpers/sshd.js';
import { ROOT } from '../test/helpers/paths.js';
import { loadInventory } from '../src/config/inventory.js';
import { loadPlaybook } from '../src/config/playbook.js';
import { runPlaybook } from '../src/engine/runner.js';
import { MODULES_BY_NAME } from '../modules/index.js';

const HOSTS_PER_SSHD = 250;

async function measure(label: string, inventoryFile: string, playbookFile: string, forks: number): Promise<void> {
  const started = process.hrtime.bigint();
  const cpu = process.cpuUsage();
  const report = await runPlaybook(loadPlaybook(playbookFile, MODULES_BY_NAME), loadInventory(inventoryFile), MODULES_BY_NAME, {
    mode: 'check', forks, commandTimeoutMs: 300_000, detailedExitCode: false, toolVersion: 'bench',
    connection: { hostKeyChecking: 'strict', connectTimeoutMs: 120_000, keepaliveIntervalMs: 15_000 },
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const used = process.cpuUsage(cpu);
  const n = Math.max(1, report.hosts.length);
  const execs = report.hosts.reduce((sum, host) => sum + host.execCount, 0);
  const failed = report.hosts.filter((host) => host.status === 'unreachable' || (host.status === 'failed' && !host.error?.startsWith('planning failed')));
  console.log(
    `${label.padEnd(22)} ${String(report.hosts.length).padStart(4)} hosts  ${seconds.toFixed(2)} s wall  ` +
      `${((seconds * 1000) / n).toFixed(1)} ms/host  controller CPU ${((used.user + used.system) / 1000 / n).toFixed(1)} ms/host (user ${(used.user / 1000 / n).toFixed(1)})  ${(execs / n).toFixed(1)} execs/host  ` +
      `peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB${failed.length ? `  FAILED: ${failed.length} (${failed[0]!.error})` : ''}`,
  );
}

if (process.argv[2] === '--measure') {
  // Child mode: one measurement, in a process of its own.
  await measure(process.argv[3]!, process.argv[4]!, process.argv[5]!, Number(process.argv[6]));
} else {
  const hosts = Number(process.argv[2] ?? 50);
  const playbookFile = process.argv[3] ?? join(ROOT, 'playbooks', 'virtual-host.yaml');
  const forks = Number(process.argv[4] ?? 50);
  const transports = (process.argv[5] ?? 'local,ssh').split(',');
  const dir = mkdtempSync(join(tmpdir(), 'kvmconf-bench-'));
  const names = Array.from({ length: hosts }, (_, i) => `hv${String(i + 1).padStart(4, '0')}`);
  // Asynchronous: this process must keep draining the sshd instances' log pipes meanwhile.
  const child = async (label: string, inventory: string): Promise<void> => {
    const proc = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--measure', label, inventory, playbookFile, String(forks)], { stdio: 'inherit' });
    const code = await new Promise<number | null>((resolve) => proc.on('close', (status) => resolve(status)));
    if (code !== 0) throw new Error(`${label}: the measurement exited with ${code}`);
  };

  const local = join(dir, 'local.yaml');
  writeFileSync(local, `all:\n  hosts:\n${names.map((name) => `    ${name}: {ansible_connection: local}`).join('\n')}\n`);
  if (transports.includes('local')) await child('connection: local', local);

  const instances: SshdInstance[] = [];
  if (transports.includes('ssh')) try {
    const count = Math.ceil(hosts / HOSTS_PER_SSHD);
    for (let i = 0; i < count; i++) {
      instances.push(await startSshd({ user: 'root', logLevel: 'INFO', emptyBashrc: process.env.KVMCONF_BENCH_BASHRC !== 'keep', config: ['MaxStartups 300:30:600', 'MaxSessions 10', 'PermitRootLogin prohibit-password'] }));
    }
    // Every instance gets its own client key; one known_hosts file lists all of them.
    writeFileSync(join(dir, 'known_hosts'), instances.map((sshd) => sshd.hostKeyLine).join('\n') + '\n');
    const ssh = join(dir, 'ssh.yaml');
    writeFileSync(
      ssh,
      `all:\n  vars:\n    ansible_host: 127.0.0.1\n    ansible_user: root\n    kvmconf_known_hosts_file: ${join(dir, 'known_hosts')}\n  hosts:\n` +
        names
          .map((name, i) => {
            const sshd = instances[i % instances.length]!;
            return `    ${name}: {ansible_port: ${sshd.port}, ansible_ssh_private_key_file: ${sshd.clientKeyFile}}`;
          })
          .join('\n') +
        '\n',
    );
    await child(`ssh to 127.0.0.1 (${instances.length} sshd)`, ssh);
  } finally {
    for (const sshd of instances) await sshd.stop();
  }
}
