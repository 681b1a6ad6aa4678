/** `kvmconf validate`, `kvmconf schema`, `kvmconf modules`: everything that needs no host. */
import { extraVars } from '../config/extra-vars.js';
import { loadPlaybook, playbookSchema } from '../config/playbook.js';
import { planPlaybook, plannedHosts, resolveConnections } from '../engine/runner.js';
import type { SecretFlags } from './secrets.js';
import { connectionDefaults, fleetChecks, inventoryFrom, modules, runSecrets, warn, warnNoHosts, type ResolveFlags } from './shared.js';

export async function validateCommand(playbookFile: string, flags: ResolveFlags & SecretFlags & { extraVars?: string[] }): Promise<void> {
  await runSecrets(flags);
  const inventory = inventoryFrom(flags);
  const playbook = loadPlaybook(playbookFile, modules);
  const extra = extraVars(flags.extraVars);
  const plays = planPlaybook(playbook, inventory, modules, { limit: flags.limit, fleetChecks, extraVars: extra });
  const hosts = plannedHosts(plays);
  resolveConnections(hosts, inventory, { ...connectionDefaults(flags), extraVars: extra }, warn);
  for (const { play, jobs } of plays) {
    if (!jobs.size) warnNoHosts(play);
    for (const job of jobs.values()) {
      for (const task of job.tasks) for (const note of task.notes ?? []) process.stderr.write(`kvmconf: warning: ${job.host}: task '${task.name}': ${note.message}\n`);
    }
  }
  const tasks = playbook.plays.reduce((sum, play) => sum + play.tasks.length, 0);
  process.stdout.write(`${playbookFile}: valid (${playbook.plays.length} plays, ${tasks} tasks, ${hosts.size} hosts)\n`);
}

export async function schemaCommand(): Promise<void> {
  process.stdout.write(JSON.stringify(playbookSchema([...modules.values()]), null, 2) + '\n');
}

export async function modulesCommand(): Promise<void> {
  const width = Math.max(...[...modules.keys()].map((name) => name.length));
  for (const module of modules.values()) process.stdout.write(`${module.name.padEnd(width)}  ${module.summary}\n`);
}
