/**
 * Progress while hosts run, written to stderr so stdout stays clean for machine formats.
 * Interactive: one live status line rewritten in place, at most ~10 times a second.
 * Otherwise (CI, pipes): one plain line per finished host.
 */
import type { HostStatus } from '../engine/results.js';
import { formatDuration } from './common.js';

export type Phase = 'connect' | 'gather' | 'apply' | 'verify' | 'finish';

/** The part of a NodeJS.WriteStream progress uses. */
export interface ProgressStream {
  write(text: string): unknown;
  columns?: number;
}

export interface ProgressOptions {
  stream: ProgressStream;
  interactive: boolean;
  /** Hosts (host x play runs) expected in all. */
  total: number;
}

export interface Progress {
  hostStarted(host: string, phase?: Phase): void;
  hostPhase(host: string, phase: Phase): void;
  hostDone(host: string, status: HostStatus): void;
  /** Clears the live line; later calls do nothing. */
  stop(): void;
}

/** Minimum time between two redraws of the live line. */
export const REDRAW_INTERVAL_MS = 100;

const CLEAR_LINE = '\r\x1b[2K';

interface Running {
  phase: Phase;
  startedAt: number;
}

/** Which hosts run, in which phase, and how the finished ones ended. */
class Tally {
  readonly running = new Map<string, Running>();
  readonly finished: Record<HostStatus, number> = { ok: 0, changed: 0, pending: 0, failed: 0, unreachable: 0, skipped: 0 };
  done = 0;
  /** Most recent host to start or change phase. */
  latest: string | undefined;

  start(host: string, phase: Phase): void {
    this.running.set(host, { phase, startedAt: Date.now() });
    this.latest = host;
  }

  phase(host: string, phase: Phase): void {
    const entry = this.running.get(host);
    if (entry) entry.phase = phase;
    else this.start(host, phase);
    this.latest = host;
  }

  /** Records the end of a host and returns how long it ran (undefined if never started). */
  finish(host: string, status: HostStatus): number | undefined {
    const entry = this.running.get(host);
    this.running.delete(host);
    this.finished[status]++;
    this.done++;
    if (this.latest === host) this.latest = [...this.running.keys()].at(-1);
    return entry ? Date.now() - entry.startedAt : undefined;
  }
}

/** `[12/50] 3 running, 8 ok, 1 changed, 0 failed ... hv7 apply`; rarer states only when non-zero. */
function progressLine(tally: Tally, total: number): string {
  const { finished } = tally;
  const optional = (count: number, word: string): string[] => (count > 0 ? [`${count} ${word}`] : []);
  const counts = [
    `${tally.running.size} running`,
    `${finished.ok} ok`,
    `${finished.changed} changed`,
    ...optional(finished.pending, 'pending'),
    `${finished.failed} failed`,
    ...optional(finished.unreachable, 'unreachable'),
    ...optional(finished.skipped, 'skipped'),
  ];
  const current = tally.latest === undefined ? undefined : tally.running.get(tally.latest);
  const activity = current ? ` ... ${tally.latest} ${current.phase}` : '';
  return `[${tally.done}/${total}] ${counts.join(', ')}${activity}`;
}

class LiveProgress implements Progress {
  private readonly tally = new Tally();
  private lastDraw = -Infinity;
  private shown = '';
  private timer: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;

  constructor(private readonly options: ProgressOptions) {}

  hostStarted(host: string, phase: Phase = 'connect'): void {
    this.tally.start(host, phase);
    this.refresh();
  }

  hostPhase(host: string, phase: Phase): void {
    this.tally.phase(host, phase);
    this.refresh();
  }

  hostDone(host: string, status: HostStatus): void {
    this.tally.finish(host, status);
    this.refresh();
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.shown !== '') this.options.stream.write(CLEAR_LINE);
  }

  /** Draws now if the last draw is old enough, otherwise once the interval has passed. */
  private refresh(): void {
    if (this.stopped || this.timer) return;
    const wait = this.lastDraw + REDRAW_INTERVAL_MS - Date.now();
    if (wait <= 0) {
      this.draw();
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.draw();
    }, wait);
    this.timer.unref?.();
  }

  private draw(): void {
    if (this.stopped) return;
    this.lastDraw = Date.now();
    const line = fitWidth(progressLine(this.tally, this.options.total), this.options.stream.columns);
    if (line === this.shown) return;
    this.shown = line;
    this.options.stream.write(CLEAR_LINE + line);
  }
}

/** Keeps the line shorter than the terminal so it never wraps (a wrapped line cannot be rewritten). */
function fitWidth(line: string, columns: number | undefined): string {
  return columns && columns > 1 && line.length >= columns ? line.slice(0, columns - 1) : line;
}

class LineProgress implements Progress {
  private readonly tally = new Tally();
  private stopped = false;

  constructor(private readonly options: ProgressOptions) {}

  hostStarted(host: string, phase: Phase = 'connect'): void {
    this.tally.start(host, phase);
  }

  hostPhase(host: string, phase: Phase): void {
    this.tally.phase(host, phase);
  }

  hostDone(host: string, status: HostStatus): void {
    const elapsed = this.tally.finish(host, status);
    if (this.stopped) return;
    const timing = elapsed === undefined ? '' : ` (${formatDuration(elapsed)})`;
    this.options.stream.write(`${host}: ${status}${timing}\n`);
  }

  stop(): void {
    this.stopped = true;
  }
}

export function createProgress(options: ProgressOptions): Progress {
  return options.interactive ? new LiveProgress(options) : new LineProgress(options);
}
