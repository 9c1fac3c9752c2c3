//! The console's page frame, the login and error pages, its two assets and small display
//! helpers. Templates are maud macros: checked by the compiler, every value escaped.

use crate::app::sessions::Session;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};

const STYLESHEET: &str = include_str!("assets/console.css");
const SCRIPT: &str = include_str!("assets/console.js");

pub async fn stylesheet() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        STYLESHEET,
    )
}

pub async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
}

/// The sections of the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Inbox,
    Requests,
    Vms,
    Audit,
}

const SECTIONS: [(Section, &str, &str); 4] = [
    (Section::Inbox, "/ui/", "Inbox"),
    (Section::Requests, "/ui/requests", "My requests"),
    (Section::Vms, "/ui/vms", "VMs"),
    (Section::Audit, "/ui/audit", "Audit"),
];

fn document(title: &str, header: Markup, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · KubeVirt Shepherd" }
                link rel="stylesheet" href="/ui/assets/console.css";
                script src="/ui/assets/console.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top { (header) }
                main #main tabindex="-1" { (body) }
            }
        }
    }
}

/// A page of a logged-in user: the navigation (the current section marked), who they are
/// and the logout button.
pub fn page(session: &Session, current: Section, title: &str, body: Markup) -> Markup {
    let header = html! {
        a.brand href="/ui/" { "KubeVirt Shepherd" }
        nav aria-label="Main" {
            ul {
                @for (section, href, label) in SECTIONS {
                    li {
                        @if section == current {
                            a href=(href) aria-current="page" { (label) }
                        } @else {
                            a href=(href) { (label) }
                        }
                    }
                }
            }
        }
        form.logout method="post" action="/ui/logout" {
            input type="hidden" name="csrf" value=(session.csrf_token);
            span.user { "Signed in as " strong { (session.caller.username) } }
            button type="submit" { "Log out" }
        }
    };
    document(title, header, body)
}

/// The login form; with `code` (a link from `kubectl shepherd ui`), a button that uses it.
pub fn login_page(nonce: &str, error: Option<&str>, code: Option<&str>) -> Markup {
    let header = html! { span.brand { "KubeVirt Shepherd" } };
    document(
        "Log in",
        header,
        html! {
            h1 { "Log in" }
            @if let Some(error) = error {
                p.error role="alert" { (error) }
            }
            @if let Some(code) = code {
                form.login method="post" action="/ui/login" {
                    input type="hidden" name="csrf" value=(nonce);
                    input type="hidden" name="code" value=(code);
                    p { "You opened a login link from " code { "kubectl shepherd ui" } "." }
                    button #use-link type="submit" { "Log in with this link" }
                }
                p { a href="/ui/login" { "Log in with a token instead" } }
            } @else {
                form.login method="post" action="/ui/login" {
                    input type="hidden" name="csrf" value=(nonce);
                    label for="token" { "Bearer token" }
                    p.hint #token-hint {
                        "A Kubernetes token of the management cluster, checked with TokenReview. "
                        "`kubectl shepherd ui` logs you in with your kubeconfig's; "
                        "or paste the output of `kubectl create token NAME`."
                    }
                    input #token type="password" name="token" autocomplete="off" required
                        aria-describedby="token-hint";
                    button type="submit" { "Log in" }
                }
            }
        },
    )
}

pub fn error_page(status: StatusCode, message: &str) -> Markup {
    let header = html! { a.brand href="/ui/" { "KubeVirt Shepherd" } };
    document(
        status.canonical_reason().unwrap_or("Error"),
        header,
        html! {
            h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("Error")) }
            p.error role="alert" { (message) }
            p { a href="/ui/" { "Back to the inbox" } }
        },
    )
}

/// "3 h ago", "2 days ago": how long ago, coarsely.
pub fn age(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let seconds = (now - at).num_seconds().max(0);
    match seconds {
        s if s < 60 => "just now".into(),
        s if s < 3600 => format!("{} min ago", s / 60),
        s if s < 86_400 => format!("{} h ago", s / 3600),
        s if s < 2 * 86_400 => "1 day ago".into(),
        s => format!("{} days ago", s / 86_400),
    }
}

/// Waiting more than a day is worth a second look.
pub fn is_stale(at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    now - at > chrono::Duration::days(1)
}

pub fn timestamp(at: DateTime<Utc>) -> Markup {
    html! { time datetime=(at.to_rfc3339()) { (at.format("%Y-%m-%d %H:%M UTC")) } }
}

/// A status as a badge whose class names its kind (for colour; the text says it too).
pub fn status_badge(status: &str) -> Markup {
    let kind = match status {
        "Succeeded" | "Running" | "Approved" => "good",
        "Failed" | "Rejected" | "PartiallySucceeded" | "Unschedulable" | "Error" => "bad",
        "Cancelled" | "Stopped" | "Deleted" => "neutral",
        _ => "busy",
    };
    html! { span class={ "badge " (kind) } { (status) } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_are_coarse_and_over_a_day_is_stale() {
        let now = Utc::now();
        let ago = |s: i64| now - chrono::Duration::seconds(s);
        assert_eq!(age(ago(5), now), "just now");
        assert_eq!(age(ago(125), now), "2 min ago");
        assert_eq!(age(ago(7200), now), "2 h ago");
        assert_eq!(age(ago(90_000), now), "1 day ago");
        assert_eq!(age(ago(3 * 86_400), now), "3 days ago");
        assert!(!is_stale(ago(86_000), now));
        assert!(is_stale(ago(86_401), now));
    }

    #[test]
    fn pages_carry_no_inline_script_or_style() {
        let page = login_page("nonce", Some("<b>bad</b>"), None).into_string();
        assert!(!page.contains("style="), "{page}");
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;b&gt;bad"), "values are escaped: {page}");
    }
}
