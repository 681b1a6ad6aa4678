/**
 * The libvirt_domain probe: host facts (libvirt-facts.ts), then for every defined
 * domain its state and persistent (inactive) XML, and for the domains the task
 * matches that are running, the live XML and the output of the read-only virsh
 * tuning commands (vcpupin, emulatorpin, numatune, memtune, blkiotune, schedinfo,
 * blkdeviotune per disk the task names). Only read-only virsh commands run here.
 */
import { randomBytes } from 'node:crypto';
import { formatCpuList, parseCpuList, quote } from '../../src/kit/index.js';
import { libvirtFactsProbe, parseLibvirtFacts, type LibvirtHostFacts } from './facts.js';
import { DOMAIN_GLOB_PATTERN, DOMAIN_NAME_PATTERN, type DomainParams } from './params.js';

/** First line of the probe's output: the random marker that frames every section after it. */
const HEADER = '@@libvirt-probe';
export const TOOLS = ['vcpupin', 'emulatorpin', 'numatune', 'memtune', 'blkiotune', 'schedinfo', 'dommemstat'] as const;

export interface DomainActual {
  name: string;
  /** virsh domstate: running, paused, shut off, ... */
  state: string;
  /** Selected by this task's name or pattern. */
  matched: boolean;
  inactive: string | null;
  live: string | null;
  /** Raw output of the read-only virsh tools, by tool (`blkdeviotune vda` per disk). */
  tools: Record<string, string>;
}

export interface DomainProbeState {
  host: LibvirtHostFacts;
  domains: DomainActual[];
}

export function isActive(domain: DomainActual): boolean {
  return domain.state !== 'shut off' && domain.state !== 'crashed' && domain.live !== null;
}

/** The shell test that sets m=1 when "$d" is selected by the task. */
function matchTest(params: DomainParams): string {
  if (params.name !== undefined) {
    if (!new RegExp(DOMAIN_NAME_PATTERN).test(params.name)) throw new Error(`bad domain name ${params.name}`);
    return `[ "$d" = ${quote(params.name)} ] && m=1`;
  }
  const pattern = params.pattern ?? '';
  if (!new RegExp(DOMAIN_GLOB_PATTERN).test(pattern)) throw new Error(`bad domain pattern ${pattern}`);
  // Unquoted on purpose: a case pattern is a glob; the schema allows no shell syntax in it.
  return `case "$d" in ${pattern}) m=1 ;; esac`;
}

/**
 * Sections are framed by a marker drawn at random for each probe: a domain's XML or a
 * tool's output (a tenant can set a domain's <description>) cannot forge a section.
 * One virsh process per domain runs every read (virsh runs `;`-separated commands and
 * goes on after one fails; its `echo` prints the section lines): under emulation or on
 * a host with many guests each virsh start costs far more than the command it runs.
 * The state comes first, then the persistent XML, then, for a domain the task selects,
 * the live XML and the tools; a shut-off domain's live part is cut off in the shell.
 */
export function domainProbe(params: DomainParams, mark = `@@${randomBytes(8).toString('hex')}@`): string {
  const virsh = `virsh -c ${quote(params.uri)}`;
  const end = `${mark}end`;
  const disks = (params.disks ?? []).map((disk) => disk.target).filter((t) => /^[a-z0-9]+$/.test(t));
  // virsh's own command language: `echo 'TEXT'` prints TEXT, $kc_q is the quoted name
  const section = (head: string, command: string) => `echo '${mark}${head}'; ${command}; echo '${end}'`;
  const always = [`echo '${mark}state'; domstate $kc_q`, section('xml\tinactive', 'dumpxml --inactive $kc_q')];
  const selected = [
    section('xml\tlive', 'dumpxml $kc_q'),
    ...TOOLS.map((tool) => section(`tool\t${tool}`, `${tool} $kc_q`)),
    ...disks.map((disk) => section(`tool\tblkdeviotune ${disk}`, `blkdeviotune $kc_q ${disk}`)),
  ];
  const domainPart = [
    `kc_nl='\n'`,
    `${virsh} list --all --name </dev/null 2>/dev/null | while IFS= read -r d; do`,
    `  [ -n "$d" ] || continue`,
    `  m=0; ${matchTest(params)}`,
    `  kc_vq "$d"`,
    `  c="${always.join('; ')}"`,
    `  [ "$m" = 1 ] && c="$c; ${selected.join('; ')}"`,
    `  o=$(${virsh} "$c" </dev/null 2>/dev/null)`,
    // the state: the line after its marker, unless domstate failed and printed nothing
    `  s=\${o#*"${mark}state$kc_nl"}; s=\${s%%"$kc_nl"*}; case $s in "${mark}"*) s= ;; esac`,
    `  printf '${mark}domain\\t%s\\t%s\\t%s\\n' "$d" "$s" "$m"`,
    `  case $o in *"$kc_nl${mark}xml\t"*) ;; *) continue ;; esac`,
    `  o=\${o#*"$kc_nl${mark}xml\t"}`,
    `  [ "$s" = "shut off" ] && o=\${o%%"$kc_nl${mark}xml\tlive"*}`,
    `  printf '${mark}xml\\t%s\\n' "$o"`,
    `done`,
  ];
  const facts = libvirtFactsProbe(params.uri);
  if (params.factsOnly) return facts;
  return [`printf '${HEADER}\\t%s\\n' '${mark}'`, facts, `if command -v virsh >/dev/null 2>&1; then`, ...domainPart, `fi`].join('\n');
}

/** Reads the probe output: the marker line, fact lines, then one block per domain. */
export function parseDomainProbe(output: string, selects: (name: string) => boolean = () => true): DomainProbeState {
  const lines = output.split('\n');
  const header = lines[0]?.split('\t');
  if (header?.[0] !== HEADER) return { host: parseLibvirtFacts(output), domains: [] };
  const mark = header[1] ?? '';
  if (!/^@@[0-9a-f]*@?$/.test(mark)) throw new Error('libvirt_domain probe output has a malformed marker');
  const end = `${mark}end`;
  const factLines: string[] = [];
  const domains: DomainActual[] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const [head = '', a = '', b = '', c = ''] = line.split('\t');
    const kind = head.startsWith(mark) ? head.slice(mark.length) : '';
    if (kind === 'domain') {
      domains.push({ name: a, state: b, matched: c === '1' && selects(a), inactive: null, live: null, tools: {} });
      continue;
    }
    if (kind !== 'xml' && kind !== 'tool') {
      if (!domains.length) factLines.push(line);
      continue;
    }
    const close = lines.indexOf(end, i + 1);
    const domain = domains[domains.length - 1];
    if (close < 0 || !domain) throw new Error('libvirt_domain probe output is truncated');
    // as $(...) reads it: trailing newlines dropped; an XML virsh could not print is null
    const body = lines.slice(i + 1, close).join('\n').replace(/\n+$/, '');
    if (kind === 'tool') domain.tools[a] = body;
    else if (a === 'inactive') domain.inactive = body || null;
    else domain.live = body || null;
    i = close;
  }
  return { host: parseLibvirtFacts(factLines.join('\n')), domains };
}

/** `virsh vcpupin` table (new ` 0   0-3` and old `0: 0-3` forms) -> vCPU -> canonical cpuset. */
export function parseVcpupin(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const match = /^\s*(\d+):?\s+([0-9,-]+)\s*$/.exec(line);
    if (match) out[match[1]!] = formatCpuList(parseCpuList(match[2]!));
  }
  return out;
}

/** `virsh emulatorpin`: the `*: 0-3` line. */
export function parseEmulatorpin(text: string): string | null {
  const match = /^\s*\*:\s*([0-9,-]+)\s*$/m.exec(text);
  return match ? formatCpuList(parseCpuList(match[1]!)) : null;
}

/** `name : value` lines (numatune, memtune, blkiotune, schedinfo, blkdeviotune). */
export function parseFields(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) out[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
  }
  return out;
}

/** blkiotune device_weight `/dev/sda,500,/dev/sdb,300` -> path -> weight. */
export function parseDeviceWeights(value: string | undefined): Record<string, string> {
  const parts = (value ?? '').split(',').filter(Boolean);
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < parts.length; i += 2) out[parts[i]!] = parts[i + 1]!;
  return out;
}
