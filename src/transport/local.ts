/**
 * The local transport: runs each command with `/bin/sh -c` on this machine, with
 * the same semantics as an SSH exec (stdin fed then closed, UTF-8 output, timeout,
 * SIGINT on interrupt).
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { TransportError, type ExecOptions, type ExecResult, type Transport } from './types.js';
import { CommandOutput, summarizeCommand } from './output.js';

/**
 * Each command runs in its own process group, as a remote command does under
 * sshd, so that interrupt() and a timeout reach the whole command (its children
 * too) and a Ctrl-C typed at kvmconf's terminal is left to the engine to relay.
 */
function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }
}

export function createLocalTransport(name: string): Transport {
  let count = 0;
  const running = new Set<ChildProcess>();

  const exec = (command: string, options: ExecOptions = {}): Promise<ExecResult> => {
    count++;
    return new Promise<ExecResult>((resolve, reject) => {
      const child = spawn('/bin/sh', ['-c', command], { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
      running.add(child);
      let done = false;
      let timer: NodeJS.Timeout | undefined;
      let killTimer: NodeJS.Timeout | undefined;

      const finish = (settle: () => void): void => {
        if (done) return;
        done = true;
        if (timer) clearTimeout(timer);
        settle();
      };
      /** SIGTERM to the command's group, SIGKILL if it is still there 2 s later. */
      const stop = (): void => {
        signalGroup(child, 'SIGTERM');
        killTimer = setTimeout(() => signalGroup(child, 'SIGKILL'), 2000);
        killTimer.unref();
      };
      const output = new CommandOutput(name, options, () => done, (error) => {
        finish(() => reject(error));
        stop();
      });

      if (options.timeoutMs !== undefined && options.timeoutMs > 0) {
        const ms = options.timeoutMs;
        timer = setTimeout(() => {
          finish(() => reject(new TransportError('timeout', name, `command exceeded its timeout of ${ms} ms: ${summarizeCommand(command)}`, output.end().stdout)));
          stop();
        }, ms);
      }

      child.stdout?.on('data', output.takeStdout);
      child.stderr?.on('data', output.takeStderr);
      child.on('error', (err) => {
        running.delete(child);
        finish(() => reject(new TransportError('unreachable', name, `cannot run /bin/sh: ${err.message}`)));
      });
      child.on('close', (code, signal) => {
        running.delete(child);
        if (killTimer) clearTimeout(killTimer);
        const { stdout, stderr } = output.end();
        const result: ExecResult = { stdout, stderr, code: signal ? null : code };
        if (signal) result.signal = signal;
        finish(() => resolve(result));
      });
      // A command that does not read its stdin must not fail the exec with EPIPE.
      child.stdin?.on('error', () => undefined);
      child.stdin?.end(options.stdin ?? '');
    });
  };

  return {
    label: 'local',
    get execCount() {
      return count;
    },
    exec,
    interrupt() {
      for (const child of running) signalGroup(child, 'SIGINT');
    },
    async close() {
      for (const child of running) signalGroup(child, 'SIGTERM');
    },
  };
}
