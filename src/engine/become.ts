/**
 * Running the batched scripts as another user (Ansible's become, method sudo). The
 * script always arrives on standard input. A sudo password is its first line: the
 * login shell reads it with the `read` builtin and hands it to `sudo -S` through a pipe
 * only when sudo asks for one, so it is never in a process's arguments or environment.
 */
import { quote } from '../kit/shell.js';
import { READ_UID } from '../kit/remote-lib.js';
import type { Secret } from '../secret.js';
import type { ExecResult, Transport } from '../transport/types.js';

export interface Become {
  /** The user to become (ansible_become_user / become_user; root by default). */
  user: string;
  /** sudo's password (ansible_become_password, --ask-become-pass); none: sudo -n. */
  password?: Secret;
}

/** A host-level failure whose message is meant for the user as it is. */
export class HostFailure extends Error {}

/** The remote command: a shell reading the script from stdin, as the become user. */
export function shellCommand(become: Become | undefined): string {
  if (!become) return 'exec /bin/sh -s';
  const user = quote(become.user);
  const sudo = become.user === 'root' ? 'sudo' : `sudo -u ${user}`;
  // Root is told by the uid the login shell reads itself: one process less per session.
  const already = become.user === 'root' ? `${READ_UID}; [ "$kc_uid" = 0 ]` : `[ "$(id -un)" = ${user} ]`;
  if (!become.password) return `if ${already}; then exec /bin/sh -s; else exec ${sudo} -n -- /bin/sh -s; fi`;
  return [
    'IFS= read -r kc_pw',
    `if ${already}; then unset kc_pw; exec /bin/sh -s; fi`,
    // Passwordless for this user after all (NOPASSWD, a cached ticket): the line is not fed to sudo.
    `if ${sudo} -n -- true 2>/dev/null; then unset kc_pw; exec ${sudo} -n -- /bin/sh -s; fi`,
    `{ printf '%s\\n' "$kc_pw"; unset kc_pw; exec cat; } | ${sudo} -S -p '' -- /bin/sh -s`,
  ].join('; ');
}

/** Runs a script that prints `mark` first, as the become user; fails clearly when become fails. */
export async function execScript(transport: Transport, become: Become | undefined, script: string, mark: string, timeoutMs: number): Promise<ExecResult> {
  const stdin = become?.password ? `${become.password.reveal()}\n${script}` : script;
  const result = await transport.exec(shellCommand(become), { stdin, timeoutMs });
  checkBecome(result, mark, become);
  return result;
}

export function checkBecome(result: ExecResult, mark: string, become: Become | undefined): void {
  if (result.stdout.includes(mark)) return;
  const stderr = result.stderr.trim();
  if (become && /^sudo:/m.test(stderr)) {
    const sudoLine = stderr.split('\n').find((line) => line.startsWith('sudo:'))!;
    const hint = become.password
      ? 'check ansible_become_password or the --ask-become-pass answer'
      : `kvmconf runs 'sudo -n': give this user passwordless sudo, set ansible_become_password (vaulted) or pass --ask-become-pass, or connect as root`;
    throw new HostFailure(`become failed: ${sudoLine} (${hint})`);
  }
  throw new HostFailure(`the remote shell produced no output (exit ${result.code ?? result.signal}): ${stderr.split('\n').slice(0, 3).join(' | ') || 'no error message'}`);
}
