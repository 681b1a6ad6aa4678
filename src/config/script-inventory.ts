/**
 * Executable inventory scripts (NetBox, cloud exporters, home-grown ones), run as
 * Ansible's script plugin runs them: `SCRIPT --list` prints JSON, a mapping of groups
 * (`{hosts, vars, children}`, a bare host list, or a bare vars mapping) and `_meta.hostvars`;
 * without `_meta`, `SCRIPT --host NAME` is asked per host. The script runs without a
 * shell, with a time limit and an output limit, so a hung or runaway script is an
 * input error naming it, not a hung or exhausted kvmconf.
 */
import { spawnSync } from 'node:child_process';
import { InputError } from '../errors.js';
import { assignVars, type InventoryBuilder } from './inventory-model.js';
import { checkVars, isMapping, kindOf } from './inventory-vars.js';
import type { YamlSource } from './yaml-source.js';

const TIMEOUT_MS = 60_000;
const MAX_OUTPUT = 64 * 1024 * 1024;

/** The script's JSON answer to ARGS; an input error for anything else. */
function runScript(file: string, args: string[]): unknown {
  const run = spawnSync(file, args, { encoding: 'utf8', timeout: TIMEOUT_MS, maxBuffer: MAX_OUTPUT, stdio: ['ignore', 'pipe', 'pipe'] });
  const command = `${file} ${args.join(' ')}`;
  const stderr = run.stderr ? `: ${run.stderr.trim().split('\n').slice(-3).join(' | ')}` : '';
  if (run.error) {
    const code = (run.error as NodeJS.ErrnoException).code;
    if (code === 'ETIMEDOUT') throw new InputError(`inventory script did not finish within ${TIMEOUT_MS / 1000} s: ${command}`, { file });
    if (code === 'ENOBUFS') throw new InputError(`inventory script printed more than ${MAX_OUTPUT / 1024 / 1024} MiB: ${command}`, { file });
    throw new InputError(`cannot run inventory script ${command}: ${code ?? run.error.message}`, { file });
  }
  if (run.status !== 0) throw new InputError(`inventory script ${command} exited with ${run.status ?? run.signal}${stderr}`, { file });
  if (args[0] === '--host' && run.stdout.trim() === '') return {};
  try {
    return JSON.parse(run.stdout);
  } catch (error) {
    throw new InputError(`inventory script ${command} did not print JSON: ${(error as Error).message}`, { file });
  }
}

export class ScriptInventoryReader {
  /** Hosts the script named, in order, for their variables. */
  private readonly named = new Set<string>();

  constructor(
    private readonly builder: InventoryBuilder,
    private readonly file: string,
    private readonly dir: string,
  ) {}

  read(): void {
    const data = runScript(this.file, ['--list']);
    if (!isMapping(data)) throw new InputError(`inventory script ${this.file} --list must print a JSON object of groups, not a ${kindOf(data)}`, { file: this.file });
    let hostvars: unknown;
    for (const [group, value] of Object.entries(data)) {
      if (group === '_meta') hostvars = isMapping(value) ? value.hostvars : undefined;
      else this.group(group, value);
    }
    if (hostvars !== undefined && !isMapping(hostvars)) throw this.error(`_meta.hostvars must be an object, not a ${kindOf(hostvars)}`);
    for (const name of this.named) {
      const vars = hostvars === undefined ? runScript(this.file, ['--host', name]) : (hostvars[name] ?? {});
      if (!isMapping(vars)) throw this.error(`the variables of host '${name}' must be an object, not a ${kindOf(vars)}`);
      this.check(vars, `_meta.hostvars.${name}`);
      assignVars(this.builder.host(name, this.dir).vars, vars, (variable) => ({ file: this.file, path: `_meta.hostvars.${name}.${variable}` }));
    }
  }

  private error(message: string): InputError {
    return new InputError(`inventory script ${this.file}: ${message}`, { file: this.file });
  }

  /** One group entry, in the three shapes Ansible accepts. */
  private group(name: string, value: unknown): void {
    this.builder.group(name);
    const data = !isMapping(value) ? { hosts: value } : ['hosts', 'vars', 'children'].some((key) => key in value) ? value : { hosts: [name], vars: value };
    if ('hosts' in data) {
      if (!Array.isArray(data.hosts) || !data.hosts.every((host) => typeof host === 'string')) throw this.error(`group '${name}': hosts must be a list of names`);
      for (const host of data.hosts as string[]) {
        this.named.add(host);
        this.builder.host(host, this.dir, name);
      }
    }
    if ('vars' in data) {
      if (!isMapping(data.vars)) throw this.error(`group '${name}': vars must be an object, not a ${kindOf(data.vars)}`);
      this.check(data.vars, `${name}.vars`);
      this.builder.setGroupVars(name, data.vars, (variable) => ({ file: this.file, path: `${name}.vars.${variable}` }));
    }
    if ('children' in data) {
      if (!Array.isArray(data.children) || !data.children.every((child) => typeof child === 'string')) throw this.error(`group '${name}': children must be a list of group names`);
      for (const child of data.children as string[]) this.builder.addChild(name, child, { file: this.file, path: `${name}.children` });
    }
  }

  private check(vars: Record<string, unknown>, path: string): void {
    const where = { file: this.file, path };
    const source: YamlSource = { file: this.file, data: vars, locate: () => where };
    this.builder.errors.push(...checkVars(vars, source, []));
  }
}
