import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DOMParser } from '@xmldom/xmldom';
import type { Element } from '@xmldom/xmldom';
import { renderJunit } from '../../src/report/junit.js';
import { junitProblems } from '../helpers/junit-schema.js';
import { applyReport, change, checkReport, host, report, swappiness, task } from '../helpers/report-fixtures.js';

function parseXml(xml: string): Element {
  assert.deepEqual(junitProblems(xml), [], 'valid against the JUnit schema');
  const document = new DOMParser().parseFromString(xml, 'text/xml');
  return document.documentElement!;
}

function children(parent: Element, tag: string): Element[] {
  return Array.from(parent.getElementsByTagName(tag));
}

function counts(element: Element): Record<string, string | null> {
  return Object.fromEntries(['tests', 'failures', 'errors', 'skipped'].map((name) => [name, element.getAttribute(name)]));
}

function testCase(root: Element, classname: string, name: string): Element {
  const found = children(root, 'testcase').find((element) => element.getAttribute('classname') === classname && element.getAttribute('name') === name);
  assert.ok(found, `test case ${classname}/${name}`);
  return found;
}

const caseNames = (root: Element, classname: string): Array<string | null> =>
  children(root, 'testcase').filter((element) => element.getAttribute('classname') === classname).map((element) => element.getAttribute('name'));

const outcome = (element: Element, tag: string): { type: string | null; message: string | null; text: string | null } | undefined => {
  const found = children(element, tag)[0];
  return found && { type: found.getAttribute('type'), message: found.getAttribute('message'), text: found.textContent };
};

describe('JUnit report', () => {
  it('has one suite per play and one case per host and task, named by the task, classname the host', () => {
    const xml = renderJunit(checkReport());
    assert.ok(xml.startsWith('<?xml version="1.0" encoding="UTF-8"?>\n<testsuites '));
    const root = parseXml(xml);
    assert.deepEqual(counts(root), { tests: '10', failures: '2', errors: '3', skipped: null });
    const suites = children(root, 'testsuite');
    assert.deepEqual(suites.map((suite) => suite.getAttribute('name')), ['tune', 'guests']);
    assert.deepEqual(counts(suites[0]!), { tests: '9', failures: '2', errors: '3', skipped: '1' });
    assert.deepEqual(caseNames(root, 'hv1'), ['swappiness', 'thp', 'dirty ratio']);
    // Two tasks of one module stay two cases.
    assert.deepEqual(caseNames(root, 'hv3'), ['swappiness', 'thp', 'dirty ratio']);
  });

  it("splits a host's time among its cases, so a suite's time is the sum of its hosts'", () => {
    const root = parseXml(renderJunit(checkReport()));
    assert.equal(testCase(root, 'hv1', 'swappiness').getAttribute('time'), '0.700');
    assert.equal(children(root, 'testsuite')[0]!.getAttribute('time'), '9.200');
    assert.equal(root.getAttribute('time'), '4.200');
  });

  it('fails a task with drift as type drift, listing its changes; pending-only tasks pass', () => {
    const root = parseXml(renderJunit(checkReport()));
    assert.deepEqual(outcome(testCase(root, 'hv1', 'swappiness'), 'failure'), {
      type: 'drift',
      message: '1 change(s) to make',
      text: 'sysctl vm.swappiness: 60 -> 10 (runtime)',
    });
    assert.equal(outcome(testCase(root, 'hv1', 'thp'), 'failure')?.message, '1 change(s) to make');
    const pending = testCase(root, 'hv2', 'thp');
    assert.equal(children(pending, 'failure').length + children(pending, 'error').length, 0);
    assert.match(children(pending, 'system-out')[0]?.textContent ?? '', /transparent_hugepage: \(absent\) -> never \(pending reboot\)/);
    assert.equal(children(testCase(root, 'hv1', 'dirty ratio'), 'failure').length, 0);
  });

  it('makes an unreachable host an error of type unreachable on every task, and a skipped host skipped', () => {
    const root = parseXml(renderJunit(checkReport()));
    for (const name of ['swappiness', 'thp', 'dirty ratio']) {
      assert.deepEqual(outcome(testCase(root, 'hv3', name), 'error'), {
        type: 'unreachable',
        message: 'ssh: connect to host hv3 port 22: Connection refused',
        text: 'ssh: connect to host hv3 port 22: Connection refused',
      });
    }
    assert.equal(children(testCase(root, 'hv4', 'guests'), 'skipped').length, 1);
    assert.equal(children(testCase(root, 'hv2', 'dirty ratio'), 'skipped')[0]?.getAttribute('message'), 'task not run on this host');
  });

  it('fails a failed task as type failed and changes never made as not-run (apply mode)', () => {
    const root = parseXml(renderJunit(applyReport()));
    assert.deepEqual(counts(root), { tests: '3', failures: '2', errors: '0', skipped: null });
    assert.equal(children(testCase(root, 'hv1', 'swappiness'), 'failure').length, 0, 'a change made passes');
    const failed = outcome(testCase(root, 'hv1', 'hugepages'), 'failure');
    assert.equal(failed?.type, 'failed');
    assert.equal(failed?.message, 'step "sysctl vm.nr_hugepages" failed (exit 1)');
    assert.match(failed?.text ?? '', /sysctl vm\.nr_hugepages: 0 -> 1024 \(runtime\) \[failed\]/);
    assert.deepEqual(outcome(testCase(root, 'hv1', 'thp'), 'failure')?.type, 'not-run');
    assert.equal(outcome(testCase(root, 'hv1', 'thp'), 'failure')?.message, '1 change(s) not made');
  });

  it('gives a host failure no task shows a case of its own, and a host that failed before gathering an error per task', () => {
    const converged = host('hv1', 'failed', [task('swappiness', 'sysctl', [{ ...swappiness, status: 'applied' }])], { error: 'did not converge: sysctl vm.swappiness is 60, wanted 10' });
    const become = host('hv2', 'failed', [], { error: 'become failed: sudo: a password is required' });
    const root = parseXml(renderJunit(report('apply', [converged, become])));
    assert.deepEqual(caseNames(root, 'hv1'), ['swappiness', 'host']);
    assert.equal(outcome(testCase(root, 'hv1', 'host'), 'failure')?.message, 'did not converge: sysctl vm.swappiness is 60, wanted 10');
    assert.deepEqual(outcome(testCase(root, 'hv2', 'swappiness'), 'error')?.type, 'failed');
  });

  it('times a reboot with its own duration and fails a failed one', () => {
    const finish = { action: 'reboot' as const, status: 'failed' as const, reason: 'did not come back within 600 s', guests: 'refuse' as const, finishes: [], durationMs: 30_000 };
    const root = parseXml(renderJunit(report('apply', [host('hv1', 'failed', [task('swappiness', 'sysctl')], { durationMs: 40_000, finish })])));
    assert.equal(testCase(root, 'hv1', 'swappiness').getAttribute('time'), '10.000');
    assert.equal(testCase(root, 'hv1', 'reboot').getAttribute('time'), '30.000');
    assert.equal(outcome(testCase(root, 'hv1', 'reboot'), 'failure')?.type, 'failed');
  });

  it('names repeated task names apart', () => {
    const root = parseXml(renderJunit(report('check', [host('hv1', 'changed', [task('sysctl', 'sysctl', [swappiness]), task('sysctl', 'sysctl')])])));
    assert.deepEqual(caseNames(root, 'hv1'), ['sysctl', 'sysctl (2)']);
  });

  it('writes an input error as one error case of type input', () => {
    const root = parseXml(renderJunit(report('check', [], { inputError: 'site.yaml:3:13: thp: bad value\nsecond line', exitCode: 1 })));
    assert.deepEqual(counts(root), { tests: '1', failures: '0', errors: '1', skipped: null });
    const input = testCase(root, 'playbooks/virtual-host.yaml', 'input');
    assert.deepEqual(outcome(input, 'error'), { type: 'input', message: 'site.yaml:3:13: thp: bad value', text: 'site.yaml:3:13: thp: bad value\nsecond line' });
  });

  it('escapes markup and drops characters XML 1.0 forbids', () => {
    const nasty = `a<&>"'b\x00\x07\x1b[31mc\x1b[39m\x0b\ufffe\ud800d`;
    const hostile = report('check', [host(nasty, 'changed', [task(nasty, nasty, [change({ module: nasty, target: 'x', before: nasty, after: '\ttab' })])], { play: nasty })]);
    const xml = renderJunit(hostile);
    assert.doesNotMatch(xml, /[\x00-\x08\x0B\x0C\x0E-\x1F\uFFFE\uFFFF]/);
    assert.ok(xml.includes('classname="a&lt;&amp;&gt;&quot;&apos;bcd"'));
    const root = parseXml(xml);
    const clean = `a<&>"'bcd`;
    assert.equal(children(root, 'testsuite')[0]?.getAttribute('name'), clean);
    assert.equal(outcome(testCase(root, clean, clean), 'failure')?.text, `${clean} x: ${clean} -> \ttab (runtime)`);
  });

  it('keeps line breaks in attributes', () => {
    const skipped = report('check', [host('hv1', 'skipped', [], { error: 'stopped:\n\tinterrupted' })]);
    assert.ok(renderJunit(skipped).includes('<skipped message="stopped:&#10;&#9;interrupted"/>'));
    assert.equal(children(testCase(parseXml(renderJunit(skipped)), 'hv1', 'host'), 'skipped')[0]?.getAttribute('message'), 'stopped:\n\tinterrupted');
  });

  it('the schema check catches what CI collectors reject', () => {
    assert.deepEqual(junitProblems('<testsuites><testsuite name="a" tests="1" failures="0" errors="0"><testcase name="x"/></testsuite></testsuites>'), []);
    assert.match(junitProblems('<testsuites skipped="1"/>').join(), /attribute skipped not allowed/);
    assert.match(junitProblems('<testsuites><testsuite name="a" tests="2" failures="0" errors="0"><testcase name="x"/></testsuite></testsuites>').join(), /tests="2" but 1/);
    assert.match(junitProblems('<testsuites><testsuite name="a" tests="1" failures="0" errors="0"><testcase/></testsuite></testsuites>').join(), /name required/);
    assert.match(junitProblems('<testsuites><testsuite name="a" tests="1" failures="1" errors="1"><testcase name="x"><failure/><error/></testcase></testsuite></testsuites>').join(), /more than one/);
  });
});
