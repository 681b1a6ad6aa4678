/** Every module kvmconf knows, by the name playbooks use. */
import type { FleetCheck, Module } from '../src/module.js';
import { tuned } from './tuned.js';
import { thp } from './thp.js';
import { hugepages } from './hugepages.js';
import { ksm } from './ksm.js';
import { numaBalancing } from './numa-balancing.js';
import { kernelCmdline } from './kernel-cmdline.js';
import { vhostNet } from './vhost-net.js';
import { sysctl } from './sysctl.js';
import { ioScheduler } from './io-scheduler.js';
import { service } from './service.js';
import { libvirtDomain } from './libvirt-domain.js';
import { ethtool } from './ethtool.js';
import { irqAffinity } from './irq_affinity/index.js';
import { rpsXps } from './rps_xps/index.js';
import { sysfs } from './sysfs/index.js';
import { queueAgreement } from './lib/guest-link.js';

/** In the order a playbook reference lists them: host tuning, generic, then guests. */
export const MODULES: Module[] = [tuned, thp, hugepages, ksm, numaBalancing, kernelCmdline, vhostNet, sysctl, ioScheduler, service, libvirtDomain, ethtool, irqAffinity, rpsXps, sysfs].map(
  (module) => module as Module,
);

export const MODULES_BY_NAME = new Map(MODULES.map((module) => [module.name, module]));

/** Checks across hosts (a guest against its hypervisor), run before any connection. */
export const FLEET_CHECKS: FleetCheck[] = [queueAgreement];
