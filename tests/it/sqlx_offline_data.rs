//! The committed sqlx query data (`.sqlx/`) must match the schema in `migrations/` and the
//! queries in `src/`: builds use it instead of a database, so a stale file would let code
//! compile against a schema that no longer exists. `make sqlx-prepare` regenerates it.

use serde_json::Value;
use sqlx::Executor;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::path::Path;

fn committed_queries() -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = std::fs::read_dir(".sqlx")
        .expect(".sqlx/ exists")
        .map(|e| {
            let path = e.unwrap().path();
            let json: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            (path.display().to_string(), json)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn sources(dir: &Path, out: &mut String) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push_str(&std::fs::read_to_string(&path).unwrap());
        }
    }
}

#[test]
fn every_committed_query_is_still_in_the_sources() {
    let mut all = String::new();
    sources(Path::new("src"), &mut all);
    let queries = committed_queries();
    assert!(!queries.is_empty());
    for (file, json) in queries {
        let query = json["query"].as_str().unwrap();
        assert!(
            all.contains(query),
            "{file} is stale (its query is gone from src/): run `make sqlx-prepare`"
        );
    }
}

#[sqlx::test(migrations = false)]
async fn committed_query_data_matches_the_migrated_schema(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let t = crate::common::setup(opts, connect).await;
    for (file, json) in committed_queries() {
        let query = json["query"].as_str().unwrap().to_string();
        let described = t
            .pool
            .describe(sqlx::SqlSafeStr::into_sql_str(sqlx::AssertSqlSafe(query)))
            .await
            .unwrap_or_else(|e| panic!("{file}: the query no longer fits the schema: {e}"));
        assert_eq!(
            serde_json::to_value(&described).unwrap(),
            json["describe"],
            "{file} does not match the schema in migrations/: run `make sqlx-prepare`"
        );
    }
}
