/** `kvmconf facts`: what the modules see on each host, from one gather round trip. */
import pLimit from 'p-limit';
import { resolveConnections } from '../engine/runner.js';
import type { ConnectionSpec } from '../transport/types.js';
import { resolvePattern } from '../config/patterns.js';
import { gather } from '../engine/host-run.js';
import { connect } from '../transport/connect.js';
import { renderFactsText, type HostFactsReport } from './facts-text.js';
import { connectionDefaults, forksOf, inventoryFrom, modules, runSecrets, warn, type ConnectionFlags } from './shared.js';
import { becomeFor } from '../config/inventory.js';
import type { Become } from '../engine/become.js';

interface FactsFlags extends ConnectionFlags {
  become?: boolean;
  format: 'json' | 'text';
}

async function hostFacts(host: string, flags: FactsFlags, spec: ConnectionSpec, become: Become | undefined): Promise<HostFactsReport> {
  const probing = [...modules.values()].filter((module) => module.factsParams !== undefined);
  const transport = await connect(spec).catch((error: Error) => error);
  if (transport instanceof Error) return { host, error: transport.message };
  try {
    const probes = probing.map((module) => ({ id: module.name, script: module.probe(module.factsParams) }));
    const { facts, outputs } = await gather(transport, become, probes, flags.timeout * 1000);
    const seen: Record<string, unknown> = {};
    for (const module of probing) {
      try {
        seen[module.name] = module.parse(outputs.get(module.name)?.output ?? '', module.factsParams);
      } catch (error) {
        seen[module.name] = { error: (error as Error).message };
      }
    }
    return { host, facts, modules: seen };
  } catch (error) {
    return { host, error: (error as Error).message };
  } finally {
    await transport.close();
  }
}

export async function factsCommand(patterns: string[], flags: FactsFlags): Promise<void> {
  const secrets = await runSecrets(flags);
  const inventory = inventoryFrom(flags);
  const hosts = patterns.length ? [...new Set(patterns.flatMap((pattern) => resolvePattern(pattern, inventory)))] : [...inventory.hosts.keys()];
  const limit = pLimit(forksOf(flags));
  const specs = resolveConnections(hosts, inventory, connectionDefaults(flags, secrets), warn);
  const becomes = new Map(hosts.map((host) => [host, becomeFor(host, inventory.hosts.get(host)!.vars, { become: flags.become ?? false }, secrets.becomePassword)]));
  const reports = await Promise.all(hosts.map((host) => limit(() => hostFacts(host, flags, specs.get(host)!, becomes.get(host)))));
  process.stdout.write(flags.format === 'json' ? JSON.stringify(reports, null, 2) + '\n' : renderFactsText(reports));
  process.exitCode = reports.some((report) => report.error) ? 1 : 0;
}
