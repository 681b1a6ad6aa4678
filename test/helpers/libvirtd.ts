/**
 * Test fixture: a real libvirtd (Debian's libvirt-daemon-system, packages listed in
 * LIBVIRT_APT_PACKAGES beside this file) for the libvirt integration tests. There is no
 * systemd in the test container, so the daemons are started by hand, as root:
 *   /usr/sbin/virtlogd -d -p DIR/virtlogd.pid   (qemu's console log goes through it)
 *   /usr/sbin/libvirtd -d -p DIR/libvirtd.pid   (its default config; qemu:///system)
 * then `virsh -c qemu:///system version` is polled until it answers. A daemon that is
 * already running is used as it is and left running. If libvirtd cannot be started,
 * start() throws with the reason: the test fails, it is not skipped.
 *
 * Several test files run at once and share the daemons: each registers its process
 * under STATE_DIR, start and stop hold a lock there, and the daemons this fixture
 * started end only when the last registered process stops (or has died).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { alive } from './process.js';

export const URI = 'qemu:///system';
const STATE_DIR = '/run/kvmconf-test-libvirtd';
const LOCK = join(STATE_DIR, 'lock');
const USERS = join(STATE_DIR, 'users');
const STARTED = join(STATE_DIR, 'started.json');

export interface Libvirtd {
  uri: string;
  /** True when the daemons run because this fixture started them. */
  started: boolean;
  stop(): void;
}

function answers(): boolean {
  return spawnSync('virsh', ['-c', URI, 'version'], { encoding: 'utf8', timeout: 10_000 }).status === 0;
}

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function startDaemon(binary: string, pidFile: string): number | undefined {
  if (!existsSync(binary)) throw new Error(`${binary} is missing: apt-get install -y --no-install-recommends $(cat test/helpers/LIBVIRT_APT_PACKAGES)`);
  const result = spawnSync(binary, ['-d', '-p', pidFile], { encoding: 'utf8', timeout: 30_000 });
  if (result.status !== 0) throw new Error(`${binary} -d failed (exit ${result.status}): ${result.stderr || result.stdout}`);
  for (let i = 0; i < 50 && !existsSync(pidFile); i++) sleep(100);
  return existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').trim()) : undefined;
}

function kill(pid: number | undefined): void {
  if (!pid) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    // already gone
  }
}

/**
 * On a real host udev gives /dev/kvm to group kvm (0660). Without udev, as in a test
 * container, it stays root-only: libvirt then probes QEMU's capabilities as root with
 * KVM, finds KVM unusable for its qemu user, calls the cached capabilities stale at
 * every lookup and probes again (about 4 s each, 30 s and more per `virsh define`).
 * This applies udev's permissions, which is what the host would have.
 */
function udevKvmPermissions(): void {
  if (!existsSync('/dev/kvm')) return;
  const gid = /^kvm:[^:]*:(\d+):/m.exec(readFileSync('/etc/group', 'utf8'))?.[1];
  const stat = statSync('/dev/kvm');
  if (gid === undefined || (stat.mode & 0o070) !== 0) return;
  chownSync('/dev/kvm', stat.uid, Number(gid));
  chmodSync('/dev/kvm', 0o660);
}

/** Is a process with this command name alive? (/proc, so no procps is needed.) */
function processRunning(name: string): boolean {
  return readdirSync('/proc').some((entry) => {
    if (!/^\d+$/.test(entry)) return false;
    try {
      return readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === name;
    } catch {
      return false;
    }
  });
}

/** Runs fn while holding the fixture's lock (a directory: mkdir is atomic). */
function locked<T>(fn: () => T): T {
  mkdirSync(USERS, { recursive: true });
  for (let waited = 0; ; waited += 100) {
    try {
      mkdirSync(LOCK);
      break;
    } catch {
      if (waited > 120_000) rmSync(LOCK, { recursive: true, force: true }); // a holder that died
      sleep(100);
    }
  }
  try {
    return fn();
  } finally {
    rmSync(LOCK, { recursive: true, force: true });
  }
}

/** The processes still using the daemons (dead ones are dropped). */
function liveUsers(): number[] {
  const pids = readdirSync(USERS).map(Number);
  for (const pid of pids.filter((p) => !alive(p))) unlinkSync(join(USERS, String(pid)));
  return pids.filter(alive);
}

function startDaemons(): void {
  udevKvmPermissions();
  // A socket file can outlive its virtlogd; only a running process counts.
  const virtlogd = processRunning('virtlogd') ? undefined : startDaemon('/usr/sbin/virtlogd', join(STATE_DIR, 'virtlogd.pid'));
  const libvirtd = answers() ? undefined : startDaemon('/usr/sbin/libvirtd', join(STATE_DIR, 'libvirtd.pid'));
  if (virtlogd === undefined && libvirtd === undefined) return;
  writeFileSync(STARTED, JSON.stringify({ libvirtd, virtlogd }));
  for (let i = 0; i < 100 && !answers(); i++) sleep(200);
  if (!answers()) {
    const why = spawnSync('virsh', ['-c', URI, 'version'], { encoding: 'utf8' }).stderr;
    stopDaemons();
    throw new Error(`libvirtd did not answer on ${URI} within 20 s: ${why}`);
  }
}

function stopDaemons(): void {
  if (!existsSync(STARTED)) return;
  const { libvirtd, virtlogd } = JSON.parse(readFileSync(STARTED, 'utf8')) as { libvirtd?: number; virtlogd?: number };
  kill(libvirtd);
  kill(virtlogd);
  for (let i = 0; i < 100 && [libvirtd, virtlogd].some((pid) => pid && alive(pid)); i++) sleep(100);
  unlinkSync(STARTED);
}

export function startLibvirtd(): Libvirtd {
  if (process.getuid?.() !== 0) throw new Error('the libvirt integration test needs root (it starts libvirtd and defines domains)');
  const me = join(USERS, String(process.pid));
  const started = locked(() => {
    writeFileSync(me, '');
    if (!answers() || !processRunning('virtlogd')) startDaemons();
    return existsSync(STARTED);
  });
  const stop = () =>
    locked(() => {
      rmSync(me, { force: true });
      if (liveUsers().length === 0) stopDaemons();
    });
  return { uri: URI, started, stop };
}

/** Runs virsh and returns stdout; throws with stderr. */
export function virsh(...args: string[]): string {
  return execFileSync('virsh', ['-c', URI, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}
