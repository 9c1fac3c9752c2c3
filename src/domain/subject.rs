//! Who acts: Kubernetes users, groups and service accounts
//! (docs/architecture.md#identity-and-permissions). Identities come from Kubernetes authentication;
//! this type only names them.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SubjectKind {
    User,
    Group,
    ServiceAccount,
}

impl SubjectKind {
    pub const ALL: [SubjectKind; 3] = [Self::User, Self::Group, Self::ServiceAccount];

    /// The stored form, as in Kubernetes RBAC subjects.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "User",
            Self::Group => "Group",
            Self::ServiceAccount => "ServiceAccount",
        }
    }
}

impl fmt::Display for SubjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    #[error("subject kind {0:?} is unknown: use User, Group or ServiceAccount")]
    UnknownKind(String),
    #[error(
        "subject {0:?} is invalid: write user:NAME, group:NAME or serviceaccount:NAMESPACE/NAME"
    )]
    Malformed(String),
}

impl FromStr for SubjectKind {
    type Err = SubjectError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| SubjectError::UnknownKind(s.to_string()))
    }
}

/// A subject; a service account's name is its Kubernetes username
/// (`system:serviceaccount:NAMESPACE:NAME`), which is what authentication reports.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subject {
    pub kind: SubjectKind,
    pub name: String,
}

impl Subject {
    pub fn user(name: impl Into<String>) -> Self {
        Self {
            kind: SubjectKind::User,
            name: name.into(),
        }
    }

    pub fn group(name: impl Into<String>) -> Self {
        Self {
            kind: SubjectKind::Group,
            name: name.into(),
        }
    }

    /// Parses the command-line form: `user:NAME`, `group:NAME`, `serviceaccount:NS/NAME`.
    pub fn parse_flag(s: &str) -> Result<Self, SubjectError> {
        let malformed = || SubjectError::Malformed(s.to_string());
        let (kind, name) = s.split_once(':').ok_or_else(malformed)?;
        if name.is_empty() {
            return Err(malformed());
        }
        match kind.to_ascii_lowercase().as_str() {
            "user" => Ok(Self::user(name)),
            "group" => Ok(Self::group(name)),
            "serviceaccount" | "sa" => {
                let (ns, sa) = name.split_once('/').ok_or_else(malformed)?;
                if ns.is_empty() || sa.is_empty() || sa.contains('/') {
                    return Err(malformed());
                }
                Ok(Self {
                    kind: SubjectKind::ServiceAccount,
                    name: format!("system:serviceaccount:{ns}:{sa}"),
                })
            }
            _ => Err(malformed()),
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.kind, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flag_forms() {
        let cases: &[(&str, Result<Subject, ()>)] = &[
            ("user:alice", Ok(Subject::user("alice"))),
            ("User:alice", Ok(Subject::user("alice"))),
            (
                "group:platform-admins",
                Ok(Subject::group("platform-admins")),
            ),
            (
                "serviceaccount:ops/deployer",
                Ok(Subject {
                    kind: SubjectKind::ServiceAccount,
                    name: "system:serviceaccount:ops:deployer".into(),
                }),
            ),
            ("alice", Err(())),
            ("user:", Err(())),
            ("robot:x", Err(())),
            ("serviceaccount:deployer", Err(())),
            ("serviceaccount:/deployer", Err(())),
            ("serviceaccount:ops/", Err(())),
        ];
        for (input, want) in cases {
            let got = Subject::parse_flag(input).map_err(|_| ());
            assert_eq!(&got, want, "{input}");
        }
    }

    #[test]
    fn kind_round_trips_and_rejects_unknown() {
        for k in SubjectKind::ALL {
            assert_eq!(k.as_str().parse::<SubjectKind>(), Ok(k));
        }
        assert_eq!(
            "Robot".parse::<SubjectKind>(),
            Err(SubjectError::UnknownKind("Robot".into()))
        );
    }
}
