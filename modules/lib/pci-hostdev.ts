/**
 * Which running libvirt domain holds which host PCI device, read from libvirt's status
 * XML of its running domains (/run/libvirt/qemu/NAME.xml, written by libvirtd for every
 * domain it runs, the file named after the domain) rather than asked of virsh: one awk
 * over every file, however many guests and devices the host has. A device is held when
 * it is the `<source><address .../></source>` of a `<hostdev type='pci'>` or of an
 * `<interface type='hostdev'>` (an SR-IOV VF given as a NIC); the `<address>` outside
 * `<source>` is the guest's side and is skipped.
 *
 * The awk functions are shared by the libvirt facts reader and the sriov probe, so both
 * see the same holders. Plain POSIX awk (mawk has no strtonum: hex is converted here).
 */

/** Where libvirtd keeps the status XML of the domains it runs. */
export const LIBVIRT_STATUS_DIR = '/run/libvirt/qemu';

/**
 * hd_line(LINE, DOMAIN, TAG) reads one line of a status XML and prints `TAG<tab>DOMAIN<tab>ADDRESS`
 * for a held device's source address (`0000:03:10.0`); hd_reset() starts a new file.
 */
export const HOSTDEV_AWK = String.raw`
function hd_hex(s,   n, i, c) {
  s = tolower(s); sub(/^0x/, "", s); n = 0
  if (s == "") return -1
  for (i = 1; i <= length(s); i++) { c = index("0123456789abcdef", substr(s, i, 1)); if (!c) return -1; n = n * 16 + c - 1 }
  return n
}
function hd_attr(l, name,   v) {
  if (!match(l, "[ \t]" name "=['\"][^'\"]*['\"]")) return ""
  v = substr(l, RSTART + length(name) + 3, RLENGTH - length(name) - 4)
  return v
}
function hd_reset() { hd_dev = 0; hd_src = 0 }
function hd_line(l, dom, tag,   d, b, s, f) {
  if (l ~ /<hostdev[ >]/ && l ~ /type=['"]pci['"]/) hd_dev = 1
  else if (l ~ /<interface[ >]/ && l ~ /type=['"]hostdev['"]/) hd_dev = 1
  if (hd_dev && l ~ /<source[ >]/) hd_src = 1
  if (hd_dev && hd_src && l ~ /<address[ \/]/) {
    d = hd_hex(hd_attr(l, "domain")); b = hd_hex(hd_attr(l, "bus")); s = hd_hex(hd_attr(l, "slot")); f = hd_hex(hd_attr(l, "function"))
    if (d >= 0 && b >= 0 && s >= 0 && f >= 0) printf "%s\t%s\t%04x:%02x:%02x.%x\n", tag, dom, d, b, s, f
  }
  if (l ~ /<\/source>/ || l ~ /<source[^>]*\/>/) hd_src = 0
  if (l ~ /<\/hostdev>/ || l ~ /<\/interface>/) hd_reset()
}
`;

/** The domain name of a status file: its base name without `.xml`, as libvirtd writes it. */
export const HOSTDEV_DOMAIN_AWK = String.raw`function hd_domain(f) { sub(/^.*\//, "", f); sub(/\.xml$/, "", f); return f }`;

/** An awk program over status XML files: each held device as `TAG<tab>DOMAIN<tab>ADDRESS`, TAG from `-v tag=`. */
export const HOSTDEV_PROGRAM = `${HOSTDEV_AWK}\n${HOSTDEV_DOMAIN_AWK}\nFNR == 1 { hd_reset(); dom = hd_domain(FILENAME) }\n{ hd_line($0, dom, tag) }`;

/**
 * Shell fragment: one awk over every status XML, each held device printed as
 * `TAG<tab>DOMAIN<tab>ADDRESS`; `TAG-unreadable` when the folder exists but this user
 * cannot list it (libvirtd keeps it root-only). No running domain: nothing printed.
 */
export function hostdevProbe(tag: string): string {
  return [
    `if [ -d ${LIBVIRT_STATUS_DIR} ] && ! { [ -r ${LIBVIRT_STATUS_DIR} ] && [ -x ${LIBVIRT_STATUS_DIR} ]; }; then printf '%s\\n' '${tag}-unreadable'`,
    `else set -- ${LIBVIRT_STATUS_DIR}/*.xml; [ -e "$1" ] && awk -v tag='${tag}' '${HOSTDEV_PROGRAM.replace(/'/g, `'\\''`)}' "$@" 2>/dev/null; fi`,
  ].join('\n');
}

/** A host PCI device held by a running domain. */
export interface HeldDevice {
  domain: string;
  address: string;
}

/** `TAG<tab>DOMAIN<tab>ADDRESS` lines of hostdevProbe (or the facts reader) -> the devices held. */
export function parseHeld(fields: string[]): HeldDevice | null {
  const [, domain = '', address = ''] = fields;
  return domain && /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/.test(address) ? { domain, address } : null;
}
