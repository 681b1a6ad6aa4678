/**
 * Runs the checks that span hosts (FleetCheck) over every prepared task of a playbook,
 * before any connection: errors become input errors naming host and task; warnings are
 * attached to their task and shown with it.
 */
import type { FleetCheck, FleetTask } from '../module.js';
import { InputError, InputErrors } from '../errors.js';
import type { Inventory } from '../config/inventory.js';
import type { HostJob } from './host-run.js';
import type { PreparedTask } from './prepare.js';

export function runFleetChecks(jobs: Iterable<HostJob>, inventory: Inventory, checks: readonly FleetCheck[]): void {
  if (!checks.length) return;
  const prepared = new Map<FleetTask, PreparedTask>();
  for (const job of jobs) {
    const hostVars = inventory.hosts.get(job.host)?.vars ?? {};
    for (const task of job.tasks) {
      prepared.set({ host: job.host, hostVars, module: task.module.name, name: task.name, params: task.params, where: task.where }, task);
    }
  }
  const tasks = [...prepared.keys()];
  const errors: InputError[] = [];
  for (const diagnostic of checks.flatMap((check) => check(tasks))) {
    if (diagnostic.severity === 'error') {
      errors.push(new InputError(`${diagnostic.task.module}: on host ${diagnostic.task.host}: ${diagnostic.message}`, diagnostic.task.where));
      continue;
    }
    const task = prepared.get(diagnostic.task)!;
    task.notes = [...(task.notes ?? []), { severity: diagnostic.severity, message: diagnostic.message }];
  }
  if (errors.length) throw errors.length === 1 ? errors[0]! : new InputErrors(errors);
}
