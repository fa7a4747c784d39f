#!/usr/bin/env bash
# Installs what the VM lab tests need on a Debian 12 host (run as root; idempotent):
# QEMU and qemu-img to boot guests, debootstrap to build the guest image, the OpenSSH client
# to reach guests, and Vagrant with the libvirt plugin for `vagrant validate`.
#
# Some machine images ship qemu-utils from bookworm-backports; plain bookworm's
# qemu-system-x86 then conflicts with it ("qemu-utils : Breaks: qemu-system-common"). In that
# case the QEMU packages come from bookworm-backports too (only these packages: backports is
# pinned low by default).
set -euo pipefail

packages=(qemu-system-x86 qemu-utils debootstrap openssh-client e2fsprogs util-linux vagrant vagrant-libvirt)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "vmlab deps: all ${#packages[@]} packages present"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt_install=(apt-get install -y -qq --no-install-recommends)
if dpkg-query -W -f='${Version}' qemu-utils 2>/dev/null | grep -q bpo; then
  src=/etc/apt/sources.list.d/bookworm-backports.sources
  if ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$("$(dirname "$0")/apt-mirror.sh")" >"$src"
  fi
  apt-get update -qq
  "${apt_install[@]}" -t bookworm-backports qemu-system-x86 qemu-utils debootstrap
else
  apt-get update -qq
fi
echo "vmlab deps: installing ${missing[*]}"
"${apt_install[@]}" "${missing[@]}"
