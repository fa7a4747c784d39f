#!/usr/bin/env bash
# Builds the Debian (bookworm) guest image the VM lab boots: a root filesystem made by
# debootstrap from Debian's own packages, put straight into an ext4 image (no loop devices, no
# bootloader: QEMU boots the guest's kernel and initrd directly), an SSH client key authorised
# for root, and one ed25519 host key baked in so tests can pin it in a known_hosts up front.
#
# Output: ${ROOKERY_VMLAB_CACHE:-/var/cache/rookery-vmlab}/image-<hash>/ holding rootfs.raw,
# vmlinuz, initrd.img, id_ed25519(.pub), ssh_host_ed25519_key.pub and READY. <hash> is the
# sha256 of this script, so editing the script builds a new image and an unchanged script
# reuses the cached one (prints the directory and exits at once). Prints the image directory
# on stdout; progress goes to stderr. Needs root and the Debian mirror this machine's apt
# uses (apt-mirror.sh; ROOKERY_VMLAB_MIRROR overrides it). `--force` rebuilds. Concurrent callers wait on a lock.
set -euo pipefail

# The guest package set. Everything the tests run inside the guest must be here: guests
# have no network (QEMU user networking with restrict=on), so nothing can be installed later.
PACKAGES=(
  systemd-sysv udev dbus openssh-server iproute2 util-linux kmod procps sudo
  lvm2 gdisk parted fdisk e2fsprogs xfsprogs nvme-cli
  linux-image-amd64 initramfs-tools qemu-guest-agent
)
SUITE=bookworm
MIRROR="${ROOKERY_VMLAB_MIRROR:-$("$(dirname "${BASH_SOURCE[0]}")/apt-mirror.sh")}"
CACHE="${ROOKERY_VMLAB_CACHE:-/var/cache/rookery-vmlab}"
IMAGE_SIZE=3G

force=0
[[ "${1:-}" == "--force" ]] && force=1

self="$(readlink -f "${BASH_SOURCE[0]}")"
hash="$(sha256sum "$self" | cut -c1-16)"
out="$CACHE/image-$hash"

log() { echo "vmlab-build: $*" >&2; }

if [[ $force == 0 && -f "$out/READY" ]]; then
  echo "$out"
  exit 0
fi
if [[ $(id -u) != 0 ]]; then
  log "must run as root (debootstrap needs it); the image would go to $out"
  exit 1
fi
for tool in debootstrap mkfs.ext4 ssh-keygen flock sha256sum; do
  command -v "$tool" >/dev/null || { log "missing program: $tool"; exit 1; }
done

mkdir -p "$CACHE/debs"
exec 9>"$CACHE/.build.lock"
flock 9
# Another caller may have built it while we waited for the lock.
if [[ $force == 0 && -f "$out/READY" ]]; then
  echo "$out"
  exit 0
fi

t0=$(date +%s.%N)
work="$CACHE/build-$hash.tmp"
rm -rf "$work"
mkdir -p "$work"
# The root tree is built in RAM when /dev/shm has room: dpkg fsyncs every file it unpacks,
# which on a busy disk is most of debootstrap's time. Only the final ext4 image hits the disk.
tree_base="${ROOKERY_VMLAB_TMP:-/dev/shm}"
if [[ ! -d "$tree_base" || $(df -Pk "$tree_base" | awk 'NR==2 {print $4}') -lt 3000000 ]]; then
  tree_base="$work"
fi
root="$(mktemp -d "$tree_base/rookery-vmlab-rootfs.XXXXXX")"
trap 'rm -rf "$root"' EXIT

log "debootstrap $SUITE from $MIRROR (deb cache $CACHE/debs)"
include="$(IFS=,; echo "${PACKAGES[*]}")"
if ! debootstrap --variant=minbase --include="$include" --cache-dir="$CACHE/debs" \
    "$SUITE" "$root" "$MIRROR" >"$work/debootstrap.log" 2>&1; then
  log "debootstrap failed; last lines of $work/debootstrap.log:"
  tail -n 30 "$work/debootstrap.log" >&2
  exit 1
fi
t1=$(date +%s.%N)

# Keys: the client key logs in as root; the single host key is pinned by the tests.
ssh-keygen -q -t ed25519 -N '' -C rookery-vmlab -f "$work/id_ed25519"
rm -f "$root"/etc/ssh/ssh_host_*
ssh-keygen -q -t ed25519 -N '' -C rookery-vmlab-host -f "$root/etc/ssh/ssh_host_ed25519_key"
cp "$root/etc/ssh/ssh_host_ed25519_key.pub" "$work/ssh_host_ed25519_key.pub"
install -d -m 700 "$root/root/.ssh"
install -m 600 "$work/id_ed25519.pub" "$root/root/.ssh/authorized_keys"
cat >"$root/etc/ssh/sshd_config.d/rookery-vmlab.conf" <<'CONF'
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
CONF

# `sshd -t` before every start is one more sshd run on the boot's critical path.
mkdir -p "$root/etc/systemd/system/ssh.service.d"
printf '[Service]\nExecStartPre=\n' >"$root/etc/systemd/system/ssh.service.d/rookery-vmlab.conf"

# Root filesystem by label, so the same image boots under any disk naming; no fsck at boot.
echo "LABEL=vmroot / ext4 defaults,noatime 0 0" >"$root/etc/fstab"
# Empty machine-id: the harness passes systemd.machine_id= per guest.
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
echo vmlab >"$root/etc/hostname"
passwd -R "$root" -l root >/dev/null

# Static address for QEMU user networking (the guest is always 10.0.2.15 there), set as soon
# as eth0 appears: DHCP through systemd-networkd kept SSH waiting ~10 s under emulation.
cat >"$root/etc/systemd/system/rookery-vmlab-net.service" <<'CONF'
[Unit]
Description=Static address for QEMU user networking
BindsTo=sys-subsystem-net-devices-eth0.device
After=sys-subsystem-net-devices-eth0.device
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/sbin/ip link set eth0 up
ExecStart=/sbin/ip addr replace 10.0.2.15/24 dev eth0
ExecStart=/sbin/ip route replace default via 10.0.2.2
[Install]
WantedBy=sys-subsystem-net-devices-eth0.device
CONF
mkdir -p "$root/etc/systemd/system/sys-subsystem-net-devices-eth0.device.wants"
ln -sf ../rookery-vmlab-net.service \
  "$root/etc/systemd/system/sys-subsystem-net-devices-eth0.device.wants/rookery-vmlab-net.service"
# Units that only cost boot time under software emulation or would reach for the network.
for unit in systemd-networkd.service systemd-networkd.socket systemd-networkd-wait-online.service \
    systemd-logind.service lvm2-monitor.service systemd-firstboot.service apt-daily.timer \
    apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer man-db.timer \
    nvmf-autoconnect.service nvmefc-boot-connections.service; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*

# A small initramfs: Debian's default (MODULES=most) is ~40 MB, and unpacking it plus
# coldplugging every module costs seconds under software emulation. The guest only needs
# virtio, ext4 and the NVMe/AHCI drivers (those load from the root filesystem later anyway).
cat >"$root/etc/initramfs-tools/conf.d/rookery-vmlab.conf" <<'CONF'
MODULES=list
CONF
printf '%s\n' virtio_pci virtio_blk ext4 >>"$root/etc/initramfs-tools/modules"
if ! chroot "$root" update-initramfs -u -k all >"$work/initramfs.log" 2>&1; then
  log "update-initramfs failed; see $work/initramfs.log"
  tail -n 20 "$work/initramfs.log" >&2
  exit 1
fi

kernel="$(ls "$root"/boot/vmlinuz-* | sort -V | tail -n1)"
initrd="$(ls "$root"/boot/initrd.img-* | sort -V | tail -n1)"
cp "$kernel" "$work/vmlinuz"
cp "$initrd" "$work/initrd.img"
t2=$(date +%s.%N)

log "mkfs.ext4 -d into a $IMAGE_SIZE sparse image"
truncate -s "$IMAGE_SIZE" "$work/rootfs.raw"
mkfs.ext4 -q -F -L vmroot -d "$root" "$work/rootfs.raw"
rm -rf "$root"
t3=$(date +%s.%N)

awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" 'BEGIN {
  printf "debootstrap_s=%.1f configure_s=%.1f mkfs_s=%.1f total_s=%.1f\n", b-a, c-b, d-c, d-a }' >"$work/timings"
touch "$work/READY"
rm -rf "$out"
mv "$work" "$out"
# Images of earlier versions of this script are dead weight (~1 GB each).
for old in "$CACHE"/image-*; do
  [[ "$old" != "$out" ]] && rm -rf "$old"
done
log "image ready: $out ($(cat "$out/timings"))"
echo "$out"
