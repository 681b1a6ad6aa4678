/** What every command that reads a playbook or connects to hosts needs first. */
import { resolve } from 'node:path';
import { FLEET_CHECKS, MODULES_BY_NAME } from '../../modules/index.js';
import { loadInventory, localInventory, type ConnectionDefaults, type Inventory } from '../config/inventory.js';
import type { HostKeyChecking } from '../transport/types.js';
import { InputError } from '../errors.js';
import { loadAnsibleConfig, type AnsibleConfig } from '../config/ansible-cfg.js';
import { readSecrets, type RunSecrets, type SecretFlags } from './secrets.js';

export interface ConnectionFlags extends SecretFlags {
  /** Inventory sources, each `-i` in order. */
  inventory?: string[];
  local?: boolean;
  limit?: string;
  user?: string;
  privateKey?: string;
  /** Undefined when not given on the command line (then strict, unless a setting says otherwise). */
  hostKeyChecking?: HostKeyChecking;
  knownHosts?: string;
  /** Undefined when not given: ansible.cfg's, else the default. */
  connectTimeout?: number;
  timeout: number;
  forks?: number;
}

/** What resolving connection values needs: validate has no timeouts or forks. */
export type ResolveFlags = Omit<ConnectionFlags, 'timeout' | 'forks'>;

let ansibleSettings: AnsibleConfig | undefined;

/** ansible.cfg and ANSIBLE_* settings, read once per run; why a file was passed over is a warning. */
function ansibleConfig(): AnsibleConfig {
  if (!ansibleSettings) {
    ansibleSettings = loadAnsibleConfig();
    for (const message of ansibleSettings.warnings) warn(message);
  }
  return ansibleSettings;
}

/** Hosts handled at once: the flag, else ansible.cfg's forks, else 50. */
export function forksOf(flags: { forks?: number }): number {
  return flags.forks ?? ansibleConfig().forks?.value ?? 50;
}

/** Prompts for and loads the run's passwords; call before reading the inventory (it may be vaulted). */
export function runSecrets(flags: SecretFlags): Promise<RunSecrets> {
  return readSecrets(flags, ansibleConfig());
}

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
  return loadSources(inventorySources(flags));
}

export const loadSources = (sources: string[] | 'local'): Inventory => (sources === 'local' ? localInventory() : loadInventory(sources));

/** The inventory sources a run reads (what a saved plan records), or 'local' for --local. */
export function inventorySources(flags: { inventory?: string[]; local?: boolean }): string[] | 'local' {
  if (flags.local && flags.inventory?.length) throw new InputError('--local and -i/--inventory exclude each other', undefined, 'to include this machine in an inventory, give it a host with `ansible_connection: local`');
  if (flags.local) return 'local';
  if (flags.inventory?.length) return flags.inventory;
  // An inventory the user configured for Ansible is a deliberate choice too; say which one is used.
  const configured = ansibleConfig().inventory;
  if (configured) {
    process.stderr.write(`kvmconf: inventory ${configured.value.join(', ')} (from ${configured.origin})\n`);
    return configured.value;
  }
  throw new InputError('no inventory: nothing is targeted by default', undefined, 'name the hosts with -i INVENTORY (or inventory = in ansible.cfg), or use --local to work on this machine');
}

/**
 * The command line's connection values, ansible.cfg's where a flag is not given.
 * `host_key_checking = False` there is a deliberate setting, honoured with a warning;
 * it never overrides --host-key-checking.
 */
export function connectionDefaults(flags: ResolveFlags, secrets: RunSecrets = {}): ConnectionDefaults {
  const config = ansibleConfig();
  let hostKeyChecking = flags.hostKeyChecking ?? 'strict';
  if (flags.hostKeyChecking === undefined && config.hostKeyChecking) {
    hostKeyChecking = config.hostKeyChecking.value ? 'strict' : 'off';
    if (hostKeyChecking === 'off') warn(`host key checking is off: host_key_checking = False (${config.hostKeyChecking.origin}); unknown host keys are accepted, a changed host key is still refused`);
  }
  const privateKey = flags.privateKey ? resolve(flags.privateKey) : config.privateKeyFile?.value;
  const user = flags.user ?? config.remoteUser?.value;
  return {
    hostKeyChecking,
    hostKeyCheckingExplicit: flags.hostKeyChecking !== undefined,
    ...(flags.knownHosts ? { knownHostsFile: resolve(flags.knownHosts) } : {}),
    ...(privateKey ? { privateKeyFile: privateKey } : {}),
    ...(user ? { user } : {}),
    ...(secrets.sshPassword ? { password: secrets.sshPassword } : {}),
    connectTimeoutMs: (flags.connectTimeout ?? config.timeout?.value ?? 15) * 1000,
    keepaliveIntervalMs: 15_000,
  };
}
