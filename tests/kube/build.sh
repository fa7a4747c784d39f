#!/usr/bin/env bash
# Builds the real Kubernetes control plane and Velero the tests run against, from the Go module
# proxy, into a cache outside the repository (recipes: ../shared/notes/kube-testbed.md).
# Skips every binary already built at the pinned version, so a warm run takes well under a second.
#
#   ROOKERY_KUBE_CACHE   where binaries go (default /var/cache/rookery-kube); tests read the same
#
# Nothing built here is ever committed; nothing here runs inside Rookery itself (kubectl is only
# the benchmark's peer).
set -euo pipefail

cache="${ROOKERY_KUBE_CACHE:-/var/cache/rookery-kube}"
bin="$cache/bin"
src="$cache/src"
mkdir -p "$bin" "$src"
export GOFLAGS="${GOFLAGS:-} -mod=mod"
export GOTOOLCHAIN=local
export CGO_ENABLED=0

KUBE=v1.35.4
KUBE_STAGING=v0.35.4
ETCD=v3.6.16
KWOK=v0.8.0
VELERO=v1.18.3
VELERO_AWS=v1.14.2
GOFAKES3=v1.2.0
VELERO_K8S=v0.33.13
KOPIA_FORK=github.com/project-velero/kopia@v0.0.0-20251230033609-d946b1e75197

stamp_ok() { [[ -x "$bin/$1" && -f "$bin/.$1.version" && "$(cat "$bin/.$1.version")" == "$2" ]]; }
stamp() { echo "$2" >"$bin/.$1.version"; }
t0=$(date +%s)
log() { echo "kube-deps [$(( $(date +%s) - t0 )) s]: $*"; }

# --- kube-apiserver, controller-manager, scheduler, kubectl (one throw-away module) ----------
need_kube=()
for b in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  stamp_ok "$b" "$KUBE" || need_kube+=("$b")
done
if ((${#need_kube[@]})); then
  log "building ${need_kube[*]} $KUBE (cold: about 7 minutes on 2 cores)"
  d="$src/kubernetes-$KUBE"
  mkdir -p "$d"
  staging=(api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider
    cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api
    cri-client csi-translation-lib dynamic-resource-allocation endpointslice externaljwt kms
    kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics
    mount-utils pod-security-admission sample-apiserver sample-cli-plugin sample-controller)
  {
    echo "module rookery.invalid/kubebuild"
    echo
    echo "go 1.25"
    echo
    echo "require k8s.io/kubernetes $KUBE"
    for m in "${staging[@]}"; do echo "replace k8s.io/$m => k8s.io/$m $KUBE_STAGING"; done
  } >"$d/go.mod"
  cat >"$d/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
  (cd "$d" && go mod tidy)
  ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=35"
  pkgs=()
  for b in "${need_kube[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  (cd "$d" && go build -trimpath -ldflags "$ldflags" -o "$bin/" "${pkgs[@]}")
  for b in "${need_kube[@]}"; do stamp "$b" "$KUBE"; done
fi

# --- etcd -------------------------------------------------------------------------------------
if ! stamp_ok etcd "$ETCD"; then
  log "building etcd $ETCD"
  d="$src/etcd-$ETCD"
  mkdir -p "$d"
  printf 'module rookery.invalid/etcdbuild\n\ngo 1.25\n' >"$d/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' >"$d/tools.go"
  (cd "$d" && go get "go.etcd.io/etcd/server/v3@$ETCD" && go mod tidy &&
    go build -trimpath -ldflags "-s -w" -o "$bin/etcd" go.etcd.io/etcd/server/v3)
  stamp etcd "$ETCD"
fi

# --- kwok, and its Stage objects from the module's own source ---------------------------------
if ! stamp_ok kwok "$KWOK" || [[ ! -f "$cache/kwok-stages-$KWOK.yaml" ]]; then
  log "building kwok $KWOK"
  d="$src/kwok-$KWOK"
  mkdir -p "$d"
  printf 'module rookery.invalid/kwokbuild\n\ngo 1.25\n' >"$d/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport _ "sigs.k8s.io/kwok/cmd/kwok"\n' >"$d/tools.go"
  (cd "$d" && go get "sigs.k8s.io/kwok/cmd/kwok@$KWOK" && go mod tidy &&
    go build -trimpath -ldflags "-s -w" -o "$bin/kwok" sigs.k8s.io/kwok/cmd/kwok)
  kdir=$(cd "$d" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
  stage="$kdir/kustomize/stage"
  {
    for f in "$stage"/node/fast/node-initialize.yaml "$stage"/node/heartbeat/*.yaml "$stage"/pod/fast/pod-*.yaml; do
      echo "---"
      cat "$f"
    done
  } >"$cache/kwok-stages-$KWOK.yaml.tmp"
  mv "$cache/kwok-stages-$KWOK.yaml.tmp" "$cache/kwok-stages-$KWOK.yaml"
  ln -sf "kwok-stages-$KWOK.yaml" "$cache/kwok-stages.yaml"
  stamp kwok "$KWOK"
fi

# --- Velero server, its AWS plugin, and a fake S3 (MIT; MinIO is AGPL) -------------------------
need_velero=()
stamp_ok velero "$VELERO" || need_velero+=(velero)
stamp_ok velero-plugin-for-aws "$VELERO_AWS" || need_velero+=(velero-plugin-for-aws)
stamp_ok gofakes3 "$GOFAKES3" || need_velero+=(gofakes3)
if ((${#need_velero[@]})); then
  log "building ${need_velero[*]} (cold: about 4 minutes on 2 cores)"
  d="$src/velero-$VELERO"
  mkdir -p "$d"
  {
    echo "module rookery.invalid/velerobuild"
    echo
    echo "go 1.25"
    echo
    echo "require ("
    echo "  github.com/vmware-tanzu/velero $VELERO"
    echo "  github.com/vmware-tanzu/velero-plugin-for-aws $VELERO_AWS"
    echo "  github.com/johannesboyne/gofakes3 $GOFAKES3"
    echo ")"
    echo "replace github.com/kopia/kopia => ${KOPIA_FORK/@/ }"
    for m in api apiextensions-apiserver apimachinery cli-runtime client-go kube-aggregator metrics \
      kubectl component-base apiserver component-helpers; do
      echo "replace k8s.io/$m => k8s.io/$m $VELERO_K8S"
    done
  } >"$d/go.mod"
  cat >"$d/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "github.com/johannesboyne/gofakes3/cmd/gofakes3"
	_ "github.com/vmware-tanzu/velero-plugin-for-aws/velero-plugin-for-aws"
	_ "github.com/vmware-tanzu/velero/cmd/velero"
)
GO
  (cd "$d" && go mod tidy)
  for b in "${need_velero[@]}"; do
    case $b in
      velero) pkg=github.com/vmware-tanzu/velero/cmd/velero ver=$VELERO ;;
      velero-plugin-for-aws) pkg=github.com/vmware-tanzu/velero-plugin-for-aws/velero-plugin-for-aws ver=$VELERO_AWS ;;
      gofakes3) pkg=github.com/johannesboyne/gofakes3/cmd/gofakes3 ver=$GOFAKES3 ;;
    esac
    (cd "$d" && go build -trimpath -ldflags "-s -w" -o "$bin/$b" "$pkg")
    stamp "$b" "$ver"
  done
fi

log "ready in $bin: $(cd "$bin" && ls | tr '\n' ' ')"
