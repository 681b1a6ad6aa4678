import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Change, PlanContext } from '../../src/kit/module.js';
import { changeCommands, diffOf } from '../../test/helpers/plan.js';
import type { HostFacts } from '../../src/kit/host-facts.js';
import { REMOTE_LIB, BACKUP_DIR, writeFileCommand } from '../../src/kit/remote-lib.js';
import { compile } from '../../src/config/schema.js';
import {
  kernelCmdline, chooseBootTool, grubFileCommands, parseGrubbyInfo, GRUB_DEFAULT, BLS_DIR,
  type KernelCmdlineParams, type KernelCmdlineState,
} from './index.js';
import { editCmdline, effectiveValue, tokenizeCmdline } from '../lib/grub.js';
import { moduleFixtures } from '../../test/helpers/paths.js';

const FIXTURES = moduleFixtures('kernel_cmdline');
const fixture = (name: string) => fs.readFileSync(path.join(FIXTURES, name), 'utf8');
const STOCK = fixture('debian12-stock-default-grub');

function facts(overrides: Partial<HostFacts> = {}): HostFacts {
  return {
    osId: 'debian', osVersion: '12', osLike: [], kernel: '6.1.0-18-amd64', bootId: '', arch: 'x86_64', uid: 0, systemd: true,
    cpusOnline: [0, 1], cpuFlags: [], threadSiblings: {}, numaNodes: [], hugepageSizesKiB: [2048], memTotalKiB: 8_000_000, resctrl: [], ...overrides,
  };
}

function context(warnings: string[] = []): PlanContext {
  return { facts: facts(), tasks: [], claims: [], warn: (message) => warnings.push(message) };
}

const params = (tokens: string[], absent: string[] = []): KernelCmdlineParams => ({ tokens, absent });
const parse = (name: string, p = params([])) => kernelCmdline.parse(fixture(name), p);

function run(params: KernelCmdlineParams, state: KernelCmdlineState) {
  const warnings: string[] = [];
  const changes = diffOf(kernelCmdline, params, state, context(warnings));
  return { changes, warnings };
}

/** Lines of `after` that differ from `before` (same line count expected unless appended). */
function changedLines(before: string, after: string): Array<[string | undefined, string | undefined]> {
  const a = before.split('\n');
  const b = after.split('\n');
  const out: Array<[string | undefined, string | undefined]> = [];
  for (let i = 0; i < Math.max(a.length, b.length); i++) if (a[i] !== b[i]) out.push([a[i], b[i]]);
  return out;
}

describe('kernel_cmdline parse', () => {
  it('reads the real probe of this Debian 12 machine (no /etc/default/grub, init arguments after --)', () => {
    const state = parse('debian12-container-no-default-grub.probe');
    assert.equal(state.grub, null);
    assert.equal(state.osId, 'debian');
    assert.match(state.kernel, /^6\./);
    assert.equal(state.mqDirs, true);
    assert.deepEqual(state.tools, ['update-grub', 'grub-mkconfig']);
    assert.equal(state.running.at(-1), 'rdinit=/process_api');
    assert.ok(!state.running.includes('--firecracker-init'), 'arguments after -- belong to init, not the kernel');
    assert.ok(state.running.includes('mitigations=auto,no_guest_host,no_guest_guest'));
  });

  it('reads the stock Debian 12 /etc/default/grub byte for byte', () => {
    const state = parse('debian12-stock-grub.probe');
    assert.equal(state.grub, STOCK);
    assert.equal(chooseBootTool(state).command, 'update-grub');
  });

  it('reads grub.cfg kernel lines and skips memtest', () => {
    const state = parse('handwritten-debian12-bios-host.probe');
    assert.equal(state.cfgLines['/boot/grub/grub.cfg']!.length, 2);
    assert.deepEqual(state.cfgLines['/boot/grub/grub.cfg']![1], ['root=UUID=2f9e3c1a-5b1d-4f7e-9a57-0b8f6f1c2d3e', 'ro', 'single', 'console=ttyS0,115200n8']);
  });

  it('reads grubby --info=ALL of a RHEL 9 host, quoted or not', () => {
    const state = parse('handwritten-rhel9-uefi-bls-grubby.probe');
    assert.equal(state.grubby!.length, 2);
    assert.equal(state.grubby![0]!.kernel, '/boot/vmlinuz-5.14.0-362.8.1.el9_3.x86_64');
    assert.equal(state.grubby![0]!.args[0], 'ro');
    assert.deepEqual(parseGrubbyInfo('index=0\nkernel=/boot/vmlinuz-3.10\nargs="ro quiet"\n'), [{ kernel: '/boot/vmlinuz-3.10', args: ['ro', 'quiet'] }]);
  });

  it('tokenises quoted kernel arguments as the kernel does', () => {
    assert.deepEqual(tokenizeCmdline('a "b c" d="e f" -- init args'), ['a', '"b c"', 'd="e f"']);
    assert.deepEqual(tokenizeCmdline('  x  \n'), ['x']);
  });
});

describe('kernel_cmdline editing of GRUB_CMDLINE_LINUX', () => {
  const names = (...n: string[]) => new Set(n);

  it('keeps every other line, token, quote style and comment byte for byte', () => {
    const content = '# top\nGRUB_CMDLINE_LINUX_DEFAULT="quiet"\nGRUB_CMDLINE_LINUX="console=ttyS0  hugepages=8\trd.lvm=1"   # keep me\nX=1\n';
    const edit = editCmdline(content, names('hugepages'), ['hugepages=16']);
    assert.equal(edit.content, '# top\nGRUB_CMDLINE_LINUX_DEFAULT="quiet"\nGRUB_CMDLINE_LINUX="console=ttyS0  hugepages=16\trd.lvm=1"   # keep me\nX=1\n');
    assert.deepEqual(edit.lines, [3]);
  });

  it('puts the desired tokens where the first managed one was and drops the others', () => {
    const content = `GRUB_CMDLINE_LINUX='a hugepagesz=2M b hugepages=9 c'\n`;
    const edit = editCmdline(content, names('hugepagesz', 'hugepages', 'default_hugepagesz'), ['default_hugepagesz=1G', 'hugepagesz=1G', 'hugepages=4']);
    assert.equal(edit.content, `GRUB_CMDLINE_LINUX='a default_hugepagesz=1G hugepagesz=1G hugepages=4 b c'\n`);
  });

  it('appends at the end (before trailing spaces) when nothing managed is there', () => {
    assert.equal(editCmdline('GRUB_CMDLINE_LINUX=""\n', names('x'), ['x=1']).content, 'GRUB_CMDLINE_LINUX="x=1"\n');
    assert.equal(editCmdline('GRUB_CMDLINE_LINUX="a "\n', names('x'), ['x=1', 'y']).content, 'GRUB_CMDLINE_LINUX="a x=1 y "\n');
  });

  it('removes absent names, first, last and middle', () => {
    const n = names('quiet', 'elevator');
    assert.equal(editCmdline('GRUB_CMDLINE_LINUX="quiet a elevator=deadline b quiet"\n', n, []).content, 'GRUB_CMDLINE_LINUX="a b"\n');
  });

  it('keeps an unquoted value unquoted while it is one word, and quotes it when it grows', () => {
    assert.equal(editCmdline('GRUB_CMDLINE_LINUX=\nY=2\n', names('a'), ['a=1']).content, 'GRUB_CMDLINE_LINUX=a=1\nY=2\n');
    assert.equal(editCmdline('export GRUB_CMDLINE_LINUX=quiet # c\n', names('a'), ['a=1']).content, 'export GRUB_CMDLINE_LINUX="quiet a=1" # c\n');
  });

  it('appends a missing GRUB_CMDLINE_LINUX line at the end, adding the final newline the file lacked', () => {
    assert.deepEqual(editCmdline('GRUB_TIMEOUT=5', names('a'), ['a']), { content: 'GRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX="a"\n', lines: [2] });
  });

  it('edits the last assignment, following $GRUB_CMDLINE_LINUX self-references into earlier ones', () => {
    const content = 'GRUB_CMDLINE_LINUX="hugepages=4 a"\nGRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX b"\n';
    assert.deepEqual(effectiveValue(content, 'GRUB_CMDLINE_LINUX').tokens, ['hugepages=4', 'a', 'b']);
    const edit = editCmdline(content, names('hugepages'), ['hugepages=8']);
    assert.equal(edit.content, 'GRUB_CMDLINE_LINUX="a"\nGRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX b hugepages=8"\n');
    assert.deepEqual(effectiveValue(edit.content, 'GRUB_CMDLINE_LINUX').tokens, ['a', 'b', 'hugepages=8']);
    // A later plain assignment replaces the earlier one entirely: only it is edited.
    const plain = 'GRUB_CMDLINE_LINUX="hugepages=4"\nGRUB_CMDLINE_LINUX="b"\n';
    assert.equal(editCmdline(plain, names('hugepages'), ['hugepages=8']).content, 'GRUB_CMDLINE_LINUX="hugepages=4"\nGRUB_CMDLINE_LINUX="b hugepages=8"\n');
  });

  it('refuses backslash continuations instead of guessing', () => {
    assert.throws(() => editCmdline('GRUB_CMDLINE_LINUX="a \\\n b"\n', names('x'), ['x']), /backslash/);
  });
});

describe('kernel_cmdline diff and commands', () => {
  it('plans the persist change, its exact commands, and the pending reboot on stock Debian 12', () => {
    const state = parse('debian12-stock-grub.probe');
    const p = params(['transparent_hugepage=never']);
    const { changes } = run(p, state);
    const expected = STOCK.replace('GRUB_CMDLINE_LINUX=""', 'GRUB_CMDLINE_LINUX="transparent_hugepage=never"');
    assert.deepEqual(changes, [
      {
        module: 'kernel_cmdline', target: GRUB_DEFAULT, scope: 'persist', before: null, after: 'transparent_hugepage=never',
        reason: 'then update-grub regenerates the boot loader configuration',
        diff: { before: STOCK, after: expected, beforeHeader: GRUB_DEFAULT, afterHeader: GRUB_DEFAULT },
      },
      {
        module: 'kernel_cmdline', target: 'transparent_hugepage', scope: 'pending', pendingOn: 'reboot', before: null, after: 'transparent_hugepage=never',
        reason: 'the running kernel was booted without it; the kernel command line takes effect at the next boot',
      },
    ]);
    assert.deepEqual(changedLines(STOCK, expected), [['GRUB_CMDLINE_LINUX=""', 'GRUB_CMDLINE_LINUX="transparent_hugepage=never"']]);
    assert.deepEqual(changeCommands(kernelCmdline, changes[0]!), [writeFileCommand(GRUB_DEFAULT, expected, STOCK), 'update-grub']);
    assert.deepEqual(changeCommands(kernelCmdline, changes[1]!), []);
    // After apply the file holds the new content: only the reboot is left.
    const after = run(p, { ...state, grub: expected }).changes;
    assert.deepEqual(after.map((c) => c.scope), ['pending']);
    // After the reboot nothing is left.
    assert.deepEqual(run(p, { ...state, grub: expected, running: [...state.running, 'transparent_hugepage=never'] }).changes, []);
  });

  it('is a no-op when file, grub.cfg and running kernel agree', () => {
    const state = parse('handwritten-debian12-bios-host.probe');
    assert.deepEqual(run(params(['console=ttyS0,115200n8'], ['nosmt']), state), { changes: [], warnings: [] });
  });

  it('plans only the pending change when the file is right and the running kernel is not', () => {
    const state = parse('handwritten-debian12-bios-host.probe');
    const changes = run(params(['console=ttyS0,115200n8']), { ...state, running: ['ro', 'console=tty0'] }).changes;
    assert.deepEqual(changes, [{
      module: 'kernel_cmdline', target: 'console', scope: 'pending', pendingOn: 'reboot', before: 'console=tty0', after: 'console=ttyS0,115200n8',
      reason: 'the running kernel was booted with another value; the kernel command line takes effect at the next boot',
    }]);
  });

  it('plans a regeneration when /etc/default/grub is right but grub.cfg was never regenerated', () => {
    const state = parse('handwritten-debian12-bios-host.probe');
    const grub = state.grub!.replace('console=ttyS0,115200n8', 'console=ttyS0,115200n8 hugepages=16');
    const p = params(['hugepages=16']);
    const changes = run(p, { ...state, grub }).changes;
    assert.deepEqual(changes.map((c) => [c.target, c.scope, c.before, c.after]), [
      ['/boot/grub/grub.cfg', 'persist', null, 'hugepages=16'],
      ['hugepages', 'pending', null, 'hugepages=16'],
    ]);
    assert.deepEqual(changeCommands(kernelCmdline, changes[0]!), ['update-grub']);
  });

  it('reports a managed argument in GRUB_CMDLINE_LINUX_DEFAULT and in /etc/default/grub.d', () => {
    const state = parse('debian12-stock-grub.probe');
    const grub = STOCK.replace('GRUB_CMDLINE_LINUX_DEFAULT="quiet"', 'GRUB_CMDLINE_LINUX_DEFAULT="quiet transparent_hugepage=always"');
    const grubD = [
      { file: '/etc/default/grub.d/50-cloudimg-settings.cfg', text: 'GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT transparent_hugepage=madvise"' },
      { file: '/etc/default/grub.d/90-override.cfg', text: 'GRUB_CMDLINE_LINUX="console=tty0"' },
    ];
    const { warnings } = run(params(['transparent_hugepage=never']), { ...state, grub, grubD });
    assert.equal(warnings.length, 3);
    assert.match(warnings[0]!, /GRUB_CMDLINE_LINUX_DEFAULT in \/etc\/default\/grub also has transparent_hugepage=always; .*so the kernel still sees transparent_hugepage=always/);
    assert.match(warnings[1]!, /50-cloudimg-settings.cfg adds transparent_hugepage=madvise/);
    assert.match(warnings[2]!, /90-override.cfg sets GRUB_CMDLINE_LINUX and is read after/);
  });

  it('warns, and edits the last assignment, when GRUB_CMDLINE_LINUX is assigned twice', () => {
    const state = parse('debian12-stock-grub.probe');
    const grub = `${STOCK}GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX iommu=pt"\n`;
    const { changes, warnings } = run(params(['intel_iommu=on']), { ...state, grub });
    assert.equal(changes[0]!.diff!.after, `${STOCK}GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX iommu=pt intel_iommu=on"\n`);
    assert.match(warnings[0]!, /assigned 2 times .*lines 10, 40.*edits the last assignment \(line 40\)/);
    // One assignment that expands itself: warned too.
    const selfRef = STOCK.replace('GRUB_CMDLINE_LINUX=""', 'GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX iommu=pt"');
    const single = run(params(['intel_iommu=on']), { ...state, grub: selfRef });
    assert.match(single.warnings[0]!, /^GRUB_CMDLINE_LINUX expands variables in \/etc\/default\/grub \(line 10\): kvmconf edits the last assignment/);
    assert.match(single.changes[0]!.diff!.after, /GRUB_CMDLINE_LINUX="\$GRUB_CMDLINE_LINUX iommu=pt intel_iommu=on"/);
  });

  it('does not write elevator= on a multi-queue kernel, warns, and leaves an existing one alone', () => {
    const state = parse('debian12-stock-grub.probe');
    const { changes, warnings } = run(params(['elevator=deadline']), state);
    assert.deepEqual(changes, []);
    assert.match(warnings[0]!, /elevator= is ignored .*does not have any effect anymore.*io_scheduler/);
    const grub = STOCK.replace('GRUB_CMDLINE_LINUX=""', 'GRUB_CMDLINE_LINUX="elevator=noop"');
    assert.deepEqual(run(params(['elevator=deadline', 'nosmt']), { ...state, grub, running: ['nosmt'] }).changes.map((c) => c.diff?.after ?? c.target), [
      STOCK.replace('GRUB_CMDLINE_LINUX=""', 'GRUB_CMDLINE_LINUX="elevator=noop nosmt"'),
    ]);
    // Named absent, it is removed.
    const removal = run(params([], ['elevator']), { ...state, grub }).changes;
    assert.equal(removal[0]!.diff!.after, STOCK);
  });

  it('writes elevator= on an old single-queue kernel (RHEL 7) and regenerates with grub2-mkconfig', () => {
    const state = parse('handwritten-rhel7-bios-grub2-mkconfig.probe');
    const p = params(['elevator=deadline']);
    const { changes, warnings } = run(p, state);
    assert.deepEqual(warnings, []);
    assert.deepEqual(changes.map((c) => [c.target, c.scope]), [[GRUB_DEFAULT, 'persist'], ['elevator', 'pending']]);
    assert.match(changes[0]!.diff!.after, /GRUB_CMDLINE_LINUX="crashkernel=auto rd.lvm.lv=rhel\/root rd.lvm.lv=rhel\/swap rhgb quiet elevator=deadline"/);
    assert.equal(changeCommands(kernelCmdline, changes[0]!)[1], 'grub2-mkconfig -o /boot/grub2/grub.cfg');
  });

  it('uses grubby on a RHEL 9 BLS host, checking the boot entries but not the rescue one', () => {
    const state = parse('handwritten-rhel9-uefi-bls-grubby.probe');
    const p = params(['default_hugepagesz=1G', 'hugepagesz=1G', 'hugepages=4']);
    const { changes } = run(p, state);
    assert.deepEqual(changes.map((c) => [c.target, c.scope, c.before, c.after]), [
      [GRUB_DEFAULT, 'persist', null, 'default_hugepagesz=1G hugepagesz=1G hugepages=4'],
      [BLS_DIR, 'persist', null, 'default_hugepagesz=1G hugepagesz=1G hugepages=4'],
      ['default_hugepagesz', 'pending', null, 'default_hugepagesz=1G'],
      ['hugepagesz', 'pending', null, 'hugepagesz=1G'],
      ['hugepages', 'pending', null, 'hugepages=4'],
    ]);
    assert.equal(changeCommands(kernelCmdline, changes[0]!).length, 1, 'grubby hosts only write the file; grubby edits the entries');
    assert.deepEqual(changeCommands(kernelCmdline, changes[1]!), ["grubby --update-kernel=ALL --args='default_hugepagesz=1G hugepagesz=1G hugepages=4'"]);
    // Entries already carrying an old value: it is removed first, exactly as written.
    const drifted = { ...state, grubby: state.grubby!.map((e, i) => (i === 0 ? { ...e, args: [...e.args, 'hugepages=2'] } : e)) };
    const driftedEntries = run(p, drifted).changes.find((c) => c.target === BLS_DIR)!;
    assert.deepEqual(changeCommands(kernelCmdline, driftedEntries), ["grubby --update-kernel=ALL --remove-args=hugepages=2 --args='default_hugepagesz=1G hugepagesz=1G hugepages=4'"]);
    // Converged entries and file: only the reboot remains.
    const args = ['ro', 'default_hugepagesz=1G', 'hugepagesz=1G', 'hugepages=4'];
    const converged = { ...state, grub: changes[0]!.diff!.after, grubby: state.grubby!.map((e) => ({ ...e, args })) };
    assert.deepEqual(run(p, converged).changes.map((c) => c.scope), ['pending', 'pending', 'pending']);
  });

  it('warns that grubby may merge repeated names', () => {
    const state = parse('handwritten-rhel9-uefi-bls-grubby.probe');
    const { warnings } = run(params(['hugepagesz=1G', 'hugepages=4', 'hugepagesz=2M', 'hugepages=512']), state);
    assert.match(warnings.join('\n'), /grubby keeps one argument per name.*hugepagesz, hugepages/);
  });

  it('reports a reordering of repeated names as one pending change', () => {
    const state = parse('handwritten-debian12-bios-host.probe');
    const tokens = ['hugepagesz=1G', 'hugepages=4', 'hugepagesz=2M', 'hugepages=512'];
    const grub = state.grub!.replace('console=ttyS0,115200n8', `console=ttyS0,115200n8 ${tokens.join(' ')}`);
    const cfgLines = { '/boot/grub/grub.cfg': [['ro', ...tokens]] };
    const running = ['ro', 'hugepagesz=1G', 'hugepagesz=2M', 'hugepages=4', 'hugepages=512'];
    const changes = run(params(tokens), { ...state, grub, cfgLines, running }).changes;
    assert.deepEqual(changes.map((c) => [c.target, c.scope, c.before, c.after]), [
      ['hugepagesz,hugepages', 'pending', 'hugepagesz=1G hugepagesz=2M hugepages=4 hugepages=512', tokens.join(' ')],
    ]);
  });

  it('fails clearly without /etc/default/grub, and does nothing when nothing is managed', () => {
    const state = parse('debian12-container-no-default-grub.probe');
    assert.throws(() => run(params(['nosmt']), state), /\/etc\/default\/grub does not exist/);
    assert.deepEqual(run(params([]), state).changes, []);
  });

  it('fails when no regeneration tool exists', () => {
    const state = { ...parse('debian12-stock-grub.probe'), tools: [] };
    assert.throws(() => run(params(['nosmt']), state), /no boot configuration tool found/);
  });
});

describe('kernel_cmdline boot tool detection', () => {
  const base = parse('handwritten-rhel9-uefi-bls-grubby.probe');
  it('chooses grubby with BLS, grub2-mkconfig paths for BIOS and UEFI otherwise', () => {
    assert.equal(chooseBootTool(base).kind, 'grubby');
    const noBls = { ...base, grub: base.grub!.replace('GRUB_ENABLE_BLSCFG=true', 'GRUB_ENABLE_BLSCFG=false') };
    // RHEL 9: the EFI grub.cfg is a stub that loads /boot/grub2/grub.cfg.
    assert.equal(chooseBootTool(noBls).cfgPath, '/boot/grub2/grub.cfg');
    const fullEfi = { ...noBls, efiConfigs: [{ path: '/boot/efi/EFI/redhat/grub.cfg', stub: false }] };
    assert.equal(chooseBootTool(fullEfi).command, 'grub2-mkconfig -o /boot/efi/EFI/redhat/grub.cfg');
    assert.equal(chooseBootTool({ ...noBls, efiConfigs: [], osId: 'rocky', osLike: ['rhel', 'centos', 'fedora'] }).cfgPath, '/boot/efi/EFI/rocky/grub.cfg');
    assert.equal(chooseBootTool({ ...noBls, efi: false, efiConfigs: [] }).cfgPath, '/boot/grub2/grub.cfg');
    assert.equal(chooseBootTool({ ...noBls, osId: 'opensuse-leap', osLike: ['suse', 'opensuse'] }).command, 'grub2-mkconfig -o /boot/grub2/grub.cfg');
    assert.equal(chooseBootTool({ ...noBls, osId: 'ubuntu', osLike: ['debian'], tools: ['update-grub'] }).kind, 'update-grub');
    assert.equal(chooseBootTool({ ...noBls, tools: [] }).kind, 'none');
  });

  it('rules warn on an OS family without a known tool', () => {
    assert.deepEqual(kernelCmdline.rules!(params(['a']), facts()), []);
    assert.match(kernelCmdline.rules!(params(['a']), facts({ osId: 'alpine', osLike: [] }))[0]!.message, /no known boot loader tool for OS 'alpine'/);
  });
});

describe('kernel_cmdline parameters', () => {
  const validate = compile(kernelCmdline.schema);

  it('normalises args, tokens and absent into exactly { tokens, absent }', () => {
    const normal = kernelCmdline.normalize!({ args: { transparent_hugepage: 'never', nosmt: true, hugepages: 16, quiet: false, splash: null }, tokens: ['hugepagesz=1G', 'hugepagesz=2M'], absent: ['elevator'] });
    assert.deepEqual(normal, { tokens: ['transparent_hugepage=never', 'nosmt', 'hugepages=16', 'hugepagesz=1G', 'hugepagesz=2M'], absent: ['quiet', 'splash', 'elevator'] });
    assert.deepEqual(Object.keys(normal), ['tokens', 'absent']);
    assert.throws(() => kernelCmdline.normalize!({ args: { a: 1 }, tokens: ['a=2'] }), /both in args and in tokens/);
    assert.throws(() => kernelCmdline.normalize!({ tokens: ['a=2'], absent: ['a'] }), /both present and absent/);
  });

  it('accepts ordinary kernel arguments', () => {
    for (const input of [
      { args: { 'intel_iommu': 'on,sm_on', 'crashkernel': '1G-4G:192M,4G-64G:256M', 'rd.lvm.lv': 'rhel/root', isolcpus: 'managed_irq,2-7' } },
      { tokens: ['hugepagesz=1G', 'hugepages=4', 'nosmt', 'root=UUID=2f9e3c1a-5b1d'] },
      { absent: ['quiet'] },
    ]) assert.ok(validate(input), JSON.stringify(validate.errors));
  });

  it('rejects hostile or unescapable values', () => {
    for (const bad of ['; rm -rf /', '$(reboot)', '`reboot`', 'a\nb', 'a"b', "a'b", 'a b', 'a\\b', '~root']) {
      assert.equal(validate({ args: { x: bad } }), false, `args value ${JSON.stringify(bad)}`);
      assert.equal(validate({ tokens: [`x=${bad}`] }), false, `token ${JSON.stringify(bad)}`);
    }
    for (const bad of ['--', '-x', 'a b', 'a;b', '$(x)', '', 'a\n']) {
      assert.equal(validate({ absent: [bad] }), false, `absent ${JSON.stringify(bad)}`);
      assert.equal(validate({ args: { [bad]: true } }), false, `name ${JSON.stringify(bad)}`);
    }
    assert.equal(validate({}), false);
    assert.equal(validate({ args: { a: 1.5 } }), false);
    assert.equal(validate({ other: 1 }), false);
  });
});

describe('kernel_cmdline on this machine', () => {
  function sh(script: string) {
    return spawnSync('/bin/sh', ['-c', script], { encoding: 'utf8' });
  }

  it('runs the real probe read-only and parses it', () => {
    const p = params(['transparent_hugepage=never']);
    const result = sh(`(\n${kernelCmdline.probe(p)}\n) </dev/null`);
    assert.equal(result.status, 0, result.stderr);
    const state = kernelCmdline.parse(result.stdout, p);
    assert.ok(state.kernel.length > 0);
    assert.ok(!state.running.includes('--'));
    assert.equal(state.grub, fs.existsSync(GRUB_DEFAULT) ? fs.readFileSync(GRUB_DEFAULT, 'utf8') : null);
  });

  it('writes the edited grub file atomically through the remote library, guarded by the planned content', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvmconf-kc-'));
    const backups = path.join(dir, 'backups');
    const lib = REMOTE_LIB.split(BACKUP_DIR).join(backups);
    const file = path.join(dir, 'grub');
    fs.writeFileSync(file, STOCK);
    const state = { ...parse('debian12-stock-grub.probe') };
    const p = params(['transparent_hugepage=never', 'hugepagesz=1G', 'hugepages=4']);
    const change = run(p, state).changes.find((c: Change) => c.target === GRUB_DEFAULT)!;
    const commands = grubFileCommands(file, change.diff!.after, STOCK, null);
    const result = sh(`${lib}\n( set -e\n${commands.join('\n')}\n) </dev/null 2>&1`);
    assert.equal(result.status, 0, result.stdout);
    assert.equal(fs.readFileSync(file, 'utf8'), change.diff!.after);
    assert.equal(fs.readdirSync(path.join(backups, dir)).length, 1, 'a backup of the old file is kept');
    // Re-planned from the written file: nothing left to persist.
    assert.deepEqual(run(p, { ...state, grub: fs.readFileSync(file, 'utf8') }).changes.map((c) => c.scope), ['pending', 'pending', 'pending']);
    // A file changed since gather is not overwritten.
    const stale = sh(`${lib}\n( set -e\n${grubFileCommands(file, STOCK, STOCK, null).join('\n')}\n) </dev/null 2>&1`);
    assert.notEqual(stale.status, 0);
    assert.match(stale.stdout, /changed since it was read/);
    assert.equal(fs.readFileSync(file, 'utf8'), change.diff!.after);
    // The shell that sources the file (grub-mkconfig does) sees the tokens.
    const sourced = sh(`. ${file}; printf '%s' "$GRUB_CMDLINE_LINUX"`);
    assert.equal(sourced.stdout, 'transparent_hugepage=never hugepagesz=1G hugepages=4');
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
