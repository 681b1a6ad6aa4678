/**
 * The test domains' thread reader (test/helpers/test-domain.ts): the emulator thread is
 * the main thread, whatever order /proc lists the threads in and whatever they are named.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { emulatorThread, parseQemuThreads, vcpuThread } from '../helpers/test-domain.js';

test('the emulator thread is the one whose tid is the pid, not the first thread named qemu', () => {
  // Main thread 99987, its call_rcu helper 100002 (same comm, left on the old pinning): the glob lists 100002 first.
  const threads = parseQemuThreads(['0|qemu-system-x86|0|0', '0|CPU 0/TCG|0-1|0', '1|qemu-system-x86|0-1|0', '0|worker|0|0'].join('\n'));
  assert.deepEqual(emulatorThread(threads)?.cpus, [0, 1]);
  assert.deepEqual(vcpuThread(threads, 0)?.cpus, [0, 1]);
});
