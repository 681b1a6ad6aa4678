/** What every way of reaching a host (SSH, local) offers the engine. */
import type { Secret } from '../secret.js';

export type HostKeyChecking = 'strict' | 'accept-new' | 'off';

/** Everything needed to open one connection, resolved from inventory, ssh_config and CLI. */
export interface ConnectionSpec {
  /** Inventory name, used in every message. */
  name: string;
  connection: 'ssh' | 'local';
  /** Address or alias to connect to; ~/.ssh/config HostName may rewrite it. */
  host: string;
  port?: number;
  user?: string;
  privateKeyFiles?: string[];
  /** Login password (ansible_ssh_pass, --ask-pass), tried after the keys. */
  password?: Secret;
  /** Path of the known_hosts file to check host keys against (default ~/.ssh/known_hosts). */
  knownHostsFile?: string;
  hostKeyChecking: HostKeyChecking;
  /** `user@host:port` of a bastion, as in ssh's ProxyJump. */
  proxyJump?: string;
  /** ssh_config file to honour (default ~/.ssh/config; '' disables). */
  sshConfigFile?: string;
  connectTimeoutMs: number;
  keepaliveIntervalMs: number;
}

export interface ExecOptions {
  /** Fed to the remote command's standard input, then closed. */
  stdin?: string;
  /** The exec fails with a TransportError of kind 'timeout' after this long. */
  timeoutMs?: number;
  /** Called with each stdout chunk as it arrives (progress, partial results on a drop). */
  onStdout?: (chunk: string) => void;
  /** Output limit of this command (stdout and stderr together); default MAX_OUTPUT_BYTES (output.ts). */
  maxOutputBytes?: number;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  /** Exit status; null when the command ended on a signal. */
  code: number | null;
  signal?: string;
}

export interface Transport {
  /** Human label, e.g. `ssh root@10.0.0.5:22` or `local`. */
  readonly label: string;
  /** Number of exec() calls made on this transport: the engine promises three per apply. */
  readonly execCount: number;
  /** SSH only: `TYPE SHA256:...` of the host key the target presented (compared again after a reboot). */
  readonly hostKey?: string | undefined;
  exec(command: string, options?: ExecOptions): Promise<ExecResult>;
  /** Sends SIGINT to the running command, if any (graceful stop between apply steps). */
  interrupt(): void;
  close(): Promise<void>;
}

export type TransportErrorKind =
  | 'unreachable'
  | 'host-key-unknown'
  | 'host-key-changed'
  | 'auth'
  | 'timeout'
  | 'dropped'
  | 'output-limit'
  | 'config';

/** A failure to reach or talk to a host; `kind` drives reporting (unreachable vs failed). */
export class TransportError extends Error {
  constructor(
    readonly kind: TransportErrorKind,
    readonly host: string,
    message: string,
    /** Output received before the failure, e.g. the steps an apply finished before a drop. */
    readonly partialStdout = '',
  ) {
    super(`${host}: ${message}`);
    this.name = 'TransportError';
  }
}
