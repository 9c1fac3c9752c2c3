//! Name rules: `shepherd::domain::names::validate_name` for every `NameKind` and
//! `shepherd::domain::vm_name::vm_name` on arbitrary strings.
//!
//! Input: the first byte picks the function (bit 0); the rest is the name (UTF-8, lossy) or
//! structured input for `vm_name` (`arbitrary`: namespace, system, service, index).
//! Checked on every input:
//! - no panic; every error has a message naming the value and a known code;
//! - `validate_name` accepts exactly the names that follow the documented rules
//!   (docs/architecture.md, ADR-0019): 1 to 15 characters of a-z, 0-9 and '-', starting with
//!   a letter, ending with a letter or digit, no "--", not reserved, no reserved prefix;
//!   more than 12 characters warns; the verdict does not depend on the kind;
//! - the API server agrees: the CEL rules of the generated System, VmNamespace and Service
//!   CRDs (evaluated with kube-cel, as in tests/it/api_crds.rs) accept the same names;
//! - `vm_name` accepts only DNS-1123 labels (at most 63 characters) spelled
//!   `{namespace}-{system}-{service}-{NN}`, and always accepts parts that `validate_name`
//!   accepts.
#![no_main]

use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use kube_cel::{CompiledSchema, Validator, compile_schema};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use shepherd::domain::names::{
    NAME_MAX_LEN, NAME_WARN_LEN, NameError, NameKind, RESERVED_NAMES, RESERVED_PREFIXES,
    validate_name,
};
use shepherd::domain::vm_name::{VM_NAME_MAX_LEN, VmNameError, vm_name};

#[derive(Arbitrary, Debug)]
struct VmNameInput {
    namespace: String,
    system: String,
    service: String,
    index: u32,
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    if selector & 1 == 0 {
        names(&String::from_utf8_lossy(rest));
    } else if let Ok(input) = VmNameInput::arbitrary_take_rest(Unstructured::new(rest)) {
        vm_names(&input);
    }
});

/// The documented rules, written out independently of `validate_name`.
fn follows_the_rules(name: &str) -> bool {
    let bytes = name.as_bytes();
    !name.is_empty()
        && name.len() <= NAME_MAX_LEN
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0].is_ascii_lowercase()
        && bytes[bytes.len() - 1] != b'-'
        && !name.contains("--")
        && !RESERVED_NAMES.contains(&name)
        && !RESERVED_PREFIXES.iter().any(|p| name.starts_with(p))
}

fn code_and_message(kind: NameKind, name: &str, error: &NameError) {
    assert!(
        ["INVALID_NAME", "NAME_TOO_LONG", "NAME_RESERVED"].contains(&error.code()),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.starts_with(kind.as_str()), "{message}");
    if !name.is_empty() {
        assert!(
            message.contains(&format!("{name:?}")),
            "the message does not name {name:?}: {message}"
        );
    }
}

fn names(name: &str) {
    let expected = follows_the_rules(name);
    let mut verdicts = Vec::new();
    for kind in NameKind::ALL {
        match validate_name(kind, name) {
            Ok(check) => {
                assert!(expected, "{kind} name {name:?} accepted against the rules");
                assert_eq!(
                    !check.warnings.is_empty(),
                    name.len() > NAME_WARN_LEN,
                    "{name:?}: {:?}",
                    check.warnings
                );
                verdicts.push(None);
            }
            Err(error) => {
                assert!(!expected, "{kind} name {name:?} refused: {error}");
                code_and_message(kind, name, &error);
                verdicts.push(Some(error.code()));
            }
        }
    }
    assert!(
        verdicts.windows(2).all(|w| w[0] == w[1]),
        "{name:?}: the verdict depends on the kind: {verdicts:?}"
    );
    for (crd, object) in cel_objects(name) {
        let accepted = validator()
            .validate_compiled(crd, &object, None)
            .map_err(|e| {
                e.into_vec()
                    .into_iter()
                    .map(|e| e.message)
                    .collect::<Vec<_>>()
            });
        assert_eq!(
            accepted.is_ok(),
            expected,
            "the CRD's CEL rules and validate_name disagree on {name:?}: {accepted:?}"
        );
    }
}

fn validator() -> &'static Validator {
    static VALIDATOR: OnceLock<Validator> = OnceLock::new();
    VALIDATOR.get_or_init(Validator::new)
}

/// The compiled schemas of the System, VmNamespace and Service CRDs, as generated.
fn schemas() -> &'static [CompiledSchema; 3] {
    static SCHEMAS: OnceLock<[CompiledSchema; 3]> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let all = shepherd::crd::crdgen::all();
        let schema = |plural: &str| {
            let file = format!("{plural}.shepherd.kv-shepherd.io.yaml");
            let crd = &all
                .iter()
                .find(|(f, _)| *f == file)
                .unwrap_or_else(|| panic!("no CRD {file}"))
                .1;
            let compiled = compile_schema(&crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]);
            assert!(
                !compiled.has_errors(),
                "{file}: {:?}",
                compiled.compilation_errors()
            );
            compiled
        };
        [
            schema("systems"),
            schema("vmnamespaces"),
            schema("services"),
        ]
    })
}

/// Objects whose name is `name` (for a Service: its service part), valid otherwise.
fn cel_objects(name: &str) -> [(&'static CompiledSchema, Value); 3] {
    let [system, namespace, service] = schemas();
    let object = |kind: &str, name: &str, spec: Value| {
        json!({
            "apiVersion": "shepherd.kv-shepherd.io/v1alpha1",
            "kind": kind,
            "metadata": {"name": name},
            "spec": spec,
        })
    };
    [
        (
            system,
            object("System", name, json!({"description": "fuzz"})),
        ),
        (
            namespace,
            object("VmNamespace", name, json!({"environment": "test"})),
        ),
        (
            service,
            object(
                "Service",
                &format!("shop.{name}"),
                json!({"system": "shop"}),
            ),
        ),
    ]
}

fn is_dns1123_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !name.is_empty()
        && name.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

fn vm_names(input: &VmNameInput) {
    let VmNameInput {
        namespace,
        system,
        service,
        index,
    } = input;
    let parts_valid = *index >= 1
        && validate_name(NameKind::Namespace, namespace).is_ok()
        && validate_name(NameKind::System, system).is_ok()
        && validate_name(NameKind::Service, service).is_ok();
    match vm_name(namespace, system, service, *index) {
        Ok(name) => {
            const { assert!(VM_NAME_MAX_LEN <= 63) };
            assert!(is_dns1123_label(&name), "{name:?} is not a DNS-1123 label");
            assert!(name.len() <= VM_NAME_MAX_LEN, "{name:?}");
            assert_eq!(name, format!("{namespace}-{system}-{service}-{index:02}"));
        }
        Err(error) => {
            assert!(
                !parts_valid,
                "valid parts {input:?} make no VM name: {error}"
            );
            let message = error.to_string();
            match &error {
                VmNameError::ZeroIndex => assert_eq!(*index, 0),
                VmNameError::EmptyPart { part } => assert!(message.contains(part)),
                VmNameError::InvalidCharacter { name, .. }
                | VmNameError::InvalidStart { name }
                | VmNameError::TooLong { name, .. } => {
                    assert!(message.contains(&format!("{name:?}")), "{message}")
                }
            }
        }
    }
}
