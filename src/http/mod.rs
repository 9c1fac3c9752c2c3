//! HTTP surfaces of `shepherd run` (DESIGN §9). Each module builds an axum `Router`; the
//! binary decides which to mount and where.

pub mod api;
pub mod webhook;
