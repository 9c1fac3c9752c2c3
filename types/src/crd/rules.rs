//! CEL rules built from the domain's name rules, so the API server enforces exactly the
//! rules `domain::names` defines (one place for each rule). `crdgen` adds them to the root
//! of the generated schemas; rules that fit a derive attribute live on the types.

use crate::vocabulary::{NAME_MAX_LEN, RESERVED_NAMES, RESERVED_PREFIXES};
use kube::core::Rule;

/// The name rules of docs/architecture.md#identity-and-permissions for the CEL string expression
/// `expr`, naming `what`.
pub fn name_rules(expr: &str, what: &str) -> Vec<Rule> {
    let reserved = RESERVED_NAMES
        .iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut rules = vec![
        Rule::new(format!("{expr}.matches('^[a-z0-9-]*$')"))
            .message(format!("{what} may contain only lowercase letters, digits and '-'").as_str()),
        Rule::new(format!("{expr}.matches('^[a-z]')"))
            .message(format!("{what} must start with a lowercase letter").as_str()),
        Rule::new(format!("{expr}.matches('[a-z0-9]$')"))
            .message(format!("{what} must end with a letter or digit").as_str()),
        Rule::new(format!("!{expr}.contains('--')"))
            .message(format!("{what} must not contain '--'").as_str()),
        Rule::new(format!("size({expr}) <= {NAME_MAX_LEN}")).message(
            format!(
                "{what} must be at most {NAME_MAX_LEN} characters (it becomes part of VM names)"
            )
            .as_str(),
        ),
        Rule::new(format!("!({expr} in [{reserved}])"))
            .message(format!("{what} is a reserved name").as_str()),
    ];
    for prefix in RESERVED_PREFIXES {
        rules.push(
            Rule::new(format!("!{expr}.startsWith('{prefix}')")).message(
                format!("{what} must not start with the reserved prefix '{prefix}'").as_str(),
            ),
        );
    }
    rules
}

/// `metadata.name` of a Service is `<system>.<service>`: both parts follow the name rules.
pub fn service_name_rules() -> Vec<Rule> {
    let parts = "self.metadata.name.split('.')";
    let mut rules = vec![
        Rule::new(format!("size({parts}) == 2"))
            .message("metadata.name must be <system>.<service>"),
        Rule::new(format!(
            "size({parts}) != 2 || {parts}[0] == self.spec.system"
        ))
        .message("metadata.name must start with spec.system followed by '.'"),
    ];
    for rule in name_rules(&format!("{parts}[1]"), "the service part of metadata.name") {
        rules.push(Rule {
            rule: format!("size({parts}) != 2 || ({})", rule.rule),
            ..rule
        });
    }
    rules
}
