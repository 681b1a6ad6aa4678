/**
 * A "leaf" is one owned setting of a domain: where it sits in the XML, its canonical
 * value (libvirt's defaults filled in, units in KiB, cpusets in libvirt's range form),
 * how to write it with the DOM, how to read it back after `virsh define`, and, when
 * libvirt can change it on a running domain, how to read and set the live value.
 * Comparing leaves (never whole documents) is what keeps a second run at zero changes.
 */
import type { Element } from '@xmldom/xmldom';
import { formatCpuList, parseCpuList, quote, inline, sh, shellCode, words, type Command, type Verbatim } from '../../src/kit/index.js';
import { ensurePath, findPath, pruneUp, removeElement, setText, textOf, toKiB, xpathOf, type Step } from './domain-xml.js';

/** The canonical value of a setting that is not in the XML (shown as null); never a real libvirt value. */
export const ABSENT = '(absent)';

/** Parsed output of the read-only virsh tuning commands for a running domain. */
export interface LiveTools {
  vcpupin: Record<string, string>;
  emulatorpin: string | null;
  numatune: Record<string, string>;
  memtune: Record<string, string>;
  blkiotune: Record<string, string>;
  schedinfo: Record<string, string>;
  blkdeviotune: Record<string, Record<string, string>>;
  /** Resident memory of the qemu process (virsh dommemstat rss), when libvirt reports it. */
  rssKiB?: number;
}

/** One read-back check of the persistent config: `virsh dumpxml --inactive --xpath`. */
export interface ReadBack {
  xpath: string;
  want: string;
  /** The value absence stands for. */
  dflt: string;
}

/** What a live op may look at when it decides: the live XML and the virsh tools' output. */
export interface LiveView {
  root: Element;
  tools: LiveTools;
}

export interface LiveOp {
  /** The live value from the virsh tools; undefined = read the live XML instead. */
  read?(tools: LiveTools): string | undefined;
  /** Why libvirt refuses `want` on the running domain (then it waits for a restart); undefined = it takes it live. */
  blocked?(live: string, want: string, view: LiveView): string | undefined;
  /** How a live change is made when that is not the plain setter (shown as the change's reason). */
  note?(live: string, want: string, view: LiveView): string | undefined;
  /** Commands (virsh ... --live, then a read-back) for a domain. */
  commands(virsh: Verbatim, domain: string, want: string): Command[];
}

export interface Leaf {
  key: string;
  want: string;
  read(root: Element): string;
  write(root: Element): void;
  checks: ReadBack[];
  /** Absent: takes effect only when the guest starts. */
  live?: LiveOp;
}

export const canonCpus = (list: string): string => formatCpuList(parseCpuList(list));

/** Elements whose presence alone means something: never pruned when left empty. */
const PRESENCE = new Set(['hugepages', 'locked', 'nosharepages', 'vcpu', 'devices']);
const keepPresence = (element: Element): boolean => PRESENCE.has(element.nodeName);

export function removeAt(root: Element, steps: Step[]): void {
  const element = findPath(root, steps);
  if (!element) return;
  const parent = element.parentNode as Element;
  removeElement(element);
  pruneUp(parent, root, keepPresence);
}

export interface AttrSpec {
  key: string;
  steps: Step[];
  attr: string;
  dflt: string;
  want: string;
  canon?: (value: string) => string;
  live?: LiveOp;
}

export function attrLeaf(spec: AttrSpec): Leaf {
  const { steps, attr, dflt, want } = spec;
  return {
    key: spec.key,
    want,
    read(root) {
      const value = findPath(root, steps)?.getAttribute(attr);
      return value === null || value === undefined || value === '' ? dflt : spec.canon ? spec.canon(value) : value;
    },
    write(root) {
      if (want !== dflt) return ensurePath(root, steps).setAttribute(attr, want);
      const element = findPath(root, steps);
      if (!element) return;
      element.removeAttribute(attr);
      pruneUp(element, root, keepPresence);
    },
    checks: [{ xpath: xpathOf(steps, attr), want, dflt }],
    ...(spec.live ? { live: spec.live } : {}),
  };
}

export interface TextSpec {
  key: string;
  steps: Step[];
  dflt: string;
  want: string;
  /** A memory value with a unit attribute: compared and written in KiB. */
  kib?: boolean;
  live?: LiveOp;
}

export function textLeaf(spec: TextSpec): Leaf {
  const { steps, dflt, want } = spec;
  return {
    key: spec.key,
    want,
    read(root) {
      const element = findPath(root, steps);
      const text = textOf(element);
      if (!element || !text) return dflt;
      return spec.kib ? String(toKiB(text, element.getAttribute('unit'))) : text;
    },
    write(root) {
      if (want === dflt) return removeAt(root, steps);
      const element = ensurePath(root, steps);
      setText(element, want);
      if (spec.kib) element.setAttribute('unit', 'KiB');
    },
    checks: [{ xpath: xpathOf(steps), want, dflt }],
    ...(spec.live ? { live: spec.live } : {}),
  };
}

/** An element whose presence is the setting (<locked/>, <nosharepages/>). */
export function presenceLeaf(key: string, steps: Step[], want: boolean): Leaf {
  return {
    key,
    want: want ? 'yes' : ABSENT,
    read: (root) => (findPath(root, steps) ? 'yes' : ABSENT),
    write: (root) => (want ? void ensurePath(root, steps) : removeAt(root, steps)),
    checks: [{ xpath: xpathOf(steps).replace(/\/text\(\)$/, ''), want: want ? 'present' : '', dflt: '' }],
  };
}

/** Shell functions the libvirt commands use; kc_fail comes from the remote library. */
export const LV_LIB = shellCode`kc_lv_field() { awk -v k="$1" '{ i = index($0, ":"); if (i) { n = substr($0, 1, i - 1); v = substr($0, i + 1); gsub(/^[ \\t]+|[ \\t]+$/, "", n); gsub(/^[ \\t]+|[ \\t]+$/, "", v); if (n == k) print v } }'; }
kc_lv_check() { [ "$3" = "$2" ] || kc_fail "$1: asked for '$2', libvirt has '\${3:-nothing}'"; }`;

/** A live op for "name : value" tools: set with `virsh TOOL --domain D ARGS --live`, read back FIELD. */
export function fieldOp(tool: string, field: string, args: (want: string) => string[], read: (tools: LiveTools) => string | undefined, blocked?: LiveOp['blocked'], readArgs: string[] = []): LiveOp {
  const select = readArgs.map((arg) => ` ${quote(arg)}`).join('');
  const selected = inline(readArgs.length ? sh` ${words(readArgs)}` : shellCode``);
  return {
    read,
    ...(blocked ? { blocked } : {}),
    commands: (virsh, domain, want) => [
      sh`${virsh} ${tool} --domain ${domain} ${words(args(want))} --live </dev/null`,
      sh`kc_lv_check ${`${domain} ${tool}${select} ${field}`} ${want} "$(${virsh} ${tool} --domain ${domain}${selected} --live </dev/null | kc_lv_field ${field})"`,
    ],
  };
}
