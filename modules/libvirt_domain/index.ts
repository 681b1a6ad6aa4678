/**
 * libvirt_domain: guest tuning in libvirt domain XML (vCPU pinning, emulator pinning,
 * NUMA policy and topology, hugepage backing, memory limits, multi-queue virtio-net
 * and virtio-scsi, disk cache/io/throttling, block I/O weights). The persistent config
 * is edited with the DOM and defined with `virsh define`; a running domain is changed
 * live where libvirt can, and what only a guest start applies is reported pending
 * (or applied by a restart when the task allows one).
 */
import { defineModule, formatCpuList, parseCpuList, type Change, type ClaimKind } from '../../src/kit/index.js';
import { DOMAIN_SCHEMA, normalizeDomainParams, type DomainParams } from './params.js';
import { domainProbe, parseDomainProbe, type DomainProbeState } from './probe.js';
import { MODULE, planDomain } from './plan.js';
import { domainDiagnostics, hostdevNumaDiagnostics, hugepageDiagnostics, rulesFor, selects, taskLabel } from './rules.js';
import { parseXml } from './domain-xml.js';
import { nodeOfCpu } from './facts.js';
import { vhostDiagnostics } from './vhost.js';

const canonCpus = (list: string): string => formatCpuList(parseCpuList(list));

/** Claims of tasks that may grow the hugepage pool in the same run (or at the reboot that finishes it). */
const POOL_CLAIMS = new Set<ClaimKind>(['hugepage-pool', 'kernel-arg', 'kernel-arg-absent']);

export const libvirtDomain = defineModule<DomainParams, DomainProbeState>({
  name: MODULE,
  summary: 'libvirt guest tuning: pinning, NUMA, hugepages, memtune, multi-queue, disk cache/io/iotune, blkiotune',
  schema: DOMAIN_SCHEMA,
  normalize: (raw) => normalizeDomainParams(raw, canonCpus),
  factsParams: { pattern: '*', uri: 'qemu:///system', restart: false, restart_timeout: 300, force_restart: false, factsOnly: true },

  probe: (params) => domainProbe(params),
  parse: (output, params) => parseDomainProbe(output, (name) => selects(params, name)),
  /** The probe's section marker is random and free hugepages move: a saved plan depends on the rest. */
  planState: (actual) => ({ ...actual, host: { ...actual.host, hugepages: actual.host.hugepages.map(({ free: _free, surplus: _surplus, ...pool }) => pool) } }),

  rules: (params, facts) => rulesFor(params, facts),

  diff(params, actual, context) {
    if (!actual.host.virsh) throw new Error('virsh is not installed on this host (install libvirt-clients, or libvirt-client on RHEL)');
    const matched = actual.domains.filter((domain) => domain.matched);
    if (!matched.length) {
      if (params.name !== undefined) throw new Error(`no libvirt domain named '${params.name}' (virsh list --all)`);
      context.warn(`no libvirt domain matches '${params.pattern}'`);
      return [];
    }
    const others = context.tasks.filter((task) => task.module === MODULE && task.params !== params).map((task) => task.params as DomainParams);
    const softer = context.claims.some(({ claims }) => claims.some((claim) => POOL_CLAIMS.has(claim.kind)));
    const cpuNode = nodeOfCpu(actual.host);
    const diagnostics = [
      ...matched.flatMap((domain) => {
        if (!domain.inactive) return [];
        const root = parseXml(domain.inactive);
        return [...domainDiagnostics(params, root, domain.name), ...hostdevNumaDiagnostics(params, root, domain.name, actual.host, cpuNode)];
      }),
      ...hugepageDiagnostics(params, others, actual, softer),
      // A task that sets emulatorpin places the vhost workers with it (and cpuRules checks its node).
      ...(params.cputune?.emulatorpin ? [] : matched.flatMap((domain) => {
        const running = actual.host.running.find((pinning) => pinning.name === domain.name);
        return running ? vhostDiagnostics(running, cpuNode) : [];
      })),
    ];
    diagnostics.filter((d) => d.severity === 'warning').forEach((d) => context.warn(d.message));
    const errors = diagnostics.filter((d) => d.severity === 'error');
    if (errors.length) throw new Error(`${taskLabel(params)}: ${errors.map((d) => d.message).join('; ')}`);
    return matched.flatMap((domain): Change[] => planDomain(params, domain));
  },

});
