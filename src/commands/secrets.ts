/**
 * The run's secrets, asked for once before anything is read: SSH and sudo passwords
 * (--ask-pass, --ask-become-pass) and vault passwords (--vault-password-file,
 * --vault-id, --ask-vault-pass, ansible.cfg's vault_password_file and
 * vault_identity_list), as ansible-playbook takes them. Prompts read the terminal
 * without echo; without a terminal, one line of standard input each (as Ansible's getpass).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { createInterface, type Interface } from 'node:readline';
import { InputError } from '../errors.js';
import { Secret } from '../secret.js';
import { useVaultSecrets, type VaultSecret } from '../config/vault.js';
import type { AnsibleConfig } from '../config/ansible-cfg.js';

export interface SecretFlags {
  askPass?: boolean;
  askBecomePass?: boolean;
  askVaultPass?: boolean;
  vaultPasswordFile?: string[];
  vaultId?: string[];
}

export interface RunSecrets {
  sshPassword?: Secret;
  becomePassword?: Secret;
}

let lines: { reader: Interface; next: AsyncIterator<string> } | undefined;

/** One line of piped standard input; undefined at its end. */
async function nextLine(): Promise<string | undefined> {
  if (!lines) {
    const reader = createInterface({ input: process.stdin, terminal: false });
    lines = { reader, next: reader[Symbol.asyncIterator]() };
  }
  const line = await lines.next.next();
  return line.done ? undefined : line.value;
}

/** Reads a line from the terminal without echoing it. */
function readHidden(label: string): Promise<string> {
  const input = process.stdin;
  process.stderr.write(label);
  input.setRawMode(true);
  input.resume();
  return new Promise((resolve, reject) => {
    let text = '';
    const done = (error?: Error): void => {
      input.setRawMode(false);
      input.pause();
      input.removeListener('data', onData);
      process.stderr.write('\n');
      if (error) reject(error);
      else resolve(text);
    };
    const onData = (chunk: Buffer): void => {
      for (const char of chunk.toString('utf8')) {
        if (char === '\r' || char === '\n') return done();
        if (char === '\u0003' || char === '\u0004') return done(new InputError(`${label.trim()} not given (interrupted)`));
        if (char === '\u007f' || char === '\b') text = text.slice(0, -1);
        else text += char;
      }
    };
    input.on('data', onData);
  });
}

async function prompt(label: string): Promise<string> {
  if (process.stdin.isTTY) return readHidden(label);
  const line = await nextLine();
  if (line === undefined) throw new InputError(`${label.replace(/:\s*$/, '')}: asked for, but standard input ended (no terminal)`);
  return line;
}

/** A vault password file: its text, or what it prints when it is executable (a script). */
function passwordFromFile(file: string, label: string): string {
  let executable: boolean;
  try {
    executable = (statSync(file).mode & 0o111) !== 0;
  } catch (error) {
    throw new InputError(`vault password file ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  let text: string;
  try {
    // A `-client` script is told which vault id it is asked for, as Ansible does.
    const args = /-client(\.\w+)?$/.test(file) ? ['--vault-id', label] : [];
    text = executable ? execFileSync(file, args, { encoding: 'utf8', stdio: ['inherit', 'pipe', 'inherit'], maxBuffer: 1 << 20 }) : readFileSync(file, 'utf8');
  } catch (error) {
    throw new InputError(`vault password file ${file}: ${executable ? 'the script failed' : 'cannot read'}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  const password = text.trim();
  if (password === '') throw new InputError(`vault password file ${file} is empty`);
  return password;
}

/** `[label@]source`: a file, a script, or `prompt`. */
async function vaultSecret(identity: string): Promise<VaultSecret> {
  const at = identity.indexOf('@');
  const [label, source] = at > 0 ? [identity.slice(0, at), identity.slice(at + 1)] : ['default', identity];
  const password = source === 'prompt' ? await prompt(`Vault password (${label}): `) : passwordFromFile(source, label);
  if (password === '') throw new InputError(`vault password for ${label} is empty`);
  return { id: label, password: Buffer.from(password, 'utf8') };
}

/** Asks for and loads every secret the flags and settings name; vault secrets go to the vault reader. */
export async function readSecrets(flags: SecretFlags, config: AnsibleConfig): Promise<RunSecrets> {
  const secrets: RunSecrets = {};
  if (flags.askPass) secrets.sshPassword = new Secret(await prompt('SSH password: '));
  if (flags.askBecomePass) {
    const answer = await prompt(`BECOME password${secrets.sshPassword ? '[defaults to SSH password]' : ''}: `);
    secrets.becomePassword = answer === '' && secrets.sshPassword ? secrets.sshPassword : new Secret(answer);
  }
  const identities = [...(flags.vaultId ?? []), ...(flags.vaultPasswordFile ?? []).map((file) => `default@${file}`)];
  if (identities.length === 0) {
    identities.push(...(config.vaultIdentityList?.value ?? []));
    if (config.vaultPasswordFile) identities.push(`default@${config.vaultPasswordFile.value}`);
  }
  const vault: VaultSecret[] = [];
  if (flags.askVaultPass) vault.push({ id: 'default', password: Buffer.from(await prompt('Vault password: '), 'utf8') });
  for (const identity of identities) vault.push(await vaultSecret(identity));
  useVaultSecrets(vault);
  lines?.reader.close();
  return secrets;
}
