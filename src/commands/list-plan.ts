/**
 * `apply --list-hosts` and `--list-tasks`, in ansible-playbook's layout: what a run would
 * target and run (after --limit, --tags, --skip-tags), without contacting any host.
 */
import type { Playbook } from '../config/playbook.js';
import type { Inventory } from '../config/inventory.js';
import { playHosts } from '../engine/runner.js';
import { selectedByTags, type TagFilter } from '../engine/prepare.js';

const tagList = (tags: string[]): string => `[${[...new Set(tags)].join(', ')}]`;

export function listPlan(playbook: Playbook, inventory: Inventory, options: TagFilter & { limit?: string; hosts: boolean; tasks: boolean }): string {
  const lines = ['', `playbook: ${playbook.file}`];
  playbook.plays.forEach((play, index) => {
    lines.push('', `  play #${index + 1} (${play.hosts}): ${play.name}\tTAGS: ${tagList(play.tags)}`);
    if (options.hosts) {
      const hosts = playHosts(play, inventory, options.limit, new Set());
      lines.push(`    pattern: ['${play.hosts}']`, `    hosts (${hosts.length}):`, ...hosts.map((host) => `      ${host}`));
    }
    if (options.tasks) {
      const tasks = play.tasks.filter((task) => selectedByTags([...play.tags, ...task.tags], options));
      lines.push('    tasks:', ...tasks.map((task) => `      ${task.name}\tTAGS: ${tagList([...play.tags, ...task.tags])}`));
    }
  });
  return lines.join('\n') + '\n';
}
