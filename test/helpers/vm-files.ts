/**
 * What a fault left on a lab VM's files, read over the lab's own OpenSSH client: the
 * sha256 of each target and of every kvmconf backup of it, and stray temporary files.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { Vm } from '../lab/lab.js';

export const sha256 = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex');

export interface FileSums {
  /** path -> sha256, or 'absent' */
  targets: Record<string, string>;
  /** backup file -> sha256 */
  backups: Record<string, string>;
  /** kvmconf's temporary files left in the targets' folders */
  strays: string[];
}

/** The state of `paths`, their backups under /var/backups/kvmconf and the `.kvmconf.*` temp files beside them. */
export async function fileSums(vm: Vm, paths: string[]): Promise<FileSums> {
  const folders = [...new Set(paths.map((path) => path.slice(0, path.lastIndexOf('/'))))];
  const script = [
    ...paths.map((path) => `if [ -e '${path}' ]; then echo "T ${path} $(sha256sum < '${path}' | cut -d' ' -f1)"; else echo "T ${path} absent"; fi`),
    `find /var/backups/kvmconf -type f 2>/dev/null | while read -r f; do echo "B $f $(sha256sum < "$f" | cut -d' ' -f1)"; done`,
    ...folders.map((folder) => `for f in '${folder}'/.kvmconf.*; do [ -e "$f" ] && echo "S $f -"; done; true`),
  ].join('\n');
  const lines = (await vm.run(script)).trim().split('\n').filter(Boolean);
  const sums: FileSums = { targets: {}, backups: {}, strays: [] };
  for (const line of lines) {
    const [kind, path, sum] = line.split(' ') as [string, string, string];
    if (kind === 'T') sums.targets[path] = sum;
    else if (kind === 'B') sums.backups[path] = sum;
    else sums.strays.push(path);
  }
  return sums;
}

/**
 * No file lost, truncated or half-written: every target holds either its original or
 * its planned content, every backup is a whole copy of the original of the file it
 * backs up, and no temporary file is left behind. A host that crashed mid-write may keep
 * the temporary file its journal had committed (`strays: 'allowed'`): the next write into
 * that folder removes it, which the re-run then checks.
 */
export function assertWhole(
  sums: FileSums,
  original: Record<string, string>,
  planned: Record<string, string>,
  context: string,
  strays: 'none' | 'allowed' = 'none',
): void {
  for (const [path, sum] of Object.entries(sums.targets)) {
    assert.ok(sum === original[path] || sum === planned[path], `${context}: ${path} is neither its original nor its planned content (sha256 ${sum})`);
  }
  for (const [backup, sum] of Object.entries(sums.backups)) {
    const path = Object.keys(original).find((target) => backup.startsWith(`/var/backups/kvmconf${target}.`));
    assert.ok(path, `${context}: backup ${backup} of no target`);
    assert.equal(sum, original[path], `${context}: backup ${backup} is not a whole copy of the original ${path}`);
  }
  if (strays === 'none') assert.deepEqual(sums.strays, [], `${context}: temporary files left behind`);
}
