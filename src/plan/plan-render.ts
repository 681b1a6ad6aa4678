/**
 * A plan as a reviewer reads it: text (the check report with every change's commands),
 * JSON (the file itself) or Markdown (for a merge request comment).
 */
import type { PlanFile, PlanHost } from './plan-file.js';
import type { RunReport } from '../engine/results.js';
import { emptySummary } from '../engine/results.js';
import { renderText } from '../report/text.js';
import { changeLine } from '../report/common.js';

/** Where the plan came from, one `label: value` line each. */
function headerLines(plan: PlanFile): string[] {
  const selection = [
    ...(plan.limit ? [`limit ${plan.limit}`] : []),
    ...(plan.tags ? [`tags ${plan.tags.join(',')}`] : []),
    ...(plan.skipTags ? [`skip-tags ${plan.skipTags.join(',')}`] : []),
    ...Object.entries(plan.extraVars).map(([name, value]) => `-e ${name}=${typeof value === 'string' ? value : JSON.stringify(value)}`),
    ...plan.extraVarsOmitted.map((name) => `-e ${name} (secret, not saved)`),
  ];
  return [
    `plan made ${plan.createdAt} by kvmconf ${plan.toolVersion}`,
    `playbook: ${plan.playbook.source} (sha256 ${plan.playbook.sha256.slice(0, 12)})`,
    `inventory: ${plan.inventory.map((input) => `${input.source} (sha256 ${input.sha256.slice(0, 12)})`).join(', ')}`,
    ...(selection.length ? [`selection: ${selection.join(', ')}`] : []),
  ];
}

/** The plan as the check report it was made from, so the text matches what --check -v printed. */
function asReport(plan: PlanFile): RunReport {
  const summary = emptySummary();
  for (const host of plan.hosts) summary[host.status]++;
  return {
    version: 1, tool: 'kvmconf', toolVersion: plan.toolVersion, mode: 'check', playbook: plan.playbook.source, startedAt: plan.createdAt,
    durationMs: 0, interrupted: false, summary, exitCode: 0,
    hosts: plan.hosts.map(({ host, play, status, error, tasks }) => ({ host, play, status, tasks, execCount: 0, durationMs: 0, ...(error === undefined ? {} : { error }) })),
  };
}

export function renderPlanText(plan: PlanFile, color: boolean): string {
  return headerLines(plan).join('\n') + '\n\n' + renderText(asReport(plan), { color, diff: true, commands: true });
}

export function renderPlanJson(plan: PlanFile): string {
  return JSON.stringify(plan, null, 2) + '\n';
}

/** A fence longer than any backtick run inside, so commands holding backticks stay one block. */
function fenced(lines: string[], language = 'sh'): string[] {
  const longest = Math.max(2, ...lines.map((line) => Math.max(0, ...(line.match(/`+/g) ?? []).map((run) => run.length))));
  const fence = '`'.repeat(longest + 1);
  return [fence + language, ...lines, fence];
}

const code = (text: string): string => (text.includes('`') ? `\`\` ${text} \`\`` : `\`${text}\``);

function hostMarkdown(host: PlanHost): string[] {
  const lines = [`## ${host.host} (play ${host.play}): ${host.status}`, ''];
  if (host.error) lines.push(`**error:** ${host.error}`, '');
  for (const task of host.tasks) {
    for (const change of task.changes) {
      lines.push(`- ${code(changeLine(change, 'check'))}${change.reason ? ` — ${change.reason}` : ''}`);
      // The commands verbatim: a reviewer can copy them, a multi-line quoted value stays exact.
      if (change.commands?.length) lines.push('', ...fenced(change.commands.flatMap((command) => command.split('\n'))).map((line) => `  ${line}`), '');
    }
    for (const diagnostic of task.diagnostics) lines.push(`- ${diagnostic.severity}: ${diagnostic.message}`);
    if (task.error) lines.push(`- **error** in ${task.name}: ${task.error}`);
  }
  if (!host.tasks.some((task) => task.changes.length)) lines.push('No change.');
  return [...lines, ''];
}

export function renderPlanMarkdown(plan: PlanFile): string {
  const changed = plan.hosts.filter((host) => host.tasks.some((task) => task.changes.length)).length;
  return [
    `# kvmconf plan: ${changed} of ${plan.hosts.length} hosts change`,
    '',
    ...headerLines(plan).map((line) => `- ${line}`),
    '',
    ...plan.hosts.flatMap(hostMarkdown),
  ].join('\n');
}
