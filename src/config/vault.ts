/**
 * Ansible Vault, read as Ansible writes it (`ansible-vault encrypt`, `encrypt_string`):
 * format 1.1 and 1.2 (with a vault id), cipher AES256. The payload is the hex of
 * `hex(salt)\nhex(hmac)\nhex(ciphertext)`; PBKDF2-SHA256 (10,000 rounds) of the password
 * and salt gives 80 bytes: the AES-256-CTR key, the HMAC-SHA256 key and the counter's IV.
 * The HMAC over the ciphertext is checked (in constant time) before anything is decrypted.
 *
 * Vaulted values stay encrypted in memory until something needs them (a template, a
 * connection variable), as in Ansible; printed as JSON they show their ciphertext under
 * `__ansible_vault`, as `ansible-inventory --list` does, never their text.
 */
import { createDecipheriv, createHmac, pbkdf2Sync, timingSafeEqual } from 'node:crypto';
import { InputError, type SourceLocation } from '../errors.js';

const HEADER = '$ANSIBLE_VAULT;';

/** A vault password and the vault id it was given for (`default` when none). */
export interface VaultSecret {
  id: string;
  password: Buffer;
}

/** The passwords given for this run (--vault-password-file, --vault-id, --ask-vault-pass). */
let keyring: VaultSecret[] = [];

export function useVaultSecrets(secrets: VaultSecret[]): void {
  keyring = secrets;
}

export function isVaulted(text: string): boolean {
  return text.trimStart().startsWith(HEADER);
}

interface Envelope {
  version: string;
  id?: string;
  salt: Buffer;
  hmac: Buffer;
  ciphertext: Buffer;
}

function unhex(text: string, what: string): Buffer {
  if (!/^(?:[0-9a-fA-F]{2})+$/.test(text)) throw new Error(`its ${what} is not hexadecimal`);
  return Buffer.from(text, 'hex');
}

function parseEnvelope(text: string): Envelope {
  const [header = '', ...body] = text.trim().split(/\r?\n/);
  const fields = header.trim().split(';');
  const [, version = '', cipher = '', id] = fields;
  if (version !== '1.1' && version !== '1.2') throw new Error(`vault format ${version || '?'} is not supported (1.1 and 1.2 are)`);
  if (cipher.trim() !== 'AES256') throw new Error(`vault cipher ${cipher || '?'} is not supported (AES256 is)`);
  const inner = unhex(body.map((line) => line.trim()).join(''), 'payload').toString('latin1').split('\n');
  if (inner.length !== 3) throw new Error('its payload is not salt, HMAC and ciphertext');
  return {
    version,
    ...(version === '1.2' && id !== undefined && { id: id.trim() }),
    salt: unhex(inner[0]!, 'salt'),
    hmac: unhex(inner[1]!, 'HMAC'),
    ciphertext: unhex(inner[2]!, 'ciphertext'),
  };
}

/** The plaintext, or undefined when this password does not open the envelope. */
function open(envelope: Envelope, password: Buffer): Buffer | undefined {
  const derived = pbkdf2Sync(password, envelope.salt, 10_000, 80, 'sha256');
  const hmac = createHmac('sha256', derived.subarray(32, 64)).update(envelope.ciphertext).digest();
  if (hmac.length !== envelope.hmac.length || !timingSafeEqual(hmac, envelope.hmac)) return undefined;
  const decipher = createDecipheriv('aes-256-ctr', derived.subarray(0, 32), derived.subarray(64, 80));
  const padded = Buffer.concat([decipher.update(envelope.ciphertext), decipher.final()]);
  // Ansible pads to the AES block (PKCS#7) before the CTR encryption.
  const pad = padded[padded.length - 1] ?? 0;
  if (pad < 1 || pad > 16 || pad > padded.length) throw new Error('its padding is corrupt');
  return padded.subarray(0, padded.length - pad);
}

/** Decrypts vault text with the run's passwords; `where` names it in errors. */
export function decryptVault(text: string, where: string, location?: SourceLocation): string {
  let envelope: Envelope;
  try {
    envelope = parseEnvelope(text);
  } catch (error) {
    throw new InputError(`${where} is not a readable Ansible Vault: ${(error as Error).message}`, location);
  }
  if (keyring.length === 0) {
    throw new InputError(`${where} is encrypted with Ansible Vault and no vault password was given`, location, 'pass --vault-password-file FILE, --vault-id LABEL@FILE or --ask-vault-pass');
  }
  // The vault id in a 1.2 header says which password to try first, as Ansible does.
  const ordered = [...keyring].sort((a, b) => Number(b.id === envelope.id) - Number(a.id === envelope.id));
  for (const secret of ordered) {
    let plain: Buffer | undefined;
    try {
      plain = open(envelope, secret.password);
    } catch (error) {
      throw new InputError(`${where} is not a readable Ansible Vault: ${(error as Error).message}`, location);
    }
    if (plain) return plain.toString('utf8');
  }
  const ids = [...new Set(keyring.map((s) => s.id))].join(', ');
  throw new InputError(`no vault password given opens ${where} (tried vault ids: ${ids})`, location);
}

/** A `!vault` value from a YAML file: decrypted when used, printed only as ciphertext. */
export class VaultText {
  #plain: string | undefined;

  constructor(
    readonly ciphertext: string,
    /** Where it was written (set by the YAML reader once it is placed). */
    public location?: SourceLocation,
  ) {}

  reveal(where: string): string {
    this.#plain ??= decryptVault(this.ciphertext, where, this.location);
    return this.#plain;
  }

  toJSON(): { __ansible_vault: string } {
    return { __ansible_vault: this.ciphertext };
  }

  toString(): string {
    return '<vaulted>';
  }
}

/** The value with a vaulted string decrypted; everything else as it is. */
export function revealed(value: unknown, where: string): unknown {
  return value instanceof VaultText ? value.reveal(where) : value;
}

/** The text of a file that may be vaulted as a whole (`ansible-vault encrypt FILE`). */
export function fileText(text: string, file: string): string {
  return isVaulted(text) ? decryptVault(text, 'the file', { file }) : text;
}
