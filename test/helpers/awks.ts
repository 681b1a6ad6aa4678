/**
 * The awks a target may have, and probe or gather scripts rewritten to run one of them:
 * the rewrites follow the call text src/kit/awk-reader.ts writes.
 */

/** Debian's mawk, gawk (RHEL) and busybox's (small images); .ci/apt-packages installs them. */
export const AWKS: readonly (readonly string[])[] = [['/usr/bin/mawk'], ['/usr/bin/gawk'], ['/usr/bin/gawk', '--posix'], ['/bin/busybox', 'awk']];

/** A probe whose reader calls each start AWK instead of `awk`. */
export function probeWithAwk(script: string, awk: readonly string[]): string {
  return changed(script, script.replaceAll("; awk '", `; ${awk.join(' ')} '`));
}

/** A gather script whose one awk is AWK. */
export function gatherWithAwk(script: string, awk: readonly string[]): string {
  return changed(script, script.replace('; awk -v kc_mark=', `; ${awk.join(' ')} -v kc_mark=`));
}

/** A rewrite that found no awk call would test the default awk under another name. */
function changed(before: string, after: string): string {
  if (after === before) throw new Error('no awk call to rewrite: the reader call text changed (src/kit/awk-reader.ts)');
  return after;
}
