//! Identity stamp verify: `shepherd::domain::identity::verify` on arbitrary annotation maps
//! and object keys.
//!
//! Input: JSON `{"kind", "namespace", "name", "annotations": {..}}` when it starts with `{`
//! (the seeds: real stamps made with `shepherd_fuzz::KEY`), otherwise structured input
//! (`arbitrary`): a genuine stamp made with `identity::stamp`, then edits to its
//! annotations, its object key and the verifying key ring. Checked on every input:
//! - no panic;
//! - with FUZZ_EXPECT_GENUINE set (fuzz/run.sh, on the seeds), a JSON input must verify;
//! - whatever `verify` accepts is reproduced by `stamp` with the key it names: the same
//!   signature and key id for the returned stamp and the object key;
//! - an unedited stamp verifies (also after a key rotation that keeps its key as previous)
//!   and yields what was signed; a ring without its key refuses it;
//! - an edited stamp verifies only if it still says what was signed (groups are a set; an
//!   empty namespace is none): every other edit is refused.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use shepherd::domain::identity::{
    self, ApprovalTarget, Identity, IdentityError, KeyRing, ObjectKey, Stamp, key_id,
};
use shepherd_fuzz::{FOREIGN_KEY, KEY, OLD_KEY, ring_of};
use shepherd_types::vocabulary::identity_annotations as annotation;

/// A raw input: what an object could carry.
#[derive(Deserialize)]
struct RawObject {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Arbitrary, Debug, Clone, PartialEq)]
struct Key {
    kind: String,
    namespace: Option<String>,
    name: String,
}

impl Key {
    fn as_key(&self) -> ObjectKey<'_> {
        ObjectKey {
            kind: &self.kind,
            namespace: self.namespace.as_deref(),
            name: &self.name,
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Signed {
    username: String,
    uid: String,
    groups: Vec<String>,
    nonce: String,
    target: Option<(String, String)>,
}

/// One of the annotations a stamp is made of, or another one.
#[derive(Arbitrary, Debug)]
enum Name {
    Preserved(u8),
    Other(String),
}

impl Name {
    fn resolve(&self) -> String {
        match self {
            Name::Preserved(i) => {
                annotation::PRESERVED[usize::from(*i) % annotation::PRESERVED.len()].to_string()
            }
            Name::Other(name) => name.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Edit {
    Set(Name, String),
    Remove(Name),
    Append(Name, String),
    /// Flips one bit of one character of the value.
    FlipBit(Name, u16, u8),
    Uppercase(Name),
    /// Re-encodes the groups array: reversed and with a duplicate.
    ShuffleGroups,
}

/// Who signs and who verifies.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Keys {
    /// Signed and verified with the current key.
    Same,
    /// Signed with the old key; the verifier has rotated and keeps it as previous.
    Rotated,
    /// Signed with a key the verifier never had.
    Foreign,
}

#[derive(Arbitrary, Debug)]
struct Edited {
    signed: Signed,
    object: Key,
    keys: Keys,
    edits: Vec<Edit>,
    /// The object the stamp is presented on, if not the one it was made for.
    presented_on: Option<Key>,
}

fuzz_target!(|data: &[u8]| {
    if data.first() == Some(&b'{') {
        if let Ok(raw) = serde_json::from_slice::<RawObject>(data) {
            let key = ObjectKey {
                kind: &raw.kind,
                namespace: raw.namespace.as_deref(),
                name: &raw.name,
            };
            let verifier = ring_of(KEY, &[OLD_KEY]);
            match identity::verify(&verifier, &raw.annotations, &key) {
                Ok(stamp) => assert_reproduced(&stamp, &raw.annotations, &key),
                Err(e) => assert!(
                    !expect_genuine(),
                    "FUZZ_EXPECT_GENUINE is set, and {key} carries no genuine stamp: {e}"
                ),
            }
        }
        return;
    }
    let Ok(input) = Edited::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    edited(input);
});

/// Set when fuzz/run.sh replays the committed seeds: each must be a genuine stamp
/// (`fuzz/seeds.py` signs them like `identity::stamp`), or the fuzzer starts from nothing real.
fn expect_genuine() -> bool {
    static EXPECT: OnceLock<bool> = OnceLock::new();
    *EXPECT.get_or_init(|| std::env::var_os("FUZZ_EXPECT_GENUINE").is_some())
}

/// `stamp` with the key `annotations` name reproduces their signature.
fn assert_reproduced(stamp: &Stamp, annotations: &BTreeMap<String, String>, key: &ObjectKey) {
    let named = &annotations[annotation::KEY_ID];
    let signer = [KEY, OLD_KEY]
        .into_iter()
        .find(|k| key_id(k) == *named)
        .unwrap_or_else(|| panic!("accepted a stamp of key id {named:?}, which is not trusted"));
    let again = identity::stamp(&ring_of(signer, &[]), stamp, key);
    assert_eq!(&again[annotation::KEY_ID], named);
    assert_eq!(
        hex_lower(&again[annotation::SIGNATURE]),
        hex_lower(&annotations[annotation::SIGNATURE]),
        "accepted a signature `stamp` does not make for {key}: {annotations:?}"
    );
}

fn hex_lower(s: &str) -> String {
    s.to_ascii_lowercase()
}

fn edited(input: Edited) {
    let Edited {
        signed,
        object,
        keys,
        edits,
        presented_on,
    } = input;
    let stamp = Stamp {
        identity: Identity {
            username: signed.username,
            uid: signed.uid,
            groups: signed.groups,
        },
        nonce: signed.nonce,
        approval_target: signed
            .target
            .map(|(uid, ticket_id)| ApprovalTarget { uid, ticket_id }),
    };
    let (signer, verifier): (KeyRing, KeyRing) = match keys {
        Keys::Same => (ring_of(KEY, &[]), ring_of(KEY, &[])),
        Keys::Rotated => (ring_of(OLD_KEY, &[]), ring_of(KEY, &[OLD_KEY])),
        Keys::Foreign => (ring_of(FOREIGN_KEY, &[]), ring_of(KEY, &[OLD_KEY])),
    };
    let signed_key = object.as_key();
    let genuine = identity::stamp(&signer, &stamp, &signed_key);

    // The genuine stamp, unedited, on its own object.
    let expected = normalized(&stamp);
    match (keys, identity::verify(&verifier, &genuine, &signed_key)) {
        (Keys::Foreign, Err(IdentityError::UnknownKey { .. })) => {}
        (Keys::Foreign, other) => panic!("a foreign key's stamp gave {other:?}"),
        (_, Ok(verified)) => assert_eq!(normalized(&verified), expected, "{genuine:?}"),
        (_, Err(e)) => panic!("a genuine stamp was refused: {e} ({genuine:?}, {signed_key})"),
    }

    let mut annotations = genuine.clone();
    for edit in &edits {
        apply(&mut annotations, edit);
    }
    let presented = presented_on.as_ref().unwrap_or(&object);
    let presented_key = presented.as_key();
    if let Ok(verified) = identity::verify(&verifier, &annotations, &presented_key) {
        assert!(
            !matches!(keys, Keys::Foreign),
            "a foreign key's stamp verified"
        );
        assert_reproduced(&verified, &annotations, &presented_key);
        assert_eq!(
            normalized(&verified),
            expected,
            "an edited stamp verified as something else than was signed: {annotations:?}"
        );
        assert_eq!(
            normalized_key(&presented_key),
            normalized_key(&signed_key),
            "a stamp verified on another object"
        );
    }
}

fn normalized(stamp: &Stamp) -> Stamp {
    Stamp {
        identity: Identity {
            groups: stamp.identity.sorted_groups(),
            ..stamp.identity.clone()
        },
        ..stamp.clone()
    }
}

fn normalized_key<'a>(key: &ObjectKey<'a>) -> (&'a str, Option<&'a str>, &'a str) {
    (
        key.kind,
        key.namespace.filter(|ns| !ns.is_empty()),
        key.name,
    )
}

fn apply(annotations: &mut BTreeMap<String, String>, edit: &Edit) {
    match edit {
        Edit::Set(name, value) => {
            annotations.insert(name.resolve(), value.clone());
        }
        Edit::Remove(name) => {
            annotations.remove(&name.resolve());
        }
        Edit::Append(name, suffix) => {
            annotations
                .entry(name.resolve())
                .or_default()
                .push_str(suffix);
        }
        Edit::FlipBit(name, at, bit) => {
            if let Some(value) = annotations.get_mut(&name.resolve()) {
                let mut bytes = value.clone().into_bytes();
                if !bytes.is_empty() {
                    let i = usize::from(*at) % bytes.len();
                    bytes[i] ^= 1 << (bit % 8);
                    if let Ok(flipped) = String::from_utf8(bytes) {
                        *value = flipped;
                    }
                }
            }
        }
        Edit::Uppercase(name) => {
            if let Some(value) = annotations.get_mut(&name.resolve()) {
                *value = value.to_uppercase();
            }
        }
        Edit::ShuffleGroups => {
            if let Some(value) = annotations.get_mut(annotation::GROUPS)
                && let Ok(mut groups) = serde_json::from_str::<Vec<String>>(value)
            {
                groups.reverse();
                if let Some(first) = groups.first().cloned() {
                    groups.push(first);
                }
                *value = serde_json::to_string(&groups).expect("strings encode");
            }
        }
    }
}
