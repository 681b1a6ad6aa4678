/**
 * Kernel command line helpers: tokenising /proc/cmdline and boot entries, reading the
 * shell assignments of /etc/default/grub, and editing the managed tokens of
 * GRUB_CMDLINE_LINUX while keeping every other byte of the file as it was.
 */

/** The name of a `name=value` or bare `name` token. */
export function tokenName(token: string): string {
  const eq = token.indexOf('=');
  return eq < 0 ? token : token.slice(0, eq);
}

/**
 * Splits a kernel command line the way the kernel does: whitespace separated, double
 * quotes group (and are kept, so tokens compare as written), and everything after a
 * lone `--` belongs to init, not to the kernel.
 */
export function tokenizeCmdline(text: string): string[] {
  const tokens: string[] = [];
  let current = '';
  let quoted = false;
  let started = false;
  for (const char of text) {
    if (char === '"') quoted = !quoted;
    if (!quoted && /\s/.test(char)) {
      if (started) tokens.push(current);
      current = '';
      started = false;
      continue;
    }
    current += char;
    started = true;
  }
  if (started) tokens.push(current);
  const end = tokens.indexOf('--');
  return end < 0 ? tokens : tokens.slice(0, end);
}

/** The tokens whose names are managed, in their order. */
export function managedSubsequence(tokens: readonly string[], names: ReadonlySet<string>): string[] {
  return tokens.filter((token) => names.has(tokenName(token)));
}

export type QuoteStyle = 'double' | 'single' | 'none';

/** One `NAME=value` line of a shell file such as /etc/default/grub. */
export interface Assignment {
  /** 1-based line number of the assignment. */
  line: number;
  /** Offsets of the value's inner text (inside the quotes) in the file content. */
  start: number;
  end: number;
  style: QuoteStyle;
  /** The inner text exactly as written. */
  inner: string;
}

const SELF_REFERENCE = (variable: string) => new RegExp(`^(\\$${variable}|\\$\\{${variable}\\})$`);

/**
 * Finds every top-level assignment of `variable` (optionally after `export`). Throws on
 * forms kvmconf will not edit blind: backslash continuations and half-quoted words.
 */
export function findAssignments(content: string, variable: string): Assignment[] {
  const assignments: Assignment[] = [];
  const head = new RegExp(`^[ \\t]*(?:export[ \\t]+)?${variable}=`, 'gm');
  for (const match of content.matchAll(head)) {
    const valueAt = match.index + match[0].length;
    const line = content.slice(0, match.index).split('\n').length;
    const first = content[valueAt];
    if (first === '"' || first === "'") {
      let close = valueAt + 1;
      while (close < content.length && content[close] !== first) close += first === '"' && content[close] === '\\' ? 2 : 1;
      if (close >= content.length) throw new Error(`line ${line}: ${variable} has no closing quote`);
      const inner = content.slice(valueAt + 1, close);
      if (first === '"' && inner.includes('\\')) throw new Error(`line ${line}: ${variable} uses backslash escapes; kvmconf edits only plain values, please simplify that line`);
      assignments.push({ line, start: valueAt + 1, end: close, style: first === '"' ? 'double' : 'single', inner });
    } else {
      let end = valueAt;
      while (end < content.length && !/[\s;#&|]/.test(content[end]!)) end++;
      const inner = content.slice(valueAt, end);
      if (/["'\\`]/.test(inner)) throw new Error(`line ${line}: ${variable} mixes quoted and unquoted text; kvmconf edits only plain values, please simplify that line`);
      assignments.push({ line, start: valueAt, end, style: 'none', inner });
    }
  }
  return assignments;
}

export interface ShellValue {
  /** Tokens of the value the file leaves the variable with (self-references expanded). */
  tokens: string[];
  assignments: Assignment[];
  /** Indexes of the assignments whose text reaches the final value. */
  contributing: number[];
  /** Tokens that expand other variables: kvmconf cannot see their value. */
  opaque: string[];
}

/** What `variable` holds after the file is sourced, following `$VAR` self-references. */
export function effectiveValue(content: string, variable: string): ShellValue {
  const assignments = findAssignments(content, variable);
  const self = SELF_REFERENCE(variable);
  let tokens: string[] = [];
  const opaque: string[] = [];
  for (const assignment of assignments) {
    const words = assignment.inner.split(/\s+/).filter(Boolean);
    const next: string[] = [];
    for (const word of words) {
      if (assignment.style !== 'single' && self.test(word)) next.push(...tokens);
      else {
        if (assignment.style !== 'single' && word.includes('$')) opaque.push(word);
        next.push(word);
      }
    }
    tokens = next;
  }
  const contributing: number[] = [];
  for (let i = assignments.length - 1; i >= 0; i--) {
    contributing.unshift(i);
    const words = assignments[i]!.inner.split(/\s+/);
    if (assignments[i]!.style === 'single' || !words.some((word) => self.test(word))) break;
  }
  return { tokens: tokens.filter((token) => !self.test(token)), assignments, contributing, opaque: [...new Set(opaque)] };
}

/** The unquoted value of a simple `NAME=value` setting such as GRUB_ENABLE_BLSCFG, or null. */
export function simpleSetting(content: string, variable: string): string | null {
  try {
    const assignments = findAssignments(content, variable);
    return assignments.length ? assignments[assignments.length - 1]!.inner.trim() : null;
  } catch {
    return null;
  }
}

/**
 * Removes the managed tokens from `inner` and, when `insert` is given, puts those tokens
 * where the first managed one was (or at the end). Whitespace and every other token stay
 * byte for byte.
 */
export function editInner(inner: string, names: ReadonlySet<string>, insert: string[] | null): string {
  const parts = inner.match(/\s+|\S+/g) ?? [];
  const space = (i: number) => i >= 0 && i < parts.length && /^\s/.test(parts[i]!);
  const keep = parts.map(() => true);
  let placed = insert === null || insert.length === 0;
  parts.forEach((part, i) => {
    if (space(i) || part.includes('$') || !names.has(tokenName(part))) return;
    if (!placed) {
      parts[i] = insert!.join(' ');
      placed = true;
      return;
    }
    // Drop the token with the whitespace before it, or after it when nothing precedes it.
    keep[i] = false;
    if (space(i - 1) && keep[i - 1]) keep[i - 1] = false;
    else if (space(i + 1)) keep[i + 1] = false;
  });
  let result = parts.filter((_, i) => keep[i]).join('');
  if (!placed) {
    const trailing = /\s*$/.exec(result)![0];
    const body = result.slice(0, result.length - trailing.length);
    result = (body ? `${body} ` : '') + insert!.join(' ') + trailing;
  }
  return result;
}

export interface CmdlineEdit {
  content: string;
  /** 1-based lines that were edited (or appended). */
  lines: number[];
}

/**
 * The file with GRUB_CMDLINE_LINUX's managed tokens replaced by `desired`: the last
 * assignment gets them; earlier assignments that flow into it through
 * `$GRUB_CMDLINE_LINUX` lose their managed tokens; an absent line is appended.
 */
export function editCmdline(content: string, names: ReadonlySet<string>, desired: string[], variable = 'GRUB_CMDLINE_LINUX'): CmdlineEdit {
  const value = effectiveValue(content, variable);
  if (!value.assignments.length) {
    const base = content === '' || content.endsWith('\n') ? content : `${content}\n`;
    return { content: `${base}${variable}="${desired.join(' ')}"\n`, lines: [base.split('\n').length] };
  }
  const edits = value.contributing.map((index) => {
    const assignment = value.assignments[index]!;
    const last = index === value.assignments.length - 1;
    let inner = editInner(assignment.inner, names, last ? desired : null);
    let prefix = '';
    let suffix = '';
    if (assignment.style === 'none' && /\s/.test(inner.trim())) {
      prefix = '"';
      suffix = '"';
      inner = inner.trim();
    }
    return { assignment, text: prefix + inner + suffix };
  });
  let result = content;
  const lines: number[] = [];
  for (const { assignment, text } of [...edits].reverse()) {
    if (text === assignment.inner) continue;
    result = result.slice(0, assignment.start) + text + result.slice(assignment.end);
    lines.unshift(assignment.line);
  }
  return { content: result, lines };
}
