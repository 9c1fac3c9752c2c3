//! The two environments a target namespace or cluster belongs to (DESIGN §6).

use serde::{Deserialize, Serialize};

use super::parse::impl_str_enum;

/// Environment of a `VmNamespace` or `Cluster`; never of a System or Service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
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

impl_str_enum!(Environment, "environment");

#[cfg(test)]
mod tests {
    use super::*;

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
}
