/** Opens the transport a host's connection spec asks for. */
import type { ConnectionSpec, Transport } from './types.js';
import { connectSsh } from './ssh.js';
import { createLocalTransport } from './local.js';

export async function connect(spec: ConnectionSpec): Promise<Transport> {
  return spec.connection === 'local' ? createLocalTransport(spec.name) : connectSsh(spec);
}
