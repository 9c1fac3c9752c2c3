//! `kubectl shepherd`: the kubectl plugin (DESIGN §9). It calls the REST API with the
//! current kubeconfig's credentials (token, token file or exec plugin, resolved by kube the
//! way kubectl does) and prints tables, JSON or YAML.
//!
//! Exit codes, for scripts: 0 success; 1 any other failure; 2 usage; 3 not authenticated
//! (401); 4 forbidden (403); 5 not found (404); 6 conflict, e.g. the ticket is already
//! decided (409); 7 invalid input (400, 422); 8 rate limited (429); 9 the API or its
//! database is unavailable (503, or no connection).

use crate::api::rest::{
    ApproveRequest, AuditPage, ErrorBody, Overrides, Preview, PreviewRequest, ReasonRequest,
    Ticket, TicketPage, VmPage, Whoami,
};
use axum::http::{self, Method, Request, StatusCode};
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand, ValueEnum};
use kube::config::{KubeConfigOptions, Kubeconfig};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::PathBuf;
use uuid::Uuid;

#[derive(Debug, Parser)]
#[command(
    name = "kubectl-shepherd",
    about = "KubeVirt Shepherd from kubectl: pending approvals, decisions, VMs, audit",
    after_help = "Exit codes: 0 ok, 1 other failure, 2 usage, 3 not authenticated, 4 forbidden, \
                  5 not found, 6 conflict, 7 invalid input, 8 rate limited, 9 unavailable."
)]
pub struct Cli {
    /// The Shepherd REST API, e.g. https://shepherd.example:8443.
    #[arg(long, env = "SHEPHERD_API_URL", global = true)]
    server: Option<String>,
    /// PEM file with the CA that signed the API's certificate.
    #[arg(long, env = "SHEPHERD_API_CA", global = true)]
    certificate_authority: Option<PathBuf>,
    /// Do not verify the API's certificate (testing only).
    #[arg(long, global = true)]
    insecure_skip_tls_verify: bool,
    /// Kubeconfig whose current user's credentials are sent (default: KUBECONFIG or ~/.kube/config).
    #[arg(long, global = true)]
    kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to take the credentials from.
    #[arg(long, global = true)]
    context: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "table", global = true)]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Output {
    Table,
    Json,
    Yaml,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Who the API thinks you are, and your bindings.
    Whoami,
    /// Tickets waiting for your decision, oldest first.
    Pending,
    /// Tickets you may see.
    Tickets {
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        system: Option<String>,
        #[arg(long = "env")]
        environment: Option<String>,
        #[arg(long)]
        requester: Option<String>,
        /// Operation: create, delete, start, ...
        #[arg(long = "type")]
        operation: Option<String>,
    },
    /// One ticket with its VMs.
    Ticket { id: Uuid },
    /// What approving would create: clusters, resources, VM names, warnings. Writes nothing.
    Preview {
        id: Uuid,
        #[command(flatten)]
        overrides: OverrideArgs,
    },
    /// Approve a ticket, optionally overriding placement and resources.
    Approve {
        id: Uuid,
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        overrides: OverrideArgs,
    },
    /// Reject a ticket; the reason is shown to the requester.
    Reject {
        id: Uuid,
        #[arg(long)]
        reason: String,
    },
    /// Withdraw your own pending ticket.
    Cancel {
        id: Uuid,
        #[arg(long)]
        reason: String,
    },
    /// VMs you may see.
    Vms {
        #[arg(long)]
        system: Option<String>,
        #[arg(long)]
        service: Option<String>,
        #[arg(long = "env")]
        environment: Option<String>,
        #[arg(long)]
        status: Option<String>,
    },
    /// Audit records (needs audit:read).
    Audit {
        #[arg(long)]
        actor: Option<String>,
        #[arg(long)]
        resource_type: Option<String>,
        #[arg(long)]
        resource_id: Option<String>,
        /// Actions starting with this, e.g. `approval.`.
        #[arg(long)]
        action: Option<String>,
        #[arg(long = "env")]
        environment: Option<String>,
        /// RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
        /// At most this many records.
        #[arg(long, default_value = "100")]
        limit: usize,
    },
}

#[derive(Debug, clap::Args)]
struct OverrideArgs {
    /// Place the VMs on this cluster (same environment, healthy, capable).
    #[arg(long)]
    cluster: Option<String>,
    #[arg(long)]
    storage_class: Option<String>,
    #[arg(long)]
    template_version: Option<i32>,
    /// CPU request/limit in millicores.
    #[arg(long)]
    cpu_request: Option<i64>,
    #[arg(long)]
    cpu_limit: Option<i64>,
    /// Memory request/limit in MiB.
    #[arg(long)]
    memory_request: Option<i64>,
    #[arg(long)]
    memory_limit: Option<i64>,
    /// Root disk in GiB.
    #[arg(long)]
    disk: Option<i32>,
}

impl From<OverrideArgs> for Overrides {
    fn from(a: OverrideArgs) -> Self {
        Overrides {
            cluster: a.cluster,
            storage_class: a.storage_class,
            template_version: a.template_version,
            cpu_request_millis: a.cpu_request,
            cpu_limit_millis: a.cpu_limit,
            memory_request_mib: a.memory_request,
            memory_limit_mib: a.memory_limit,
            disk_gib: a.disk,
        }
    }
}

/// A failure with the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    fn other(message: impl Into<String>) -> Self {
        Self {
            code: 1,
            message: message.into(),
        }
    }

    fn from_status(status: StatusCode, body: &[u8]) -> Self {
        let error: Option<ErrorBody> = serde_json::from_slice(body).ok();
        let (code, message) = match error {
            Some(e) => (e.code, e.message),
            None => (
                status.as_str().to_string(),
                String::from_utf8_lossy(body).trim().to_string(),
            ),
        };
        Self {
            code: match status.as_u16() {
                401 => 3,
                403 => 4,
                404 => 5,
                409 => 6,
                400 | 422 => 7,
                429 => 8,
                503 => 9,
                _ => 1,
            },
            message: format!("{code}: {message}"),
        }
    }
}

struct ApiClient {
    client: kube::Client,
}

impl ApiClient {
    async fn new(cli: &Cli) -> Result<Self, Failure> {
        let server = cli.server.as_deref().ok_or_else(|| Failure {
            code: 2,
            message: "no API server: pass --server or set SHEPHERD_API_URL".into(),
        })?;
        let options = KubeConfigOptions {
            context: cli.context.clone(),
            ..Default::default()
        };
        let mut config = match &cli.kubeconfig {
            Some(path) => {
                let kc = Kubeconfig::read_from(path).map_err(|e| {
                    Failure::other(format!("reading kubeconfig {}: {e}", path.display()))
                })?;
                kube::Config::from_custom_kubeconfig(kc, &options).await
            }
            None => kube::Config::from_kubeconfig(&options).await,
        }
        .map_err(|e| Failure::other(format!("loading the kubeconfig: {e}")))?;
        config.cluster_url = server
            .parse()
            .map_err(|e| Failure::other(format!("--server {server:?}: {e}")))?;
        config.tls_server_name = None;
        config.root_cert_file = None;
        config.root_cert = match &cli.certificate_authority {
            Some(path) => Some(
                CertificateDer::pem_file_iter(path)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| Failure::other(format!("reading CA {}: {e}", path.display())))?
                    .into_iter()
                    .map(|c| c.to_vec())
                    .collect(),
            ),
            None => None,
        };
        config.accept_invalid_certs = cli.insecure_skip_tls_verify;
        let client = kube::Client::try_from(config)
            .map_err(|e| Failure::other(format!("building the HTTP client: {e}")))?;
        Ok(Self { client })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, Failure> {
        let bytes = match body {
            Some(b) => serde_json::to_vec(b).map_err(|e| Failure::other(e.to_string()))?,
            None => vec![],
        };
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json")
            .body(kube::client::Body::from(bytes))
            .map_err(|e| Failure::other(e.to_string()))?;
        let response = self.client.send(request).await.map_err(|e| Failure {
            code: 9,
            message: format!("unavailable: cannot reach the Shepherd API: {e}"),
        })?;
        let status = response.status();
        let body = response
            .into_body()
            .collect_bytes()
            .await
            .map_err(|e| Failure {
                code: 9,
                message: format!("unavailable: reading the answer: {e}"),
            })?;
        if !status.is_success() {
            return Err(Failure::from_status(status, &body));
        }
        serde_json::from_slice(&body)
            .map_err(|e| Failure::other(format!("unexpected answer from the API: {e}")))
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Failure> {
        self.call(Method::GET, path, None::<&()>).await
    }
}

/// `key=value&...` of the parameters that are set, percent-encoded.
fn query(params: &[(&str, Option<String>)]) -> String {
    let pairs: Vec<String> = params
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode(v))))
        .collect();
    if pairs.is_empty() {
        String::new()
    } else {
        format!("?{}", pairs.join("&"))
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// kubectl's short ages: 42s, 5m, 3h, 2d.
pub fn age(since: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - since).num_seconds().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// Left-aligned columns separated by three spaces, headers in capitals (as kubectl prints).
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == last {
                    c.to_string()
                } else {
                    format!("{c:<width$}   ", width = widths[i])
                }
            })
            .collect::<String>()
    };
    let mut out = line(headers.to_vec());
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

fn print_structured<T: Serialize>(output: Output, value: &T) -> Result<bool, Failure> {
    match output {
        Output::Table => Ok(false),
        Output::Json => {
            let text =
                serde_json::to_string_pretty(value).map_err(|e| Failure::other(e.to_string()))?;
            println!("{text}");
            Ok(true)
        }
        Output::Yaml => {
            let text = serde_saphyr::to_string(value).map_err(|e| Failure::other(e.to_string()))?;
            print!("{text}");
            Ok(true)
        }
    }
}

fn dash(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "-".into())
}

fn tickets_table(tickets: &[Ticket], now: DateTime<Utc>) -> String {
    let rows: Vec<Vec<String>> = tickets
        .iter()
        .map(|t| {
            vec![
                t.id.to_string(),
                t.operation.clone(),
                t.status.clone(),
                t.requester.clone(),
                format!("{}/{}", t.system, t.service),
                t.environment.clone(),
                t.vm_count.to_string(),
                age(t.created_at, now),
            ]
        })
        .collect();
    table(
        &[
            "TICKET",
            "TYPE",
            "STATUS",
            "REQUESTER",
            "SERVICE",
            "ENV",
            "VMS",
            "AGE",
        ],
        &rows,
    )
}

fn ticket_detail(t: &Ticket) -> String {
    let mut out = format!(
        "Ticket:     {}\nType:       {}\nStatus:     {}\nRequester:  {}\nService:    {}/{}\n\
         Namespace:  {} ({})\nVMs:        {}\nReason:     {}\n",
        t.id,
        t.operation,
        t.status,
        t.requester,
        t.system,
        t.service,
        t.namespace,
        t.environment,
        t.vm_count,
        t.reason
    );
    if let Some(approver) = &t.approver {
        out.push_str(&format!(
            "Decided by: {approver}: {}\n",
            t.decision_reason.clone().unwrap_or_default()
        ));
    }
    if let Some(vm) = &t.vm {
        out.push_str(&format!("VM:         {vm}\n"));
    }
    if let Some(cluster) = &t.cluster {
        out.push_str(&format!("Cluster:    {cluster}\n"));
    }
    if !t.vms.is_empty() {
        let rows: Vec<Vec<String>> = t
            .vms
            .iter()
            .map(|v| vec![v.name.clone(), dash(&v.cluster), v.status.clone()])
            .collect();
        out.push('\n');
        out.push_str(&table(&["VM", "CLUSTER", "STATUS"], &rows));
    }
    out
}

/// Follows `nextCursor` until the pages run out (or `max` items are collected).
async fn all_pages<P: DeserializeOwned, T>(
    api: &ApiClient,
    path: &str,
    max: usize,
    split: impl Fn(P) -> (Vec<T>, Option<String>),
) -> Result<Vec<T>, Failure> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = match &cursor {
            Some(c) => format!("{path}{sep}limit=500&cursor={}", encode(c)),
            None => format!("{path}{sep}limit=500"),
        };
        let (page, next) = split(api.get::<P>(&url).await?);
        items.extend(page);
        if items.len() >= max {
            items.truncate(max);
            return Ok(items);
        }
        match next {
            Some(n) => cursor = Some(n),
            None => return Ok(items),
        }
    }
}

async fn execute(cli: Cli) -> Result<(), Failure> {
    let api = ApiClient::new(&cli).await?;
    let out = cli.output;
    let now = Utc::now();
    match cli.command {
        Command::Whoami => {
            let me: Whoami = api.get("/api/v1/whoami").await?;
            if !print_structured(out, &me)? {
                println!("Username: {}", me.username);
                println!("Groups:   {}", me.groups.join(", "));
                let rows: Vec<Vec<String>> = me
                    .bindings
                    .iter()
                    .map(|b| {
                        vec![
                            b.role.clone(),
                            b.system.clone().unwrap_or_else(|| "global".into()),
                            b.allowed_environments.join(","),
                            b.permissions.join(","),
                        ]
                    })
                    .collect();
                print!(
                    "\n{}",
                    table(&["ROLE", "SCOPE", "ENVIRONMENTS", "PERMISSIONS"], &rows)
                );
                if !me.system_roles.is_empty() {
                    let rows: Vec<Vec<String>> = me
                        .system_roles
                        .iter()
                        .map(|r| vec![r.system.clone(), r.role.clone()])
                        .collect();
                    print!("\n{}", table(&["SYSTEM", "RESOURCE ROLE"], &rows));
                }
            }
        }
        Command::Pending | Command::Tickets { .. } => {
            let path = match cli.command {
                Command::Tickets {
                    status,
                    system,
                    environment,
                    requester,
                    operation,
                } => format!(
                    "/api/v1/tickets{}",
                    query(&[
                        ("status", status),
                        ("system", system),
                        ("environment", environment),
                        ("requester", requester),
                        ("type", operation),
                    ])
                ),
                _ => "/api/v1/tickets?awaitingMe=true".to_string(),
            };
            let tickets = all_pages(&api, &path, usize::MAX, |p: TicketPage| {
                (p.items, p.next_cursor)
            })
            .await?;
            if !print_structured(out, &tickets)? {
                if tickets.is_empty() {
                    eprintln!("No tickets.");
                } else {
                    print!("{}", tickets_table(&tickets, now));
                }
            }
        }
        Command::Ticket { id } => {
            let t: Ticket = api.get(&format!("/api/v1/tickets/{id}")).await?;
            if !print_structured(out, &t)? {
                print!("{}", ticket_detail(&t));
            }
        }
        Command::Preview { id, overrides } => {
            let body = PreviewRequest {
                overrides: overrides.into(),
            };
            let p: Preview = api
                .call(
                    Method::POST,
                    &format!("/api/v1/tickets/{id}/preview"),
                    Some(&body),
                )
                .await?;
            if !print_structured(out, &p)? {
                let r = &p.resources;
                println!("Ticket:            {}", p.ticket_id);
                println!("Cluster:           {}", p.cluster);
                println!("Eligible clusters: {}", p.eligible_clusters.join(", "));
                println!("Storage class:     {}", dash(&p.storage_class));
                println!("Template version:  {}", p.template_version);
                println!("Instance size:     {}", p.instance_size);
                println!(
                    "CPU:               {}m request, {}m limit",
                    r.cpu_request_millis, r.cpu_limit_millis
                );
                println!(
                    "Memory:            {}Mi request, {}Mi limit",
                    r.memory_request_mib, r.memory_limit_mib
                );
                println!("Disk:              {}Gi", r.disk_gib);
                println!("VM names:          {}", p.vm_names.join(", "));
                for w in &p.warnings {
                    println!("Warning:           {w}");
                }
            }
        }
        Command::Approve {
            id,
            reason,
            overrides,
        } => {
            let body = ApproveRequest {
                reason,
                overrides: overrides.into(),
            };
            let t: Ticket = api
                .call(
                    Method::POST,
                    &format!("/api/v1/tickets/{id}/approve"),
                    Some(&body),
                )
                .await?;
            if !print_structured(out, &t)? {
                println!("ticket {id} approved");
                print!("{}", ticket_detail(&t));
            }
        }
        Command::Reject { id, reason } => decide(&api, out, id, "reject", reason).await?,
        Command::Cancel { id, reason } => decide(&api, out, id, "cancel", reason).await?,
        Command::Vms {
            system,
            service,
            environment,
            status,
        } => {
            let path = format!(
                "/api/v1/vms{}",
                query(&[
                    ("system", system),
                    ("service", service),
                    ("environment", environment),
                    ("status", status),
                ])
            );
            let vms = all_pages(&api, &path, usize::MAX, |p: VmPage| {
                (p.items, p.next_cursor)
            })
            .await?;
            if !print_structured(out, &vms)? {
                let rows: Vec<Vec<String>> = vms
                    .iter()
                    .map(|v| {
                        let status = match &v.status_reason {
                            Some(reason) => format!("{} ({reason})", v.status),
                            None => v.status.clone(),
                        };
                        vec![
                            v.name.clone(),
                            status,
                            format!("{}/{}", v.system, v.service),
                            v.environment.clone(),
                            dash(&v.cluster),
                            dash(&v.ip),
                            dash(&v.node),
                            age(v.created_at, now),
                        ]
                    })
                    .collect();
                if rows.is_empty() {
                    eprintln!("No VMs.");
                } else {
                    print!(
                        "{}",
                        table(
                            &[
                                "NAME", "STATUS", "SERVICE", "ENV", "CLUSTER", "IP", "NODE", "AGE"
                            ],
                            &rows
                        )
                    );
                }
            }
        }
        Command::Audit {
            actor,
            resource_type,
            resource_id,
            action,
            environment,
            since,
            until,
            limit,
        } => {
            let path = format!(
                "/api/v1/audit{}",
                query(&[
                    ("actor", actor),
                    ("resourceType", resource_type),
                    ("resourceId", resource_id),
                    ("action", action),
                    ("environment", environment),
                    ("since", since),
                    ("until", until),
                ])
            );
            let records =
                all_pages(&api, &path, limit, |p: AuditPage| (p.items, p.next_cursor)).await?;
            if !print_structured(out, &records)? {
                let rows: Vec<Vec<String>> = records
                    .iter()
                    .map(|r| {
                        vec![
                            r.id.to_string(),
                            r.occurred_at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                            r.action.clone(),
                            r.actor.clone(),
                            format!("{}/{}", r.resource_type, r.resource_name),
                            dash(&r.environment),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(&["ID", "TIME", "ACTION", "ACTOR", "RESOURCE", "ENV"], &rows)
                );
            }
        }
    }
    Ok(())
}

/// Rejects or cancels a ticket.
async fn decide(
    api: &ApiClient,
    out: Output,
    id: Uuid,
    verb: &str,
    reason: String,
) -> Result<(), Failure> {
    let t: Ticket = api
        .call(
            Method::POST,
            &format!("/api/v1/tickets/{id}/{verb}"),
            Some(&ReasonRequest { reason }),
        )
        .await?;
    if !print_structured(out, &t)? {
        println!("ticket {id} {}", t.status.to_lowercase());
    }
    Ok(())
}

/// Runs the plugin; returns the process exit code.
pub async fn run(cli: Cli) -> i32 {
    match execute(cli).await {
        Ok(()) => 0,
        Err(f) => {
            eprintln!("error: {}", f.message);
            f.code
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectl() {
        let now = Utc::now();
        let ago = |s| now - chrono::Duration::seconds(s);
        assert_eq!(age(ago(5), now), "5s");
        assert_eq!(age(ago(600), now), "10m");
        assert_eq!(age(ago(3 * 3600), now), "3h");
        assert_eq!(age(ago(3 * 86400), now), "3d");
        assert_eq!(age(now + chrono::Duration::seconds(3), now), "0s");
    }

    #[test]
    fn tables_align_columns() {
        let t = table(
            &["NAME", "STATUS"],
            &[vec!["a-long-name".into(), "Running".into()]],
        );
        assert_eq!(t, "NAME          STATUS\na-long-name   Running\n");
    }

    #[test]
    fn query_strings_encode_values_and_skip_unset() {
        assert_eq!(
            query(&[
                ("a", Some("x y&z".into())),
                ("b", None),
                ("c", Some("ok".into()))
            ]),
            "?a=x%20y%26z&c=ok"
        );
        assert_eq!(query(&[("a", None)]), "");
    }

    #[test]
    fn api_errors_map_to_documented_exit_codes() {
        let body = br#"{"code":"conflict","message":"ticket is already Approved","details":null}"#;
        let f = Failure::from_status(StatusCode::CONFLICT, body);
        assert_eq!(f.code, 6);
        assert_eq!(f.message, "conflict: ticket is already Approved");
        for (status, code) in [
            (401, 3),
            (403, 4),
            (404, 5),
            (400, 7),
            (422, 7),
            (429, 8),
            (503, 9),
            (500, 1),
        ] {
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(Failure::from_status(status, b"").code, code, "{status}");
        }
    }
}
