//! Retention: where a segment stands against `[retention]` (its period,
//! its category, holds and open cases that keep it), and the sweeper that
//! deletes what is due: first its `retention.deleted` entry, whose guard
//! re-checks the rules in sequence, then its object.
//!
//! This module must never delete a held segment, a segment linked to an
//! open case, or an object another live segment references; and never
//! delete an object before its `retention.deleted` entry is durable.

use std::sync::Arc;

use custos_core::entry::details::RetentionDeleted;
use custos_core::entry::{Actor, Details};
use custos_core::manifest::Timestamp;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::Serialize;

use super::{reject, CaseRecord, CaseStatus, GovernanceError, RetentionStatus, CASES, HOLDS};
use crate::append::{Append, GuardError, RejectionKind};
use crate::catalogue::{SegmentRecord, SEGMENTS};
use crate::error::{AppendError, ReadError};
use crate::ledger::Ledger;

/// Table: segment id → the seq (u64 BE) of its `retention.deleted` entry.
pub const DELETED: &str = "retention_deleted";

/// Reads a state-table row: committed (outside the writer) or as a batch
/// left it (inside a guard).
type RowReader<'a> = dyn Fn(&str, &[u8]) -> Result<Option<Vec<u8>>, crate::error::StoreError> + 'a;

const DAY_NANOS: i128 = 86_400 * 1_000_000_000;

/// When `segment`'s retention starts counting: the later of its
/// recording's end (the recorder's clock, which may be reset or wrong) and
/// the ledger's time of its `segment.ingested` entry (the ledger's clock).
/// Footage docked today is never older than today, whatever the recorder
/// says.
fn retention_start(recorded_end: Timestamp, ingested: Timestamp) -> i128 {
    recorded_end.unix_nanos().max(ingested.unix_nanos())
}

/// The ledger's time of `segment`'s `segment.ingested` entry.
fn ingest_time(ledger: &Ledger, segment: &SegmentRecord) -> Result<Timestamp, GovernanceError> {
    let raw = ledger.entry(segment.ingested_seq)?;
    let entry = custos_core::entry::Entry::parse(&raw).map_err(|e| {
        GovernanceError::Read(ReadError::Store(crate::error::StoreError::Malformed {
            what: format!(
                "entry {} (the ingest of segment {:?})",
                segment.ingested_seq, segment.segment_id
            ),
            why: e.to_string(),
        }))
    })?;
    Ok(entry.time)
}

fn retention_in(
    tx_get: &RowReader<'_>,
    retention: &custos_core::config::RetentionConfig,
    segment: &SegmentRecord,
    ingested: Timestamp,
    now: custos_core::manifest::Timestamp,
) -> Result<RetentionStatus, GuardError> {
    let min = custos_core::config::MIN_RETENTION_DAYS;
    let mut days = retention.default_days.max(min);
    let mut category = None;
    let mut open_cases = Vec::new();
    for c in &segment.cases {
        let Some(bytes) = tx_get(CASES, c.as_bytes())? else {
            continue;
        };
        let Ok(case) = serde_json::from_slice::<CaseRecord>(&bytes) else {
            continue;
        };
        if case.status == CaseStatus::Open {
            open_cases.push(case.id.clone());
        }
        if let Some(cat) = &case.category {
            if let Some(&d) = retention.categories.get(cat) {
                // The longest retention of any linked case wins.
                if d.max(min) > days || category.is_none() {
                    days = days.max(d.max(min));
                    category = Some(cat.clone());
                }
            }
        }
    }
    let held = tx_get(HOLDS, segment.segment_id.as_bytes())?.is_some();
    let deleted_seq = tx_get(DELETED, segment.segment_id.as_bytes())?
        .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
        .map(u64::from_be_bytes);
    let start = retention_start(segment.manifest.recorded.end, ingested);
    let until_nanos = start + i128::from(days) * DAY_NANOS;
    let until = custos_core::manifest::Timestamp::from_unix_nanos(until_nanos)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| "beyond the calendar".into());
    let eligible =
        !held && open_cases.is_empty() && deleted_seq.is_none() && now.unix_nanos() >= until_nanos;
    Ok(RetentionStatus {
        segment_id: segment.segment_id.clone(),
        days,
        category,
        until,
        held,
        open_cases,
        deleted_seq,
        eligible,
    })
}

/// Where `segment` stands against the retention rules now.
pub fn retention_status(
    ledger: &Ledger,
    retention: &custos_core::config::RetentionConfig,
    segment: &SegmentRecord,
) -> Result<RetentionStatus, GovernanceError> {
    let ingested = ingest_time(ledger, segment)?;
    let store = ledger.store();
    let get = |t: &str, k: &[u8]| store.table_get(t, k).map(|v| v.map(|v| v.to_vec()));
    retention_in(&get, retention, segment, ingested, ledger.now()).map_err(|e| match e {
        GuardError::Store(s) => GovernanceError::Read(ReadError::from(s)),
        GuardError::Rejected(r) => GovernanceError::Append(AppendError::Rejected(r)),
    })
}

/// What the sweeper did (or, in a dry run, would do) with one segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SweepItem {
    /// The segment's retention status when it was looked at.
    pub status: RetentionStatus,
    /// The `retention.deleted` entry (not in a dry run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_seq: Option<u64>,
    /// Why the object could not be deleted after its entry was written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The retention sweep: every segment whose retention ended, without a
/// hold and not linked to an open case, is deleted: first its
/// `retention.deleted` entry (whose guard re-checks the rules in sequence),
/// then its object. A dry run lists what would go and changes nothing.
/// Returns the eligible segments.
pub async fn sweep(
    ledger: &Ledger,
    retention: &custos_core::config::RetentionConfig,
    objects: Option<&Arc<dyn ObjectStore>>,
    dry_run: bool,
) -> Result<Vec<SweepItem>, GovernanceError> {
    if !dry_run && objects.is_none() {
        return Err(GovernanceError::Invalid(
            "the retention sweep needs the object store ([storage] url)".into(),
        ));
    }
    let mut segments = Vec::new();
    for row in ledger.store().table_scan(SEGMENTS, b"") {
        let (_, value) = row.map_err(ReadError::from)?;
        if let Ok(s) = serde_json::from_slice::<SegmentRecord>(&value) {
            segments.push(s);
        }
    }
    // Which segments name each object: the sweeper never deletes an object
    // that another live (not deleted) segment references. Since the
    // object-key index a second segment cannot take a key, but segments
    // recorded before it may share one.
    let mut referenced: std::collections::HashMap<String, Vec<String>> = Default::default();
    for s in &segments {
        referenced
            .entry(crate::catalogue::object_key_id(&s.manifest.object.key))
            .or_default()
            .push(s.segment_id.clone());
    }
    let actor = Actor {
        kind: custos_core::entry::ActorKind::Ledger,
        id: "retention-sweeper".into(),
    };
    let mut out = Vec::new();
    for segment in segments {
        let status = retention_status(ledger, retention, &segment)?;
        if !status.eligible {
            continue;
        }
        if dry_run {
            out.push(SweepItem {
                status,
                deleted_seq: None,
                error: None,
            });
            continue;
        }
        let details = Details::RetentionDeleted(RetentionDeleted {
            object_key: segment.manifest.object.key.clone(),
            object_url: segment.manifest.object.url.clone(),
            sha256: segment.manifest.digests.sha256.to_string(),
            retention_days: status.days,
            retention_until: status.until.clone(),
        });
        let policy = retention.clone();
        let record = segment.clone();
        let ingested = ingest_time(ledger, &segment)?;
        let appended = ledger
            .append(
                Append::new(actor.clone(), &segment.segment_id, details)?.guard(move |tx| {
                    let get = |t: &str, k: &[u8]| tx.get(t, k);
                    let now = tx.time();
                    let again = retention_in(&get, &policy, &record, ingested, now)?;
                    if !again.eligible {
                        return Err(reject(
                            RejectionKind::Conflict,
                            "not_eligible",
                            format!(
                                "segment {:?} is no longer eligible for deletion",
                                record.segment_id
                            ),
                        ));
                    }
                    let seq = tx.seq();
                    tx.insert(
                        DELETED,
                        record.segment_id.as_bytes(),
                        seq.to_be_bytes().to_vec(),
                    );
                    Ok(())
                }),
            )
            .await;
        let receipt = match appended {
            Ok(r) => r,
            // A hold or a link arrived in between: kept, as it must be.
            Err(AppendError::Rejected(r)) if r.code == "not_eligible" => continue,
            Err(e) => return Err(e.into()),
        };
        let mut error = None;
        let object = crate::catalogue::object_key_id(&segment.manifest.object.key);
        let mut others = Vec::new();
        for id in referenced.get(&object).into_iter().flatten() {
            if *id != segment.segment_id
                && ledger
                    .store()
                    .table_get(DELETED, id.as_bytes())
                    .map_err(ReadError::from)?
                    .is_none()
            {
                others.push(id.clone());
            }
        }
        if !others.is_empty() {
            error = Some(format!(
                "object {:?} kept: segment(s) {others:?} also reference it",
                segment.manifest.object.key
            ));
        } else if let Some(store) = objects {
            match object_store::path::Path::parse(&segment.manifest.object.key) {
                Ok(key) => {
                    #[expect(
                        clippy::disallowed_methods,
                        reason = "the retention sweep: the one place footage is deleted"
                    )]
                    let deleted = store.delete(&key).await;
                    if let Err(e) = deleted {
                        error = Some(format!(
                            "deleting object {:?}: {e}",
                            segment.manifest.object.key
                        ));
                    }
                }
                Err(e) => {
                    error = Some(format!("object key {:?}: {e}", segment.manifest.object.key))
                }
            }
        }
        out.push(SweepItem {
            status,
            deleted_seq: Some(receipt.seq),
            error,
        });
    }
    Ok(out)
}
