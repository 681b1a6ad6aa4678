/** Runs the real kvmconf CLI (dist/src/cli.js) as a user would, with a JSON report beside its output. */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, CLI_ENV, ROOT } from './paths.js';

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** The JSON report (docs/report-format.md), or undefined when none was written. */
  report: any;
}

const reports = mkdtempSync(join(tmpdir(), 'kvmconf-cli-run-'));
let count = 0;

/** `kvmconf ARGS` in CI mode (plain text), with `--report FILE` for apply; onStderr sees progress as it comes. */
export function kvmconf(args: string[], onStderr?: (text: string) => void, input?: string): Promise<CliRun> {
  const reportFile = join(reports, `report-${++count}.json`);
  const reportArgs = args[0] === 'apply' ? ['--report', reportFile] : [];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args, ...reportArgs], { cwd: ROOT, env: CLI_ENV });
    child.stdin.end(input ?? '');
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
      onStderr?.(String(chunk));
    });
    child.on('error', reject);
    child.on('close', (code) => {
      let report: unknown;
      try {
        report = JSON.parse(readFileSync(reportFile, 'utf8'));
      } catch {
        report = undefined;
      }
      resolve({ code, stdout, stderr, report });
    });
  });
}

/** `module target (scope)` of every change of a report whose status is one of `statuses`, sorted. */
export const changeKeys = (report: any, statuses: string[]): string[] =>
  report.hosts
    .flatMap((host: any) => host.tasks.flatMap((task: any) => task.changes.filter((c: any) => statuses.includes(c.status)).map((c: any) => `${c.module} ${c.target} (${c.scope})`)))
    .sort();
