import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { InputError } from '../../src/errors.js';
import { loadInventory } from '../../src/config/inventory.js';
import { limitHosts, resolvePattern, splitPattern } from '../../src/config/patterns.js';
import { ROOT } from '../helpers/paths.js';


const FIXTURES = join(ROOT, 'test', 'fixtures', 'inventory');
// Hosts, in file order: standalone hv1 hv2 hv3 localhost nas1.
// Groups: all ungrouped hypervisors{hv1 hv2 rack1{hv3}} local{localhost} storage{hv2 nas1} backup{hv2}.
const inventory = loadInventory(join(FIXTURES, 'ansible', 'inventory.yaml'));
// web{web1.example.com web2.example.com} db{db1.example.com fe80::1}
const top = loadInventory(join(FIXTURES, 'toplevel.yaml'));

const resolve = (pattern: string) => resolvePattern(pattern, inventory);

function failure(run: () => unknown): { message: string; hint?: string } {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof InputError, String(error));
    return error.hint === undefined ? { message: error.message } : { message: error.message, hint: error.hint };
  }
  return assert.fail('no error');
}

describe('resolvePattern', () => {
  test('all and *', () => {
    const all = ['standalone', 'hv1', 'hv2', 'hv3', 'localhost', 'nas1'];
    assert.deepEqual(resolve('all'), all);
    assert.deepEqual(resolve('*'), all);
  });

  test('a host, a group (with its descendants), in inventory order', () => {
    assert.deepEqual(resolve('hv1'), ['hv1']);
    assert.deepEqual(resolve('hypervisors'), ['hv1', 'hv2', 'hv3']);
    assert.deepEqual(resolve('rack1'), ['hv3']);
    assert.deepEqual(resolve('ungrouped'), ['standalone']);
    assert.deepEqual(resolve('nas1,hv1'), ['hv1', 'nas1']);
    assert.deepEqual(resolve(' nas1 , , hv1 '), ['hv1', 'nas1']);
  });

  test('unions with , and :', () => {
    assert.deepEqual(resolve('local:rack1'), ['hv3', 'localhost']);
    assert.deepEqual(resolve('local,rack1:standalone'), ['standalone', 'hv3', 'localhost']);
    assert.deepEqual(resolve('storage:backup'), ['hv2', 'nas1']);
  });

  test('& intersects and ! excludes, after the union whatever their position', () => {
    assert.deepEqual(resolve('hypervisors:&storage'), ['hv2']);
    assert.deepEqual(resolve('hypervisors,&storage'), ['hv2']);
    assert.deepEqual(resolve('&storage:hypervisors:local'), ['hv2']);
    assert.deepEqual(resolve('hypervisors:!rack1'), ['hv1', 'hv2']);
    assert.deepEqual(resolve('!hv2:hypervisors'), ['hv1', 'hv3']);
    assert.deepEqual(resolvePattern('hypervisors:storage:&backup:!hv2', inventory, { allowEmpty: true }), []);
    assert.deepEqual(resolve('all:!hypervisors:!local'), ['standalone', 'nas1']);
  });

  test('only exclusions or intersections start from all hosts', () => {
    assert.deepEqual(resolve('!hypervisors'), ['standalone', 'localhost', 'nas1']);
    assert.deepEqual(resolve('&storage'), ['hv2', 'nas1']);
    assert.deepEqual(resolve('&storage:!nas1'), ['hv2']);
  });

  test('globs match host names and group names', () => {
    assert.deepEqual(resolve('hv*'), ['hv1', 'hv2', 'hv3']);
    assert.deepEqual(resolve('h?[13]'), ['hv1', 'hv3']);
    assert.deepEqual(resolve('rack[12]*'), ['hv3']);
    assert.deepEqual(resolve('stor*'), ['hv2', 'nas1']);
    assert.deepEqual(resolve('*:!hv[12]'), ['standalone', 'hv3', 'localhost', 'nas1']);
    assert.deepEqual(resolvePattern('*.example.com', top), ['web1.example.com', 'web2.example.com', 'db1.example.com']);
    assert.deepEqual(resolvePattern('web*.example.com:&web', top), ['web1.example.com', 'web2.example.com']);
  });

  test('~regex matches host names from their start', () => {
    assert.deepEqual(resolve('~hv[12]$'), ['hv1', 'hv2']);
    assert.deepEqual(resolve('~(local|nas)'), ['localhost', 'nas1']);
    assert.deepEqual(resolve('~.*1$'), ['hv1', 'nas1']);
    assert.deepEqual(resolve('~hv,!~hv3'), ['hv1', 'hv2']);
    assert.deepEqual(resolvePattern('~v1', inventory, { allowEmpty: true }), [], 'not a search: anchored at the start');
    assert.deepEqual(resolvePattern('~hypervisors', inventory, { allowEmpty: true }), [], 'group names are not matched by regexes');
    assert.match(failure(() => resolve('~(')).message, /^invalid regular expression in host pattern '~\(': /);
  });

  test('IPv6 addresses are not split on :', () => {
    assert.deepEqual(splitPattern('fe80::1'), ['fe80::1']);
    assert.deepEqual(splitPattern('a:b,!c:&d'), ['a', 'b', '!c', '&d']);
    assert.deepEqual(splitPattern('fe80::1,web:!db'), ['fe80::1', 'web', '!db']);
    assert.deepEqual(splitPattern('rack[1:2]:x'), ['rack[1:2]', 'x']);
    assert.deepEqual(resolvePattern('fe80::1', top), ['fe80::1']);
    assert.deepEqual(resolvePattern('[fe80::1]', top), ['fe80::1']);
    assert.deepEqual(resolvePattern('web2.example.com,fe80::1', top), ['web2.example.com', 'fe80::1']);
    assert.deepEqual(resolvePattern('db,!fe80::1', top), ['db1.example.com']);
    // Within one comma-separated part, `:` separates unless the whole part is an address.
    assert.deepEqual(splitPattern('db:!fe80::1'), ['db', '!fe80', '1']);
    assert.deepEqual(resolvePattern('web:db:!web1.example.com', top), ['web2.example.com', 'db1.example.com', 'fe80::1']);
  });

  test('a name that matches nothing is an error with a did-you-mean', () => {
    assert.deepEqual(failure(() => resolve('hypervisor')), { message: "host pattern 'hypervisor' matches no host or group", hint: "did you mean 'hypervisors'?" });
    assert.deepEqual(failure(() => resolve('hv1:hv9:!stroage')), {
      message: "host patterns 'hv9', 'stroage' (in 'hv1:hv9:!stroage') match no host or group",
      hint: "'hv9': did you mean 'hv1'?; 'stroage': did you mean 'storage'?",
    });
    assert.deepEqual(failure(() => resolve('zz*')), { message: "host pattern 'zz*' matches no host or group" });
    assert.deepEqual(failure(() => resolve('hypervisors[0]')), { message: "host pattern 'hypervisors[0]' matches no host or group", hint: "subscripts like 'group[0]' are not supported" });
    assert.deepEqual(failure(() => resolve('local:&hypervisors')), { message: "host pattern 'local:&hypervisors' matches no hosts" });
    assert.deepEqual(failure(() => resolve(' , ')), { message: "empty host pattern ' , '", hint: "name hosts or groups, or 'all'" });
    assert.deepEqual(failure(() => resolve('hv1:!')), { message: "empty term after '!' in host pattern 'hv1:!'" });
  });

  test('allowEmpty lets the caller decide; where locates the error', () => {
    assert.deepEqual(resolvePattern('hypervisor', inventory, { allowEmpty: true }), []);
    assert.deepEqual(resolvePattern('hv1,nosuch', inventory, { allowEmpty: true }), ['hv1']);
    const where = { file: 'site.yaml', line: 3, column: 10, path: '$[0].hosts' };
    try {
      resolvePattern('hypervisor', inventory, { where });
      assert.fail('no error');
    } catch (error) {
      assert.ok(error instanceof InputError);
      assert.deepEqual(error.where, where);
      assert.equal(error.message, "site.yaml:3:10 ($[0].hosts): host pattern 'hypervisor' matches no host or group");
    }
  });
});

describe('limitHosts', () => {
  const play = ['hv3', 'hv2', 'hv1'];

  test('no limit keeps the play hosts', () => {
    assert.equal(limitHosts(play, undefined, inventory), play);
    assert.deepEqual(limitHosts(play, ' ', inventory), play);
  });

  test("a pattern narrows the play's hosts, keeping the play's order", () => {
    assert.deepEqual(limitHosts(play, 'hv1,hv3', inventory), ['hv3', 'hv1']);
    assert.deepEqual(limitHosts(play, 'storage', inventory), ['hv2']);
    assert.deepEqual(limitHosts(play, '!rack1', inventory), ['hv2', 'hv1']);
    assert.deepEqual(limitHosts(play, 'local', inventory), [], 'a limit outside the play selects none of its hosts');
  });

  test('@file: one host per line, as a retry file', () => {
    const retry = join(FIXTURES, 'retry', 'site.retry');
    assert.deepEqual(limitHosts(play, `@${retry}`, inventory), ['hv3', 'hv2']);
    assert.deepEqual(limitHosts(play, `@${retry},hv1`, inventory), ['hv3', 'hv2', 'hv1']);
    assert.deepEqual(failure(() => limitHosts(play, `@${join(FIXTURES, 'retry', 'empty.retry')}`, inventory)), { message: `${join(FIXTURES, 'retry', 'empty.retry')}: limit file names no hosts` });
    assert.deepEqual(failure(() => limitHosts(play, '@/nonexistent/site.retry', inventory)), { message: '/nonexistent/site.retry: cannot read limit file: ENOENT' });
  });

  test('a limit naming nothing that exists is an error', () => {
    assert.deepEqual(failure(() => limitHosts(play, 'hv4', inventory)), { message: "host pattern 'hv4' matches no host or group", hint: "did you mean 'hv1'?" });
  });
});
