//! `helm lint --strict` and `helm template` of the chart, with the default values and with
//! cert-manager, NetworkPolicy and ServiceMonitor turned on; every rendered built-in object
//! passes `kubernetes-validate --strict` for Kubernetes 1.37, and the rendered objects say
//! what the chart promises (restricted pods, failing-closed webhooks, kept secrets).

use super::{
    CHART, FULLNAME, NAMESPACE, RELEASE, documents, helm, kubernetes_validate_path, object,
};
use serde_json::{Value, json};
use std::path::Path;

const BASE: &[&str] = &[
    "--set",
    "database.existingSecret=shepherd-db",
    "--set",
    "fullnameOverride=kubevirt-shepherd",
];

/// The value sets the chart is rendered with: defaults, and each optional part turned on.
fn variants() -> Vec<(&'static str, Vec<&'static str>)> {
    vec![
        ("default", vec![]),
        (
            "cert-manager",
            vec!["--set", "tls.certManager.enabled=true"],
        ),
        (
            "network-policy",
            vec![
                "--set",
                "networkPolicy.enabled=true",
                "--set",
                "networkPolicy.apiServerCIDRs={10.0.0.0/24,192.168.10.5/32}",
            ],
        ),
        (
            "service-monitor",
            vec![
                "--set",
                "serviceMonitor.enabled=true",
                "--set",
                "tls.webhookClientCA=PEM",
            ],
        ),
    ]
}

fn render(home: &Path, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["template", RELEASE, CHART, "--namespace", NAMESPACE];
    args.extend_from_slice(BASE);
    args.extend_from_slice(extra);
    let (ok, out, err) = helm(home, &args);
    assert!(ok, "helm template {extra:?} failed: {err}");
    documents(&out)
}

/// Kinds Kubernetes serves itself; the chart's others come from cert-manager and the
/// Prometheus Operator (whose CRDs are not in the 1.37 schemas).
fn built_in(doc: &Value) -> bool {
    let api_version = doc["apiVersion"].as_str().unwrap_or_default();
    ![
        "cert-manager.io/",
        "monitoring.coreos.com/",
        "shepherd.kv-shepherd.io/",
    ]
    .iter()
    .any(|group| api_version.starts_with(group))
}

/// Runs `kubernetes-validate --strict` for 1.37 over the documents; (ok, output).
fn validate(dir: &Path, docs: &[&Value]) -> (bool, String) {
    let mut files = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        let path = dir.join(format!("{i:02}-{}.yaml", doc["kind"].as_str().unwrap()));
        std::fs::write(&path, serde_json::to_string(doc).unwrap()).unwrap();
        files.push(path);
    }
    let out = std::process::Command::new(kubernetes_validate_path())
        .args(["--strict", "--kubernetes-version", "1.37.0", "--quiet"])
        .args(&files)
        .output()
        .expect("run kubernetes-validate");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_chart_lints_strictly_with_every_variant() {
    let home = tempfile::tempdir().unwrap();
    for (name, extra) in variants() {
        let mut args = vec!["lint", "--strict", CHART];
        args.extend_from_slice(BASE);
        args.extend_from_slice(&extra);
        let (ok, out, err) = helm(home.path(), &args);
        assert!(ok, "helm lint --strict ({name}) failed: {out}{err}");
    }
}

#[test]
fn every_rendered_built_in_object_is_valid_for_kubernetes_1_37() {
    let home = tempfile::tempdir().unwrap();
    for (name, extra) in variants() {
        let docs = render(home.path(), &extra);
        let dir = tempfile::tempdir().unwrap();
        let built_ins: Vec<&Value> = docs.iter().filter(|d| built_in(d)).collect();
        assert!(built_ins.len() >= 15, "{name}: {} objects", built_ins.len());
        let (ok, output) = validate(dir.path(), &built_ins);
        assert!(
            ok,
            "{name}: kubernetes-validate --strict refused:\n{output}"
        );
    }
    // The check can fail: an unknown field in the Deployment is refused.
    let docs = render(home.path(), &[]);
    let mut broken = object(&docs, "Deployment", FULLNAME).clone();
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullSecret"] = json!("typo");
    let dir = tempfile::tempdir().unwrap();
    let (ok, output) = validate(dir.path(), &[&broken]);
    assert!(!ok, "an unknown field passed: {output}");
}

#[test]
fn the_pods_run_restricted_and_the_webhooks_fail_closed_outside_the_release_namespace() {
    let home = tempfile::tempdir().unwrap();
    let docs = render(home.path(), &[]);
    let deployment = object(&docs, "Deployment", FULLNAME);
    assert_eq!(deployment["spec"]["replicas"], json!(2));
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], json!(true));
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        json!("RuntimeDefault")
    );
    assert_eq!(pod["serviceAccountName"], json!(FULLNAME));
    assert!(
        pod["topologySpreadConstraints"]
            .as_array()
            .is_some_and(|t| !t.is_empty())
    );
    let container = &pod["containers"][0];
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], json!(true));
    assert_eq!(security["allowPrivilegeEscalation"], json!(false));
    assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(
        container["readinessProbe"]["httpGet"]["path"],
        json!("/readyz")
    );
    assert_eq!(
        container["livenessProbe"]["httpGet"]["path"],
        json!("/healthz")
    );
    assert!(container["resources"]["requests"]["memory"].is_string());
    assert_eq!(
        object(&docs, "PodDisruptionBudget", FULLNAME)["spec"]["minAvailable"],
        json!(1)
    );
    // The migration Job runs before install and upgrade, without an API token.
    let job = object(&docs, "Job", &format!("{FULLNAME}-migrate"));
    assert_eq!(
        job["metadata"]["annotations"]["helm.sh/hook"],
        json!("pre-install,pre-upgrade")
    );
    assert_eq!(
        job["spec"]["template"]["spec"]["automountServiceAccountToken"],
        json!(false)
    );

    let tls = object(&docs, "Secret", &format!("{FULLNAME}-tls"));
    for kind in [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ] {
        for hook in object(&docs, kind, FULLNAME)["webhooks"]
            .as_array()
            .unwrap()
        {
            assert_eq!(hook["failurePolicy"], json!("Fail"), "{kind}");
            assert_eq!(hook["sideEffects"], json!("NoneOnDryRun"), "{kind}");
            assert_eq!(hook["timeoutSeconds"], json!(10), "{kind}");
            assert_eq!(
                hook["namespaceSelector"]["matchExpressions"][0],
                json!({"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": [NAMESPACE]}),
                "{kind}"
            );
            assert_eq!(
                hook["clientConfig"]["service"]["name"],
                json!(format!("{FULLNAME}-webhook"))
            );
            // The webhook trusts the CA of the serving pair the chart keeps.
            assert_eq!(
                hook["clientConfig"]["caBundle"], tls["data"]["ca.crt"],
                "{kind}"
            );
        }
    }
    let identity = object(&docs, "Secret", &format!("{FULLNAME}-identity"));
    assert_eq!(
        identity["metadata"]["annotations"]["helm.sh/resource-policy"],
        json!("keep")
    );
    assert!(
        identity["data"]["key"]
            .as_str()
            .is_some_and(|k| k.len() >= 64)
    );
}

#[test]
fn optional_parts_render_what_they_promise() {
    let home = tempfile::tempdir().unwrap();
    let with = |extra: &[&str]| render(home.path(), extra);

    // cert-manager issues the serving pair and injects the CA; the chart makes none itself.
    let docs = with(&["--set", "tls.certManager.enabled=true"]);
    let certificate = object(&docs, "Certificate", &format!("{FULLNAME}-serving"));
    assert_eq!(
        certificate["spec"]["secretName"],
        json!(format!("{FULLNAME}-tls"))
    );
    assert!(
        certificate["spec"]["dnsNames"]
            .as_array()
            .unwrap()
            .contains(&json!(format!("{FULLNAME}-webhook.{NAMESPACE}.svc")))
    );
    assert!(
        !docs
            .iter()
            .any(|d| d["kind"] == "Secret" && d["metadata"]["name"] == format!("{FULLNAME}-tls"))
    );
    let hooks = object(&docs, "ValidatingWebhookConfiguration", FULLNAME);
    assert_eq!(
        hooks["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
        json!(format!("{NAMESPACE}/{FULLNAME}-serving"))
    );
    assert!(hooks["webhooks"][0]["clientConfig"]["caBundle"].is_null());

    // The NetworkPolicy admits only the API server's addresses to the webhook port.
    let docs = with(&[
        "--set",
        "networkPolicy.enabled=true",
        "--set",
        "networkPolicy.apiServerCIDRs={10.0.0.0/24}",
    ]);
    let policy = object(&docs, "NetworkPolicy", FULLNAME);
    let webhook_rule = policy["spec"]["ingress"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["ports"][0]["port"] == "webhook")
        .expect("a rule for the webhook port");
    assert_eq!(
        webhook_rule["from"],
        json!([{"ipBlock": {"cidr": "10.0.0.0/24"}}])
    );
    // Enabled without the API server's addresses, it refuses to render.
    let mut args = vec!["template", RELEASE, CHART, "--namespace", NAMESPACE];
    args.extend_from_slice(BASE);
    args.extend_from_slice(&["--set", "networkPolicy.enabled=true"]);
    let (ok, _, err) = helm(home.path(), &args);
    assert!(!ok && err.contains("networkPolicy.apiServerCIDRs"), "{err}");

    let docs = with(&["--set", "serviceMonitor.enabled=true"]);
    let monitor = object(&docs, "ServiceMonitor", FULLNAME);
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], json!("metrics"));
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], json!("/metrics"));
}

#[test]
fn bad_values_are_refused_naming_the_value() {
    let home = tempfile::tempdir().unwrap();
    for (values, named) in [
        (vec!["--set", "replicaCount=0"], "/replicaCount"),
        (
            vec!["--set", "bootstrapAdmins={alice}"],
            "/bootstrapAdmins/0",
        ),
        (vec!["--set", "logging.format=xml"], "/logging/format"),
        (vec!["--set", "replicas=3"], "replicas"),
    ] {
        let mut args = vec!["template", RELEASE, CHART, "--namespace", NAMESPACE];
        args.extend_from_slice(BASE);
        args.extend_from_slice(&values);
        let (ok, _, err) = helm(home.path(), &args);
        assert!(!ok, "{values:?} was accepted");
        assert!(err.contains(named), "{values:?}: {err}");
    }
    // Without the database Secret, it says which value is missing.
    let (ok, _, err) = helm(
        home.path(),
        &["template", RELEASE, CHART, "--namespace", NAMESPACE],
    );
    assert!(!ok && err.contains("database.existingSecret"), "{err}");
}

#[test]
fn the_chart_version_and_values_are_documented_and_in_step_with_the_crate() {
    let chart: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(format!("{CHART}/Chart.yaml")).unwrap())
            .unwrap();
    assert_eq!(chart["apiVersion"], json!("v2"));
    assert_eq!(chart["appVersion"], json!(env!("CARGO_PKG_VERSION")));

    // Every value is documented: a comment above it or above the block it belongs to.
    let values = std::fs::read_to_string(format!("{CHART}/values.yaml")).unwrap();
    let mut documented_at: Vec<(usize, bool)> = Vec::new(); // (indent, documented) of open blocks
    let mut previous_comment = false;
    for line in values.lines() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() {
            previous_comment = false;
            continue;
        }
        if trimmed.starts_with('#') {
            previous_comment = true;
            continue;
        }
        let indent = line.len() - trimmed.len();
        documented_at.retain(|(i, _)| *i < indent);
        let inherited = documented_at.iter().any(|(_, d)| *d);
        let key = trimmed.split(':').next().unwrap();
        assert!(
            previous_comment || inherited,
            "values.yaml: `{key}` is not documented"
        );
        documented_at.push((indent, previous_comment || inherited));
        previous_comment = false;
    }
}
