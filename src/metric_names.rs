//! The names of the metrics families, in one place: the controllers, the job workers and
//! the HTTP handlers record them; `http::metrics` describes and renders them.

/// Reconciliations by kind and result (recorded by the controllers).
pub const RECONCILE_TOTAL: &str = "shepherd_reconcile_total";
/// Time one reconciliation takes, by kind (recorded by the controllers).
pub const RECONCILE_DURATION: &str = "shepherd_reconcile_duration_seconds";
/// River jobs worked, by kind and outcome (recorded by the job workers).
pub const JOBS_TOTAL: &str = "shepherd_jobs_total";
/// Time one job attempt takes, by kind (recorded by the job workers).
pub const JOB_DURATION: &str = "shepherd_job_duration_seconds";
/// Time from a job's scheduled time to its start, by kind (recorded by the job workers).
pub const JOB_WAIT: &str = "shepherd_job_wait_seconds";
/// Admission reviews answered, by endpoint, operation and verdict.
pub const WEBHOOK_REQUESTS_TOTAL: &str = "shepherd_webhook_requests_total";
/// Time to answer an admission review, by endpoint, operation and verdict.
pub const WEBHOOK_REQUEST_DURATION: &str = "shepherd_webhook_request_duration_seconds";
/// REST API requests, by route template, method and status code.
pub const API_REQUESTS_TOTAL: &str = "shepherd_api_requests_total";
/// Time to answer a REST API request, by route template and method.
pub const API_REQUEST_DURATION: &str = "shepherd_api_request_duration_seconds";
/// Tickets waiting for a decision, by environment (read at scrape time).
pub const TICKETS_PENDING: &str = "shepherd_tickets_pending";
/// 1 for each live cluster's current health, 0 for its other health values.
pub const CLUSTER_HEALTH: &str = "shepherd_cluster_health";
/// River jobs not yet finished, by queue, kind and state (read at scrape time).
pub const JOB_QUEUE_DEPTH: &str = "shepherd_job_queue_depth";
/// Rows in the audit log (read at scrape time).
pub const AUDIT_LOG_ROWS: &str = "shepherd_audit_log_rows";
/// 1 when the last scrape could read the database, else 0.
pub const DATABASE_UP: &str = "shepherd_database_up";
