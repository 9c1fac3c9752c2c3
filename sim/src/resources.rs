//! The resource registry: which group/version/resources a cluster serves, built-in ones
//! plus those defined by `CustomResourceDefinition`s.

use std::sync::Arc;

use serde_json::Value;

use crate::error::{FieldError, FieldErrorKind};

/// One printer column (`additionalPrinterColumns` of a CRD version).
#[derive(Debug, Clone, PartialEq)]
pub struct PrinterColumn {
    pub name: String,
    pub type_: String,
    pub format: String,
    pub description: String,
    pub json_path: String,
    pub priority: i64,
}

/// A served resource in one group/version.
#[derive(Debug, Clone)]
pub struct ResourceDef {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub list_kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub verbs: Vec<&'static str>,
    pub status_subresource: bool,
    /// Custom resource schema (`openAPIV3Schema`); `None` for built-ins, which are not
    /// schema-validated by the simulator.
    pub schema: Option<Arc<Value>>,
    pub printer_columns: Vec<PrinterColumn>,
    pub has_generation: bool,
    /// True when this version is the CRD's storage version (or a built-in).
    pub storage: bool,
    pub from_crd: bool,
}

impl ResourceDef {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Storage key: versions of one resource share objects.
    pub fn key(&self) -> ResKey {
        ResKey {
            group: self.group.clone(),
            plural: self.plural.clone(),
        }
    }
}

/// Identifies stored objects of one resource across versions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResKey {
    pub group: String,
    pub plural: String,
}

const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

#[allow(clippy::too_many_arguments)]
pub(crate) fn builtin(
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    namespaced: bool,
    short: &[&str],
    status: bool,
    has_generation: bool,
) -> ResourceDef {
    ResourceDef {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        list_kind: format!("{kind}List"),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        namespaced,
        short_names: short.iter().map(|s| s.to_string()).collect(),
        categories: vec![],
        verbs: ALL_VERBS.to_vec(),
        status_subresource: status,
        schema: None,
        printer_columns: vec![],
        has_generation,
        storage: true,
        from_crd: false,
    }
}

/// The built-in kinds the product uses.
pub fn builtins() -> Vec<ResourceDef> {
    let mut v = vec![
        builtin(
            "",
            "v1",
            "Namespace",
            "namespaces",
            false,
            &["ns"],
            true,
            false,
        ),
        builtin("", "v1", "Secret", "secrets", true, &[], false, false),
        builtin(
            "",
            "v1",
            "ConfigMap",
            "configmaps",
            true,
            &["cm"],
            false,
            false,
        ),
        builtin("", "v1", "Event", "events", true, &["ev"], false, false),
        builtin("", "v1", "Node", "nodes", false, &["no"], true, false),
        builtin(
            "",
            "v1",
            "ServiceAccount",
            "serviceaccounts",
            true,
            &["sa"],
            false,
            false,
        ),
        builtin(
            "events.k8s.io",
            "v1",
            "Event",
            "events",
            true,
            &["ev"],
            false,
            false,
        ),
        builtin(
            "coordination.k8s.io",
            "v1",
            "Lease",
            "leases",
            true,
            &[],
            false,
            false,
        ),
        builtin(
            "storage.k8s.io",
            "v1",
            "StorageClass",
            "storageclasses",
            false,
            &["sc"],
            false,
            false,
        ),
        builtin(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
            &["crd", "crds"],
            true,
            true,
        ),
        builtin(
            "admissionregistration.k8s.io",
            "v1",
            "MutatingWebhookConfiguration",
            "mutatingwebhookconfigurations",
            false,
            &[],
            false,
            true,
        ),
        builtin(
            "admissionregistration.k8s.io",
            "v1",
            "ValidatingWebhookConfiguration",
            "validatingwebhookconfigurations",
            false,
            &[],
            false,
            true,
        ),
    ];
    let mut tr = builtin(
        "authentication.k8s.io",
        "v1",
        "TokenReview",
        "tokenreviews",
        false,
        &[],
        false,
        false,
    );
    tr.verbs = vec!["create"];
    v.push(tr);
    let mut ssar = builtin(
        "authorization.k8s.io",
        "v1",
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        false,
        &[],
        false,
        false,
    );
    ssar.verbs = vec!["create"];
    v.push(ssar);
    v.extend(crate::rbac::builtin_defs());
    v
}

/// Resources that exist only as `create` endpoints and are never stored.
pub fn is_virtual(def: &ResourceDef) -> bool {
    def.verbs == ["create"]
}

/// (group, version, [(resource, kind, namespaced)]) served by hand-written handlers.
pub type ExtraGroupVersion = (String, String, Vec<(String, String, bool)>);

/// All served resources of a cluster.
#[derive(Debug, Default)]
pub struct Registry {
    defs: Vec<Arc<ResourceDef>>,
    /// Extra group/versions served by hand-written handlers (KubeVirt subresources), as
    /// (group, version, [(resource, kind, namespaced)]) so discovery lists them.
    pub extra: Vec<ExtraGroupVersion>,
}

impl Registry {
    pub fn with_builtins() -> Self {
        Registry {
            defs: builtins()
                .into_iter()
                .chain(crate::workloads::defs())
                .map(Arc::new)
                .collect(),
            extra: vec![],
        }
    }

    pub fn all(&self) -> &[Arc<ResourceDef>] {
        &self.defs
    }

    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceDef>> {
        self.defs
            .iter()
            .find(|d| d.group == group && d.version == version && d.plural == plural)
            .cloned()
    }

    pub fn storage_def(&self, key: &ResKey) -> Option<Arc<ResourceDef>> {
        self.defs
            .iter()
            .find(|d| d.group == key.group && d.plural == key.plural && d.storage)
            .cloned()
    }

    pub fn by_kind(&self, group: &str, version: &str, kind: &str) -> Option<Arc<ResourceDef>> {
        self.defs
            .iter()
            .find(|d| d.group == group && d.version == version && d.kind == kind)
            .cloned()
    }

    /// Groups in registration order, each with its versions (preferred first).
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = vec![];
        let mut push = |g: &str, v: &str| match out.iter_mut().find(|(og, _)| og == g) {
            Some((_, vs)) if !vs.iter().any(|x| x == v) => vs.push(v.to_string()),
            Some(_) => {}
            None => out.push((g.to_string(), vec![v.to_string()])),
        };
        for d in &self.defs {
            push(&d.group, &d.version);
        }
        for (g, v, _) in &self.extra {
            push(g, v);
        }
        for (_, vs) in out.iter_mut() {
            vs.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        }
        out
    }

    pub fn in_group_version(&self, group: &str, version: &str) -> Vec<Arc<ResourceDef>> {
        self.defs
            .iter()
            .filter(|d| d.group == group && d.version == version)
            .cloned()
            .collect()
    }

    /// Replaces the resources served for a CRD.
    pub fn set_crd(&mut self, defs: Vec<ResourceDef>) {
        if let Some(first) = defs.first() {
            let key = first.key();
            self.defs.retain(|d| d.key() != key);
        }
        self.defs.extend(defs.into_iter().map(Arc::new));
    }

    pub fn remove(&mut self, key: &ResKey) {
        self.defs.retain(|d| !(d.from_crd && &d.key() == key));
    }
}

/// Kubernetes version ordering: GA > beta > alpha, then by number.
pub fn version_priority(v: &str) -> (u8, u32, u32) {
    let re = regex::Regex::new(r"^v(\d+)(?:(alpha|beta)(\d+))?$").expect("static regex");
    match re.captures(v) {
        Some(c) => {
            let major: u32 = c[1].parse().unwrap_or(0);
            let (tier, minor) = match c.get(2).map(|m| m.as_str()) {
                None => (3, 0),
                Some("beta") => (2, c[3].parse().unwrap_or(0)),
                _ => (1, c[3].parse().unwrap_or(0)),
            };
            (tier, major, minor)
        }
        None => (0, 0, 0),
    }
}

/// Validates a CRD and derives the resources it serves.
pub fn defs_from_crd(crd: &Value) -> Result<Vec<ResourceDef>, Vec<FieldError>> {
    let mut errs = vec![];
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default().to_string();
    let names = &spec["names"];
    let plural = names["plural"].as_str().unwrap_or_default().to_string();
    let kind = names["kind"].as_str().unwrap_or_default().to_string();
    let name = crd["metadata"]["name"].as_str().unwrap_or_default();
    if group.is_empty() {
        errs.push(FieldError::new(
            FieldErrorKind::Required,
            "spec.group",
            None,
            "",
        ));
    }
    if plural.is_empty() {
        errs.push(FieldError::new(
            FieldErrorKind::Required,
            "spec.names.plural",
            None,
            "",
        ));
    }
    if kind.is_empty() {
        errs.push(FieldError::new(
            FieldErrorKind::Required,
            "spec.names.kind",
            None,
            "",
        ));
    }
    if !group.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
        errs.push(FieldError::new(
            FieldErrorKind::Invalid,
            "metadata.name",
            Some(format!("{name:?}")),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    let scope = spec["scope"].as_str().unwrap_or_default();
    if scope != "Namespaced" && scope != "Cluster" {
        errs.push(FieldError::new(
            FieldErrorKind::NotSupported,
            "spec.scope",
            Some(format!("{scope:?}")),
            "supported values: \"Cluster\", \"Namespaced\"",
        ));
    }
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    if versions.is_empty() {
        errs.push(FieldError::new(
            FieldErrorKind::Invalid,
            "spec.versions",
            Some("null".into()),
            "must have exactly one version marked as storage version",
        ));
    }
    let storage_count = versions
        .iter()
        .filter(|v| v["storage"].as_bool() == Some(true))
        .count();
    if !versions.is_empty() && storage_count != 1 {
        errs.push(FieldError::new(
            FieldErrorKind::Invalid,
            "spec.versions",
            Some(format!("{versions:?}").chars().take(40).collect()),
            "must have exactly one version marked as storage version",
        ));
    }
    for (i, v) in versions.iter().enumerate() {
        if v["schema"]["openAPIV3Schema"].is_null() {
            errs.push(FieldError::new(
                FieldErrorKind::Required,
                format!("spec.versions[{i}].schema.openAPIV3Schema"),
                None,
                "schemas are required",
            ));
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    let str_list = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = vec![];
    for v in versions
        .iter()
        .filter(|v| v["served"].as_bool().unwrap_or(false))
    {
        let cols = v["additionalPrinterColumns"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|c| PrinterColumn {
                        name: c["name"].as_str().unwrap_or_default().into(),
                        type_: c["type"].as_str().unwrap_or("string").into(),
                        format: c["format"].as_str().unwrap_or_default().into(),
                        description: c["description"].as_str().unwrap_or_default().into(),
                        json_path: c["jsonPath"].as_str().unwrap_or_default().into(),
                        priority: c["priority"].as_i64().unwrap_or(0),
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push(ResourceDef {
            group: group.clone(),
            version: v["name"].as_str().unwrap_or_default().into(),
            kind: kind.clone(),
            list_kind: names["listKind"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("{kind}List")),
            plural: plural.clone(),
            singular: names["singular"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| kind.to_lowercase()),
            namespaced: scope == "Namespaced",
            short_names: str_list(&names["shortNames"]),
            categories: str_list(&names["categories"]),
            verbs: ALL_VERBS.to_vec(),
            status_subresource: v["subresources"]["status"].is_object(),
            schema: Some(Arc::new(v["schema"]["openAPIV3Schema"].clone())),
            printer_columns: cols,
            has_generation: true,
            storage: v["storage"].as_bool().unwrap_or(false),
            from_crd: true,
        });
    }
    Ok(out)
}
