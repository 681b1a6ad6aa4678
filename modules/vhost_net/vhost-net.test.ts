import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ownedFiles } from '../../src/kit/claims.js';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { PlanContext } from '../../src/kit/module.js';
import { changeCommands, diffOf } from '../../test/helpers/plan.js';
import type { HostFacts } from '../../src/kit/host-facts.js';
import { REMOTE_LIB, BACKUP_DIR } from '../../src/kit/remote-lib.js';
import { compile } from '../../src/config/schema.js';
import {
  vhostNet, asKernelModule, liveValue, normaliseFlag, persistCommand, renderModprobe, MODPROBE_FILE, ZCOPY_SECURITY,
  type VhostNetParams, type VhostNetState,
} from './index.js';
import { reloadCommands } from '../kernel_module/index.js';
import { modprobeOrder } from '../lib/modprobe.js';
import { moduleFixtures } from '../../test/helpers/paths.js';

const FIXTURES = moduleFixtures('vhost_net');
const fixture = (name: string) => fs.readFileSync(path.join(FIXTURES, name), 'utf8');

const facts = { osId: 'debian', osLike: [], kernel: '6.1.0-18-amd64', arch: 'x86_64', systemd: true } as unknown as HostFacts;
const params = (value: 0 | 1, persist = true): VhostNetParams => ({ experimental_zcopytx: value, persist });
const parse = (name: string) => vhostNet.parse(fixture(name), params(1));

function run(p: VhostNetParams, state: VhostNetState) {
  const warnings: string[] = [];
  const ctx: PlanContext = { facts, tasks: [], claims: [], warn: (message) => warnings.push(message) };
  return { changes: diffOf(vhostNet, p, state, ctx), warnings };
}

describe('vhost_net parse', () => {
  it('reads the real probe of this machine: module not loaded, modprobe.d files in load order', () => {
    const state = parse('debian12-container-not-loaded.probe');
    assert.equal(state.loaded, false);
    assert.equal(liveValue(state), null);
    assert.equal(state.file, null);
    assert.deepEqual(state.cmdline, {});
    // /lib is a link to /usr/lib here: each file is listed twice and read once.
    assert.deepEqual(state.configs, [
      { file: '/usr/lib/modprobe.d/fbdev-blacklist.conf', options: {} },
      { file: '/usr/lib/modprobe.d/systemd.conf', options: {} },
    ]);
  });

  it('reads a loaded module in use, and Y/N values', () => {
    const busy = parse('handwritten-debian12-loaded-in-use.probe');
    assert.deepEqual([busy.loaded, busy.builtin, liveValue(busy), busy.refcnt, busy.holders], [true, false, 0, 2, []]);
    assert.equal(liveValue(parse('handwritten-debian12-loaded-idle.probe')), 0);
    assert.deepEqual(parse('handwritten-builtin-cmdline.probe').cmdline, { experimental_zcopytx: '0' });
    for (const [text, value] of [['Y', 1], ['N', 0], ['1', 1], ['0', 0], ['2', 1], ['', null]] as const) assert.equal(normaliseFlag(text), value, text);
  });

  it('orders modprobe.d like libkmod: by file name, /etc hiding the same name elsewhere', () => {
    const order = modprobeOrder('vhost_net', [
      { file: '/usr/lib/modprobe.d/zz.conf', lines: ['options vhost_net experimental_zcopytx=1'] },
      { file: '/etc/modprobe.d/zz.conf', lines: ['options vhost_net experimental_zcopytx=0'] },
      { file: '/run/modprobe.d/aa.conf', lines: ['options vhost-net experimental-zcopytx=Y other=1', 'options tun x=1'] },
      { file: '/lib/modprobe.d/mm.conf', lines: ['options vhost_net experimental_zcopytx=0', 'options vhost_net experimental_zcopytx=1'] },
    ]);
    assert.deepEqual(order, [
      { file: '/run/modprobe.d/aa.conf', options: { experimental_zcopytx: 'Y', other: '1' } },
      { file: '/lib/modprobe.d/mm.conf', options: { experimental_zcopytx: '1' } },
      { file: '/etc/modprobe.d/zz.conf', options: { experimental_zcopytx: '0' } },
    ]);
  });
});

describe('vhost_net diff and commands', () => {
  it('persists only, with the security trade-off, when the module is not loaded', () => {
    const state = parse('debian12-container-not-loaded.probe');
    const p = params(1);
    const { changes, warnings } = run(p, state);
    assert.deepEqual(warnings, []);
    assert.deepEqual(changes, [{
      module: 'vhost_net', target: MODPROBE_FILE, scope: 'persist', before: null, after: 'experimental_zcopytx=1',
      reason: `vhost_net is not loaded: the option applies when it is next loaded; ${ZCOPY_SECURITY}`,
      diff: { before: '', after: renderModprobe(1), beforeHeader: MODPROBE_FILE, afterHeader: MODPROBE_FILE },
    }]);
    assert.equal(renderModprobe(1), '# Managed by kvmconf (vhost_net); edits here are overwritten.\noptions vhost_net experimental_zcopytx=1\n');
    assert.deepEqual(changeCommands(vhostNet, changes[0]!), [persistCommand(MODPROBE_FILE, 1, null)]);
    assert.deepEqual(run(p, { ...state, file: renderModprobe(1) }).changes, []);
    assert.deepEqual(ownedFiles(vhostNet.claims!(p)), [MODPROBE_FILE]);
    assert.deepEqual(ownedFiles(vhostNet.claims!(params(1, false))), []);
  });

  it('says that nothing happens when not loaded and not persisted', () => {
    const { changes, warnings } = run(params(1, false), parse('debian12-container-not-loaded.probe'));
    assert.deepEqual(changes, []);
    assert.match(warnings[0]!, /not loaded and persist is false/);
  });

  it('waits for a module reload while guests use vhost_net, and reports conflicting files', () => {
    const state = parse('handwritten-debian12-loaded-in-use.probe');
    const { changes, warnings } = run(params(1), state);
    assert.deepEqual(changes.map((c) => [c.target, c.scope, c.before, c.after, c.pendingOn]), [
      [MODPROBE_FILE, 'persist', null, 'experimental_zcopytx=1', undefined],
      ['experimental_zcopytx', 'pending', '0', '1', 'module-reload'],
    ]);
    assert.equal(changes[1]!.reason, `vhost_net is in use by guests (2 open vhost-net devices): reload it (rmmod vhost_net && modprobe vhost_net) with guests stopped; ${ZCOPY_SECURITY}`);
    assert.equal(changes[0]!.reason, ZCOPY_SECURITY);
    assert.deepEqual(changeCommands(vhostNet, changes[1]!), []);
    assert.deepEqual(warnings, [
      `/etc/modprobe.d/zz-local.conf sets experimental_zcopytx=0 and is read after ${MODPROBE_FILE}, so its value wins at the next load: remove it there`,
    ]);
    const off = run(params(0), state);
    assert.deepEqual(off.changes.map((c) => c.scope), ['persist'], 'already 0 at run time');
    assert.deepEqual(off.warnings, [`/etc/modprobe.d/00-early.conf also sets experimental_zcopytx=1; ${MODPROBE_FILE} is read after it and wins, but the two disagree`]);
  });

  it('reloads an idle module, with a read-back, and is a no-op when right', () => {
    const state = parse('handwritten-debian12-loaded-idle.probe');
    assert.deepEqual(run(params(0), state), { changes: [], warnings: [] });
    const { changes } = run(params(1), state);
    assert.deepEqual(changes.map((c) => [c.target, c.scope, c.before, c.after]), [
      [MODPROBE_FILE, 'persist', 'experimental_zcopytx=0', 'experimental_zcopytx=1'],
      ['experimental_zcopytx', 'runtime', '0', '1'],
    ]);
    assert.equal(changes[1]!.reason, `no guest uses vhost_net: it is reloaded with the new option; ${ZCOPY_SECURITY}`);
    assert.deepEqual(changeCommands(vhostNet, changes[1]!), [
      "rmmod vhost_net && modprobe vhost_net || kc_fail 'reloading vhost_net failed (did something start using it?)'",
      `kc_got=$(kc_read_value /sys/module/vhost_net/parameters/experimental_zcopytx); case "$kc_got" in Y|y|1) [ 1 = 1 ] ;; N|n|0) [ 1 = 0 ] ;; *) false ;; esac || kc_fail 'vhost_net: asked for experimental_zcopytx=1, the kernel has' "$kc_got"`,
    ]);
    // Holders alone count as users too.
    const held = run(params(1), { ...state, holders: ['vhost_test'] }).changes[1]!;
    assert.deepEqual([held.scope, held.pendingOn], ['pending', 'module-reload']);
    assert.match(held.reason!, /^vhost_net is in use by guests \(1 open vhost-net devices, held by vhost_test\)/);
    // Without the file, the option is given to modprobe itself.
    const transient = run(params(1, false), state).changes;
    assert.deepEqual(transient.map((c) => c.scope), ['runtime']);
    assert.match(changeCommands(vhostNet, transient[0]!)[0]!, /&& modprobe vhost_net experimental_zcopytx=1 \|\|/);
  });

  it('refuses a built-in vhost_net and points at the kernel command line', () => {
    const state = parse('handwritten-builtin-cmdline.probe');
    assert.throws(() => run(params(1), state), /built into this kernel.*vhost_net\.experimental_zcopytx=1 with the kernel_cmdline module/);
    const warnings: string[] = [];
    assert.deepEqual(diffOf(vhostNet, params(0, false), state, { facts, tasks: [], claims: [], warn: (m) => warnings.push(m) }), []);
  });

  it('reports a kernel command line value that overrides every file', () => {
    const state = { ...parse('handwritten-debian12-loaded-idle.probe'), cmdline: { experimental_zcopytx: '0' } };
    assert.match(run(params(1), state).warnings.join('\n'), /kernel command line has vhost_net.experimental_zcopytx=0.*wins/);
  });
});

describe('vhost_net parameters', () => {
  const validate = compile(vhostNet.schema);
  it('accepts 0, 1 and booleans and normalises them', () => {
    for (const value of [0, 1, true, false]) assert.ok(validate({ experimental_zcopytx: value }), String(value));
    assert.deepEqual(vhostNet.normalize!({ experimental_zcopytx: true }), { experimental_zcopytx: 1, persist: true });
    assert.deepEqual(vhostNet.normalize!({ experimental_zcopytx: 0, persist: false }), { experimental_zcopytx: 0, persist: false });
  });
  it('rejects hostile and out-of-range values', () => {
    for (const value of ['1', 2, -1, '1; reboot', '$(reboot)', '1\n', null, 'Y']) assert.equal(validate({ experimental_zcopytx: value }), false, JSON.stringify(value));
    assert.equal(validate({}), false);
    assert.equal(validate({ experimental_zcopytx: 1, module: 'x' }), false);
  });
});

describe('vhost_net on this machine', () => {
  const sh = (script: string) => spawnSync('/bin/sh', ['-c', script], { encoding: 'utf8' });

  it('runs the real probe read-only and parses it', () => {
    const result = sh(`(\n${vhostNet.probe(params(1))}\n) </dev/null`);
    assert.equal(result.status, 0, result.stderr);
    const state = vhostNet.parse(result.stdout, params(1));
    assert.equal(state.loaded, fs.existsSync('/sys/module/vhost_net'));
    assert.ok(state.configs.length > 0 || !fs.existsSync('/usr/lib/modprobe.d'), 'the modprobe.d files are listed');
    assert.equal(state.file, fs.existsSync(MODPROBE_FILE) ? fs.readFileSync(MODPROBE_FILE, 'utf8') : null);
  });

  it('writes the modprobe.d file atomically', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvmconf-vhost-'));
    const lib = REMOTE_LIB.split(BACKUP_DIR).join(path.join(dir, 'backups'));
    const file = path.join(dir, 'modprobe.d', 'kvmconf-vhost-net.conf');
    const first = sh(`${lib}\n( set -e\n${persistCommand(file, 0, null)}\n) </dev/null 2>&1`);
    assert.equal(first.status, 0, first.stdout);
    const second = sh(`${lib}\n( set -e\n${persistCommand(file, 1, renderModprobe(0))}\n) </dev/null 2>&1`);
    assert.equal(second.status, 0, second.stdout);
    assert.equal(fs.readFileSync(file, 'utf8'), renderModprobe(1));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('reload commands read the parameter back and fail with both values', () => {
    // rmmod, modprobe and the sysfs read are stubbed: this machine has no vhost_net to reload.
    const stub = (answer: string, removeFails = false) =>
      `rmmod() { echo "rmmod $*" >&2; ${removeFails ? 'false' : 'true'}; }\nmodprobe() { echo "modprobe $*" >&2; }\n` +
      `kc_read_value() { [ "$1" = /sys/module/vhost_net/parameters/experimental_zcopytx ] && echo ${answer}; }\n`;
    const script = (answer: string, removeFails = false) => `${REMOTE_LIB}\n${stub(answer, removeFails)}( set -e\n${reloadCommands(asKernelModule(params(1))).join('\n')}\n) </dev/null 2>&1`;
    const ok = sh(script('Y'));
    assert.equal(ok.status, 0, ok.stdout);
    assert.match(ok.stdout, /rmmod vhost_net\nmodprobe vhost_net/);
    const less = sh(script('N'));
    assert.notEqual(less.status, 0);
    assert.match(less.stdout, /asked for experimental_zcopytx=1, the kernel has N/);
    const busy = sh(script('Y', true));
    assert.notEqual(busy.status, 0);
    assert.match(busy.stdout, /reloading vhost_net failed/);
  });
});
