#!/usr/bin/env bash
# End-to-end on a real cluster: a throwaway kind cluster, both images built from this tree, the
# Helm chart installed, a PostgreSQL and the examples applied, the example Deployment injected,
# then the ignored tests in tests/tests/kind.rs run against it. Deletes the cluster on exit
# (unless --keep), whether the run passed or not.
#
# Run from anywhere:  tests/kind/run.sh [--keep] [--help]
set -euo pipefail

usage() {
    cat <<EOF
Usage: tests/kind/run.sh [--keep] [--help]

Creates kind cluster "\$CLUSTER" (default palisade-e2e), builds the operator and sidecar images,
loads them into the cluster, installs charts/palisade, runs helm test, starts PostgreSQL 15,
applies the examples through tests/kind/overlay, deploys examples/deployment.yaml and runs
  cargo test -p palisade-tests --test kind -- --ignored

Needs: docker (a running daemon), kind, helm (3.8+), kubectl, cargo; network access to pull
the base images, postgres:15 and curlimages/curl.

Environment:
  CLUSTER           kind cluster name (default palisade-e2e); an existing one is reused
                    and then not deleted
  KIND_NODE_IMAGE   node image, Kubernetes 1.29 or newer (default kindest/node:v1.31.2)
  NAMESPACE         release namespace (default palisade-system)

Options:
  --keep    leave the cluster running afterwards (kubectl --context kind-\$CLUSTER …)
  --help    show this help
EOF
}

KEEP=0
for arg in "$@"; do
    case "$arg" in
        --keep) KEEP=1 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "kind/run.sh: unknown argument: $arg" >&2; usage >&2; exit 2 ;;
    esac
done

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO_ROOT"

CLUSTER=${CLUSTER:-palisade-e2e}
KIND_NODE_IMAGE=${KIND_NODE_IMAGE:-kindest/node:v1.31.2}
NAMESPACE=${NAMESPACE:-palisade-system}
CONTEXT="kind-$CLUSTER"
# Local image names; pullPolicy Never makes the kubelet use what `kind load` put on the node.
OPERATOR_IMAGE=palisade.local/palisade-operator
SIDECAR_IMAGE=palisade.local/palisade-sidecar
TAG=e2e-$(git rev-parse --short HEAD 2>/dev/null || echo dev)

step() { printf '\n==> %s\n' "$*"; }
die() { printf 'kind/run.sh: %s\n' "$*" >&2; exit 1; }
k() { kubectl --context "$CONTEXT" "$@"; }

for tool in docker kind helm kubectl cargo; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed"
done
docker info >/dev/null 2>&1 || die "docker is installed but its daemon does not answer"
helm version --short | grep -Eq '^v(3\.([89]|[1-9][0-9])|[4-9])\.' ||
    die "helm 3.8 or newer is needed (found $(helm version --short))"

CREATED=0
diagnostics() {
    echo "---- diagnostics ----" >&2
    k get pods -A -o wide >&2 || true
    k -n "$NAMESPACE" logs deploy/palisade-operator --all-containers --tail=100 >&2 || true
    k -n ml describe pods -l app=trainer >&2 || true
    k -n ml logs -l app=trainer -c palisade-sidecar --tail=100 >&2 || true
    k -n ml get dbpolicy,maskrule -o yaml >&2 || true
    k get events -A --sort-by=.lastTimestamp 2>/dev/null | tail -n 40 >&2 || true
}
cleanup() {
    local status=$?
    if ((status != 0)) && kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
        diagnostics
    fi
    if ((CREATED && !KEEP)); then
        step "Deleting kind cluster $CLUSTER"
        kind delete cluster --name "$CLUSTER" || true
    elif ((CREATED)); then
        step "Cluster kept: kubectl --context $CONTEXT …; delete with: kind delete cluster --name $CLUSTER"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------

if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    step "Reusing kind cluster $CLUSTER"
else
    step "Creating kind cluster $CLUSTER ($KIND_NODE_IMAGE)"
    CREATED=1
    kind create cluster --name "$CLUSTER" --image "$KIND_NODE_IMAGE" --wait 120s
fi
server_minor=$(k version -o json | sed -n 's/.*"minor": *"\([0-9]*\).*/\1/p' | tail -n 1)
((server_minor >= 29)) || die "Kubernetes 1.$server_minor: the e2e tests expect 1.29+ (native sidecars)"

step "Building images ($TAG)"
docker build -f operator/Dockerfile -t "$OPERATOR_IMAGE:$TAG" .
docker build -f sidecar/Dockerfile -t "$SIDECAR_IMAGE:$TAG" .
kind load docker-image --name "$CLUSTER" "$OPERATOR_IMAGE:$TAG" "$SIDECAR_IMAGE:$TAG"

step "Installing the chart into $NAMESPACE"
helm upgrade --install palisade charts/palisade --kube-context "$CONTEXT" \
    --namespace "$NAMESPACE" --create-namespace \
    --set image.repository="$OPERATOR_IMAGE" --set image.tag="$TAG" --set image.pullPolicy=Never \
    --set sidecar.image.repository="$SIDECAR_IMAGE" --set sidecar.image.tag="$TAG" \
    --set sidecar.image.pullPolicy=Never \
    --set logLevel=debug \
    --wait --timeout 5m
helm test palisade --kube-context "$CONTEXT" --namespace "$NAMESPACE" --logs --timeout 3m

step "PostgreSQL and the example policy (tests/kind/overlay)"
kubectl kustomize --load-restrictor LoadRestrictionsNone tests/kind/overlay | k apply -f -
k -n data rollout status deployment/features-pg --timeout 180s
k -n ml wait dbpolicy/features-db --for=condition=Ready --timeout 120s

# The webhook injects at pod creation with the policies rendered by then: the policy first.
step "The example workload (examples/deployment.yaml)"
k apply -f examples/deployment.yaml
k -n ml rollout status deployment/trainer --timeout 180s

step "cargo test -p palisade-tests --test kind -- --ignored"
PALISADE_KIND_CONTEXT="$CONTEXT" PALISADE_KIND_NAMESPACE=ml PALISADE_KIND_APP=trainer \
    cargo test -p palisade-tests --test kind -- --ignored --test-threads 1

step "All kind tests passed"
