import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Command } from '../../src/kit/shell.js';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../../src/errors.js';
import { emptySummary, type HostReport, type RunReport } from '../../src/engine/results.js';
import { factsHash, fingerprintDiff, sha256, type Fingerprint } from '../../src/engine/fingerprint.js';
import { savedPlanRefusal, type Planned, type SavedHost } from '../../src/engine/host-run.js';
import {
  buildPlan, checkPlanInputs, checkPlanUsable, parseDuration, planDocument, playIndexes, readPlan, savedHosts, validatePlan, writePlan, type PlanFile,
} from '../../src/plan/plan-file.js';
import { renderPlanMarkdown, renderPlanText } from '../../src/plan/plan-render.js';
import { renderText } from '../../src/report/text.js';
import { TWO_NODE_FACTS } from '../helpers/plan.js';
import { ksm } from '../../modules/ksm/index.js';
import { hugepages } from '../../modules/hugepages/index.js';

const dir = mkdtempSync(join(tmpdir(), 'kvmconf-plan-unit-'));
const COMMAND = "kc_write_file /etc/sysctl.d/90-kvmconf.conf 0644 absent 'vm.swappiness = 10\n'";
const FINGERPRINT: Fingerprint = { facts: sha256('facts'), tasks: [sha256('probe')], files: { '/etc/sysctl.d/90-kvmconf.conf': 'absent' } };

function hostReport(name: string, play: string): HostReport {
  return {
    host: name, play, status: 'changed', execCount: 1, durationMs: 10, fingerprint: FINGERPRINT,
    tasks: [{
      name: 'swappiness', module: 'sysctl', tags: [], diagnostics: [],
      changes: [
        { module: 'sysctl', target: '/etc/sysctl.d/90-kvmconf.conf', scope: 'persist', before: null, after: 'vm.swappiness=10', status: 'planned', commands: [COMMAND] },
        { module: 'sysctl', target: 'x', scope: 'pending', pendingOn: 'reboot', before: 'a', after: 'b', status: 'pending' },
      ],
    }],
  };
}

function checkReport(hosts: HostReport[]): RunReport {
  return { version: 1, tool: 'kvmconf', toolVersion: '0.1.0', mode: 'check', playbook: 'p', startedAt: new Date().toISOString(), durationMs: 1, interrupted: false, hosts, summary: emptySummary(), exitCode: 2 };
}

function inputs(): { playbook: string; inventory: string } {
  const playbook = join(dir, `site-${Math.random()}.yaml`);
  writeFileSync(playbook, '- hosts: all\n  tasks: []\n');
  const inventory = join(dir, `inventory-${Math.random()}.yaml`);
  writeFileSync(inventory, 'all:\n  hosts:\n    hv1:\n');
  return { playbook, inventory };
}

function samplePlan(extraVars: Record<string, unknown> = {}): { plan: PlanFile; playbook: string } {
  const { playbook, inventory } = inputs();
  const report = checkReport([hostReport('hv1', 'tune'), hostReport('hv2', 'tune'), hostReport('hv1', 'guests')]);
  const plays = [{ name: 'tune' }, { name: 'guests' }];
  return { plan: buildPlan(report, plays, { toolVersion: '0.1.0', playbook, inventory: [inventory], limit: 'hv*', tags: ['memory'], extraVars }), playbook };
}

describe('plan file', () => {
  it('records inputs with their sha256, the selection, hosts by play, and passes its own schema', () => {
    const { plan, playbook } = samplePlan({ pages: 512 });
    assert.equal(plan.format, 'kvmconf-plan');
    assert.equal(plan.playbook.sha256, sha256(readFileSync(playbook, 'utf8')));
    assert.equal(plan.limit, 'hv*');
    assert.deepEqual(plan.tags, ['memory']);
    assert.deepEqual(plan.hosts.map((host) => [host.host, host.playIndex]), [['hv1', 0], ['hv2', 0], ['hv1', 1]]);
    assert.deepEqual(plan.hosts[0]!.tasks[0]!.changes[0]!.commands, [COMMAND]);
    assert.deepEqual(plan.hosts[0]!.fingerprint, FINGERPRINT);
    assert.equal(validatePlan(plan, 'p.json'), plan);
  });

  it('leaves out variables whose names suggest a secret, naming them', () => {
    const { plan } = samplePlan({ pages: 512, db_password: 'S3CRET-1', vault_key: 'S3CRET-2', api_token: 'S3CRET-3', ansible_become_pass: 'S3CRET-4', passthrough: 'kept' });
    assert.deepEqual(plan.extraVars, { pages: 512, passthrough: 'kept' });
    assert.deepEqual(plan.extraVarsOmitted.sort(), ['ansible_become_pass', 'api_token', 'db_password', 'vault_key']);
    assert.doesNotMatch(JSON.stringify(plan), /S3CRET/);
  });

  it('is written and read back unchanged, recognised by its content whatever its name', () => {
    const { plan, playbook } = samplePlan();
    const file = join(dir, 'reviewed.yaml');
    writePlan(file, plan);
    assert.deepEqual(readPlan(file), plan);
    assert.ok(planDocument(file));
    assert.equal(planDocument(playbook), undefined, 'a playbook is not a plan');
    assert.throws(() => readPlan(playbook), /is not a kvmconf plan/);
  });

  it('a damaged or future plan is an input error naming the field', () => {
    const { plan } = samplePlan();
    assert.throws(() => validatePlan({ ...plan, formatVersion: 2 }, 'p.json'), (error: Error) => error instanceof InputError && /\/formatVersion must be equal to constant/.test(error.message));
    const broken = JSON.parse(JSON.stringify(plan));
    delete broken.hosts[0].fingerprint.files;
    assert.throws(() => validatePlan(broken, 'p.json'), /\/hosts\/0\/fingerprint must have required property 'files'/);
    broken.hosts[0].fingerprint.files = {};
    broken.hosts[0].tasks[0].changes[0].status = 'applied';
    assert.throws(() => validatePlan(broken, 'p.json'), /\/hosts\/0\/tasks\/0\/changes\/0\/status/);
  });

  it('another kvmconf version, an old plan, or changed inputs are refused', () => {
    const { plan, playbook } = samplePlan();
    const made = Date.parse(plan.createdAt);
    assert.doesNotThrow(() => checkPlanUsable(plan, 'p.json', '0.1.0', parseDuration('24h'), made + 3_600_000));
    assert.throws(() => checkPlanUsable(plan, 'p.json', '0.2.0', parseDuration('24h'), made), /made by kvmconf 0\.1\.0, this is kvmconf 0\.2\.0/);
    assert.throws(() => checkPlanUsable(plan, 'p.json', '0.1.0', parseDuration('24h'), made + 25 * 3_600_000), /25h ago: older than --plan-max-age \(24h\)/);
    assert.doesNotThrow(() => checkPlanInputs(plan));
    writeFileSync(playbook, '- hosts: all\n  tasks: [{sysctl: {name: vm.swappiness, value: 1}}]\n');
    assert.throws(() => checkPlanInputs(plan), /site-.*\.yaml changed since the plan was made/);
  });

  it('durations: 30m, 24h, 2d, seconds', () => {
    assert.deepEqual(['30m', '24h', '2d', '90', '45s'].map(parseDuration), [1_800_000, 86_400_000, 172_800_000, 90_000, 45_000]);
    assert.throws(() => parseDuration('a day'), /--plan-max-age a day/);
  });

  it('reports map to plays in order, a play with the same name as the next one included', () => {
    const reports = [hostReport('a', 'p'), hostReport('b', 'p'), hostReport('a', 'p'), hostReport('a', 'q')];
    assert.deepEqual(playIndexes(reports, [{ name: 'p' }, { name: 'p' }, { name: 'q' }]), [0, 0, 1, 2]);
    assert.deepEqual(playIndexes(reports.slice(3), [{ name: 'p' }, { name: 'q' }]), [1], 'a play that matched no host has no report');
  });

  it('each host finds its own part by play, and none when it is not in the plan', () => {
    const lookup = savedHosts(samplePlan().plan);
    assert.equal(lookup(1, 'hv1')?.status, 'changed');
    assert.equal(lookup(1, 'hv2'), null);
  });
});

describe('fingerprint', () => {
  it('leaves free memory out of the facts hash', () => {
    const moved = { ...TWO_NODE_FACTS, numaNodes: TWO_NODE_FACTS.numaNodes.map((node) => ({ ...node, memFreeKiB: node.memFreeKiB - 1000 })) };
    assert.equal(factsHash(moved), factsHash(TWO_NODE_FACTS));
    assert.notEqual(factsHash({ ...TWO_NODE_FACTS, kernel: '6.1.0-29-amd64' }), factsHash(TWO_NODE_FACTS));
  });

  it('names what changed: facts, a task, a file', () => {
    const now = { facts: sha256('other'), tasks: [sha256('other')], files: { '/etc/sysctl.d/90-kvmconf.conf': sha256('edited') } };
    assert.deepEqual(fingerprintDiff(FINGERPRINT, now, ['swappiness']), [
      'host facts changed (kernel, CPUs, memory or OS)',
      "task 'swappiness': the state it was planned from changed",
      `/etc/sysctl.d/90-kvmconf.conf changed (sha256 absent -> ${sha256('edited').slice(0, 12)})`,
    ]);
    assert.deepEqual(fingerprintDiff(FINGERPRINT, FINGERPRINT, ['swappiness']), []);
  });

  it('a saved host runs only on the state and commands it was planned with', () => {
    const saved: SavedHost = samplePlan().plan.hosts[0]!;
    const planned = (fingerprint: Fingerprint, command = COMMAND): Planned => ({
      facts: TWO_NODE_FACTS,
      fingerprint,
      tasks: [{ task: {} as never, actual: {}, changes: saved.tasks[0]!.changes.map(({ status: _status, commands: _commands, ...change }, at) => ({ ...change, ...(at === 0 ? { commands: [command as Command] } : {}) })), diagnostics: [] }],
    });
    assert.equal(savedPlanRefusal(saved, planned(FINGERPRINT)), undefined);
    assert.match(savedPlanRefusal(saved, planned({ ...FINGERPRINT, files: { '/etc/sysctl.d/90-kvmconf.conf': sha256('x') } }))!, /^the state changed since the plan was made: \/etc\/sysctl\.d\/90-kvmconf\.conf changed .*; nothing was changed on this host/);
    assert.match(savedPlanRefusal(saved, planned(FINGERPRINT, 'true'))!, /planning again gives other commands than the plan/);
    assert.match(savedPlanRefusal(null, planned(FINGERPRINT))!, /not in the plan/);
    assert.match(savedPlanRefusal({ status: 'unreachable', error: 'connection refused', tasks: [] }, planned(FINGERPRINT))!, /no state for this host \(it was unreachable when planned: connection refused\)/);
  });
});

describe('rendering', () => {
  it('check -v and show list the commands each change runs; Markdown fences them', () => {
    const { plan } = samplePlan({ db_password: 'x' });
    const verbose = renderText(checkReport([hostReport('hv1', 'tune')]), { color: false, diff: false, verbose: true });
    assert.match(verbose, /sysctl \/etc\/sysctl\.d\/90-kvmconf\.conf: \(absent\) -> vm\.swappiness=10 \(persist\)\n {4}\$ kc_write_file \/etc\/sysctl\.d\/90-kvmconf\.conf 0644 absent 'vm\.swappiness = 10\n {6}'/);
    assert.doesNotMatch(renderText(checkReport([hostReport('hv1', 'tune')]), { color: false, diff: false }), /kc_write_file/);
    const text = renderPlanText(plan, false);
    assert.match(text, /^plan made .* by kvmconf 0\.1\.0\nplaybook: .*site-.*\.yaml \(sha256 [0-9a-f]{12}\)/);
    assert.match(text, /selection: limit hv\*, tags memory, -e db_password \(secret, not saved\)/);
    assert.match(text, /\$ kc_write_file/);
    const markdown = renderPlanMarkdown(plan);
    assert.match(markdown, /^# kvmconf plan: 3 of 3 hosts change/);
    assert.match(markdown, /## hv2 \(play tune\): changed\n\n- `sysctl \/etc\/sysctl\.d\/90-kvmconf\.conf: \(absent\) -> vm\.swappiness=10 \(persist\)`\n\n {2}```sh\n {2}kc_write_file .*\n {2}'\n {2}```/);
  });
});

describe('modules whose probes carry moving counters', () => {
  it('ksm and hugepages plan from their settings and pool sizes, not from merged or free pages', () => {
    const ksmState = (shared: string) => ({ present: true, values: { run: '1', merge_across_nodes: '1', pages_shared: shared, full_scans: shared }, units: {} as never, tmpfiles: null });
    assert.deepEqual(ksm.planState!(ksmState('10'), {} as never), ksm.planState!(ksmState('99'), {} as never));
    assert.notDeepEqual(ksm.planState!({ ...ksmState('10'), values: { run: '0' } }, {} as never), ksm.planState!(ksmState('10'), {} as never));
    const pools = (free: number, nr = 8) => ({ defaultSizeKiB: 2048, meminfo: { HugePages_Free: free }, global: { 2048: { nr, free, surplus: 0, resv: 0 } }, nodes: { 0: { 2048: { nr, free, surplus: 0, resv: null } } }, mounts: [], sysctl: {} as never });
    assert.deepEqual(hugepages.planState!(pools(8) as never, {} as never), hugepages.planState!(pools(2) as never, {} as never));
    assert.notDeepEqual(hugepages.planState!(pools(8, 16) as never, {} as never), hugepages.planState!(pools(8) as never, {} as never));
  });
});
