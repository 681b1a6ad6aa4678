/**
 * Validate at scale: writes an inventory of N hosts (groups of 1,000, each host with its
 * own `ansible_host` and one host var) and times `kvmconf validate` of a playbook against
 * it, the CLI as a user runs it, in a process of its own: wall time, CPU and peak memory.
 *
 *   npm run build && node dist/bench/validate-scale.js [HOSTS=100000] [PLAYBOOK=playbooks/virtual-host.yaml]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../test/helpers/paths.js';

const GROUP_SIZE = 1000;

function inventoryText(hosts: number): string {
  const lines = ['all:', '  children:'];
  for (let start = 0; start < hosts; start += GROUP_SIZE) {
    lines.push(`    rack${start / GROUP_SIZE}:`, '      hosts:');
    for (let i = start; i < Math.min(hosts, start + GROUP_SIZE); i++) {
      lines.push(`        hv${String(i).padStart(6, '0')}: {ansible_host: 10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}, hugepages_2m: ${128 + (i % 4) * 64}}`);
    }
  }
  return lines.join('\n') + '\n';
}

const hosts = Number(process.argv[2] ?? 100_000);
const playbook = process.argv[3] ?? join(ROOT, 'playbooks', 'virtual-host.yaml');
const inventory = join(mkdtempSync(join(tmpdir(), 'kvmconf-validate-')), 'inventory.yaml');
writeFileSync(inventory, inventoryText(hosts));
// GNU time's %M is the peak RSS of the timed process in KiB.
const run = spawnSync('/usr/bin/time', ['-f', '%e %U %S %M', process.execPath, join(ROOT, 'dist', 'src', 'cli.js'), 'validate', playbook, '-i', inventory], { encoding: 'utf8', maxBuffer: 1 << 28 });
if (run.error) throw run.error;
const [wall, user, system, rssKiB] = run.stderr.trim().split('\n').pop()!.split(' ').map(Number) as [number, number, number, number];
process.stdout.write(run.stdout);
if (run.status !== 0) throw new Error(`validate exited with ${run.status}: ${run.stderr.slice(-2000)}`);
console.log(`validate ${hosts} hosts: ${wall.toFixed(2)} s wall, ${(user + system).toFixed(2)} s CPU, peak RSS ${(rssKiB / 1024).toFixed(0)} MiB`);
