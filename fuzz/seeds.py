#!/usr/bin/env python3
"""Writes the committed seed corpora of the fuzz targets: fuzz/corpus/<target>/seed-*.

Real inputs, kept tiny: AdmissionReviews shaped as the Kubernetes API server sends them
(as in tests/it/webhook), identity stamps signed with the fuzz targets' key
(shepherd_fuzz::KEY, in fuzz/src/lib.rs), REST request bodies and query strings as the
kubectl-shepherd plugin sends them, and names. Each file starts with the selector byte its
target reads first (see the target's doc comment). Deterministic: run it again after a
format changes, and commit what changed.

    python3 fuzz/seeds.py
"""
import base64
import hashlib
import hmac
import json
import pathlib
import shutil

HERE = pathlib.Path(__file__).resolve().parent
CORPUS = HERE / "corpus"

KEY = b"fuzz-identity-key-fuzz-identity!"
DOMAIN = "kubevirt-shepherd/identity/v2"
GROUP = "shepherd.kv-shepherd.io"
ANN = "shepherd.kv-shepherd.io/"
REQUEST_UID = "705ab4f5-6393-11e8-b7cc-42010a800002"
ALICE = {
    "username": "alice@example.com",
    "uid": "5f1c7a42-0d1e-4d55-9f6a-1d2b3c4d5e6f",
    "groups": ["system:authenticated", "team-a"],
}


def compact(value):
    """serde_json's compact form (maps sorted, as serde_json::Map without preserve_order)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def stamp(kind, namespace, name, identity, nonce, target=None):
    """The annotations domain::identity::stamp writes (HMAC-SHA256 over its canonical JSON)."""
    groups = sorted(set(identity["groups"]))
    canonical = compact([DOMAIN, kind, namespace or None, name, identity["username"],
                         identity["uid"], groups, nonce, target])
    signature = hmac.new(KEY, canonical.encode(), hashlib.sha256).hexdigest()
    key_id = hashlib.sha256(b"kubevirt-shepherd/identity-key-id\0" + KEY).hexdigest()[:12]
    annotations = {
        ANN + "requested-by": identity["username"],
        ANN + "requested-by-uid": identity["uid"],
        ANN + "requested-by-groups": compact(groups),
        ANN + "identity-nonce": nonce,
        ANN + "identity-key-id": key_id,
        ANN + "identity-signature": signature,
    }
    if target is not None:
        annotations[ANN + "approval-target"] = compact(target)
    return annotations


SPECS = {
    "VmRequest": {"system": "shop", "service": "web", "targetNamespace": "team-a",
                  "template": "fedora", "instanceSize": "small", "count": 2,
                  "reason": "capacity"},
    "Approval": {"target": {"kind": "VmRequest", "name": "web-capacity"},
                 "decision": "Approve", "reason": "ok"},
    "VmOperation": {"vm": "team-a-shop-web-01", "action": "stop"},
    "System": {"description": "the shop"},
    "Service": {"system": "shop", "description": "web front"},
}
PLURAL = {"VmRequest": "vmrequests", "Approval": "approvals", "VmOperation": "vmoperations",
          "System": "systems", "Service": "services", "Cluster": "clusters"}


def obj(kind, namespace, name, annotations=None):
    metadata = {"name": name, "labels": {"app": "web"}, "creationTimestamp": None}
    if namespace:
        metadata["namespace"] = namespace
    if annotations is not None:
        metadata["annotations"] = annotations
    return {"apiVersion": GROUP + "/v1alpha1", "kind": kind, "metadata": metadata,
            "spec": SPECS.get(kind, {"description": "x"})}


def review(kind, operation, namespace, name, new=None, old=None, group=GROUP, dry_run=False):
    version = "v1alpha1" if group else "v1"
    resource = PLURAL.get(kind, kind.lower() + "s")
    request = {
        "uid": REQUEST_UID,
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": group, "version": version, "resource": resource},
        "requestKind": {"group": group, "version": version, "kind": kind},
        "requestResource": {"group": group, "version": version, "resource": resource},
        "name": name,
        "operation": operation,
        "userInfo": dict(ALICE, extra={"authentication.kubernetes.io/credential-id": ["JTI=abc"]}),
        "object": new,
        "oldObject": old,
        "dryRun": dry_run,
        "options": {"kind": {"CREATE": "CreateOptions", "UPDATE": "UpdateOptions"}
                    .get(operation, "DeleteOptions"), "apiVersion": "meta.k8s.io/v1"},
    }
    if namespace:
        request["namespace"] = namespace
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def write(target, name, selector, payload):
    directory = CORPUS / target
    directory.mkdir(parents=True, exist_ok=True)
    if isinstance(payload, (dict, list)):
        payload = compact(payload)
    if isinstance(payload, str):
        payload = payload.encode()
    prefix = bytes([selector]) if selector is not None else b""
    (directory / f"seed-{name}").write_bytes(prefix + payload)


def b64(value):
    return base64.urlsafe_b64encode(compact(value).encode()).decode().rstrip("=")


def admission_review():
    t = "admission_review"
    nonce = "0123456789abcdef0123456789abcdef"
    stamped = stamp("VmRequest", "apps", "web-capacity", ALICE, nonce)
    create = obj("VmRequest", "apps", "web-capacity", {"team.example.com/cost": "42"})
    write(t, "mutate-create-vmrequest", 0, review("VmRequest", "CREATE", "apps", "web-capacity", create))
    write(t, "validate-create-vmrequest", 1, review("VmRequest", "CREATE", "apps", "web-capacity", create))
    system = obj("System", None, "shop")
    write(t, "mutate-create-system", 0, review("System", "CREATE", None, "shop", system))
    approval = obj("Approval", "apps", "ok-web", None)
    write(t, "mutate-create-approval-dry-run", 2,
          review("Approval", "CREATE", "apps", "ok-web", approval, dry_run=True))
    changed = dict(stamped, **{ANN + "requested-by": "mallory"})
    write(t, "mutate-update-restores-stamp", 0,
          review("VmRequest", "UPDATE", "apps", "web-capacity",
                 obj("VmRequest", "apps", "web-capacity", changed),
                 obj("VmRequest", "apps", "web-capacity", stamped)))
    write(t, "validate-delete-vmoperation", 1,
          review("VmOperation", "DELETE", "apps", "stop-web-01", None,
                 obj("VmOperation", "apps", "stop-web-01", {})))
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "apps"}}
    write(t, "validate-other-group", 1, review("Pod", "CREATE", "apps", "p", pod, group=""))
    write(t, "mutate-no-request", 0, {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"})


def identity_stamp():
    t = "identity_stamp"
    nonce = "fedcba9876543210fedcba9876543210"
    for kind, namespace, name, target in [
        ("VmRequest", "apps", "web-capacity", None),
        ("System", None, "shop", None),
        ("Approval", "apps", "ok-web", {"uid": "0b5e2f6a-1c3d-4e5f-8a9b-0c1d2e3f4a5b",
                                        "ticketId": "7d0c2f9e-0000-4000-8000-000000000001"}),
    ]:
        write(t, f"real-{kind.lower()}", None, {
            "kind": kind, "namespace": namespace, "name": name,
            "annotations": stamp(kind, namespace, name, ALICE, nonce, target),
        })


def rest_bodies():
    t = "rest_bodies"
    write(t, "new-role-binding", 0, {"subject": {"kind": "User", "name": "alice"}, "role": "operator",
                                     "system": "shop", "allowedEnvironments": ["test", "prod"]})
    write(t, "new-role-binding-group", 0, {"subject": {"kind": "Group", "name": "approvers"},
                                           "role": "approver"})
    write(t, "approve", 1, {"reason": "capacity checked", "overrides": {
        "cluster": "target-1", "storageClass": "fast", "templateVersion": 2,
        "cpuRequestMillis": 500, "cpuLimitMillis": 1000, "memoryRequestMib": 1024,
        "memoryLimitMib": 2048, "diskGib": 40}})
    write(t, "preview", 2, {"overrides": {"cluster": "target-1"}})
    write(t, "reject", 3, {"reason": "too late"})
    time_key = ["2026-01-01T00:00:00Z", "7d0c2f9e-0000-4000-8000-000000000001"]
    write(t, "tickets-query", 4, "status=PendingApproval&environment=test&type=create"
          f"&awaitingMe=true&limit=10&cursor={b64(time_key)}")
    write(t, "systems-query", 5, f"limit=50&cursor={b64('shop')}")
    write(t, "vms-query", 6, "system=shop&service=web&environment=prod&status=Running"
          f"&limit=2&cursor={b64(['2026-01-01T00:00:00Z', 'team-a-shop-web-01'])}")
    write(t, "audit-query", 7, "actor=alice&resourceType=ticket&action=approval."
          f"&since=2026-01-01T00:00:00Z&until=2026-02-01T00:00:00Z&limit=5&cursor={b64(42)}")
    write(t, "ticket-id", 8, "7d0c2f9e-0000-4000-8000-000000000001")
    write(t, "system-services", 9, "shop")
    write(t, "system-services-encoded", 10, "shop/a b%2F?#")


def names():
    t = "names"
    for name in ["shop", "team-a", "a1-b2", "abcdefghijklmno", "kube-system", "default", "Shop"]:
        write(t, name.lower() + ("-upper" if name != name.lower() else ""), 0, name)


def main():
    for target, make in [("admission_review", admission_review), ("identity_stamp", identity_stamp),
                         ("rest_bodies", rest_bodies), ("names", names)]:
        directory = CORPUS / target
        for old in directory.glob("seed-*"):
            old.unlink()
        make()
        print(f"{target}: {len(list(directory.glob('seed-*')))} seeds in {directory.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
