/**
 * Settings that a guest and its hypervisor must agree on. A guest host names its
 * hypervisor (and, when the names differ, its libvirt domain) with inventory variables:
 *
 *   guests:
 *     hosts:
 *       web1: { kvmconf_hypervisor: hv1, kvmconf_domain: web1-prod }
 *
 * The check runs before any connection on what the playbook asks of both hosts. What
 * it cannot see there (queues the playbook leaves alone) the guest sees itself: the
 * virtio-net maximum that `ethtool -l` reports is the hypervisor's queue count.
 */
import type { Diagnostic, FleetCheck, FleetDiagnostic, FleetTask } from '../../src/kit/index.js';
import type { EthtoolParams } from '../ethtool/index.js';
import type { DomainParams } from '../libvirt_domain/params.js';
import { selects } from '../libvirt_domain/rules.js';

export const HYPERVISOR_VAR = 'kvmconf_hypervisor';
export const DOMAIN_VAR = 'kvmconf_domain';

/** Channels above the queues cannot exist; fewer leave queues idle. Pure. */
export function checkQueueAgreement(
  hostDomainQueues: { domain: string; mac?: string; queues: number },
  guestChannels: { host: string; interface: string; combined: number },
): Diagnostic[] {
  const where = `${guestChannels.host} ${guestChannels.interface} (domain ${hostDomainQueues.domain}${hostDomainQueues.mac ? ` ${hostDomainQueues.mac}` : ''})`;
  if (guestChannels.combined > hostDomainQueues.queues) {
    return [{ severity: 'error', message: `${where}: ${guestChannels.combined} combined channels asked but the hypervisor gives the NIC ${hostDomainQueues.queues} queues` }];
  }
  if (guestChannels.combined !== hostDomainQueues.queues) {
    return [{ severity: 'warning', message: `${where}: ${guestChannels.combined} combined channels for ${hostDomainQueues.queues} hypervisor queues; the other queues stay idle` }];
  }
  return [];
}

/** The guest's domain as the inventory links it, or undefined when the host is not linked. */
function linkedDomain(guest: FleetTask): { hypervisor: string; domain: string } | undefined {
  const hypervisor = guest.hostVars[HYPERVISOR_VAR];
  if (typeof hypervisor !== 'string') return undefined;
  const domain = guest.hostVars[DOMAIN_VAR];
  return { hypervisor, domain: typeof domain === 'string' ? domain : guest.host };
}

/** Guest ethtool channels against the virtio-net queues the hypervisor's tasks set for its domain. */
export const queueAgreement: FleetCheck = (tasks) =>
  tasks.flatMap((guest): FleetDiagnostic[] => {
    const link = guest.module === 'ethtool' ? linkedDomain(guest) : undefined;
    if (!link) return [];
    const nics = tasks
      .filter((task) => task.host === link.hypervisor && task.module === 'libvirt_domain' && selects(task.params as DomainParams, link.domain))
      .flatMap((task) => (task.params as DomainParams).interfaces ?? [])
      .filter((nic): nic is typeof nic & { queues: number } => nic.queues !== undefined);
    const { interface: iface, combined } = guest.params as EthtoolParams;
    const channels = { host: guest.host, interface: iface, combined };
    if (nics.length === 1) {
      const nic = nics[0]!;
      return checkQueueAgreement({ domain: link.domain, queues: nic.queues, ...(nic.match.mac ? { mac: nic.match.mac } : {}) }, channels).map((d) => ({ ...d, task: guest }));
    }
    // Several NICs with queues: which one is this interface is only known inside the guest.
    const most = Math.max(...nics.map((nic) => nic.queues));
    return nics.length && combined > most
      ? checkQueueAgreement({ domain: link.domain, queues: most }, channels).map((d) => ({ ...d, task: guest }))
      : [];
  });
