/**
 * Saved plans against a real OpenSSH sshd: a plan made on two hosts, one host's owned
 * file changed behind kvmconf's back, then the plan applied: that host is refused with
 * nothing written, the other gets exactly the plan's commands, and the plan is stale after.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSshd, type SshdInstance } from '../helpers/sshd.js';
import { TEST_MODULES } from '../helpers/file-module.js';
import { loadInventory } from '../../src/config/inventory.js';
import { loadPlaybook } from '../../src/config/playbook.js';
import { runPlaybook, type RunOptions } from '../../src/engine/runner.js';
import { connect } from '../../src/transport/connect.js';
import type { Transport } from '../../src/transport/types.js';
import { buildPlan, readPlan, savedHosts, writePlan, type PlanFile } from '../../src/plan/plan-file.js';

const work = mkdtempSync(join(tmpdir(), 'kvmconf-plan-'));
chmodSync(work, 0o700);
let sshd: SshdInstance;

before(async () => {
  sshd = await startSshd({ sudo: 'nopasswd' });
});
after(async () => {
  await sshd?.stop();
});

/** Two inventory hosts on the one sshd, each owning its own file. */
function inventory(files: Record<string, string>): string {
  writeFileSync(join(work, 'known_hosts'), sshd.hostKeyLine + '\n');
  const hosts = Object.entries(files).map(([name, file]) =>
    `    ${name}:\n      ansible_host: 127.0.0.1\n      ansible_port: ${sshd.port}\n      ansible_user: ${sshd.user}\n` +
      `      ansible_ssh_private_key_file: ${sshd.clientKeyFile}\n      kvmconf_known_hosts_file: ${join(work, 'known_hosts')}\n      owned: ${file}\n`);
  const path = join(work, 'inventory.yaml');
  writeFileSync(path, `all:\n  hosts:\n${hosts.join('')}`);
  return path;
}

/** Every script each host received, by host label, through the real transport. */
const scripts = new Map<string, string[]>();
async function recordingConnect(spec: Parameters<typeof connect>[0]): Promise<Transport> {
  const transport = await connect(spec);
  const sent = scripts.get(spec.name) ?? [];
  scripts.set(spec.name, sent);
  return new Proxy(transport, {
    get(target, property) {
      if (property === 'exec') return (command: string, options?: { stdin?: string }) => (sent.push(options?.stdin ?? ''), target.exec(command, options));
      const value = Reflect.get(target, property);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

function options(extra: Partial<RunOptions>): RunOptions {
  return {
    mode: 'apply', forks: 2, commandTimeoutMs: 30_000, detailedExitCode: false, toolVersion: 'test', connectTransport: recordingConnect,
    connection: { hostKeyChecking: 'strict', connectTimeoutMs: 10_000, keepaliveIntervalMs: 5_000 },
    ...extra,
  };
}

test('a plan refuses the host changed since, runs exactly its commands on the other, and is stale after', async () => {
  const files = { hva: join(work, 'a.conf'), hvb: join(work, 'b.conf') };
  for (const file of Object.values(files)) writeFileSync(file, 'before\n');
  const inventoryFile = inventory(files);
  const playbookFile = join(work, 'site.yaml');
  writeFileSync(playbookFile, '- hosts: all\n  become: true\n  tasks:\n    - test_file: {path: "{{ owned }}", content: "planned\\n"}\n');
  const playbook = loadPlaybook(playbookFile, TEST_MODULES);
  const run = (extra: Partial<RunOptions>) => runPlaybook(playbook, loadInventory(inventoryFile), TEST_MODULES, options(extra));

  const check = await run({ mode: 'check', fingerprint: true });
  assert.deepEqual(check.hosts.map((host) => [host.host, host.status]), [['hva', 'changed'], ['hvb', 'changed']], JSON.stringify(check.hosts.map((h) => h.error)));
  const planFile = join(work, 'plan.json');
  writePlan(planFile, buildPlan(check, playbook.plays, { toolVersion: 'test', playbook: playbookFile, inventory: [inventoryFile], extraVars: {} }));
  const plan: PlanFile = readPlan(planFile);
  assert.equal(plan.hosts[0]!.fingerprint!.files[files.hva], plan.hosts[1]!.fingerprint!.files[files.hvb], 'both planned from the same content');

  writeFileSync(files.hvb, 'edited by hand\n');
  scripts.clear();
  const apply = await run({ savedPlan: savedHosts(plan) });
  const [hva, hvb] = apply.hosts;
  assert.equal(hva!.status, 'changed', hva!.error);
  assert.equal(readFileSync(files.hva, 'utf8'), 'planned\n');
  const [, applyScript] = scripts.get('hva')!;
  const planned = plan.hosts[0]!.tasks.flatMap((task) => task.changes.map((change) => change.commands!));
  assert.ok(planned.length > 0);
  for (const commands of planned) assert.ok(applyScript!.includes(`set -e\n${commands.join('\n')}\n)`), 'each planned step ran with exactly its planned commands');

  assert.equal(hvb!.status, 'failed');
  assert.match(hvb!.error!, new RegExp(`state changed since the plan was made: task .test_file.: the state it was planned from changed; ${files.hvb} changed \\(sha256 [0-9a-f]{12} -> [0-9a-f]{12}\\); nothing was changed on this host`));
  assert.equal(hvb!.execCount, 1, 'gather only');
  assert.equal(readFileSync(files.hvb, 'utf8'), 'edited by hand\n');
  assert.equal(apply.exitCode, 1);

  const again = await run({ savedPlan: savedHosts(plan) });
  assert.deepEqual(again.hosts.map((host) => host.status), ['failed', 'failed']);
  assert.match(again.hosts[0]!.error!, /state changed since the plan was made/);
  assert.equal(again.hosts[0]!.execCount, 1, 'a stale plan writes nothing');
  assert.equal(readFileSync(files.hva, 'utf8'), 'planned\n');
});
