//! Every bench includes this module and uses a part of it.
#![allow(dead_code)]

//! What every benchmark shares: a scratch database on the server `DATABASE_URL` names, and
//! BENCHMARKS.md, where each benchmark replaces its own section (figure, baseline, ratio,
//! goal, the machine and the command).

use std::path::PathBuf;

use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// A database created for one run and dropped at its end.
pub struct ScratchDatabase {
    admin_url: String,
    name: String,
    pub url: String,
}

impl ScratchDatabase {
    pub async fn create(purpose: &str) -> ScratchDatabase {
        let admin_url = std::env::var("DATABASE_URL")
            .expect("DATABASE_URL names a PostgreSQL server (make bench starts one)");
        let (prefix, _) = admin_url
            .rsplit_once('/')
            .expect("DATABASE_URL has a database path");
        let name = format!("shepherd_bench_{purpose}_{}", std::process::id());
        let mut admin = PgConnection::connect(&admin_url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap();
        ScratchDatabase {
            url: format!("{prefix}/{name}"),
            admin_url,
            name,
        }
    }

    pub async fn drop(self) {
        let mut admin = PgConnection::connect(&self.admin_url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut admin)
        .await
        .unwrap();
    }
}

/// One figure against its baseline.
pub struct Row {
    pub figure: String,
    pub value: String,
    pub baseline: String,
    /// value ÷ baseline, both as rates (higher is better) unless the figure says otherwise.
    pub ratio: f64,
    pub goal: String,
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<u64>().ok())
        })
        .map_or("unknown memory".to_string(), |kib| {
            format!("{:.1} GiB", kib as f64 / 1024.0 / 1024.0)
        });
    format!("{cores} cores, {memory}")
}

/// Prints the rows and replaces the section `title` of BENCHMARKS.md with them.
pub fn write_section(title: &str, command: &str, notes: &str, rows: &[Row]) {
    let mut section = format!(
        "## {title}\n\nMeasured {} on {} with `{command}`. {notes}\n\n\
         | figure | value | baseline (same run) | ratio | goal |\n|---|---|---|---|---|\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        machine(),
    );
    for row in rows {
        println!(
            "{}: {} against {} (ratio {:.3}); goal {}",
            row.figure, row.value, row.baseline, row.ratio, row.goal
        );
        section.push_str(&format!(
            "| {} | {} | {} | {:.3} | {} |\n",
            row.figure, row.value, row.baseline, row.ratio, row.goal
        ));
    }
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md");
    let existing = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        "# Benchmarks\n\nEach figure is a ratio to a baseline measured in the same run on the \
         same machine (`make bench`; each section's command runs it alone). Absolute figures \
         do not compare between runs or machines; ratios do.\n"
            .to_string()
    });
    // A blank line before the next section's heading.
    section.push('\n');
    let heading = format!("## {title}\n");
    let updated = match existing.find(&heading) {
        Some(start) => {
            let end = existing[start + heading.len()..]
                .find("\n## ")
                .map_or(existing.len(), |n| start + heading.len() + n + 1);
            format!("{}{section}{}", &existing[..start], &existing[end..])
        }
        None => format!(
            "{}\n{section}",
            existing.trim_end_matches('\n').to_string() + "\n"
        ),
    };
    std::fs::write(&path, updated.trim_end().to_string() + "\n").expect("write BENCHMARKS.md");
}

/// Where PostgreSQL spent its time, from `pg_stat_statements` (the server `make db` starts
/// preloads it): call [`StatementProfile::start`] before the work and
/// [`StatementProfile::finish`] after it.
pub struct StatementProfile {
    available: bool,
}

/// One statement's share of a profiled phase.
pub struct StatementCost {
    pub query: String,
    pub calls: i64,
    pub total_ms: f64,
}

impl StatementProfile {
    pub async fn start(pool: &sqlx::PgPool) -> StatementProfile {
        let available = sqlx::raw_sql(
            "CREATE EXTENSION IF NOT EXISTS pg_stat_statements; SELECT pg_stat_statements_reset()",
        )
        .execute(pool)
        .await
        .is_ok();
        if !available {
            println!(
                "pg_stat_statements is not preloaded on this server: no statement profile \
                 (`make db` starts PostgreSQL with it)"
            );
        }
        StatementProfile { available }
    }

    /// The statements of this database by total execution time, most expensive first.
    pub async fn finish(self, pool: &sqlx::PgPool) -> Vec<StatementCost> {
        if !self.available {
            return Vec::new();
        }
        let rows: Vec<(String, i64, f64)> = sqlx::query_as(
            "SELECT regexp_replace(query, '\\s+', ' ', 'g'), calls, total_exec_time
             FROM pg_stat_statements
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
               AND query NOT ILIKE '%pg_stat_statements%'
             ORDER BY total_exec_time DESC",
        )
        .fetch_all(pool)
        .await
        .unwrap_or_default();
        rows.into_iter()
            .map(|(query, calls, total_ms)| StatementCost {
                query,
                calls,
                total_ms,
            })
            .collect()
    }
}

/// A profile as text: the server's total execution time against the wall time of the phase,
/// statements per unit of work and the `top` most expensive statements.
pub fn describe_profile(
    costs: &[StatementCost],
    wall: std::time::Duration,
    units: usize,
    top: usize,
) -> String {
    if costs.is_empty() {
        return "no statement profile".into();
    }
    let total_ms: f64 = costs.iter().map(|c| c.total_ms).sum();
    let calls: i64 = costs.iter().map(|c| c.calls).sum();
    let mut text = format!(
        "server execution {total_ms:.0} ms of {:.0} ms wall ({:.0}% of one core), {:.1} \
         statements and {:.2} ms of execution per unit; most expensive:\n",
        wall.as_secs_f64() * 1e3,
        total_ms / (wall.as_secs_f64() * 1e3) * 100.0,
        calls as f64 / units as f64,
        total_ms / units as f64,
    );
    for cost in costs.iter().take(top) {
        let query: String = cost.query.chars().take(110).collect();
        text.push_str(&format!(
            "  {:>7.0} ms {:>6} calls  {query}\n",
            cost.total_ms, cost.calls
        ));
    }
    text
}

/// A whole-number setting from the environment, or `default`.
pub fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `work(n)` for n in 0..`units`, spread over `clients` concurrent tasks; the wall time.
pub async fn spread<F, Fut>(clients: usize, units: usize, work: F) -> std::time::Duration
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let start = std::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..clients {
        let work = work.clone();
        tasks.spawn(async move {
            for n in (client..units).step_by(clients) {
                work(n).await;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("a client failed");
    }
    start.elapsed()
}
