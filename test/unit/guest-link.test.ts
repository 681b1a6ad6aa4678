// The guest <-> hypervisor check: through planPlaybook, on real playbook and inventory files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadPlaybook } from '../../src/config/playbook.js';
import { loadInventory } from '../../src/config/inventory.js';
import { planPlaybook } from '../../src/engine/runner.js';
import { InputError } from '../../src/errors.js';
import { FLEET_CHECKS, MODULES_BY_NAME } from '../../modules/index.js';
import { checkQueueAgreement } from '../../modules/lib/guest-link.js';

const INVENTORY = `all:
  children:
    hypervisors:
      hosts:
        hv1: { ansible_host: 127.0.0.1 }
    guests:
      hosts:
        web1: { ansible_host: 127.0.0.1, kvmconf_hypervisor: hv1 }
        db7: { ansible_host: 127.0.0.1, kvmconf_hypervisor: hv1, kvmconf_domain: db-prod-7 }
        loose: { ansible_host: 127.0.0.1 }
`;

function playbook(domains: string, channels: string): string {
  return `- hosts: hypervisors
  tasks:
${domains}
- hosts: guests
  tasks:
    - name: guest channels
      ethtool: { interface: "en*", combined: ${channels} }
`;
}

const domain = (selector: string, queues: number) => `    - libvirt_domain:
        ${selector}
        interfaces: [{ match: { index: 0 }, queues: ${queues} }]
`;

function plan(domains: string, channels: string) {
  const dir = mkdtempSync(join(tmpdir(), 'kvmconf-link-'));
  writeFileSync(join(dir, 'inventory.yaml'), INVENTORY);
  writeFileSync(join(dir, 'site.yaml'), playbook(domains, channels));
  const plays = planPlaybook(loadPlaybook(join(dir, 'site.yaml'), MODULES_BY_NAME), loadInventory(join(dir, 'inventory.yaml')), MODULES_BY_NAME, { fleetChecks: FLEET_CHECKS });
  const notes = (host: string) => plays[1]!.jobs.get(host)!.tasks[0]!.notes?.map((n) => n.message) ?? [];
  return { notes };
}

test('checkQueueAgreement compares the guest channels with the hypervisor queues', () => {
  const host = { domain: 'web1', mac: '52:54:00:ab:cd:ef', queues: 4 };
  assert.deepEqual(checkQueueAgreement(host, { host: 'web1', interface: 'eth0', combined: 4 }), []);
  assert.match(checkQueueAgreement(host, { host: 'web1', interface: 'eth0', combined: 8 })[0]!.message, /8 combined channels asked but the hypervisor gives the NIC 4 queues/);
  const fewer = checkQueueAgreement(host, { host: 'web1', interface: 'eth0', combined: 2 });
  assert.equal(fewer[0]!.severity, 'warning');
});

test('agreeing queues and channels: nothing to say', () => {
  const { notes } = plan(domain('name: web1', 4) + domain('name: db-prod-7', 4), '4');
  assert.deepEqual(notes('web1'), []);
  assert.deepEqual(notes('db7'), []);
});

test('more channels than the linked domain gets queues: an input error naming host, line and domain', () => {
  assert.throws(
    () => plan(domain('pattern: "db-*"', 2) + domain('name: web1', 4), '4'),
    (error: Error) => {
      assert.ok(error instanceof InputError, String(error));
      assert.match(error.message, /site\.yaml:\d+:\d+/);
      assert.match(error.message, /on host db7: db7 en\* \(domain db-prod-7\): 4 combined channels asked but the hypervisor gives the NIC 2 queues/);
      return true;
    },
  );
});

test('fewer channels than queues: a warning attached to the guest task', () => {
  const { notes } = plan(domain('pattern: "*"', 8), '4');
  assert.match(notes('web1')[0] ?? '', /web1 en\* \(domain web1\): 4 combined channels for 8 hypervisor queues/);
  assert.equal(notes('db7').length, 1);
  assert.deepEqual(notes('loose'), [], 'a guest without kvmconf_hypervisor is not linked');
});

test('a domain the hypervisor tasks leave alone, or a task without queues, is not checked', () => {
  const { notes } = plan(domain('name: other', 1) + '    - libvirt_domain: { name: web1, vcpu: { count: 2 } }\n', '4');
  assert.deepEqual(notes('web1'), []);
});
