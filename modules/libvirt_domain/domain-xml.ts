/**
 * DOM helpers for libvirt domain XML: parse and serialise with @xmldom/xmldom, walk
 * and create element paths, edit attributes and text while keeping every other node
 * (and its whitespace) as it was, insert new elements in libvirt's order with the
 * document's indentation, and convert libvirt memory units to KiB.
 */
import { DOMParser, XMLSerializer, type Element, type Node } from '@xmldom/xmldom';

/** One element step of a path below <domain>: by name, optionally by attributes, a child's attribute or position. */
export interface Step {
  name: string;
  attrs?: Record<string, string>;
  /** Select by a child element's attribute (interface[mac/@address='...']) or, without attr, its text (device[path='/dev/sda']). */
  child?: { name: string; attr?: string; value: string };
  /** 0-based position among the elements that match name (and attrs). */
  index?: number;
}

export function parseXml(text: string): Element {
  const doc = new DOMParser({
    onError: (level, message) => {
      if (level !== 'warning') throw new Error(`invalid domain XML: ${message}`);
    },
  }).parseFromString(text, 'text/xml');
  if (!doc.documentElement) throw new Error('invalid domain XML: no root element');
  return doc.documentElement;
}

export function serializeXml(node: Node): string {
  return new XMLSerializer().serializeToString(node);
}

/** Parses and serialises again: the form both sides of a FileDiff are shown in. */
export function reformat(text: string): string {
  return serializeXml(parseXml(text));
}

export function childElements(parent: Element, name?: string): Element[] {
  const out: Element[] = [];
  for (let node = parent.firstChild; node; node = node.nextSibling) {
    if (node.nodeType === 1 && (name === undefined || node.nodeName === name)) out.push(node as Element);
  }
  return out;
}

export function firstChild(parent: Element, name: string): Element | null {
  return childElements(parent, name)[0] ?? null;
}

function matches(element: Element, step: Step): boolean {
  if (Object.entries(step.attrs ?? {}).some(([key, value]) => element.getAttribute(key) !== value)) return false;
  if (!step.child) return true;
  const { name, attr, value } = step.child;
  return childElements(element, name).some((c) => (attr ? c.getAttribute(attr)?.toLowerCase() === value.toLowerCase() : textOf(c) === value));
}

function findStep(parent: Element, step: Step): Element | null {
  const found = childElements(parent, step.name).filter((element) => matches(element, step));
  return found[step.index ?? 0] ?? null;
}

export function findPath(root: Element, steps: Step[]): Element | null {
  let node: Element | null = root;
  for (const step of steps) {
    node = node && findStep(node, step);
  }
  return node;
}

/** Finds the path, creating missing elements (with their selecting attributes); a step selected by child or index must exist. */
export function ensurePath(root: Element, steps: Step[]): Element {
  let node = root;
  for (const step of steps) {
    let next = findStep(node, step);
    if (!next) {
      if (step.child?.attr || step.index !== undefined) throw new Error(`no <${step.name}> matching ${describeStep(step)} in the domain`);
      next = node.ownerDocument!.createElement(step.name);
      for (const [key, value] of Object.entries(step.attrs ?? {})) next.setAttribute(key, value);
      insertChild(node, next);
      if (step.child) {
        const selector = node.ownerDocument!.createElement(step.child.name);
        setText(selector, step.child.value);
        insertChild(next, selector);
      }
    }
    node = next;
  }
  return node;
}

function describeStep(step: Step): string {
  if (step.child) return `${step.child.name} ${step.child.attr}=${step.child.value}`;
  return step.index !== undefined ? `index ${step.index}` : JSON.stringify(step.attrs ?? {});
}

export function textOf(element: Element | null): string | null {
  return element ? (element.textContent ?? '').trim() : null;
}

export function setText(element: Element, text: string): void {
  while (element.firstChild) element.removeChild(element.firstChild);
  element.appendChild(element.ownerDocument!.createTextNode(text));
}

/** libvirt's canonical order of children for the parents kvmconf inserts into (what libvirt itself writes). */
const ORDER: Record<string, string[]> = {
  domain: ['name', 'uuid', 'genid', 'title', 'description', 'metadata', 'maxMemory', 'memory', 'currentMemory', 'blkiotune', 'memtune',
    'memoryBacking', 'vcpu', 'vcpus', 'iothreads', 'iothreadids', 'cputune', 'numatune', 'resource', 'sysinfo', 'bootloader', 'os',
    'features', 'cpu', 'clock', 'on_poweroff', 'on_reboot', 'on_crash', 'pm', 'perf', 'devices', 'seclabel'],
  cputune: ['shares', 'period', 'quota', 'global_period', 'global_quota', 'emulator_period', 'emulator_quota', 'iothread_period',
    'iothread_quota', 'vcpupin', 'emulatorpin', 'iothreadpin', 'vcpusched', 'iothreadsched', 'emulatorsched', 'cachetune', 'memorytune'],
  cachetune: ['cache', 'monitor'],
  memtune: ['hard_limit', 'soft_limit', 'swap_hard_limit', 'min_guarantee'],
  memoryBacking: ['hugepages', 'nosharepages', 'locked', 'source', 'access', 'allocation', 'discard'],
  blkiotune: ['weight', 'device'],
  cpu: ['model', 'vendor', 'topology', 'cache', 'maxphysaddr', 'feature', 'numa'],
  interface: ['mac', 'source', 'target', 'model', 'driver', 'coalesce', 'alias', 'address'],
  disk: ['driver', 'source', 'backingStore', 'target', 'iotune', 'alias', 'address'],
  controller: ['driver', 'alias', 'address'],
  device: ['path', 'weight', 'read_bytes_sec', 'write_bytes_sec', 'read_iops_sec', 'write_iops_sec'],
  coalesce: ['rx'],
  rx: ['frames'],
  iotune: ['total_bytes_sec', 'read_bytes_sec', 'write_bytes_sec', 'total_iops_sec', 'read_iops_sec', 'write_iops_sec'],
};

/** The indentation of an element, read from the whitespace before it ('' for the root). */
function indentOf(element: Element): string {
  const before = element.previousSibling;
  if (!before || before.nodeType !== 3) return '';
  const text = before.nodeValue ?? '';
  return /^\s*$/.test(text) ? text.slice(text.lastIndexOf('\n') + 1) : '';
}

function isBlank(node: Node | null): boolean {
  return !!node && node.nodeType === 3 && /^\s*$/.test(node.nodeValue ?? '');
}

/** Inserts `child` where libvirt would put it, indented like its future siblings. */
export function insertChild(parent: Element, child: Element): void {
  const doc = parent.ownerDocument!;
  const indent = indentOf(parent);
  const inner = indent + '  ';
  const order = ORDER[parent.nodeName] ?? [];
  const rank = order.indexOf(child.nodeName);
  const siblings = childElements(parent);
  const before = rank < 0 ? undefined : siblings.find((s) => order.indexOf(s.nodeName) > rank);
  if (before) {
    parent.insertBefore(child, before);
    parent.insertBefore(doc.createTextNode('\n' + inner), before);
  } else if (siblings.length) {
    const tail = isBlank(parent.lastChild) ? parent.lastChild : null;
    parent.insertBefore(doc.createTextNode('\n' + inner), tail);
    parent.insertBefore(child, tail);
  } else {
    while (parent.firstChild) parent.removeChild(parent.firstChild);
    parent.appendChild(doc.createTextNode('\n' + inner));
    parent.appendChild(child);
    parent.appendChild(doc.createTextNode('\n' + indent));
  }
}

/** Removes an element and the whitespace that indented it; a parent left without children is closed up. */
export function removeElement(element: Element): void {
  const parent = element.parentNode as Element | null;
  if (!parent) return;
  if (isBlank(element.previousSibling)) parent.removeChild(element.previousSibling!);
  parent.removeChild(element);
  if (!childElements(parent).length) while (parent.firstChild && isBlank(parent.firstChild)) parent.removeChild(parent.firstChild);
}

/** Removes `element` and then each ancestor (below `root`) left with no attributes and no child elements. */
export function pruneUp(element: Element, root: Element, keep: (e: Element) => boolean = () => false): void {
  let node: Element | null = element;
  while (node && node !== root && !keep(node) && !childElements(node).length && !node.attributes.length && !textOf(node)) {
    const parent = node.parentNode as Element | null;
    removeElement(node);
    node = parent;
  }
}

/** The XPath libvirt's `virsh dumpxml --xpath` understands for a path (and attribute). */
export function xpathOf(steps: Step[], attr?: string): string {
  const parts = steps.map((step) => {
    const predicates = Object.entries(step.attrs ?? {}).map(([key, value]) => `[@${key}='${value}']`);
    if (step.child) predicates.push(`[${step.child.name}${step.child.attr ? `/@${step.child.attr}` : ''}='${step.child.value}']`);
    if (step.index !== undefined) predicates.push(`[${step.index + 1}]`);
    return step.name + predicates.join('');
  });
  return '/domain/' + parts.join('/') + (attr ? `/@${attr}` : '/text()');
}

const UNITS: Record<string, number> = {
  b: 1 / 1024, bytes: 1 / 1024, kb: 1000 / 1024, k: 1, kib: 1, mb: 1e6 / 1024, m: 1024, mib: 1024,
  gb: 1e9 / 1024, g: 1024 ** 2, gib: 1024 ** 2, tb: 1e12 / 1024, t: 1024 ** 3, tib: 1024 ** 3,
};

/** A libvirt scaled integer (`unit` absent = KiB) in KiB, as libvirt itself stores it. */
export function toKiB(value: string | number, unit?: string | null): number {
  const factor = UNITS[(unit || 'KiB').toLowerCase()];
  if (factor === undefined) throw new Error(`unknown libvirt memory unit '${unit}'`);
  const number = Number(value);
  if (!Number.isFinite(number)) throw new Error(`bad libvirt memory value '${value}'`);
  return Math.ceil(number * factor);
}
