//! The audit hash chain: a pure function of a row's content and its predecessor's hash.
//!
//! Each row stores `prev_hash` (the hash of the row before it, or [`GENESIS_HASH`]) and
//! `hash = sha256(prev_hash "\n" canonical_json(row))`. Editing a row breaks its own hash;
//! removing or reordering rows breaks the link of the row after; removing the newest rows is
//! caught by the chain head kept beside the log.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

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
    #[error(
        "audit row {id} is row {rows} of the chain but its hash differs from the anchor exported \
         when the chain had {rows} rows: the chain was rewritten since the anchor was taken"
    )]
    AnchorMismatch { rows: u64, id: i64 },
    #[error(
        "the anchor records {anchor_rows} rows but the chain has {rows}: rows were removed since \
         the anchor was taken"
    )]
    AnchorBeyondEnd { anchor_rows: u64, rows: u64 },
}

/// The chain head as exported outside PostgreSQL (a log line, a ConfigMap): how many rows
/// the chain had and the hash of the last one. A chain rewritten whole, hashes recomputed,
/// verifies on its own but not against an anchor taken before. Written `ROWS:HASH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    pub rows: u64,
    pub hash: String,
}

impl fmt::Display for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.rows, self.hash)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an audit anchor is ROWS:HASH (a row count and 64 lowercase hex digits), not {0:?}")]
pub struct AnchorParseError(String);

impl FromStr for Anchor {
    type Err = AnchorParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || AnchorParseError(s.to_string());
        let (rows, hash) = s.trim().split_once(':').ok_or_else(invalid)?;
        let rows = rows.parse().map_err(|_| invalid())?;
        let well_formed = hash.len() == 64
            && hash
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !well_formed {
            return Err(invalid());
        }
        Ok(Anchor {
            rows,
            hash: hash.to_string(),
        })
    }
}

/// Checks rows in id order, carrying state between batches so logs of any size stream.
#[derive(Debug, Default)]
pub struct ChainVerifier {
    previous: Option<(i64, String)>,
    rows_checked: u64,
    anchor: Option<Anchor>,
}

impl ChainVerifier {
    pub fn new() -> Self {
        Self::default()
    }

    /// Also checks that the chain still holds the row `anchor` recorded.
    pub fn with_anchor(anchor: Anchor) -> Self {
        Self {
            anchor: Some(anchor),
            ..Self::default()
        }
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
        if let Some(anchor) = &self.anchor
            && anchor.rows == self.rows_checked
            && anchor.hash != row.hash
        {
            return Err(ChainBreak::AnchorMismatch {
                rows: anchor.rows,
                id: row.id,
            });
        }
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
        match &self.anchor {
            Some(anchor) if anchor.rows > self.rows_checked => Err(ChainBreak::AnchorBeyondEnd {
                anchor_rows: anchor.rows,
                rows: self.rows_checked,
            }),
            Some(anchor) if anchor.rows == 0 && anchor.hash != GENESIS_HASH => {
                Err(ChainBreak::AnchorMismatch { rows: 0, id: 0 })
            }
            _ => Ok(()),
        }
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
        verify_with(ChainVerifier::new(), rows, head)
    }

    fn verify_with(
        mut v: ChainVerifier,
        rows: &[StoredRow],
        head: (i64, &str),
    ) -> Result<u64, ChainBreak> {
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

    #[test]
    fn anchors_parse_and_print_as_rows_colon_hash() {
        let hash = "ab".repeat(32);
        let anchor: Anchor = format!("42:{hash}").parse().unwrap();
        assert_eq!(
            anchor,
            Anchor {
                rows: 42,
                hash: hash.clone()
            }
        );
        assert_eq!(anchor.to_string(), format!("42:{hash}"));
        for bad in [
            "",
            "42",
            ":abc",
            "x:abc",
            &format!("42:{}", "AB".repeat(32)),
            "42:abcd",
        ] {
            assert!(bad.parse::<Anchor>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_chain_rewritten_whole_fails_against_an_earlier_anchor() {
        let honest = chain(&["a", "b", "c", "d"]);
        let anchor = Anchor {
            rows: 3,
            hash: honest[2].hash.clone(),
        };
        let head = (4, honest[3].hash.clone());
        assert_eq!(
            verify_with(
                ChainVerifier::with_anchor(anchor.clone()),
                &honest,
                (head.0, &head.1)
            ),
            Ok(4),
            "rows appended after the anchor are fine"
        );
        // The owner rewrites row 2 and recomputes every hash and the head.
        let rewritten = chain(&["a", "B", "c", "d"]);
        let new_head = (4, rewritten[3].hash.clone());
        assert_eq!(verify(&rewritten, (new_head.0, &new_head.1)), Ok(4));
        assert_eq!(
            verify_with(
                ChainVerifier::with_anchor(anchor.clone()),
                &rewritten,
                (new_head.0, &new_head.1)
            ),
            Err(ChainBreak::AnchorMismatch { rows: 3, id: 3 })
        );
        // Or cuts the chain back before the anchor.
        let cut = chain(&["a", "b"]);
        assert_eq!(
            verify_with(ChainVerifier::with_anchor(anchor), &cut, (2, &cut[1].hash)),
            Err(ChainBreak::AnchorBeyondEnd {
                anchor_rows: 3,
                rows: 2
            })
        );
    }
}
