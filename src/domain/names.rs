//! Names of Systems, Services and target namespaces (ADR-0019).
//!
//! These names become parts of VM names (`{namespace}-{system}-{service}-{NN}`) and of
//! Kubernetes labels, so they are lowercase RFC 1035 labels, short, and never `--`
//! (which would make the parts of a VM name ambiguous to read).

use std::fmt;

pub use shepherd_types::vocabulary::{NAME_MAX_LEN, RESERVED_NAMES, RESERVED_PREFIXES};
/// Names longer than this are accepted with a warning.
pub const NAME_WARN_LEN: usize = 12;

/// What a name names; only used to word messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameKind {
    System,
    Service,
    Namespace,
}

impl NameKind {
    pub const ALL: [NameKind; 3] = [NameKind::System, NameKind::Service, NameKind::Namespace];

    pub const fn as_str(self) -> &'static str {
        match self {
            NameKind::System => "system",
            NameKind::Service => "service",
            NameKind::Namespace => "namespace",
        }
    }
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that passed; `warnings` are for the user (e.g. length) and never block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NameCheck {
    pub warnings: Vec<String>,
}

/// Why a name is refused; one variant per rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{kind} name is invalid: must not be empty")]
    Empty { kind: NameKind },
    #[error("{kind} name {name:?} is invalid: must be lowercase")]
    Uppercase { kind: NameKind, name: String },
    #[error(
        "{kind} name {name:?} is invalid: character {character:?} is not allowed (only a-z, 0-9 and '-')"
    )]
    InvalidCharacter {
        kind: NameKind,
        name: String,
        character: char,
    },
    #[error("{kind} name {name:?} is invalid: must start with a letter")]
    MustStartWithLetter { kind: NameKind, name: String },
    #[error("{kind} name {name:?} is invalid: must end with a letter or digit")]
    MustEndWithAlphanumeric { kind: NameKind, name: String },
    #[error("{kind} name {name:?} is invalid: must not contain \"--\"")]
    ConsecutiveHyphens { kind: NameKind, name: String },
    #[error("{kind} name {name:?} is invalid: the name is reserved")]
    Reserved { kind: NameKind, name: String },
    #[error("{kind} name {name:?} is invalid: the prefix {prefix:?} is reserved")]
    ReservedPrefix {
        kind: NameKind,
        name: String,
        prefix: &'static str,
    },
    #[error(
        "{kind} name {name:?} is invalid: {length} characters is more than the maximum of {max}"
    )]
    TooLong {
        kind: NameKind,
        name: String,
        length: usize,
        max: usize,
    },
}

impl NameError {
    /// Machine-readable code for API error bodies (codes of the original API).
    pub fn code(&self) -> &'static str {
        match self {
            NameError::TooLong { .. } => "NAME_TOO_LONG",
            NameError::Reserved { .. } | NameError::ReservedPrefix { .. } => "NAME_RESERVED",
            _ => "INVALID_NAME",
        }
    }
}

/// Checks `name` against every naming rule.
///
/// Rules are checked in a fixed order and the first failure is returned: characters,
/// start, end, `--`, reserved name, reserved prefix, length. Reserved prefixes come
/// before length so that `kubevirt-shepherd-x` is reported for what it really is.
pub fn validate_name(kind: NameKind, name: &str) -> Result<NameCheck, NameError> {
    let owned = || name.to_owned();
    if name.is_empty() {
        return Err(NameError::Empty { kind });
    }
    if let Some(character) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(if character.is_ascii_uppercase() {
            NameError::Uppercase {
                kind,
                name: owned(),
            }
        } else {
            NameError::InvalidCharacter {
                kind,
                name: owned(),
                character,
            }
        });
    }
    // From here on the name is ASCII, so bytes are characters.
    if !name.as_bytes()[0].is_ascii_lowercase() {
        return Err(NameError::MustStartWithLetter {
            kind,
            name: owned(),
        });
    }
    if name.ends_with('-') {
        return Err(NameError::MustEndWithAlphanumeric {
            kind,
            name: owned(),
        });
    }
    if name.contains("--") {
        return Err(NameError::ConsecutiveHyphens {
            kind,
            name: owned(),
        });
    }
    if RESERVED_NAMES.contains(&name) {
        return Err(NameError::Reserved {
            kind,
            name: owned(),
        });
    }
    if let Some(prefix) = RESERVED_PREFIXES.iter().find(|p| name.starts_with(**p)) {
        return Err(NameError::ReservedPrefix {
            kind,
            name: owned(),
            prefix,
        });
    }
    let length = name.len();
    if length > NAME_MAX_LEN {
        return Err(NameError::TooLong {
            kind,
            name: owned(),
            length,
            max: NAME_MAX_LEN,
        });
    }
    let mut warnings = Vec::new();
    if length > NAME_WARN_LEN {
        warnings.push(format!(
            "NAME_LENGTH_WARNING: {kind} name {name:?} is {length} characters; \
             VM names are built from it ({{namespace}}-{{system}}-{{service}}-{{NN}}), \
             so {NAME_WARN_LEN} characters or fewer are recommended"
        ));
    }
    Ok(NameCheck { warnings })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(name: &str) -> String {
        name.to_owned()
    }

    #[test]
    fn valid_names_pass_without_warnings() {
        for kind in NameKind::ALL {
            for name in [
                "a",
                "shop",
                "shop1",
                "shop-1",
                "a-b-c",
                "x9",
                "abcdefghijkl", // 12
                "defaults",
                "sys",
                "kube",
                "kubex",
                "kubevirt",
                "my-kube-x",
                "admins",
                "rooted",
            ] {
                assert_eq!(
                    validate_name(kind, name),
                    Ok(NameCheck::default()),
                    "{kind} {name}"
                );
            }
        }
    }

    #[test]
    fn names_of_13_to_15_characters_pass_with_a_length_warning() {
        for name in ["abcdefghijklm", "abcdefghijklmn", "abcdefghijklmno"] {
            let check = validate_name(NameKind::Service, name).unwrap();
            assert_eq!(check.warnings.len(), 1, "{name}");
            let w = &check.warnings[0];
            assert!(w.starts_with("NAME_LENGTH_WARNING: "), "{w}");
            assert!(
                w.contains(&format!(
                    "service name {name:?} is {} characters",
                    name.len()
                )),
                "{w}"
            );
            assert!(w.contains("VM names are built from it"), "{w}");
        }
    }

    #[test]
    fn invalid_names_fail_with_the_rule_they_break() {
        use NameKind::*;
        #[rustfmt::skip]
        let cases: Vec<(NameKind, &str, NameError)> = vec![
            (System, "", NameError::Empty { kind: System }),
            (System, "Shop", NameError::Uppercase { kind: System, name: s("Shop") }),
            (Service, "shoP", NameError::Uppercase { kind: Service, name: s("shoP") }),
            (System, "shop_1", NameError::InvalidCharacter { kind: System, name: s("shop_1"), character: '_' }),
            (System, "shop.1", NameError::InvalidCharacter { kind: System, name: s("shop.1"), character: '.' }),
            (System, "sh op", NameError::InvalidCharacter { kind: System, name: s("sh op"), character: ' ' }),
            (System, "café", NameError::InvalidCharacter { kind: System, name: s("café"), character: 'é' }),
            (System, "1shop", NameError::MustStartWithLetter { kind: System, name: s("1shop") }),
            (System, "-shop", NameError::MustStartWithLetter { kind: System, name: s("-shop") }),
            (System, "-", NameError::MustStartWithLetter { kind: System, name: s("-") }),
            (Namespace, "9", NameError::MustStartWithLetter { kind: Namespace, name: s("9") }),
            (System, "shop-", NameError::MustEndWithAlphanumeric { kind: System, name: s("shop-") }),
            (System, "kube-", NameError::MustEndWithAlphanumeric { kind: System, name: s("kube-") }),
            (System, "sh--op", NameError::ConsecutiveHyphens { kind: System, name: s("sh--op") }),
            (System, "a---b", NameError::ConsecutiveHyphens { kind: System, name: s("a---b") }),
            (System, "default", NameError::Reserved { kind: System, name: s("default") }),
            (Service, "system", NameError::Reserved { kind: Service, name: s("system") }),
            (Namespace, "admin", NameError::Reserved { kind: Namespace, name: s("admin") }),
            (System, "root", NameError::Reserved { kind: System, name: s("root") }),
            (System, "internal", NameError::Reserved { kind: System, name: s("internal") }),
            (System, "kube-x", NameError::ReservedPrefix { kind: System, name: s("kube-x"), prefix: "kube-" }),
            (Namespace, "kube-system", NameError::ReservedPrefix { kind: Namespace, name: s("kube-system"), prefix: "kube-" }),
            (System, "kubevirt-shepherd-x", NameError::ReservedPrefix { kind: System, name: s("kubevirt-shepherd-x"), prefix: "kubevirt-shepherd-" }),
            (System, "abcdefghijklmnop", NameError::TooLong { kind: System, name: s("abcdefghijklmnop"), length: 16, max: 15 }),
            (Service, "a-very-long-service-name", NameError::TooLong { kind: Service, name: s("a-very-long-service-name"), length: 24, max: 15 }),
        ];
        for (kind, name, expected) in cases {
            assert_eq!(validate_name(kind, name), Err(expected), "{kind} {name:?}");
        }
    }

    #[test]
    fn every_reserved_name_and_prefix_is_refused() {
        for name in RESERVED_NAMES {
            assert!(
                matches!(
                    validate_name(NameKind::System, name),
                    Err(NameError::Reserved { .. })
                ),
                "{name}"
            );
        }
        for prefix in RESERVED_PREFIXES {
            let name = format!("{prefix}a");
            assert_eq!(
                validate_name(NameKind::Namespace, &name),
                Err(NameError::ReservedPrefix {
                    kind: NameKind::Namespace,
                    name: name.clone(),
                    prefix
                })
            );
        }
        assert_eq!(
            RESERVED_NAMES,
            ["default", "system", "admin", "root", "internal"]
        );
        assert_eq!(RESERVED_PREFIXES, ["kube-", "kubevirt-shepherd-"]);
    }

    #[test]
    fn length_boundaries() {
        assert_eq!((NAME_WARN_LEN, NAME_MAX_LEN), (12, 15));
        for (length, warns, ok) in [
            (12, false, true),
            (13, true, true),
            (15, true, true),
            (16, false, false),
        ] {
            let name = "a".repeat(length);
            match validate_name(NameKind::System, &name) {
                Ok(check) => {
                    assert!(ok, "{length} should fail");
                    assert_eq!(!check.warnings.is_empty(), warns, "{length}");
                }
                Err(err) => {
                    assert!(!ok, "{length} should pass");
                    assert_eq!(
                        err,
                        NameError::TooLong {
                            kind: NameKind::System,
                            name,
                            length,
                            max: 15
                        }
                    );
                }
            }
        }
    }

    #[test]
    fn messages_name_the_kind_the_value_and_the_rule() {
        let cases = [
            (
                NameKind::System,
                "Shop",
                r#"system name "Shop" is invalid: must be lowercase"#,
            ),
            (
                NameKind::Service,
                "",
                "service name is invalid: must not be empty",
            ),
            (
                NameKind::System,
                "a_b",
                r#"system name "a_b" is invalid: character '_' is not allowed (only a-z, 0-9 and '-')"#,
            ),
            (
                NameKind::System,
                "1a",
                r#"system name "1a" is invalid: must start with a letter"#,
            ),
            (
                NameKind::System,
                "a-",
                r#"system name "a-" is invalid: must end with a letter or digit"#,
            ),
            (
                NameKind::System,
                "a--b",
                r#"system name "a--b" is invalid: must not contain "--""#,
            ),
            (
                NameKind::Namespace,
                "root",
                r#"namespace name "root" is invalid: the name is reserved"#,
            ),
            (
                NameKind::System,
                "kube-a",
                r#"system name "kube-a" is invalid: the prefix "kube-" is reserved"#,
            ),
            (
                NameKind::System,
                "abcdefghijklmnop",
                r#"system name "abcdefghijklmnop" is invalid: 16 characters is more than the maximum of 15"#,
            ),
        ];
        for (kind, name, message) in cases {
            assert_eq!(validate_name(kind, name).unwrap_err().to_string(), message);
        }
    }

    #[test]
    fn error_codes() {
        let code = |name: &str| validate_name(NameKind::System, name).unwrap_err().code();
        assert_eq!(code("abcdefghijklmnop"), "NAME_TOO_LONG");
        assert_eq!(code("admin"), "NAME_RESERVED");
        assert_eq!(code("kube-a"), "NAME_RESERVED");
        assert_eq!(code("Shop"), "INVALID_NAME");
        assert_eq!(code(""), "INVALID_NAME");
    }

    #[test]
    fn kind_displays_lowercase() {
        let shown: Vec<String> = NameKind::ALL.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["system", "service", "namespace"]);
    }
}
