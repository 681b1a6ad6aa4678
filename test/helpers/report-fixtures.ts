/** Hand-built run reports the reporters' tests share: check and apply runs with every status. */
import { REPORT_VERSION, emptySummary } from '../../src/engine/results.js';
import type { ChangeResult, HostReport, RunReport, TaskReport } from '../../src/engine/results.js';
import { hostSummary } from '../../src/engine/host-run.js';
import type { PreparedTask } from '../../src/engine/prepare.js';
import type { HugepagePoolSummary, Module } from '../../src/kit/module.js';
import { hugepages } from '../../modules/hugepages/index.js';
import { fixture } from './paths.js';
import { normalize } from './plan.js';

export function change(fields: Partial<ChangeResult> & Pick<ChangeResult, 'module' | 'target'>): ChangeResult {
  return { scope: 'runtime', before: null, after: null, status: 'planned', ...fields };
}

export function task(name: string, module: string, changes: ChangeResult[] = [], extra: Partial<TaskReport> = {}): TaskReport {
  return { name, module, tags: [], changes, diagnostics: [], ...extra };
}

export function host(name: string, status: HostReport['status'], tasks: TaskReport[], extra: Partial<HostReport> = {}): HostReport {
  return { host: name, play: 'tune', status, tasks, execCount: 1, durationMs: 2100, ...extra };
}

export function report(mode: RunReport['mode'], hosts: HostReport[], extra: Partial<RunReport> = {}): RunReport {
  const summary = emptySummary();
  for (const entry of hosts) summary[entry.status]++;
  return {
    version: REPORT_VERSION,
    tool: 'kvmconf',
    toolVersion: '0.1.0',
    mode,
    playbook: 'playbooks/virtual-host.yaml',
    startedAt: '2024-05-01T12:00:00.000Z',
    durationMs: 4200,
    interrupted: false,
    hosts,
    summary,
    exitCode: 2,
    ...extra,
  };
}

export const GRUB_BEFORE = 'GRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX="quiet"\nGRUB_DISABLE_RECOVERY=true\n';
export const GRUB_AFTER = 'GRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX="quiet transparent_hugepage=never"\nGRUB_DISABLE_RECOVERY=true\n';

export const swappiness = change({ module: 'sysctl', target: 'vm.swappiness', before: '60', after: '10' });
export const grub = change({
  module: 'kernel_cmdline',
  target: '/etc/default/grub:GRUB_CMDLINE_LINUX',
  scope: 'persist',
  before: 'quiet',
  after: 'quiet transparent_hugepage=never',
  diff: { before: GRUB_BEFORE, after: GRUB_AFTER, beforeHeader: '/etc/default/grub (current)', afterHeader: '/etc/default/grub (desired)' },
});
export const thpPending = change({
  module: 'kernel_cmdline',
  target: 'transparent_hugepage',
  scope: 'pending',
  pendingOn: 'reboot',
  status: 'pending',
  before: null,
  after: 'never',
  reason: 'the kernel reads its command line at boot',
});

/** Check mode: drift on hv1, pending-only hv2, unreachable hv3, hv4 skipped in a second play. */
export function checkReport(): RunReport {
  return report('check', [
    host('hv1', 'changed', [
      task('swappiness', 'sysctl', [swappiness]),
      task('thp', 'kernel_cmdline', [grub, thpPending], {
        diagnostics: [{ severity: 'warning', message: 'GRUB_CMDLINE_LINUX_DEFAULT also sets quiet' }],
      }),
      task('dirty ratio', 'sysctl'),
    ]),
    host('hv2', 'pending', [task('swappiness', 'sysctl'), task('thp', 'kernel_cmdline', [thpPending])]),
    host('hv3', 'unreachable', [task('swappiness', 'sysctl'), task('thp', 'kernel_cmdline')], {
      error: 'ssh: connect to host hv3 port 22: Connection refused',
      execCount: 0,
      durationMs: 5000,
    }),
    host('hv4', 'skipped', [task('guests', 'libvirt_guest')], { play: 'guests', execCount: 0, durationMs: 0 }),
  ]);
}

export const stepOutput = Array.from({ length: 25 }, (_, i) => `line ${i + 1}`).join('\n') + '\n';

/** Apply mode: the hugepages step fails, the kernel_cmdline change after it is not run. */
export function applyReport(): RunReport {
  return report(
    'apply',
    [
      host(
        'hv1',
        'failed',
        [
          task('swappiness', 'sysctl', [{ ...swappiness, status: 'applied' }]),
          task(
            'hugepages',
            'sysctl',
            [change({ module: 'sysctl', target: 'vm.nr_hugepages', before: '0', after: '1024', status: 'failed' })],
            { error: 'step "sysctl vm.nr_hugepages" failed (exit 1)' },
          ),
          task('thp', 'kernel_cmdline', [{ ...grub, status: 'not-run' }]),
        ],
        {
          error: 'apply stopped at step 2 of 3',
          execCount: 2,
          steps: [
            { index: 0, label: 'sysctl vm.swappiness', status: 'ok', exitCode: 0, output: '' },
            { index: 1, label: 'sysctl vm.nr_hugepages', status: 'failed', exitCode: 1, output: stepOutput },
            { index: 2, label: 'kernel_cmdline /etc/default/grub', status: 'not-run', output: '' },
          ],
        },
      ),
    ],
    { durationMs: 65_000, exitCode: 1 },
  );
}


/**
 * What the synthetic fleet's host number i has: every tenth host is in desired state for
 * thp; every reachable host has 1G pools on two nodes and a global 2M pool, one host in a
 * hundred granted only 5 of the 8 1G pages asked on node 1.
 */
export function fleetShape(i: number): { unreachable: boolean; failed: boolean; thpDrift: boolean; pendingReboot: boolean; hugepagesShort: boolean } {
  const unreachable = i % 100 === 7;
  return {
    unreachable,
    failed: !unreachable && i % 100 === 13,
    thpDrift: !unreachable && i % 10 !== 0,
    pendingReboot: !unreachable && i % 4 === 0,
    hugepagesShort: !unreachable && i % 100 === 42,
  };
}

/** The pools of the fleet's host number i (see fleetShape). */
export function fleetPools(i: number): HugepagePoolSummary[] {
  const short = fleetShape(i).hugepagesShort;
  return [
    { node: 0, sizeKiB: 1048576, requested: 8, granted: 8, free: 2 },
    { node: 1, sizeKiB: 1048576, requested: 8, granted: short ? 5 : 8, free: short ? 0 : 3 },
    { node: null, sizeKiB: 2048, requested: 1024, granted: 1024, free: 1000 },
  ];
}

export const FLEET_GROUPS = ['rack-a', 'rack-b', 'rack-c', 'rack-d'];

export const fleetHostName = (i: number): string => `hv${String(i).padStart(4, '0')}`;

/** A check run over `count` hosts in four racks: thp drift on most, reboots pending, a few failed and unreachable. */
export function fleetReport(count: number): RunReport {
  const hosts = Array.from({ length: count }, (_, i) => {
    const shape = fleetShape(i);
    const groups = [FLEET_GROUPS[i % FLEET_GROUPS.length]!];
    if (shape.unreachable) return host(fleetHostName(i), 'unreachable', [], { groups, error: `ssh: connect to host ${fleetHostName(i)} port 22: No route to host` });
    const thp = task('thp', 'thp', shape.thpDrift ? [change({ module: 'thp', target: 'enabled', before: 'madvise', after: 'never' })] : []);
    const hugepages = task('hugepages', 'hugepages', [], shape.failed ? { error: 'probe failed: /sys/kernel/mm/hugepages unreadable' } : {});
    const cmdline = task('kernel command line', 'kernel_cmdline', shape.pendingReboot ? [{ ...thpPending }] : []);
    const status = shape.failed ? 'failed' : shape.thpDrift ? 'changed' : shape.pendingReboot ? 'pending' : 'ok';
    return host(fleetHostName(i), status, [task('swappiness', 'sysctl'), thp, hugepages, cmdline], { groups, distribution: 'debian 12', kernel: '6.1.0-18-amd64', bootId: `boot-${i}`, hugepages: fleetPools(i) });
  });
  return report('check', hosts);
}

/** A hugepages task as the engine plans it: the module's params and its state parsed from a probe fixture. */
function plannedHugepages(raw: unknown, fixtureName: string): { task: PreparedTask; actual: unknown } {
  const params = normalize(hugepages, raw);
  const task = { name: 'hugepages', module: hugepages as Module, params, tags: [], where: undefined } as unknown as PreparedTask;
  return { task, actual: hugepages.parse(fixture('hugepages', fixtureName), params) };
}

/**
 * Three hosts whose pools the engine sums up from the hugepages module's probe fixtures:
 * hv-short got 1 of 4 1G pages on node0 and 0 of 2 on node1, hv-nodes every 2M page per
 * node, hv-debian (recorded on Debian 12) its 8 default-size pages and one 1G page.
 */
export function hugepagesReport(mode: RunReport['mode'] = 'apply'): RunReport {
  const hosts: Array<[string, Array<[unknown, string]>]> = [
    ['hv-nodes', [[{ pools: [{ size: '2M', count: 512, node: 0 }, { size: '2M', count: 512, node: 1 }] }, 'two-nodes-per-node-2M-pools.txt']]],
    ['hv-short', [[{ pools: [{ size: '1G', count: 4, node: 0 }, { size: '1G', count: 2, node: 1 }] }, 'two-nodes-1G-runtime-grant-short.txt']]],
    ['hv-debian', [[{ nr_hugepages: 8 }, 'debian12-one-node-pools-in-use-and-mounts.txt'], [{ pools: [{ size: '1G', count: 1 }] }, 'debian12-one-node-pools-in-use-and-mounts.txt']]],
  ];
  return report(
    mode,
    hosts.map(([name, tasks]) => {
      const summary = hostSummary({ tasks: tasks.map(([raw, file]) => plannedHugepages(raw, file)) });
      return host(name, name === 'hv-short' ? 'failed' : 'ok', tasks.map(() => task('hugepages', 'hugepages')), { ...summary, groups: ['hypervisors'] });
    }),
  );
}
