//! The audit hash chain: a pure function of a row's content and its predecessor's hash.
//!
//! Each row stores `prev_hash` (the hash of the row before it, or [`GENESIS_HASH`]) and
//! `hash = sha256(prev_hash "\n" canonical_json(row))`. Editing a row breaks its own hash;
//! removing or reordering rows breaks the link of the row after; removing the newest rows is
//! caught by the chain head kept beside the log.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first row.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The hashed content of one audit row (everything but `id` and the hashes).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditContent {
    pub occurred_at: DateTime<Utc>,
    pub action: String,
    pub actor: String,
    pub resource_type: String,
    pub resource_id: String,
    pub resource_name: String,
    pub parent_type: Option<String>,
    pub parent_id: Option<String>,
    pub environment: Option<String>,
    pub details: Value,
}

impl AuditContent {
    /// A stable encoding: JSON with sorted keys (serde_json's map is ordered), timestamps in
    /// RFC 3339 with microseconds, which is PostgreSQL's precision, so a row read back from
    /// the database encodes to the same bytes it was hashed from.
    pub fn canonical_json(&self) -> String {
        json!({
            "action": self.action,
            "actor": self.actor,
            "details": self.details,
            "environment": self.environment,
            "occurred_at": self.occurred_at.to_rfc3339_opts(SecondsFormat::Micros, true),
            "parent_id": self.parent_id,
            "parent_type": self.parent_type,
            "resource_id": self.resource_id,
            "resource_name": self.resource_name,
            "resource_type": self.resource_type,
        })
        .to_string()
    }
}

/// The hash of a row whose predecessor's hash is `prev_hash`.
pub fn row_hash(prev_hash: &str, content: &AuditContent) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(b"\n");
    hasher.update(content.canonical_json().as_bytes());
    hex::encode(hasher.finalize())
}

/// One stored row as read back for verification.
#[derive(Debug, Clone)]
pub struct StoredRow {
    pub id: i64,
    pub content: AuditContent,
    pub prev_hash: String,
    pub hash: String,
}

/// What is wrong with the first bad row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    #[error("audit row {id} was edited: its stored hash does not match its content")]
    Edited { id: i64 },
    #[error(
        "audit row {id} does not follow row {previous_id}: a row between them was removed or rows were reordered"
    )]
    BrokenLink { id: i64, previous_id: i64 },
    #[error("the first audit row {id} does not start the chain: earlier rows were removed")]
    BrokenStart { id: i64 },
    #[error(
        "the newest audit row is {last_id} but the chain head records row {head_id}: the newest rows were removed or the head was edited"
    )]
    HeadMismatch { last_id: i64, head_id: i64 },
}

/// Checks rows in id order, carrying state between batches so logs of any size stream.
#[derive(Debug, Default)]
pub struct ChainVerifier {
    previous: Option<(i64, String)>,
    rows_checked: u64,
}

impl ChainVerifier {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn rows_checked(&self) -> u64 {
        self.rows_checked
    }

    /// Checks the next row; the first error is the first bad row.
    pub fn check(&mut self, row: &StoredRow) -> Result<(), ChainBreak> {
        match &self.previous {
            None if row.prev_hash != GENESIS_HASH => {
                return Err(ChainBreak::BrokenStart { id: row.id });
            }
            Some((previous_id, previous_hash)) if &row.prev_hash != previous_hash => {
                return Err(ChainBreak::BrokenLink {
                    id: row.id,
                    previous_id: *previous_id,
                });
            }
            _ => {}
        }
        if row_hash(&row.prev_hash, &row.content) != row.hash {
            return Err(ChainBreak::Edited { id: row.id });
        }
        self.previous = Some((row.id, row.hash.clone()));
        self.rows_checked += 1;
        Ok(())
    }

    /// Compares the end of the chain with the recorded head.
    pub fn finish(&self, head_id: i64, head_hash: &str) -> Result<(), ChainBreak> {
        let (last_id, last_hash) = match &self.previous {
            Some((id, hash)) => (*id, hash.as_str()),
            None => (0, GENESIS_HASH),
        };
        if last_id != head_id || last_hash != head_hash {
            return Err(ChainBreak::HeadMismatch { last_id, head_id });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn content(action: &str) -> AuditContent {
        AuditContent {
            occurred_at: Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap(),
            action: action.into(),
            actor: "alice".into(),
            resource_type: "system".into(),
            resource_id: "1".into(),
            resource_name: "shop".into(),
            parent_type: None,
            parent_id: None,
            environment: Some("test".into()),
            details: json!({"b": 1, "a": [true, null]}),
        }
    }

    fn chain(actions: &[&str]) -> Vec<StoredRow> {
        let mut prev = GENESIS_HASH.to_string();
        actions
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let c = content(a);
                let hash = row_hash(&prev, &c);
                let row = StoredRow {
                    id: i as i64 + 1,
                    content: c,
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                };
                prev = hash;
                row
            })
            .collect()
    }

    fn verify(rows: &[StoredRow], head: (i64, &str)) -> Result<u64, ChainBreak> {
        let mut v = ChainVerifier::new();
        for r in rows {
            v.check(r)?;
        }
        v.finish(head.0, head.1)?;
        Ok(v.rows_checked())
    }

    #[test]
    fn canonical_json_sorts_keys_and_uses_microseconds() {
        let json = content("system.create").canonical_json();
        assert!(json.starts_with(
            r#"{"action":"system.create","actor":"alice","details":{"a":[true,null],"b":1}"#
        ));
        assert!(json.contains(r#""occurred_at":"2026-11-24T12:00:00.000000Z""#));
    }

    #[test]
    fn hash_depends_on_previous_hash_and_every_field() {
        let c = content("system.create");
        let base = row_hash(GENESIS_HASH, &c);
        assert_eq!(base.len(), 64);
        assert_ne!(base, row_hash(&"1".repeat(64), &c));
        let mut edited = c.clone();
        edited.actor = "mallory".into();
        assert_ne!(base, row_hash(GENESIS_HASH, &edited));
        let mut edited = c.clone();
        edited.details = json!({"b": 2, "a": [true, null]});
        assert_ne!(base, row_hash(GENESIS_HASH, &edited));
        let mut edited = c;
        edited.occurred_at += chrono::Duration::microseconds(1);
        assert_ne!(base, row_hash(GENESIS_HASH, &edited));
    }

    #[test]
    fn untouched_chain_verifies() {
        let rows = chain(&["system.create", "service.create", "vm.request"]);
        let head = rows.last().unwrap().hash.clone();
        assert_eq!(verify(&rows, (3, &head)), Ok(3));
        assert_eq!(verify(&[], (0, GENESIS_HASH)), Ok(0));
    }

    #[test]
    fn edited_row_is_named() {
        let mut rows = chain(&["a.b", "c.d", "e.f"]);
        let head = rows[2].hash.clone();
        rows[1].content.actor = "mallory".into();
        assert_eq!(verify(&rows, (3, &head)), Err(ChainBreak::Edited { id: 2 }));
    }

    #[test]
    fn removed_row_breaks_the_next_link() {
        let mut rows = chain(&["a.b", "c.d", "e.f"]);
        let head = rows[2].hash.clone();
        rows.remove(1);
        assert_eq!(
            verify(&rows, (3, &head)),
            Err(ChainBreak::BrokenLink {
                id: 3,
                previous_id: 1
            })
        );
        let mut rows = chain(&["a.b", "c.d"]);
        rows.remove(0);
        assert_eq!(
            verify(&rows, (2, GENESIS_HASH)),
            Err(ChainBreak::BrokenStart { id: 2 })
        );
    }

    #[test]
    fn reordered_rows_are_detected() {
        let mut rows = chain(&["a.b", "c.d", "e.f"]);
        let head = rows[2].hash.clone();
        rows.swap(0, 1);
        assert_eq!(
            verify(&rows, (3, &head)),
            Err(ChainBreak::BrokenStart { id: 2 })
        );
        let mut rows = chain(&["a.b", "c.d", "e.f"]);
        // Swap contents but keep ids in order, as an in-place UPDATE would.
        let (c1, c2) = (rows[1].content.clone(), rows[2].content.clone());
        rows[1].content = c2;
        rows[2].content = c1;
        assert_eq!(verify(&rows, (3, &head)), Err(ChainBreak::Edited { id: 2 }));
    }

    #[test]
    fn removed_newest_rows_are_caught_by_the_head() {
        let mut rows = chain(&["a.b", "c.d", "e.f"]);
        let head = rows[2].hash.clone();
        rows.pop();
        assert_eq!(
            verify(&rows, (3, &head)),
            Err(ChainBreak::HeadMismatch {
                last_id: 2,
                head_id: 3
            })
        );
    }
}
