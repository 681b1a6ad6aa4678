/**
 * Boot-time persistence for sysfs values that have no sysctl (THP defrag, KSM, per-node
 * hugepage pools): a tmpfiles.d file the task owns, whose `w` lines systemd-tmpfiles
 * writes early at every boot.
 */
import { catFileProbe, parseFileBlock, writeFileCommand, removeFileCommand, type Command } from '../../src/kit/index.js';

export interface SysfsWrite {
  path: string;
  value: string;
}

export function tmpfilesPath(name: string): string {
  return `/etc/tmpfiles.d/kvmconf-${name}.conf`;
}

export function renderTmpfiles(writes: SysfsWrite[], owner: string): string {
  const lines = writes.map(({ path, value }) => `w ${path} - - - - ${value}`);
  return `# Managed by kvmconf (${owner}); written to sysfs at every boot by systemd-tmpfiles.\n${lines.join('\n')}\n`;
}

export const tmpfilesProbe = catFileProbe;
export const parseTmpfiles = parseFileBlock;

/** Write the file, or remove it when nothing needs persisting; undefined when already right. */
export function tmpfilesCommand(path: string, desired: string | null, current: string | null): Command | undefined {
  if (desired === current) return undefined;
  return desired === null ? removeFileCommand(path, current) : writeFileCommand(path, desired, current);
}
