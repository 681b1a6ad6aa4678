/**
 * HTML report load time at fleet scale: renders a synthetic report of N hosts (default
 * 1,000; groups, drift, pending, failures, unreachable hosts) and has Debian's chromium
 * load it headless, against a blank page as the baseline of starting the browser itself.
 * Prints the page size, the render time in kvmconf, and the browser's median wall time
 * over a few runs, page and baseline, and their difference: the time the page costs.
 *
 *   npm run build && node dist/bench/html-report.js [HOSTS=1000] [RUNS=5]
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { renderHtml } from '../src/report/html.js';
import { chromium } from '../test/helpers/chromium.js';
import { fleetReport } from '../test/helpers/report-fixtures.js';

const hosts = Number(process.argv[2] ?? 1000);
const runs = Number(process.argv[3] ?? 5);
const dir = mkdtempSync(join(tmpdir(), 'kvmconf-bench-html-'));

const started = performance.now();
const html = renderHtml(fleetReport(hosts));
const renderMs = performance.now() - started;
const page = join(dir, 'fleet.html');
const blank = join(dir, 'blank.html');
writeFileSync(page, html);
writeFileSync(blank, '<!doctype html><title>blank</title>');

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const load = (file: string): number => median(Array.from({ length: runs }, () => chromium('--dump-dom', pathToFileURL(file).href).ms));

const baseline = load(blank);
const loaded = load(page);
console.log(`hosts ${hosts}, page ${(html.length / 1024).toFixed(0)} KiB, rendered by kvmconf in ${renderMs.toFixed(0)} ms`);
console.log(`chromium --dump-dom, median of ${runs}: page ${loaded} ms, blank page ${baseline} ms, the page costs ${loaded - baseline} ms`);
