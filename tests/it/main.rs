//! Every integration test of the `shepherd` crate, in one binary so the crate is linked
//! once rather than once per file. Each module is one area; `common` holds the fixtures
//! (a scratch database per test, the simulator environment, the REST harness).
//!
//! Tests that need PostgreSQL use `DATABASE_URL` (set by `make test`); the end-to-end ones
//! also use the pinned kubectl (`SHEPHERD_KUBECTL`).

mod common;

mod api_crds;
mod api_openapi;
mod api_rest;
mod app_approvals;
mod app_front_door;
mod app_operations;
mod architecture;
mod authz_holes;
mod chart;
mod cli_logs;
mod cli_pipe;
mod console;
mod db_audit;
mod db_concurrency;
mod db_lock_order;
mod db_schema;
mod db_seed;
mod e2e_approvals;
mod e2e_clusters;
mod e2e_console;
mod e2e_front_door;
mod e2e_idle;
mod e2e_operations;
mod e2e_provisioning;
mod lease;
mod metrics;
mod render_golden;
mod request_ids;
mod sqlx_offline_data;
mod webhook;
