//! Writing and verifying the audit log.

use super::AppError;
use crate::db;
use crate::db::audit::AuditEntry;
use crate::domain::audit_chain::{Anchor, ChainBreak, ChainVerifier};
use sqlx::PgPool;

/// Records one entry in a transaction of its own (for actions that write nothing else).
pub async fn record(pool: &PgPool, entry: &AuditEntry) -> Result<i64, AppError> {
    let mut tx = pool.begin().await?;
    let id = db::audit::append(&mut tx, entry).await?;
    tx.commit().await?;
    Ok(id)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub rows_checked: u64,
    /// The first bad row, if any.
    pub problem: Option<ChainBreak>,
}

const VERIFY_BATCH: i64 = 1000;

/// A verifier after checking one batch, and the batch's first break if any.
type CheckedBatch = (ChainVerifier, Result<(), ChainBreak>);

/// Walks the whole chain in id order, in batches, within one read-only snapshot so that
/// appends committed meanwhile cannot look like tampering.
pub async fn verify(pool: &PgPool) -> Result<VerifyReport, AppError> {
    verify_against(pool, None).await
}

/// As [`verify`], and the chain must still hold the row an exported [`Anchor`] recorded:
/// this catches the owner rewriting the whole chain with recomputed hashes.
pub async fn verify_against(
    pool: &PgPool,
    anchor: Option<&Anchor>,
) -> Result<VerifyReport, AppError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let mut verifier = match anchor {
        Some(anchor) => ChainVerifier::with_anchor(anchor.clone()),
        None => ChainVerifier::new(),
    };
    // Hashing a batch (on a blocking thread) overlaps reading the next one: verification
    // ran at half the rate of the reads alone (`make bench-audit`).
    let mut checking: Option<tokio::task::JoinHandle<CheckedBatch>> = None;
    let mut after = 0;
    loop {
        let rows = db::audit::rows_after(&mut tx, after, VERIFY_BATCH).await?;
        if let Some(previous) = checking.take() {
            // A panic while hashing is a bug: it goes on here, where it would have happened.
            let (checked, result) = previous
                .await
                .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
            verifier = checked;
            if let Err(problem) = result {
                return Ok(VerifyReport {
                    rows_checked: verifier.rows_checked(),
                    problem: Some(problem),
                });
            }
        }
        let Some(last) = rows.last() else { break };
        after = last.id;
        let mut batch_verifier = std::mem::take(&mut verifier);
        checking = Some(tokio::task::spawn_blocking(move || {
            let result = rows.iter().try_for_each(|row| batch_verifier.check(row));
            (batch_verifier, result)
        }));
    }
    let (head_id, head_hash, _) = db::audit::head(&mut tx).await?;
    let problem = verifier.finish(head_id, &head_hash).err();
    tx.commit().await?;
    Ok(VerifyReport {
        rows_checked: verifier.rows_checked(),
        problem,
    })
}

/// The chain head to export outside PostgreSQL: its row count and newest hash.
pub async fn anchor(pool: &PgPool) -> Result<Anchor, AppError> {
    let (_, hash, rows) = db::audit::head(&mut *pool.acquire().await?).await?;
    Ok(Anchor {
        rows: u64::try_from(rows).unwrap_or_default(),
        hash,
    })
}
