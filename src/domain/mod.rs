//! Pure domain rules: no Kubernetes, no database, no I/O. Every rule lives in one place
//! here so that the API, the controller and the database layer agree on it.

pub mod audit_chain;
pub mod cluster_probe;
pub mod drift;
pub mod environment;
pub mod identity;
pub mod names;
pub mod operation;
pub mod parse;
pub mod permissions;
pub mod placement;
pub mod policy;
pub mod redact;
pub mod render;
pub mod resources;
pub mod subject;
pub mod ticket;
pub mod vm_name;
pub mod vm_state;

pub use environment::Environment;
pub use identity::{Identity, IdentityError, ObjectKey};
pub use names::{
    NAME_MAX_LEN, NAME_WARN_LEN, NameCheck, NameError, NameKind, RESERVED_NAMES, RESERVED_PREFIXES,
    validate_name,
};
pub use parse::ParseEnumError;
pub use permissions::{
    AccessRequest, Binding, BuiltinRole, Decision, DenyReason, Permission, ResourceRole, Scope,
    SelfApproval, Target, can_decide, effective_permissions, evaluate,
};
pub use policy::{PolicyRule, default_policies, requires_approval};
pub use redact::{is_secret_key, redact};
pub use subject::{Subject, SubjectError, SubjectKind};
pub use ticket::{IllegalTransition, Operation, TicketStatus, check_transition};
pub use vm_name::{VM_NAME_MAX_LEN, VmNameError, vm_name};
