/** `kvmconf show PLAN`: a saved plan rendered for review. */
import { readPlan } from '../plan/plan-file.js';
import { renderPlanJson, renderPlanMarkdown, renderPlanText } from '../plan/plan-render.js';
import { shouldUseColor } from '../report/style.js';

export function showCommand(file: string, flags: { format: 'text' | 'json' | 'markdown'; color: boolean }): void {
  const plan = readPlan(file);
  if (flags.format === 'json') process.stdout.write(renderPlanJson(plan));
  else if (flags.format === 'markdown') process.stdout.write(renderPlanMarkdown(plan));
  else process.stdout.write(renderPlanText(plan, flags.color && shouldUseColor(process.stdout)));
}
