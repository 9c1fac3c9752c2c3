//! The signed identity stamp (docs/architecture.md#identity-and-permissions): who created an
//! object, as Kubernetes authentication reported it to the admission webhook, bound to that
//! object by an HMAC-SHA256 keyed with a Secret only Shepherd reads.
//!
//! The webhook [`stamp`]s the annotations of
//! [`shepherd_types::vocabulary::identity_annotations`] on create; the controller
//! [`verify`]s them and refuses objects whose stamp is missing or forged, so an object that
//! bypassed the webhook fails closed. The signature covers the object's kind, namespace and
//! name, the identity, a random single-use nonce and (on Approvals) the target the approval
//! was resolved to, so a stamp copied onto another object is detected; one copied onto an
//! object recreated under the same name verifies here but its nonce is already claimed by
//! the first object's uid in PostgreSQL (`app::stamps`).
//!
//! Keys rotate: a [`KeyRing`] signs with its current key and verifies with any of its keys,
//! found by the key id each stamp names.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use shepherd_types::vocabulary::identity_annotations as annotation;

type HmacSha256 = Hmac<Sha256>;

/// The shortest signing key accepted: the key's bytes are all that separates a stamp from
/// one anybody could write, so it must be at least as long as the hash.
pub const MIN_KEY_LEN: usize = 32;

/// Separates this use of the key from any other, and versions the encoding.
const DOMAIN: &str = "kubevirt-shepherd/identity/v2";

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

/// The VmRequest or VmOperation an Approval decides, as admission found it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApprovalTarget {
    pub uid: String,
    pub ticket_id: String,
}

/// Everything a stamp asserts about its object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    pub identity: Identity,
    /// [`new_nonce`]: single-use, claimed in PostgreSQL by the first object uid.
    pub nonce: String,
    pub approval_target: Option<ApprovalTarget>,
}

/// A fresh nonce: 128 random bits, hex.
pub fn new_nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error(
        "the {which} identity key has {len} bytes; it needs at least {min}: put {min} or more \
         random bytes in its Secret or file"
    )]
    TooShort {
        which: &'static str,
        len: usize,
        min: usize,
    },
}

/// The identity keys: the current one signs, every one verifies.
#[derive(Clone)]
pub struct KeyRing {
    /// (key id, key); the first is current.
    keys: Vec<(String, Arc<[u8]>)>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field(
                "key_ids",
                &self.keys.iter().map(|(id, _)| id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// A key's public name: a prefix of a hash of it, so it names the key without revealing it.
pub fn key_id(key: &[u8]) -> String {
    let digest = Sha256::new()
        .chain_update(b"kubevirt-shepherd/identity-key-id\0")
        .chain_update(key)
        .finalize();
    hex::encode(&digest[..6])
}

impl KeyRing {
    /// `current` signs; `previous` (after a rotation) still verify. Every key needs
    /// [`MIN_KEY_LEN`] bytes.
    pub fn new(current: Vec<u8>, previous: Vec<Vec<u8>>) -> Result<Self, KeyError> {
        let check = |which: &'static str, key: &[u8]| {
            if key.len() < MIN_KEY_LEN {
                Err(KeyError::TooShort {
                    which,
                    len: key.len(),
                    min: MIN_KEY_LEN,
                })
            } else {
                Ok(())
            }
        };
        check("current", &current)?;
        for key in &previous {
            check("previous", key)?;
        }
        let keys = std::iter::once(current)
            .chain(previous)
            .map(|key| (key_id(&key), Arc::from(key)))
            .collect();
        Ok(Self { keys })
    }

    pub fn current_id(&self) -> &str {
        &self.keys[0].0
    }

    fn current(&self) -> &[u8] {
        &self.keys[0].1
    }

    fn by_id(&self, id: &str) -> Option<&[u8]> {
        self.keys
            .iter()
            .find(|(key_id, _)| key_id == id)
            .map(|(_, key)| &key[..])
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
        "the identity stamp was signed with key {key_id}, which this installation does not \
         trust (any more): keep retired keys as previous keys until their objects are gone"
    )]
    UnknownKey { key_id: String },
    #[error(
        "the identity annotations do not match their signature: they were changed outside \
         Shepherd's webhook or copied from another object; delete the object and create it \
         again through the API server"
    )]
    Forged,
}

/// The signed bytes: a JSON array, so every field is delimited and escaped and no two
/// different inputs encode alike.
fn canonical(stamp: &Stamp, object: &ObjectKey) -> Vec<u8> {
    json!([
        DOMAIN,
        object.kind,
        object.namespace(),
        object.name,
        stamp.identity.username,
        stamp.identity.uid,
        stamp.identity.sorted_groups(),
        stamp.nonce,
        stamp.approval_target,
    ])
    .to_string()
    .into_bytes()
}

fn mac(key: &[u8], stamp: &Stamp, object: &ObjectKey) -> HmacSha256 {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(&canonical(stamp, object));
    mac
}

/// The stamp's annotations for `object`, signed with the ring's current key.
pub fn stamp(keys: &KeyRing, stamp: &Stamp, object: &ObjectKey) -> BTreeMap<String, String> {
    let groups = serde_json::Value::from(stamp.identity.sorted_groups()).to_string();
    let signature = hex::encode(mac(keys.current(), stamp, object).finalize().into_bytes());
    let mut annotations = BTreeMap::from([
        (
            annotation::USERNAME.to_string(),
            stamp.identity.username.clone(),
        ),
        (annotation::UID.to_string(), stamp.identity.uid.clone()),
        (annotation::GROUPS.to_string(), groups),
        (annotation::NONCE.to_string(), stamp.nonce.clone()),
        (
            annotation::KEY_ID.to_string(),
            keys.current_id().to_string(),
        ),
        (annotation::SIGNATURE.to_string(), signature),
    ]);
    if let Some(target) = &stamp.approval_target {
        annotations.insert(
            annotation::APPROVAL_TARGET.to_string(),
            json!(target).to_string(),
        );
    }
    annotations
}

/// The stamp on `object`, if its signature holds under the key it names (compared in
/// constant time). Whether its nonce is still unclaimed is PostgreSQL's to say.
pub fn verify(
    keys: &KeyRing,
    annotations: &BTreeMap<String, String>,
    object: &ObjectKey,
) -> Result<Stamp, IdentityError> {
    let get = |name: &'static str| {
        annotations
            .get(name)
            .map(String::as_str)
            .ok_or(IdentityError::Missing(name))
    };
    let username = get(annotation::USERNAME)?;
    let uid = get(annotation::UID)?;
    let groups = get(annotation::GROUPS)?;
    let nonce = get(annotation::NONCE)?;
    let key_id = get(annotation::KEY_ID)?;
    let signature = get(annotation::SIGNATURE)?;

    let groups: Vec<String> =
        serde_json::from_str(groups).map_err(|e| IdentityError::Malformed {
            annotation: annotation::GROUPS,
            reason: format!("expected a JSON array of strings: {e}"),
        })?;
    let approval_target = annotations
        .get(annotation::APPROVAL_TARGET)
        .map(|t| {
            serde_json::from_str(t).map_err(|e| IdentityError::Malformed {
                annotation: annotation::APPROVAL_TARGET,
                reason: format!("expected {{\"uid\": ..., \"ticketId\": ...}}: {e}"),
            })
        })
        .transpose()?;
    let signature = hex::decode(signature).map_err(|e| IdentityError::Malformed {
        annotation: annotation::SIGNATURE,
        reason: format!("expected hex: {e}"),
    })?;
    let key = keys
        .by_id(key_id)
        .ok_or_else(|| IdentityError::UnknownKey {
            key_id: key_id.to_string(),
        })?;
    let stamp = Stamp {
        identity: Identity {
            username: username.to_string(),
            uid: uid.to_string(),
            groups,
        },
        nonce: nonce.to_string(),
        approval_target,
    };
    mac(key, &stamp, object)
        .verify_slice(&signature)
        .map_err(|_| IdentityError::Forged)?;
    Ok(Stamp {
        identity: Identity {
            groups: stamp.identity.sorted_groups(),
            ..stamp.identity
        },
        ..stamp
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
    const OTHER_KEY: &[u8] = b"0123456789abcdef0123456789abcdeF";

    fn ring() -> KeyRing {
        KeyRing::new(KEY.to_vec(), Vec::new()).unwrap()
    }

    fn alice() -> Stamp {
        Stamp {
            identity: Identity {
                username: "alice@example.com".into(),
                uid: "5f1c7a42-0d1e-4d55-9f6a-1d2b3c4d5e6f".into(),
                groups: vec!["system:authenticated".into(), "team-a".into()],
            },
            nonce: "0123456789abcdef0123456789abcdef".into(),
            approval_target: None,
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
        let annotations = stamp(&ring(), &alice(), &request());
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
        assert_eq!(annotations[annotation::KEY_ID], key_id(KEY));
        assert_eq!(annotations[annotation::SIGNATURE].len(), 64);
        assert_eq!(verify(&ring(), &annotations, &request()), Ok(alice()));
    }

    #[test]
    fn nonces_are_fresh_hex() {
        let (a, b) = (new_nonce(), new_nonce());
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()), "{a}");
    }

    #[test]
    fn an_approval_target_is_carried_and_signed() {
        let approval = ObjectKey {
            kind: "Approval",
            namespace: Some("team-a"),
            name: "ok-web-01",
        };
        let target = ApprovalTarget {
            uid: "uid-1".into(),
            ticket_id: "7d0c2f9e-0000-4000-8000-000000000001".into(),
        };
        let signed = Stamp {
            approval_target: Some(target.clone()),
            ..alice()
        };
        let annotations = stamp(&ring(), &signed, &approval);
        assert_eq!(
            annotations[annotation::APPROVAL_TARGET],
            r#"{"ticketId":"7d0c2f9e-0000-4000-8000-000000000001","uid":"uid-1"}"#
        );
        assert_eq!(verify(&ring(), &annotations, &approval), Ok(signed));
        for edit in [
            Some(r#"{"uid":"uid-2","ticketId":"7d0c2f9e-0000-4000-8000-000000000001"}"#),
            None,
        ] {
            let mut changed = annotations.clone();
            match edit {
                Some(value) => changed.insert(annotation::APPROVAL_TARGET.into(), value.into()),
                None => changed.remove(annotation::APPROVAL_TARGET),
            };
            assert_eq!(
                verify(&ring(), &changed, &approval),
                Err(IdentityError::Forged),
                "{edit:?}"
            );
        }
    }

    #[test]
    fn signing_ignores_group_order() {
        let mut reordered = alice();
        reordered.identity.groups.reverse();
        assert_eq!(
            stamp(&ring(), &alice(), &request()),
            stamp(&ring(), &reordered, &request())
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
        assert_eq!(
            verify(&ring(), &stamp(&ring(), &alice(), &none), &empty),
            Ok(alice())
        );
    }

    #[test]
    fn reordering_the_stored_groups_is_harmless() {
        let mut annotations = stamp(&ring(), &alice(), &request());
        annotations.insert(
            annotation::GROUPS.into(),
            r#"["team-a","system:authenticated"]"#.into(),
        );
        assert_eq!(verify(&ring(), &annotations, &request()), Ok(alice()));
    }

    #[test]
    fn any_change_to_the_stamp_is_forged() {
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
            (annotation::NONCE, "0123456789abcdef0123456789abcdee"),
            (annotation::APPROVAL_TARGET, r#"{"uid":"u","ticketId":"t"}"#),
        ];
        for (name, value) in edits {
            let mut annotations = stamp(&ring(), &alice(), &request());
            annotations.insert(name.to_string(), value.to_string());
            assert_eq!(
                verify(&ring(), &annotations, &request()),
                Err(IdentityError::Forged),
                "{name} = {value}"
            );
        }
    }

    #[test]
    fn a_stamp_on_another_object_is_forged() {
        let annotations = stamp(&ring(), &alice(), &request());
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
                verify(&ring(), &annotations, &other),
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
        assert_ne!(
            stamp(&ring(), &alice(), &a)[annotation::SIGNATURE],
            stamp(&ring(), &alice(), &b)[annotation::SIGNATURE]
        );
    }

    #[test]
    fn after_a_rotation_the_new_key_signs_and_the_previous_one_still_verifies() {
        let before = stamp(&ring(), &alice(), &request());
        let rotated = KeyRing::new(OTHER_KEY.to_vec(), vec![KEY.to_vec()]).unwrap();
        assert_eq!(verify(&rotated, &before, &request()), Ok(alice()));
        let after = stamp(&rotated, &alice(), &request());
        assert_eq!(after[annotation::KEY_ID], key_id(OTHER_KEY));
        assert_ne!(key_id(OTHER_KEY), key_id(KEY));
        assert_eq!(verify(&rotated, &after, &request()), Ok(alice()));
        // Once the previous key is dropped, its stamps name a key nobody trusts.
        let dropped = KeyRing::new(OTHER_KEY.to_vec(), Vec::new()).unwrap();
        assert_eq!(
            verify(&dropped, &before, &request()),
            Err(IdentityError::UnknownKey {
                key_id: key_id(KEY)
            })
        );
        // A stamp that names the current key but was signed with another is forged.
        let mut relabelled = before.clone();
        relabelled.insert(annotation::KEY_ID.into(), key_id(OTHER_KEY));
        assert_eq!(
            verify(&rotated, &relabelled, &request()),
            Err(IdentityError::Forged)
        );
    }

    #[test]
    fn short_keys_are_refused_current_or_previous() {
        let short = b"0123456789abcdef".to_vec();
        assert_eq!(
            KeyRing::new(short.clone(), Vec::new()).unwrap_err(),
            KeyError::TooShort {
                which: "current",
                len: 16,
                min: MIN_KEY_LEN
            }
        );
        assert!(matches!(
            KeyRing::new(KEY.to_vec(), vec![short]),
            Err(KeyError::TooShort {
                which: "previous",
                ..
            })
        ));
    }

    #[test]
    fn a_missing_annotation_is_named() {
        for name in annotation::ALL {
            let mut annotations = stamp(&ring(), &alice(), &request());
            annotations.remove(name);
            let err = verify(&ring(), &annotations, &request()).unwrap_err();
            assert_eq!(err, IdentityError::Missing(name));
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn malformed_groups_target_or_signature_are_named() {
        for bad in ["team-a", r#"{"a":1}"#, "[1,2]", "", r#"["a""#] {
            let mut annotations = stamp(&ring(), &alice(), &request());
            annotations.insert(annotation::GROUPS.into(), bad.into());
            let err = verify(&ring(), &annotations, &request()).unwrap_err();
            assert!(
                matches!(err, IdentityError::Malformed { annotation: a, .. } if a == annotation::GROUPS),
                "{bad}: {err:?}"
            );
            assert!(err.to_string().contains(annotation::GROUPS), "{err}");
        }
        let mut annotations = stamp(&ring(), &alice(), &request());
        annotations.insert(annotation::APPROVAL_TARGET.into(), r#"{"uid":1}"#.into());
        assert!(matches!(
            verify(&ring(), &annotations, &request()),
            Err(IdentityError::Malformed { annotation: a, .. }) if a == annotation::APPROVAL_TARGET
        ));
        let mut annotations = stamp(&ring(), &alice(), &request());
        annotations.insert(annotation::SIGNATURE.into(), "not-hex".into());
        assert!(matches!(
            verify(&ring(), &annotations, &request()),
            Err(IdentityError::Malformed { annotation: a, .. }) if a == annotation::SIGNATURE
        ));
        // Valid hex of the wrong length is simply not the signature.
        annotations.insert(annotation::SIGNATURE.into(), "abcd".into());
        assert_eq!(
            verify(&ring(), &annotations, &request()),
            Err(IdentityError::Forged)
        );
    }
}
