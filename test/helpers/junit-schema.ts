/**
 * A structural check of JUnit XML against the schema CI systems read it with (the
 * junit-10.xsd of Jenkins' xUnit plugin, which GitLab and GitHub reporters accept too):
 * element nesting, allowed and required attributes, the time format, and counts that
 * match the test cases.
 */
import { DOMParser, type Element } from '@xmldom/xmldom';

interface Rule {
  children: readonly string[];
  attributes: readonly string[];
  required: readonly string[];
  /** Text content allowed (mixed content). */
  text: boolean;
}

const OUTCOME: Rule = { children: [], attributes: ['type', 'message'], required: [], text: true };
const TEXT_ONLY: Rule = { children: [], attributes: [], required: [], text: true };

const RULES: Record<string, Rule> = {
  testsuites: { children: ['testsuite'], attributes: ['name', 'time', 'tests', 'failures', 'errors'], required: [], text: false },
  testsuite: {
    children: ['testsuite', 'properties', 'testcase', 'system-out', 'system-err'],
    attributes: ['name', 'tests', 'failures', 'errors', 'group', 'time', 'skipped', 'timestamp', 'hostname', 'id', 'package', 'file', 'log', 'url'],
    required: ['name', 'tests', 'failures', 'errors'],
    text: false,
  },
  properties: { children: ['property'], attributes: [], required: [], text: false },
  property: { children: [], attributes: ['name', 'value'], required: ['name', 'value'], text: false },
  testcase: {
    children: ['skipped', 'error', 'failure', 'system-out', 'system-err'],
    attributes: ['name', 'time', 'classname', 'group'],
    required: ['name'],
    text: false,
  },
  failure: OUTCOME,
  error: OUTCOME,
  skipped: OUTCOME,
  'system-out': TEXT_ONLY,
  'system-err': TEXT_ONLY,
};

/** The schema's SUREFIRE_TIME, anchored. */
const TIME = /^(([0-9]{0,3},)*[0-9]{3}|[0-9]{0,3})*(\.[0-9]*)?$/;

const elements = (node: Element): Element[] => Array.from(node.childNodes).filter((child): child is Element => child.nodeType === 1);

function checkElement(element: Element, problems: string[], path: string): void {
  const rule = RULES[element.tagName];
  if (!rule) return void problems.push(`${path}: unknown element <${element.tagName}>`);
  for (const attribute of Array.from(element.attributes)) {
    if (!rule.attributes.includes(attribute.name)) problems.push(`${path}: attribute ${attribute.name} not allowed`);
  }
  for (const name of rule.required) if (!element.hasAttribute(name)) problems.push(`${path}: attribute ${name} required`);
  const time = element.getAttribute('time');
  if ((element.tagName === 'testsuite' || element.tagName === 'testsuites') && time !== null && !TIME.test(time)) problems.push(`${path}: time '${time}' is not a SUREFIRE_TIME`);
  const hasText = Array.from(element.childNodes).some((child) => child.nodeType === 3 && (child.nodeValue ?? '').trim() !== '');
  if (hasText && !rule.text) problems.push(`${path}: text not allowed`);
  elements(element).forEach((child, index) => {
    if (!rule.children.includes(child.tagName)) problems.push(`${path}: <${child.tagName}> not allowed in <${element.tagName}>`);
    else checkElement(child, problems, `${path}/${child.tagName}[${index}]`);
  });
  if (element.tagName === 'testcase' && elements(element).filter((child) => ['failure', 'error', 'skipped'].includes(child.tagName)).length > 1) {
    problems.push(`${path}: more than one of failure, error, skipped`);
  }
  if (element.tagName === 'testsuite' || element.tagName === 'testsuites') checkCounts(element, problems, path);
}

/** tests, failures, errors and skipped say how many test cases beneath have each. */
function checkCounts(element: Element, problems: string[], path: string): void {
  const cases = Array.from(element.getElementsByTagName('testcase'));
  const expected: Record<string, number> = {
    tests: cases.length,
    failures: cases.filter((c) => c.getElementsByTagName('failure').length).length,
    errors: cases.filter((c) => c.getElementsByTagName('error').length).length,
    skipped: cases.filter((c) => c.getElementsByTagName('skipped').length).length,
  };
  for (const [name, count] of Object.entries(expected)) {
    const value = element.getAttribute(name);
    if (value !== null && Number(value) !== count) problems.push(`${path}: ${name}="${value}" but ${count} test case(s)`);
  }
}

/** Every way the document departs from the schema; empty when it is valid. */
export function junitProblems(xml: string): string[] {
  const problems: string[] = [];
  const document = new DOMParser({ onError: (level: string, message: string) => void problems.push(`${level}: ${message}`) }).parseFromString(xml, 'text/xml');
  const root = document.documentElement;
  if (!root || root.tagName !== 'testsuites') return [...problems, 'root element is not <testsuites>'];
  checkElement(root, problems, 'testsuites');
  return problems;
}
