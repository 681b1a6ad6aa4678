/**
 * Shell functions every apply script carries, and the TypeScript helpers modules call
 * to use them. Keeping file writes here means every module gets the same guarantees:
 * atomic replace, a timestamped backup outside config folders, owner and mode kept,
 * a guard against the file having changed since gather, a read-back, and no symbolic
 * link ever replaced by a file (see SYMLINK_REFUSAL).
 */
import { createHash } from 'node:crypto';
import { quote, sh, type Command } from './shell.js';
import { awkReader, readWith } from './awk-reader.js';

export const BACKUP_DIR = '/var/backups/kvmconf';
/** Shell expansion of the backup folder; KC_BACKUP_DIR moves it (tests point it at a temp dir). */
const BACKUP_ROOT = '${KC_BACKUP_DIR:-' + BACKUP_DIR + '}';

/**
 * Why a symbolic link at a file kvmconf writes is refused rather than followed or
 * replaced: replacing /etc/sysctl.d/99-sysctl.conf (a link to ../sysctl.conf on Debian)
 * cuts the real file out of the boot, and writing through would change a file the
 * playbook never named. As with Ansible's copy and template without follow=yes, the
 * link is not written through; unlike them, it is not silently replaced either.
 */
const SYMLINK_ADVICE = 'kvmconf neither replaces a link with a file nor writes through it; point the task at the real file, or replace the link with a regular file';

export function symlinkRefusal(path: string, target: string): string {
  return `${path} is a symbolic link to ${target || '(unreadable)'}: ${SYMLINK_ADVICE}`;
}

/** POSIX sh; runs on dash, bash and busybox sh. */
export const REMOTE_LIB = String.raw`
kc_fail() { printf 'kvmconf: %s\n' "$*" >&2; exit 1; }
kc_link_target() { readlink -f "$1" 2>/dev/null || readlink "$1"; }
# kc_no_link PATH: refuse a symbolic link (the probe refuses it first; this catches one made since).
kc_no_link() { if [ -L "$1" ]; then kc_fail "$1 is a symbolic link to $(kc_link_target "$1"): ${SYMLINK_ADVICE}"; fi; }
kc_sha() { if [ -e "$1" ]; then sha256sum "$1" | cut -d' ' -f1; else echo absent; fi; }
# kc_write_file PATH MODE EXPECTED_SHA CONTENT: replace PATH atomically if it still has EXPECTED_SHA.
kc_write_file() {
  kc_path=$1 kc_mode=$2 kc_expect=$3 kc_content=$4 kc_backup=
  kc_no_link "$kc_path"
  kc_now=$(kc_sha "$kc_path")
  [ "$kc_expect" = any ] || [ "$kc_now" = "$kc_expect" ] || kc_fail "$kc_path changed since it was read (sha256 $kc_now); re-run to plan against the new content"
  kc_dir=$(dirname "$kc_path")
  mkdir -p "$kc_dir" || kc_fail "cannot create $kc_dir"
  # Under the apply lock no other run writes here: such a file is left by a run the host's crash cut short.
  rm -f "$kc_dir"/.kvmconf.?????? 2>/dev/null || :
  kc_tmp=$(mktemp "$kc_dir/.kvmconf.XXXXXX") || kc_fail "cannot create a temporary file in $kc_dir"
  if ! printf '%s' "$kc_content" > "$kc_tmp"; then rm -f "$kc_tmp"; kc_fail "cannot write $kc_path (disk full?)"; fi
  if [ -e "$kc_path" ]; then
    kc_backup_of "$kc_path" || { rm -f "$kc_tmp"; kc_fail "cannot make a backup of $kc_path under ${BACKUP_ROOT}"; }
    cp -p "$kc_path" "$kc_backup" || { rm -f "$kc_tmp" "$kc_backup"; kc_fail "cannot back up $kc_path to $kc_backup"; }
    # On disk before the original is replaced: a crash must not leave an empty backup of a replaced file.
    sync "$kc_backup" 2>/dev/null
    # The new file takes the old one's owner, mode and SELinux label; without them it must not replace it.
    { chown --reference="$kc_path" "$kc_tmp" && chmod --reference="$kc_path" "$kc_tmp" && kc_label_as "$kc_path" "$kc_tmp"; } ||
      { rm -f "$kc_tmp"; kc_fail "cannot give the new $kc_path the owner, mode and label of the old one"; }
  else
    chmod "$kc_mode" "$kc_tmp" || { rm -f "$kc_tmp"; kc_fail "cannot set mode $kc_mode on the new $kc_path"; }
  fi
  sync "$kc_tmp" 2>/dev/null
  mv -f "$kc_tmp" "$kc_path" || { rm -f "$kc_tmp"; kc_fail "cannot replace $kc_path"; }
  # The rename on disk too: a step reported done stays done through a crash, and leaves no temporary file.
  sync "$kc_dir" 2>/dev/null
  # A new file gets the label the policy gives its path (mktemp's label is the folder's).
  [ -n "$kc_backup" ] || kc_label_default "$kc_path" || kc_fail "cannot set the SELinux label of $kc_path"
  [ "$(cat "$kc_path"; echo x)" = "$kc_content"x ] || kc_fail "read-back of $kc_path differs from what was written"
}
# kc_remove_file PATH EXPECTED_SHA: delete a file kvmconf owns, keeping a backup.
kc_remove_file() {
  kc_no_link "$1"
  [ -e "$1" ] || return 0
  [ "$2" = any ] || [ "$(kc_sha "$1")" = "$2" ] || kc_fail "$1 changed since it was read"
  kc_backup_of "$1" && mv -f "$1" "$kc_backup" || kc_fail "cannot remove $1"
}
# kc_backup_of PATH: sets kc_backup to a new, unique backup file for PATH (two writes in
# one second keep both originals: mktemp never reuses a name).
kc_backup_of() {
  mkdir -p "$(dirname "${BACKUP_ROOT}$1")" && kc_backup=$(mktemp "${BACKUP_ROOT}$1.$(date -u +%Y%m%dT%H%M%SZ).XXXXXX")
}
# SELinux labels, where SELinux is on (RHEL, the guide's home); nothing to do elsewhere.
kc_selinux() { [ -e /sys/fs/selinux/enforce ] && command -v chcon >/dev/null 2>&1; }
kc_label_as() { ! kc_selinux || chcon --reference="$1" "$2"; }
kc_label_default() { ! kc_selinux || ! command -v restorecon >/dev/null 2>&1 || restorecon "$1"; }
# kc_write_value PATH VALUE: write a procfs/sysfs value, failing with the kernel's reason
# (the external printf: dash's builtin reports every refused write as "I/O error").
kc_write_value() {
  kc_err=$( { env printf '%s\n' "$2" > "$1"; } 2>&1 ) || kc_fail "the kernel refused '$2' for $1: $(printf '%s' "$kc_err" | sed 's/.*: //')"
}
# kc_read_value PATH: the value with tabs and newlines folded to single spaces, as kvmconf compares it.
kc_read_value() { tr '\t\n' '  ' < "$1" | sed 's/  */ /g; s/^ //; s/ $//'; }
# kc_set_value PATH VALUE: write, then read back; a kernel that grants less fails with both values.
kc_set_value() {
  kc_write_value "$1" "$2"
  kc_got=$(kc_read_value "$1")
  [ "$kc_got" = "$2" ] || kc_fail "$1: asked for '$2', the kernel has '$kc_got'"
}
# kc_bracket FILE: the [selected] word of a sysfs choice file such as THP's enabled.
kc_bracket() { sed -n 's/.*\[\([^]]*\)\].*/\1/p' "$1"; }
# kc_set_choice FILE WORD: select WORD in a bracket-format sysfs file and read it back.
kc_set_choice() {
  kc_write_value "$1" "$2"
  kc_got=$(kc_bracket "$1")
  [ "$kc_got" = "$2" ] || kc_fail "$1: asked for '$2', the kernel selected '$kc_got'"
}
`;

/** sha256 of a file's content as probes report it, or 'absent'. */
export function contentSha(content: string | null): string {
  return content === null ? 'absent' : createHash('sha256').update(content, 'utf8').digest('hex');
}

/**
 * Command that atomically writes `content` to `path`, refusing if the file no longer
 * has the content the plan was made from (`previous`; null = absent, undefined = don't check).
 */
export function writeFileCommand(path: string, content: string, previous?: string | null, mode = '0644'): Command {
  const expect = previous === undefined ? 'any' : contentSha(previous);
  return sh`kc_write_file ${path} ${mode} ${expect} ${content}`;
}

export function removeFileCommand(path: string, previous?: string | null): Command {
  const expect = previous === undefined ? 'any' : contentSha(previous);
  return sh`kc_remove_file ${path} ${expect}`;
}

/**
 * Probe helpers built from shell builtins only (dash, bash, busybox sh), so reading a
 * value or a small file starts no process. A probe that uses one includes its definition.
 *
 * kc_read FILE: the file's lines joined by single spaces into $kc_v; status 1 and
 * empty when the file cannot be read.
 */
export const READ_FN = `kc_read() { kc_v=; [ -r "$1" ] || return 1; kc_s=; while IFS= read -r kc_l || [ -n "$kc_l" ]; do kc_v="$kc_v$kc_s$kc_l"; kc_s=' '; done < "$1"; } 2>/dev/null`;

/** kc_read's joining, done by awk: see printJoined. */
const JOINED_READER = awkReader({
  name: 'joined',
  begin: 'joined_v = ""; joined_s = ""',
  line: 'joined_v = joined_v joined_s $0; joined_s = " "',
  end: 'print kc_arg["tag"], joined_v',
});

/**
 * Shell text printing `TAG TEXT`, TEXT the file's lines joined by single spaces (empty
 * when it cannot be read), as `kc_read FILE; printf 'TAG %s\n' "$kc_v"` would. For long
 * files: the read builtin makes a system call per byte (/proc/cmdline's 500 bytes, read
 * by two probes, were a tenth of a gather's CPU), awk one per file; in a gather the call
 * joins the gather's one awk.
 */
export function printJoined(tag: string, file: string): string {
  return readWith(JOINED_READER, `tag=${quote(tag)} ${quote(file)}`);
}

/**
 * Sets `kc_uid` to the shell's own user id, read from /proc/self/status with builtins
 * (no process); `id -u` only where /proc is missing. The redirection comes last so its
 * failure is silenced too.
 */
export const READ_UID = 'kc_uid=; while read -r kc_k kc_u kc_rest; do if [ "$kc_k" = Uid: ]; then kc_uid=$kc_u; break; fi; done 2>/dev/null </proc/self/status; kc_uid=${kc_uid:-$(id -u)}';
/** kc_cat FILE: the file's bytes on stdout, a last line without newline kept so (NUL bytes dropped). */
export const CAT_FN = `kc_cat() { kc_l=; while IFS= read -r kc_l; do printf '%s\\n' "$kc_l"; done < "$1"; [ -z "$kc_l" ] || printf '%s' "$kc_l"; }`;

/** Probe fragment that prints a file's content between markers, ABSENT, or a symbolic link's target; see parseFileBlock. */
export function catFileProbe(path: string): string {
  const p = quote(path);
  const link = `echo '@@file-symlink'; printf '%s\\n' ${p}; { readlink -f ${p} || readlink ${p}; } 2>/dev/null`;
  return `${CAT_FN}\nif [ -L ${p} ]; then ${link}; elif [ -f ${p} ]; then echo '@@file-present'; kc_cat ${p}; echo; echo '@@file-end'; else echo '@@file-absent'; fi`;
}

/**
 * Reads what catFileProbe printed: the exact content (trailing-newline faithful) or null.
 * Throws for a symbolic link, so check and apply both fail the task before any write.
 */
export function parseFileBlock(lines: string): string | null {
  if (lines.startsWith('@@file-absent')) return null;
  if (lines.startsWith('@@file-symlink\n')) {
    const [, path = '', target = ''] = lines.split('\n', 3);
    throw new Error(symlinkRefusal(path, target));
  }
  const start = lines.indexOf('@@file-present\n');
  const end = lines.lastIndexOf('\n@@file-end');
  if (start < 0 || end < 0) throw new Error('file probe output is truncated');
  return lines.slice(start + '@@file-present\n'.length, end);
}
