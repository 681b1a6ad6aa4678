import { test } from 'node:test';
import assert from 'node:assert/strict';
import { kernelModule, renderModprobe, sameValue } from './index.js';
import { fixture } from '../../test/helpers/paths.js';
import { plan, schemaAccepts } from '../../test/helpers/plan.js';
import { ownedFiles } from '../../src/kit/index.js';

const KVM_LOADED = fixture('kernel_module', 'handwritten-kvm-loaded.probe');
const KVM_NOT_LOADED = fixture('kernel_module', 'handwritten-kvm-not-loaded.probe');
const VHOST_LOADED = fixture('kernel_module', 'handwritten-vhost-net-loaded.probe');
const PRINTK_BUILTIN = fixture('kernel_module', 'devbox-printk-builtin.probe');
const KVM_BUILTIN = fixture('kernel_module', 'devbox-kvm-builtin-readonly.probe');
const MISSING = fixture('kernel_module', 'handwritten-no-such-module.probe');

const view = (changes: Array<{ target: string; scope: string; before: string | null; after: string | null; pendingOn?: string }>) =>
  changes.map((c) => `${c.target} (${c.scope}${c.pendingOn ? ` ${c.pendingOn}` : ''}) ${c.before} -> ${c.after}`);

/** The probe output as it reads once the owned modprobe.d file holds `content`. */
function withFile(output: string, content: string): string {
  return output.replace('@@owned\n@@file-absent\n', `@@owned\n@@file-present\n${content}\n@@file-end\n`);
}

/** The probe output as it reads once the owned modules-load.d file holds `content`. */
function withBootFile(output: string, content: string): string {
  return output.replace('@@boot\n@@file-absent\n', `@@boot\n@@file-present\n${content}\n@@file-end\n`);
}

test('parse: live values, writable modes and refcnt from probe output', () => {
  const params = kernelModule.normalize!({ name: 'kvm', options: { halt_poll_ns: 0, ignore_msrs: true, nx_huge_pages: 'off', no_such_param: 1 } });
  const state = kernelModule.parse(KVM_LOADED, params);
  assert.equal(state.loaded, true);
  assert.equal(state.builtin, false);
  assert.deepEqual(state.params['halt_poll_ns'], { value: '200000', writable: true });
  assert.deepEqual(state.params['ignore_msrs'], { value: 'N', writable: true });
  assert.deepEqual(state.params['no_such_param'], { value: null, writable: false });
  assert.equal(state.file, null);
  const vhost = kernelModule.parse(VHOST_LOADED, kernelModule.normalize!({ name: 'vhost-net', options: { experimental_zcopytx: 0 } }));
  assert.deepEqual(vhost.params['experimental_zcopytx'], { value: '1', writable: false });
});

test('plan: writable parameters set live and read back, Y/N booleans compared as flags, then idempotent', () => {
  const raw = { name: 'kvm', options: { halt_poll_ns: 100000, ignore_msrs: true } };
  const { changes, commands } = plan(kernelModule, raw, KVM_LOADED);
  assert.deepEqual(view(changes), [
    '/etc/modprobe.d/kvmconf-kvm.conf (persist) null -> options kvm halt_poll_ns=100000 ignore_msrs=1',
    '/etc/modules-load.d/kvmconf-kvm.conf (persist) null -> kvm',
    'kvm halt_poll_ns (runtime) 200000 -> 100000',
    'kvm ignore_msrs (runtime) N -> 1',
  ]);
  assert.match(commands(changes[0]!)[0]!, /^kc_write_file \/etc\/modprobe\.d\/kvmconf-kvm\.conf 0644 absent /);
  assert.deepEqual(commands(changes[3]!), [
    'kc_write_value /sys/module/kvm/parameters/ignore_msrs 1',
    `kc_got=$(kc_read_value /sys/module/kvm/parameters/ignore_msrs); case "$kc_got" in Y|y|1) [ 1 = 1 ] ;; N|n|0) [ 1 = 0 ] ;; *) false ;; esac || kc_fail 'kvm: asked for ignore_msrs=1, the kernel has' "$kc_got"`,
  ]);
  const content = changes[0]!.diff!.after;
  assert.equal(content, '# Managed by kvmconf (kernel_module kvm); edits here are overwritten.\noptions kvm halt_poll_ns=100000 ignore_msrs=1\n');
  assert.equal(changes[1]!.diff!.after, '# Managed by kvmconf (kernel_module kvm): loaded at boot; edits here are overwritten.\nkvm\n');
  const converged = withBootFile(withFile(KVM_LOADED.replace('param halt_poll_ns 200000', 'param halt_poll_ns 100000').replace('param ignore_msrs N', 'param ignore_msrs Y'), content), changes[1]!.diff!.after!);
  assert.deepEqual(plan(kernelModule, raw, converged).changes, []);
  // 0, false and N ask for what N reads: no change.
  for (const off of [0, false, 'N']) assert.deepEqual(plan(kernelModule, { name: 'kvm', options: { ignore_msrs: off }, persist: false }, KVM_LOADED).changes, []);
  assert.equal(sameValue('Y', '1'), true);
  assert.equal(sameValue('1', 'Y'), false, 'an int parameter reading 1 is not a flag');
});

test('plan: a read-only parameter of a loaded module waits for a module reload, never "changed"', () => {
  const { changes, commands } = plan(kernelModule, { name: 'vhost-net', options: { experimental_zcopytx: 0 } }, VHOST_LOADED);
  assert.deepEqual(view(changes), [
    '/etc/modprobe.d/kvmconf-vhost-net.conf (persist) null -> options vhost-net experimental_zcopytx=0',
    '/etc/modules-load.d/kvmconf-vhost-net.conf (persist) null -> vhost-net',
    'vhost-net experimental_zcopytx (pending module-reload) 1 -> 0',
  ]);
  assert.deepEqual(commands(changes[2]!), [], 'a pending change runs nothing');
  assert.match(changes[2]!.reason!, /read-only parameter: it takes the new value when vhost-net is reloaded/);
});

test('plan: a module not loaded is loaded by modprobe after its file is written, then read back', () => {
  const { changes, commands } = plan(kernelModule, { name: 'kvm', options: { halt_poll_ns: 0 } }, KVM_NOT_LOADED);
  assert.deepEqual(view(changes), [
    '/etc/modprobe.d/kvmconf-kvm.conf (persist) null -> options kvm halt_poll_ns=0',
    '/etc/modules-load.d/kvmconf-kvm.conf (persist) null -> kvm',
    'kvm (runtime) not loaded -> loaded halt_poll_ns=0',
  ]);
  assert.deepEqual(commands(changes[2]!).slice(0, 2), [
    `modprobe kvm || kc_fail 'modprobe kvm failed'`,
    `[ -d /sys/module/kvm ] || kc_fail 'kvm is not in /sys/module after modprobe'`,
  ]);
  // Without persist the options go on modprobe's command line.
  const live = plan(kernelModule, { name: 'kvm', options: { halt_poll_ns: 0 }, persist: false }, KVM_NOT_LOADED);
  assert.deepEqual(view(live.changes), ['kvm (runtime) not loaded -> loaded halt_poll_ns=0']);
  assert.equal(live.commands(live.changes[0]!)[0], `modprobe kvm halt_poll_ns=0 || kc_fail 'modprobe kvm failed'`);
  assert.throws(() => plan(kernelModule, { name: 'no_such_module' }, MISSING), /modprobe cannot find no_such_module/);
});

test('plan: blacklisted writes the blacklist line and warns that a loaded module stays; unconfigured removes the file', () => {
  const blacklist = plan(kernelModule, { name: 'vhost-net', state: 'blacklisted' }, VHOST_LOADED);
  assert.deepEqual(view(blacklist.changes), ['/etc/modprobe.d/kvmconf-vhost-net.conf (persist) null -> blacklist vhost-net']);
  assert.match(blacklist.warnings[0]!.message, /vhost-net is loaded: the blacklist only stops it loading by alias at the next boot/);
  const content = blacklist.changes[0]!.diff!.after;
  assert.deepEqual(plan(kernelModule, { name: 'vhost-net', state: 'blacklisted' }, withFile(VHOST_LOADED, content)).changes, []);
  const removed = plan(kernelModule, { name: 'vhost-net', state: 'unconfigured' }, withFile(VHOST_LOADED, content));
  assert.deepEqual(view(removed.changes), ['/etc/modprobe.d/kvmconf-vhost-net.conf (persist) blacklist vhost-net -> null']);
  assert.match(removed.commands(removed.changes[0]!)[0]!, /^kc_remove_file \/etc\/modprobe\.d\/kvmconf-vhost-net\.conf [0-9a-f]{64}$/);
  assert.deepEqual(plan(kernelModule, { name: 'vhost-net', state: 'unconfigured' }, VHOST_LOADED).changes, []);
  // A module kvmconf loaded at boot before: blacklisting or unconfiguring it removes that file too.
  const loadedAtBoot = withBootFile(VHOST_LOADED, '# Managed by kvmconf (kernel_module vhost-net): loaded at boot; edits here are overwritten.\nvhost-net\n');
  assert.deepEqual(view(plan(kernelModule, { name: 'vhost-net', state: 'blacklisted' }, loadedAtBoot).changes), [
    '/etc/modprobe.d/kvmconf-vhost-net.conf (persist) null -> blacklist vhost-net',
    '/etc/modules-load.d/kvmconf-vhost-net.conf (persist) vhost-net -> null',
  ]);
  assert.deepEqual(view(plan(kernelModule, { name: 'vhost-net', state: 'unconfigured' }, loadedAtBoot).changes), ['/etc/modules-load.d/kvmconf-vhost-net.conf (persist) vhost-net -> null']);
  assert.throws(() => kernelModule.parse(VHOST_LOADED.replace(/@@boot\n[^]*$/, ''), kernelModule.normalize!({ name: 'vhost-net' })), /truncated/);
  assert.equal(renderModprobe(kernelModule.normalize!({ name: 'kvm' })), null, 'loaded without options: no file');
});

test('plan: a built-in module takes parameters only on the kernel command line (writable ones still live)', () => {
  const printk = plan(kernelModule, { name: 'printk', options: { time: false, always_kmsg_dump: true } }, PRINTK_BUILTIN);
  assert.equal(printk.actual.builtin, true);
  assert.deepEqual(view(printk.changes), ['printk time (runtime) Y -> 0', 'printk always_kmsg_dump (runtime) N -> 1']);
  assert.match(printk.warnings[0]!.message, /printk is built into this kernel: a modprobe\.d file has no effect, none is written/);
  assert.throws(
    () => plan(kernelModule, { name: 'kvm', options: { halt_poll_ns: 0, ignore_msrs: false } }, KVM_BUILTIN),
    /^Error: kvm is built into this kernel: modprobe\.d options never reach it; set kvm\.halt_poll_ns=0 with the kernel_cmdline module$/,
  );
  assert.throws(() => plan(kernelModule, { name: 'printk', options: { nope: 1 } }, PRINTK_BUILTIN), /set printk\.nope=1 with the kernel_cmdline module/);
});

test('plan: a parameter the module does not have fails the task', () => {
  assert.throws(() => plan(kernelModule, { name: 'kvm', options: { no_such_param: 1 } }, KVM_LOADED), /kvm has no parameter no_such_param \(no \/sys\/module\/kvm\/parameters\/no_such_param\)/);
});

test('schema: hostile names, options and values are refused before any shell sees them', () => {
  for (const bad of [
    { name: 'kvm; reboot' }, { name: '../kvm' }, { name: 'KVM' }, { name: '' }, { name: 'kvm', state: 'unloaded' },
    { name: 'kvm', options: { 'halt-poll ns': 1 } }, { name: 'kvm', options: { halt_poll_ns: '$(reboot)' } },
    { name: 'kvm', options: { halt_poll_ns: "0'; reboot; '" } }, { name: 'kvm', options: { halt_poll_ns: '1 2' } },
    { name: 'kvm', options: { halt_poll_ns: '' } }, { name: 'kvm', file: '/etc/passwd' }, { name: 'kvm', file: '/etc/modprobe.d/../x.conf' },
    { name: 'kvm', extra: 1 },
  ]) assert.equal(schemaAccepts(kernelModule, bad), false, JSON.stringify(bad));
  assert.equal(schemaAccepts(kernelModule, { name: 'vfio-pci', options: { ids: '8086:10fb,10de:1b80' } }), true);
  assert.equal(schemaAccepts(kernelModule, { name: 'kvm_intel', options: { nested: true }, file: '/etc/modprobe.d/kvm.conf' }), true);
  assert.throws(() => kernelModule.normalize!({ name: 'kvm', state: 'blacklisted', options: { halt_poll_ns: 0 } }), /options are only set with state loaded/);
  assert.deepEqual(ownedFiles(kernelModule.claims!(kernelModule.normalize!({ name: 'kvm', options: { halt_poll_ns: 0 }, persist: false }))), []);
  assert.deepEqual(ownedFiles(kernelModule.claims!(kernelModule.normalize!({ name: 'kvm', state: 'blacklisted' }))), ['/etc/modprobe.d/kvmconf-kvm.conf', '/etc/modules-load.d/kvmconf-kvm.conf']);
});
