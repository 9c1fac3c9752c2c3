//! KubeVirt Shepherd: governance for KubeVirt virtual machines (see docs/architecture.md).
//!
//! Layers: `domain` (pure rules), `db` (persistence on a caller's connection), `app` (use
//! cases owning transactions), `jobs` (River job definitions), `cli` (the binary).

pub mod app;
pub mod certs;
pub mod cli;
pub mod clusters;
pub mod controller;
pub mod db;
pub mod domain;
pub mod http;
pub mod jobs;
pub mod metric_names;
pub mod run;

pub use shepherd_types::crd;
/// Restores SIGPIPE's default action; see [`shepherd_types::default_sigpipe`].
pub use shepherd_types::default_sigpipe;
