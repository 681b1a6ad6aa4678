/**
 * Head-to-head benchmark: `kvmconf apply --check --diff bench/peer/kvmconf.yaml` against
 * `ansible-playbook --check --diff bench/peer/ansible.yaml` (the same eight host settings,
 * each read live and in the file that persists it), on the same N hosts: loopback
 * addresses 127.0.0.2.. of private sshds (one per 15 addresses: sshd listens on fewer than 16), one inventory file for both
 * tools. Runs alternate (kvmconf, Ansible, kvmconf, ...) so both see the same machine load.
 *
 * Per run: wall time, controller CPU (the tool and its children, plus the SSH
 * ControlPersist masters Ansible leaves behind, read before they are stopped), SSH
 * connections and sessions per host (from sshd's VERBOSE log), and peak memory (sum of
 * the PSS of the tool's process tree, sampled every 100 ms). Needs Debian's ansible
 * package (`apt-get install ansible`) and openssh-server; runs as root.
 *
 *   npm run bench:peer -- [HOSTS=10] [ROUNDS=2] [TOOLS=kvmconf,ansible]
 *
 * TOOLS=kvmconf times kvmconf alone (no ratio), for quick before/after comparisons.
 *
 * Sessions read root's ~/.bashrc as an empty file (see `emptyBashrc` in
 * test/helpers/sshd.ts): both tools are measured, not the bench machine's shell setup.
 * KVMCONF_BENCH_BASHRC=keep leaves it as it is.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startSshd, type SshdInstance } from '../test/helpers/sshd.js';
import { ROOT } from '../test/helpers/paths.js';

const hosts = Number(process.argv[2] ?? 10);
const rounds = Number(process.argv[3] ?? 2);
const tools = (process.argv[4] ?? 'kvmconf,ansible').split(',') as Run['tool'][];
if (!Number.isInteger(hosts) || hosts < 1 || hosts > 250) throw new Error('HOSTS must be 1..250 (one loopback address each)');
if (!Number.isInteger(rounds) || rounds < 1) throw new Error('ROUNDS must be at least 1');
if (!tools.length || tools.some((tool) => tool !== 'kvmconf' && tool !== 'ansible')) throw new Error('TOOLS: a comma-separated list of kvmconf, ansible');
if (tools.includes('ansible') && !existsSync('/usr/bin/ansible-playbook')) throw new Error('ansible-playbook not found: apt-get install ansible');

const dir = mkdtempSync(join(tmpdir(), 'kvmconf-peer-'));
const addresses = Array.from({ length: hosts }, (_, i) => `127.0.0.${i + 2}`);

interface Run {
  tool: 'kvmconf' | 'ansible';
  round: number;
  wallS: number;
  cpuS: number;
  connectionsPerHost: number;
  sessionsPerHost: number;
  peakMiB: number;
  exitCode: number;
}

/** Pids of every process whose parent chain reaches `root`. */
function tree(root: number): number[] {
  const parent = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      parent.set(Number(entry), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // exited meanwhile
    }
  }
  const found = [root];
  for (let i = 0; i < found.length; i++) for (const [pid, ppid] of parent) if (ppid === found[i]) found.push(pid);
  return found;
}

function pssKiB(pid: number): number {
  try {
    const match = /^Pss:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return match ? Number(match[1]) : 0;
  } catch {
    return 0;
  }
}

/** Processes left running whose command line names `needle` (Ansible's ControlPersist ssh masters). */
function lingering(needle: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(needle)) pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime in clock ticks (USER_HZ 100)
  } catch {
    return 0;
  }
}

/** Runs `argv` under bash so `times` reports the CPU of the tool and every child it waited for. */
async function measured(argv: string[], env: NodeJS.ProcessEnv, logFile: string): Promise<{ wallS: number; cpuS: number; peakMiB: number; exitCode: number }> {
  const quoted = argv.map((word) => `'${word.replace(/'/g, `'\\''`)}'`).join(' ');
  const script = `${quoted} >${logFile} 2>&1; kc_rc=$?; times >&2; exit $kc_rc`;
  const started = process.hrtime.bigint();
  const child = spawn('/bin/bash', ['-c', script], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (data: string) => (stderr += data));
  let peak = 0;
  const sample = () => {
    if (child.pid === undefined) return;
    peak = Math.max(peak, tree(child.pid).reduce((sum, pid) => sum + pssKiB(pid), 0));
  };
  const timer = setInterval(sample, 100);
  const exitCode = await new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)));
  clearInterval(timer);
  const wallS = Number(process.hrtime.bigint() - started) / 1e9;
  // `times`: shell user/sys, then children user/sys, as 0m1.234s.
  const times = [...(stderr.trim().split('\n').pop() ?? '').matchAll(/(\d+)m([\d.]+)s/g)].map((m) => Number(m[1]) * 60 + Number(m[2]));
  return { wallS, cpuS: times.reduce((a, b) => a + b, 0), peakMiB: peak / 1024, exitCode };
}

/** sshd listens on fewer than 16 sockets (MAX_LISTEN_SOCKS): one instance per 15 addresses, one client key for all. */
const PER_SSHD = 15;
const sshds: SshdInstance[] = [];
for (let first = 0; first < addresses.length; first += PER_SSHD) {
  sshds.push(await startSshd({
    user: 'root',
    port: await freePort(),
    ...(sshds[0] ? { clientKeyFile: sshds[0].clientKeyFile } : {}),
    emptyBashrc: process.env.KVMCONF_BENCH_BASHRC !== 'keep',
    config: ['MaxStartups 1000', 'MaxSessions 1000', ...addresses.slice(first, first + PER_SSHD).map((address) => `ListenAddress ${address}`)],
  }));
}
const sshdOf = (index: number): SshdInstance => sshds[Math.floor(index / PER_SSHD)]!;
try {
  const known = join(dir, 'known_hosts');
  const keyOf = (instance: SshdInstance) => instance.hostKeyLine.split(' ').slice(1).join(' ');
  writeFileSync(known, addresses.map((address, i) => `[${address}]:${sshdOf(i).port} ${keyOf(sshdOf(i))}`).join('\n') + '\n');
  const inventory = join(dir, 'inventory.yaml');
  writeFileSync(
    inventory,
    [
      'all:',
      '  vars:',
      '    ansible_user: root',
      `    ansible_ssh_private_key_file: ${sshds[0]!.clientKeyFile}`,
      `    ansible_ssh_common_args: "-o UserKnownHostsFile=${known} -o StrictHostKeyChecking=yes"`,
      `    ansible_python_interpreter: /usr/bin/python3`,
      `    kvmconf_known_hosts_file: ${known}`,
      '  hosts:',
      ...addresses.map((address, i) => `    hv${String(i + 1).padStart(3, '0')}: {ansible_host: ${address}, ansible_port: ${sshdOf(i).port}}`),
      '',
    ].join('\n'),
  );

  const ansibleCfg = join(dir, 'ansible.cfg');
  writeFileSync(ansibleCfg, '# defaults; the bench sets its options through the environment\n');
  const runs: Run[] = [];
  for (let round = 1; round <= rounds; round++) {
    for (const tool of tools) {
      const cpDir = mkdtempSync(join(dir, 'cp-'));
      const logFile = join(dir, `${tool}-${round}.log`);
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        ANSIBLE_PIPELINING: 'True',
        ANSIBLE_FORKS: String(hosts),
        ANSIBLE_SSH_CONTROL_PATH_DIR: cpDir,
        ANSIBLE_LOCAL_TEMP: join(cpDir, 'tmp'),
        ANSIBLE_NOCOLOR: '1',
        ANSIBLE_RETRY_FILES_ENABLED: 'False',
        ANSIBLE_CONFIG: ansibleCfg,
      };
      const argv =
        tool === 'kvmconf'
          ? [process.execPath, join(ROOT, 'dist', 'src', 'cli.js'), 'apply', '--check', '--diff', '--no-color', '-f', String(hosts), '-i', inventory, join(ROOT, 'bench', 'peer', 'kvmconf.yaml')]
          : ['/usr/bin/ansible-playbook', '--check', '--diff', '-f', String(hosts), '-i', inventory, join(ROOT, 'bench', 'peer', 'ansible.yaml')];
      const logBefore = sshds.map((instance) => instance.log().length);
      const result = await measured(argv, env, logFile);
      // Ansible's ssh ControlPersist masters outlive the run: count their CPU, then stop them.
      let leftCpu = 0;
      for (const pid of lingering(cpDir)) {
        leftCpu += cpuSeconds(pid);
        try {
          process.kill(pid, 'SIGTERM');
        } catch {
          // gone already
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 300));
      const log = sshds.map((instance, i) => instance.log().slice(logBefore[i])).join('');
      const connections = (log.match(/^Connection from \S+ port \d+ on 127\.0\.0\.\d+ port/gm) ?? []).length;
      const sessions = (log.match(/^Starting session: /gm) ?? []).length;
      runs.push({ tool, round, ...result, cpuS: result.cpuS + leftCpu, connectionsPerHost: connections / hosts, sessionsPerHost: sessions / hosts });
      const last = runs[runs.length - 1]!;
      process.stderr.write(`${tool} round ${round}: ${last.wallS.toFixed(2)} s wall, exit ${last.exitCode} (log ${logFile})\n`);
    }
  }

  const of = (tool: Run['tool']) => runs.filter((run) => run.tool === tool);
  const range = (values: number[], digits: number) => {
    const min = Math.min(...values).toFixed(digits);
    const max = Math.max(...values).toFixed(digits);
    return min === max ? min : `${min}-${max}`;
  };
  const median = (values: number[]) => {
    const sorted = [...values].sort((a, b) => a - b);
    return sorted.length % 2 ? sorted[(sorted.length - 1) / 2]! : (sorted[sorted.length / 2 - 1]! + sorted[sorted.length / 2]!) / 2;
  };
  const rows = tools.map((tool) => {
    const list = of(tool);
    return {
      tool,
      wall: range(list.map((r) => r.wallS), 2),
      cpu: range(list.map((r) => r.cpuS), 2),
      conns: range(list.map((r) => r.connectionsPerHost), 1),
      sessions: range(list.map((r) => r.sessionsPerHost), 1),
      peak: range(list.map((r) => r.peakMiB), 0),
    };
  });
  // Ratios per round (each round's runs ran back to back), then their range.
  const both = tools.includes('kvmconf') && tools.includes('ansible');
  const wallRatios = both ? of('ansible').map((run, i) => run.wallS / of('kvmconf')[i]!.wallS) : [];
  const cpuRatios = both ? of('ansible').map((run, i) => run.cpuS / Math.max(0.001, of('kvmconf')[i]!.cpuS)) : [];
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  console.log(`\n${hosts} hosts, ${rounds} rounds alternating, load average after: ${load}\n`);
  console.log('| tool | wall (s) | controller CPU (s) | SSH connections/host | SSH sessions/host | peak memory (MiB, PSS) |');
  console.log('|---|---|---|---|---|---|');
  for (const row of rows) console.log(`| ${row.tool} | ${row.wall} | ${row.cpu} | ${row.conns} | ${row.sessions} | ${row.peak} |`);
  if (both) console.log(`| Ansible / kvmconf | ${range(wallRatios, 1)}x | ${range(cpuRatios, 1)}x | | | |`);
  console.log('');
  console.log(
    JSON.stringify(
      {
        hosts, rounds, load,
        runs: runs.map((run) => ({ ...run, wallS: +run.wallS.toFixed(3), cpuS: +run.cpuS.toFixed(3), peakMiB: +run.peakMiB.toFixed(1) })),
        ...(both ? { ratio: { wall: { min: Math.min(...wallRatios), median: median(wallRatios), max: Math.max(...wallRatios) }, cpu: { min: Math.min(...cpuRatios), median: median(cpuRatios), max: Math.max(...cpuRatios) } } } : {}),
      },
      null,
      2,
    ),
  );
  const failed = runs.filter((run) => run.exitCode !== 0 && run.exitCode !== 2);
  // A run whose hosts were unreachable or failed measured something else: the figures do not count.
  if (failed.length) {
    process.stderr.write(`kvmconf bench: ${failed.map((r) => `${r.tool} round ${r.round} exited ${r.exitCode}`).join(', ')}; the figures above are not a comparison; see the logs in ${dir}\n`);
    process.exitCode = 1;
  }
} finally {
  for (const instance of sshds) await instance.stop();
}
