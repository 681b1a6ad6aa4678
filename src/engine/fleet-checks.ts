/**
 * Runs the checks that span hosts (FleetCheck) over every prepared task of a playbook,
 * before any connection: errors become input errors naming host and task; warnings are
 * attached to their task and shown with it.
 */
import type { FleetCheck, FleetTask } from '../kit/module.js';
import { InputError, InputErrors } from '../errors.js';
import type { Inventory } from '../config/inventory.js';
import type { HostJob } from './host-run.js';

export function runFleetChecks(jobs: Iterable<HostJob>, inventory: Inventory, checks: readonly FleetCheck[]): void {
  if (!checks.length) return;
  const prepared = new Map<FleetTask, { job: HostJob; index: number }>();
  for (const job of jobs) {
    const hostVars = inventory.hosts.get(job.host)?.vars ?? {};
    job.tasks.forEach((task, index) => {
      prepared.set({ host: job.host, hostVars, module: task.module.name, name: task.name, params: task.params, where: task.where }, { job, index });
    });
  }
  const tasks = [...prepared.keys()];
  const errors: InputError[] = [];
  for (const diagnostic of checks.flatMap((check) => check(tasks))) {
    if (diagnostic.severity === 'error') {
      errors.push(new InputError(`${diagnostic.task.module}: on host ${diagnostic.task.host}: ${diagnostic.message}`, diagnostic.task.where));
      continue;
    }
    const { job, index } = prepared.get(diagnostic.task)!;
    // Hosts share prepared tasks: the note goes on this host's own copy.
    const task = job.tasks[index]!;
    job.tasks = job.tasks.map((other, at) => (at === index ? { ...task, notes: [...(task.notes ?? []), { severity: diagnostic.severity, message: diagnostic.message }] } : other));
  }
  if (errors.length) throw errors.length === 1 ? errors[0]! : new InputErrors(errors);
}
