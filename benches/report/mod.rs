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
    std::fs::write(&path, updated).expect("write BENCHMARKS.md");
}
