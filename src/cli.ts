#!/usr/bin/env node
/**
 * The kvmconf command line: one file declaring every command, handlers loaded lazily,
 * and one error boundary that maps errors to the documented exit codes.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { InputError, InputErrors } from './errors.js';
import { EXIT } from './engine/exit-code.js';
import { TOOL_VERSION } from './version.js';
import { escapeControl } from './report/style.js';

const positiveInt = (name: string) => (value: string): number => {
  const number = Number(value);
  if (!Number.isInteger(number) || number < 1) throw new InvalidArgumentError(`${name} must be a whole number of at least 1`);
  return number;
};

/** Repeatable options whose values may hold commas (`-i 'hv1,hv2,'`). */
const repeat = (value: string, previous: string[] = []): string[] => [...previous, value];

const collect = (value: string, previous: string[] = []): string[] => [...previous, ...value.split(',').map((s) => s.trim()).filter(Boolean)];

/** Vault passwords, for every command that reads inventories, vars files or playbooks. */
function vaultOptions(command: Command): Command {
  return command
    .option('--vault-password-file <file>', 'vault password file, or an executable that prints it (repeatable; default: ansible.cfg vault_password_file)', repeat)
    .option('--vault-id <id>', 'vault password as LABEL@FILE or LABEL@prompt (repeatable)', repeat)
    .option('-J, --ask-vault-pass', 'ask for the vault password');
}

/** Options shared by every command that connects to hosts. */
function connectionOptions(command: Command): Command {
  return vaultOptions(command)
    .option('-i, --inventory <source>', 'Ansible inventory: YAML, INI, script, folder or host list (repeatable; required unless --local)', repeat)
    .option('--local', 'work on this machine, without SSH (instead of -i)')
    .option('-l, --limit <pattern>', "only hosts matching PATTERN (host, group, glob, ~regex, '!excluded', '&both', comma lists, @file)")
    .option('-u, --user <name>', 'SSH user when the inventory names none (default: ansible.cfg remote_user)')
    .option('--private-key <file>', 'SSH private key when the inventory names none (default: ansible.cfg private_key_file)')
    .addOption(new Option('--host-key-checking <mode>', 'verify SSH host keys against known_hosts (default strict; a changed key is refused in every mode)').choices(['strict', 'accept-new', 'off']))
    .option('--known-hosts <file>', 'known_hosts file (default ~/.ssh/known_hosts)')
    .option('--connect-timeout <seconds>', 'SSH connect timeout (default: ansible.cfg timeout, else 15)', positiveInt('--connect-timeout'))
    .option('--timeout <seconds>', 'time limit of each remote round trip', positiveInt('--timeout'), 600)
    .option('-f, --forks <n>', 'hosts handled at once (default: ansible.cfg forks, else 50)', positiveInt('--forks'))
    .option('-k, --ask-pass', 'ask for the SSH login password (hosts without ansible_ssh_pass; keys are tried first)')
    .option('-K, --ask-become-pass', 'ask for the sudo password (hosts without ansible_become_password)');
}

export function buildProgram(): Command {
  const program = new Command('kvmconf')
    .description('Agentless, idempotent tuning of KVM hypervisors and their guests')
    .version(TOOL_VERSION)
    .showHelpAfterError()
    .configureOutput({ outputError: (text, write) => write(text) });

  connectionOptions(
    program
      .command('apply')
      .description('converge hosts to a playbook; with --check, report drift and change nothing; given a saved plan, run exactly it')
      .argument('<playbook>', 'playbook YAML file, or a plan file made by --check --out'),
  )
    .option('-e, --extra-vars <vars>', 'variables over all others: key=value, YAML/JSON, or @FILE (repeatable)', repeat)
    .option('-C, --check', 'report what would change; never write')
    .option('-D, --diff', 'show unified diffs of every file and value that changes')
    .option('-t, --tags <tags>', 'only tasks with these tags (comma list)', collect)
    .option('--skip-tags <tags>', 'skip tasks with these tags (comma list)', collect)
    .addOption(new Option('--format <format>', 'output on stdout').choices(['text', 'json', 'junit', 'markdown', 'html']).default('text'))
    .option('--report <file>', 'also write the report to FILE: JUnit XML (.xml), Markdown (.md), HTML (.html), text (.txt), else JSON; and Markdown to $GITHUB_STEP_SUMMARY when set', collect)
    .option('--list-hosts', 'print the hosts each play targets, and stop (no host is contacted)')
    .option('--list-tasks', 'print the tasks each play runs, and stop (no host is contacted)')
    .option('--detailed-exitcode', 'apply: exit 2 when changes were made, 3 when only pending ones remain')
    .addOption(new Option('--reboot <when>', "reboot hosts whose changes wait for one (overrides the plays' reboot)").choices(['never', 'pending']))
    .addOption(new Option('--reload <when>', "reload kernel modules whose changes wait for it (overrides the plays' reload)").choices(['never', 'pending']))
    .addOption(new Option('--guests <policy>', "running domains before a reboot or reload: refuse, or shutdown and start again (overrides the plays' guests policy)").choices(['refuse', 'shutdown']))
    .option('--reboot-timeout <seconds>', "time a rebooting host has to come back (overrides the plays' reboot_timeout)", positiveInt('--reboot-timeout'))
    .option('--retry-file <file>', 'apply: where to list the hosts that did not finish (default: PLAYBOOK.retry beside the playbook)')
    .option('--no-color', 'never colour the output')
    .option('-v, --verbose', 'also show the commands each change runs, tasks in desired state, every step and timings')
    .option('--out <file>', 'with --check: save the plan (changes, their commands, the state planned from) for apply FILE')
    .option('--plan-max-age <age>', 'applying a plan: refuse it when older than this (e.g. 30m, 24h, 2d)', '24h')
    .action(async (playbook, options) => (await import('./commands/apply.js')).applyCommand(playbook, options));

  connectionOptions(
    program
      .command('facts')
      .description('print what the modules see on hosts (all inventory hosts when none are named)')
      .argument('[hosts...]', 'inventory host names or patterns'),
  )
    .option('-b, --become', 'gather with sudo -n (some facts need root)')
    .addOption(new Option('--format <format>', 'output format').choices(['json', 'text']).default('json'))
    .action(async (hosts, options) => (await import('./commands/facts.js')).factsCommand(hosts, options));

  vaultOptions(program.command('validate'))
    .description('check a playbook and inventory completely without connecting to any host')
    .argument('<playbook>', 'playbook YAML file')
    .option('-i, --inventory <source>', 'Ansible inventory (repeatable; required unless --local)', repeat)
    .option('--local', 'validate for this machine (instead of -i)')
    .option('-l, --limit <pattern>', 'only hosts matching PATTERN')
    .option('-e, --extra-vars <vars>', 'variables over all others: key=value, YAML/JSON, or @FILE (repeatable)', repeat)
    .option('-u, --user <name>', 'SSH user when the inventory names none')
    .option('--private-key <file>', 'SSH private key when the inventory names none')
    .addOption(new Option('--host-key-checking <mode>', 'as apply: inventory values that would weaken it are warned about').choices(['strict', 'accept-new', 'off']))
    .option('--known-hosts <file>', 'known_hosts file (default ~/.ssh/known_hosts)')
    .action(async (playbook, options) => (await import('./commands/validate.js')).validateCommand(playbook, options));

  vaultOptions(program.command('inventory'))
    .description('print the resolved inventory, as ansible-inventory does')
    .option('-i, --inventory <source>', 'Ansible inventory (repeatable; required unless --local)', repeat)
    .option('--local', 'this machine (instead of -i)')
    .option('--list', 'every group and host with its resolved variables (JSON)')
    .option('--graph [group]', 'the group tree, from GROUP (default all)')
    .option('--host <name>', "one host's resolved variables (JSON)")
    .action(async (options) => (await import('./commands/inventory.js')).inventoryCommand(options));

  const report = program.command('report').description('render or compare saved JSON reports');
  report
    .command('show')
    .description('render a saved JSON report')
    .argument('<report>', 'JSON report (--report FILE.json)')
    .option('--format <format>', 'text, md (markdown), html, junit or json', 'text')
    .action(async (file, options) => (await import('./commands/report.js')).reportShowCommand(file, options));
  report
    .command('diff')
    .description('what drifted or failed since an earlier run (exit 2 when anything is new)')
    .argument('<old>', 'JSON report of the earlier run')
    .argument('<new>', 'JSON report of the later run')
    .action(async (oldFile, newFile) => (await import('./commands/report.js')).reportDiffCommand(oldFile, newFile));

  program
    .command('show')
    .description('render a plan file made by apply --check --out')
    .argument('<plan>', 'plan file')
    .addOption(new Option('--format <format>', 'output format').choices(['text', 'json', 'markdown']).default('text'))
    .option('--no-color', 'never colour the output')
    .action(async (plan, options) => (await import('./commands/show.js')).showCommand(plan, options));

  program
    .command('schema')
    .description('print the JSON Schema of playbooks, assembled from the modules (for editors)')
    .action(async () => (await import('./commands/validate.js')).schemaCommand());

  program
    .command('modules')
    .description('list the modules and what each manages')
    .action(async () => (await import('./commands/validate.js')).modulesCommand());
  return program;
}

/** The one error boundary: input errors and usage errors exit 1 with a clear message. */
export async function main(argv: string[]): Promise<number> {
  try {
    const program = buildProgram().exitOverride();
    await program.parseAsync(argv);
    return process.exitCode === undefined ? EXIT.ok : Number(process.exitCode);
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === 'commander.helpDisplayed' || code === 'commander.version' || code === 'commander.help') return EXIT.ok;
    if (code?.startsWith('commander.')) return EXIT.error;
    if (error instanceof InputError || error instanceof InputErrors) {
      process.stderr.write(`kvmconf: ${escapeControl(error.message)}\n`);
      if (error instanceof InputError && error.hint) process.stderr.write(`    ${escapeControl(error.hint)}\n`);
      return EXIT.error;
    }
    process.stderr.write(`kvmconf: internal error: ${(error as Error).stack ?? error}\n`);
    return EXIT.error;
  }
}

main(process.argv).then((code) => {
  process.exitCode = code;
});
