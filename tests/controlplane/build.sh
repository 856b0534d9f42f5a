#!/usr/bin/env bash
# Builds the real Kubernetes control plane the tests run against (tests/src/controlplane):
# kube-apiserver, kube-controller-manager and kubectl from k8s.io/kubernetes, etcd, the helm CLI
# and Dex (the OpenID Connect issuer), each from its Go module at the versions in versions.env.
# Nothing prebuilt is downloaded: the Go module proxy serves source, and `go build` compiles it.
#
# The binaries go to a cache directory outside the repository, keyed by a hash of versions.env,
# the go.mod/go.sum files and the Go version, so a second run (or another checkout) reuses them
# and a version bump builds into a fresh directory:
#
#   ${PALISADE_CONTROLPLANE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/palisade/controlplane}/<key>/bin
#
# Usage:
#   build.sh              build what is missing (progress on stderr), print the bin directory
#   build.sh --print-dir  print the bin directory for the current versions without building
#   build.sh --pin        rewrite go/*/go.mod and go.sum from versions.env (needs the proxy)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
    export PATH=/usr/local/go/bin:$PATH
fi
command -v go >/dev/null 2>&1 || {
    echo "controlplane: the go command is needed to build the control plane (https://go.dev/dl)" >&2
    exit 1
}
# The module proxy only; a module it cannot serve is an error here, not a git clone.
export GOPROXY=${GOPROXY:-https://proxy.golang.org}
export GOFLAGS="${GOFLAGS:-} -mod=readonly"

programs=(kube-apiserver kube-controller-manager kubectl etcd helm dex)

cache_root=${PALISADE_CONTROLPLANE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/palisade/controlplane}

cache_key() {
    # Everything that changes what gets built; file names are part of the hash so that a moved
    # file is a change too.
    (
        cd "$here"
        go version
        find versions.env go -type f \( -name '*.go' -o -name go.mod -o -name go.sum -o -name versions.env \) |
            LC_ALL=C sort | while read -r f; do
            printf '%s ' "$f"
            sha256sum <"$f"
        done
    ) | sha256sum | cut -c1-16
}

bin_dir() { printf '%s/%s/bin\n' "$cache_root" "$(cache_key)"; }

pin() {
    # k8s.io/kubernetes requires each staging module at v0.0.0 and replaces it with a directory of
    # its own tree; the proxy serves none of that, so each is replaced by its published release.
    local mod k8s_mod
    mod=$here/go/kubernetes
    k8s_mod=$(cd "$mod" && GOFLAGS= go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" |
        sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')
    {
        echo '// Builds kube-apiserver, kube-controller-manager and kubectl from k8s.io/kubernetes.'
        echo '// k8s.io/kubernetes requires its staging modules at v0.0.0 (they live in its own tree),'
        echo '// which the module proxy does not serve; each is replaced by its published release.'
        echo '// Written by ../../build.sh --pin from ../../versions.env; do not edit by hand.'
        echo 'module palisade.dev/tests/controlplane/kubernetes'
        echo
        echo 'go 1.26.0'
        echo
        echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
        echo
        echo 'replace ('
        grep -E '^\s*k8s.io/[a-z0-9-]+ => ./staging' "$k8s_mod" |
            awk -v v="$KUBERNETES_STAGING_VERSION" '{print "\t" $1 " => " $1 " " v}'
        echo ')'
    } >"$mod/go.mod"
    (cd "$mod" && GOFLAGS= go mod tidy)
    (cd "$here/go/etcd" && GOFLAGS= go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" && GOFLAGS= go mod tidy)
    (cd "$here/go/helm" && GOFLAGS= go get "helm.sh/helm/v4@$HELM_VERSION" && GOFLAGS= go mod tidy)
    # Dex's go.mod replaces its api/v2 module with a directory of its own tree: required here
    # at a published version instead.
    (cd "$here/go/dex" && GOFLAGS= go get "github.com/dexidp/dex@$DEX_VERSION" \
        "github.com/dexidp/dex/api/v2@$DEX_API_VERSION" && GOFLAGS= go mod tidy)
    echo "controlplane: go.mod files pinned to versions.env; commit them"
}

check_pins() {
    # versions.env is the one place versions live: refuse to build when a go.mod disagrees.
    local bad=0
    grep -q "^require k8s.io/kubernetes $KUBERNETES_VERSION\$" "$here/go/kubernetes/go.mod" || bad=1
    grep -q "k8s.io/api => k8s.io/api $KUBERNETES_STAGING_VERSION\$" "$here/go/kubernetes/go.mod" || bad=1
    grep -Eq "go.etcd.io/etcd/server/v3 $ETCD_VERSION\$" "$here/go/etcd/go.mod" || bad=1
    grep -Eq "helm.sh/helm/v4 $HELM_VERSION\$" "$here/go/helm/go.mod" || bad=1
    grep -Eq "github.com/dexidp/dex $DEX_VERSION\$" "$here/go/dex/go.mod" || bad=1
    grep -Eq "github.com/dexidp/dex/api/v2 $DEX_API_VERSION( // indirect)?\$" "$here/go/dex/go.mod" || bad=1
    if ((bad)); then
        echo "controlplane: go/*/go.mod do not match versions.env; run $here/build.sh --pin" >&2
        exit 1
    fi
}

case "${1:-}" in
--print-dir)
    bin_dir
    exit 0
    ;;
--pin)
    pin
    exit 0
    ;;
"") ;;
*)
    echo "usage: $0 [--print-dir|--pin]" >&2
    exit 2
    ;;
esac

check_pins
bin=$(bin_dir)
complete=1
for p in "${programs[@]}"; do [[ -x "$bin/$p" ]] || complete=0; done
if ((complete)); then
    echo "controlplane: binaries up to date in $bin" >&2
    echo "$bin"
    exit 0
fi

mkdir -p "$bin"
log=$bin/../build.log
start_all=$(date +%s)

# Go's build and module caches for these programs come to ~7 GB, ten times the binaries. Unless
# asked to keep them (PALISADE_CONTROLPLANE_KEEP_GO_CACHE=1, for someone iterating on versions),
# they live next to the binaries only for the build and are removed after it, so that CI's disk
# holds the binaries and the Rust build, not Go's intermediates.
if [[ "${PALISADE_CONTROLPLANE_KEEP_GO_CACHE:-0}" != 1 ]]; then
    go_tmp=$bin/../go-tmp
    export GOCACHE=$go_tmp/build GOMODCACHE=$go_tmp/mod
    # -modcacherw: the module cache is written read-only by default, which rm -rf cannot remove.
    export GOFLAGS="$GOFLAGS -modcacherw"
    trap 'rm -rf "$go_tmp"' EXIT
fi

# One program group at a time, each into a temporary name then renamed, so an interrupted build
# never leaves a half-written binary that a later run would take as built.
build() {
    local dir=$1 ldflags=$2
    shift 2
    local t0 out tmp
    t0=$(date +%s)
    tmp=$(mktemp -d "$bin/.tmp.XXXXXX")
    echo "controlplane: building $* (go/$dir)" >&2
    # -trimpath: no build paths in the binaries; -s -w: no symbol tables, a third of the size.
    (cd "$here/go/$dir" && go build -trimpath -ldflags "-s -w $ldflags" -o "$tmp/" "$@") ||
        { rm -rf "$tmp"; echo "controlplane: building go/$dir failed" >&2; exit 1; }
    for out in "$tmp"/*; do mv -f "$out" "$bin/"; done
    rmdir "$tmp"
    echo "go/$dir $(($(date +%s) - t0))s" | tee -a "$log" >&2
}

need() {
    local p
    for p in "$@"; do [[ -x "$bin/$p" ]] || return 0; done
    return 1
}

# The version the binaries report: the API server's /version (which helm's kubeVersion
# constraints and kubectl's skew warning read) and its compatibility version come from here;
# without it a source build calls itself v0.0.0-master.
minor=${KUBERNETES_VERSION#v1.}
minor=${minor%%.*}
kv="-X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION"
kv+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
kv+=" -X k8s.io/component-base/version.gitTreeState=clean"
kv+=" -X k8s.io/client-go/pkg/version.gitVersion=$KUBERNETES_VERSION"
kv+=" -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
kv+=" -X k8s.io/client-go/pkg/version.gitTreeState=clean"

if need kube-apiserver kube-controller-manager kubectl; then
    build kubernetes "$kv" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
        k8s.io/kubernetes/cmd/kubectl
fi
need etcd && build etcd "" go.etcd.io/etcd/server/v3
[[ -x "$bin/server" && ! -e "$bin/etcd" ]] && mv "$bin/server" "$bin/etcd"
need helm && build helm "-X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" helm.sh/helm/v4/cmd/helm
# Dex's command links its SQLite storage, which needs cgo and so a C compiler (the tests use
# its memory storage).
need dex && build dex "-X main.version=$DEX_VERSION" github.com/dexidp/dex/cmd/dex

for p in "${programs[@]}"; do
    [[ -x "$bin/$p" ]] || { echo "controlplane: $p was not built" >&2; exit 1; }
done
echo "controlplane: built in $(($(date +%s) - start_all))s, $(du -sh "$bin" | cut -f1) in $bin" | tee -a "$log" >&2
echo "$bin"
