/**
 * Claims: what a task declares it sets on a host, typed by kind. The engine relates the
 * tasks of a play through them (conflicts, the one kernel command line edit, the files a
 * saved plan hashes) and a module that must know about other tasks reads their claims by
 * kind, so no module depends on another module's name or parameters.
 */

export type Claim =
  /** A kernel parameter under /proc/sys; `persistedIn` is the sysctl.d file that keeps it, null when runtime only. */
  | { kind: 'sysctl'; key: string; value: string; persistedIn: string | null }
  /** A sysfs attribute (a shell glob such as /sys/block/vd*\/queue/scheduler is one claim for every match). */
  | { kind: 'sysfs'; path: string; value: string }
  /** A kernel command line token, `name=value` or a bare `name`; a task's tokens keep their order. */
  | { kind: 'kernel-arg'; token: string }
  /** A kernel argument name that must not appear on the command line. */
  | { kind: 'kernel-arg-absent'; name: string }
  /** A file the task owns whole. */
  | { kind: 'file'; path: string }
  /** A systemd unit and what the task keeps it at (absent: left as it is). */
  | { kind: 'unit'; unit: string; state?: 'started' | 'stopped'; enabled?: boolean }
  /** A hugepage pool: pages of one size (null: the default size), on one NUMA node (null: the whole system). */
  | { kind: 'hugepage-pool'; sizeKiB: number | null; node: number | null; count: number };

export type ClaimKind = Claim['kind'];
export type ClaimOf<K extends ClaimKind> = Extract<Claim, { kind: K }>;

/** One task's claims, as the other tasks of the play see them. */
export interface TaskClaims {
  task: string;
  claims: readonly Claim[];
}

/**
 * Kernel command line tokens a task needs for its setting to hold after a reboot.
 * The engine merges every task's tokens into the one command line edit of the play,
 * so several modules never fight over /etc/default/grub.
 */
export interface KernelArgs {
  /** `name=value` or bare `name` tokens, in order (repeated names such as hugepagesz keep their order). */
  tokens: string[];
  /** Names that must not appear at all. */
  absent?: string[];
}

export function claimsOfKind<K extends ClaimKind>(claims: readonly Claim[], kind: K): Array<ClaimOf<K>> {
  return claims.filter((claim): claim is ClaimOf<K> => claim.kind === kind);
}

/** Every claim of one kind in the play, each with the task that made it. */
export function claimedInPlay<K extends ClaimKind>(tasks: readonly TaskClaims[], kind: K): Array<{ task: string; claim: ClaimOf<K> }> {
  return tasks.flatMap(({ task, claims }) => claimsOfKind(claims, kind).map((claim) => ({ task, claim })));
}

export const ownedFiles = (claims: readonly Claim[]): string[] => claimsOfKind(claims, 'file').map((claim) => claim.path);

export const fileClaims = (paths: readonly string[]): Claim[] => paths.map((path) => ({ kind: 'file', path }));

export function kernelArgClaims(args: KernelArgs): Claim[] {
  return [...args.tokens.map((token): Claim => ({ kind: 'kernel-arg', token })), ...(args.absent ?? []).map((name): Claim => ({ kind: 'kernel-arg-absent', name }))];
}

export function kernelArgsOf(claims: readonly Claim[]): KernelArgs {
  const absent = claimsOfKind(claims, 'kernel-arg-absent').map((claim) => claim.name);
  return { tokens: claimsOfKind(claims, 'kernel-arg').map((claim) => claim.token), ...(absent.length ? { absent } : {}) };
}

export const kernelArgName = (token: string): string => token.split('=')[0]!;
