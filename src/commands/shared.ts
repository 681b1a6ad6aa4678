/** What every command that reads a playbook or connects to hosts needs first. */
import { resolve } from 'node:path';
import { FLEET_CHECKS, MODULES_BY_NAME } from '../../modules/index.js';
import { loadInventory, localInventory, type ConnectionDefaults, type Inventory } from '../config/inventory.js';
import type { HostKeyChecking } from '../transport/types.js';

export interface ConnectionFlags {
  inventory?: string;
  limit?: string;
  user?: string;
  privateKey?: string;
  hostKeyChecking: HostKeyChecking;
  knownHosts?: string;
  connectTimeout: number;
  timeout: number;
  forks: number;
}

export const modules = MODULES_BY_NAME;
export const fleetChecks = FLEET_CHECKS;

/** Printed by validate and apply alike: a play that targets nothing is a typo more often than not. */
export function warnNoHosts(play: { name: string; hosts: string }): void {
  process.stderr.write(`kvmconf: warning: play '${play.name}' matches no host (hosts: ${play.hosts})\n`);
}

export function inventoryFrom(flags: { inventory?: string }): Inventory {
  return flags.inventory ? loadInventory(flags.inventory) : localInventory();
}

export function connectionDefaults(flags: ConnectionFlags): ConnectionDefaults {
  return {
    hostKeyChecking: flags.hostKeyChecking,
    ...(flags.knownHosts ? { knownHostsFile: resolve(flags.knownHosts) } : {}),
    ...(flags.privateKey ? { privateKeyFile: resolve(flags.privateKey) } : {}),
    ...(flags.user ? { user: flags.user } : {}),
    connectTimeoutMs: flags.connectTimeout * 1000,
    keepaliveIntervalMs: 15_000,
  };
}
