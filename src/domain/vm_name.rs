//! VM names: `{namespace}-{system}-{service}-{NN}` (docs/architecture.md#vms).
//!
//! The parts are validated where they are created (see `names`); this is the last-line
//! check that the assembled name is something Kubernetes accepts as an object name.

/// Longest VM name: a DNS-1123 label.
pub const VM_NAME_MAX_LEN: usize = 63;

/// Why a VM name cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VmNameError {
    #[error("VM index 0 is invalid: indexes start at 1")]
    ZeroIndex,
    #[error("VM name part {part} is empty")]
    EmptyPart { part: &'static str },
    #[error(
        "VM name {name:?} is invalid: character {character:?} is not allowed (only a-z, 0-9 and '-')"
    )]
    InvalidCharacter { name: String, character: char },
    #[error("VM name {name:?} is invalid: must start with a letter or digit")]
    InvalidStart { name: String },
    #[error("VM name {name:?} is too long: {length} characters, maximum {max}")]
    TooLong {
        name: String,
        length: usize,
        max: usize,
    },
}

/// Builds the name of the `index`-th VM of a Service; `index` starts at 1 and is printed
/// with at least two digits (7 -> "07", 123 -> "123").
///
/// The caller must still rely on a unique index in the database: parts may contain
/// hyphens, so different (system, service) pairs can spell the same name.
pub fn vm_name(
    namespace: &str,
    system: &str,
    service: &str,
    index: u32,
) -> Result<String, VmNameError> {
    if index == 0 {
        return Err(VmNameError::ZeroIndex);
    }
    for (part, value) in [
        ("namespace", namespace),
        ("system", system),
        ("service", service),
    ] {
        if value.is_empty() {
            return Err(VmNameError::EmptyPart { part });
        }
    }
    let name = format!("{namespace}-{system}-{service}-{index:02}");
    if let Some(character) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(VmNameError::InvalidCharacter { name, character });
    }
    // The name ends with digits, so only the start can break the label's edge rule.
    if name.starts_with('-') {
        return Err(VmNameError::InvalidStart { name });
    }
    let length = name.len();
    if length > VM_NAME_MAX_LEN {
        return Err(VmNameError::TooLong {
            name,
            length,
            max: VM_NAME_MAX_LEN,
        });
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_names_with_an_index_of_at_least_two_digits() {
        let cases = [
            ("dev", "shop", "web", 1, "dev-shop-web-01"),
            ("dev", "shop", "web", 7, "dev-shop-web-07"),
            ("dev", "shop", "web", 10, "dev-shop-web-10"),
            ("dev", "shop", "web", 99, "dev-shop-web-99"),
            ("dev", "shop", "web", 100, "dev-shop-web-100"),
            ("dev", "shop", "web", 123, "dev-shop-web-123"),
            ("team-a", "my-shop", "api-1", 2, "team-a-my-shop-api-1-02"),
            ("n", "s", "v", u32::MAX, "n-s-v-4294967295"),
        ];
        for (ns, sys, svc, index, expected) in cases {
            assert_eq!(vm_name(ns, sys, svc, index).as_deref(), Ok(expected));
        }
    }

    #[test]
    fn index_zero_is_refused() {
        assert_eq!(
            vm_name("dev", "shop", "web", 0),
            Err(VmNameError::ZeroIndex)
        );
        assert_eq!(
            VmNameError::ZeroIndex.to_string(),
            "VM index 0 is invalid: indexes start at 1"
        );
    }

    #[test]
    fn empty_parts_are_refused_by_name() {
        let cases = [
            ("", "shop", "web", "namespace"),
            ("dev", "", "web", "system"),
            ("dev", "shop", "", "service"),
        ];
        for (ns, sys, svc, part) in cases {
            assert_eq!(
                vm_name(ns, sys, svc, 1),
                Err(VmNameError::EmptyPart { part })
            );
        }
    }

    #[test]
    fn names_that_are_not_dns_labels_are_refused() {
        let cases = [
            (
                "Dev",
                "shop",
                "web",
                VmNameError::InvalidCharacter {
                    name: "Dev-shop-web-01".into(),
                    character: 'D',
                },
            ),
            (
                "dev",
                "sh_op",
                "web",
                VmNameError::InvalidCharacter {
                    name: "dev-sh_op-web-01".into(),
                    character: '_',
                },
            ),
            (
                "dev",
                "shop",
                "w.b",
                VmNameError::InvalidCharacter {
                    name: "dev-shop-w.b-01".into(),
                    character: '.',
                },
            ),
            (
                "-dev",
                "shop",
                "web",
                VmNameError::InvalidStart {
                    name: "-dev-shop-web-01".into(),
                },
            ),
        ];
        for (ns, sys, svc, expected) in cases {
            assert_eq!(vm_name(ns, sys, svc, 1), Err(expected));
        }
    }

    #[test]
    fn length_boundary_is_63() {
        assert_eq!(VM_NAME_MAX_LEN, 63);
        // 20 + 1 + 20 + 1 + 18 + 1 + 2 = 63
        let ok = vm_name(&"a".repeat(20), &"b".repeat(20), &"c".repeat(18), 1).unwrap();
        assert_eq!(ok.len(), 63);
        let long = format!(
            "{}-{}-{}-01",
            "a".repeat(20),
            "b".repeat(20),
            "c".repeat(19)
        );
        assert_eq!(
            vm_name(&"a".repeat(20), &"b".repeat(20), &"c".repeat(19), 1),
            Err(VmNameError::TooLong {
                name: long.clone(),
                length: 64,
                max: 63
            })
        );
        // A third index digit can push a name over the limit.
        assert_eq!(
            vm_name(&"a".repeat(20), &"b".repeat(20), &"c".repeat(18), 100).unwrap_err(),
            VmNameError::TooLong {
                name: ok.replace("-01", "-100"),
                length: 64,
                max: 63
            }
        );
        // Three maximal 15-character parts always fit.
        let max_parts = vm_name(&"a".repeat(15), &"b".repeat(15), &"c".repeat(15), 99).unwrap();
        assert_eq!(max_parts.len(), 50);
    }

    #[test]
    fn messages_name_the_value() {
        assert_eq!(
            vm_name(&"a".repeat(30), &"b".repeat(30), "c", 1)
                .unwrap_err()
                .to_string(),
            format!(
                "VM name \"{}-{}-c-01\" is too long: 66 characters, maximum 63",
                "a".repeat(30),
                "b".repeat(30)
            )
        );
        assert_eq!(
            vm_name("dev", "", "web", 1).unwrap_err().to_string(),
            "VM name part system is empty"
        );
    }
}
