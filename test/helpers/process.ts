/** Process checks the fixtures and tests share. */

/** Is a process with this pid alive (signal 0 delivers nothing, it only checks)? */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
