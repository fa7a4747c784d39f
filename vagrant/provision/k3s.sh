#!/bin/sh
# Installs K3s on a lab node: the server (first node) with `--disable=local-storage`, so the
# Rook Ceph StorageClass can be the only default, and agents joining it with the lab token.
# Flannel and the node address are pinned to the private network: Vagrant's first interface is
# a NAT whose address is the same on every VirtualBox node. Idempotent: an installed K3s is
# left alone. Inputs (environment): ROOKERY_K3S_ROLE server|agent, ROOKERY_K3S_SERVER,
# ROOKERY_K3S_NODE_IP, ROOKERY_K3S_VERSION (empty = stable channel), K3S_TOKEN.
set -eu

role="${ROOKERY_K3S_ROLE:?}"
server="${ROOKERY_K3S_SERVER:?}"
node_ip="${ROOKERY_K3S_NODE_IP:?}"
: "${K3S_TOKEN:?}"

service=k3s
[ "$role" = agent ] && service=k3s-agent
if systemctl is-active --quiet "$service"; then
  echo "k3s: $service already running on $(hostname)"
  exit 0
fi

iface="$(ip -o -4 addr show | awk -v ip="$node_ip" '{ split($4, a, "/"); if (a[1] == ip) print $2 }')"
if [ -z "$iface" ]; then
  echo "k3s: no interface holds $node_ip; is the private network up?" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl; }
# lvm2 for Ceph OSDs on LVM; the rbd/ceph modules are in Debian's stock kernel.
command -v pvs >/dev/null || apt-get install -y -qq lvm2 || true

[ -n "${ROOKERY_K3S_VERSION:-}" ] && export INSTALL_K3S_VERSION="$ROOKERY_K3S_VERSION"
export K3S_TOKEN
common="--node-ip=$node_ip --flannel-iface=$iface"
if [ "$role" = server ]; then
  export INSTALL_K3S_EXEC="server --disable=local-storage --write-kubeconfig-mode=0644 --tls-san=$server $common"
else
  # The agent's installer blocks until it has joined: wait for the server's API first.
  i=0
  until curl -ksf -o /dev/null "https://$server:6443/ping"; do
    i=$((i + 1))
    [ "$i" -gt 120 ] && { echo "k3s: server $server:6443 not reachable after 10 min" >&2; exit 1; }
    sleep 5
  done
  export K3S_URL="https://$server:6443"
  export INSTALL_K3S_EXEC="agent $common"
fi
curl -sfL https://get.k3s.io | sh -
echo "k3s: $role installed on $(hostname) ($node_ip via $iface)"
