/** `kvmconf validate`, `kvmconf schema`, `kvmconf modules`: everything that needs no host. */
import { loadPlaybook, playbookSchema } from '../config/playbook.js';
import { planJobs, playHosts } from '../engine/runner.js';
import { inventoryFrom, modules } from './shared.js';

export async function validateCommand(playbookFile: string, flags: { inventory?: string; limit?: string }): Promise<void> {
  const inventory = inventoryFrom(flags);
  const playbook = loadPlaybook(playbookFile, modules);
  let tasks = 0;
  const hosts = new Set<string>();
  for (const play of playbook.plays) {
    const names = playHosts(play, inventory, flags.limit, new Set());
    const jobs = planJobs(play, names, inventory, modules, {});
    names.forEach((name) => hosts.add(name));
    tasks += play.tasks.length;
    if (!names.length) process.stderr.write(`kvmconf: warning: play '${play.name}' matches no host (hosts: ${play.hosts})\n`);
    void jobs;
  }
  process.stdout.write(`${playbookFile}: valid (${playbook.plays.length} plays, ${tasks} tasks, ${hosts.size} hosts)\n`);
}

export async function schemaCommand(): Promise<void> {
  process.stdout.write(JSON.stringify(playbookSchema([...modules.values()]), null, 2) + '\n');
}

export async function modulesCommand(): Promise<void> {
  const width = Math.max(...[...modules.keys()].map((name) => name.length));
  for (const module of modules.values()) process.stdout.write(`${module.name.padEnd(width)}  ${module.summary}\n`);
}
