import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ownedFiles, kernelArgsOf } from '../../src/kit/claims.js';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  FSTAB, HUGEPAGES_SYSCTL_FILE, HUGEPAGES_TMPFILES, formatSize, fstabCommands, hugepages, parseSize, poolCommands, type HugepagesParams,
} from './index.js';
import { editFstab } from './fstab.js';
import { parseFacts, FACTS_PROBE } from '../../src/engine/facts.js';
import { BACKUP_DIR, contentSha } from '../../src/kit/remote-lib.js';
import { buildApplyScript, buildGatherScript, newMark, parseApplyOutput, splitSections } from '../../src/engine/script.js';
import { fixture } from '../../test/helpers/paths.js';
import { TWO_NODE_FACTS, normalize, plan, schemaAccepts } from '../../test/helpers/plan.js';

const ONE_NODE = parseFacts(fixture('hugepages', 'facts-debian12-one-node.txt'));
const PRISTINE = fixture('hugepages', 'debian12-one-node-no-pools.txt');
const IN_USE = fixture('hugepages', 'debian12-one-node-pools-in-use-and-mounts.txt');
const TWO_NODES = fixture('hugepages', 'two-nodes-per-node-2M-pools.txt');
const SHORT_GRANT = fixture('hugepages', 'two-nodes-1G-runtime-grant-short.txt');
/** A two-node host with room for 1G pools (the shared TWO_NODE_FACTS have 750 MiB per node). */
const BIG_TWO_NODES = parseFacts(
  'os_id=rocky\nos_version=9.4\nos_like=rhel centos fedora\nkernel=5.14.0-427.el9.x86_64\narch=x86_64\nuid=0\nsystemd=1\ncpus_online=0-3\n' +
    'cpu_flags=fpu pse pdpe1gb vmx\nnode 0 0-1 33554432 30000000\nnode 1 2-3 33554432 31000000\nhugepage_sizes=1048576 2048\nmem_total=67108864\n',
);

function rules(raw: unknown, facts = BIG_TWO_NODES): string[] {
  return (hugepages.rules!(normalize(hugepages, raw), facts)).map((d) => `${d.severity}: ${d.message}`);
}

/** Runs commands as the engine does (one `set -e` step each, REMOTE_LIB loaded) and returns each step's outcome. */
function applySteps(steps: string[][]) {
  const mark = newMark();
  const labelled = steps.map((commands, index) => ({ label: `step ${index}`, commands }));
  const result = spawnSync('/bin/sh', ['-s'], { input: buildApplyScript(labelled, mark), encoding: 'utf8' });
  return parseApplyOutput(result.stdout, mark, labelled).outcomes;
}

/** Runs the module's probe as the gather round trip does and returns its output. */
function probeHere(params: HugepagesParams): string {
  const mark = newMark();
  const script = buildGatherScript([{ id: 'facts', script: FACTS_PROBE }, { id: 'hp', script: hugepages.probe(params) }], mark);
  return splitSections(spawnSync('/bin/sh', ['-s'], { input: script, encoding: 'utf8' }).stdout, mark).get('hp')!.output;
}

test('sizes: every accepted spelling normalises, and formats as the kernel command line writes it', () => {
  assert.deepEqual(['2M', '2048kB', '1G', '1048576kB', '1024M', '64K'].map(parseSize), [2048, 2048, 1048576, 1048576, 1048576, 64]);
  assert.deepEqual([2048, 1048576, 64, 16777216].map(formatSize), ['2M', '1G', '64K', '16G']);
  const a = normalize(hugepages, { pools: [{ size: '2048kB', count: 4 }, { size: '1048576kB', count: 1 }] });
  const b = normalize(hugepages, { pools: [{ size: '2M', count: 4 }, { size: '1G', count: 1 }] });
  assert.deepEqual(a, b);
});

test('parse: real probe output of this Debian 12 host (one node, no pools, no mounts)', () => {
  const params = normalize(hugepages, { mounts: [{ path: '/dev/hugepages1G', size: '1G' }] });
  const actual = hugepages.parse(PRISTINE, params);
  assert.equal(actual.defaultSizeKiB, 2048);
  assert.deepEqual(actual.global, { 2048: { nr: 0, free: 0, surplus: 0, resv: 0 }, 1048576: { nr: 0, free: 0, surplus: 0, resv: 0 } });
  assert.deepEqual(Object.keys(actual.nodes), ['0']);
  assert.deepEqual(actual.mounts, []);
  assert.equal(actual.sysctl.runtime['vm.nr_hugepages'], '0');
  assert.equal(actual.sysctl.file, null);
  assert.equal(actual.tmpfiles, null);
  assert.equal(actual.fstab, '# UNCONFIGURED FSTAB FOR BASE SYSTEM\n');
});

test('parse: real output with pages in use and mounts (the kernel prints a 1G pagesize as 1024M)', () => {
  const actual = hugepages.parse(IN_USE, normalize(hugepages, { nr_hugepages: 8 }));
  assert.deepEqual(actual.global[2048], { nr: 8, free: 5, surplus: 0, resv: 0 });
  assert.deepEqual(actual.nodes[0]![1048576], { nr: 1, free: 1, surplus: 0, resv: null });
  assert.deepEqual(actual.meminfo, { HugePages_Total: 8, HugePages_Free: 5, HugePages_Rsvd: 0, HugePages_Surp: 0 });
  assert.deepEqual(actual.mounts.map((m) => `${m.path} ${m.options}`), ['/dev/hugepages rw,relatime,pagesize=2M', '/dev/hugepages1G rw,relatime,pagesize=1024M']);
});

test('no-op: the state already there plans nothing (1024M mount is 1G, persisted files in place)', () => {
  const raw = { pools: [{ size: '2M', count: 8, persist: 'none' }, { size: '1G', count: 1, persist: 'none' }], mounts: [{ path: '/dev/hugepages1G', size: '1G', persist: false }] };
  assert.deepEqual(plan(hugepages, raw, IN_USE, ONE_NODE).changes, []);
  const twoNodes = { pools: [{ size: '2M', count: 512, node: 0 }, { size: '2M', count: 512, node: 1 }] };
  assert.deepEqual(plan(hugepages, twoNodes, TWO_NODES, BIG_TWO_NODES).changes, []);
});

test('nr_hugepages: runtime change with read-back, and the owned sysctl.d file', () => {
  const { changes, commands } = plan(hugepages, { nr_hugepages: 16 }, PRISTINE, ONE_NODE);
  assert.deepEqual(changes.map((c) => [c.target, c.scope, c.before, c.after]), [
    ['/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages', 'runtime', '0', '16'],
    [HUGEPAGES_SYSCTL_FILE, 'persist', null, 'vm.nr_hugepages = 16'],
  ]);
  assert.deepEqual(commands(changes[0]!), [
    'kc_write_value /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages 16',
    'kc_got=$(( $(cat /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages) - $(cat /sys/kernel/mm/hugepages/hugepages-2048kB/surplus_hugepages) ))',
    `[ "$kc_got" -eq 16 ] || { kc_write_value /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages 0; kc_fail '2M pool: asked 16, granted' "$kc_got"' (not enough free contiguous memory; free some or allocate at boot); the pool was set back to 0'; }`,
  ]);
  assert.equal(changes[1]!.diff!.after, '# Managed by kvmconf (hugepages); edits here are overwritten.\nvm.nr_hugepages = 16\n');
  assert.deepEqual(commands(changes[1]!), [`kc_write_file ${HUGEPAGES_SYSCTL_FILE} 0644 absent '# Managed by kvmconf (hugepages); edits here are overwritten.\nvm.nr_hugepages = 16\n'`]);
  assert.deepEqual(ownedFiles(hugepages.claims!(normalize(hugepages, { nr_hugepages: 16 }))), [HUGEPAGES_SYSCTL_FILE, HUGEPAGES_TMPFILES]);
});

test('persist only: the live pool is right, only the file is missing; persist: false plans nothing', () => {
  const { changes } = plan(hugepages, { nr_hugepages: 8 }, IN_USE, ONE_NODE);
  assert.deepEqual(changes.map((c) => [c.target, c.scope]), [[HUGEPAGES_SYSCTL_FILE, 'persist']]);
  assert.deepEqual(plan(hugepages, { nr_hugepages: 8, persist: false }, IN_USE, ONE_NODE).changes, []);
  assert.deepEqual(kernelArgsOf(hugepages.claims!(normalize(hugepages, { nr_hugepages: 8 }))), { tokens: [] });
});

test('shrinking a pool below the pages in use fails with the numbers; shrinking to what is free is planned first', () => {
  assert.throws(() => plan(hugepages, { nr_hugepages: 2, persist: false }, IN_USE, ONE_NODE), /2M pool \(nr_hugepages\): cannot shrink to 2: 3 of its 8 pages are in use \(5 free\)/);
  const { changes, commands } = plan(hugepages, { pools: [{ size: '1G', count: 2, persist: 'none' }, { size: '2M', count: 3, persist: 'none' }] }, IN_USE, ONE_NODE);
  assert.deepEqual(changes.map((c) => [c.target, c.before, c.after]), [
    ['/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages', '8', '3'],
    ['/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages', '1', '2'],
  ]);
  assert.match(commands(changes[0]!)[2]!, /asked 3, granted' "\$kc_got"' \(pages still in use cannot be freed\)'; }$/);
  assert.match(changes[1]!.reason!, /1G pages need that much contiguous free memory each/);
});

test('cmdline: 1G and 2M pools pair hugepagesz/hugepages in the order given, after default_hugepagesz', () => {
  const raw = { default_size: '1G', pools: [{ size: '1G', count: 4 }, { size: '2M', count: 1024, persist: 'cmdline' }] };
  assert.equal(kernelArgsOf(hugepages.claims!(normalize(hugepages, raw))).tokens.join(' '), 'default_hugepagesz=1G hugepagesz=1G hugepages=4 hugepagesz=2M hugepages=1024');
  const reversed = { pools: [{ size: '2M', count: 1024, persist: 'cmdline' }, { size: '1G', count: 4 }] };
  assert.equal(kernelArgsOf(hugepages.claims!(normalize(hugepages, reversed))).tokens.join(' '), 'hugepagesz=2M hugepages=1024 hugepagesz=1G hugepages=4');
  // nr_hugepages without a known default size: a bare hugepages= before any hugepagesz= counts default-size pages.
  const bare = { nr_hugepages: 512, persist: 'cmdline', pools: [{ size: '1G', count: 2 }] };
  assert.equal(kernelArgsOf(hugepages.claims!(normalize(hugepages, bare))).tokens.join(' '), 'hugepages=512 hugepagesz=1G hugepages=2');
  // Per-node pools never go on the command line.
  assert.deepEqual(kernelArgsOf(hugepages.claims!(normalize(hugepages, { pools: [{ size: '1G', count: 2, node: 1 }] }))).tokens, []);
});

test('persist defaults: 1G global -> cmdline, 2M global -> sysctl (tmpfiles when 1G is the default), per node -> tmpfiles', () => {
  const persist = (raw: unknown) => normalize(hugepages, raw).pools.map((p) => p.persist);
  assert.deepEqual(persist({ pools: [{ size: '1G', count: 4 }, { size: '2M', count: 8 }, { size: '2M', count: 8, node: 1 }] }), ['cmdline', 'sysctl', 'tmpfiles']);
  assert.deepEqual(persist({ default_size: '1G', pools: [{ size: '2M', count: 8 }] }), ['tmpfiles']);
  assert.deepEqual(persist({ nr_hugepages: 8, persist: 'cmdline' }), ['cmdline']);
  assert.deepEqual(persist({ persist: false, pools: [{ size: '1G', count: 4 }, { size: '1G', count: 1, node: 0, persist: 'tmpfiles' }] }), ['none', 'tmpfiles']);
});

test('default_size differing from the running Hugepagesize is pending a reboot; nr_hugepages then counts pages of the new size', () => {
  const { changes, commands } = plan(hugepages, { default_size: '1G', nr_hugepages: 2, persist: 'cmdline' }, PRISTINE, ONE_NODE);
  assert.deepEqual(changes.map((c) => [c.target, c.scope, c.before, c.after, c.pendingOn]), [
    ['default_hugepagesz', 'pending', '2M', '1G', 'reboot'],
    ['/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages', 'runtime', '0', '2', undefined],
  ]);
  assert.match(changes[0]!.reason!, /default_hugepagesz=1G goes on the kernel command line/);
  assert.equal(kernelArgsOf(hugepages.claims!(normalize(hugepages, { default_size: '1G', nr_hugepages: 2, persist: 'cmdline' }))).tokens.join(' '), 'default_hugepagesz=1G hugepagesz=1G hugepages=2');
  assert.equal(changes.filter((c) => c.scope === 'pending').flatMap((c) => commands(c)).length, 0);
  assert.deepEqual(plan(hugepages, { default_size: '2M' }, PRISTINE, ONE_NODE).changes, []);
});

test('runtime: false leaves the live pool alone and reports it pending; the cmdline still carries it', () => {
  const raw = { pools: [{ size: '1G', count: 4, runtime: false }] };
  const { changes } = plan(hugepages, raw, SHORT_GRANT, BIG_TWO_NODES);
  assert.deepEqual(changes.map((c) => [c.target, c.scope, c.before, c.after, c.pendingOn]), [
    ['/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages', 'pending', '1', '4', 'reboot'],
  ]);
  assert.match(changes[0]!.reason!, /allocated at the next boot by the kernel command line/);
  assert.deepEqual(rules({ pools: [{ size: '1G', count: 4, runtime: false, persist: 'none' }] }), ['error: 1G pool: runtime: false with persist: none would never set it']);
});

test('a 1G pool the kernel granted only partly is planned again (two-node variant)', () => {
  const { changes } = plan(hugepages, { pools: [{ size: '1G', count: 4 }] }, SHORT_GRANT, BIG_TWO_NODES);
  assert.deepEqual(changes.map((c) => [c.target, c.scope, c.before, c.after]), [['/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages', 'runtime', '1', '4']]);
});

test('per-node pools (two-node variant): node paths, read-back commands and the owned tmpfiles.d file', () => {
  const raw = { pools: [{ size: '1G', count: 2, node: 1 }, { size: '2M', count: 512, node: 0 }, { size: '2M', count: 256, node: 1 }] };
  const { changes, commands } = plan(hugepages, raw, TWO_NODES, BIG_TWO_NODES);
  assert.deepEqual(changes.map((c) => [c.target, c.scope, c.before, c.after]), [
    ['/sys/devices/system/node/node1/hugepages/hugepages-2048kB/nr_hugepages', 'runtime', '512', '256'],
    ['/sys/devices/system/node/node1/hugepages/hugepages-1048576kB/nr_hugepages', 'runtime', '0', '2'],
    [HUGEPAGES_TMPFILES, 'persist', 'node0/2M=512; node1/2M=512', 'node1/1G=2; node0/2M=512; node1/2M=256'],
  ]);
  assert.deepEqual(commands(changes[1]!), [
    'kc_write_value /sys/devices/system/node/node1/hugepages/hugepages-1048576kB/nr_hugepages 2',
    'kc_got=$(( $(cat /sys/devices/system/node/node1/hugepages/hugepages-1048576kB/nr_hugepages) - $(cat /sys/devices/system/node/node1/hugepages/hugepages-1048576kB/surplus_hugepages) ))',
    `[ "$kc_got" -eq 2 ] || { kc_write_value /sys/devices/system/node/node1/hugepages/hugepages-1048576kB/nr_hugepages 0; kc_fail '1G pool on node1: asked 2, granted' "$kc_got"' (free memory is too fragmented for 1G pages at run time; allocate them at boot: runtime: false with persist: tmpfiles, then reboot); the pool was set back to 0'; }`,
  ]);
  assert.equal(
    changes[2]!.diff!.after,
    '# Managed by kvmconf (hugepages); written to sysfs at every boot by systemd-tmpfiles.\n' +
      'w /sys/devices/system/node/node1/hugepages/hugepages-1048576kB/nr_hugepages - - - - 2\n' +
      'w /sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages - - - - 512\n' +
      'w /sys/devices/system/node/node1/hugepages/hugepages-2048kB/nr_hugepages - - - - 256\n',
  );
  assert.match(commands(changes[2]!)[0]!, /^kc_write_file \/etc\/tmpfiles.d\/kvmconf-hugepages.conf 0644 [0-9a-f]{64} /);
  // Dropping every pool that used tmpfiles removes the owned file; the sysctl file does not exist, so nothing else.
  const removal = plan(hugepages, { pools: [{ size: '2M', count: 1024 }] }, TWO_NODES, BIG_TWO_NODES);
  assert.deepEqual(removal.changes.map((c) => [c.target, c.before, c.after]), [
    [HUGEPAGES_SYSCTL_FILE, null, 'vm.nr_hugepages = 1024'],
    [HUGEPAGES_TMPFILES, 'node0/2M=512; node1/2M=512', null],
  ]);
  assert.match(removal.commands(removal.changes[1]!)[0]!, /^kc_remove_file \/etc\/tmpfiles.d\/kvmconf-hugepages.conf [0-9a-f]{64}$/);
});

test('rules: 1G without pdpe1gb, sizes the kernel lacks, missing nodes, contradictions, memory', () => {
  const noPdpe = { ...BIG_TWO_NODES, cpuFlags: ['fpu', 'vmx'], hugepageSizesKiB: [2048] };
  assert.deepEqual(rules({ pools: [{ size: '1G', count: 1 }] }, noPdpe), ['error: 1G pool: 1G pages need the pdpe1gb CPU flag, which this CPU does not have']);
  assert.deepEqual(rules({ mounts: [{ path: '/dev/hugepages64K', size: '64K' }] }), ['error: mount /dev/hugepages64K: 64K pages are not offered by this kernel (sizes: 2M, 1G)']);
  assert.deepEqual(rules({ pools: [{ size: '2M', count: 8, node: 2 }] }), ['error: 2M pool on node2: NUMA node 2 does not exist on this host (nodes: 0, 1)']);
  assert.deepEqual(rules({ pools: [{ size: '2M', count: 8, node: 0 }, { size: '2M', count: 16 }] }), [
    'error: 2M pool and 2M pool on node0: a global count spreads pages over every node and undoes per-node counts; give either one global count or per-node counts for 2M',
  ]);
  assert.deepEqual(rules({ pools: [{ size: '2M', count: 8, persist: 'none' }, { size: '2048kB', count: 16, persist: 'none' }] }), ['error: 2M pool is given twice (also as 2M pool)']);
  assert.deepEqual(rules({ nr_hugepages: 8, pools: [{ size: '2M', count: 16 }] }), [
    'error: default-size pool (nr_hugepages) and 2M pool both persist through vm.nr_hugepages; only one pool is the default-size pool',
  ]);
  assert.deepEqual(rules({ default_size: '1G', pools: [{ size: '2M', count: 16, persist: 'sysctl' }] }), [
    'error: 2M pool: persist: sysctl sets vm.nr_hugepages, which is the 1G (default-size) pool on this host; use persist: tmpfiles or cmdline for 2M pages',
  ]);
  assert.deepEqual(rules({ pools: [{ size: '1G', count: 40, node: 0 }] }), ['error: node0: its pools ask 40.0 GiB of hugepages but the node has 32.0 GiB of memory']);
  assert.deepEqual(rules({ mounts: [{ path: '/dev/hp', size: '2M' }, { path: '/dev/hp', size: '1G' }] }), ['error: mount /dev/hp is given twice']);
  assert.deepEqual(rules({ pools: [{ size: '1G', count: 2, node: 1 }], default_size: '1G' }, TWO_NODE_FACTS), [
    'error: node1: its pools ask 2.0 GiB of hugepages but the node has 0.7 GiB of memory',
    'error: the pools ask 2.0 GiB of hugepages but the host has 1.5 GiB of memory',
  ]);
  assert.deepEqual(rules({ nr_hugepages: 8 }, { ...ONE_NODE, hugepageSizesKiB: [] }), ['error: this kernel has no hugetlb support (no /sys/kernel/mm/hugepages)']);
  assert.deepEqual(rules({ pools: [{ size: '1G', count: 2 }], mounts: [{ path: '/dev/hugepages1G', size: '1G' }] }, ONE_NODE), []);
});

test('a default-size pool given twice is caught once the host tells the default size', () => {
  assert.deepEqual(rules({ nr_hugepages: 8, persist: 'cmdline', pools: [{ size: '2M', count: 8, persist: 'tmpfiles' }] }), []);
  assert.throws(() => plan(hugepages, { nr_hugepages: 8, persist: 'cmdline', pools: [{ size: '2M', count: 8, persist: 'tmpfiles' }] }, PRISTINE, ONE_NODE), /2M pool is given twice \(also as default-size pool \(nr_hugepages\)\)/);
});

test('mounts: live mount with the libvirtd note, and the fstab line added keeping every other byte', () => {
  const { changes, commands } = plan(hugepages, { mounts: [{ path: '/dev/hugepages1G', size: '1G' }] }, TWO_NODES, BIG_TWO_NODES);
  assert.deepEqual(changes.map((c) => [c.target, c.scope, c.before, c.after]), [
    ['/dev/hugepages1G', 'runtime', null, 'hugetlbfs pagesize=1G'],
    [FSTAB, 'persist', null, 'none /dev/hugepages1G hugetlbfs pagesize=1G 0 0'],
  ]);
  assert.match(changes[0]!.reason!, /libvirtd sees hugepage mounts only when it starts: restart it/);
  assert.deepEqual(commands(changes[0]!), [
    'mkdir -p /dev/hugepages1G',
    'mount -t hugetlbfs -o pagesize=1G none /dev/hugepages1G',
    `awk -v p=/dev/hugepages1G '$2 == p && $3 == "hugetlbfs" {found = 1} END {exit !found}' /proc/mounts || kc_fail '/dev/hugepages1G: no hugetlbfs mount there after mounting'`,
  ]);
  const before = changes[1]!.diff!.before;
  assert.equal(changes[1]!.diff!.after, before + 'none /dev/hugepages1G hugetlbfs pagesize=1G 0 0\n');
  assert.ok(before.includes('/swapfile\tnone\tswap\tsw\t0\t0\n'), 'tabs of other lines kept');
  assert.deepEqual(commands(changes[1]!), [
    `kc_write_file /etc/fstab 0644 ${contentSha(before)} '${changes[1]!.diff!.after}'`,
    'if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi',
  ]);
  // /dev/hugepages is already mounted with the default size: only fstab changes.
  const existing = plan(hugepages, { mounts: [{ path: '/dev/hugepages', size: '2M' }] }, TWO_NODES, BIG_TWO_NODES);
  assert.deepEqual(existing.changes.map((c) => [c.target, c.scope]), [[FSTAB, 'persist']]);
});

test('fstab: a right line with its own spacing and options stays; a wrong one is fixed in place; duplicates go', () => {
  const wanted = [{ spec: 'none', file: '/dev/hugepages1G', vfstype: 'hugetlbfs', options: { pagesize: '1G' } }];
  const same = (k: string, a: string, b: string) => (k === 'pagesize' ? parseSize(a) === parseSize(b) : a === b);
  const right = '# keep\nhugetlbfs   /dev/hugepages1G\thugetlbfs  mode=1770,pagesize=1024M,gid=36   0 0\n/dev/sdb1 /data xfs defaults 0 2\n';
  assert.equal(editFstab(right, wanted, same).content, right);
  const wrong = '# keep\nhugetlbfs /dev/hugepages1G hugetlbfs mode=1770,pagesize=2M 0 0\n/dev/sdb1 /data xfs defaults 0 2\nnone /dev/hugepages1G hugetlbfs pagesize=1G 0 0\n';
  const edit = editFstab(wrong, wanted, same);
  assert.equal(edit.content, '# keep\nhugetlbfs /dev/hugepages1G hugetlbfs pagesize=1G,mode=1770 0 0\n/dev/sdb1 /data xfs defaults 0 2\n');
  assert.deepEqual(edit.before, ['hugetlbfs /dev/hugepages1G hugetlbfs mode=1770,pagesize=2M 0 0', 'none /dev/hugepages1G hugetlbfs pagesize=1G 0 0']);
  // A file without a final newline gets one only when a line is appended; an absent file is created.
  assert.equal(editFstab('UUID=x / ext4 defaults 0 1', wanted, same).content, 'UUID=x / ext4 defaults 0 1\nnone /dev/hugepages1G hugetlbfs pagesize=1G 0 0\n');
  assert.equal(editFstab(null, wanted, same).content, 'none /dev/hugepages1G hugetlbfs pagesize=1G 0 0\n');
  const planned = plan(hugepages, { mounts: [{ path: '/dev/hugepages1G', size: '1G' }] }, SHORT_GRANT, BIG_TWO_NODES);
  assert.equal(planned.changes[1]!.diff!.after, 'UUID=0b5e2b6c-7d0e-4a43-a4f1-2c6a3b8f9d10 / ext4 errors=remount-ro 0 1\nnone /dev/hugepages1G hugetlbfs pagesize=1G 0 0\n');
});

test('a mount point already used with another page size or file system fails the task', () => {
  assert.throws(() => plan(hugepages, { mounts: [{ path: '/dev/hugepages', size: '1G' }] }, IN_USE, ONE_NODE), /mount \/dev\/hugepages: hugetlbfs is mounted there with pagesize=2M, not 1G; unmount it first/);
  const other = PRISTINE.replace('@@sysctl\n', 'mount /dev/hugepages1G tmpfs rw,nosuid\n@@sysctl\n');
  assert.throws(() => plan(hugepages, { mounts: [{ path: '/dev/hugepages1G', size: '1G' }] }, other, ONE_NODE), /a tmpfs file system is mounted there/);
});

test('schema: hostile and malformed values are rejected', () => {
  for (const path of ['/dev/x; rm -rf /', '/dev/$(reboot)', '/dev/`id`', "/dev/h'p", '/dev/h"p', '/dev/a\nb', 'relative', '/dev/../etc', '/', '/dev/hp/']) {
    assert.equal(schemaAccepts(hugepages, { mounts: [{ path, size: '1G' }] }), false, JSON.stringify(path));
  }
  for (const size of ['2M; reboot', '$(reboot)', '2 M', '0M', '2MB', '1G\n', "'1G'", '-2M']) {
    assert.equal(schemaAccepts(hugepages, { pools: [{ size, count: 1 }] }), false, JSON.stringify(size));
  }
  assert.equal(schemaAccepts(hugepages, { pools: [{ size: '1G', count: '4' }] }), false, 'count as string');
  assert.equal(schemaAccepts(hugepages, { pools: [{ size: '1G', count: -1 }] }), false);
  assert.equal(schemaAccepts(hugepages, { pools: [{ size: '1G', count: 1, node: -1 }] }), false);
  assert.equal(schemaAccepts(hugepages, { pools: [{ size: '1G', count: 1, node: 0, persist: 'cmdline' }] }), false, 'per-node pools cannot use cmdline');
  assert.equal(schemaAccepts(hugepages, { pools: [{ size: '1G', count: 1, node: 0, persist: 'sysctl' }] }), false);
  assert.equal(schemaAccepts(hugepages, { nr_hugepages: 4, persist: 'grub' }), false);
  assert.equal(schemaAccepts(hugepages, { nr_hugepages: 4, colour: 'red' }), false);
  assert.equal(schemaAccepts(hugepages, {}), false);
  assert.equal(schemaAccepts(hugepages, { pools: [{ size: '1G', count: 1, node: 0, persist: 'tmpfiles', runtime: false }], mounts: [{ path: '/dev/hugepages1G', size: '1048576kB' }] }), true);
});

// ---------------------------------------------------------------- the commands' shell logic

/**
 * A fake sysfs pool whose nr_hugepages is a FIFO served by a "kernel" that grants
 * `grant(asked)` pages: the command's write is read by the fake, and the command's
 * read-back gets the fake's answer, as with a real kernel that grants fewer pages.
 */
function fakePool(root: string, dir: string, grant: string) {
  const path = join(root, dir);
  mkdirSync(path, { recursive: true });
  writeFileSync(join(path, 'surplus_hugepages'), '0\n');
  spawnSync('mkfifo', [join(path, 'nr_hugepages')]);
  // after its answer the fake takes one more write (for 10 s): the set-back of a pool that could not grow
  const kernel = spawn('/bin/sh', ['-c', `asked=$(cat nr_hugepages); printf '%s\\n' $(( ${grant} )) > nr_hugepages; timeout 10 cat nr_hugepages > set-back`], { cwd: path, stdio: 'ignore' });
  return kernel;
}

/** The fake writes what it was given after the command moved on: polls until `read` returns `want` (2 s at most). */
async function settled(read: () => string, want: string): Promise<string> {
  let got = read();
  for (let i = 0; i < 40 && got !== want; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    got = read();
  }
  return got;
}

test('shell: a kernel that grants fewer pages than asked fails the step with both numbers (fake sysfs)', async () => {
  const root = mkdtempSync(join(tmpdir(), 'kvmconf-hp-'));
  try {
    const global = fakePool(root, 'sys/kernel/mm/hugepages/hugepages-1048576kB', 'asked / 4');
    let [outcome] = applySteps([poolCommands({ sizeKiB: 1048576, node: null, count: 4 }, 0, root)]);
    assert.equal(outcome!.status, 'failed');
    assert.match(outcome!.output, /kvmconf: 1G pool: asked 4, granted 1 \(free memory is too fragmented for 1G pages at run time; allocate them at boot: runtime: false with persist: cmdline, then reboot\); the pool was set back to 0/);
    assert.equal(await settled(() => readFileSync(join(root, 'sys/kernel/mm/hugepages/hugepages-1048576kB/set-back'), 'utf8'), '0\n'), '0\n', 'the granted pages are given back');
    global.kill();

    const node = fakePool(root, 'sys/devices/system/node/node1/hugepages/hugepages-2048kB', 'asked - 24');
    [outcome] = applySteps([poolCommands({ sizeKiB: 2048, node: 1, count: 1024 }, 0, root)]);
    assert.equal(outcome!.status, 'failed');
    assert.match(outcome!.output, /kvmconf: 2M pool on node1: asked 1024, granted 1000 \(not enough free contiguous memory on node1/);
    node.kill();

    const shrink = fakePool(root, 'sys/devices/system/node/node0/hugepages/hugepages-2048kB', '3');
    [outcome] = applySteps([poolCommands({ sizeKiB: 2048, node: 0, count: 2 }, 8, root)]);
    assert.equal(outcome!.status, 'failed');
    assert.match(outcome!.output, /2M pool on node0: asked 2, granted 3 \(pages still in use cannot be freed\)/);
    shrink.kill();

    const full = fakePool(root, 'sys/kernel/mm/hugepages/hugepages-2048kB', 'asked');
    [outcome] = applySteps([poolCommands({ sizeKiB: 2048, node: null, count: 16 }, 0, root)]);
    assert.equal(outcome!.status, 'ok', outcome!.output);
    full.kill();
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('shell: the fstab edit runs atomically on a temp copy, keeps other lines, and a second plan is a no-op', () => {
  const root = mkdtempSync(join(tmpdir(), 'kvmconf-fstab-'));
  try {
    const path = join(root, 'fstab');
    const original = '# /etc/fstab\nUUID=abc /  ext4  errors=remount-ro 0 1\n\n/swapfile\tnone\tswap\tsw\t0\t0\nhugetlbfs /dev/hugepages1G hugetlbfs pagesize=2M,mode=1770 0 0\n';
    writeFileSync(path, original);
    const params = normalize(hugepages, { mounts: [{ path: '/dev/hugepages1G', size: '1G' }, { path: '/dev/hugepages2M', size: '2M' }] });
    const [outcome] = applySteps([fstabCommands(params, original, path)]);
    assert.equal(outcome!.status, 'ok', outcome!.output);
    const written = readFileSync(path, 'utf8');
    assert.equal(written, '# /etc/fstab\nUUID=abc /  ext4  errors=remount-ro 0 1\n\n/swapfile\tnone\tswap\tsw\t0\t0\nhugetlbfs /dev/hugepages1G hugetlbfs pagesize=1G,mode=1770 0 0\nnone /dev/hugepages2M hugetlbfs pagesize=2M 0 0\n');
    assert.equal(editFstab(written, [
      { spec: 'none', file: '/dev/hugepages1G', vfstype: 'hugetlbfs', options: { pagesize: '1G' } },
      { spec: 'none', file: '/dev/hugepages2M', vfstype: 'hugetlbfs', options: { pagesize: '2M' } },
    ]).content, written, 'converged');
    // The sha guard refuses a file that changed since it was read.
    const [stale] = applySteps([fstabCommands(params, original, path)]);
    assert.equal(stale!.status, 'failed');
    assert.match(stale!.output, /changed since it was read/);
  } finally {
    rmSync(root, { recursive: true, force: true });
    rmSync(join(BACKUP_DIR, root), { recursive: true, force: true });
  }
});

const canTouchHost = process.getuid?.() === 0 && existsSync('/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages');

test('real host: probe, apply a small 2M pool and a hugetlbfs mount, re-probe converges, then restore', { skip: !canTouchHost && 'needs root and hugetlb' }, () => {
  const mountPoint = mkdtempSync(join(tmpdir(), 'kvmconf-hugetlbfs-'));
  const nrPath = '/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages';
  const original = readFileSync(nrPath, 'utf8').trim();
  const facts = parseFacts(spawnSync('/bin/sh', ['-c', FACTS_PROBE], { encoding: 'utf8' }).stdout);
  const raw = { pools: [{ size: '2M', count: Number(original) + 4, persist: 'none' }], mounts: [{ path: mountPoint, size: '2M', persist: false }] };
  try {
    const params = normalize(hugepages, raw);
    assert.deepEqual(hugepages.rules!(params, facts), []);
    const first = plan(hugepages, raw, probeHere(params), facts);
    assert.deepEqual(first.changes.map((c) => [c.target, c.scope]), [[nrPath, 'runtime'], [mountPoint, 'runtime']]);
    const outcomes = applySteps(first.changes.map((c) => first.commands(c)));
    assert.deepEqual(outcomes.map((o) => o.status), ['ok', 'ok'], outcomes.map((o) => o.output).join('\n'));
    assert.deepEqual(plan(hugepages, raw, probeHere(params), facts).changes, [], 'second run changes nothing');
  } finally {
    spawnSync('umount', [mountPoint]);
    rmSync(mountPoint, { recursive: true, force: true });
    writeFileSync(nrPath, `${original}\n`);
  }
  assert.equal(readFileSync(nrPath, 'utf8').trim(), original);
});

test('report summary: every managed pool, requested against the persistent count the kernel has, with its free pages', () => {
  const summary = (raw: unknown, output: string) => {
    const params = normalize(hugepages, raw);
    return hugepages.reportSummary!(params, hugepages.parse(output, params)).hugepages;
  };
  assert.deepEqual(summary({ pools: [{ size: '1G', count: 4, node: 0 }, { size: '1G', count: 2, node: 1 }] }, SHORT_GRANT), [
    { node: 0, sizeKiB: 1048576, requested: 4, granted: 1, free: 1 },
    { node: 1, sizeKiB: 1048576, requested: 2, granted: 0, free: 0 },
  ]);
  assert.deepEqual(summary({ pools: [{ size: '2M', count: 512, node: 0 }, { size: '2M', count: 600, node: 1 }] }, TWO_NODES), [
    { node: 0, sizeKiB: 2048, requested: 512, granted: 512, free: 488 },
    { node: 1, sizeKiB: 2048, requested: 600, granted: 512, free: 512 },
  ]);
  // nr_hugepages counts in the default size: 2M on the recorded host, or default_size when given.
  assert.deepEqual(summary({ nr_hugepages: 128 }, PRISTINE), [{ node: null, sizeKiB: 2048, requested: 128, granted: 0, free: 0 }]);
  assert.deepEqual(summary({ nr_hugepages: 2, default_size: '1G' }, SHORT_GRANT), [{ node: null, sizeKiB: 1048576, requested: 2, granted: 1, free: 1 }]);
  assert.deepEqual(summary({ mounts: [{ path: '/dev/hugepages1G', size: '1G' }] }, PRISTINE), [], 'mounts are no pools');
});

test('report summary: surplus pages are not granted pages, and a pool the kernel lacks is granted 0', () => {
  const output = SHORT_GRANT.replace('global 2048 0 0 0 0', 'global 2048 10 4 6 0');
  const params = normalize(hugepages, { pools: [{ size: '2M', count: 8 }, { size: '64K', count: 1 }] });
  assert.deepEqual(hugepages.reportSummary!(params, hugepages.parse(output, params)).hugepages, [
    { node: null, sizeKiB: 2048, requested: 8, granted: 4, free: 4 },
    { node: null, sizeKiB: 64, requested: 1, granted: 0 },
  ]);
});
