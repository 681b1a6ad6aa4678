import { test } from 'node:test';
import assert from 'node:assert/strict';
import { kernelModule, renderModprobe, sameValue } from './index.js';
import { fixture } from '../../test/helpers/paths.js';
import { plan, schemaAccepts } from '../../test/helpers/plan.js';
import { ownedFiles, READ_FN } from '../../src/kit/index.js';
import { cmdlineOptions, modprobeOrder, modprobeProbe } from '../lib/modprobe.js';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

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
    'vhost-net experimental_zcopytx (pending reboot) 1 -> 0',
  ]);
  assert.deepEqual(commands(changes[2]!), [], 'a pending change runs nothing');
  assert.match(changes[2]!.reason!, /read-only parameter: it takes the new value when the host boots \(modules-load.d loads it with the modprobe.d options\) or vhost-net is reloaded by hand/);
  // Not persisted, a boot brings the default back: only a reload (by hand) would apply it.
  const transient = plan(kernelModule, { name: 'vhost-net', options: { experimental_zcopytx: 0 }, persist: false }, VHOST_LOADED);
  assert.deepEqual(view(transient.changes), ['vhost-net experimental_zcopytx (pending module-reload) 1 -> 0']);
  assert.match(transient.changes[0]!.reason!, /persist is false, so a reload brings the default back/);
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

const NESTED = fixture('kernel_module', 'handwritten-kvm-intel-nested.probe');
/** kvm_intel without the other files that set nested, so only what reload does is seen. */
const NESTED_ALONE = NESTED.replace(/^(cmdline .*) kvm-intel\.nested=0$/m, '$1').replace(/^(conf|opt) \/(etc|usr\/lib)\/modprobe\.d\/(00-kvm|zz-local|kvmconf-kvm_intel)\.conf.*\n/gm, '');

test('plan: reload when-unused reloads an unused module for a read-only parameter, then reads every option back', () => {
  const { changes, commands, warnings } = plan(kernelModule, { name: 'kvm_intel', options: { nested: true }, reload: 'when-unused' }, NESTED_ALONE);
  assert.deepEqual(warnings, []);
  assert.deepEqual(view(changes), [
    '/etc/modprobe.d/kvmconf-kvm_intel.conf (persist) null -> options kvm_intel nested=1',
    '/etc/modules-load.d/kvmconf-kvm_intel.conf (persist) null -> kvm_intel',
    'kvm_intel nested (runtime) N -> 1',
  ]);
  assert.equal(changes[2]!.reason, 'read-only parameter: nothing uses kvm_intel (refcnt 0, no holders), so it is reloaded with the new value');
  assert.deepEqual(commands(changes[2]!), [
    `rmmod kvm_intel && modprobe kvm_intel || kc_fail 'reloading kvm_intel failed (did something start using it?)'`,
    `kc_got=$(kc_read_value /sys/module/kvm_intel/parameters/nested); case "$kc_got" in Y|y|1) [ 1 = 1 ] ;; N|n|0) [ 1 = 0 ] ;; *) false ;; esac || kc_fail 'kvm_intel: asked for nested=1, the kernel has' "$kc_got"`,
  ]);
  // Without the file the options go on modprobe's command line; several read-only options share one reload.
  const several = NESTED_ALONE.replace('mode 444 nested', 'mode 444 nested\nparam ept Y\nmode 444 ept');
  const live = plan(kernelModule, { name: 'kvm_intel', options: { nested: 1, ept: false }, reload: 'when-unused', persist: false }, several);
  assert.deepEqual(view(live.changes), ['kvm_intel nested ept (runtime) nested=N ept=Y -> nested=1 ept=0']);
  const [reload, ...readBacks] = live.commands(live.changes[0]!);
  assert.equal(reload, `rmmod kvm_intel && modprobe kvm_intel nested=1 ept=0 || kc_fail 'reloading kvm_intel failed (did something start using it?)'`);
  assert.deepEqual(readBacks.map((command) => /parameters\/(\w+)/.exec(command)![1]), ['nested', 'ept']);
  assert.match(live.changes[0]!.reason!, /persist is false: the options go on modprobe's command line/);
});

test('plan: reload when-unused leaves a module in use pending, naming its refcnt and holders', () => {
  const { changes, commands } = plan(kernelModule, { name: 'kvm', options: { halt_poll_ns: 0, enable_vmware_backdoor: true }, reload: 'when-unused' }, KVM_LOADED);
  assert.deepEqual(view(changes).slice(2), [
    'kvm enable_vmware_backdoor (pending module-reload) N -> 1',
    'kvm halt_poll_ns (runtime) 200000 -> 0',
  ]);
  assert.equal(changes[2]!.reason, 'read-only parameter: kvm is in use (refcnt 1, held by kvm_intel), so kvmconf does not reload it; it takes the new value when reloaded with its users stopped (rmmod kvm && modprobe kvm) or the host boots');
  assert.deepEqual(commands(changes[2]!), []);
  // Holders alone keep it: a refcnt of 0 is not enough.
  const held = plan(kernelModule, { name: 'kvm', options: { enable_vmware_backdoor: true }, reload: 'when-unused' }, KVM_LOADED.replace('refcnt 1', 'refcnt 0'));
  assert.deepEqual(view(held.changes).slice(2), ['kvm enable_vmware_backdoor (pending module-reload) N -> 1']);
  assert.match(held.changes[2]!.reason!, /in use \(refcnt 0, held by kvm_intel\)/);
});

test('plan: reload never (the default) leaves even an unused module pending, and says how to let kvmconf reload it', () => {
  const { changes, commands } = plan(kernelModule, { name: 'kvm_intel', options: { nested: true } }, NESTED_ALONE);
  // Only a boot applies it (kvmconf does not reload): a rollout that may reboot finishes it, none stops guests for a reload.
  assert.deepEqual(view(changes).slice(2), ['kvm_intel nested (pending reboot) N -> 1']);
  assert.equal(changes[2]!.reason, 'read-only parameter: it takes the new value when the host boots (modules-load.d loads it with the modprobe.d options) or kvm_intel is reloaded by hand (rmmod kvm_intel && modprobe kvm_intel); reload: when-unused lets kvmconf reload it while nothing uses it');
  assert.deepEqual(commands(changes[2]!), []);
  assert.equal(kernelModule.normalize!({ name: 'kvm_intel' }).reload, 'never');
  assert.equal(schemaAccepts(kernelModule, { name: 'kvm_intel', reload: 'always' }), false);
  assert.equal(schemaAccepts(kernelModule, { name: 'kvm_intel', reload: 'when-unused' }), true);
});

test('plan: other modprobe.d files and the kernel command line that override the owned options are warned about', () => {
  const { warnings } = plan(kernelModule, { name: 'kvm_intel', options: { nested: true }, reload: 'when-unused' }, NESTED);
  assert.deepEqual(warnings.map((warning) => warning.message), [
    '/etc/modprobe.d/00-kvm.conf also sets nested=0; /etc/modprobe.d/kvmconf-kvm_intel.conf is read after it and wins, but the two disagree',
    '/etc/modprobe.d/zz-local.conf sets nested=N and is read after /etc/modprobe.d/kvmconf-kvm_intel.conf, so its value wins at the next load: remove it there',
    'the kernel command line has kvm_intel.nested=0, which modprobe applies after every modprobe.d file: it wins until it is removed and the host rebooted',
  ]);
  // N, 0 and false agree; a file of the owned name elsewhere is hidden by it; persist false writes no file to be overridden.
  assert.deepEqual(plan(kernelModule, { name: 'kvm_intel', options: { nested: false } }, NESTED).warnings, []);
  assert.deepEqual(plan(kernelModule, { name: 'kvm_intel', options: { nested: true }, persist: false }, NESTED).warnings, []);
});

test('modprobe.d order: per file the options it sets for the module, by file name with /etc hiding the same name; the command line parsed', () => {
  const files = [
    { file: '/usr/lib/modprobe.d/kvm.conf', lines: ['options kvm_intel nested=1 ept=0'] },
    { file: '/etc/modprobe.d/kvm.conf', lines: ['options kvm-intel nested=0', 'options kvm_intel nested=Y # later line wins'] },
    { file: '/run/modprobe.d/00-a.conf', lines: ['options kvm_intel enable-apicv=0', 'options kvm nested=1'] },
    { file: '/lib/modprobe.d/zz.conf', lines: [] },
  ];
  assert.deepEqual(modprobeOrder('kvm_intel', files), [
    { file: '/run/modprobe.d/00-a.conf', options: { enable_apicv: '0' } },
    { file: '/etc/modprobe.d/kvm.conf', options: { nested: 'Y' } },
    { file: '/lib/modprobe.d/zz.conf', options: {} },
  ]);
  assert.deepEqual(cmdlineOptions('kvm-intel', 'ro kvm_intel.nested=1 kvm.halt_poll_ns=0 kvm-intel.ept="0" -- kvm_intel.pml=0'), { nested: '1', ept: '0' });
});

test('probe: one awk prints the options lines of the module from every modprobe.d file, - and _ alike', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'kvmconf-modprobe-'));
  fs.mkdirSync(path.join(root, 'etc/modprobe.d'), { recursive: true });
  fs.mkdirSync(path.join(root, 'usr/lib/modprobe.d'), { recursive: true });
  fs.writeFileSync(path.join(root, 'etc/modprobe.d/a.conf'), '# options kvm_intel nested=0\n  options kvm-intel nested=1\noptions kvm_intelx nested=0\n');
  fs.writeFileSync(path.join(root, 'usr/lib/modprobe.d/b.conf'), 'options kvm halt_poll_ns=0\noptions\tkvm_intel ept=0\n');
  const script = `${READ_FN}\n${modprobeProbe('kvm_intel')}`.replace(/([ '])\/(etc|run|usr|lib)\//g, `$1${root}/$2/`);
  const out = spawnSync('/bin/sh', ['-c', script], { encoding: 'utf8' });
  fs.rmSync(root, { recursive: true, force: true });
  assert.equal(out.status, 0, out.stderr);
  const lines = out.stdout.split('\n').filter((line) => /^(conf|opt) /.test(line)).map((line) => line.split(root).join(''));
  assert.deepEqual(lines, [
    'conf /etc/modprobe.d/a.conf',
    'conf /usr/lib/modprobe.d/b.conf',
    'opt /etc/modprobe.d/a.conf   options kvm-intel nested=1',
    'opt /usr/lib/modprobe.d/b.conf options\tkvm_intel ept=0',
  ]);
});

test('probe: a module modules.builtin lists (- or _, any .ko suffix) is built in; a longer name is not', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvmconf-builtin-'));
  const listing = path.join(dir, 'modules.builtin');
  fs.writeFileSync(listing, 'kernel/fs/ext4/ext4.ko\nkernel/drivers/misc/kc-fake-mod.ko.xz\nkernel/drivers/misc/kc_fake_mod_two.ko\n');
  const builtin = (name: string) => {
    const probe = kernelModule.probe(kernelModule.normalize!({ name, options: {} })).split('/lib/modules/$kc_v/modules.builtin').join(listing);
    const out = spawnSync('/bin/sh', ['-c', probe], { encoding: 'utf8' });
    assert.equal(out.status, 0, out.stderr);
    return out.stdout.split('\n').includes('builtin');
  };
  assert.equal(builtin('kc_fake_mod'), true);
  assert.equal(builtin('kc-fake-mod-two'), true);
  assert.equal(builtin('kc_fake'), false);
  fs.writeFileSync(listing, 'kernel/drivers/misc/kc_fake_mod_two.ko\n');
  assert.equal(builtin('kc_fake_mod'), false);
  fs.rmSync(dir, { recursive: true, force: true });
});
