//! Validation of written objects: ObjectMeta rules the real server applies to every
//! kind, plus unknown-field handling, defaulting and schema (including CEL) validation
//! for custom resources.

use serde_json::Value;

use super::{Core, FieldValidation};
use crate::error::{ApiError, ApiResult, FieldError, FieldErrorKind as K};
use crate::resources::{self, ResourceDef};
use crate::schema;
use crate::store::meta_str;

fn dns_label_ok(s: &str) -> bool {
    let re = regex::Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$").expect("static regex");
    s.len() <= 63 && re.is_match(s)
}

fn dns_subdomain_ok(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|p| {
            !p.is_empty()
                && regex::Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
                    .expect("static regex")
                    .is_match(p)
        })
}

const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

/// ObjectMeta validation the real server does for every kind.
fn validate_meta(def: &ResourceDef, obj: &Value) -> Vec<FieldError> {
    let mut errs = vec![];
    let name = meta_str(obj, "name");
    let ok = if def.kind == "Namespace" {
        dns_label_ok(name)
    } else {
        dns_subdomain_ok(name)
    };
    if !ok {
        let msg = if def.kind == "Namespace" {
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
        } else {
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        };
        errs.push(FieldError::new(
            K::Invalid,
            "metadata.name",
            Some(format!("{name:?}")),
            msg,
        ));
    }
    let value_re =
        regex::Regex::new(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$").expect("static regex");
    if let Some(labels) = obj["metadata"]["labels"].as_object() {
        for (k, v) in labels {
            let v = v.as_str().unwrap_or_default();
            let key_name = k.rsplit('/').next().unwrap_or_default();
            if key_name.is_empty() || key_name.len() > 63 || !value_re.is_match(key_name) {
                errs.push(FieldError::new(
                    K::Invalid,
                    "metadata.labels",
                    Some(format!("{k:?}")),
                    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
                ));
            }
            if v.len() > 63 {
                errs.push(FieldError::new(
                    K::Invalid,
                    "metadata.labels",
                    Some(format!("{v:?}")),
                    "must be no more than 63 characters",
                ));
            } else if !value_re.is_match(v) {
                errs.push(FieldError::new(
                    K::Invalid,
                    "metadata.labels",
                    Some(format!("{v:?}")),
                    LABEL_VALUE_MSG,
                ));
            }
        }
    }
    errs
}

impl Core {
    /// Unknown-field handling and defaulting for custom resources.
    pub(super) fn prepare_schema(
        def: &ResourceDef,
        obj: &mut Value,
        validation: FieldValidation,
        warnings: &mut Vec<String>,
    ) -> ApiResult<()> {
        let Some(s) = &def.schema else { return Ok(()) };
        let unknown = schema::prune(s, obj);
        if !unknown.is_empty() {
            let list: Vec<String> = unknown
                .iter()
                .map(|u| format!("unknown field \"{u}\""))
                .collect();
            match validation {
                FieldValidation::Strict => {
                    return Err(ApiError::bad_request(format!(
                        "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
                        def.kind,
                        def.version,
                        def.kind,
                        list.join(", ")
                    )));
                }
                FieldValidation::Warn => warnings.extend(list),
                FieldValidation::Ignore => {}
            }
        }
        *obj = schema::apply_defaults(s, obj);
        Ok(())
    }

    pub(super) fn validate_object(
        def: &ResourceDef,
        obj: &Value,
        old: Option<&Value>,
    ) -> ApiResult<()> {
        let mut errs = validate_meta(def, obj);
        if let Some(s) = &def.schema {
            let structural = schema::validate(s, obj);
            let type_broken = structural
                .iter()
                .any(|e| e.detail.contains("must be of type"));
            errs.extend(structural);
            // CEL rules only run on structurally typed data, as in the real server.
            if !type_broken {
                errs.extend(schema::validate_cel(s, obj, old));
            }
        }
        if def.kind == "CustomResourceDefinition"
            && let Err(e) = resources::defs_from_crd(obj)
        {
            errs.extend(e);
        }
        errs.extend(crate::rbac::validate(def, obj, old));
        if errs.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid(
                &def.group,
                &def.kind,
                meta_str(obj, "name"),
                errs,
            ))
        }
    }
}
