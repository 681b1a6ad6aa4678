/**
 * Pure /etc/fstab editing for mounts kvmconf manages. A managed line is identified by
 * its mount point; every other line (comments, blank lines, other mounts, their
 * spacing) is kept byte for byte, and a managed line that already says what is wanted
 * is kept as written, so hand formatting never flaps.
 */

export interface FstabEntry {
  spec: string;
  file: string;
  vfstype: string;
  options: string[];
  freq: string;
  passno: string;
}

export interface WantedMount {
  spec: string;
  /** The mount point: what identifies the line. */
  file: string;
  vfstype: string;
  /** Options that must be present with these values (`''` for a bare flag); others on the line are kept. */
  options: Record<string, string>;
}

export interface FstabEdit {
  content: string;
  /** The managed lines before the edit (in file order) and after it. */
  before: string[];
  after: string[];
}

/** A mount line's fields, or null for comments and blank lines. */
export function parseFstabLine(line: string): FstabEntry | null {
  const fields = line.trim().split(/\s+/);
  if (!fields[0] || fields[0].startsWith('#') || fields.length < 2) return null;
  const [spec, file, vfstype = 'auto', options = 'defaults', freq = '0', passno = '0'] = fields as [string, string, ...string[]];
  return { spec, file, vfstype, options: options.split(','), freq, passno };
}

function optionValue(options: string[], key: string): string | undefined {
  const found = options.find((option) => option === key || option.startsWith(`${key}=`));
  return found === undefined ? undefined : found.slice(key.length + 1);
}

const renderOption = (key: string, value: string) => (value === '' ? key : `${key}=${value}`);

/**
 * Whether a line already mounts what is wanted. `same(key, have, want)` compares option
 * values (e.g. pagesize=1024M and pagesize=1G); plain equality when not given.
 */
export function entrySatisfies(entry: FstabEntry, wanted: WantedMount, same = (_key: string, have: string, want: string) => have === want): boolean {
  return entry.vfstype === wanted.vfstype && Object.entries(wanted.options).every(([key, value]) => {
    const have = optionValue(entry.options, key);
    return have !== undefined && same(key, have, value);
  });
}

/** The line that replaces a wrong one: the wanted options first, the line's other options and numbers kept. */
function fixedLine(entry: FstabEntry | null, wanted: WantedMount): string {
  const keep = entry && entry.vfstype === wanted.vfstype;
  const others = keep ? entry.options.filter((option) => !(option.split('=')[0]! in wanted.options) && option !== 'defaults') : [];
  const options = [...Object.entries(wanted.options).map(([key, value]) => renderOption(key, value)), ...others];
  return [keep ? entry.spec : wanted.spec, wanted.file, wanted.vfstype, options.join(',') || 'defaults', entry?.freq ?? '0', entry?.passno ?? '0'].join(' ');
}

/**
 * Adds or fixes one line per wanted mount. The first line for a mount point is fixed in
 * place; later lines for the same mount point are dropped (fstab would mount it twice);
 * new lines are appended. Content null means the file does not exist.
 */
export function editFstab(content: string | null, wanted: WantedMount[], same?: (key: string, have: string, want: string) => boolean): FstabEdit {
  const lines = content === null || content === '' ? [''] : content.split('\n');
  const entries = lines.map(parseFstabLine);
  const before: string[] = [];
  const after: string[] = [];
  const drop = new Set<number>();
  const append: string[] = [];
  for (const mount of wanted) {
    const indexes = entries.flatMap((entry, index) => (entry?.file === mount.file ? [index] : []));
    before.push(...indexes.map((index) => lines[index]!));
    const first = indexes[0];
    if (first === undefined) {
      const line = fixedLine(null, mount);
      append.push(line);
      after.push(line);
      continue;
    }
    if (!entrySatisfies(entries[first]!, mount, same)) lines[first] = fixedLine(entries[first]!, mount);
    after.push(lines[first]!);
    indexes.slice(1).forEach((index) => drop.add(index));
  }
  const kept = lines.filter((_, index) => !drop.has(index));
  // Keep the final newline (the last element is '' when the file ends with one).
  if (kept[kept.length - 1] === '') kept.splice(kept.length - 1, 0, ...append);
  else if (append.length) kept.push(...append, '');
  return { content: kept.join('\n'), before, after };
}
