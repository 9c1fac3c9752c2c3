//! Redaction of secrets from JSON before it reaches audit rows, logs or responses
//! (docs/architecture.md#audit).
//!
//! Matching is deliberately broad: a key is secret when its lowercase form, with `_`,
//! `-`, `.` and spaces removed, contains any marker, so `api_key`, `api-key`, `apiKey`
//! and `X-Api-Key` all match. False positives (`tokens_used`, `secretRef`,
//! `passwordless`) are acceptable; a leak is not.

use serde_json::{Map, Value};

/// Replacement for secret values.
pub const REDACTED: &str = "[REDACTED]";
/// Replacement for kubeconfigs, which are never logged at all.
pub const NOT_LOGGED: &str = "[NOT_LOGGED]";

/// Markers in normalised form (lowercase, no separators); `private_key` etc. are
/// covered by their separator-free spelling.
const SECRET_MARKERS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "credential",
    "kubeconfig",
    "privatekey",
    "apikey",
    "authorization",
    "bearer",
    "certificatekey",
    "hmac",
];

fn normalise(key: &str) -> String {
    key.chars()
        .filter(|c| !matches!(c, '_' | '-' | '.' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The replacement for the value of `key`, if `key` names a secret.
pub fn redaction_for(key: &str) -> Option<&'static str> {
    let key = normalise(key);
    if key.contains("kubeconfig") {
        Some(NOT_LOGGED)
    } else if SECRET_MARKERS.iter().any(|m| key.contains(m)) {
        Some(REDACTED)
    } else {
        None
    }
}

/// Whether the value of `key` must never be recorded.
pub fn is_secret_key(key: &str) -> bool {
    redaction_for(key).is_some()
}

/// A copy of `value` with the value of every secret key replaced, at any depth and
/// whatever its type (an object under `credentials` is replaced whole).
pub fn redact(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = match redaction_for(k) {
                        Some(replacement) => Value::String(replacement.to_owned()),
                        None => redact(v),
                    };
                    (k.clone(), v)
                })
                .collect::<Map<String, Value>>(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_keys() {
        let cases = [
            ("password", Some(REDACTED)),
            ("db_password", Some(REDACTED)),
            ("PASSWORD", Some(REDACTED)),
            ("passwd", Some(REDACTED)),
            ("clientSecret", Some(REDACTED)),
            ("secret", Some(REDACTED)),
            ("token", Some(REDACTED)),
            ("access_token", Some(REDACTED)),
            ("credentials", Some(REDACTED)),
            ("Credential", Some(REDACTED)),
            ("private_key", Some(REDACTED)),
            ("privateKey", Some(REDACTED)),
            ("private-key", Some(REDACTED)),
            ("api_key", Some(REDACTED)),
            ("apiKey", Some(REDACTED)),
            ("X-Api-Key", Some(REDACTED)),
            ("Authorization", Some(REDACTED)),
            ("bearer", Some(REDACTED)),
            ("certificate_key", Some(REDACTED)),
            ("tls.certificate-key", Some(REDACTED)),
            ("hmac", Some(REDACTED)),
            ("stampHmac", Some(REDACTED)),
            ("kubeconfig", Some(NOT_LOGGED)),
            ("KubeConfig", Some(NOT_LOGGED)),
            ("kube_config", Some(NOT_LOGGED)),
            ("kubeconfigSecretRef", Some(NOT_LOGGED)),
            // Deliberate false positives.
            ("tokens_used", Some(REDACTED)),
            ("secretRef", Some(REDACTED)),
            ("passwordless", Some(REDACTED)),
            // Not secrets.
            ("name", None),
            ("username", None),
            ("key", None),
            ("public_key_id", None),
            ("certificate", None),
            ("kube", None),
            ("description", None),
            ("", None),
        ];
        for (key, expected) in cases {
            assert_eq!(redaction_for(key), expected, "{key}");
            assert_eq!(is_secret_key(key), expected.is_some(), "{key}");
        }
    }

    #[test]
    fn every_marker_from_the_brief_matches() {
        for key in [
            "password",
            "passwd",
            "secret",
            "token",
            "credential",
            "kubeconfig",
            "private_key",
            "privatekey",
            "api_key",
            "apikey",
            "authorization",
            "bearer",
            "certificate_key",
            "hmac",
        ] {
            assert!(is_secret_key(key), "{key}");
            assert!(is_secret_key(&key.to_uppercase()), "{key}");
            assert!(is_secret_key(&format!("my_{key}_field")), "{key}");
        }
    }

    #[test]
    fn redacts_nested_objects_and_arrays() {
        let input = json!({
            "name": "shop",
            "password": "hunter2",
            "count": 3,
            "spec": {
                "cluster": {"kubeconfig": "apiVersion: v1\n...", "weight": 100},
                "auth": {"Token": {"value": "abc"}, "user": "alice"},
            },
            "users": [
                {"name": "a", "apiKey": "k1"},
                {"name": "b", "nested": [{"client_secret": "s"}, "plain", 1]},
            ],
            "credentials": ["x", "y"],
            "empty": null,
        });
        let expected = json!({
            "name": "shop",
            "password": "[REDACTED]",
            "count": 3,
            "spec": {
                "cluster": {"kubeconfig": "[NOT_LOGGED]", "weight": 100},
                "auth": {"Token": "[REDACTED]", "user": "alice"},
            },
            "users": [
                {"name": "a", "apiKey": "[REDACTED]"},
                {"name": "b", "nested": [{"client_secret": "[REDACTED]"}, "plain", 1]},
            ],
            "credentials": "[REDACTED]",
            "empty": null,
        });
        assert_eq!(redact(&input), expected);
    }

    #[test]
    fn values_are_never_inspected_and_scalars_pass_through() {
        for value in [
            json!("password"),
            json!(1),
            json!(null),
            json!(true),
            json!(["token"]),
        ] {
            assert_eq!(redact(&value), value);
        }
        assert_eq!(redact(&json!({})), json!({}));
    }
}
