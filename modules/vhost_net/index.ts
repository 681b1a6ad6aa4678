/**
 * vhost_net: the experimental_zcopytx option of the vhost_net module (zero-copy transmit
 * for guests' virtio-net). A kernel_module task of its own kind: persisted in a modprobe.d
 * file the task owns and reloaded when no guest uses the module (reload: when-unused);
 * otherwise the change waits for a module reload. What is its own here: the file it
 * renders, values shown as 0/1, guest wording in the reasons and the security trade-off.
 */
import { defineModule, fileDiff, writeFileCommand, type Change, type Command, fileClaims } from '../../src/kit/index.js';
import { fileOptions } from '../lib/modprobe.js';
import { kernelModule, liveChanges, moduleConflicts, inUse, reloadByHand, type KernelModuleParams, type KernelModuleState } from '../kernel_module/index.js';

export const MODPROBE_FILE = '/etc/modprobe.d/kvmconf-vhost-net.conf';

export const ZCOPY_SECURITY =
  'zero-copy transmit lets the host NIC send straight from guest memory, which turns off a mitigation: a guest can then hold host buffers (denial of service) ' +
  'and see data change under it after the send (information leak); enable it only for trusted guests';

export interface VhostNetParams {
  /** null only for `kvmconf facts`, which reports without planning. */
  experimental_zcopytx: 0 | 1 | null;
  persist: boolean;
}

export type VhostNetState = KernelModuleState;

/** Y/N, y/n, 1/0 and other integers (non-zero enables) -> 0/1. */
export function normaliseFlag(text: string): 0 | 1 | null {
  const value = text.trim();
  if (/^[Yy]$/.test(value)) return 1;
  if (/^[Nn]$/.test(value)) return 0;
  if (/^-?\d+$/.test(value)) return Number(value) === 0 ? 0 : 1;
  return null;
}

export function renderModprobe(value: 0 | 1): string {
  return `# Managed by kvmconf (vhost_net); edits here are overwritten.\noptions vhost_net experimental_zcopytx=${value}\n`;
}

/** Atomic write of the owned modprobe.d file, guarded by the content the plan saw. */
export function persistCommand(path: string, value: 0 | 1, previous: string | null): Command {
  return writeFileCommand(path, renderModprobe(value), previous);
}

/** The kernel_module task vhost_net is; facts read the option too, so the probe always asks for it. */
export function asKernelModule(params: VhostNetParams): KernelModuleParams {
  return {
    name: 'vhost_net', state: 'loaded', options: { experimental_zcopytx: String(params.experimental_zcopytx ?? 0) },
    persist: params.persist, file: MODPROBE_FILE, reload: 'when-unused',
  };
}

/** The live value as 0/1; null when not loaded. */
export function liveValue(state: VhostNetState): 0 | 1 | null {
  const live = state.params['experimental_zcopytx']?.value;
  return state.loaded && live != null ? normaliseFlag(live) : null;
}

/** Two spellings of the option mean the same (Y and 1, 2 and 1). */
function sameFlag(found: string, wanted: string): boolean {
  return normaliseFlag(found) === normaliseFlag(wanted);
}

export const vhostNet = defineModule<VhostNetParams, VhostNetState>({
  name: 'vhost_net',
  summary: 'vhost_net zero-copy transmit (experimental_zcopytx), persisted in modprobe.d; reloads the module when no guest uses it',
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['experimental_zcopytx'],
    properties: {
      experimental_zcopytx: { anyOf: [{ enum: [0, 1] }, { type: 'boolean' }] },
      persist: { type: 'boolean' },
    },
  },
  factsParams: { experimental_zcopytx: null, persist: false },

  normalize(raw) {
    const input = raw as { experimental_zcopytx: 0 | 1 | boolean; persist?: boolean };
    const flag = input.experimental_zcopytx;
    return { experimental_zcopytx: flag === true || flag === 1 ? 1 : 0, persist: input.persist ?? true };
  },

  claims: (params) => fileClaims(params.persist && params.experimental_zcopytx !== null ? [MODPROBE_FILE] : []),

  probe: (params) => kernelModule.probe(asKernelModule(params)),
  parse: (output, params) => kernelModule.parse(output, asKernelModule(params)),

  diff(params, actual, context) {
    const wanted = params.experimental_zcopytx;
    if (wanted === null) return [];
    const security = wanted === 1 ? [ZCOPY_SECURITY] : [];
    const asModule = asKernelModule(params);
    if (!actual.loaded && actual.available === false) context.warn('modprobe cannot find vhost_net for the running kernel: the option applies once the module is installed');
    const changes: Change[] = [];
    if (params.persist) {
      const change = persistChange(actual, wanted, security);
      if (change) changes.push(change);
      moduleConflicts(asModule, actual, sameFlag).forEach((warning) => context.warn(warning));
    } else if (!actual.loaded) {
      context.warn('vhost_net is not loaded and persist is false: nothing changes now, and the module will load with its configured default');
    }
    // A built-in vhost_net fails here: its option is set on the kernel command line only.
    if (!actual.loaded || liveValue(actual) === wanted) return changes;
    return [...changes, ...liveChanges(asModule, actual).map((change) => asVhostChange(change, actual, wanted, security))];
  },
});

/** The owned file written when its content differs; shown as the option it sets. */
function persistChange(actual: VhostNetState, wanted: 0 | 1, security: string[]): Change | null {
  const content = renderModprobe(wanted);
  if (actual.file === content) return null;
  const old = actual.file === null ? undefined : fileOptions('vhost_net', actual.file.split('\n'))['experimental_zcopytx'];
  const flagged = old === undefined ? null : normaliseFlag(old);
  const notes = [...(actual.loaded ? [] : ['vhost_net is not loaded: the option applies when it is next loaded']), ...security];
  return {
    module: 'vhost_net', target: MODPROBE_FILE, scope: 'persist',
    before: actual.file === null ? null : flagged === null ? '(no option)' : `experimental_zcopytx=${flagged}`, after: `experimental_zcopytx=${wanted}`,
    ...(notes.length ? { reason: notes.join('; ') } : {}),
    diff: fileDiff(MODPROBE_FILE, actual.file, content),
    commands: [persistCommand(MODPROBE_FILE, wanted, actual.file)],
  };
}

/** kernel_module's reload or pending change, told as vhost_net tells it: guests, 0/1 and the security note. */
function asVhostChange(change: Change, actual: VhostNetState, wanted: 0 | 1, security: string[]): Change {
  const value = liveValue(actual);
  const reason = inUse(actual) ? busyReason(actual) : 'no guest uses vhost_net: it is reloaded with the new option';
  return { ...change, module: 'vhost_net', target: 'experimental_zcopytx', before: value === null ? null : String(value), after: String(wanted), reason: [reason, ...security].join('; ') };
}

function busyReason(actual: VhostNetState): string {
  const users = Math.max(actual.refcnt, actual.holders.length);
  const holders = actual.holders.length ? `, held by ${actual.holders.join(', ')}` : '';
  return `vhost_net is in use by guests (${users} open vhost-net devices${holders}): reload it (${reloadByHand('vhost_net')}) with guests stopped`;
}
