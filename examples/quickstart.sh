#!/usr/bin/env bash
# Palisade quickstart: build the sidecar, start a throwaway PostgreSQL with a small demo
# database, put the sidecar in front of it and send a few queries through it.
#
# Run from the repository root:   examples/quickstart.sh [--keep]
# Everything lives in one temporary directory that is removed on exit (unless --keep).
set -euo pipefail

usage() {
    cat <<EOF
Usage: examples/quickstart.sh [--keep] [--help]

Builds palisade-sidecar (and kubectl-palisade, dev-issuer), starts a throwaway
PostgreSQL on 127.0.0.1 with a demo database "shop", runs the sidecar in front of it
with examples/quickstart/policy.yaml, and sends a few psql commands through the
sidecar: guardrails, masking, and a statement held until a second person approves it.

Needs: cargo (https://rustup.rs), a C compiler, PostgreSQL server binaries and psql.
On Debian/Ubuntu, run as root, it installs PostgreSQL itself if it is missing.

Options:
  --keep    leave PostgreSQL and the sidecar running afterwards and print how to
            connect and how to stop them (default: stop everything, delete the
            temporary directory)
  --help    show this help
EOF
}

KEEP=0
for arg in "$@"; do
    case "$arg" in
        --keep) KEEP=1 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "quickstart: unknown argument: $arg" >&2; usage >&2; exit 2 ;;
    esac
done

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"

# A developer's shell may point libpq somewhere else; everything here is explicit.
unset PGHOST PGHOSTADDR PGPORT PGUSER PGPASSWORD PGPASSFILE PGDATABASE PGDATA PGOPTIONS \
    PGSERVICE PGSERVICEFILE PGSSLMODE PGTARGETSESSIONATTRS
export PGCONNECT_TIMEOUT=5

APP_USER=app
APP_PASSWORD=app-secret

if [[ -t 1 ]]; then BOLD=$'\033[1m' RESET=$'\033[0m'; else BOLD= RESET=; fi
step() { printf '\n%s==> %s%s\n' "$BOLD" "$*" "$RESET"; }
note() { printf '    %s\n' "$*"; }
die() { printf 'quickstart: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------
# What we need
# ---------------------------------------------------------------------------------------

# PostgreSQL server binaries: $PALISADE_PG_BINDIR if set (as for the tests), else
# pg_config's bindir, else the highest version under /usr/lib/postgresql (Debian/Ubuntu
# keep the server binaries there, out of PATH), else whatever is on PATH.
find_pg_bindir() {
    local dir candidates=()
    if [[ -n "${PALISADE_PG_BINDIR:-}" ]]; then
        candidates+=("$PALISADE_PG_BINDIR")
    fi
    if command -v pg_config >/dev/null 2>&1; then
        candidates+=("$(pg_config --bindir 2>/dev/null || true)")
    fi
    if compgen -G '/usr/lib/postgresql/*/bin' >/dev/null; then
        while IFS= read -r dir; do candidates+=("$dir"); done \
            < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -t/ -k5,5 -V -r)
    fi
    if command -v initdb >/dev/null 2>&1; then
        candidates+=("$(dirname "$(command -v initdb)")")
    fi
    for dir in "${candidates[@]}"; do
        if [[ -n "$dir" && -x "$dir/initdb" && -x "$dir/pg_ctl" && -x "$dir/postgres" ]]; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

find_psql() {
    if [[ -n "${PG_BINDIR:-}" && -x "$PG_BINDIR/psql" ]]; then
        echo "$PG_BINDIR/psql"
    else
        command -v psql
    fi
}

step "Checking prerequisites"
command -v cargo >/dev/null 2>&1 ||
    die "cargo not found. Install Rust with https://rustup.rs:
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh"

missing_pkgs=()
command -v cc >/dev/null 2>&1 || missing_pkgs+=(build-essential)
PG_BINDIR=$(find_pg_bindir || true)
[[ -n "$PG_BINDIR" ]] && find_psql >/dev/null 2>&1 || missing_pkgs+=(postgresql postgresql-contrib)

if ((${#missing_pkgs[@]} > 0)); then
    if ((EUID == 0)) && command -v apt-get >/dev/null 2>&1; then
        note "installing ${missing_pkgs[*]} with apt-get"
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing_pkgs[@]}"
        PG_BINDIR=$(find_pg_bindir) || die "PostgreSQL server binaries still not found after installing"
    else
        die "missing: ${missing_pkgs[*]}. On Debian/Ubuntu install them with:
    sudo apt-get update && sudo apt-get install -y ${missing_pkgs[*]}
then run examples/quickstart.sh again."
    fi
fi
PSQL=$(find_psql)
note "cargo:      $(cargo --version)"
note "PostgreSQL: $("$PG_BINDIR/postgres" --version) ($PG_BINDIR)"
note "psql:       $PSQL"

# PostgreSQL refuses to run as root: as root, the server side runs as the postgres
# system user (or nobody), and the temporary directory is handed to that user.
PG_OS_USER=
if ((EUID == 0)); then
    command -v runuser >/dev/null 2>&1 || die "runuser not found (package util-linux); needed to run PostgreSQL as a non-root user"
    if id -u postgres >/dev/null 2>&1; then PG_OS_USER=postgres; else PG_OS_USER=nobody; fi
    note "running as root: PostgreSQL will run as user $PG_OS_USER"
fi

# Runs a PostgreSQL server-side command, as $PG_OS_USER when we are root.
as_pg() {
    if [[ -n "$PG_OS_USER" ]]; then
        (cd "$WORK" && runuser -u "$PG_OS_USER" -- "$@")
    else
        (cd "$WORK" && "$@")
    fi
}

# ---------------------------------------------------------------------------------------
# Build
# ---------------------------------------------------------------------------------------

step "Building palisade-sidecar, kubectl-palisade and dev-issuer (cargo build --release)"
note "The first build compiles all dependencies and takes a few minutes."
cargo build --release -p palisade-sidecar -p palisade-operator -p palisade-tests \
    --bin palisade-sidecar --bin kubectl-palisade --bin dev-issuer
BIN="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release"
SIDECAR="$BIN/palisade-sidecar"
PLUGIN="$BIN/kubectl-palisade"
ISSUER_TOOL="$BIN/dev-issuer"
for b in "$SIDECAR" "$PLUGIN" "$ISSUER_TOOL"; do
    [[ -x "$b" ]] || die "built, but $b is not there (is build.target-dir set in a cargo config?)"
done

# ---------------------------------------------------------------------------------------
# Cleanup, set up before anything is started
# ---------------------------------------------------------------------------------------

WORK=
SIDECAR_PID=
PG_STARTED=0

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if ((KEEP == 1 && rc == 0)); then
        return 0
    fi
    if [[ -n "$SIDECAR_PID" ]] && kill -0 "$SIDECAR_PID" 2>/dev/null; then
        kill -TERM "$SIDECAR_PID" 2>/dev/null || true
        wait "$SIDECAR_PID" 2>/dev/null || true
    fi
    if ((PG_STARTED == 1)); then
        as_pg "$PG_BINDIR/pg_ctl" -D "$WORK/pgdata" -m fast -w stop >/dev/null 2>&1 || true
    fi
    if [[ -n "$WORK" && -d "$WORK" ]]; then
        rm -rf "$WORK"
    fi
    if ((rc != 0)); then
        printf '\nquickstart: failed (exit status %d); everything it started is stopped.\n' "$rc" >&2
        ((KEEP == 1)) && printf 'quickstart: (--keep applies only to a successful run)\n' >&2
    else
        printf '\nStopped the sidecar and PostgreSQL, removed the temporary directory.\n'
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

WORK=$(mktemp -d "${TMPDIR:-/tmp}/palisade-quickstart.XXXXXX")
mkdir -p "$WORK/policy"
if [[ -n "$PG_OS_USER" ]]; then
    chown -R "$PG_OS_USER": "$WORK"
    runuser -u "$PG_OS_USER" -- test -w "$WORK" ||
        die "user $PG_OS_USER cannot write to $WORK; set TMPDIR to a directory it can reach (e.g. TMPDIR=/tmp)"
fi

# ---------------------------------------------------------------------------------------
# Free ports
# ---------------------------------------------------------------------------------------

TAKEN_PORTS=" "
NEXT_PROBE=55432
# Sets the variable named $1 to a port nothing listens on: asked of the kernel with
# python3 if present, else found by trying ports from 55432 up with a connect probe.
free_port() {
    local port
    while :; do
        if command -v python3 >/dev/null 2>&1; then
            port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        else
            port=$NEXT_PROBE
            NEXT_PROBE=$((NEXT_PROBE + 1))
            ((port < 65535)) || die "no free port found"
            if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
                continue # something listens there
            fi
        fi
        [[ "$TAKEN_PORTS" == *" $port "* ]] && continue
        TAKEN_PORTS+="$port "
        printf -v "$1" '%s' "$port"
        return 0
    done
}
free_port PG_PORT
free_port LISTEN_PORT
free_port ADMIN_PORT

# ---------------------------------------------------------------------------------------
# A throwaway PostgreSQL
# ---------------------------------------------------------------------------------------

step "Starting a throwaway PostgreSQL on 127.0.0.1:$PG_PORT (in $WORK)"
as_pg "$PG_BINDIR/initdb" -D "$WORK/pgdata" -A trust -U postgres --no-sync >"$WORK/initdb.log" 2>&1 ||
    { cat "$WORK/initdb.log" >&2; die "initdb failed"; }

# The app role logs in with a password over TCP (SCRAM-SHA-256). The line goes before
# initdb's trust lines, because the first matching line wins. The postgres superuser
# stays trusted from this machine, to set the demo up.
{
    echo "# quickstart: the app role must authenticate with its password"
    echo "host    all    $APP_USER    127.0.0.1/32    scram-sha-256"
    echo
    cat "$WORK/pgdata/pg_hba.conf"
} >"$WORK/pg_hba.conf.new"
cat "$WORK/pg_hba.conf.new" >"$WORK/pgdata/pg_hba.conf" # keeps the file's owner
rm -f "$WORK/pg_hba.conf.new"

cat >>"$WORK/pgdata/postgresql.conf" <<EOF

# quickstart
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$WORK'
password_encryption = 'scram-sha-256'
EOF

as_pg "$PG_BINDIR/pg_ctl" -D "$WORK/pgdata" -l "$WORK/postgres.log" -w -t 60 start >/dev/null ||
    { cat "$WORK/postgres.log" >&2; die "PostgreSQL did not start"; }
PG_STARTED=1
note "$("$PSQL" -X -At "host=127.0.0.1 port=$PG_PORT user=postgres dbname=postgres" -c 'SHOW server_version')"

step "Creating the demo database \"shop\" (customers, orders) owned by role \"$APP_USER\""
admin_psql() { "$PSQL" -X -q -v ON_ERROR_STOP=1 "host=127.0.0.1 port=$PG_PORT user=postgres dbname=$1"; }
admin_psql postgres <<EOF
CREATE ROLE $APP_USER LOGIN PASSWORD '$APP_PASSWORD';
CREATE DATABASE shop OWNER $APP_USER;
EOF
admin_psql shop <<'EOF'
BEGIN;
SET ROLE app; -- so that app owns the tables

CREATE TABLE customers (
    id         serial PRIMARY KEY,
    name       text NOT NULL,
    email      text NOT NULL UNIQUE,
    ssn        text NOT NULL, -- made up: area numbers 9xx are never issued
    plan       text NOT NULL CHECK (plan IN ('free', 'pro', 'enterprise')),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE orders (
    id          serial PRIMARY KEY,
    customer_id integer NOT NULL REFERENCES customers (id),
    amount      numeric(10, 2) NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

INSERT INTO customers (name, email, ssn, plan, created_at)
SELECT n,
       lower(replace(n, ' ', '.')) || '@example.com',
       format('9%s-%s-%s', lpad((i * 37 % 100)::text, 2, '0'),
                           lpad((10 + i * 7 % 89)::text, 2, '0'),
                           lpad((1000 + i * 391 % 9000)::text, 4, '0')),
       (ARRAY['free', 'pro', 'enterprise'])[1 + i::int % 3],
       timestamptz '2025-01-06 09:00+00' + i * interval '9 days 3 hours'
FROM unnest(ARRAY[
    'Ada Lovelace', 'Alan Turing', 'Grace Hopper', 'Edsger Dijkstra', 'Barbara Liskov',
    'Donald Knuth', 'Frances Allen', 'Ken Thompson', 'Margaret Hamilton', 'Dennis Ritchie',
    'Radia Perlman', 'Leslie Lamport', 'Shafi Goldwasser', 'Tony Hoare', 'Sophie Wilson',
    'John Backus', 'Adele Goldberg', 'Niklaus Wirth', 'Karen Jones', 'Michael Stonebraker'
]) WITH ORDINALITY AS t(n, i);

INSERT INTO orders (customer_id, amount, created_at)
SELECT 1 + (i * 7) % 20,
       round(5 + (i * 37 % 480) + (i % 100) / 100.0, 2),
       timestamptz '2025-03-01 10:00+00' + i * interval '1 day 7 hours'
FROM generate_series(1, 100) AS i;

COMMIT;
EOF
"$PSQL" -X -At "host=127.0.0.1 port=$PG_PORT user=postgres dbname=shop" -c \
    "SELECT format('    customers: %s rows, orders: %s rows', (SELECT count(*) FROM customers), (SELECT count(*) FROM orders))"

# ---------------------------------------------------------------------------------------
# The sidecar
# ---------------------------------------------------------------------------------------

step "Starting palisade-sidecar: 127.0.0.1:$LISTEN_PORT -> PostgreSQL 127.0.0.1:$PG_PORT"
# A throwaway OpenID Connect issuer: its public keys go where the policy's jwksSecretRef
# points (a Secret in a cluster, <secrets-dir>/<name>/<key> standalone).
ISSUER=https://issuer.palisade.invalid
"$ISSUER_TOOL" init --dir "$WORK/idp" --issuer "$ISSUER" >/dev/null
mkdir -p "$WORK/secrets/idp-jwks"
cp "$WORK/idp/jwks.json" "$WORK/secrets/idp-jwks/jwks.json"
sed -e "s/\${LISTEN_PORT}/$LISTEN_PORT/g" -e "s/\${PG_PORT}/$PG_PORT/g" -e "s|\${ISSUER}|$ISSUER|g" \
    examples/quickstart/policy.yaml >"$WORK/policy/policy.yaml"
note "policy:  $WORK/policy/policy.yaml (from examples/quickstart/policy.yaml)"
note "admin:   http://127.0.0.1:$ADMIN_PORT (/healthz, /readyz, /metrics, /approvals)"
note "issuer:  $ISSUER (dev-issuer, keys in $WORK/idp)"
note "log:     $WORK/sidecar.log"
"$SIDECAR" run \
    --policy-dir "$WORK/policy" \
    --secrets-dir "$WORK/secrets" \
    --admin-address "127.0.0.1:$ADMIN_PORT" \
    --log-level info \
    --shutdown-grace 2s \
    </dev/null >>"$WORK/sidecar.log" 2>&1 &
SIDECAR_PID=$!

for ((i = 0; ; i++)); do
    if ! kill -0 "$SIDECAR_PID" 2>/dev/null; then
        wait "$SIDECAR_PID" 2>/dev/null || true
        SIDECAR_PID=
        cat "$WORK/sidecar.log" >&2
        die "the sidecar exited (its log is above)"
    fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$LISTEN_PORT") 2>/dev/null; then
        break
    fi
    if ((i >= 150)); then
        cat "$WORK/sidecar.log" >&2
        die "the sidecar is not listening on 127.0.0.1:$LISTEN_PORT after 30s (its log is above)"
    fi
    sleep 0.2
done
note "listening (pid $SIDECAR_PID)"

# ---------------------------------------------------------------------------------------
# Through the sidecar
# ---------------------------------------------------------------------------------------

# psql as the app sees it: to the sidecar's port, never the database's.
app_psql() {
    PGPASSWORD=$APP_PASSWORD "$PSQL" -X -P pager=off -v ON_ERROR_STOP=1 \
        "host=127.0.0.1 port=$LISTEN_PORT user=$APP_USER dbname=$1" "${@:2}"
}

step "1. Query through the sidecar: top customers by order total"
note "psql connects to the sidecar on port $LISTEN_PORT as \"$APP_USER\" with PGPASSWORD=$APP_PASSWORD."
note "The policy accepts ID tokens (spec.identity.oidc), so the sidecar asks for the password"
note "itself; one that is not a token is the database password, checked by PostgreSQL (SCRAM)."
echo
app_psql shop -c "
SELECT c.name, c.plan, count(o.id) AS orders, sum(o.amount) AS total
FROM customers c JOIN orders o ON o.customer_id = c.id
GROUP BY c.id, c.name, c.plan
ORDER BY total DESC
LIMIT 5"

step "2. Who answered? The client dialled port $LISTEN_PORT; the database reports its own port"
echo
app_psql shop -c "SELECT inet_server_port(), current_user"
note "inet_server_port() = $PG_PORT: the query went through the sidecar to PostgreSQL."

step "3. A database the policy does not allow: psql ... dbname=postgres"
note "spec.database.databases is [shop], so the sidecar refuses before contacting PostgreSQL:"
echo
set +e
app_psql postgres -c "SELECT 1" 2>&1
refused_rc=$?
set -e
echo
if ((refused_rc == 0)); then
    die "connecting to database postgres succeeded, but the policy should have refused it"
fi
note "(psql exited with status $refused_rc, as expected)"

step "4. Guardrails: statements the policy's rules deny never reach the database"
note "rules no-destructive-ddl and writes-need-where (examples/quickstart/policy.yaml):"
echo
set +e
app_psql shop -c "DROP TABLE customers" 2>&1
app_psql shop -c "BEGIN; DELETE FROM orders WHERE 1=1; COMMIT" 2>&1
set -e
echo
note "Both were refused; the tables are untouched and the session would have gone on:"
app_psql shop -At -c "SELECT 'customers: ' || (SELECT count(*) FROM customers) || ', orders: ' || (SELECT count(*) FROM orders)"
note "Check a statement offline first: cargo run -q -p palisade-operator --bin kubectl-palisade -- check -f <policy.yaml> --sql '...'"

step "5. Masking: the MaskingRule customer-pii masks email and ssn in every result"
note "through the sidecar, as the app sees it:"
echo
app_psql shop -c "SELECT name, email, ssn, upper(email) AS derived FROM customers ORDER BY id LIMIT 3"
note "the database itself holds the real values:"
admin_psql shop <<<"SELECT name, email, ssn FROM customers ORDER BY id LIMIT 3"
echo
note "copying masked values out of reach is refused, and so is sending them to a notification:"
set +e
app_psql shop -c "CREATE TABLE leak AS SELECT email, ssn FROM customers" 2>&1
app_psql shop -c "SELECT pg_notify('leak', ssn) FROM customers" 2>&1
echo
note "the server's own error about a masked value keeps its shape, not the value:"
app_psql shop -c "SELECT ssn::int FROM customers" 2>&1
set -e

step "6. Approvals: changing an order waits on the app's own connection for a data steward"
note "rule order-changes; psql sends the UPDATE and waits (here in the background):"
APPROVAL_OUT="$WORK/held-psql.out"
app_psql shop -c "UPDATE orders SET amount = amount - 5 WHERE id = 1" >"$APPROVAL_OUT" 2>&1 &
HELD_PID=$!
REQUEST=
for ((i = 0; i < 100; i++)); do
    REQUEST=$("$PLUGIN" approvals --sidecar "http://127.0.0.1:$ADMIN_PORT" -o json |
        sed -n 's/^ *"name": "\(shop-[0-9a-f]*\)",$/\1/p' | head -n 1)
    [[ -n "$REQUEST" ]] && break
    sleep 0.1
done
[[ -n "$REQUEST" ]] || die "no approval request showed up for the held UPDATE"
echo
sed 's/^/    /' "$APPROVAL_OUT"
echo
note "what an approver sees (kubectl palisade approvals --sidecar http://127.0.0.1:$ADMIN_PORT):"
echo
"$PLUGIN" approvals --sidecar "http://127.0.0.1:$ADMIN_PORT" | sed 's/^/    /'
echo
note "bob, a data steward, logs in to the issuer (here: dev-issuer token) and approves,"
note "as from another terminal:"
"$ISSUER_TOOL" token --dir "$WORK/idp" --user bob@example.com --group data-stewards >"$WORK/bob.jwt"
echo "    \$ kubectl palisade approve $REQUEST --sidecar http://127.0.0.1:$ADMIN_PORT --token-file bob.jwt --comment 'refund agreed'"
"$PLUGIN" approve "$REQUEST" --sidecar "http://127.0.0.1:$ADMIN_PORT" \
    --token-file "$WORK/bob.jwt" --comment 'refund agreed' | sed 's/^/    /'
wait "$HELD_PID" || die "the held UPDATE did not run after approval: $(cat "$APPROVAL_OUT")"
note "the held psql finishes; the UPDATE ran as sent:"
echo
sed 's/^/    /' "$APPROVAL_OUT"

step "7. The sidecar's Prometheus metrics (http://127.0.0.1:$ADMIN_PORT/metrics)"
metrics=
if command -v curl >/dev/null 2>&1; then
    metrics=$(curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics" || true)
elif command -v python3 >/dev/null 2>&1; then
    metrics=$(python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' \
        "http://127.0.0.1:$ADMIN_PORT/metrics" || true)
else
    note "(neither curl nor python3 is installed: skipping)"
fi
if [[ -n "$metrics" ]]; then
    echo
    # Histogram buckets left out for brevity.
    grep '^palisade_' <<<"$metrics" | grep -v '_bucket{' | head -n 12 || true
fi

# ---------------------------------------------------------------------------------------
# Done
# ---------------------------------------------------------------------------------------

if ((KEEP == 1)); then
    STOP_PG="$PG_BINDIR/pg_ctl -D $WORK/pgdata -m fast stop"
    [[ -n "$PG_OS_USER" ]] && STOP_PG="runuser -u $PG_OS_USER -- $STOP_PG"
    cat >"$WORK/stop.sh" <<EOF
#!/usr/bin/env bash
# Stops what examples/quickstart.sh --keep left running and removes its directory.
kill $SIDECAR_PID 2>/dev/null || true
(cd / && $STOP_PG) || true
rm -rf '$WORK'
EOF
    chmod +x "$WORK/stop.sh"
    step "Left running (--keep)"
    cat <<EOF
    Connect through the sidecar (password: $APP_PASSWORD):
        PGPASSWORD=$APP_PASSWORD psql "host=127.0.0.1 port=$LISTEN_PORT user=$APP_USER dbname=shop"
    The database directly:   psql "host=127.0.0.1 port=$PG_PORT user=postgres dbname=shop"
    Metrics:                 curl -s http://127.0.0.1:$ADMIN_PORT/metrics
    Approval requests:       $PLUGIN approvals --all --sidecar http://127.0.0.1:$ADMIN_PORT
    An approver's ID token:  $ISSUER_TOOL token --dir $WORK/idp --user bob@example.com --group data-stewards
    Sidecar log:             $WORK/sidecar.log
    Policy (edits reload):   $WORK/policy/policy.yaml

    Stop everything:
        $WORK/stop.sh
    which runs:
        kill $SIDECAR_PID
        $STOP_PG
        rm -rf $WORK
EOF
fi
