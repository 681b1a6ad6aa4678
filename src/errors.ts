/** Errors that reach the user, each knowing where in their input it points. */

export interface SourceLocation {
  file: string;
  line?: number;
  column?: number;
  /** JSON path inside the document, e.g. `$[0].tasks[2].sysctl.value`. */
  path?: string;
}

export function formatLocation(where: SourceLocation): string {
  const position = where.line ? `:${where.line}${where.column ? `:${where.column}` : ''}` : '';
  return `${where.file}${position}${where.path ? ` (${where.path})` : ''}`;
}

/** Bad playbook, inventory or command-line input: exit code 1, nothing was contacted. */
export class InputError extends Error {
  constructor(
    message: string,
    readonly where?: SourceLocation,
    readonly hint?: string,
  ) {
    super(where ? `${formatLocation(where)}: ${message}` : message);
    this.name = 'InputError';
  }
}

/** Several input errors reported at once, so a user fixes a file in one pass. */
export class InputErrors extends Error {
  constructor(readonly errors: InputError[]) {
    super(errors.map((error) => error.message + (error.hint ? `\n    ${error.hint}` : '')).join('\n'));
    this.name = 'InputErrors';
  }
}

/** Levenshtein distance, for did-you-mean suggestions. */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length]!;
}

/** `did you mean 'x'?` for the closest candidate within a third of the word's length. */
export function didYouMean(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.ceil(word.length / 3)) + 1;
  for (const candidate of candidates) {
    const d = distance(word.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return best === undefined ? undefined : `did you mean '${best}'?`;
}
