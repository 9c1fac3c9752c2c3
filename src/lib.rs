//! KubeVirt Shepherd: governance for KubeVirt virtual machines (see DESIGN.md).
//!
//! Layers: `domain` (pure rules), `db` (persistence on a caller's connection), `app` (use
//! cases owning transactions), `jobs` (River job definitions), `cli` (the binary).

pub mod api;
pub mod app;
pub mod certs;
pub mod cli;
pub mod controller;
pub mod db;
pub mod domain;
pub mod http;
pub mod jobs;
pub mod plugin;
pub mod run;
