//! The types KubeVirt Shepherd's server, its kubectl plugin and its tests share, and nothing
//! else: the Kubernetes kinds (`crd`), the REST API's bodies and paths (`api`), and the
//! words both use (`vocabulary`). No client, database or server code lives here, so the
//! plugin links none of it.

pub mod api;
pub mod crd;
pub mod vocabulary;

/// Lets a closed stdout end the process as it ends other Unix tools (`shepherd show | head`),
/// instead of a panic from `println!`. Rust ignores SIGPIPE by default; the command-line
/// tools call this first thing (never `shepherd run`, which must outlive peers that hang up).
/// Both binaries use it, so it lives in the crate they share.
#[allow(unsafe_code)]
pub fn default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called at start-up, before any thread exists; SIG_DFL is a valid disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
