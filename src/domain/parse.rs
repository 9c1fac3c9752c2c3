//! Parsing of the string forms of the domain's closed enums. The machinery is shared with
//! the API types (`shepherd_types::vocabulary`): every enum has exactly one spelling per
//! variant (the one stored in PostgreSQL and shown in Kubernetes status), so parsing is
//! exact and case-sensitive.

pub(crate) use shepherd_types::impl_str_enum;
pub use shepherd_types::vocabulary::ParseEnumError;
