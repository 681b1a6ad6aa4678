/**
 * kernel_cmdline: kernel arguments persisted in GRUB_CMDLINE_LINUX of /etc/default/grub
 * (and in the BLS entries through grubby where the host uses them), regenerated with the
 * host's own tool, and compared with /proc/cmdline: what the running kernel lacks waits
 * for a reboot. The engine merges every task's kernel argument claims into this one task.
 */
import {
  awkReader, readWith, printJoined, defineModule, fileDiff, osFamily, InputError, sh, shellCode, inline, READ_FN, catFileProbe, parseFileBlock, writeFileCommand, type Change, type Command,
  type KernelArgs, kernelArgClaims,
} from '../../src/kit/index.js';
import { editCmdline, effectiveValue, findAssignments, managedSubsequence, simpleSetting, tokenName, tokenizeCmdline } from '../lib/grub.js';

export const GRUB_DEFAULT = '/etc/default/grub';
export const BLS_DIR = '/boot/loader/entries';

export const KERNEL_ARG_NAME_PATTERN = '^[A-Za-z0-9_][A-Za-z0-9_.-]*$';
/** Characters that are literal inside double quotes, single quotes and bare shell words alike. */
export const KERNEL_ARG_VALUE_PATTERN = '^[A-Za-z0-9_.,:/+=@%-]*$';
export const KERNEL_ARG_TOKEN_PATTERN = '^[A-Za-z0-9_][A-Za-z0-9_.-]*(=[A-Za-z0-9_.,:/+=@%-]*)?$';

export type KernelCmdlineParams = KernelArgs & { absent: string[] };

export type BootToolKind = 'update-grub' | 'grub-mkconfig' | 'grub2-mkconfig' | 'grubby' | 'none';

export interface BootTool {
  kind: BootToolKind;
  /** The regeneration command, without the grubby arguments. */
  command: Command | null;
  /** The generated grub.cfg, when the tool writes one. */
  cfgPath: string | null;
}

export interface BlsEntry {
  kernel: string;
  args: string[];
}

export interface KernelCmdlineState {
  /** /etc/default/grub, or null when absent. */
  grub: string | null;
  /** Kernel tokens of /proc/cmdline (what init gets after `--` left out). */
  running: string[];
  kernel: string;
  osId: string;
  osLike: string[];
  /** Some /sys/block/DEV/mq exists: the block layer is multi-queue. */
  mqDirs: boolean;
  tools: string[];
  blsDir: boolean;
  efi: boolean;
  efiConfigs: Array<{ path: string; stub: boolean }>;
  /** Kernel-loading lines (`linux ...` args) of each readable grub.cfg. */
  cfgLines: Record<string, string[][]>;
  /** Assignment lines of /etc/default/grub.d/*.cfg: sourced after /etc/default/grub. */
  grubD: Array<{ file: string; text: string }>;
  /** `grubby --info=ALL`, when grubby and BLS entries exist. */
  grubby: BlsEntry[] | null;
}

const value = { anyOf: [{ type: 'string', pattern: KERNEL_ARG_VALUE_PATTERN }, { type: 'integer' }, { type: 'boolean' }, { type: 'null' }] };

/** `name=value` tokens a user map stands for: true = bare flag, false/null = must be absent. */
function fromArgs(args: Record<string, string | number | boolean | null>): { tokens: string[]; absent: string[] } {
  const tokens: string[] = [];
  const absent: string[] = [];
  for (const [name, v] of Object.entries(args)) {
    if (v === true) tokens.push(name);
    else if (v === false || v === null) absent.push(name);
    else tokens.push(`${name}=${v}`);
  }
  return { tokens, absent };
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((item, i) => item === b[i]);
}

/** Multi-queue only block layer: the legacy schedulers and `elevator=` are gone (Linux 5.0). */
export function isBlkMqOnly(state: Pick<KernelCmdlineState, 'kernel' | 'mqDirs'>): boolean {
  const match = /^(\d+)\.(\d+)/.exec(state.kernel);
  return state.mqDirs || (match !== null && Number(match[1]) >= 5);
}

/**
 * Per grub.cfg: `cfg FILE stub|full` (a stub only chains to another configfile) and its
 * kernel lines as `cfgline FILE LINE`; per /etc/default/grub.d snippet its
 * GRUB_CMDLINE_LINUX(_DEFAULT) assignments as `grubd FILE LINE`.
 */
const GRUB_CFG_READER = awkReader({
  name: 'grub',
  functions: 'function grub_flush() { if (grub_cfg != "") { print "cfg", grub_cfg, (grub_conf && !grub_linux ? "stub" : "full"); for (grub_i = 1; grub_i <= grub_n; grub_i++) print "cfgline", grub_cfg, grub_lines[grub_i] }; grub_cfg = ""; grub_n = 0; grub_conf = 0; grub_linux = 0 }',
  begin: 'grub_cfg = ""; grub_n = 0; grub_conf = 0; grub_linux = 0',
  line: [
    'if (kc_fnr == 1) { grub_flush(); if (kc_file !~ /^\\/etc\\/default\\/grub\\.d\\//) grub_cfg = kc_file }',
    'if (grub_cfg == "") { if ($0 ~ /^[[:space:]]*(export[[:space:]]+)?GRUB_CMDLINE_LINUX(_DEFAULT)?=/) print "grubd", kc_file, $0; return }',
    'if ($0 ~ /^[[:space:]]*configfile/) grub_conf = 1',
    'if ($0 ~ /^[[:space:]]*linux/) grub_linux = 1',
    'if ($0 ~ /^[[:space:]]*(linux|linux16|linuxefi)[[:space:]]/) grub_lines[++grub_n] = $0',
  ].join('\n'),
  end: 'grub_flush()',
});

const EFI_VENDOR: Record<string, string> = { rhel: 'redhat', ol: 'redhat', centos: 'centos', fedora: 'fedora', rocky: 'rocky', almalinux: 'almalinux' };

/** The tool that turns /etc/default/grub into what the boot loader reads, as this host has it. */
export function chooseBootTool(state: KernelCmdlineState): BootTool {
  const family = osFamily({ osId: state.osId, osLike: state.osLike });
  const has = (tool: string) => state.tools.includes(tool);
  const blsEnabled = state.grub !== null && simpleSetting(state.grub, 'GRUB_ENABLE_BLSCFG') === 'true';
  if (family === 'rhel' || (family === 'other' && !has('update-grub'))) {
    if (state.blsDir && blsEnabled && has('grubby')) return { kind: 'grubby', command: shellCode`grubby`, cfgPath: null };
    if (has('grub2-mkconfig')) {
      let cfgPath = '/boot/grub2/grub.cfg';
      if (state.efi) {
        const full = state.efiConfigs.filter((cfg) => !cfg.stub);
        const vendor = EFI_VENDOR[state.osId] ?? state.osId;
        const stubbed = state.efiConfigs.some((cfg) => cfg.stub);
        // RHEL 9 / Fedora 34+: the EFI grub.cfg is a stub that loads /boot/grub2/grub.cfg; never overwrite it.
        if (full.length) cfgPath = (full.find((cfg) => cfg.path === `/boot/efi/EFI/${vendor}/grub.cfg`) ?? full[0]!).path;
        else if (!stubbed) cfgPath = `/boot/efi/EFI/${vendor}/grub.cfg`;
      }
      return { kind: 'grub2-mkconfig', command: sh`grub2-mkconfig -o ${cfgPath}`, cfgPath };
    }
  }
  if (family === 'suse' && has('grub2-mkconfig')) return { kind: 'grub2-mkconfig', command: shellCode`grub2-mkconfig -o /boot/grub2/grub.cfg`, cfgPath: '/boot/grub2/grub.cfg' };
  if (has('update-grub')) return { kind: 'update-grub', command: shellCode`update-grub`, cfgPath: '/boot/grub/grub.cfg' };
  if (has('grub-mkconfig')) return { kind: 'grub-mkconfig', command: shellCode`grub-mkconfig -o /boot/grub/grub.cfg`, cfgPath: '/boot/grub/grub.cfg' };
  return { kind: 'none', command: null, cfgPath: null };
}

/** What the task plans: the changes and their commands are both read from it. */
interface Plan {
  names: Set<string>;
  desired: string[];
  tool: BootTool;
  fileEdit: { before: string[]; content: string; lines: number[] } | null;
  /** Managed tokens of BLS entries that differ, when grubby manages them. */
  blsDrift: string[][] | null;
  /** Managed tokens present in some BLS entry, each as often as it appears at most in one entry. */
  blsPresent: string[];
  /** grub.cfg lines whose managed tokens differ while /etc/default/grub is right. */
  cfgDrift: string[][] | null;
  warnings: string[];
}

function isRescue(entry: BlsEntry): boolean {
  return /rescue/.test(entry.kernel);
}

function plan(params: KernelCmdlineParams, actual: KernelCmdlineState): Plan {
  const warnings: string[] = [];
  let desired = [...params.tokens];
  if (isBlkMqOnly(actual) && desired.some((token) => tokenName(token) === 'elevator')) {
    desired = desired.filter((token) => tokenName(token) !== 'elevator');
    warnings.push(
      'elevator= is ignored by this multi-queue kernel (Linux logs "Kernel parameter elevator= does not have any effect anymore"), so kvmconf does not write it; ' +
        'use the io_scheduler module, whose udev rule sets the scheduler at every boot',
    );
  }
  const names = new Set([...desired.map(tokenName), ...params.absent]);
  const tool = chooseBootTool(actual);
  const result: Plan = { names, desired, tool, fileEdit: null, blsDrift: null, blsPresent: [], cfgDrift: null, warnings };
  if (!names.size) return result;
  if (actual.grub === null) {
    throw new Error(`${GRUB_DEFAULT} does not exist: this host does not boot with GRUB as kvmconf knows it, so kernel arguments cannot be persisted`);
  }

  let value;
  let defaults;
  try {
    value = effectiveValue(actual.grub, 'GRUB_CMDLINE_LINUX');
    defaults = effectiveValue(actual.grub, 'GRUB_CMDLINE_LINUX_DEFAULT');
  } catch (error) {
    throw new Error(`${GRUB_DEFAULT} ${(error as Error).message}`);
  }
  if (value.opaque.length) {
    warnings.push(`GRUB_CMDLINE_LINUX in ${GRUB_DEFAULT} expands ${value.opaque.join(', ')}: kvmconf cannot see what that adds to the kernel command line`);
  }
  const defaultManaged = managedSubsequence(defaults.tokens, names);
  if (defaultManaged.length) {
    warnings.push(
      `GRUB_CMDLINE_LINUX_DEFAULT in ${GRUB_DEFAULT} also has ${defaultManaged.join(' ')}; kvmconf edits only GRUB_CMDLINE_LINUX, and normal boot entries get GRUB_CMDLINE_LINUX_DEFAULT after it, ` +
        `so the kernel still sees ${defaultManaged.join(' ')} (of a repeated name the later one usually wins): remove it from GRUB_CMDLINE_LINUX_DEFAULT`,
    );
  }
  for (const { file, text } of actual.grubD) {
    for (const variable of ['GRUB_CMDLINE_LINUX', 'GRUB_CMDLINE_LINUX_DEFAULT']) {
      let snippet;
      try {
        snippet = findAssignments(text, variable).length ? effectiveValue(text, variable) : null;
      } catch {
        snippet = null;
      }
      if (!snippet) continue;
      const selfRef = snippet.assignments.some((a) => new RegExp(`\\$\\{?${variable}\\}?(\\s|$)`).test(a.inner));
      const managed = managedSubsequence(snippet.tokens, names);
      if (variable === 'GRUB_CMDLINE_LINUX' && !selfRef) {
        warnings.push(`${file} sets GRUB_CMDLINE_LINUX and is read after ${GRUB_DEFAULT}, so it replaces what kvmconf writes there: move its arguments to ${GRUB_DEFAULT}`);
      } else if (managed.length) {
        warnings.push(`${file} adds ${managed.join(' ')} to ${variable} after ${GRUB_DEFAULT} is read: remove it there`);
      }
    }
  }

  const current = managedSubsequence(value.tokens, names);
  if (!sameList(current, desired)) {
    const edit = editCmdline(actual.grub, names, desired);
    result.fileEdit = { before: current, content: edit.content, lines: edit.lines };
    const lastAssignment = value.assignments[value.assignments.length - 1];
    if (lastAssignment && (value.assignments.length > 1 || (lastAssignment.style !== 'single' && lastAssignment.inner.includes('$')))) {
      const all = value.assignments.map((a) => a.line).join(', ');
      const earlier = edit.lines.filter((line) => line !== lastAssignment.line);
      const shape = value.assignments.length > 1 ? `is assigned ${value.assignments.length} times in ${GRUB_DEFAULT} (lines ${all})` : `expands variables in ${GRUB_DEFAULT} (line ${lastAssignment.line})`;
      warnings.push(
        `GRUB_CMDLINE_LINUX ${shape}: kvmconf edits the last assignment (line ${lastAssignment.line}), the one the file leaves in force, and only its literal arguments` +
          (earlier.length ? `; it also removes the managed arguments from line ${earlier.join(', ')}, whose value flows into it` : ''),
      );
    }
  }

  if (tool.kind === 'grubby' && actual.grubby) {
    const entries = actual.grubby.filter((entry) => !isRescue(entry));
    const drift = entries.map((entry) => managedSubsequence(entry.args, names)).filter((tokens) => !sameList(tokens, desired));
    if (drift.length) result.blsDrift = drift;
    const most = new Map<string, number>();
    for (const entry of entries) {
      const counts = new Map<string, number>();
      for (const token of managedSubsequence(entry.args, names)) counts.set(token, (counts.get(token) ?? 0) + 1);
      for (const [token, count] of counts) most.set(token, Math.max(most.get(token) ?? 0, count));
    }
    result.blsPresent = [...most].flatMap(([token, count]) => Array<string>(count).fill(token));
    const repeated = desired.map(tokenName).filter((name, i, all) => all.indexOf(name) !== i);
    if (drift.length && repeated.length) {
      warnings.push(`grubby keeps one argument per name, so the repeated ${[...new Set(repeated)].join(', ')} may not reach the boot entries as written; kvmconf re-reads them after the change`);
    }
  } else if (!result.fileEdit && tool.cfgPath && actual.cfgLines[tool.cfgPath]) {
    const expected = [desired, [...desired, ...defaultManaged]];
    const drift = actual.cfgLines[tool.cfgPath]!.map((args) => managedSubsequence(args, names)).filter((tokens) => !expected.some((e) => sameList(tokens, e)));
    if (drift.length) result.cfgDrift = drift;
  }
  if (tool.kind === 'grub2-mkconfig' && actual.blsDir && simpleSetting(actual.grub, 'GRUB_ENABLE_BLSCFG') === 'true') {
    warnings.push(`this host boots BLS entries (${BLS_DIR}) but has no grubby: grub2-mkconfig does not change their arguments on every release; install grubby`);
  }
  if ((result.fileEdit || result.blsDrift || result.cfgDrift) && tool.kind === 'none') {
    throw new Error('no boot configuration tool found (update-grub, grub-mkconfig, grub2-mkconfig or grubby): kvmconf cannot regenerate the boot loader configuration on this host');
  }
  return result;
}

function distinct(lists: string[][]): string | null {
  const texts = [...new Set(lists.map((tokens) => tokens.join(' ')))];
  return texts.length === 1 && texts[0] === '' ? null : texts.map((text) => text || '(none)').join(' | ');
}

/** Atomic write of the edited grub file (guarded by the content it was planned from), then regeneration. */
export function grubFileCommands(path: string, content: string, previous: string | null, regenerate: Command | null): Command[] {
  const write = writeFileCommand(path, content, previous);
  return regenerate ? [write, regenerate] : [write];
}

function grubbyCommand(plan: Plan): Command {
  const remove = plan.blsPresent.length ? sh` --remove-args=${plan.blsPresent.join(' ')}` : shellCode``;
  const args = plan.desired.length ? sh` --args=${plan.desired.join(' ')}` : shellCode``;
  return sh`grubby --update-kernel=ALL${inline(remove)}${inline(args)}`;
}

export const kernelCmdline = defineModule<KernelCmdlineParams, KernelCmdlineState>({
  name: 'kernel_cmdline',
  summary: 'kernel arguments in GRUB_CMDLINE_LINUX (and BLS entries), regenerated with the host tool; pending until reboot',
  schema: {
    type: 'object',
    additionalProperties: false,
    minProperties: 1,
    properties: {
      args: { type: 'object', propertyNames: { pattern: KERNEL_ARG_NAME_PATTERN, maxLength: 128 }, additionalProperties: value },
      tokens: { type: 'array', items: { type: 'string', pattern: KERNEL_ARG_TOKEN_PATTERN, maxLength: 512 } },
      absent: { type: 'array', uniqueItems: true, items: { type: 'string', pattern: KERNEL_ARG_NAME_PATTERN, maxLength: 128 } },
    },
  },
  factsParams: { tokens: [], absent: [] },
  claims: (params) => kernelArgClaims(params),
  /** The play's one command line edit: every task's kernel argument claims, merged. */
  fromKernelArgs: (args) => ({ tokens: args.tokens, absent: args.absent ?? [] }),

  normalize(raw) {
    const input = raw as { args?: Record<string, string | number | boolean | null>; tokens?: string[]; absent?: string[] };
    const fromMap = fromArgs(input.args ?? {});
    const listed = input.tokens ?? [];
    const mapNames = new Set([...fromMap.tokens.map(tokenName), ...fromMap.absent]);
    const clash = listed.map(tokenName).find((name) => mapNames.has(name));
    if (clash) throw new InputError(`kernel_cmdline: '${clash}' is given both in args and in tokens; name it in one place`);
    const tokens = [...fromMap.tokens, ...listed];
    const absent = [...new Set([...fromMap.absent, ...(input.absent ?? [])])];
    const both = absent.find((name) => tokens.some((token) => tokenName(token) === name));
    if (both) throw new InputError(`kernel_cmdline: '${both}' is asked both present and absent`);
    return { tokens, absent };
  },

  probe: () =>
    [
      READ_FN,
      `if kc_read /proc/sys/kernel/osrelease; then echo "kernel $kc_v"; else echo "kernel $(uname -r)"; fi`,
      `if [ -r /etc/os-release ]; then . /etc/os-release; fi; echo "os_id $ID"; echo "os_like $ID_LIKE"`,
      `for kc_d in /sys/block/*/mq; do if [ -d "$kc_d" ]; then echo mq; break; fi; done`,
      `for kc_t in update-grub grub-mkconfig grub2-mkconfig grubby; do if command -v "$kc_t" >/dev/null 2>&1; then echo "tool $kc_t"; fi; done`,
      `kc_bls=; for kc_f in ${BLS_DIR}/*.conf; do if [ -e "$kc_f" ]; then kc_bls=1; echo bls; break; fi; done`,
      `if [ -d /sys/firmware/efi ]; then echo efi; fi`,
      // One awk over the grub.cfg files (kernel lines, stub or full) and /etc/default/grub.d snippets.
      `set --; for kc_c in /boot/grub/grub.cfg /boot/grub2/grub.cfg /boot/efi/EFI/*/grub.cfg /etc/default/grub.d/*.cfg; do [ -f "$kc_c" ] && [ -r "$kc_c" ] && set -- "$@" "$kc_c"; done`,
      `if [ "$#" -gt 0 ]; then ${readWith(GRUB_CFG_READER, '"$@"')}; fi`,
      printJoined('cmdline', '/proc/cmdline'),
      `if [ -n "$kc_bls" ] && command -v grubby >/dev/null 2>&1; then echo '@@grubby'; grubby --info=ALL 2>/dev/null; echo '@@grubby-end'; fi`,
      `echo '@@grub'`,
      catFileProbe(GRUB_DEFAULT),
    ].join('\n'),

  parse(output) {
    const at = output.indexOf('@@grub\n');
    if (at < 0) throw new Error('kernel_cmdline probe output is truncated');
    const state: KernelCmdlineState = {
      grub: parseFileBlock(output.slice(at + '@@grub\n'.length)),
      running: [], kernel: '', osId: 'unknown', osLike: [], mqDirs: false, tools: [], blsDir: false, efi: false,
      efiConfigs: [], cfgLines: {}, grubD: [], grubby: null,
    };
    let head = output.slice(0, at);
    const grubbyAt = head.indexOf('@@grubby\n');
    if (grubbyAt >= 0) {
      const end = head.indexOf('@@grubby-end', grubbyAt);
      state.grubby = parseGrubbyInfo(head.slice(grubbyAt + '@@grubby\n'.length, end < 0 ? undefined : end));
      head = head.slice(0, grubbyAt);
    }
    for (const line of head.split('\n')) {
      const space = line.indexOf(' ');
      const kind = space < 0 ? line : line.slice(0, space);
      const rest = space < 0 ? '' : line.slice(space + 1);
      if (kind === 'kernel') state.kernel = rest.trim();
      else if (kind === 'os_id') state.osId = rest.trim() || 'unknown';
      else if (kind === 'os_like') state.osLike = rest.split(/\s+/).filter(Boolean);
      else if (kind === 'mq') state.mqDirs = true;
      else if (kind === 'tool') state.tools.push(rest.trim());
      else if (kind === 'bls') state.blsDir = true;
      else if (kind === 'efi') state.efi = true;
      else if (kind === 'cfg') {
        const [path = '', type = ''] = rest.split(' ');
        state.cfgLines[path] = [];
        if (path.startsWith('/boot/efi/')) state.efiConfigs.push({ path, stub: type === 'stub' });
      } else if (kind === 'cfgline') {
        const path = rest.slice(0, rest.indexOf(' '));
        const words = rest.slice(path.length + 1).trim().split(/\s+/);
        // `linux /vmlinuz-VERSION args...`: only kernels (memtest and the like load other images).
        if (/vmlinu|bzImage/.test(words[1] ?? '')) (state.cfgLines[path] ??= []).push(words.slice(2).filter((word) => !word.includes('$')));
      } else if (kind === 'grubd') {
        const file = rest.slice(0, rest.indexOf(' '));
        state.grubD.push({ file, text: rest.slice(file.length + 1) });
      } else if (kind === 'cmdline') state.running = tokenizeCmdline(rest);
    }
    return state;
  },

  diff(params, actual, context) {
    const result = plan(params, actual);
    result.warnings.forEach((warning) => context.warn(warning));
    const changes: Change[] = [];
    const { desired, tool } = result;
    const after = desired.join(' ') || null;
    const regenerates = tool.kind === 'grubby' ? 'grubby updates the boot entries' : `${tool.command} regenerates the boot loader configuration`;
    if (result.fileEdit) {
      changes.push({
        module: 'kernel_cmdline', target: GRUB_DEFAULT, scope: 'persist',
        before: result.fileEdit.before.join(' ') || null, after,
        reason: tool.kind === 'grubby' ? 'GRUB_CMDLINE_LINUX is what new kernels and grub2-mkconfig use' : `then ${regenerates}`,
        diff: fileDiff(GRUB_DEFAULT, actual.grub!, result.fileEdit.content),
        commands: grubFileCommands(GRUB_DEFAULT, result.fileEdit.content, actual.grub, tool.kind === 'grubby' ? null : tool.command),
      });
    }
    if (result.blsDrift) {
      changes.push({
        module: 'kernel_cmdline', target: BLS_DIR, scope: 'persist', before: distinct(result.blsDrift), after,
        reason: `${result.blsDrift.length} boot entr${result.blsDrift.length === 1 ? 'y' : 'ies'} differ; ${regenerates}`,
        commands: [grubbyCommand(result)],
      });
    }
    if (result.cfgDrift) {
      changes.push({
        module: 'kernel_cmdline', target: tool.cfgPath!, scope: 'persist', before: distinct(result.cfgDrift), after,
        reason: `${GRUB_DEFAULT} is right but ${tool.cfgPath} was not regenerated from it; ${regenerates}`,
        commands: tool.command ? [tool.command] : [],
      });
    }
    const running = managedSubsequence(actual.running, result.names);
    if (!sameList(running, desired)) {
      const pending: Change[] = [];
      for (const name of result.names) {
        const now = actual.running.filter((token) => tokenName(token) === name);
        const wanted = desired.filter((token) => tokenName(token) === name);
        if (!sameList(now, wanted)) {
          const booted = !wanted.length ? 'with it' : !now.length ? 'without it' : 'with another value';
          pending.push({
            module: 'kernel_cmdline', target: name, scope: 'pending', pendingOn: 'reboot', before: now.join(' ') || null, after: wanted.join(' ') || null,
            reason: `the running kernel was booted ${booted}; the kernel command line takes effect at the next boot`,
          });
        }
      }
      if (!pending.length) {
        pending.push({
          module: 'kernel_cmdline', target: [...result.names].join(','), scope: 'pending', pendingOn: 'reboot', before: running.join(' ') || null, after,
          reason: 'the running kernel has these arguments in another order; the kernel command line takes effect at the next boot',
        });
      }
      changes.push(...pending);
    }
    return changes;
  },

  rules(_params, facts) {
    const family = osFamily(facts);
    if (family === 'other') {
      return [{ severity: 'warning', message: `no known boot loader tool for OS '${facts.osId}': kvmconf will use update-grub, grub-mkconfig or grub2-mkconfig if the host has one, and fail otherwise` }];
    }
    return [];
  },
});

/** Reads `grubby --info=ALL`: index=, kernel=, args="..." blocks (quotes optional, as grubby versions differ). */
export function parseGrubbyInfo(text: string): BlsEntry[] {
  const entries: BlsEntry[] = [];
  let current: BlsEntry | null = null;
  for (const line of text.split('\n')) {
    const match = /^(\w+)=(.*)$/.exec(line.trim());
    if (!match) continue;
    const [, key, raw = ''] = match;
    const unquoted = raw.replace(/^"(.*)"$/, '$1');
    if (key === 'index') {
      current = { kernel: '', args: [] };
      entries.push(current);
    } else if (current && key === 'kernel') current.kernel = unquoted;
    else if (current && key === 'args') current.args = tokenizeCmdline(unquoted);
  }
  return entries;
}
