//! Built-in workload and networking kinds a Helm chart installs: Deployment, Service,
//! PodDisruptionBudget, NetworkPolicy and Job. They are stored and served (discovery as
//! the real server lists them, status subresources where it has them) with the defaults
//! the real API server fills in on create; no controller acts on them. Jobs in particular
//! stay as created until a test, acting as the node, writes their status.

use serde_json::{Value, json};

use crate::resources::{ResourceDef, builtin};

/// The resources, as the real server's discovery lists them.
pub fn defs() -> Vec<ResourceDef> {
    let all = |mut d: ResourceDef| {
        d.categories = vec!["all".into()];
        d
    };
    vec![
        all(builtin(
            "apps",
            "v1",
            "Deployment",
            "deployments",
            true,
            &["deploy"],
            true,
            true,
        )),
        all(builtin(
            "",
            "v1",
            "Service",
            "services",
            true,
            &["svc"],
            true,
            false,
        )),
        builtin(
            "policy",
            "v1",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
            true,
            &["pdb"],
            true,
            true,
        ),
        builtin(
            "networking.k8s.io",
            "v1",
            "NetworkPolicy",
            "networkpolicies",
            true,
            &["netpol"],
            false,
            true,
        ),
        all(builtin("batch", "v1", "Job", "jobs", true, &[], true, true)),
    ]
}

fn is_workload(def: &ResourceDef) -> bool {
    matches!(
        (def.group.as_str(), def.kind.as_str()),
        ("apps", "Deployment")
            | ("", "Service")
            | ("policy", "PodDisruptionBudget")
            | ("networking.k8s.io", "NetworkPolicy")
            | ("batch", "Job")
    )
}

fn default(obj: &mut Value, path: &[&str], v: Value) {
    let mut cur = obj;
    for p in &path[..path.len() - 1] {
        if !cur[*p].is_object() {
            cur[*p] = json!({});
        }
        cur = &mut cur[*p];
    }
    let last = path[path.len() - 1];
    if cur[last].is_null() {
        cur[last] = v;
    }
}

/// The service IP handed out next: 10.96.0.0/12 as kubeadm's default service CIDR.
fn cluster_ip(name: &str, ns: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (ns, name).hash(&mut h);
    let n = h.finish() as u32 % (1 << 20);
    format!(
        "10.{}.{}.{}",
        96 + (n >> 16),
        (n >> 8) & 0xff,
        (n & 0xff).max(2)
    )
}

/// What the real server's `PrepareForCreate` and defaulting do for these kinds: status
/// reset to its initial value, then the spec defaults.
pub fn on_create(def: &ResourceDef, obj: &mut Value) {
    if !is_workload(def) {
        return;
    }
    let status = match def.kind.as_str() {
        "Deployment" | "Job" => json!({}),
        "Service" => json!({"loadBalancer": {}}),
        "PodDisruptionBudget" => {
            json!({"currentHealthy": 0, "desiredHealthy": 0, "disruptionsAllowed": 0, "expectedPods": 0})
        }
        _ => Value::Null,
    };
    if let Some(m) = obj.as_object_mut() {
        m.remove("status");
        if !status.is_null() {
            m.insert("status".into(), status);
        }
    }
    defaults(def, obj);
}

/// The spec defaults the real server applies on every write (so an apply that leaves
/// out a defaulted field, such as a Service port's protocol, keeps it).
pub fn defaults(def: &ResourceDef, obj: &mut Value) {
    if !is_workload(def) {
        return;
    }
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let ns = obj["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    match def.kind.as_str() {
        "Deployment" => {
            default(obj, &["spec", "replicas"], json!(1));
            default(obj, &["spec", "revisionHistoryLimit"], json!(10));
            default(obj, &["spec", "progressDeadlineSeconds"], json!(600));
            default(
                obj,
                &["spec", "strategy"],
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
            );
        }
        "Service" => {
            let headless = obj["spec"]["clusterIP"] == "None";
            default(obj, &["spec", "type"], json!("ClusterIP"));
            default(obj, &["spec", "sessionAffinity"], json!("None"));
            if obj["spec"]["type"] != "ExternalName" {
                let ip = if headless {
                    "None".to_string()
                } else {
                    cluster_ip(&name, &ns)
                };
                default(obj, &["spec", "clusterIP"], json!(ip));
                let ip = obj["spec"]["clusterIP"].clone();
                default(obj, &["spec", "clusterIPs"], json!([ip]));
                default(obj, &["spec", "ipFamilies"], json!(["IPv4"]));
                default(obj, &["spec", "ipFamilyPolicy"], json!("SingleStack"));
                default(obj, &["spec", "internalTrafficPolicy"], json!("Cluster"));
            }
            if let Some(ports) = obj["spec"]["ports"].as_array_mut() {
                for p in ports {
                    default(p, &["protocol"], json!("TCP"));
                    let port = p["port"].clone();
                    default(p, &["targetPort"], port);
                }
            }
        }
        "NetworkPolicy" if obj["spec"]["policyTypes"].is_null() => {
            let mut types = vec![json!("Ingress")];
            if obj["spec"]["egress"].is_array() {
                types.push(json!("Egress"));
            }
            default(obj, &["spec", "policyTypes"], json!(types));
        }
        "Job" => {
            default(obj, &["spec", "parallelism"], json!(1));
            default(obj, &["spec", "completions"], json!(1));
            default(obj, &["spec", "backoffLimit"], json!(6));
            default(obj, &["spec", "completionMode"], json!("NonIndexed"));
            default(obj, &["spec", "suspend"], json!(false));
            default(
                obj,
                &["spec", "podReplacementPolicy"],
                json!("TerminatingOrFailed"),
            );
            if obj["spec"]["manualSelector"] != true {
                let uid = obj["metadata"]["uid"].clone();
                let labels = json!({
                    "batch.kubernetes.io/controller-uid": uid,
                    "batch.kubernetes.io/job-name": name,
                    "controller-uid": uid,
                    "job-name": name,
                });
                for (k, v) in labels.as_object().into_iter().flatten() {
                    default(
                        obj,
                        &["spec", "template", "metadata", "labels", k],
                        v.clone(),
                    );
                }
                default(
                    obj,
                    &["spec", "selector"],
                    json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
                );
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(kind: &str) -> ResourceDef {
        defs().into_iter().find(|d| d.kind == kind).unwrap()
    }

    #[test]
    fn discovery_names_match_the_real_server() {
        let d = def("Deployment");
        assert_eq!(
            (
                d.plural.as_str(),
                d.short_names.clone(),
                d.status_subresource
            ),
            ("deployments", vec!["deploy".to_string()], true)
        );
        assert_eq!(def("Service").short_names, ["svc"]);
        assert_eq!(def("PodDisruptionBudget").short_names, ["pdb"]);
        assert_eq!(def("NetworkPolicy").short_names, ["netpol"]);
        assert!(!def("NetworkPolicy").status_subresource);
        assert!(def("Job").status_subresource && def("Job").namespaced);
    }

    #[test]
    fn service_and_job_defaults() {
        let mut svc = json!({"metadata": {"name": "web", "namespace": "ns"}, "spec": {"ports": [{"port": 80}]}, "status": {"x": 1}});
        on_create(&def("Service"), &mut svc);
        assert_eq!(svc["spec"]["type"], "ClusterIP");
        assert_eq!(
            svc["spec"]["ports"][0],
            json!({"port": 80, "protocol": "TCP", "targetPort": 80})
        );
        assert!(
            svc["spec"]["clusterIP"]
                .as_str()
                .unwrap()
                .starts_with("10.")
        );
        assert_eq!(svc["status"], json!({"loadBalancer": {}}));

        let mut job = json!({"metadata": {"name": "m", "namespace": "ns", "uid": "u1"}, "spec": {"template": {"spec": {}}}, "status": {"succeeded": 1}});
        on_create(&def("Job"), &mut job);
        assert_eq!(job["status"], json!({}));
        assert_eq!(job["spec"]["backoffLimit"], 6);
        assert_eq!(
            job["spec"]["template"]["metadata"]["labels"]["job-name"],
            "m"
        );
        assert_eq!(
            job["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
            "u1"
        );
    }
}
