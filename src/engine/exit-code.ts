/**
 * Exit codes, stable and documented in README.md (Terraform-style):
 *   0  in desired state (apply: converged)
 *   1  error: bad input, or a host failed or was unreachable
 *   2  --check found drift; apply --detailed-exitcode made changes
 *   3  the only remaining difference is pending (reboot, module reload, guest restart);
 *      apply also exits 3 when the play allowed a reboot or reload and a host's guests policy held it
 *   4  interrupted (Ctrl-C) before every host finished
 */
import type { RunReport } from './results.js';

export const EXIT = { ok: 0, error: 1, drift: 2, pending: 3, interrupted: 4 } as const;

export function exitCode(report: RunReport, detailed: boolean): number {
  const { summary } = report;
  if (summary.failed || summary.unreachable) return EXIT.error;
  if (report.interrupted) return EXIT.interrupted;
  if (report.mode === 'check') return summary.changed ? EXIT.drift : summary.pending ? EXIT.pending : EXIT.ok;
  const held = report.hosts.some((host) => host.finish?.status === 'held');
  if (!detailed) return held ? EXIT.pending : EXIT.ok;
  return summary.changed ? EXIT.drift : summary.pending ? EXIT.pending : EXIT.ok;
}
