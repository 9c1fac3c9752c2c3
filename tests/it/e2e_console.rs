//! The web console in a real browser (headless Chromium through chromedriver) against
//! `shepherd run` on the simulator: bob approves alice's request from his inbox with a
//! cluster override and watches the VMs come up; alice cannot approve her own; forged,
//! cross-site and stale requests are refused.

use crate::common::browser::Browser;
use crate::common::e2e::{Env, start};
use crate::common::setup;
use crate::e2e_provisioning::{vm_request, wait_phase};
use axum::Router;
use axum::response::Html;
use axum::routing::get;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

/// Two test clusters, alice's System and Service, and alice's VmRequest for two VMs waiting
/// for approval; its ticket.
async fn pending_request(opts: PgPoolOptions, connect: PgConnectOptions) -> (Env, Uuid) {
    let mut env = start(setup(opts, connect).await).await;
    env.add_target("target-1", "test", true).await;
    env.add_target("target-2", "test", true).await;
    env.apply_shop().await;
    env.kubectl_ok(
        "alice",
        &["apply", "-f", "-"],
        Some(&vm_request("r1", "team-a", 2)),
    )
    .await;
    wait_phase(&env, "r1", &["PendingApproval"], 30).await;
    let ticket: Uuid = sqlx::query_scalar("SELECT id FROM tickets WHERE requester = 'alice'")
        .fetch_one(&env.db.pool)
        .await
        .unwrap();
    (env, ticket)
}

fn console_base(env: &Env) -> String {
    let addr = env.running.as_ref().unwrap().api_addr.unwrap();
    format!("https://{addr}")
}

async fn ticket_status(env: &Env, ticket: Uuid) -> String {
    sqlx::query_scalar("SELECT status FROM tickets WHERE id = $1")
        .bind(ticket)
        .fetch_one(&env.db.pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = false)]
async fn bob_approves_alices_request_from_his_inbox_onto_the_cluster_he_picks(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let (env, ticket) = pending_request(opts, connect).await;
    let browser = Browser::start(console_base(&env), false).await;

    // Not logged in: the console sends him to the login form.
    browser.goto("/ui/").await;
    assert_eq!(browser.path().await, "/ui/login");
    assert!(browser.unlabelled_fields().await.is_empty());

    // A token the cluster does not know is refused on the form.
    browser.log_in("not-a-token").await;
    assert_eq!(browser.path().await, "/ui/login");
    assert!(
        browser.text("p.error").await.contains("not accepted"),
        "{}",
        browser.text("main").await
    );

    browser.log_in(env.sim.token("bob").unwrap()).await;
    assert_eq!(browser.path().await, "/ui/");
    let row = browser
        .text(&format!("a[href='/ui/tickets/{ticket}']"))
        .await;
    assert!(row.contains("create 2 VMs in shop/web"), "{row}");
    let inbox = browser.text("main table").await;
    assert!(inbox.contains("alice") && inbox.contains("test"), "{inbox}");
    assert!(browser.unlabelled_fields().await.is_empty());
    browser.screenshot("console-inbox").await;

    // Filtering on prod leaves nothing; test shows it again.
    browser.goto("/ui/?environment=prod").await;
    assert_eq!(
        browser
            .count(&format!("a[href='/ui/tickets/{ticket}']"))
            .await,
        0
    );
    browser.goto("/ui/?environment=test&system=shop").await;
    browser
        .click(&format!("a[href='/ui/tickets/{ticket}']"))
        .await;
    assert_eq!(browser.path().await, format!("/ui/tickets/{ticket}"));

    // The preview, then the same with target-2 chosen.
    let eligible = browser.text("#preview").await;
    assert!(
        eligible.contains("target-1") && eligible.contains("target-2"),
        "{eligible}"
    );
    browser.select("#cluster", "target-2").await;
    browser.click("#update-preview").await;
    assert_eq!(browser.text("#preview-cluster").await, "target-2");
    let names = browser.text("#preview-names").await;
    assert_eq!(names.split(", ").count(), 2, "{names}");
    assert!(browser.text("#approve").await.contains("target-2"));
    assert!(browser.unlabelled_fields().await.is_empty());
    browser.fill("#approve-reason", "capacity ok").await;
    browser.screenshot("console-ticket").await;
    browser.click("#approve").await;

    // The decision is made; the VMs come up on target-2 and the page follows them by
    // itself (its script refreshes the list; nothing here reloads it).
    assert!(browser.text("p.notice").await.contains("Approved"));
    let progress = browser
        .wait_for_text("#progress", 120, |t| t.matches("Running").count() == 2)
        .await;
    assert_eq!(progress.matches("target-2").count(), 2, "{progress}");
    let (approver, clusters): (Option<String>, Vec<String>) = sqlx::query_as(
        "SELECT t.approver, array_agg(c.name) FROM tickets t JOIN vms v ON v.ticket_id = t.id
           JOIN clusters c ON c.id = v.cluster_id WHERE t.id = $1 GROUP BY t.approver",
    )
    .bind(ticket)
    .fetch_one(&env.db.pool)
    .await
    .unwrap();
    assert_eq!(approver.as_deref(), Some("bob"));
    assert_eq!(clusters, ["target-2", "target-2"]);
    // The audit row names bob.
    let approved_by: String = sqlx::query_scalar(
        "SELECT actor FROM audit_log WHERE action = 'approval.approve' AND resource_id = $1::text",
    )
    .bind(ticket)
    .fetch_one(&env.db.pool)
    .await
    .unwrap();
    assert_eq!(approved_by, "bob");

    // Nothing is left in his inbox.
    browser.goto("/ui/").await;
    assert!(browser.text("main").await.contains("Nothing is waiting"));
    browser.click("form.logout button").await;

    // alice sees her VMs running and stops one: a ticket through the same use case as a
    // VmOperation.
    browser.log_in(env.sim.token("alice").unwrap()).await;
    browser.goto("/ui/vms").await;
    let vms = browser.text("main table").await;
    assert_eq!(vms.matches("Running").count(), 2, "{vms}");
    assert!(browser.unlabelled_fields().await.is_empty());
    let first = browser.text("main table tbody tr td a").await;
    browser.press("main table tbody tr details summary").await;
    browser
        .select(&format!("select[id='op-{first}']"), "stop")
        .await;
    browser
        .fill(&format!("input[id='reason-{first}']"), "maintenance")
        .await;
    browser
        .click(&format!("form[action='/ui/vms/{first}/operations'] button"))
        .await;
    assert!(browser.path().await.starts_with("/ui/tickets/"));
    assert!(browser.text("h1").await.contains(&format!("stop {first}")));
    let (operation, requester): (String, String) = sqlx::query_as(
        "SELECT t.operation, t.requester FROM tickets t JOIN vms v ON v.id = t.vm_id WHERE v.name = $1",
    )
    .bind(&first)
    .fetch_one(&env.db.pool)
    .await
    .unwrap();
    assert_eq!((operation.as_str(), requester.as_str()), ("stop", "alice"));
    browser.close().await;
}

/// A page of another origin on the same site (another port of 127.0.0.1, over TLS) that
/// posts an approval to the console as soon as it loads, without the CSRF token.
async fn attacker_site(env: &Env, console: &str, ticket: Uuid) -> String {
    let page = format!(
        "<!doctype html><form method=post action='{console}/ui/tickets/{ticket}/approve'>\
         <input name=reason value=pwned></form><script>document.forms[0].submit()</script>"
    );
    let router = Router::new().route("/", get(move || async move { Html(page) }));
    let (cert, key) = env.webhook_tls();
    let listener = shepherd::http::tls::Listener::tls("127.0.0.1:0".parse().unwrap(), cert, key)
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(listener.run("attacker", router, std::future::pending()));
    format!("https://{addr}/")
}

#[sqlx::test(migrations = false)]
async fn nobody_approves_their_own_request_and_forged_or_stale_posts_are_refused(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let (env, ticket) = pending_request(opts, connect).await;
    let base = console_base(&env);

    // alice, on a phone-sized screen: her ticket offers no approval, only withdrawing.
    let alice = Browser::start(base.clone(), true).await;
    alice.log_in(env.sim.token("alice").unwrap()).await;
    assert_eq!(alice.path().await, "/ui/");
    alice.goto("/ui/requests").await;
    alice
        .click(&format!("a[href='/ui/tickets/{ticket}']"))
        .await;
    assert_eq!(alice.count("#approve").await, 0);
    assert_eq!(alice.count("#reject").await, 0);
    assert_eq!(alice.count("#preview").await, 0);
    assert_eq!(alice.count("#cancel").await, 1);
    assert!(
        !alice.overflows_horizontally().await,
        "the page must reflow on a phone"
    );
    assert!(alice.unlabelled_fields().await.is_empty());
    // A POST she forges (with her own valid CSRF token) is refused by the use case.
    let csrf = alice.csrf_token().await;
    let (status, body) = alice
        .fetch(
            "POST",
            &format!("/ui/tickets/{ticket}/approve"),
            &format!("csrf={csrf}&reason=mine"),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("requested"), "{body}");
    assert_eq!(ticket_status(&env, ticket).await, "PendingApproval");
    // What she may not see does not exist.
    let (status, _) = alice
        .fetch("GET", &format!("/ui/tickets/{}", Uuid::new_v4()), "")
        .await;
    assert_eq!(status, 404);
    alice.close().await;

    // bob, logged in, visits a page of another origin that posts an approval for him.
    let bob = Browser::start(base.clone(), false).await;
    bob.log_in(env.sim.token("bob").unwrap()).await;
    assert_eq!(bob.path().await, "/ui/");
    let attacker = attacker_site(&env, &base, ticket).await;
    bob.client.goto(&attacker).await.unwrap();
    bob.wait_for_text("main", 30, |t| t.contains("CSRF")).await;
    assert_eq!(bob.path().await, format!("/ui/tickets/{ticket}/approve"));
    assert_eq!(ticket_status(&env, ticket).await, "PendingApproval");
    // The same from the console's own origin without the token: refused too.
    bob.goto(&format!("/ui/tickets/{ticket}")).await;
    let (status, body) = bob
        .fetch("POST", &format!("/ui/tickets/{ticket}/reject"), "reason=no")
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("CSRF"), "{body}");
    assert_eq!(ticket_status(&env, ticket).await, "PendingApproval");

    // His session expires: the next page is the login form.
    sqlx::query(
        "UPDATE console_sessions SET created_at = now() - interval '2 hours',
                expires_at = now() - interval '1 second' WHERE username = 'bob'",
    )
    .execute(&env.db.pool)
    .await
    .unwrap();
    bob.goto("/ui/").await;
    assert_eq!(bob.path().await, "/ui/login");

    // `kubectl shepherd ui` logs him in again with his kubeconfig's token: a link that
    // works once.
    let (code, out, err) = env.plugin("bob", &["ui", "--no-browser"]).await;
    assert_eq!(code, 0, "{err}");
    let link = out.lines().next().unwrap().to_string();
    assert!(link.starts_with(&format!("{base}/ui/login?code=")), "{out}");
    bob.client.goto(&link).await.unwrap();
    bob.click("#use-link").await;
    assert_eq!(bob.path().await, "/ui/");
    assert!(bob.text("header").await.contains("Signed in as bob"));
    let method: serde_json::Value = sqlx::query_scalar(
        "SELECT details->'method' FROM audit_log WHERE action = 'console.login' ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&env.db.pool)
    .await
    .unwrap();
    assert_eq!(method, "login link");
    // Logged out: the session is gone from the server too, and the link does not work
    // twice.
    bob.click("form.logout button").await;
    assert_eq!(bob.path().await, "/ui/login");
    let live: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM console_sessions WHERE username = 'bob' AND expires_at > now()",
    )
    .fetch_one(&env.db.pool)
    .await
    .unwrap();
    assert_eq!(live, 0);
    bob.goto("/ui/").await;
    assert_eq!(bob.path().await, "/ui/login");
    bob.client.goto(&link).await.unwrap();
    bob.click("#use-link").await;
    assert_eq!(bob.path().await, "/ui/login");
    assert!(bob.text("p.error").await.contains("used already"));
    bob.close().await;
}
