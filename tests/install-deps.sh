#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine (run as root).
# Idempotent and quick when everything is already there. As root it runs directly (a fresh
# machine may have no sudo yet: it is one of the packages below); otherwise through sudo.
set -euo pipefail

if [[ $(id -u) != 0 ]]; then
  command -v sudo >/dev/null || { echo "install-deps: run this as root (there is no sudo here)" >&2; exit 1; }
  exec sudo -- "$0" "$@"
fi

packages=(
  # real SSH hosts and become
  openssh-server openssh-client sudo
  # loop-device fixtures: partition tables, filesystems, LVM
  util-linux fdisk gdisk parted e2fsprogs xfsprogs btrfs-progs dosfstools lvm2
  # ceph-volume, to compare our availability verdicts with Ceph's own (needs udevadm)
  ceph-osd udev
  # the control-plane harness's service-account key pair (tests/src/kube.rs)
  openssl
  # runs the aarch64 agent on this machine (tests/tests/agent_aarch64.rs; no binfmt needed)
  qemu-user-static
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}"
else
  echo "install-deps: all ${#packages[@]} packages present"
fi

# The static agents are built for musl (x86_64 and aarch64); rustup adds the targets once.
if command -v rustup >/dev/null 2>&1; then
  rustup target add x86_64-unknown-linux-musl aarch64-unknown-linux-musl >/dev/null
fi

# QEMU, debootstrap and Vagrant for the VM lab tests (tests/vmlab/).
"$(dirname "$0")/vmlab/install-host-deps.sh"

# The real Kubernetes control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok)
# and Velero + its AWS plugin + a fake S3, built from the Go module proxy into a cache outside
# the repository (tests/kube/build.sh; cached builds are skipped).
"$(dirname "$0")/kube/build.sh"
