/**
 * Test fixture: a real libvirtd (Debian's libvirt-daemon-system, packages listed in
 * LIBVIRT_APT_PACKAGES beside this file) for the libvirt integration test. There is no
 * systemd in the test container, so the daemons are started by hand, as root:
 *   /usr/sbin/virtlogd -d -p DIR/virtlogd.pid   (qemu's console log goes through it)
 *   /usr/sbin/libvirtd -d -p DIR/libvirtd.pid   (its default config; qemu:///system)
 * then `virsh -c qemu:///system version` is polled until it answers. A daemon that is
 * already running (socket answering) is used as it is and left running. If libvirtd
 * cannot be started, start() throws with the reason: the test fails, it is not skipped.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const URI = 'qemu:///system';

export interface Libvirtd {
  uri: string;
  /** True when this fixture started the daemons (and stop() ends them). */
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

export function startLibvirtd(): Libvirtd {
  if (process.getuid?.() !== 0) throw new Error('the libvirt integration test needs root (it starts libvirtd and defines domains)');
  if (answers()) return { uri: URI, started: false, stop: () => undefined };
  udevKvmPermissions();
  const dir = mkdtempSync(join(tmpdir(), 'kvmconf-libvirtd-'));
  const virtlogd = existsSync('/run/libvirt/virtlogd-sock') ? undefined : startDaemon('/usr/sbin/virtlogd', join(dir, 'virtlogd.pid'));
  const libvirtd = startDaemon('/usr/sbin/libvirtd', join(dir, 'libvirtd.pid'));
  for (let i = 0; i < 100 && !answers(); i++) sleep(200);
  const stop = () => {
    kill(libvirtd);
    kill(virtlogd);
    rmSync(dir, { recursive: true, force: true });
  };
  if (!answers()) {
    const why = spawnSync('virsh', ['-c', URI, 'version'], { encoding: 'utf8' }).stderr;
    stop();
    throw new Error(`libvirtd did not answer on ${URI} within 20 s: ${why}`);
  }
  return { uri: URI, started: true, stop };
}

/** Runs virsh and returns stdout; throws with stderr. */
export function virsh(...args: string[]): string {
  return execFileSync('virsh', ['-c', URI, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}
