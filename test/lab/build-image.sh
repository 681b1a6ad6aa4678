#!/bin/bash
# Builds the lab's Debian 12 (bookworm) disk image for kvmconf's real-VM tests.
#
# Usage: test/lab/build-image.sh [OUTDIR]
#
# OUTDIR defaults to .lab/images/<first 16 hex digits of sha256(this file)>, the
# same key test/lab/lab.ts computes, so the image is rebuilt only when this
# recipe changes. When OUTDIR/READY exists the script does nothing.
#
# Output in OUTDIR:
#   base.qcow2          the disk: MBR, one ext4 partition, GRUB (i386-pc) on the disk
#   id_ed25519[.pub]    the lab's SSH client key (made for this image, authorized
#                       for root, kvmadmin and pwuser)
#   host_ed25519.pub    the VM's SSH host key (public half) for known_hosts
#   pwuser.password     the sudo password of pwuser
#   build.log, firstboot-serial.log, build-seconds, READY
#
# Route (this machine's kernel gives loop devices no partitions): mmdebstrap into
# a directory, sfdisk an MBR onto a sparse raw file, mke2fs -d writes the
# populated ext4 straight into the partition, then one boot with QEMU direct
# kernel boot runs grub-install + update-grub inside the guest and powers off.
# From then on the image boots through SeaBIOS and GRUB like a real host.
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
LAB_DIR=$(dirname "$SELF")
ROOT=$(cd "$LAB_DIR/../.." && pwd)
HASH=$(sha256sum "$SELF" | cut -c1-16)
OUT=${1:-$ROOT/.lab/images/$HASH}

DISK_MIB=4096              # virtual size of the disk
PART_START_SECTOR=2048     # partition 1 starts at 1 MiB
ROOT_UUID=6b1c2a8e-4f3d-4a59-9d1e-7c0b5a3e2f10
SUITE=bookworm
PWUSER_PASSWORD=kvmlab-pwuser
SOURCES=${KVMCONF_LAB_APT_SOURCES:-/etc/apt/sources.list.d/debian.sources}

PACKAGES=(
  systemd systemd-sysv udev dbus libpam-systemd
  openssh-server sudo tuned kmod procps ethtool numactl iproute2 util-linux
  e2fsprogs initramfs-tools zstd linux-image-amd64 grub-pc
  # the hypervisor side of the guest tests: libvirt and the QEMU it runs guests with
  libvirt-daemon-system libvirt-clients qemu-system-x86
)

log() { printf '[build-image %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (mmdebstrap, mke2fs -d with ownership)"
for tool in mmdebstrap sfdisk mke2fs qemu-system-x86_64 qemu-img ssh-keygen flock; do
  command -v "$tool" >/dev/null || die "missing $tool (see test/lab/APT_PACKAGES)"
done
[ -r "$SOURCES" ] || die "apt sources file $SOURCES not found"

mkdir -p "$(dirname "$OUT")"
exec 9>"$OUT.lock"
flock 9
if [ -e "$OUT/READY" ]; then
  log "image already built: $OUT"
  echo "$OUT"
  exit 0
fi

START=$(date +%s)
WORK="$OUT.tmp"
rm -rf "$WORK"
mkdir -p "$WORK"
ROOTFS="$WORK/rootfs"
cleanup() {
  # the rootfs holds a Debian tree owned by root; drop it on any exit
  rm -rf "$ROOTFS"
}
trap cleanup EXIT

# ---------------------------------------------------------------- rootfs
log "mmdebstrap $SUITE into $ROOTFS (sources: $SOURCES)"
DPKG_EXCLUDES=(
  'path-exclude=/usr/share/man/*'
  'path-exclude=/usr/share/info/*'
  'path-exclude=/usr/share/doc/*'
  'path-include=/usr/share/doc/*/copyright'
  'path-exclude=/usr/share/locale/*'
  'path-include=/usr/share/locale/locale.alias'
  'path-exclude=/usr/share/lintian/*'
  'path-exclude=/lib/modules/*/kernel/drivers/gpu/*'
  'path-exclude=/lib/modules/*/kernel/drivers/media/*'
  'path-exclude=/lib/modules/*/kernel/drivers/net/wireless/*'
  'path-exclude=/lib/modules/*/kernel/drivers/infiniband/*'
  'path-exclude=/lib/modules/*/kernel/drivers/staging/*'
  'path-exclude=/lib/modules/*/kernel/drivers/bluetooth/*'
  'path-exclude=/lib/modules/*/kernel/sound/*'
  'path-exclude=/lib/modules/*/kernel/net/bluetooth/*'
  'path-exclude=/lib/modules/*/kernel/net/mac80211/*'
  'path-exclude=/lib/modules/*/kernel/net/wireless/*'
)
MM_ARGS=(--mode=root --variant=minbase --format=directory
  --aptopt='APT::Install-Recommends "false"'
  --aptopt='APT::Install-Suggests "false"'
  --include="$(IFS=,; echo "${PACKAGES[*]}")"
  # initramfs: only what a virtio-blk ext4 root needs (a small initrd boots
  # faster under emulation; update-initramfs in the guest keeps this); no resume device
  --essential-hook='mkdir -p "$1/etc/initramfs-tools/conf.d" && echo RESUME=none > "$1/etc/initramfs-tools/conf.d/resume" && echo MODULES=list > "$1/etc/initramfs-tools/conf.d/lab-modules" && printf "%s\n" virtio_pci virtio_blk virtio_scsi sd_mod ext4 crc32c_generic >> "$1/etc/initramfs-tools/modules"'
  --customize-hook='chroot "$1" apt-get clean'
)
for opt in "${DPKG_EXCLUDES[@]}"; do MM_ARGS+=(--dpkgopt="$opt"); done
mmdebstrap "${MM_ARGS[@]}" "$SUITE" "$ROOTFS" "$SOURCES" >"$WORK/mmdebstrap.log" 2>&1 \
  || { tail -n 40 "$WORK/mmdebstrap.log" >&2; die "mmdebstrap failed"; }
log "mmdebstrap done after $(( $(date +%s) - START )) s"

# ---------------------------------------------------------------- configuration
echo kvmlab >"$ROOTFS/etc/hostname"
cat >"$ROOTFS/etc/hosts" <<'EOF'
127.0.0.1	localhost
127.0.1.1	kvmlab
::1		localhost ip6-localhost ip6-loopback
EOF
echo "UUID=$ROOT_UUID / ext4 defaults,errors=remount-ro 0 1" >"$ROOTFS/etc/fstab"

# GRUB: serial console, no menu delay. GRUB_CMDLINE_LINUX stays empty for the
# code under test to edit; the console lives in GRUB_CMDLINE_LINUX_DEFAULT.
GRUB_DEFAULT_FILE="$ROOTFS/etc/default/grub"
sed -i \
  -e 's/^GRUB_TIMEOUT=.*/GRUB_TIMEOUT=0/' \
  -e 's/^GRUB_CMDLINE_LINUX_DEFAULT=.*/GRUB_CMDLINE_LINUX_DEFAULT="console=ttyS0,115200n8"/' \
  -e 's/^GRUB_CMDLINE_LINUX=.*/GRUB_CMDLINE_LINUX=""/' \
  -e 's/^#\?GRUB_TERMINAL=.*/GRUB_TERMINAL=serial/' \
  "$GRUB_DEFAULT_FILE"
cat >>"$GRUB_DEFAULT_FILE" <<'EOF'
GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"
GRUB_TIMEOUT_STYLE=hidden
GRUB_RECORDFAIL_TIMEOUT=0
GRUB_DISABLE_OS_PROBER=true
EOF
grep -q '^GRUB_TERMINAL=serial' "$GRUB_DEFAULT_FILE" || echo 'GRUB_TERMINAL=serial' >>"$GRUB_DEFAULT_FILE"

# Network: DHCP on the first wired NIC (QEMU user networking), no wait-online.
mkdir -p "$ROOTFS/etc/systemd/network"
cat >"$ROOTFS/etc/systemd/network/20-wired.network" <<'EOF'
[Match]
Name=en* eth*

[Network]
DHCP=ipv4
LinkLocalAddressing=no
IPv6AcceptRA=no
EOF
chroot "$ROOTFS" systemctl enable systemd-networkd.service >/dev/null 2>&1
# Quiet, fast boots: nothing in the background that the tests did not start.
for unit in systemd-networkd-wait-online.service apt-daily.timer apt-daily-upgrade.timer \
  e2scrub_all.timer e2scrub_reap.service fstrim.timer systemd-timesyncd.service; do
  ln -sf /dev/null "$ROOTFS/etc/systemd/system/$unit"
done
# libvirt: libvirtd starts on the first client (socket activation), not at boot, so it
# costs nothing to the tests that do not use it; no default NAT network (no dnsmasq,
# no bridge) and no libvirt-guests suspend at poweroff.
chroot "$ROOTFS" systemctl disable libvirtd.service >/dev/null 2>&1
chroot "$ROOTFS" systemctl enable libvirtd.socket libvirtd-ro.socket libvirtd-admin.socket >/dev/null 2>&1
ln -sf /dev/null "$ROOTFS/etc/systemd/system/libvirt-guests.service"
# No nested KVM on the SVM that TCG emulates: udev does not load kvm_amd/kvm_intel (an
# explicit modprobe still does), so there is no /dev/kvm and libvirt probes TCG only.
printf 'blacklist kvm_amd\nblacklist kvm_intel\n' >"$ROOTFS/etc/modprobe.d/lab-no-nested-kvm.conf"
rm -f "$ROOTFS/etc/libvirt/qemu/networks/autostart/default.xml"
mkdir -p "$ROOTFS/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=volatile\nRuntimeMaxUse=32M\n' >"$ROOTFS/etc/systemd/journald.conf.d/lab.conf"

# SSH: one host key (ed25519), made here so the lab knows it; no DNS lookups.
rm -f "$ROOTFS"/etc/ssh/ssh_host_*
ssh-keygen -q -t ed25519 -N '' -C kvmlab-host -f "$ROOTFS/etc/ssh/ssh_host_ed25519_key"
cat >"$ROOTFS/etc/ssh/sshd_config.d/10-kvmlab.conf" <<'EOF'
HostKey /etc/ssh/ssh_host_ed25519_key
UseDNS no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
MaxStartups 100:30:200
EOF
cp "$ROOTFS/etc/ssh/ssh_host_ed25519_key.pub" "$WORK/host_ed25519.pub"

# The lab's client key, made once per image build and kept beside the image.
ssh-keygen -q -t ed25519 -N '' -C kvmlab-client -f "$WORK/id_ed25519"
PUBKEY=$(cat "$WORK/id_ed25519.pub")

# No logind session per SSH login: under software emulation pam_systemd (and the
# per-user systemd instance it starts) roughly doubles the cost of every login.
sed -i '/pam_systemd\.so/s/^/# lab: /' "$ROOTFS/etc/pam.d/common-session"
# update-grub runs only the generators a BIOS VM needs (it is slow under TCG)
chmod -x "$ROOTFS"/etc/grub.d/05_debian_theme "$ROOTFS"/etc/grub.d/20_linux_xen \
  "$ROOTFS"/etc/grub.d/30_uefi-firmware 2>/dev/null || true

chroot "$ROOTFS" useradd -m -s /bin/bash kvmadmin
chroot "$ROOTFS" useradd -m -s /bin/bash -G sudo pwuser
echo "pwuser:$PWUSER_PASSWORD" | chroot "$ROOTFS" chpasswd
echo "$PWUSER_PASSWORD" >"$WORK/pwuser.password"
echo 'kvmadmin ALL=(ALL:ALL) NOPASSWD: ALL' >"$ROOTFS/etc/sudoers.d/kvmadmin"
chmod 0440 "$ROOTFS/etc/sudoers.d/kvmadmin"
for user in root kvmadmin pwuser; do
  home=$( [ "$user" = root ] && echo /root || echo "/home/$user" )
  install -d -m 0700 "$ROOTFS$home/.ssh"
  echo "$PUBKEY" >"$ROOTFS$home/.ssh/authorized_keys"
  chmod 0600 "$ROOTFS$home/.ssh/authorized_keys"
  chroot "$ROOTFS" chown -R "$user:" "$home/.ssh"
done

# First-boot script: run as init= once under direct kernel boot.
cat >"$ROOTFS/usr/local/sbin/lab-firstboot" <<'EOF'
#!/bin/sh
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
mount -t proc proc /proc 2>/dev/null
mount -t sysfs sysfs /sys 2>/dev/null
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -o remount,rw /
# This file stays in the image (it only runs when init= names it): removing it
# while sh reads it would keep / from being remounted read-only below.
if grub-install --target=i386-pc /dev/vda && update-grub && grep -q '^[[:space:]]*linux' /boot/grub/grub.cfg; then
  RESULT=LAB-FIRSTBOOT-OK
else
  RESULT=LAB-FIRSTBOOT-FAILED
fi
sync
mount -o remount,ro / && echo LAB-ROOT-READONLY >/dev/ttyS0
echo "$RESULT" >/dev/ttyS0
# immediate power-off (reboot(2)); no system manager is running
systemctl --force --force poweroff
echo o >/proc/sysrq-trigger
EOF
chmod 0755 "$ROOTFS/usr/local/sbin/lab-firstboot"

rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/var/cache/apt/archives/*.deb \
  "$ROOTFS"/var/log/*.log "$ROOTFS"/tmp/* 2>/dev/null || true
: >"$ROOTFS/etc/machine-id"

KERNEL=$(ls "$ROOTFS"/boot/vmlinuz-* | sort -V | tail -n1)
INITRD=$(ls "$ROOTFS"/boot/initrd.img-* | sort -V | tail -n1)
cp "$KERNEL" "$WORK/vmlinuz"
cp "$INITRD" "$WORK/initrd.img"
log "rootfs: $(du -sm "$ROOTFS" | cut -f1) MiB, kernel $(basename "$KERNEL")"

# ---------------------------------------------------------------- disk
RAW="$WORK/disk.raw"
truncate -s "${DISK_MIB}M" "$RAW"
printf 'label: dos\nstart=%s, type=83, bootable\n' "$PART_START_SECTOR" | sfdisk -q "$RAW"
mke2fs -q -F -t ext4 -L kvmlab-root -U "$ROOT_UUID" -d "$ROOTFS" \
  -E offset=$((PART_START_SECTOR * 512)) "$RAW" "$((DISK_MIB - 1))M"
rm -rf "$ROOTFS"
log "ext4 written after $(( $(date +%s) - START )) s"

# ---------------------------------------------------------------- first boot (GRUB)
ACCEL=(-accel tcg,thread=multi -cpu max)
if [ "${KVMCONF_LAB_ACCEL:-}" = kvm ]; then ACCEL=(-accel kvm -cpu host); fi
FB_START=$(date +%s)
timeout 900 qemu-system-x86_64 -machine q35 "${ACCEL[@]}" -smp 2 -m 1024 \
  -nodefaults -display none -no-reboot \
  -serial "file:$WORK/firstboot-serial.log" \
  -drive "file=$RAW,format=raw,if=virtio,cache=unsafe" \
  -kernel "$WORK/vmlinuz" -initrd "$WORK/initrd.img" \
  -append "root=/dev/vda1 rw console=ttyS0,115200n8 init=/usr/local/sbin/lab-firstboot panic=-1" \
  || die "first boot QEMU failed (see $WORK/firstboot-serial.log)"
if ! grep -q LAB-FIRSTBOOT-OK "$WORK/firstboot-serial.log"; then
  tail -n 40 "$WORK/firstboot-serial.log" >&2
  die "grub-install/update-grub failed in the first boot"
fi
log "first boot (grub-install + update-grub) took $(( $(date +%s) - FB_START )) s"

qemu-img convert -O qcow2 "$RAW" "$WORK/base.qcow2"
rm -f "$RAW"   # vmlinuz + initrd.img stay: the accelerator probe boots them

END=$(date +%s)
echo $((END - START)) >"$WORK/build-seconds"
cp "$WORK/mmdebstrap.log" "$WORK/build.log"
rm -f "$WORK/mmdebstrap.log"
touch "$WORK/READY"
rm -rf "$OUT"
mv "$WORK" "$OUT"
log "image ready in $((END - START)) s: $OUT ($(du -m "$OUT/base.qcow2" | cut -f1) MiB)"
echo "$OUT"
