#!/usr/bin/env bash
# Instructions the sidecar executes per pgbench transaction, with no rules and with the
# 20-rule policy, counted by callgrind: deterministic, unlike TPS on a shared machine, so
# it isolates what the policy engine costs the proxy. Kernel work (the same system calls
# either way) is not counted.
#
# Usage: tests/bench/instructions.sh [TRANSACTIONS_PER_CLIENT]   (default 2000, 4 clients)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
TXNS=${1:-2000}
CLIENTS=4
command -v valgrind >/dev/null || { echo "instructions.sh: needs valgrind (apt-get install valgrind)" >&2; exit 1; }
BIN=$(pg_config --bindir 2>/dev/null || ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
cargo build -q --release -p palisade-sidecar
WORK=$(mktemp -d)
RUN_AS=()
if ((EUID == 0)); then chown postgres "$WORK"; RUN_AS=(runuser -u postgres --); fi
cleanup() {
    [[ -n "${SIDECAR:-}" ]] && kill "$SIDECAR" 2>/dev/null || true
    "${RUN_AS[@]}" "$BIN/pg_ctl" -D "$WORK/data" stop -m immediate >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PG_PORT=$(free_port)
"${RUN_AS[@]}" "$BIN/initdb" -D "$WORK/data" -A trust -U palisade --no-sync >/dev/null
"${RUN_AS[@]}" "$BIN/pg_ctl" -D "$WORK/data" -l "$WORK/pg.log" -o "-p $PG_PORT -k $WORK -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
"$BIN/pgbench" -h 127.0.0.1 -p "$PG_PORT" -U palisade -i -s 1 -q postgres >/dev/null 2>&1

measure() { # name policy-file mode
    local dir="$WORK/$1-$3" port
    port=$(free_port)
    mkdir -p "$dir/policies"
    sed -e "s/\${LISTEN_PORT}/$port/" -e "s/\${PG_PORT}/$PG_PORT/" "$2" > "$dir/policies/policy.yaml"
    valgrind --tool=callgrind --callgrind-out-file="$dir/callgrind.out" \
        target/release/palisade-sidecar run --policy-dir "$dir/policies" --admin-address 127.0.0.1:0 --log-level warn \
        >"$dir/sidecar.log" 2>&1 &
    SIDECAR=$!
    for _ in $(seq 100); do "$BIN/pg_isready" -q -h 127.0.0.1 -p "$port" && break; sleep 0.2; done
    "$BIN/pgbench" -h 127.0.0.1 -p "$port" -U palisade -S -M "$3" -n -c "$CLIENTS" -j 2 -t "$TXNS" postgres >/dev/null
    kill -INT "$SIDECAR"; wait "$SIDECAR" || true; SIDECAR=
    local total
    total=$(grep -m1 '^summary:' "$dir/callgrind.out" | awk '{print $2}')
    echo $((total / (TXNS * CLIENTS)))
}

MINIMAL=$WORK/minimal.yaml
cat > "$MINIMAL" <<'YAML'
apiVersion: palisade.dev/v1alpha1
kind: DatabasePolicy
metadata: {name: bench, namespace: default}
spec:
  listen: {port: ${LISTEN_PORT}}
  database: {host: 127.0.0.1, port: ${PG_PORT}, tls: {mode: Disable}}
YAML
printf '| mode | instructions/txn, no rules | instructions/txn, 20 rules | ratio |\n|---|---:|---:|---:|\n'
for mode in simple extended prepared; do
    a=$(measure none "$MINIMAL" "$mode")
    b=$(measure rules tests/bench/policy-20-rules.yaml "$mode")
    printf '| %s | %d | %d | %s |\n' "$mode" "$a" "$b" "$(python3 -c "print(f'{$b/$a:.3f}')")"
done
echo "($CLIENTS clients × $TXNS transactions each; includes startup and connection setup, amortised)"
