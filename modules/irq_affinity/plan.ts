/**
 * Pure parts of irq_affinity: which CPU each matched IRQ gets, and the irqbalance
 * config edit. The boot script (boot.ts) does the same spread in awk; unit tests
 * run both on the same input.
 */

export interface IrqInfo {
  irq: number;
  /** /sys/kernel/irq/N/actions: the handler names, comma separated (`virtio0-input.0`). */
  actions: string;
  affinity: number[];
  /** effective_affinity_list; null when the kernel has none, [] when the IRQ is not started. */
  effective: number[] | null;
  /** From debugfs when mounted: the kernel spreads this IRQ itself and refuses moves. null: unknown. */
  managed: boolean | null;
}

/**
 * The queue number of an IRQ: the digits that end its first action name, before any
 * `@` suffix (`virtio0-input.3` -> 3, `mlx5_comp7@pci:...` -> 7, `nvme0q2` -> 2);
 * null for names without one (`virtio0-config`).
 */
export function queueNumber(actions: string): number | null {
  const first = actions.split(',')[0]!.replace(/@.*/, '');
  const match = /([0-9]+)$/.exec(first);
  return match ? Number(match[1]) : null;
}

/** Queue i to CPU i, round-robin over `cpus`; IRQs without a queue number take the slots 0, 1, ... in IRQ order. */
export function assignCpus(irqs: readonly IrqInfo[], cpus: readonly number[]): Array<{ irq: IrqInfo; cpu: number }> {
  let unnumbered = 0;
  return [...irqs]
    .sort((a, b) => a.irq - b.irq)
    .map((irq) => {
      const queue = queueNumber(irq.actions) ?? unnumbered++;
      return { irq, cpu: cpus[queue % cpus.length]! };
    });
}

export const BANNED_KEY = 'IRQBALANCE_BANNED_CPULIST';

/** The value a shell-style env file gives `key` (last uncommented assignment), or null. */
export function envValue(content: string | null, key: string): string | null {
  if (content === null) return null;
  let value: string | null = null;
  for (const line of content.split('\n')) {
    const match = new RegExp(`^\\s*(?:export\\s+)?${key}=(.*)$`).exec(line);
    if (match) value = match[1]!.trim().replace(/^(["'])(.*)\1$/, '$2');
  }
  return value;
}

/**
 * Sets `key=value` in an env file line by line, keeping every other byte: the last
 * assignment is replaced, otherwise the line goes after a commented example, otherwise at the end.
 */
export function setEnvValue(content: string | null, key: string, value: string): string {
  const line = `${key}=${value}`;
  if (content === null || content === '') return `${line}\n`;
  const lines = content.split('\n');
  const assignment = new RegExp(`^\\s*(?:export\\s+)?${key}=`);
  let index = -1;
  lines.forEach((text, i) => { if (assignment.test(text)) index = i; });
  if (index >= 0) {
    lines[index] = line;
    return lines.join('\n');
  }
  const example = lines.findIndex((text) => new RegExp(`^\\s*#\\s*${key}=`).test(text));
  if (example >= 0) {
    lines.splice(example + 1, 0, line);
    return lines.join('\n');
  }
  return content.endsWith('\n') ? `${content}${line}\n` : `${content}\n${line}\n`;
}
