/**
 * Awk readers: the programs probes run over many files, written so that one awk process
 * can run them all. Started once per probe, the awks were most of a gather's CPU on the
 * target (about 1 ms each for the start alone); in a gather every reader call is
 * deferred to one awk at the end of the script, and its output is put back where the
 * call stood (see deferReaderCalls), so each probe prints what it prints on its own.
 *
 * A reader is an awk program cut into handlers, which the driver below calls:
 *   begin  before the call's files: reset every global the reader uses (one awk may run
 *          the same reader several times), and arrays with split("", name);
 *   line   for each line of each file, with $0 and the fields set, `kc_file` and `kc_fnr`
 *          standing for FILENAME and FNR, and `return` for `next`;
 *   end    after the call's files.
 * Arguments of the form NAME=VALUE (as awk's command-line assignments, without escape
 * processing) set kc_arg["NAME"] for the files after them. Globals and functions of a
 * reader start with its name, so readers never share state in one process.
 *
 * A file that cannot be opened is skipped, but one whose read fails (xps_cpus of a
 * single-queue NIC: ENOENT) makes mawk, Debian's awk, exit, and a gather's one awk would
 * take every probe's output with it: such files stay with the shell.
 */
import { quote } from './shell.js';

export interface AwkReader {
  /** [a-z][a-z0-9_]*: names the reader's functions and prefixes its globals. */
  name: string;
  begin?: string;
  line: string;
  end?: string;
  /** Helper function definitions, their names prefixed with the reader's name. */
  functions?: string;
}

/** Every reader made by awkReader, by the standalone call text a probe holds. */
const READERS = new Map<string, AwkReader>();

/**
 * The driver: reads every file of a call with getline (closed after, so a later call
 * can read it again), and in a gather frames each call's output by the run's marker:
 * a `kc_call=READER:N` argument starts call N.
 */
function driver(readers: readonly AwkReader[]): string {
  const dispatch = (hook: 'begin' | 'line' | 'end') =>
    `function kc_${hook}() { ${readers.map((r) => `if (kc_reader == "${r.name}") ${r.name}_${hook}()`).join('; else ')} }`;
  return [
    ...readers.map((r) => [
      r.functions ?? '',
      `function ${r.name}_begin() { ${r.begin ?? ''} }`,
      `function ${r.name}_line() { ${r.line} }`,
      `function ${r.name}_end() { ${r.end ?? ''} }`,
    ].join('\n')),
    dispatch('begin'),
    dispatch('line'),
    dispatch('end'),
    'function kc_start(reader, call) { kc_reader = reader; kc_n = call; split("", kc_arg); kc_open = 1; if (kc_n != "") print kc_mark " awk-out " kc_n; kc_begin() }',
    'function kc_finish() { kc_end(); if (kc_n != "") print kc_mark " awk-end " kc_n; kc_open = 0 }',
    'BEGIN {',
    '  for (kc_i = 1; kc_i < ARGC; kc_i++) {',
    '    kc_a = ARGV[kc_i]',
    '    if (kc_a ~ /^kc_call=/) { if (kc_open) kc_finish(); kc_eq = index(kc_a, ":"); kc_start(substr(kc_a, 9, kc_eq - 9), substr(kc_a, kc_eq + 1)); continue }',
    `    if (!kc_open) kc_start("${readers[0]!.name}", "")`,
    '    if (kc_a ~ /^[A-Za-z_][A-Za-z0-9_]*=/) { kc_eq = index(kc_a, "="); kc_arg[substr(kc_a, 1, kc_eq - 1)] = substr(kc_a, kc_eq + 1); continue }',
    '    kc_file = kc_a; kc_fnr = 0',
    '    while ((getline < kc_file) > 0) { kc_fnr++; kc_line() }',
    '    close(kc_file)',
    '  }',
    `  if (!kc_open && kc_mark == "") kc_start("${readers[0]!.name}", "")`,
    '  if (kc_open) kc_finish()',
    '  exit',
    '}',
  ].join('\n');
}

/** Defines a reader; its calls in probes are found by their text, so it is made once, at module load. */
export function awkReader(reader: AwkReader): AwkReader {
  if (!/^[a-z][a-z0-9_]*$/.test(reader.name)) throw new Error(`awk reader name ${reader.name} is not [a-z][a-z0-9_]*`);
  for (const other of READERS.values()) {
    if (other.name === reader.name && other !== reader) throw new Error(`two awk readers are named ${reader.name}`);
  }
  READERS.set(standaloneCall(reader), reader);
  return reader;
}

/**
 * A reader's call on its own: a function that keeps, of its absolute path arguments, the
 * regular files (a glob that matched nothing stays as written; awk gives up on a folder)
 * and runs the reader's own awk. The text up to the arguments is what a gather replaces.
 */
function standaloneCall(reader: AwkReader): string {
  const fn = `kc_awk_${reader.name}`;
  return (
    `${fn}() { for kc_aw_w in "$@"; do shift; case $kc_aw_w in /*) [ -f "$kc_aw_w" ] || continue ;; esac; set -- "$@" "$kc_aw_w"; done; ` +
    `awk ${quote(driver([reader]))} "$@"; }; ${fn}`
  );
}

/**
 * Shell text running the reader over ARGS (shell words: NAME=VALUE, and absolute paths or
 * globs, of which regular files are read), printing what it prints in place: on its own
 * an awk of its own, in a gather deferred to the gather's one awk.
 */
export function readWith(reader: AwkReader, args: string): string {
  return `${standaloneCall(reader)} ${args}`;
}

/**
 * Shell text setting `kc_g` to the globs of PATTERN in each of DIRS (in order), to be
 * used unquoted. /lib/X is left out when it is /usr/lib/X (merged /usr): every file there
 * is hidden by its twin, and reading it twice was a third of a probe's time.
 */
export function configGlobs(dirs: readonly string[], pattern: string): string {
  const lib = dirs.find((dir) => dir.startsWith('/lib/') && dirs.includes(`/usr${dir}`));
  const words = (list: readonly string[]) => list.map((dir) => `${quote(dir)}/${pattern}`).join(' ');
  if (!lib) return `kc_g=${quote(words(dirs))}`;
  const before = dirs.slice(0, dirs.indexOf(lib));
  const after = dirs.slice(dirs.indexOf(lib) + 1);
  return [
    `kc_g=${quote(words(before))}`,
    `[ ${quote(lib)} -ef ${quote(`/usr${lib}`)} ] || kc_g="$kc_g "${quote(words([lib]))}`,
    ...(after.length ? [`kc_g="$kc_g "${quote(words(after))}`] : []),
  ].join('; ');
}

/** Shell functions a gather defines before its probes when it defers reader calls. */
const DEFER_LIB = [
  "kc_aw_n=0 kc_aw_args= kc_aw_q=\"'\"",
  '# kc_aw_add WORD: appends WORD to kc_aw_args, single-quoted for the eval that runs the awk.',
  'kc_aw_add() {',
  '  kc_aw_r= kc_aw_x=$1',
  '  while :; do case $kc_aw_x in',
  '    *"$kc_aw_q"*) kc_aw_r=$kc_aw_r${kc_aw_x%%"$kc_aw_q"*}$kc_aw_q\\$kc_aw_q$kc_aw_q; kc_aw_x=${kc_aw_x#*"$kc_aw_q"} ;;',
  '    *) kc_aw_r=$kc_aw_r$kc_aw_x; break ;;',
  '  esac; done',
  '  kc_aw_args="$kc_aw_args $kc_aw_q$kc_aw_r$kc_aw_q"',
  '}',
  '# kc_aw_defer READER ARGS...: records a reader call (of its absolute paths, the regular files) and prints its placeholder.',
  'kc_aw_defer() {',
  "  kc_aw_n=$((kc_aw_n + 1)); printf '%s awk %d\\n' \"$KC_MARK\" \"$kc_aw_n\"",
  '  kc_aw_args="$kc_aw_args kc_call=$1:$kc_aw_n"; shift',
  '  for kc_aw_w in "$@"; do',
  '    case $kc_aw_w in /*) [ -f "$kc_aw_w" ] || continue ;; esac',
  "    case $kc_aw_w in *\"$kc_aw_q\"*) kc_aw_add \"$kc_aw_w\" ;; *) kc_aw_args=\"$kc_aw_args '$kc_aw_w'\" ;; esac",
  '  done',
  '}',
].join('\n');

export interface DeferredGather {
  /** The probes' scripts with their reader calls deferred. */
  scripts: string[];
  /** Shell text defining the deferral (before the first probe), and running the one awk (after the last). */
  prelude: string;
  coda: string;
}

/**
 * Rewrites probe scripts so their reader calls record their arguments and print a
 * placeholder, and one awk after the last probe runs every call in order; splitDeferred
 * puts each call's output back in place of its placeholder.
 */
export function deferReaderCalls(scripts: readonly string[]): DeferredGather {
  const deferred = scripts.map(deferredScript);
  const used = new Map(deferred.flatMap(({ readers }) => readers.map((reader) => [reader.name, reader] as const)));
  if (used.size === 0) return { scripts: deferred.map(({ text }) => text), prelude: '', coda: '' };
  return { scripts: deferred.map(({ text }) => text), prelude: DEFER_LIB, coda: codaFor([...used.values()]) };
}

/** Every host of a play gathers with the same probe scripts: each is rewritten once. */
const deferredScripts = new Map<string, { text: string; readers: AwkReader[] }>();
const codas = new Map<string, string>();
const REWRITES_KEPT = 4096;

function deferredScript(script: string): { text: string; readers: AwkReader[] } {
  const known = deferredScripts.get(script);
  if (known) return known;
  let text = script;
  const readers: AwkReader[] = [];
  for (const [call, reader] of READERS) {
    if (!text.includes(call)) continue;
    text = text.split(call).join(`kc_aw_defer ${reader.name}`);
    readers.push(reader);
  }
  const result = { text, readers };
  if (deferredScripts.size < REWRITES_KEPT) deferredScripts.set(script, result);
  return result;
}

function codaFor(readers: AwkReader[]): string {
  const key = readers.map((reader) => reader.name).join(' ');
  let coda = codas.get(key);
  if (coda === undefined) {
    coda = `if [ -n "$kc_aw_args" ]; then eval "set -- $kc_aw_args"; awk -v kc_mark="$KC_MARK" ${quote(driver(readers))} "$@" </dev/null; fi`;
    codas.set(key, coda);
  }
  return coda;
}

/**
 * Puts each deferred call's output in place of its placeholder. A placeholder whose call
 * printed nothing back (the script was cut short) stays: see hasPlaceholder.
 */
export function splitDeferred(stdout: string, mark: string): string {
  const outputs = new Map<string, string>();
  const framed = new RegExp(`${mark} awk-out (\\d+)\\n([\\s\\S]*?)${mark} awk-end \\1\\n`, 'g');
  for (const match of stdout.matchAll(framed)) outputs.set(match[1]!, match[2]!);
  if (outputs.size === 0) return stdout;
  const body = stdout.slice(0, stdout.indexOf(`${mark} awk-out `));
  return body.replace(new RegExp(`${mark} awk (\\d+)\\n`, 'g'), (placeholder, n: string) => outputs.get(n) ?? placeholder);
}

/** Whether a probe's output still holds a placeholder, its reader's output missing. */
export function hasPlaceholder(output: string, mark: string): boolean {
  return output.includes(`${mark} awk `);
}
