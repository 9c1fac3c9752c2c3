//! The words the Kubernetes kinds, the REST API and the domain rules share: environments,
//! operations, the limits of names and the identity annotations. One definition each, so
//! the CRD schemas and the rules that check them cannot disagree.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A string that is not one of an enum's spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}: expected one of {expected}")]
pub struct ParseEnumError {
    /// What was being parsed, e.g. "environment".
    pub kind: &'static str,
    /// The rejected input.
    pub value: String,
    /// The accepted spellings, comma-separated.
    pub expected: String,
}

/// Finds the variant of `all` whose string form is `value`.
#[doc(hidden)]
pub fn parse_enum<T: Copy>(
    kind: &'static str,
    value: &str,
    all: &[T],
    as_str: impl Fn(T) -> &'static str,
) -> Result<T, ParseEnumError> {
    all.iter()
        .copied()
        .find(|v| as_str(*v) == value)
        .ok_or_else(|| ParseEnumError {
            kind,
            value: value.to_owned(),
            expected: all
                .iter()
                .map(|v| as_str(*v))
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Implements `Display` and `FromStr` for an enum that has `ALL` and `as_str()`.
#[macro_export]
macro_rules! impl_str_enum {
    ($ty:ty, $kind:literal) => {
        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $ty {
            type Err = $crate::vocabulary::ParseEnumError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $crate::vocabulary::parse_enum($kind, s, &Self::ALL, Self::as_str)
            }
        }
    };
}

/// Environment of a `VmNamespace` or `Cluster`; never of a System or Service.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Test,
    Prod,
}

impl Environment {
    pub const ALL: [Environment; 2] = [Environment::Test, Environment::Prod];

    /// The stored and displayed form: "test" or "prod".
    pub const fn as_str(self) -> &'static str {
        match self {
            Environment::Test => "test",
            Environment::Prod => "prod",
        }
    }
}

crate::impl_str_enum!(Environment, "environment");

/// What a ticket asks for: creating VMs or a day-2 action on one VM.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Create,
    Delete,
    Start,
    Stop,
    Restart,
    Migrate,
    Snapshot,
    Restore,
    Clone,
}

impl Operation {
    pub const ALL: [Operation; 9] = [
        Operation::Create,
        Operation::Delete,
        Operation::Start,
        Operation::Stop,
        Operation::Restart,
        Operation::Migrate,
        Operation::Snapshot,
        Operation::Restore,
        Operation::Clone,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Delete => "delete",
            Operation::Start => "start",
            Operation::Stop => "stop",
            Operation::Restart => "restart",
            Operation::Migrate => "migrate",
            Operation::Snapshot => "snapshot",
            Operation::Restore => "restore",
            Operation::Clone => "clone",
        }
    }
}

crate::impl_str_enum!(Operation, "operation");

impl Operation {
    /// The operations a `VmOperation` may ask for: all but `create`, which is a `VmRequest`.
    pub fn is_day_two(self) -> bool {
        self != Operation::Create
    }
}

/// The schema of `VmOperation.spec.operation`: every operation but `create`.
pub fn day_two_operation_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let values: Vec<&str> = Operation::ALL
        .into_iter()
        .filter(|op| op.is_day_two())
        .map(Operation::as_str)
        .collect();
    schemars::json_schema!({ "type": "string", "enum": values })
}

/// Longest accepted System, Service or namespace name: names become parts of VM names.
pub const NAME_MAX_LEN: usize = 15;
/// Names nobody may take: they read as platform-owned.
pub const RESERVED_NAMES: &[&str] = &["default", "system", "admin", "root", "internal"];
/// Prefixes nobody may use: Kubernetes' own and the platform's.
pub const RESERVED_PREFIXES: &[&str] = &["kube-", "kubevirt-shepherd-"];

/// Annotations only the admission webhook writes: who created the object, signed.
pub mod identity_annotations {
    pub const USERNAME: &str = "shepherd.kv-shepherd.io/requested-by";
    pub const UID: &str = "shepherd.kv-shepherd.io/requested-by-uid";
    pub const GROUPS: &str = "shepherd.kv-shepherd.io/requested-by-groups";
    pub const SIGNATURE: &str = "shepherd.kv-shepherd.io/identity-signature";
    /// Random and single-use: PostgreSQL records it at admission and lets only the first
    /// object uid that presents it claim it.
    pub const NONCE: &str = "shepherd.kv-shepherd.io/identity-nonce";
    /// Which identity key signed (keys rotate; previous ones still verify).
    pub const KEY_ID: &str = "shepherd.kv-shepherd.io/identity-key-id";
    /// On Approvals only: the target's uid and ticket id, resolved at admission and signed.
    pub const APPROVAL_TARGET: &str = "shepherd.kv-shepherd.io/approval-target";
    /// What every stamp carries.
    pub const ALL: [&str; 6] = [USERNAME, UID, GROUPS, NONCE, KEY_ID, SIGNATURE];
    /// What the webhook keeps as first stamped, whatever an update says.
    pub const PRESERVED: [&str; 7] = [
        USERNAME,
        UID,
        GROUPS,
        NONCE,
        KEY_ID,
        SIGNATURE,
        APPROVAL_TARGET,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Colour {
        Red,
        Blue,
    }

    fn colour_str(c: Colour) -> &'static str {
        match c {
            Colour::Red => "red",
            Colour::Blue => "blue",
        }
    }

    #[test]
    fn parses_exact_spelling_only() {
        let all = [Colour::Red, Colour::Blue];
        assert_eq!(
            parse_enum("colour", "red", &all, colour_str),
            Ok(Colour::Red)
        );
        assert_eq!(
            parse_enum("colour", "blue", &all, colour_str),
            Ok(Colour::Blue)
        );
        for bad in ["Red", "RED", " red", "red ", "", "green"] {
            let err = parse_enum("colour", bad, &all, colour_str).unwrap_err();
            assert_eq!(err.value, bad);
            assert_eq!(
                err.to_string(),
                format!("unknown colour {bad:?}: expected one of red, blue")
            );
        }
    }

    #[test]
    fn string_forms_round_trip() {
        let cases = [(Environment::Test, "test"), (Environment::Prod, "prod")];
        assert_eq!(cases.len(), Environment::ALL.len());
        for (env, text) in cases {
            assert_eq!(env.as_str(), text);
            assert_eq!(env.to_string(), text);
            assert_eq!(text.parse::<Environment>(), Ok(env));
            assert_eq!(serde_json::to_value(env).unwrap(), serde_json::json!(text));
            assert_eq!(
                serde_json::from_value::<Environment>(serde_json::json!(text)).unwrap(),
                env
            );
        }
    }

    #[test]
    fn unknown_values_are_rejected_and_named() {
        for bad in ["Prod", "TEST", "staging", "", "production"] {
            let err = bad.parse::<Environment>().unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("unknown environment {bad:?}: expected one of test, prod")
            );
            assert!(serde_json::from_value::<Environment>(serde_json::json!(bad)).is_err());
        }
    }

    #[test]
    fn all_lists_each_variant_once_in_order() {
        assert_eq!(Environment::ALL, [Environment::Test, Environment::Prod]);
        assert!(Environment::Test < Environment::Prod);
    }

    #[test]
    fn operation_string_forms_round_trip() {
        let names = [
            "create", "delete", "start", "stop", "restart", "migrate", "snapshot", "restore",
            "clone",
        ];
        assert_eq!(Operation::ALL.len(), names.len());
        for (op, name) in Operation::ALL.into_iter().zip(names) {
            assert_eq!(op.as_str(), name);
            assert_eq!(op.to_string(), name);
            assert_eq!(name.parse::<Operation>(), Ok(op));
            assert_eq!(serde_json::to_value(op).unwrap(), serde_json::json!(name));
        }
        let err = "Create".parse::<Operation>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown operation \"Create\": expected one of create, delete, start, stop, \
             restart, migrate, snapshot, restore, clone"
        );
    }

    #[test]
    fn day_two_operations_are_all_but_create() {
        let day_two: Vec<Operation> = Operation::ALL
            .into_iter()
            .filter(|o| o.is_day_two())
            .collect();
        assert_eq!(day_two.len(), Operation::ALL.len() - 1);
        assert!(!day_two.contains(&Operation::Create));
        let schema = day_two_operation_schema(&mut schemars::SchemaGenerator::default());
        let values = schema.get("enum").and_then(|v| v.as_array()).unwrap();
        assert_eq!(values.len(), day_two.len());
        assert!(!values.contains(&serde_json::json!("create")));
    }
}
