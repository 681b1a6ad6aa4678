/**
 * What an Ansible user writes that kvmconf does differently, each with its own answer:
 * Ansible's modules by their fully qualified names (did you mean kvmconf's module?), and
 * the keywords of Ansible's control flow, which kvmconf replaces with inventory data,
 * settings maps and its pending/reboot policy.
 */

/** Ansible modules (FQCN or short) whose job a kvmconf module does. */
const ANSIBLE_EQUIVALENTS: Record<string, string> = {
  'ansible.posix.sysctl': 'sysctl',
  'ansible.builtin.sysctl': 'sysctl',
  'ansible.builtin.service': 'service',
  'ansible.builtin.systemd': 'service',
  'ansible.builtin.systemd_service': 'service',
  systemd: 'service',
  systemd_service: 'service',
  'community.general.kernel_blacklist': 'kernel_module',
  'community.general.modprobe': 'kernel_module',
  modprobe: 'kernel_module',
  'community.libvirt.virt': 'libvirt_domain',
  virt: 'libvirt_domain',
};

/** kvmconf's module for an Ansible module name: the short name of a FQCN, or a known equivalent. */
export function moduleForAnsibleName(name: string, modules: Iterable<string>): string | undefined {
  const known = new Set(modules);
  const mapped = ANSIBLE_EQUIVALENTS[name];
  if (mapped && known.has(mapped)) return mapped;
  const short = name.split('.').at(-1)!;
  return name.includes('.') && known.has(short) ? short : undefined;
}

const FLOW = 'kvmconf plays are declarative: ';

/** Ansible task and play keywords kvmconf does not have, and what to do instead. */
export const ANSIBLE_ONLY_KEYWORDS: Record<string, string> = {
  when: `${FLOW}select hosts with inventory groups (hosts: or --limit) and give per-host values with group or host vars, instead of 'when'`,
  loop: `${FLOW}list every key in one task instead of a 'loop' (sysctl: a 'settings:' map; hugepages: 'pools:'; io_scheduler: a device pattern)`,
  with_items: `${FLOW}list every key in one task instead of 'with_items' (sysctl: a 'settings:' map; hugepages: 'pools:')`,
  register: `kvmconf has no task results to register: every task reports its changes in the run report (--format json)`,
  notify: `kvmconf has no handlers: a change that needs a reboot, module reload or guest restart is reported as pending (exit 3), or finished by the play's 'reboot: pending' and 'reload: pending'; libvirt_domain restarts guests with 'restart: true'`,
  handlers: `kvmconf has no handlers: changes that need a reboot, module reload or guest restart are reported as pending (exit 3), or finished by the play's 'reboot: pending' and 'reload: pending'; libvirt_domain restarts guests with 'restart: true'`,
  roles: `kvmconf has no roles: put the tasks in the play, or in another play of the playbook`,
  import_playbook: `kvmconf reads one playbook file: copy the plays into it, or run kvmconf once per playbook`,
  include_tasks: `kvmconf reads one playbook file: put the tasks in the play`,
  import_tasks: `kvmconf reads one playbook file: put the tasks in the play`,
  gather_facts: `kvmconf always gathers what its modules need, in one round trip per host: remove 'gather_facts'`,
  ignore_errors: `a failing task fails its host in kvmconf; other hosts go on (within max_fail_percentage)`,
  changed_when: `kvmconf decides 'changed' from the real state it reads: remove 'changed_when'`,
  failed_when: `kvmconf decides failure from the commands it runs and the state read back: remove 'failed_when'`,
  vars_files: `give variables in the inventory (group_vars/, host_vars/) or with -e @FILE instead of 'vars_files'`,
  pre_tasks: `kvmconf has only 'tasks': put these tasks first`,
  post_tasks: `kvmconf has only 'tasks': put these tasks last`,
  block: `kvmconf has no blocks: list the tasks in the play`,
};
