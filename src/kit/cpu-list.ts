/**
 * CPU lists as the kernel writes them (`0-3,8,10-11`) and the hex masks of
 * rps_cpus / xps_cpus (`ff,00000000`: 32-bit words, most significant first).
 */

export const CPULIST_PATTERN = '^[0-9]{1,4}(-[0-9]{1,4})?(,[0-9]{1,4}(-[0-9]{1,4})?)*$';

/** `0-2,5` -> [0, 1, 2, 5]; '' -> []. Throws on anything else, so a bad read is never taken for a value. */
export function parseCpuList(text: string): number[] {
  const trimmed = text.trim();
  if (trimmed === '') return [];
  if (!new RegExp(CPULIST_PATTERN).test(trimmed)) throw new Error(`'${text}' is not a CPU list`);
  const cpus = new Set<number>();
  for (const part of trimmed.split(',')) {
    const [from, to = from] = part.split('-').map(Number) as [number, number?];
    if (to! < from) throw new Error(`'${text}': range ${part} runs backwards`);
    for (let cpu = from; cpu <= to!; cpu++) cpus.add(cpu);
  }
  return [...cpus].sort((a, b) => a - b);
}

/** [0, 1, 2, 5] -> `0-2,5`, the form /proc/irq/N/smp_affinity_list reads back. */
export function formatCpuList(cpus: Iterable<number>): string {
  const sorted = [...new Set(cpus)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(i === j ? String(sorted[i]) : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}

/** [0, 1, 33] -> `2,00000003`, as the kernel prints a cpumask; [] -> `0`. */
export function cpuMask(cpus: readonly number[]): string {
  if (!cpus.length) return '0';
  const words: number[] = [];
  for (const cpu of cpus) {
    const word = Math.floor(cpu / 32);
    while (words.length <= word) words.push(0);
    words[word] = (words[word]! | (1 << (cpu % 32))) >>> 0;
  }
  const hex = words.reverse().map((word) => word.toString(16).padStart(8, '0'));
  hex[0] = hex[0]!.replace(/^0+(?=.)/, '');
  return hex.join(',');
}

/** `00000000,00000003` or `3` -> [0, 1]: the CPUs of a kernel cpumask. */
export function parseCpuMask(text: string): number[] {
  const trimmed = text.trim();
  if (!/^[0-9a-fA-F]+(,[0-9a-fA-F]+)*$/.test(trimmed)) throw new Error(`'${text}' is not a CPU mask`);
  const cpus: number[] = [];
  const words = trimmed.split(',').reverse();
  words.forEach((word, index) => {
    const value = parseInt(word, 16);
    for (let bit = 0; bit < 32; bit++) if ((value >>> bit) & 1) cpus.push(index * 32 + bit);
  });
  return cpus.sort((a, b) => a - b);
}
