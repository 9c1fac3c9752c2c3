//! The signed identity stamp (docs/architecture.md#identity-and-permissions): who created an
//! object, as Kubernetes authentication reported it to the admission webhook, bound to that object
//! by an HMAC-SHA256 keyed with a Secret only Shepherd reads.
//!
//! The webhook [`stamp`]s the four annotations of
//! [`shepherd_types::vocabulary::identity_annotations`] on create; the controller
//! [`verify`]s them and refuses objects whose stamp is missing or forged, so an object that
//! bypassed the webhook fails closed. The signature covers the object's kind,
//! namespace and name as well as the identity, so a stamp copied onto another object is
//! detected.

use std::collections::BTreeMap;
use std::fmt;

use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use shepherd_types::vocabulary::identity_annotations as annotation;

type HmacSha256 = Hmac<Sha256>;

/// The shortest signing key accepted: the key's bytes are all that separates a stamp from
/// one anybody could write, so it must be at least as long as the hash.
pub const MIN_KEY_LEN: usize = 32;

/// Separates this use of the key from any other, and versions the encoding.
const DOMAIN: &str = "kubevirt-shepherd/identity/v1";

/// Who made a request: the admission `userInfo` of the API server.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    pub username: String,
    /// Empty for authenticators that report none (client certificates, for one).
    pub uid: String,
    pub groups: Vec<String>,
}

impl Identity {
    /// The groups as a set: sorted, without duplicates. Order carries no meaning in
    /// Kubernetes, so neither the signature nor the stored form depends on it.
    pub fn sorted_groups(&self) -> Vec<String> {
        let mut groups = self.groups.clone();
        groups.sort();
        groups.dedup();
        groups
    }
}

/// What a stamp is bound to. An empty namespace is the same as none (cluster-scoped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectKey<'a> {
    pub kind: &'a str,
    pub namespace: Option<&'a str>,
    pub name: &'a str,
}

impl ObjectKey<'_> {
    fn namespace(&self) -> Option<&str> {
        self.namespace.filter(|ns| !ns.is_empty())
    }
}

impl fmt::Display for ObjectKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.namespace() {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error(
        "annotation {0} is missing: the object was not admitted through Shepherd's webhook; \
         delete it and create it again through the API server"
    )]
    Missing(&'static str),
    #[error(
        "annotation {annotation} is malformed ({reason}): it is written only by Shepherd's \
         webhook; delete the object and create it again through the API server"
    )]
    Malformed {
        annotation: &'static str,
        reason: String,
    },
    #[error(
        "the identity annotations do not match their signature: they were changed outside \
         Shepherd's webhook or copied from another object; delete the object and create it \
         again through the API server"
    )]
    Forged,
}

/// The signed bytes: a JSON array, so every field is delimited and escaped and no two
/// different inputs encode alike.
fn canonical(identity: &Identity, object: &ObjectKey) -> Vec<u8> {
    json!([
        DOMAIN,
        object.kind,
        object.namespace(),
        object.name,
        identity.username,
        identity.uid,
        identity.sorted_groups(),
    ])
    .to_string()
    .into_bytes()
}

fn mac(key: &[u8], identity: &Identity, object: &ObjectKey) -> HmacSha256 {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(&canonical(identity, object));
    mac
}

/// The hex HMAC-SHA256 of `identity` bound to `object`.
pub fn sign(key: &[u8], identity: &Identity, object: &ObjectKey) -> String {
    hex::encode(mac(key, identity, object).finalize().into_bytes())
}

/// The four identity annotations for `identity` on `object`, groups as a JSON array.
pub fn stamp(key: &[u8], identity: &Identity, object: &ObjectKey) -> BTreeMap<String, String> {
    let groups = serde_json::Value::from(identity.sorted_groups()).to_string();
    BTreeMap::from([
        (annotation::USERNAME.to_string(), identity.username.clone()),
        (annotation::UID.to_string(), identity.uid.clone()),
        (annotation::GROUPS.to_string(), groups),
        (
            annotation::SIGNATURE.to_string(),
            sign(key, identity, object),
        ),
    ])
}

/// The identity stamped on `object`, if its signature holds (compared in constant time).
pub fn verify(
    key: &[u8],
    annotations: &BTreeMap<String, String>,
    object: &ObjectKey,
) -> Result<Identity, IdentityError> {
    let get = |name: &'static str| {
        annotations
            .get(name)
            .map(String::as_str)
            .ok_or(IdentityError::Missing(name))
    };
    let username = get(annotation::USERNAME)?;
    let uid = get(annotation::UID)?;
    let groups = get(annotation::GROUPS)?;
    let signature = get(annotation::SIGNATURE)?;

    let groups: Vec<String> =
        serde_json::from_str(groups).map_err(|e| IdentityError::Malformed {
            annotation: annotation::GROUPS,
            reason: format!("expected a JSON array of strings: {e}"),
        })?;
    let signature = hex::decode(signature).map_err(|e| IdentityError::Malformed {
        annotation: annotation::SIGNATURE,
        reason: format!("expected hex: {e}"),
    })?;
    let identity = Identity {
        username: username.to_string(),
        uid: uid.to_string(),
        groups,
    };
    mac(key, &identity, object)
        .verify_slice(&signature)
        .map_err(|_| IdentityError::Forged)?;
    Ok(Identity {
        groups: identity.sorted_groups(),
        ..identity
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn alice() -> Identity {
        Identity {
            username: "alice@example.com".into(),
            uid: "5f1c7a42-0d1e-4d55-9f6a-1d2b3c4d5e6f".into(),
            groups: vec!["system:authenticated".into(), "team-a".into()],
        }
    }

    fn request() -> ObjectKey<'static> {
        ObjectKey {
            kind: "VmRequest",
            namespace: Some("team-a"),
            name: "web-01",
        }
    }

    #[test]
    fn a_stamp_verifies_and_yields_the_identity() {
        let annotations = stamp(KEY, &alice(), &request());
        assert_eq!(
            annotations.keys().map(String::as_str).collect::<Vec<_>>(),
            {
                let mut all = annotation::ALL.to_vec();
                all.sort();
                all
            }
        );
        assert_eq!(annotations[annotation::USERNAME], "alice@example.com");
        assert_eq!(
            annotations[annotation::GROUPS],
            r#"["system:authenticated","team-a"]"#
        );
        assert_eq!(annotations[annotation::SIGNATURE].len(), 64);
        assert_eq!(verify(KEY, &annotations, &request()), Ok(alice()));
    }

    #[test]
    fn signing_is_deterministic_and_ignores_group_order() {
        let mut reordered = alice();
        reordered.groups.reverse();
        assert_eq!(
            sign(KEY, &alice(), &request()),
            sign(KEY, &reordered, &request())
        );
    }

    #[test]
    fn a_cluster_scoped_object_signs_the_same_with_no_or_an_empty_namespace() {
        let none = ObjectKey {
            kind: "System",
            namespace: None,
            name: "billing",
        };
        let empty = ObjectKey {
            namespace: Some(""),
            ..none
        };
        assert_eq!(sign(KEY, &alice(), &none), sign(KEY, &alice(), &empty));
        assert_eq!(
            verify(KEY, &stamp(KEY, &alice(), &none), &empty),
            Ok(alice())
        );
    }

    #[test]
    fn reordering_the_stored_groups_is_harmless() {
        let mut annotations = stamp(KEY, &alice(), &request());
        annotations.insert(
            annotation::GROUPS.into(),
            r#"["team-a","system:authenticated"]"#.into(),
        );
        assert_eq!(verify(KEY, &annotations, &request()), Ok(alice()));
    }

    #[test]
    fn any_change_to_the_identity_is_forged() {
        let edits: &[(&str, &str)] = &[
            (annotation::USERNAME, "mallory@example.com"),
            (annotation::USERNAME, "alice@example.com "),
            (annotation::UID, ""),
            (annotation::UID, "5f1c7a42-0d1e-4d55-9f6a-1d2b3c4d5e60"),
            (
                annotation::GROUPS,
                r#"["system:authenticated","team-a","platform-admins"]"#,
            ),
            (annotation::GROUPS, r#"["system:authenticated"]"#),
            (annotation::GROUPS, "[]"),
        ];
        for (name, value) in edits {
            let mut annotations = stamp(KEY, &alice(), &request());
            annotations.insert(name.to_string(), value.to_string());
            assert_eq!(
                verify(KEY, &annotations, &request()),
                Err(IdentityError::Forged),
                "{name} = {value}"
            );
        }
    }

    #[test]
    fn a_stamp_on_another_object_is_forged() {
        let annotations = stamp(KEY, &alice(), &request());
        let others = [
            ObjectKey {
                kind: "VmOperation",
                ..request()
            },
            ObjectKey {
                namespace: Some("team-b"),
                ..request()
            },
            ObjectKey {
                namespace: None,
                ..request()
            },
            ObjectKey {
                name: "web-02",
                ..request()
            },
        ];
        for other in others {
            assert_eq!(
                verify(KEY, &annotations, &other),
                Err(IdentityError::Forged),
                "{other}"
            );
        }
    }

    #[test]
    fn fields_cannot_be_shifted_between_positions() {
        // With naive concatenation "a" + "bc" and "ab" + "c" would sign alike.
        let a = ObjectKey {
            kind: "System",
            namespace: Some("ab"),
            name: "c",
        };
        let b = ObjectKey {
            kind: "System",
            namespace: Some("a"),
            name: "bc",
        };
        assert_ne!(sign(KEY, &alice(), &a), sign(KEY, &alice(), &b));
    }

    #[test]
    fn another_key_is_forged() {
        let annotations = stamp(KEY, &alice(), &request());
        let other_key = b"0123456789abcdef0123456789abcdeF";
        assert_eq!(
            verify(other_key, &annotations, &request()),
            Err(IdentityError::Forged)
        );
    }

    #[test]
    fn a_missing_annotation_is_named() {
        for name in annotation::ALL {
            let mut annotations = stamp(KEY, &alice(), &request());
            annotations.remove(name);
            let err = verify(KEY, &annotations, &request()).unwrap_err();
            assert_eq!(err, IdentityError::Missing(name));
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn malformed_groups_or_signature_are_named() {
        for bad in ["team-a", r#"{"a":1}"#, "[1,2]", "", r#"["a""#] {
            let mut annotations = stamp(KEY, &alice(), &request());
            annotations.insert(annotation::GROUPS.into(), bad.into());
            let err = verify(KEY, &annotations, &request()).unwrap_err();
            assert!(
                matches!(err, IdentityError::Malformed { annotation: a, .. } if a == annotation::GROUPS),
                "{bad}: {err:?}"
            );
            assert!(err.to_string().contains(annotation::GROUPS), "{err}");
        }
        let mut annotations = stamp(KEY, &alice(), &request());
        annotations.insert(annotation::SIGNATURE.into(), "not-hex".into());
        assert!(matches!(
            verify(KEY, &annotations, &request()),
            Err(IdentityError::Malformed { annotation: a, .. }) if a == annotation::SIGNATURE
        ));
        // Valid hex of the wrong length is simply not the signature.
        annotations.insert(annotation::SIGNATURE.into(), "abcd".into());
        assert_eq!(
            verify(KEY, &annotations, &request()),
            Err(IdentityError::Forged)
        );
    }
}
