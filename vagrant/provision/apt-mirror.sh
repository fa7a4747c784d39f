#!/bin/sh
# Points the node's Debian archive entries at ROOKERY_LAB_MIRROR (the mirror the host's own apt
# uses, chosen by the Vagrantfile), so `apt-get` on the nodes goes where the host's does.
# Security entries keep their own host. Idempotent.
set -eu
mirror="${ROOKERY_LAB_MIRROR:?}"
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] || continue
  # Only http(s)://HOST/debian (not .../debian-security) is replaced.
  sed -i -E "s#https?://[^ /]+/debian([ /]|\$)#${mirror}\\1#" "$f"
done
echo "apt-mirror: $(hostname) uses $mirror"
