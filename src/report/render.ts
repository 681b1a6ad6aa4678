/** Which report a format name or a file name asks for, and the one place each is rendered. */
import type { RunReport } from '../engine/results.js';
import { renderHtml } from './html.js';
import { renderJson } from './json.js';
import { renderJunit } from './junit.js';
import { renderMarkdown } from './markdown.js';
import { renderText, type TextOptions } from './text.js';

export type ReportFormat = 'text' | 'json' | 'junit' | 'markdown' | 'html';

export const REPORT_FORMATS: readonly ReportFormat[] = ['text', 'json', 'junit', 'markdown', 'html'];

const BY_EXTENSION: Array<[RegExp, ReportFormat]> = [
  [/\.xml$/i, 'junit'],
  [/\.(md|markdown)$/i, 'markdown'],
  [/\.html?$/i, 'html'],
  [/\.txt$/i, 'text'],
];

/** `.xml` JUnit, `.md` Markdown, `.html` HTML, `.txt` text, anything else JSON. */
export function formatOfFile(file: string): ReportFormat {
  return BY_EXTENSION.find(([pattern]) => pattern.test(file))?.[1] ?? 'json';
}

/** `md` is accepted for `markdown`. */
export function formatNamed(name: string): ReportFormat | undefined {
  const format = name === 'md' ? 'markdown' : name;
  return REPORT_FORMATS.find((known) => known === format);
}

export function renderReport(report: RunReport, format: ReportFormat, text: TextOptions = { color: false, diff: false }): string {
  switch (format) {
    case 'json':
      return renderJson(report);
    case 'junit':
      return renderJunit(report);
    case 'markdown':
      return renderMarkdown(report);
    case 'html':
      return renderHtml(report);
    default:
      return renderText(report, text);
  }
}
