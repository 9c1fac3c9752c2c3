//! KubeVirt Shepherd: governance for KubeVirt virtual machines (see DESIGN.md).
//!
//! Layers: `domain` (pure rules), `db` (persistence on a caller's connection), `app` (use
//! cases owning transactions), `jobs` (River job definitions), `cli` (the binary).

pub mod api;
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
pub mod plugin;
pub mod run;

/// Lets a closed stdout end the process as it ends other Unix tools (`shepherd show | head`),
/// instead of a panic from `println!`. Rust ignores SIGPIPE by default; the command-line
/// tools call this first thing (never `shepherd run`, which must outlive peers that hang up).
pub fn default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called at start-up, before any thread exists; SIG_DFL is a valid disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
