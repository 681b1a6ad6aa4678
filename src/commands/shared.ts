/** What every command that reads a playbook or connects to hosts needs first. */
import { resolve } from 'node:path';
import { FLEET_CHECKS, MODULES_BY_NAME } from '../../modules/index.js';
import { loadInventory, localInventory, type ConnectionDefaults, type Inventory } from '../config/inventory.js';
import type { HostKeyChecking } from '../transport/types.js';
import { InputError } from '../errors.js';

export interface ConnectionFlags {
  /** Inventory sources, each `-i` in order. */
  inventory?: string[];
  local?: boolean;
  limit?: string;
  user?: string;
  privateKey?: string;
  /** Undefined when not given on the command line (then strict, unless a setting says otherwise). */
  hostKeyChecking?: HostKeyChecking;
  knownHosts?: string;
  connectTimeout: number;
  timeout: number;
  forks: number;
}

/** What resolving connection values needs: validate has no timeouts or forks. */
export type ResolveFlags = Omit<ConnectionFlags, 'connectTimeout' | 'timeout' | 'forks'> & { connectTimeout?: number };

export function warn(message: string): void {
  process.stderr.write(`kvmconf: warning: ${message}\n`);
}

export const modules = MODULES_BY_NAME;
export const fleetChecks = FLEET_CHECKS;

/** Printed by validate and apply alike: a play that targets nothing is a typo more often than not. */
export function warnNoHosts(play: { name: string; hosts: string }): void {
  process.stderr.write(`kvmconf: warning: play '${play.name}' matches no host (hosts: ${play.hosts})\n`);
}

/**
 * The hosts a command works on. There is no implicit inventory: a run without `-i`
 * would otherwise retune the machine it was started on (an operator's laptop, a
 * bastion), so this machine is only a target when `--local` says so.
 */
export function inventoryFrom(flags: { inventory?: string[]; local?: boolean }): Inventory {
  if (flags.local && flags.inventory?.length) throw new InputError('--local and -i/--inventory exclude each other', undefined, 'to include this machine in an inventory, give it a host with `ansible_connection: local`');
  if (flags.local) return localInventory();
  if (!flags.inventory?.length) {
    throw new InputError('no inventory: nothing is targeted by default', undefined, 'name the hosts with -i INVENTORY, or use --local to work on this machine');
  }
  return loadInventory(flags.inventory);
}

export function connectionDefaults(flags: ResolveFlags): ConnectionDefaults {
  return {
    hostKeyChecking: flags.hostKeyChecking ?? 'strict',
    hostKeyCheckingExplicit: flags.hostKeyChecking !== undefined,
    ...(flags.knownHosts ? { knownHostsFile: resolve(flags.knownHosts) } : {}),
    ...(flags.privateKey ? { privateKeyFile: resolve(flags.privateKey) } : {}),
    ...(flags.user ? { user: flags.user } : {}),
    connectTimeoutMs: (flags.connectTimeout ?? 15) * 1000,
    keepaliveIntervalMs: 15_000,
  };
}
