import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { service } from './index.js';
import { parseFacts } from '../../src/engine/facts.js';
import { buildApplyScript, newMark, parseApplyOutput } from '../../src/engine/script.js';
import { fixture } from '../../test/helpers/paths.js';
import { TWO_NODE_FACTS, normalize, plan, schemaAccepts } from '../../test/helpers/plan.js';

const ONE_NODE_NO_SYSTEMD = parseFacts(fixture('hugepages', 'facts-debian12-one-node.txt'));
const RUNNING = fixture('service', 'rhel9-tuned-running-enabled.txt');
const STOPPED = fixture('service', 'rhel9-tuned-stopped-disabled.txt');

test('parse and rules: this host does not run systemd (real probe output); the task fails before planning', () => {
  const actual = service.parse(fixture('service', 'debian12-no-systemd.txt'), normalize(service, { name: 'ssh', state: 'started' }));
  assert.deepEqual(actual, { systemd: false, units: {} });
  assert.deepEqual(service.rules!(normalize(service, { name: 'ssh', state: 'started' }), ONE_NODE_NO_SYSTEMD), [
    { severity: 'error', message: 'ssh.service: this host does not run systemd (no /run/systemd/system), so the service module cannot manage it' },
  ]);
  assert.throws(() => plan(service, { name: 'ssh', state: 'started' }, fixture('service', 'debian12-no-systemd.txt')), /does not run systemd/);
  assert.deepEqual(service.rules!(normalize(service, { name: 'tuned', enabled: true }), TWO_NODE_FACTS), []);
});

test('parse: systemctl show properties per unit', () => {
  assert.deepEqual(service.parse(RUNNING, normalize(service, { name: 'tuned', state: 'started' })), {
    systemd: true,
    units: { 'tuned.service': { load: 'loaded', active: 'active', sub: 'running', file: 'enabled' } },
  });
});

test('no-op: running and enabled as asked', () => {
  assert.deepEqual(plan(service, { name: 'tuned', enabled: true, state: 'started' }, RUNNING).changes, []);
  assert.deepEqual(plan(service, { name: 'tuned.service', enabled: false, state: 'stopped' }, STOPPED).changes, []);
  assert.deepEqual(plan(service, { name: 'tuned', state: 'stopped' }, fixture('service', 'rhel9-tuned-failed-enabled.txt')).changes, [], 'failed counts as stopped');
});

test('runtime and persist are planned separately, each command read back', () => {
  const { changes, commands } = plan(service, { name: 'tuned', enabled: true, state: 'started' }, STOPPED);
  assert.deepEqual(changes.map((c) => [c.module, c.target, c.scope, c.before, c.after]), [
    ['service', 'tuned.service', 'runtime', 'stopped', 'started'],
    ['service', 'tuned.service', 'persist', 'disabled', 'enabled'],
  ]);
  assert.deepEqual(commands(changes[0]!), [
    'systemctl start tuned.service',
    'kc_got=$(systemctl is-active tuned.service) || true',
    `[ "$kc_got" = active ] || kc_fail 'tuned.service: asked started, systemd reports' "$kc_got"`,
  ]);
  assert.deepEqual(commands(changes[1]!), [
    'systemctl enable tuned.service',
    'kc_got=$(systemctl is-enabled tuned.service) || true',
    `[ "$kc_got" = enabled ] || kc_fail 'tuned.service: asked enabled, systemd reports' "$kc_got"`,
  ]);
  const stop = plan(service, { name: 'tuned', enabled: false, state: 'stopped' }, RUNNING);
  assert.deepEqual(stop.changes.map((c) => [c.scope, c.before, c.after]), [['runtime', 'started', 'stopped'], ['persist', 'enabled', 'disabled']]);
  const persistOnly = plan(service, { name: 'tuned', enabled: false }, RUNNING);
  assert.deepEqual(persistOnly.changes.map((c) => [c.scope, c.after]), [['persist', 'disabled']]);
  const runtimeOnly = plan(service, { name: 'tuned', state: 'started' }, fixture('service', 'rhel9-tuned-failed-enabled.txt'));
  assert.deepEqual(runtimeOnly.changes.map((c) => [c.scope, c.before, c.after]), [['runtime', 'failed', 'started']]);
});

test('an absent unit fails unless absent_ok, which makes it a warning and no change', () => {
  const absent = fixture('service', 'debian12-unit-not-found.txt');
  assert.throws(() => plan(service, { name: 'ksmtuned', state: 'stopped' }, absent), /^Error: ksmtuned.service does not exist on this host; set absent_ok: true if that is expected$/);
  const { changes, warnings } = plan(service, { name: 'ksmtuned', state: 'stopped', absent_ok: true }, absent);
  assert.deepEqual(changes, []);
  assert.deepEqual(warnings.map((w) => w.message), ['ksmtuned.service does not exist on this host; nothing to do']);
});

test('a masked unit asked to start or be enabled fails naming it; stopping it is fine', () => {
  const masked = fixture('service', 'unit-masked.txt');
  assert.throws(() => plan(service, { name: 'libvirtd', state: 'started' }, masked), /libvirtd.service is masked: it cannot be started \(run 'systemctl unmask libvirtd.service' if it should run\)/);
  assert.throws(() => plan(service, { name: 'libvirtd', enabled: true }, masked), /libvirtd.service is masked: it cannot be enabled/);
  assert.deepEqual(plan(service, { name: 'libvirtd', enabled: false, state: 'stopped' }, masked).changes, []);
});

test('a static unit cannot be enabled (no flapping enable); disabled is already true of it', () => {
  const unit = fixture('service', 'unit-static.txt');
  assert.throws(() => plan(service, { name: 'systemd-tmpfiles-setup', enabled: true }, unit), /is static: it has no \[Install\] section to enable/);
  assert.deepEqual(plan(service, { name: 'systemd-tmpfiles-setup', enabled: false }, unit).changes, []);
});

test('systemctl show failing is reported with its message', () => {
  assert.throws(() => plan(service, { name: 'tuned', state: 'started' }, fixture('service', 'systemctl-show-access-denied.txt')), /tuned.service: systemctl show failed: Failed to get properties: Access denied/);
});

test('names: .service is implied, other unit types kept; the probe names the unit', () => {
  assert.equal(normalize(service, { name: 'tuned', state: 'started' }).name, 'tuned.service');
  assert.equal(normalize(service, { name: 'dev-hugepages.mount', state: 'started' }).name, 'dev-hugepages.mount');
  assert.equal(normalize(service, { name: 'getty@tty1', state: 'started' }).name, 'getty@tty1.service');
  assert.equal(normalize(service, { name: 'qemu-kvm.conf', state: 'started' }).name, 'qemu-kvm.conf.service');
  assert.deepEqual(normalize(service, { name: 'tuned', enabled: true }), { name: 'tuned.service', enabled: true, absent_ok: false });
  assert.match(service.probe(normalize(service, { name: 'getty@tty1', state: 'started' })), /for kc_u in getty@tty1.service; do/);
});

test('schema: hostile and malformed values are rejected', () => {
  for (const name of ['tuned; reboot', '$(reboot)', '`id`', "tu'ned", 'tu"ned', 'tuned\nsshd', '-H', '--now', 'a b', '../x', 'x/y', '']) {
    assert.equal(schemaAccepts(service, { name, state: 'started' }), false, JSON.stringify(name));
  }
  assert.equal(schemaAccepts(service, { name: 'tuned', state: 'running' }), false);
  assert.equal(schemaAccepts(service, { name: 'tuned', enabled: 'yes' }), false);
  assert.equal(schemaAccepts(service, { name: 'tuned' }), false, 'nothing asked');
  assert.equal(schemaAccepts(service, { name: 'tuned', state: 'started', restart: true }), false);
  assert.equal(schemaAccepts(service, { name: 'getty@tty1.service', state: 'started', enabled: true, absent_ok: true }), true);
});

/**
 * Runs a change's commands as the engine does, with `systemctl` replaced by a shell
 * function: this host has no systemd, and the read-back logic is what is under test.
 * `answers` is what the fake prints for is-active / is-enabled after the action.
 */
function runWithFakeSystemctl(commands: string[], answers: { active: string; enabled: string }) {
  const fake = `systemctl() { case $1 in is-active) echo ${answers.active}; [ ${answers.active} = active ];; is-enabled) echo ${answers.enabled}; [ ${answers.enabled} = enabled ];; *) echo "systemctl $*" ;; esac; }`;
  const mark = newMark();
  const steps = [{ label: 'change', commands: [fake, ...commands] }];
  return parseApplyOutput(spawnSync('/bin/sh', ['-s'], { input: buildApplyScript(steps, mark), encoding: 'utf8' }).stdout, mark, steps).outcomes[0]!;
}

test('shell: the read-back fails the step when systemd does not report what was asked', () => {
  const start = plan(service, { name: 'tuned', state: 'started', enabled: true }, STOPPED);
  const [startCommands, enableCommands] = start.changes.map((c) => start.commands(c));
  let outcome = runWithFakeSystemctl(startCommands!, { active: 'active', enabled: 'disabled' });
  assert.equal(outcome.status, 'ok', outcome.output);
  assert.match(outcome.output, /systemctl start tuned.service/);
  outcome = runWithFakeSystemctl(startCommands!, { active: 'failed', enabled: 'disabled' });
  assert.equal(outcome.status, 'failed');
  assert.match(outcome.output, /kvmconf: tuned.service: asked started, systemd reports failed/);
  outcome = runWithFakeSystemctl(enableCommands!, { active: 'active', enabled: 'enabled' });
  assert.equal(outcome.status, 'ok', outcome.output);
  outcome = runWithFakeSystemctl(enableCommands!, { active: 'active', enabled: 'static' });
  assert.match(outcome.output, /kvmconf: tuned.service: asked enabled, systemd reports static/);

  const stop = plan(service, { name: 'tuned', state: 'stopped', enabled: false }, RUNNING);
  const [stopCommands, disableCommands] = stop.changes.map((c) => stop.commands(c));
  assert.equal(runWithFakeSystemctl(stopCommands!, { active: 'inactive', enabled: 'enabled' }).status, 'ok');
  assert.equal(runWithFakeSystemctl(stopCommands!, { active: 'failed', enabled: 'enabled' }).status, 'ok', 'failed is stopped');
  assert.match(runWithFakeSystemctl(stopCommands!, { active: 'deactivating', enabled: 'enabled' }).output, /asked stopped, systemd reports deactivating/);
  assert.equal(runWithFakeSystemctl(disableCommands!, { active: 'inactive', enabled: 'disabled' }).status, 'ok');
  assert.match(runWithFakeSystemctl(disableCommands!, { active: 'inactive', enabled: 'enabled-runtime' }).output, /asked disabled, systemd reports enabled-runtime/);
});
