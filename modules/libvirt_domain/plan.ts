/**
 * Planning one domain: the persistent config (inactive XML) gets one `persist` change
 * whose FileDiff shows the XML with only the owned elements edited; a running domain
 * gets `runtime` changes for what libvirt changes live, and `pending` changes (or one
 * `restart` change when the task allows it) for what only a guest start applies.
 */
import type { Element } from '@xmldom/xmldom';
import { contentSha, inline, sh, shellCode, words, type Change, type Command } from '../../src/kit/index.js';
import { findPath, parseXml, reformat, serializeXml, textOf } from './domain-xml.js';
import { ABSENT, LV_LIB, type Leaf, type LiveTools } from './leaves.js';
import { buildLeaves } from './leafset.js';
import { VIRSH_QUOTE_FN } from './facts.js';
import type { DomainParams } from './params.js';
import { isActive, parseEmulatorpin, parseFields, parseVcpupin, type DomainActual } from './probe.js';

export const MODULE = 'libvirt_domain';

export const show = (value: string): string | null => (value === ABSENT ? null : value);

export function liveTools(tools: Record<string, string>): LiveTools {
  const disks = Object.entries(tools).filter(([tool]) => tool.startsWith('blkdeviotune '));
  return {
    vcpupin: parseVcpupin(tools.vcpupin ?? ''),
    emulatorpin: parseEmulatorpin(tools.emulatorpin ?? ''),
    numatune: parseFields(tools.numatune ?? ''),
    memtune: parseFields(tools.memtune ?? ''),
    blkiotune: parseFields(tools.blkiotune ?? ''),
    schedinfo: parseFields(tools.schedinfo ?? ''),
    blkdeviotune: Object.fromEntries(disks.map(([tool, out]) => [tool.slice('blkdeviotune '.length), parseFields(out)])),
    ...rssOf(tools.dommemstat),
  };
}

/** `virsh dommemstat` lines (`rss 45356`): the qemu process's resident KiB. */
function rssOf(output: string | undefined): { rssKiB?: number } {
  const match = /^rss\s+(\d+)\s*$/m.exec(output ?? '');
  return match ? { rssKiB: Number(match[1]) } : {};
}

/** `web1/cputune.vcpupin[0]`: a libvirt domain name never holds a slash. */
export const targetOf = (domain: string, key: string): string => `${domain}/${key}`;

export function splitTarget(target: string): { domain: string; key: string } {
  const slash = target.indexOf('/');
  return { domain: target.slice(0, slash), key: target.slice(slash + 1) };
}

function summary(leaves: Leaf[], value: (leaf: Leaf) => string): string {
  return leaves.map((leaf) => `${leaf.key}=${show(value(leaf)) ?? '(unset)'}`).join(', ');
}

/** `xml` is the domain's persistent config as read, `inactive` its parsed tree. */
function persistChange(params: DomainParams, domain: DomainActual, xml: string, inactive: Element, leaves: Leaf[]): Change | null {
  const { name } = domain;
  const stale = leaves.filter((leaf) => leaf.read(inactive) !== leaf.want);
  if (!stale.length) return null;
  const edited = parseXml(xml);
  stale.forEach((leaf) => leaf.write(edited));
  const wrong = leaves.filter((leaf) => leaf.read(edited) !== leaf.want);
  if (wrong.length) throw new Error(`internal error: editing ${name} left ${summary(wrong, (leaf) => leaf.read(edited))}`);
  const after = serializeXml(edited);
  return {
    module: MODULE, target: targetOf(name, 'config'), scope: 'persist',
    before: summary(stale, (leaf) => leaf.read(inactive)), after: summary(stale, (leaf) => leaf.want),
    diff: { before: reformat(xml), after, beforeHeader: `virsh dumpxml --inactive ${name}`, afterHeader: `virsh define (${name})` },
    commands: persistCommands(params, domain.name, xml, after, leaves),
  };
}

/** libvirt rewrites host-model as a custom model in the live XML: trust the config unless this run changes the mode. */
function liveValue(leaf: Leaf, tools: LiveTools, live: Element, persistTouched: Set<string>): string {
  const value = leaf.live?.read?.(tools) ?? leaf.read(live);
  if (leaf.key === 'cpu.mode' && leaf.want === 'host-model' && value === 'custom' && !persistTouched.has(leaf.key)) return leaf.want;
  return value;
}

function liveChanges(params: DomainParams, domain: DomainActual, leaves: Leaf[], persistTouched: Set<string>): Change[] {
  const live = parseXml(domain.live!);
  const tools = liveTools(domain.tools);
  const runtime: Change[] = [];
  const waiting: Change[] = [];
  const virsh = inline(sh`virsh -c ${params.uri}`);
  for (const leaf of leaves) {
    const current = liveValue(leaf, tools, live, persistTouched);
    if (current === leaf.want) continue;
    const base = { module: MODULE, target: targetOf(domain.name, leaf.key), before: show(current), after: show(leaf.want) };
    const view = { root: live, tools };
    const blocked = leaf.live ? leaf.live.blocked?.(current, leaf.want, view) : 'libvirt applies it only when the guest starts';
    const note = blocked ? undefined : leaf.live?.note?.(current, leaf.want, view);
    if (!blocked) {
      const commands = [DOMAIN_LIB, sameInstance(params, domain.name, live), ...leaf.live!.commands(virsh, domain.name, leaf.want)];
      runtime.push({ ...base, scope: 'runtime', ...(note ? { reason: note } : {}), commands });
    }
    else waiting.push({ ...base, scope: 'pending', pendingOn: 'guest-restart', reason: blocked });
  }
  if (!waiting.length || !params.restart) return [...runtime, ...waiting];
  const keys = waiting.map((change) => splitTarget(change.target).key);
  const how = params.force_restart ? `, destroyed if still running after ${params.restart_timeout} s` : ` (waits up to ${params.restart_timeout} s; fails rather than destroy it)`;
  return [...runtime, {
    module: MODULE, target: targetOf(domain.name, 'restart'), scope: 'runtime', before: 'running', after: 'restarted',
    reason: `graceful shutdown and start to apply ${keys.join(', ')}${how}`,
    commands: [DOMAIN_LIB, sameInstance(params, domain.name, live), sh`kc_lv_restart ${params.uri} ${domain.name} ${params.restart_timeout} ${params.force_restart ? 1 : 0}`],
  }];
}

/** Every change for one matched domain (persist first, then runtime, then pending/restart). */
export function planDomain(params: DomainParams, domain: DomainActual): Change[] {
  if (domain.inactive === null) throw new Error(`${domain.name}: could not read its persistent config (virsh dumpxml --inactive failed)`);
  const inactive = parseXml(domain.inactive);
  const live = isActive(domain) ? parseXml(domain.live!) : null;
  const leaves = buildLeaves(params, inactive, live);
  const persist = persistChange(params, domain, domain.inactive, inactive, leaves);
  const touched = new Set(leaves.filter((leaf) => leaf.read(inactive) !== leaf.want).map((leaf) => leaf.key));
  return [...(persist ? [persist] : []), ...(live ? liveChanges(params, domain, leaves, touched) : [])];
}

/** Shell functions for defining, reading back and restarting domains. */
export const DOMAIN_LIB = sh`${inline(LV_LIB)}
${inline(VIRSH_QUOTE_FN)}
kc_lv_define() {
  kc_now=$(virsh -c "$1" dumpxml --inactive --domain "$2" </dev/null) || kc_fail "$2: cannot read its persistent config"
  [ "$(printf '%s' "$kc_now" | sha256sum | cut -d' ' -f1)" = "$3" ] || kc_fail "$2: its config changed since it was read; re-run to plan against the new one"
  kc_tmp=$(mktemp "\${TMPDIR:-/tmp}/kvmconf-domain.XXXXXX") || kc_fail "cannot create a temporary file"
  printf '%s\\n' "$4" > "$kc_tmp" || { rm -f "$kc_tmp"; kc_fail "cannot write $kc_tmp"; }
  kc_err=$(virsh -c "$1" define --file "$kc_tmp" </dev/null 2>&1) || { rm -f "$kc_tmp"; kc_fail "virsh define $2 failed: $kc_err"; }
  rm -f "$kc_tmp"
}
kc_lv_xps() {
  kc_u=$1; kc_n=$2; kc_m=$3; shift 3
  kc_vq "$kc_n"; kc_d=$kc_q; kc_c=
  for kc_x in "$@"; do kc_vq "$kc_x"; kc_c="$kc_c; echo '$kc_m'; dumpxml --inactive $kc_d --xpath $kc_q"; done
  kc_all=$(virsh -c "$kc_u" "\${kc_c#; }" </dev/null 2>/dev/null)
  case $kc_all in *"$kc_m"*) kc_all=\${kc_all#*"$kc_m"} ;; *) kc_fail "$kc_n: cannot read back its persistent config" ;; esac
}
kc_lv_xp() {
  case $kc_all in *"$kc_m"*) kc_got=\${kc_all%%"$kc_m"*}; kc_all=\${kc_all#*"$kc_m"} ;; *) kc_got=$kc_all; kc_all= ;; esac
  kc_got=$(printf '%s' "$kc_got" | tr -d '\\n' | sed 's/^ *//; s/ *$//; s/^[A-Za-z_:-]*="\\(.*\\)"$/\\1/')
  case $kc_got in '<'*) kc_got=present ;; esac
  [ "$kc_got" = "$2" ] || { [ -z "$kc_got" ] && [ "$2" = "$3" ]; } || kc_fail "$kc_n: defined $1 = '$2' but libvirt kept '\${kc_got:-nothing}'"
}
kc_lv_same() {
  kc_n=$2; kc_u=$3; kc_i=$4; kc_vq "$2"
  set -- $(virsh -c "$1" "domuuid $kc_q; domid $kc_q" </dev/null 2>/dev/null)
  [ "$#" = 2 ] && [ "$1" = "$kc_u" ] && [ "$2" = "$kc_i" ] ||
    kc_fail "$kc_n: the running domain changed since it was read (restarted or replaced); re-run to plan against the new one"
}
kc_lv_restart() {
  virsh -c "$1" shutdown --domain "$2" </dev/null >/dev/null || kc_fail "$2: virsh shutdown failed"
  kc_i=0
  while [ "$(virsh -c "$1" domstate --domain "$2" </dev/null)" != "shut off" ] && [ "$kc_i" -lt "$3" ]; do sleep 1; kc_i=$((kc_i + 1)); done
  if [ "$(virsh -c "$1" domstate --domain "$2" </dev/null)" != "shut off" ]; then
    [ "$4" = 1 ] || kc_fail "$2 did not shut down within $3 s (does the guest handle ACPI shutdown?); set force_restart: true to destroy it after the timeout"
    virsh -c "$1" destroy --domain "$2" </dev/null >/dev/null || kc_fail "$2: virsh destroy failed"
  fi
  virsh -c "$1" start --domain "$2" </dev/null >/dev/null || kc_fail "$2: virsh start failed"
  [ "$(virsh -c "$1" domstate --domain "$2" </dev/null)" = running ] || kc_fail "$2 is not running after start"
}`;

/** Define the edited config, guarded by the sha256 of the config it was planned from, then read back. */
function persistCommands(params: DomainParams, name: string, read: string, xml: string, leaves: Leaf[]): Command[] {
  const { uri } = params;
  const sha = contentSha(read);
  const all = leaves.flatMap((leaf) => leaf.checks);
  // One virsh run reads every xpath (virsh's echo prints the marker between them); the
  // marker comes from the config's hash so a saved plan's commands are planned again alike.
  const mark = `@@kc-xp-${sha.slice(0, 16)}@`;
  const checks = all.length
    ? [sh`  kc_lv_xps ${uri} ${name} ${mark} ${words(all.map((c) => c.xpath))}`, ...all.map((c) => sh`  kc_lv_xp ${c.xpath} ${c.want} ${c.dflt}`)]
    : [shellCode`  :`];
  return [
    DOMAIN_LIB,
    sh`kc_lv_define ${uri} ${name} ${sha} ${xml}`,
    shellCode`if virsh help dumpxml 2>/dev/null | grep -q -e --xpath; then`,
    ...checks,
    shellCode`else echo 'this virsh has no dumpxml --xpath: the owned settings are checked by the verify pass'; fi`,
  ];
}

/**
 * The guard of a live step: the domain still runs as the instance that was read (same
 * uuid, same domain id), as the sha256 guard does for the persistent config.
 */
function sameInstance(params: DomainParams, name: string, live: Element): Command {
  const uuid = textOf(findPath(live, [{ name: 'uuid' }])) ?? '';
  const id = live.getAttribute('id') ?? '';
  if (!/^[0-9a-f-]{36}$/.test(uuid) || !/^[0-9]+$/.test(id)) throw new Error(`${name}: the live XML has no uuid or domain id to guard the live changes with`);
  return sh`kc_lv_same ${params.uri} ${name} ${uuid} ${id}`;
}
