//! Each subcommand: its REST call (paths from [`shepherd_types::api::paths`]) and what it
//! prints.

use crate::cli::{Cli, Command, Output};
use crate::client::{ApiClient, Failure, query};
use crate::exit_code::ExitCode;
use crate::output::{print_structured, terminal_safe};
use crate::views;
use chrono::Utc;
use shepherd_types::api::{
    ApproveRequest, AuditPage, ConsoleLoginLink, Orphan, Preview, PreviewRequest, ReasonRequest,
    Snapshot, Ticket, TicketPage, VmPage, Whoami, paths,
};
use uuid::Uuid;

/// Runs the plugin; returns the process exit code.
pub async fn run(cli: Cli) -> ExitCode {
    match execute(cli).await {
        Ok(()) => ExitCode::Success,
        Err(f) => {
            eprintln!("{}", error_line(&f));
            f.code
        }
    }
}

/// The `error: ...` line of a failure. Its message may quote the server (an error body, a
/// serde error on its answer), so it is escaped.
fn error_line(f: &Failure) -> String {
    format!("error: {}", terminal_safe(&f.message))
}

/// Starts the user's browser on `url`: `$BROWSER` when set, else the desktop's opener.
fn open_browser(url: &str) -> Result<(), String> {
    let opener = std::env::var("BROWSER")
        .ok()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| {
            if cfg!(target_os = "macos") {
                "open"
            } else {
                "xdg-open"
            }
            .to_string()
        });
    std::process::Command::new(&opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(drop)
        .map_err(|e| format!("{opener}: {e}"))
}

/// A ticket's path: `path` with `{id}` filled in.
fn ticket_path(path: &str, id: Uuid) -> String {
    paths::fill(path, &[("id", &id.to_string())])
}

async fn execute(cli: Cli) -> Result<(), Failure> {
    let api = ApiClient::new(&cli).await?;
    let out = cli.output;
    let now = Utc::now();
    let server = cli.server.clone().unwrap_or_default();
    match cli.command {
        Command::Ui { no_browser } => {
            let link: ConsoleLoginLink = api
                .post(paths::CONSOLE_LOGIN_LINKS, &serde_json::json!({}))
                .await?;
            let url = format!("{}{}", server.trim_end_matches('/'), link.path);
            if !print_structured(out, &link)? {
                println!(
                    "{}\n(works once, until {})",
                    terminal_safe(&url),
                    link.expires_at.format("%H:%M:%S UTC")
                );
                if !no_browser && let Err(why) = open_browser(&url) {
                    eprintln!("Could not start a browser ({why}): open the link above yourself.");
                }
            }
        }
        Command::Whoami => {
            let me: Whoami = api.get(paths::WHOAMI).await?;
            if !print_structured(out, &me)? {
                print!("{}", views::whoami(&me));
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
                    "{}{}",
                    paths::TICKETS,
                    query(&[
                        ("status", status),
                        ("system", system),
                        ("environment", environment),
                        ("requester", requester),
                        ("type", operation),
                    ])
                ),
                _ => format!("{}?awaitingMe=true", paths::TICKETS),
            };
            let tickets = api
                .all_pages(&path, usize::MAX, |p: TicketPage| (p.items, p.next_cursor))
                .await?;
            if !print_structured(out, &tickets)? {
                if tickets.is_empty() {
                    eprintln!("No tickets.");
                } else {
                    print!("{}", views::tickets(&tickets, now));
                }
            }
        }
        Command::Ticket { id } => {
            let t: Ticket = api.get(&ticket_path(paths::TICKET, id)).await?;
            if !print_structured(out, &t)? {
                print!("{}", views::ticket(&t));
            }
        }
        Command::Preview { id, overrides } => {
            let body = PreviewRequest {
                overrides: overrides.into(),
            };
            let p: Preview = api
                .post(&ticket_path(paths::TICKET_PREVIEW, id), &body)
                .await?;
            if !print_structured(out, &p)? {
                print!("{}", views::preview(&p));
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
                .post(&ticket_path(paths::TICKET_APPROVE, id), &body)
                .await?;
            if !print_structured(out, &t)? {
                println!("ticket {id} approved");
                print!("{}", views::ticket(&t));
            }
        }
        Command::Reject { id, reason } => {
            decide(&api, out, id, paths::TICKET_REJECT, reason).await?
        }
        Command::Cancel { id, reason } => {
            decide(&api, out, id, paths::TICKET_CANCEL, reason).await?
        }
        Command::Vms {
            system,
            service,
            environment,
            status,
        } => {
            let path = format!(
                "{}{}",
                paths::VMS,
                query(&[
                    ("system", system),
                    ("service", service),
                    ("environment", environment),
                    ("status", status),
                ])
            );
            let vms = api
                .all_pages(&path, usize::MAX, |p: VmPage| (p.items, p.next_cursor))
                .await?;
            if !print_structured(out, &vms)? {
                if vms.is_empty() {
                    eprintln!("No VMs.");
                } else {
                    print!("{}", views::vms(&vms, now));
                }
            }
        }
        Command::Orphans => {
            let orphans: Vec<Orphan> = api.get(paths::ORPHANS).await?;
            if !print_structured(out, &orphans)? {
                if orphans.is_empty() {
                    eprintln!("No orphaned VMs.");
                } else {
                    print!("{}", views::orphans(&orphans, now));
                }
            }
        }
        Command::Snapshots { vm } => {
            let path = paths::fill(paths::VM_SNAPSHOTS, &[("name", vm.as_str())]);
            let snapshots: Vec<Snapshot> = api.get(&path).await?;
            if !print_structured(out, &snapshots)? {
                if snapshots.is_empty() {
                    eprintln!("No snapshots of VM {}.", terminal_safe(&vm));
                } else {
                    print!("{}", views::snapshots(&snapshots, now));
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
                "{}{}",
                paths::AUDIT,
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
            let records = api
                .all_pages(&path, limit, |p: AuditPage| (p.items, p.next_cursor))
                .await?;
            if !print_structured(out, &records)? {
                print!("{}", views::audit(&records));
            }
        }
    }
    Ok(())
}

/// Rejects or cancels a ticket: `path` is [`paths::TICKET_REJECT`] or
/// [`paths::TICKET_CANCEL`].
async fn decide(
    api: &ApiClient,
    out: Output,
    id: Uuid,
    path: &str,
    reason: String,
) -> Result<(), Failure> {
    let t: Ticket = api
        .post(&ticket_path(path, id), &ReasonRequest { reason })
        .await?;
    if !print_structured(out, &t)? {
        println!("ticket {id} {}", terminal_safe(&t.status.to_lowercase()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_from_the_server_are_escaped() {
        let body = br#"{"code":"forbidden","message":"no\u001b]0;owned\u0007\u001b[2J\r\nerror: fake","details":null}"#;
        let f = Failure::from_status(http::StatusCode::FORBIDDEN, body);
        assert_eq!(
            error_line(&f),
            r"error: forbidden: no\x1b]0;owned\x07\x1b[2J\r\nerror: fake"
        );
        // A body that is not an error body is quoted, invalid UTF-8 replaced, then escaped
        // (here a lone 0x9b byte, then U+009B, a C1 CSI, in UTF-8).
        let body = b"\x1b[31mproxy\x9b\xc2\x9b";
        let f = Failure::from_status(http::StatusCode::BAD_GATEWAY, body);
        assert_eq!(error_line(&f), "error: 502: \\x1b[31mproxy\u{fffd}\\u{9b}");
    }

    #[test]
    fn ticket_paths_carry_the_id() {
        let id = Uuid::nil();
        let expected = |verb: &str| format!("/api/v1/tickets/{id}{verb}");
        assert_eq!(ticket_path(paths::TICKET, id), expected(""));
        assert_eq!(ticket_path(paths::TICKET_PREVIEW, id), expected("/preview"));
        assert_eq!(ticket_path(paths::TICKET_APPROVE, id), expected("/approve"));
        assert_eq!(ticket_path(paths::TICKET_REJECT, id), expected("/reject"));
        assert_eq!(ticket_path(paths::TICKET_CANCEL, id), expected("/cancel"));
    }
}
