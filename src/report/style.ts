/**
 * ANSI colour for the human-facing reports. A disabled style returns text untouched,
 * so renderers never need to branch on colour themselves.
 */

export type Paint = (text: string) => string;

export interface Style {
  enabled: boolean;
  bold: Paint;
  dim: Paint;
  red: Paint;
  green: Paint;
  yellow: Paint;
  cyan: Paint;
  magenta: Paint;
}

const CODES = {
  bold: [1, 22],
  dim: [2, 22],
  red: [31, 39],
  green: [32, 39],
  yellow: [33, 39],
  cyan: [36, 39],
  magenta: [35, 39],
} as const;

type Colour = keyof typeof CODES;

function painter(colour: Colour, enabled: boolean): Paint {
  if (!enabled) return (text) => text;
  const [open, close] = CODES[colour];
  return (text) => (text === '' ? text : `\x1b[${open}m${text}\x1b[${close}m`);
}

export function createStyle(enabled: boolean): Style {
  return {
    enabled,
    bold: painter('bold', enabled),
    dim: painter('dim', enabled),
    red: painter('red', enabled),
    green: painter('green', enabled),
    yellow: painter('yellow', enabled),
    cyan: painter('cyan', enabled),
    magenta: painter('magenta', enabled),
  };
}

const STATUS_COLOUR: Record<string, Colour> = {
  ok: 'green',
  applied: 'green',
  changed: 'yellow',
  planned: 'yellow',
  pending: 'cyan',
  failed: 'red',
  unreachable: 'red',
  error: 'red',
  warning: 'yellow',
  'not-run': 'magenta',
  skipped: 'magenta',
};

/** The paint for a status word (host, task, change, step or diagnostic severity). */
export function statusPaint(style: Style, status: string): Paint {
  const colour = STATUS_COLOUR[status];
  return colour ? style[colour] : (text) => text;
}

export function paintStatus(style: Style, status: string): string {
  return statusPaint(style, status)(status);
}

const ANSI_SEQUENCE = /\x1b\[[0-9;?]*[A-Za-z]/g;

export function stripAnsi(text: string): string {
  return text.replace(ANSI_SEQUENCE, '');
}

function flagSet(value: string | undefined): boolean {
  return value !== undefined && value !== '' && value !== '0' && value.toLowerCase() !== 'false';
}

/**
 * Colour only on a terminal, never when NO_COLOR is set (non-empty), CI is set (not 0/false) or TERM=dumb;
 * FORCE_COLOR (any value but 0/false) forces it on, FORCE_COLOR=0 forces it off.
 */
export function shouldUseColor(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  const force = env['FORCE_COLOR'];
  if (force !== undefined) return force === '' || flagSet(force);
  if (env['NO_COLOR'] !== undefined && env['NO_COLOR'] !== '') return false;
  if (flagSet(env['CI'])) return false;
  if (env['TERM'] === 'dumb') return false;
  return stream.isTTY === true;
}

/**
 * Control characters shown, not obeyed: a task name or a host's output holding ESC
 * sequences could otherwise move the cursor, recolour or retitle the operator's
 * terminal, or hide lines. Newlines and tabs stay; everything else below 0x20, DEL and
 * the C1 range are written as \xNN.
 */
export function escapeControl(text: string): string {
  return text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** A copy of a report-like value with every string escaped (escapeControl). */
export function escapeStrings<T>(value: T): T {
  if (typeof value === 'string') return escapeControl(value) as T;
  if (Array.isArray(value)) return value.map(escapeStrings) as T;
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, escapeStrings(item)])) as T;
  return value;
}
