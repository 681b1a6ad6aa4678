/** Every module kvmconf knows, by the name playbooks use. */
import type { FleetCheck, Module } from '../src/kit/index.js';
import { tuned } from './tuned/index.js';
import { thp } from './thp/index.js';
import { hugepages } from './hugepages/index.js';
import { ksm } from './ksm/index.js';
import { numaBalancing } from './numa_balancing/index.js';
import { kernelCmdline } from './kernel_cmdline/index.js';
import { vhostNet } from './vhost_net/index.js';
import { sysctl } from './sysctl/index.js';
import { ioScheduler } from './io_scheduler/index.js';
import { service } from './service/index.js';
import { libvirtDomain } from './libvirt_domain/index.js';
import { ethtool } from './ethtool/index.js';
import { numaPlacement, placementConflicts } from './numa_placement/index.js';
import { irqAffinity } from './irq_affinity/index.js';
import { rpsXps } from './rps_xps/index.js';
import { sysfs } from './sysfs/index.js';
import { kernelModule } from './kernel_module/index.js';
import { sriov } from './sriov/index.js';
import { queueAgreement } from './lib/guest-link.js';

/** In the order a playbook reference lists them: host tuning, generic, then guests. */
export const MODULES: Module[] = [
  tuned, thp, hugepages, ksm, numaBalancing, kernelCmdline, vhostNet, kernelModule, sysctl, sysfs, ioScheduler, irqAffinity, rpsXps, sriov, service, libvirtDomain, numaPlacement, ethtool,
].map(
  (module) => module as Module,
);

export const MODULES_BY_NAME = new Map(MODULES.map((module) => [module.name, module]));

/** Checks across hosts (a guest against its hypervisor), run before any connection. */
export const FLEET_CHECKS: FleetCheck[] = [queueAgreement, placementConflicts];
