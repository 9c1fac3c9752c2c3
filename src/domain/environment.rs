//! The two environments a target namespace or cluster belongs to. The type is shared
//! vocabulary (`shepherd_types::vocabulary`), so the CRDs, the REST API and the rules use
//! one definition.

pub use shepherd_types::vocabulary::Environment;
