/**
 * The real-VM test lab: boots Debian 12 VMs under QEMU for kvmconf's end-to-end
 * tests, with real kernels, real GRUB, real sysfs.
 *
 * API:
 *   ensureImage()            build or reuse the cached disk image (test/lab/build-image.sh)
 *   startVm(opts?)           boot one VM; resolves when SSH answers
 *   startLab(count, opts?)   boot several VMs in parallel
 *   writeInventory(vms, file, group?, user?)  Ansible-style YAML inventory for the CLI
 *   stopAll()                stop every VM this process started
 *
 * Every VM gets: a qcow2 overlay on the shared base image, two emulated NUMA
 * nodes, 2 vCPUs, user-mode networking with `restrict=on` (the guest reaches
 * nothing outside) and SSH forwarded to a free 127.0.0.1 port, a serial log in
 * .lab/run/NAME/serial.log, and a known_hosts file holding the VM's host key so
 * SSH host-key verification stays on.
 *
 * Vm: name, host, port, user, keyFile, knownHostsFile, run(cmd) (stdout, throws on failure), ssh(cmd, {user?, input?,
 * timeoutMs?}), bootId(), reboot(), waitForNewBoot(oldBootId) (for reboots the
 * code under test starts), stop() (graceful poweroff, then kill), kill() (pull
 * the plug), inventoryEntry(user?), serialTail().
 *
 * Fast starts: the first VM of a configuration is booted cold once, saved with a
 * QEMU migration to a file (.lab/snapshots/), and every later VM is restored from
 * that file into a fresh overlay (about 3 s instead of about 35 s under TCG). A
 * restored VM keeps the saved boot_id and gets its clock set from the host.
 * KVMCONF_LAB_SNAPSHOT=0 turns this off (every VM boots cold).
 *
 * Reboots: QEMU runs with -no-reboot. When the guest reboots (whoever asked), QEMU
 * exits and the lab starts it again on the same disk and port: the guest goes
 * through SeaBIOS, GRUB and a fresh kernel exactly as after a reset, but a fresh
 * QEMU process boots 3-8 times faster under TCG than a reset inside the old one.
 *
 * Environment:
 *   KVMCONF_LAB_ACCEL=kvm|tcg      force the accelerator (default: probe, see chooseAccel)
 *   KVMCONF_LAB_SNAPSHOT=0         cold boot every VM
 *   KVMCONF_LAB_BOOT_TIMEOUT=SEC   how long to wait for SSH after a cold boot (default 420)
 *
 * QEMU runs through a small perl wrapper that sets PR_SET_THP_DISABLE (no
 * transparent huge pages for QEMU's memory: a smaller footprint on the host)
 * and PR_SET_PDEATHSIG=SIGKILL (QEMU dies with the test process even when that
 * process is killed). VMs still alive at a normal exit are killed on 'exit'.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import YAML from 'yaml';

const execFileP = promisify(execFile);

// ------------------------------------------------------------------ paths

function findProjectRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('lab: no package.json above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
}

/** The project root (the folder holding package.json). */
export const PROJECT_ROOT = findProjectRoot();
/** Cache and runtime state of the lab (git-ignored). */
export const LAB_STATE_DIR = path.join(PROJECT_ROOT, '.lab');
const LAB_SRC_DIR = path.join(PROJECT_ROOT, 'test', 'lab');
const BUILD_SCRIPT = path.join(LAB_SRC_DIR, 'build-image.sh');
const RUN_DIR = path.join(LAB_STATE_DIR, 'run');
const SNAPSHOT_DIR = path.join(LAB_STATE_DIR, 'snapshots');

/** Bump when the QEMU command line changes in a way that breaks saved VMs. */
const MACHINE_VERSION = 'q35-numa2-noreboot-v2';

function log(msg: string): void {
  process.stderr.write(`[lab] ${msg}\n`);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Resolves true when `p` settles within `ms`, false otherwise; its timer never keeps the process alive. */
function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    timer.unref();
    p.then(
      () => (clearTimeout(timer), resolve(true)),
      () => (clearTimeout(timer), resolve(true)),
    );
  });
}

// ------------------------------------------------------------------ image

export interface ImageInfo {
  /** Folder of the built image: .lab/images/HASH */
  dir: string;
  /** Hash of the builder's files (test/lab/build-image.sh) that keys the cache. */
  hash: string;
  /** The base disk; VMs never write it (each gets an overlay). */
  disk: string;
  /** Direct-boot kernel and initrd copied from the image (used by the accelerator probe). */
  kernel: string;
  initrd: string;
  /** Private half of the lab SSH client key, authorized for root, kvmadmin and pwuser. */
  keyFile: string;
  /** The VM's SSH host key, e.g. "ssh-ed25519 AAAA... kvmlab-host". */
  hostKey: string;
  /** Sudo password of `pwuser` (kvmadmin has NOPASSWD sudo). */
  pwuserPassword: string;
  /** Seconds the build took, or null when a cached image was reused. */
  buildSeconds: number | null;
}

/** Key of the image cache: sha256 of the builder script, first 16 hex digits (build-image.sh computes the same). */
export function imageHash(): string {
  return createHash('sha256').update(fs.readFileSync(BUILD_SCRIPT)).digest('hex').slice(0, 16);
}

let imagePromise: Promise<ImageInfo> | undefined;

/** Builds the lab disk image, or reuses the cached one when the recipe is unchanged. */
export function ensureImage(): Promise<ImageInfo> {
  imagePromise ??= buildOrReuseImage().catch((e: unknown) => {
    imagePromise = undefined;
    throw e;
  });
  return imagePromise;
}

async function buildOrReuseImage(): Promise<ImageInfo> {
  const hash = imageHash();
  const dir = path.join(LAB_STATE_DIR, 'images', hash);
  let buildSeconds: number | null = null;
  if (!fs.existsSync(path.join(dir, 'READY'))) {
    log(`building image ${hash} (mmdebstrap + first boot installing GRUB; a few minutes)`);
    const t0 = Date.now();
    await new Promise<void>((resolve, reject) => {
      // the script takes a lock, so concurrent test processes build once
      const child = spawn('bash', [BUILD_SCRIPT, dir], { stdio: ['ignore', 'ignore', 'pipe'] });
      let tail = '';
      child.stderr.on('data', (d: Buffer) => {
        const s = d.toString();
        process.stderr.write(s);
        tail = (tail + s).slice(-4000);
      });
      child.on('error', reject);
      child.on('exit', (code) =>
        code === 0 ? resolve() : reject(new Error(`build-image.sh failed (exit ${code}):\n${tail}`)),
      );
    });
    buildSeconds = Math.round((Date.now() - t0) / 1000);
    log(`image build took ${buildSeconds} s`);
    removeStaleImages(hash);
  } else {
    log(`reusing cached image ${hash}`);
  }
  const keyFile = path.join(dir, 'id_ed25519');
  fs.chmodSync(keyFile, 0o600);
  return {
    dir,
    hash,
    disk: path.join(dir, 'base.qcow2'),
    kernel: path.join(dir, 'vmlinuz'),
    initrd: path.join(dir, 'initrd.img'),
    keyFile,
    hostKey: fs.readFileSync(path.join(dir, 'host_ed25519.pub'), 'utf8').trim(),
    pwuserPassword: fs.readFileSync(path.join(dir, 'pwuser.password'), 'utf8').trim(),
    buildSeconds,
  };
}

/** The entries of a folder; none when it does not exist. */
function entriesOf(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

/** Images and saved VMs of other recipes are deleted only when older than this (a test process started before the rebuild may still use one). */
const STALE_AFTER_MS = 3600_000;

function olderThan(file: string, ms: number): boolean {
  try {
    return Date.now() - fs.statSync(file).mtimeMs > ms;
  } catch {
    return true;
  }
}

/** After a rebuild: drops the images of older recipes and the saved VMs made from them. */
function removeStaleImages(current: string): void {
  const imagesDir = path.join(LAB_STATE_DIR, 'images');
  for (const entry of fs.readdirSync(imagesDir)) {
    if (entry === current || !/^[0-9a-f]{16}$/.test(entry)) continue;
    if (!olderThan(path.join(imagesDir, entry, 'READY'), STALE_AFTER_MS)) continue;
    fs.rmSync(path.join(imagesDir, entry), { recursive: true, force: true });
    fs.rmSync(path.join(imagesDir, `${entry}.lock`), { force: true });
  }
  removeStaleSnapshots(current);
}

/** Drops saved VMs of another image or another QEMU command line. */
function removeStaleSnapshots(currentImage: string): void {
  for (const entry of entriesOf(SNAPSHOT_DIR)) {
    try {
      const meta = JSON.parse(fs.readFileSync(path.join(SNAPSHOT_DIR, entry, 'meta.json'), 'utf8')) as { imageHash?: string; machine?: string };
      const stale = meta.imageHash !== currentImage || meta.machine !== MACHINE_VERSION;
      if (stale && olderThan(path.join(SNAPSHOT_DIR, entry, 'READY'), STALE_AFTER_MS)) {
        fs.rmSync(path.join(SNAPSHOT_DIR, entry), { recursive: true, force: true });
      }
    } catch {
      /* not a finished saved VM */
    }
  }
}

// ------------------------------------------------------------------ accelerator

export type Accel = 'kvm' | 'tcg';

interface AccelChoice {
  accel: Accel;
  reason: string;
}

let accelPromise: Promise<AccelChoice> | undefined;

/**
 * KVM when /dev/kvm opens and a probe boots the image's stock kernel (no root
 * fs: it boots until the root mount panics) within a few seconds; software
 * emulation (TCG) otherwise. The probe result is cached in .lab/accel-probe.json
 * per host kernel and QEMU binary. KVMCONF_LAB_ACCEL=kvm|tcg forces a choice.
 */
export function chooseAccel(image: ImageInfo): Promise<AccelChoice> {
  accelPromise ??= probeAccel(image);
  return accelPromise;
}

const KVM_PROBE_LIMIT_MS = 20_000;

async function probeAccel(image: ImageInfo): Promise<AccelChoice> {
  const forced = process.env.KVMCONF_LAB_ACCEL;
  if (forced === 'kvm' || forced === 'tcg') return { accel: forced, reason: 'forced by KVMCONF_LAB_ACCEL' };
  if (forced) throw new Error(`KVMCONF_LAB_ACCEL must be kvm or tcg, not ${forced}`);
  try {
    fs.closeSync(fs.openSync('/dev/kvm', 'r+'));
  } catch (e) {
    return { accel: 'tcg', reason: `/dev/kvm unusable (${(e as Error).message})` };
  }
  const { stdout: qemuVersion } = await execFileP('qemu-system-x86_64', ['--version']);
  const key = createHash('sha256')
    .update([os.release(), qemuVersion, image.hash].join('\n'))
    .digest('hex')
    .slice(0, 16);
  const cacheFile = path.join(LAB_STATE_DIR, 'accel-probe.json');
  try {
    const cached = JSON.parse(fs.readFileSync(cacheFile, 'utf8')) as AccelChoice & { key: string };
    if (cached.key === key) return { accel: cached.accel, reason: cached.reason + ' (cached probe)' };
  } catch {
    /* no cache */
  }
  const result = await runKvmProbe(image);
  fs.mkdirSync(LAB_STATE_DIR, { recursive: true });
  fs.writeFileSync(cacheFile, JSON.stringify({ key, ...result }, null, 2));
  return result;
}

async function runKvmProbe(image: ImageInfo): Promise<AccelChoice> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvmlab-probe-'));
  const serial = path.join(dir, 'serial.log');
  const t0 = Date.now();
  const child = spawn(
    'qemu-system-x86_64',
    [
      '-machine', 'q35', '-accel', 'kvm', '-cpu', 'host', '-smp', '1', '-m', '512',
      '-nodefaults', '-display', 'none', '-no-reboot',
      '-serial', `file:${serial}`,
      '-kernel', image.kernel,
      '-append', 'console=ttyS0 panic=-1 root=/dev/kvmlab-probe-none',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const timer = setTimeout(() => child.kill('SIGKILL'), KVM_PROBE_LIMIT_MS);
  await exited;
  clearTimeout(timer);
  const ms = Date.now() - t0;
  const out = fs.existsSync(serial) ? fs.readFileSync(serial, 'utf8') : '';
  fs.rmSync(dir, { recursive: true, force: true });
  if (/Kernel panic|VFS: Unable to mount root/.test(out)) {
    return { accel: 'kvm', reason: `KVM probe booted the stock kernel to its root mount in ${(ms / 1000).toFixed(1)} s` };
  }
  const lastLine = out.trim().split('\n').slice(-1)[0] ?? '';
  const why =
    ms >= KVM_PROBE_LIMIT_MS
      ? `did not reach the root mount within ${KVM_PROBE_LIMIT_MS / 1000} s (last console line: ${JSON.stringify(lastLine.slice(0, 120))})`
      : `QEMU exited after ${(ms / 1000).toFixed(1)} s: ${stderr.trim().split('\n').slice(-1)[0] ?? ''}`;
  return { accel: 'tcg', reason: `KVM probe failed: ${why}` };
}

// ------------------------------------------------------------------ QEMU process

/** perl-base is Essential in Debian: prctl(PR_SET_THP_DISABLE), prctl(PR_SET_PDEATHSIG, SIGKILL), exec. */
const WRAPPER = [
  '-e',
  'syscall(157, 41, 1, 0, 0, 0) == 0 or warn "PR_SET_THP_DISABLE: $!\\n";' +
    'syscall(157, 1, 9, 0, 0, 0) == 0 or warn "PR_SET_PDEATHSIG: $!\\n";' +
    'exit 1 if getppid() == 1;' +
    'exec { $ARGV[0] } @ARGV or die "exec $ARGV[0]: $!\\n";',
];

interface QemuConfig {
  name: string;
  accel: Accel;
  memoryMiB: number;
  /** vCPUs, half on each NUMA node */
  cpus: number;
  disk: string;
  port: number;
  serialLog: string;
  qmpSocket: string;
  /** appended to the QEMU command line, kept across guest reboots */
  extraArgs: string[];
  /** restore from this fd (3) instead of booting */
  incoming?: boolean;
}

/** QEMU option values: a comma is written twice */
const optValue = (v: string) => v.replace(/,/g, ',,');

function qemuArgs(c: QemuConfig): string[] {
  const half = c.memoryMiB / 2;
  const perNode = c.cpus / 2;
  const nodeCpus = (node: number) => (perNode === 1 ? `${node}` : `${node * perNode}-${node * perNode + perNode - 1}`);
  const accel = c.accel === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', 'tcg,thread=multi', '-cpu', 'max'];
  return [
    'qemu-system-x86_64',
    '-name', c.name,
    '-machine', 'q35',
    ...accel,
    '-smp', `${c.cpus},sockets=2,cores=${perNode},threads=1`,
    '-m', `${c.memoryMiB}M`,
    '-object', `memory-backend-ram,id=mem0,size=${half}M`,
    '-object', `memory-backend-ram,id=mem1,size=${half}M`,
    '-numa', `node,nodeid=0,cpus=${nodeCpus(0)},memdev=mem0`,
    '-numa', `node,nodeid=1,cpus=${nodeCpus(1)},memdev=mem1`,
    '-nodefaults', '-display', 'none', '-vga', 'none',
    // a guest reboot ends QEMU; the lab starts it again (see Vm.afterQemuExit)
    '-no-reboot',
    // appended: one log across the power cycles of a guest reboot
    '-chardev', `file,id=serial0,path=${optValue(c.serialLog)},append=on`,
    '-serial', 'chardev:serial0',
    '-drive', `file=${optValue(c.disk)},format=qcow2,if=virtio,cache=unsafe,discard=unmap`,
    '-netdev', `user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:${c.port}-:22`,
    '-device', 'virtio-net-pci,netdev=net0',
    '-device', 'virtio-rng-pci',
    '-qmp', `unix:${optValue(c.qmpSocket)},server=on,wait=off`,
    ...c.extraArgs,
    ...(c.incoming ? ['-incoming', 'fd:3'] : []),
  ];
}

/** Child processes of this test process, killed on exit whatever happens. */
const liveChildren = new Map<number, { child: ChildProcess; cleanup: string[] }>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const [pid, { cleanup }] of liveChildren) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
      for (const f of cleanup) fs.rmSync(f, { force: true });
    }
  });
}

interface QemuHandle {
  child: ChildProcess;
  exited: Promise<number | null>;
  stderr: () => string;
}

function launchQemu(cfg: QemuConfig, incomingFile?: string): QemuHandle {
  installExitHook();
  const args = qemuArgs(cfg);
  const stdio: ('ignore' | 'pipe' | number)[] = ['ignore', 'ignore', 'pipe'];
  let fd: number | undefined;
  if (incomingFile) {
    fd = fs.openSync(incomingFile, 'r');
    stdio.push(fd);
  }
  const child = spawn('perl', [...WRAPPER, ...args], { stdio });
  if (fd !== undefined) fs.closeSync(fd);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8000)));
  const exited = new Promise<number | null>((resolve) => {
    child.on('exit', (code) => {
      if (child.pid) liveChildren.delete(child.pid);
      resolve(code);
    });
    child.on('error', () => resolve(-1));
  });
  // on exit, a VM's own overlay goes with it (a saved VM's disk under .lab/snapshots stays)
  if (child.pid) liveChildren.set(child.pid, { child, cleanup: cfg.disk.startsWith(RUN_DIR + path.sep) ? [cfg.disk] : [] });
  return { child, exited, stderr: () => stderr };
}

// ------------------------------------------------------------------ QMP

class Qmp {
  private buf = '';
  private nextId = 1;
  private pending = new Map<string, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private greeted!: Promise<void>;
  /** resolves when the connection is gone (QEMU exited or close()) */
  closed!: Promise<void>;
  /** QMP events (SHUTDOWN, RESET, ...) as they arrive */
  onEvent: (event: string, data: Record<string, unknown> | undefined) => void = () => undefined;
  private constructor(private sock: net.Socket) {}

  /** Connects, retrying until timeoutMs or until `gone()` says QEMU has exited. */
  static async connect(file: string, timeoutMs = 15_000, gone: () => boolean = () => false): Promise<Qmp> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const sock = await new Promise<net.Socket>((resolve, reject) => {
          const s = net.createConnection(file);
          s.once('connect', () => resolve(s));
          s.once('error', reject);
        });
        const q = new Qmp(sock);
        q.start();
        await q.greeted;
        await q.execute('qmp_capabilities');
        sock.unref(); // QEMU's own process handle keeps the test process alive, not this socket
        return q;
      } catch (e) {
        if (Date.now() > deadline || gone()) throw new Error(`QMP ${file}: ${(e as Error).message}`);
        await sleep(100);
      }
    }
  }

  private start(): void {
    let greet!: () => void;
    let closed!: () => void;
    this.greeted = new Promise((r) => (greet = r));
    this.closed = new Promise((r) => (closed = r));
    this.sock.on('data', (d: Buffer) => {
      this.buf += d.toString();
      let i: number;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, i).trim();
        this.buf = this.buf.slice(i + 1);
        if (!line) continue;
        const msg = JSON.parse(line) as {
          QMP?: unknown; id?: string; return?: unknown; error?: { desc: string };
          event?: string; data?: Record<string, unknown>;
        };
        if (msg.QMP) greet();
        else if (msg.event) this.onEvent(msg.event, msg.data);
        else if (msg.id && this.pending.has(msg.id)) {
          const p = this.pending.get(msg.id)!;
          this.pending.delete(msg.id);
          if (msg.error) p.reject(new Error(msg.error.desc));
          else p.resolve(msg.return);
        }
      }
    });
    const fail = () => {
      for (const p of this.pending.values()) p.reject(new Error('QMP connection closed'));
      this.pending.clear();
      closed();
    };
    this.sock.on('close', fail);
    this.sock.on('error', fail);
  }

  execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    const id = String(this.nextId++);
    return new Promise((resolve, reject) => {
      if (this.sock.destroyed) return reject(new Error('QMP connection closed'));
      this.pending.set(id, { resolve, reject });
      this.sock.write(JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}), id }) + '\n');
    });
  }

  close(): void {
    this.sock.destroy();
  }
}

// ------------------------------------------------------------------ SSH

export interface SshResult {
  stdout: string;
  stderr: string;
  /** exit code of the remote command; 255 for an SSH failure */
  code: number;
}

export interface SshOptions {
  /** remote user (default root) */
  user?: string;
  /** text fed to the remote command's stdin */
  input?: string;
  /** kill ssh after this long and reject (default 600 s) */
  timeoutMs?: number;
}

/**
 * OpenSSH client arguments for the VM. `mux` names a ControlPath: commands then
 * share one connection (a handshake costs about a second under TCG); 'none'
 * forces a fresh connection (used to probe that sshd really answers).
 */
function sshArgs(port: number, keyFile: string, knownHostsFile: string, user: string, connectTimeoutS: number, mux: string): string[] {
  const muxArgs =
    mux === 'none'
      ? ['-o', 'ControlMaster=no', '-o', 'ControlPath=none']
      : ['-o', 'ControlMaster=auto', '-o', `ControlPath=${mux}`, '-o', 'ControlPersist=120'];
  return [
    '-F', '/dev/null',
    ...muxArgs,
    '-o', 'BatchMode=yes',
    '-o', 'StrictHostKeyChecking=yes',
    '-o', `UserKnownHostsFile=${knownHostsFile}`,
    '-o', 'GlobalKnownHostsFile=/dev/null',
    '-o', 'IdentitiesOnly=yes',
    '-o', `IdentityFile=${keyFile}`,
    '-o', `ConnectTimeout=${connectTimeoutS}`,
    '-o', 'ServerAliveInterval=5',
    '-o', 'ServerAliveCountMax=4',
    '-o', 'LogLevel=ERROR',
    '-p', String(port),
    '-l', user,
    '127.0.0.1',
  ];
}

function runSsh(args: string[], cmd: string, input: string | undefined, timeoutMs: number): Promise<SshResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('ssh', [...args, '--', cmd], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`ssh ${JSON.stringify(cmd)} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ stdout, stderr, code: code ?? 255 });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(input ?? '');
  });
}

// ------------------------------------------------------------------ VM

export interface VmOptions {
  /** VM name: its run folder is .lab/run/NAME (default vm-PID-N) */
  name?: string;
  /** total guest memory in MiB, split over the two NUMA nodes (default 1536) */
  memoryMiB?: number;
  /** boot cold even when a saved VM could be restored */
  coldBoot?: boolean;
  /** vCPUs, an even number split over the two NUMA nodes (default 2: one per node); each count has its own saved VM */
  cpus?: number;
  /**
   * Extra QEMU `-device` values (and the objects they need, as `-KIND VALUE` pairs), e.g. an
   * NVMe controller with SR-IOV. Such a VM always boots cold: a device may not migrate.
   */
  extraArgs?: string[];
}

export interface InventoryHostVars {
  ansible_host: string;
  ansible_port: number;
  ansible_user: string;
  ansible_ssh_private_key_file: string;
  kvmconf_known_hosts_file: string;
}

const DEFAULT_MEMORY_MIB = 1536;
const DEFAULT_CPUS = 2;
const bootTimeoutMs = () => Number(process.env.KVMCONF_LAB_BOOT_TIMEOUT ?? 420) * 1000;
const RESTORE_TIMEOUT_MS = 90_000;
const registry = new Set<Vm>();
let vmCounter = 0;
let accelLogged = false;
let gcDone = false;

/** Once per process: drops the overlays of VMs whose QEMU is gone (a test process killed hard). */
function gcRunDirs(): void {
  if (gcDone) return;
  gcDone = true;
  for (const n of entriesOf(RUN_DIR)) {
    const dir = path.join(RUN_DIR, n);
    try {
      const pid = Number(fs.readFileSync(path.join(dir, 'qemu.pid'), 'utf8'));
      if (pid && pidAlive(pid)) continue;
    } catch {
      /* no pid file */
    }
    fs.rmSync(path.join(dir, 'disk.qcow2'), { force: true });
  }
}

const isDown = (q: QemuHandle) => q.child.exitCode !== null || q.child.signalCode !== null;

export class Vm {
  readonly host = '127.0.0.1';
  readonly user = 'root';
  /** how the VM came up: a cold boot or a restore of the saved VM */
  startedBy: 'cold-boot' | 'restore' = 'cold-boot';
  /** seconds from launch until SSH answered */
  startSeconds = 0;
  private qemu!: QemuHandle;
  private qmp: Qmp | undefined;
  private stopped = false;
  private resetRequested = false;
  /** set while the lab restarts QEMU after a guest reboot */
  private transition: Promise<void> | undefined;
  private relaunchError: Error | undefined;
  private readonly muxUsers = new Set<string>();
  private readonly muxPath: string;

  private constructor(
    readonly name: string,
    readonly port: number,
    readonly keyFile: string,
    readonly knownHostsFile: string,
    readonly runDir: string,
    readonly accel: Accel,
    private readonly cfg: QemuConfig,
  ) {
    // unix socket paths are short (108 bytes): keep it in the temp folder
    this.muxPath = path.join(os.tmpdir(), `kvmlab-${process.pid}-${port}-%r`);
  }

  /** @internal */
  static async create(name: string, image: ImageInfo, accel: Accel, memoryMiB: number, runDir: string, disk: string, incomingFile?: string, cpus = DEFAULT_CPUS, extraArgs: string[] = []): Promise<Vm> {
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const knownHostsFile = path.join(runDir, 'known_hosts');
      fs.writeFileSync(knownHostsFile, `[127.0.0.1]:${port} ${image.hostKey}\n`);
      const cfg: QemuConfig = {
        name, accel, memoryMiB, cpus, disk, port,
        serialLog: path.join(runDir, 'serial.log'),
        qmpSocket: path.join(runDir, 'qmp.sock'),
        extraArgs,
      };
      const vm = new Vm(name, port, image.keyFile, knownHostsFile, runDir, accel, cfg);
      try {
        await vm.launch(incomingFile);
      } catch (e) {
        // the forwarded port was taken in between: retry on a new port
        if (/host forwarding|hostfwd|Address already in use/i.test((e as Error).message) && attempt < 4) continue;
        throw e;
      }
      registry.add(vm);
      return vm;
    }
  }

  /** Starts QEMU for this VM (restoring from `incomingFile` if given) and waits until it answers QMP. */
  private async launch(incomingFile?: string): Promise<void> {
    fs.rmSync(this.cfg.qmpSocket, { force: true });
    this.cfg.incoming = incomingFile !== undefined;
    this.resetRequested = false;
    const q = launchQemu(this.cfg, incomingFile);
    this.qemu = q;
    if (q.child.pid) fs.writeFileSync(path.join(this.runDir, 'qemu.pid'), String(q.child.pid));
    void q.exited.then(() => {
      if (q === this.qemu && !this.stopped) {
        this.transition = this.afterQemuExit().catch((e: unknown) => {
          this.relaunchError = e as Error;
        });
      }
    });
    // QEMU answers QMP only once its set-up is done (it exits at once on a bad option or a taken port)
    let qmp: Qmp | undefined;
    try {
      qmp = await Qmp.connect(this.cfg.qmpSocket, 30_000, () => isDown(q));
      await qmp.execute('query-status');
    } catch {
      qmp?.close();
      qmp = undefined;
    }
    if (!qmp) {
      if (!isDown(q)) {
        q.child.kill('SIGKILL');
        await q.exited;
        throw new Error(`QEMU for ${this.name} never answered on its QMP socket: ${q.stderr().trim()}`);
      }
      await q.exited;
      throw new Error(`QEMU for ${this.name} exited at once: ${q.stderr().trim()}`);
    }
    this.qmp = qmp;
    qmp.onEvent = (event, data) => {
      if (event === 'SHUTDOWN' && data?.reason === 'guest-reset') this.resetRequested = true;
    };
  }

  /**
   * QEMU runs with -no-reboot: a guest reboot ends the process, and the lab starts a
   * fresh one on the same disk and port (a power cycle; a reset inside one TCG
   * process was measured 3-8 times slower than a fresh boot). A poweroff stays off.
   */
  private async afterQemuExit(): Promise<void> {
    const old = this.qmp;
    if (old) await settlesWithin(old.closed, 2000); // the SHUTDOWN event comes before the socket closes
    const tail = readTail(this.cfg.serialLog, 400);
    if (!this.resetRequested && !/reboot: Restarting system/.test(tail)) return;
    log(`${this.name}: guest rebooted; starting QEMU again on the same disk and port ${this.port}`);
    for (let attempt = 1; ; attempt++) {
      if (this.stopped) return;
      try {
        await this.launch();
        return;
      } catch (e) {
        if (attempt >= 5) throw new Error(`${this.name}: could not start QEMU again after the guest rebooted: ${(e as Error).message}`);
        await sleep(1000);
      }
    }
  }

  get pid(): number | undefined {
    return this.qemu.child.pid;
  }

  /**
   * Runs `cmd` (a shell command line on the guest) through the system OpenSSH
   * client, host key checked against the lab known_hosts. Commands of one user
   * share a multiplexed connection. Never rejects for a non-zero exit: see `code`.
   */
  ssh(cmd: string, opts: SshOptions = {}): Promise<SshResult> {
    const user = opts.user ?? this.user;
    this.muxUsers.add(user);
    const args = sshArgs(this.port, this.keyFile, this.knownHostsFile, user, 15, this.muxPath);
    return runSsh(args, cmd, opts.input, opts.timeoutMs ?? 600_000);
  }

  /** Closes the shared SSH connections (before a reboot or a stop). */
  async closeSsh(): Promise<void> {
    await Promise.all(
      [...this.muxUsers].map((user) =>
        runSsh(['-O', 'exit', ...sshArgs(this.port, this.keyFile, this.knownHostsFile, user, 5, this.muxPath)], 'true', undefined, 10_000).catch(() => undefined),
      ),
    );
    this.muxUsers.clear();
  }

  /** ssh without the shared connection */
  private sshFresh(cmd: string, timeoutMs: number, connectTimeoutS = 15): Promise<SshResult> {
    const args = sshArgs(this.port, this.keyFile, this.knownHostsFile, this.user, connectTimeoutS, 'none');
    return runSsh(args, cmd, undefined, timeoutMs);
  }

  /** Resolves when an SSH handshake with `true` succeeds; rejects on QEMU exit or timeout (with the serial log's tail). */
  async waitForSsh(timeoutMs: number, what = 'SSH'): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    for (;;) {
      if (isDown(this.qemu)) {
        if (this.transition) {
          await this.transition; // a guest reboot: QEMU is being started again
          this.transition = undefined;
          if (!isDown(this.qemu)) continue;
        }
        const why = this.relaunchError?.message ?? `QEMU exited: ${this.qemu.stderr().trim()}`;
        throw new Error(`${this.name}: waiting for ${what}: ${why}\n${this.serialTail()}`);
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        throw new Error(`${this.name}: no ${what} on 127.0.0.1:${this.port} after ${Math.round(timeoutMs / 1000)} s (last ssh error: ${last.trim() || 'none'})\n${this.serialTail()}`);
      }
      try {
        const r = await this.sshFresh('true', Math.min(remaining, 30_000), Math.max(1, Math.min(5, Math.ceil(remaining / 1000))));
        if (r.code === 0) return;
        last = r.stderr;
        if (/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/.test(r.stderr)) {
          throw new Error(`${this.name}: host key verification failed: ${r.stderr.trim()}`);
        }
      } catch (e) {
        if ((e as Error).message.includes('host key verification')) throw e;
        last = (e as Error).message;
      }
      await sleep(500);
    }
  }

  /** The last lines of the VM's serial console log. */
  serialTail(lines = 40): string {
    try {
      const text = fs.readFileSync(this.cfg.serialLog, 'utf8');
      return `--- last ${lines} lines of ${this.cfg.serialLog} ---\n` + text.split('\n').slice(-lines).join('\n');
    } catch {
      return `(no serial log at ${this.cfg.serialLog})`;
    }
  }

  /** Runs a command as root over the lab's own OpenSSH client; its stdout, or an error with its stderr. */
  async run(cmd: string, timeoutMs = 300_000): Promise<string> {
    const r = await this.ssh(cmd, { timeoutMs });
    if (r.code !== 0) throw new Error(`${this.name}: ${cmd}: exit ${r.code}: ${r.stderr.trim()}`);
    return r.stdout;
  }

  /** /proc/sys/kernel/random/boot_id of the running kernel. */
  async bootId(): Promise<string> {
    const r = await this.ssh('cat /proc/sys/kernel/random/boot_id', { timeoutMs: 60_000 });
    if (r.code !== 0) throw new Error(`${this.name}: reading boot_id failed: ${r.stderr.trim()}`);
    return r.stdout.trim();
  }

  /** `systemctl reboot`, then waits until SSH answers with a new boot_id. */
  async reboot(timeoutMs = bootTimeoutMs()): Promise<void> {
    const before = await this.bootId();
    await this.closeSsh();
    const t0 = Date.now();
    // not awaited: the session may die with sshd before it reports back
    void this.sshFresh('systemctl reboot', 30_000).catch(() => undefined);
    await this.waitForNewBoot(before, timeoutMs);
    log(`${this.name}: rebooted in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }

  /**
   * Waits until SSH answers from a kernel whose boot_id differs from `previousBootId`
   * (also for reboots the code under test starts itself). Polls; never a fixed sleep.
   */
  async waitForNewBoot(previousBootId: string, timeoutMs = bootTimeoutMs()): Promise<void> {
    await this.closeSsh();
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      await this.waitForSsh(Math.max(1000, deadline - Date.now()), 'SSH after reboot');
      const r = await this.sshFresh('cat /proc/sys/kernel/random/boot_id', 30_000).catch(() => undefined);
      const id = r?.code === 0 ? r.stdout.trim() : '';
      if (id && id !== previousBootId) return;
      if (Date.now() > deadline) throw new Error(`${this.name}: boot_id did not change within ${timeoutMs / 1000} s\n${this.serialTail()}`);
      await sleep(500);
    }
  }

  /** Graceful poweroff over SSH; QEMU is killed if it has not exited within timeoutMs. */
  async stop(timeoutMs = 60_000): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.transition) await this.transition;
    if (!isDown(this.qemu)) {
      await this.closeSsh();
      void this.sshFresh('systemctl poweroff', 15_000).catch(() => undefined);
      if (!(await settlesWithin(this.qemu.exited, timeoutMs))) {
        log(`${this.name}: no poweroff within ${timeoutMs / 1000} s, killing QEMU`);
        this.qemu.child.kill('SIGKILL');
        await this.qemu.exited;
      }
    }
    this.release();
  }

  /** Hard stop (pulls the plug): for tests of an unreachable host. */
  async kill(): Promise<void> {
    this.stopped = true;
    if (this.transition) await this.transition;
    if (!isDown(this.qemu)) {
      this.qemu.child.kill('SIGKILL');
      await this.qemu.exited;
    }
    this.release();
  }

  private release(): void {
    registry.delete(this);
    this.qmp?.close();
    fs.rmSync(this.cfg.disk, { force: true });
    fs.rmSync(this.cfg.qmpSocket, { force: true });
  }

  /** Ansible-style host vars for this VM, for an inventory file. */
  inventoryEntry(user: string = this.user): InventoryHostVars {
    return {
      ansible_host: this.host,
      ansible_port: this.port,
      ansible_user: user,
      ansible_ssh_private_key_file: this.keyFile,
      kvmconf_known_hosts_file: this.knownHostsFile,
    };
  }

  /** @internal A QMP command on this VM's monitor. */
  qmpExecute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    if (!this.qmp) return Promise.reject(new Error(`${this.name}: no QMP connection`));
    return this.qmp.execute(command, args);
  }

  /** @internal The saved VM was stopped before saving: wait for the incoming migration, then run it. */
  async resumeAfterIncoming(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const st = (await this.qmpExecute('query-migrate')) as { status?: string; 'error-desc'?: string };
      if (st.status === 'completed') break;
      if (st.status === 'failed' || st.status === 'cancelled') throw new Error(`incoming migration ${st.status}: ${st['error-desc'] ?? ''}`);
      if (Date.now() > deadline) throw new Error(`incoming migration not done after ${timeoutMs / 1000} s (${st.status ?? 'no status'})`);
      await sleep(100);
    }
    const status = (await this.qmpExecute('query-status')) as { running?: boolean };
    if (!status.running) await this.qmpExecute('cont');
  }

  /** @internal Stops the process tracking for a VM whose QEMU quit by itself (the saved VM). */
  markStopped(): void {
    this.stopped = true;
    registry.delete(this);
    this.qmp?.close();
  }

  /** @internal */
  exited(): Promise<number | null> {
    return this.qemu.exited;
  }
}

function readTail(file: string, bytes: number): string {
  try {
    const fd = fs.openSync(file, 'r');
    try {
      const size = fs.fstatSync(fd).size;
      const buf = Buffer.alloc(Math.min(bytes, size));
      fs.readSync(fd, buf, 0, buf.length, size - buf.length);
      return buf.toString('utf8');
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return '';
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Prepares .lab/run/NAME: refuses a name whose QEMU still runs, clears a stale folder. */
function prepareRunDir(name: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) throw new Error(`lab: bad VM name ${JSON.stringify(name)}`);
  const dir = path.join(RUN_DIR, name);
  const pidFile = path.join(dir, 'qemu.pid');
  if (fs.existsSync(pidFile)) {
    const pid = Number(fs.readFileSync(pidFile, 'utf8'));
    if (pid && pidAlive(pid)) throw new Error(`lab: a VM named ${name} is already running (pid ${pid})`);
  }
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

async function createOverlay(file: string, backing: string): Promise<void> {
  await execFileP('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', backing, file]);
}

// ------------------------------------------------------------------ saved VM (snapshot)

interface Snapshot {
  dir: string;
  disk: string;
  state: string;
}

const snapshotPromises = new Map<string, Promise<Snapshot | null>>();

function snapshotsEnabled(): boolean {
  return process.env.KVMCONF_LAB_SNAPSHOT !== '0';
}

async function snapshotKey(image: ImageInfo, accel: Accel, memoryMiB: number, cpus: number): Promise<string> {
  const { stdout: qemuVersion } = await execFileP('qemu-system-x86_64', ['--version']);
  // the default CPU count leaves the key as it was, so saved VMs of that shape stay valid
  return createHash('sha256')
    .update([image.hash, accel, memoryMiB, qemuVersion, MACHINE_VERSION, PROJECT_ROOT, ...(cpus === DEFAULT_CPUS ? [] : [`cpus=${cpus}`])].join('\n'))
    .digest('hex')
    .slice(0, 16);
}

/** The saved VM for this configuration, made now if missing; null when saving failed (cold boots then). */
function ensureSnapshot(image: ImageInfo, accel: Accel, memoryMiB: number, cpus: number): Promise<Snapshot | null> {
  const mapKey = `${accel}/${memoryMiB}/${cpus}`;
  let p = snapshotPromises.get(mapKey);
  if (!p) {
    p = makeOrReuseSnapshot(image, accel, memoryMiB, cpus).catch((e: unknown) => {
      log(`saving a booted VM failed, VMs will boot cold: ${(e as Error).message}`);
      return null;
    });
    snapshotPromises.set(mapKey, p);
  }
  return p;
}

async function makeOrReuseSnapshot(image: ImageInfo, accel: Accel, memoryMiB: number, cpus: number): Promise<Snapshot | null> {
  const key = await snapshotKey(image, accel, memoryMiB, cpus);
  const dir = path.join(SNAPSHOT_DIR, key);
  const snap: Snapshot = { dir, disk: path.join(dir, 'disk.qcow2'), state: path.join(dir, 'state.bin') };
  const ready = () => fs.existsSync(path.join(dir, 'READY'));
  if (ready()) return snap;
  if (fs.existsSync(path.join(dir, 'FAILED'))) return null;
  const lock = path.join(SNAPSHOT_DIR, `${key}.lock`);
  fs.mkdirSync(SNAPSHOT_DIR, { recursive: true });
  // cross-process lock: mkdir is atomic; a lock whose owner died is taken over
  for (;;) {
    try {
      fs.mkdirSync(lock);
      fs.writeFileSync(path.join(lock, 'pid'), String(process.pid));
      break;
    } catch {
      const owner = Number(fs.readFileSync(path.join(lock, 'pid'), { encoding: 'utf8', flag: 'a+' }) || 0);
      if (owner && !pidAlive(owner)) {
        fs.rmSync(lock, { recursive: true, force: true });
        continue;
      }
      await sleep(1000);
      if (ready()) return snap;
    }
  }
  try {
    if (ready()) return snap;
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    const t0 = Date.now();
    await createOverlay(snap.disk, image.disk);
    const vm = await Vm.create(`save-${key}`, image, accel, memoryMiB, dir, snap.disk, undefined, cpus);
    try {
      await vm.waitForSsh(bootTimeoutMs(), 'SSH (cold boot of the VM to save)');
      const bootSeconds = (Date.now() - t0) / 1000;
      log(`cold boot under ${accel} took ${bootSeconds.toFixed(1)} s; saving the booted VM`);
      // settle: let boot-time jobs finish, flush the guest's page cache
      await vm.ssh('systemctl is-system-running --wait >/dev/null 2>&1; sync', { timeoutMs: 120_000 });
      const t1 = Date.now();
      await vm.qmpExecute('stop');
      await vm.qmpExecute('migrate-set-parameters', { 'max-bandwidth': 8 * 1024 * 1024 * 1024 });
      const tmp = snap.state + '.tmp';
      // QEMU runs "exec:" URIs through /bin/sh: the path is the lab's own, checked to be plain
      if (!/^[A-Za-z0-9/._-]+$/.test(tmp)) throw new Error(`lab: path unsuitable for an exec: migration: ${tmp}`);
      await vm.qmpExecute('migrate', { uri: `exec:cat > '${tmp}'` });
      for (;;) {
        const st = (await vm.qmpExecute('query-migrate')) as { status?: string; 'error-desc'?: string };
        if (st.status === 'completed') break;
        if (st.status === 'failed' || st.status === 'cancelled') throw new Error(`migration ${st.status}: ${st['error-desc'] ?? ''}`);
        await sleep(200);
      }
      await vm.qmpExecute('quit').catch(() => undefined);
      vm.markStopped();
      fs.renameSync(tmp, snap.state);
      if (!(await settlesWithin(vm.exited(), 10_000)) && vm.pid) {
        process.kill(vm.pid, 'SIGKILL'); // not vm.kill(): that would drop the saved disk
        await vm.exited();
      }
      const saveSeconds = (Date.now() - t1) / 1000;
      const size = fs.statSync(snap.state).size;
      log(`saved the booted VM in ${saveSeconds.toFixed(1)} s (${Math.round(size / 1048576)} MiB state)`);
      fs.writeFileSync(
        path.join(dir, 'meta.json'),
        JSON.stringify({ accel, memoryMiB, cpus, imageHash: image.hash, machine: MACHINE_VERSION, coldBootSeconds: bootSeconds, saveSeconds, stateBytes: size, savedAt: new Date().toISOString() }, null, 2),
      );
      fs.writeFileSync(path.join(dir, 'READY'), '');
      removeStaleSnapshots(image.hash);
      return snap;
    } catch (e) {
      await vm.kill().catch(() => undefined);
      throw e;
    } finally {
      registry.delete(vm);
    }
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
}

function markSnapshotBroken(snap: Snapshot, why: string): void {
  log(`restoring the saved VM failed (${why}); later VMs boot cold`);
  try {
    fs.rmSync(path.join(snap.dir, 'READY'), { force: true });
    fs.writeFileSync(path.join(snap.dir, 'FAILED'), why);
  } catch {
    /* ignore */
  }
}

// ------------------------------------------------------------------ public entry points

/**
 * Boots one VM (or restores the saved one) and resolves when SSH answers.
 * Prints the accelerator used and why, and how long the start took.
 */
export async function startVm(opts: VmOptions = {}): Promise<Vm> {
  const image = await ensureImage();
  const { accel, reason } = await chooseAccel(image);
  const name = opts.name ?? `vm-${process.pid}-${++vmCounter}`;
  const memoryMiB = opts.memoryMiB ?? DEFAULT_MEMORY_MIB;
  if (memoryMiB % 4 !== 0 || memoryMiB < 512) throw new Error(`lab: memoryMiB must be a multiple of 4 and >= 512, not ${memoryMiB}`);
  const cpus = opts.cpus ?? DEFAULT_CPUS;
  if (!Number.isInteger(cpus) || cpus < 2 || cpus % 2 !== 0 || cpus > 16) throw new Error(`lab: cpus must be an even number from 2 to 16, not ${cpus}`);
  if (!accelLogged) {
    accelLogged = true;
    log(`accelerator ${accel}: ${reason}`);
  }
  gcRunDirs();

  const extraArgs = opts.extraArgs ?? [];
  const snap = snapshotsEnabled() && !opts.coldBoot && extraArgs.length === 0 ? await ensureSnapshot(image, accel, memoryMiB, cpus) : null;
  if (snap && fs.existsSync(path.join(snap.dir, 'READY'))) {
    const runDir = prepareRunDir(name);
    const disk = path.join(runDir, 'disk.qcow2');
    await createOverlay(disk, snap.disk);
    const t0 = Date.now();
    const vm = await Vm.create(name, image, accel, memoryMiB, runDir, disk, snap.state, cpus);
    try {
      await vm.resumeAfterIncoming(RESTORE_TIMEOUT_MS);
      await vm.waitForSsh(RESTORE_TIMEOUT_MS, 'SSH after restore');
      // the saved guest clock is behind: set it from the host
      await vm.ssh(`date -u -s @${Math.floor(Date.now() / 1000)} >/dev/null`, { timeoutMs: 30_000 });
      vm.startedBy = 'restore';
      vm.startSeconds = (Date.now() - t0) / 1000;
      log(`${name}: restored the saved VM in ${vm.startSeconds.toFixed(1)} s, ssh on 127.0.0.1:${vm.port}`);
      return vm;
    } catch (e) {
      await vm.kill().catch(() => undefined);
      markSnapshotBroken(snap, (e as Error).message.split('\n')[0] ?? 'unknown');
    }
  }

  const runDir = prepareRunDir(name);
  const disk = path.join(runDir, 'disk.qcow2');
  await createOverlay(disk, image.disk);
  const t0 = Date.now();
  const vm = await Vm.create(name, image, accel, memoryMiB, runDir, disk, undefined, cpus, extraArgs);
  try {
    await vm.waitForSsh(bootTimeoutMs(), 'SSH after a cold boot');
  } catch (e) {
    await vm.kill().catch(() => undefined);
    throw e;
  }
  vm.startSeconds = (Date.now() - t0) / 1000;
  log(`${name}: cold boot under ${accel} took ${vm.startSeconds.toFixed(1)} s, ssh on 127.0.0.1:${vm.port}`);
  return vm;
}

/** Starts `count` VMs in parallel (names PREFIX1..PREFIXn, default prefix "hv-PID-"); stops them all if one fails. */
export async function startLab(count: number, opts: { namePrefix?: string; memoryMiB?: number } = {}): Promise<Vm[]> {
  const prefix = opts.namePrefix ?? `hv-${process.pid}-`;
  const results = await Promise.allSettled(
    Array.from({ length: count }, (_, i) => startVm({ name: `${prefix}${i + 1}`, memoryMiB: opts.memoryMiB })),
  );
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  const vms = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  if (failed) {
    await Promise.all(vms.map((vm) => vm.stop()));
    throw failed.reason;
  }
  return vms;
}

/**
 * Writes an Ansible-style YAML inventory:
 *   all: { children: { GROUP: { hosts: { NAME: {ansible_host, ansible_port, ...} } } } }
 */
export async function writeInventory(vms: Vm[], file: string, groupName = 'hypervisors', user?: string): Promise<void> {
  const hosts: Record<string, InventoryHostVars> = {};
  for (const vm of vms) hosts[vm.name] = vm.inventoryEntry(user);
  const doc = { all: { children: { [groupName]: { hosts } } } };
  await fsp.mkdir(path.dirname(file), { recursive: true });
  await fsp.writeFile(file, YAML.stringify(doc));
}

/** Stops (gracefully, then by force) every VM this process started and has not stopped yet. */
export async function stopAll(): Promise<void> {
  await Promise.all([...registry].map((vm) => vm.stop()));
}

// ------------------------------------------------------------------ measuring

/**
 * `node dist/test/lab/lab.js measure` prints the figures of test/lab/README.md:
 * image build (or reuse), a cold boot, a restore of the saved VM, an SSH
 * round trip, update-grub, a reboot and a stop.
 */
async function measure(): Promise<void> {
  const t = async <T>(what: string, f: () => Promise<T>): Promise<T> => {
    const t0 = Date.now();
    const r = await f();
    console.log(`${what}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    return r;
  };
  try {
    const image = await t('ensureImage', ensureImage);
    console.log(`image build: ${image.buildSeconds === null ? 'cached' : `${image.buildSeconds} s`}`);
    const { accel, reason } = await chooseAccel(image);
    console.log(`accelerator: ${accel} (${reason})`);
    const cold = await t('cold boot to SSH (incl. overlay)', () => startVm({ name: `measure-cold-${process.pid}`, coldBoot: true }));
    await t('ssh true (first, opens the shared connection)', () => cold.ssh('true'));
    await t('ssh true (shared connection)', () => cold.ssh('true'));
    await t('update-grub', () => cold.ssh('update-grub >/dev/null 2>&1'));
    await t('reboot (to a new boot_id)', () => cold.reboot());
    await t('stop (graceful poweroff)', () => cold.stop());
    const warm = await t('startVm (restore or save+restore)', () => startVm({ name: `measure-warm-${process.pid}` }));
    console.log(`  started by ${warm.startedBy}`);
    await t('stop', () => warm.stop());
    const again = await t('startVm again', () => startVm({ name: `measure-again-${process.pid}` }));
    console.log(`  started by ${again.startedBy}`);
    await t('reboot of that VM', () => again.reboot());
    const lab = await t('startLab(3)', () => startLab(3, { namePrefix: `measure-lab-${process.pid}-` }));
    await t('stopAll', stopAll);
    void lab;
  } finally {
    await stopAll();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] === 'measure') {
  measure().catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  });
}
