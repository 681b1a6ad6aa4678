/**
 * Reads back what an owned tmpfiles.d file sets, for the before/after of its
 * persist change: `w PATH - - - - VALUE` lines as `name=value` pairs.
 */
import { fileDiff, type Change } from '../../src/kit/index.js';
import { tmpfilesCommand, type SysfsWrite } from './tmpfiles.js';

/** The `w` lines of a tmpfiles.d file, in file order; null when the file is absent. */
export function tmpfilesWrites(content: string | null): SysfsWrite[] | null {
  if (content === null) return null;
  return content.split('\n').flatMap((line) => {
    const match = /^w\+?\s+(\S+)\s+\S+\s+\S+\s+\S+\s+\S+\s+(.*)$/.exec(line.trim());
    return match ? [{ path: match[1]!, value: match[2]!.trim() }] : [];
  });
}

/** `merge_across_nodes=0; run=0` (each path named by `label`); null when absent. */
export function writesSummary(writes: SysfsWrite[] | null, label: (path: string) => string): string | null {
  if (writes === null) return null;
  return writes.map(({ path, value }) => `${label(path)}=${value}`).join('; ') || '(empty)';
}

/** The persist change of an owned tmpfiles.d file: before and after as the values it writes, with the file's diff. */
export function tmpfilesChange(module: string, path: string, current: string | null, desired: string | null, label: (path: string) => string): Change {
  return {
    module, target: path, scope: 'persist',
    before: writesSummary(tmpfilesWrites(current), label), after: writesSummary(tmpfilesWrites(desired), label),
    diff: fileDiff(path, current, desired),
    commands: [tmpfilesCommand(path, desired, current)!],
  };
}
