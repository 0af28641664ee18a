//! Completeness of each recorder's footage (全过程覆盖) on the record: the
//! ledger's `coverage.gap` entries and a supervisor's `coverage.explained`.
//!
//! The findings come from the manifests in the catalogue, judged by
//! [`custos_core::coverage::findings`] over **all** of a recorder's files,
//! never from what a dock says: a dock cannot hide a gap, and a file
//! missing between two dockings is seen. A recorder is judged when its
//! docking has ended with every file done: the catalogue marks it
//! *settled* ([`COVERAGE_SETTLED`]) when the dock's `recorder.undocked`
//! lists nothing incomplete, and unmarks it at its next
//! `recorder.docked`. While a docking is under way (or left files behind)
//! the recorder's set of files has holes that are not gaps, so it is not
//! judged. [`settle`] runs after each such undocking, in a task of its
//! own (the dock's acknowledgement, its wipe and the next ingest never
//! wait for it), and [`settle_all`] at start-up for every settled
//! recorder, so a pass a crash interrupted is finished.
//!
//! Each new finding becomes one `coverage.gap` entry by the ledger (actor
//! `ledger`/`coverage`), subject the recorder id. Its guard, in the
//! writer, checks that the recorder is still settled at the same
//! undocking and that the finding ([`Finding::key`]) was never recorded,
//! and writes both rows with the entry: a finding is recorded once, also
//! across restarts and concurrent passes. State rows (JSON):
//!
//! | table | key | value |
//! | --- | --- | --- |
//! | [`COVERAGE_SETTLED`] | recorder id | seq of its `recorder.undocked` |
//! | [`COVERAGE_KEYS`] | [`Finding::key`] | seq of its `coverage.gap` |
//! | [`COVERAGE`] | gap seq (8 bytes BE) | [`CoverageFinding`] |
//!
//! This module must never append for a dock, never record a finding twice,
//! and never let an explanation be given twice or for no finding.

use custos_core::coverage::{findings, FileFacts, Finding};
use custos_core::entry::details::CoverageExplained;
use custos_core::entry::{Actor, ActorKind, Details};
use custos_core::manifest::Timestamp;
use custos_core::wire::{CoverageExplanation, CoverageFinding, CoverageQuery, SegmentRecord};

use super::{reject, text, GovernanceError};
use crate::append::{Append, RejectionKind, StateTx};
use crate::auth::Caller;
use crate::catalogue::{BY_RECORDER, SEGMENTS};
use crate::error::{AppendError, ReadError, StoreError};
use crate::layout::{composite, split_composite};
use crate::ledger::Ledger;
use crate::wire::Receipt;

/// Table: recorder id → seq of the `recorder.undocked` that settled it.
pub const COVERAGE_SETTLED: &str = "coverage_settled";
/// Table: finding key → seq of its `coverage.gap`.
pub const COVERAGE_KEYS: &str = "coverage_keys";
/// Table: gap seq → [`CoverageFinding`].
pub const COVERAGE: &str = "coverage";

/// Longest explanation, in bytes.
pub const MAX_EXPLANATION: usize = 2000;

/// The actor of `coverage.gap` entries.
pub fn coverage_actor() -> Actor {
    Actor {
        kind: ActorKind::Ledger,
        id: "coverage".into(),
    }
}

/// Judge `recorder` if it is settled, and append one `coverage.gap` per
/// finding not yet recorded. Returns the receipts of the entries appended.
pub async fn settle(ledger: &Ledger, recorder: &str) -> Result<Vec<Receipt>, GovernanceError> {
    let store = ledger.store();
    let Some(settled) = store
        .table_get(COVERAGE_SETTLED, recorder.as_bytes())
        .map_err(ReadError::from)?
    else {
        return Ok(Vec::new());
    };
    let settled = settled.to_vec();
    let mut files = Vec::new();
    for row in store.table_scan(BY_RECORDER, &composite(&[recorder.as_bytes()])) {
        let (key, _) = row.map_err(ReadError::from)?;
        let Some(id) = split_composite(&key).and_then(|p| p.get(2).copied()) else {
            continue;
        };
        if let Some(record) = store
            .table_get_json::<SegmentRecord>(SEGMENTS, id)
            .map_err(ReadError::from)?
        {
            files.push(FileFacts::of(&record.manifest));
        }
    }
    let mut receipts = Vec::new();
    for finding in findings(&files) {
        let key = finding.key();
        if store
            .table_get(COVERAGE_KEYS, key.as_bytes())
            .map_err(ReadError::from)?
            .is_some()
        {
            continue;
        }
        match record_gap(ledger, &finding, settled.clone()).await {
            Ok(r) => receipts.push(r),
            // Recorded meanwhile, or the recorder docked again: the next
            // pass judges it.
            Err(AppendError::Rejected(r)) if r.code == "recorded" || r.code == "unsettled" => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(receipts)
}

async fn record_gap(
    ledger: &Ledger,
    finding: &Finding,
    settled: Vec<u8>,
) -> Result<Receipt, AppendError> {
    let details = finding.details();
    let recorder = finding.recorder_id.clone();
    let key = finding.key();
    let row = details.clone();
    ledger
        .append(
            Append::new(coverage_actor(), &recorder, Details::CoverageGap(details))?.guard(
                move |tx| {
                    let now = tx.get(COVERAGE_SETTLED, recorder.as_bytes())?;
                    if now.as_deref() != Some(settled.as_slice()) {
                        return Err(reject(
                            RejectionKind::Conflict,
                            "unsettled",
                            format!("recorder {recorder:?} is docked again"),
                        ));
                    }
                    if tx.get(COVERAGE_KEYS, key.as_bytes())?.is_some() {
                        return Err(reject(
                            RejectionKind::Conflict,
                            "recorded",
                            "this finding is already recorded".into(),
                        ));
                    }
                    let seq = tx.seq();
                    tx.insert(COVERAGE_KEYS, key.as_bytes(), seq.to_be_bytes().to_vec());
                    let record = CoverageFinding {
                        gap_seq: seq,
                        found_at: tx.time().to_string(),
                        gap: row,
                        state: "open".into(),
                        explanation: None,
                    };
                    tx.insert_json(COVERAGE, &seq.to_be_bytes(), &record);
                    Ok(())
                },
            ),
        )
        .await
}

/// [`settle`] every settled recorder (at start-up: finishes a pass that a
/// crash or shutdown interrupted). Returns how many entries it appended.
pub async fn settle_all(ledger: &Ledger) -> Result<usize, GovernanceError> {
    let mut recorders = Vec::new();
    for row in ledger.store().table_scan(COVERAGE_SETTLED, b"") {
        let (key, _) = row.map_err(ReadError::from)?;
        recorders.push(String::from_utf8_lossy(&key).into_owned());
    }
    let mut n = 0;
    for r in recorders {
        n += settle(ledger, &r).await?.len();
    }
    Ok(n)
}

/// Run [`settle`] for `recorder` in a task of its own, logging the outcome.
pub(crate) fn spawn_settle(ledger: Ledger, recorder: String) {
    tokio::spawn(async move {
        match settle(&ledger, &recorder).await {
            Ok(r) if r.is_empty() => {}
            Ok(r) => tracing::info!(recorder, findings = r.len(), "coverage findings recorded"),
            Err(error) => tracing::warn!(recorder, %error, "coverage check failed"),
        }
    });
}

/// The catalogue's part (called by the writer with every entry): a
/// recorder is settled by a `recorder.undocked` with nothing incomplete
/// and unsettled by a `recorder.docked` or an undocking that left files.
pub(crate) fn index(tx: &mut StateTx<'_>, subject: &str, details: &Details, seq: u64) {
    match details {
        Details::RecorderUndocked(d) if d.incomplete.is_empty() => {
            tx.insert(
                COVERAGE_SETTLED,
                subject.as_bytes(),
                seq.to_be_bytes().to_vec(),
            );
        }
        Details::RecorderUndocked(_) | Details::RecorderDocked(_) => {
            tx.remove(COVERAGE_SETTLED, subject.as_bytes());
        }
        _ => {}
    }
}

/// A supervisor's explanation (中断说明) of finding `gap_seq`
/// (`coverage.explained`). An unknown finding, one already explained, or
/// an empty or overlong reason is refused and nothing is appended.
pub async fn explain_gap(
    ledger: &Ledger,
    caller: &Caller,
    gap_seq: u64,
    reason: &str,
) -> Result<Receipt, GovernanceError> {
    let reason = text("reason", reason, true)?;
    if reason.len() > MAX_EXPLANATION {
        return Err(GovernanceError::Invalid(format!(
            "reason is {} bytes long; at most {MAX_EXPLANATION} are accepted",
            reason.len()
        )));
    }
    let finding = coverage_finding(ledger, gap_seq)?.ok_or_else(|| {
        GovernanceError::from(AppendError::Rejected(crate::append::Rejection::new(
            RejectionKind::NotFound,
            "unknown_finding",
            format!("no coverage finding recorded at entry {gap_seq}"),
        )))
    })?;
    let details = Details::CoverageExplained(CoverageExplained {
        gap_seq,
        reason: reason.clone(),
        segments: finding.gap.segments.clone(),
    });
    let me = caller.actor();
    Ok(ledger
        .append(
            Append::new(caller.actor(), &finding.gap.recorder_id, details)?.guard(move |tx| {
                let key = gap_seq.to_be_bytes();
                let Some(mut row) = tx.get_json::<CoverageFinding>(COVERAGE, &key)? else {
                    return Err(reject(
                        RejectionKind::NotFound,
                        "unknown_finding",
                        format!("no coverage finding recorded at entry {gap_seq}"),
                    ));
                };
                if let Some(e) = &row.explanation {
                    return Err(reject(
                        RejectionKind::Conflict,
                        "already_explained",
                        format!(
                            "coverage finding {gap_seq} was already explained at entry {}",
                            e.seq
                        ),
                    ));
                }
                row.state = "explained".into();
                row.explanation = Some(CoverageExplanation {
                    seq: tx.seq(),
                    by: me,
                    at: tx.time().to_string(),
                    reason,
                });
                tx.insert_json(COVERAGE, &key, &row);
                Ok(())
            }),
        )
        .await?)
}

/// One finding by its gap seq.
pub fn coverage_finding(
    ledger: &Ledger,
    gap_seq: u64,
) -> Result<Option<CoverageFinding>, GovernanceError> {
    Ok(ledger
        .store()
        .table_get_json(COVERAGE, &gap_seq.to_be_bytes())
        .map_err(ReadError::from)?)
}

/// Every recorded finding, in the order they were recorded (a row that
/// does not parse is an error naming it).
pub(crate) fn recorded_findings(
    store: &crate::store::Store,
) -> impl Iterator<Item = Result<CoverageFinding, ReadError>> + '_ {
    store.table_scan(COVERAGE, b"").map(|row| {
        let (key, value) = row.map_err(ReadError::from)?;
        serde_json::from_slice(&value).map_err(|e| {
            ReadError::from(StoreError::Malformed {
                what: format!("coverage row {}", hex::encode(&key)),
                why: e.to_string(),
            })
        })
    })
}

/// The findings `query` asks for, in the order they were recorded. With
/// `from` and/or `to`, only findings about that time
/// ([`super::finding_span`]: a finding whose time is unknown is left out
/// of a period); a malformed instant is refused.
pub fn coverage_findings(
    ledger: &Ledger,
    query: &CoverageQuery,
) -> Result<Vec<CoverageFinding>, GovernanceError> {
    let from = query
        .from
        .as_deref()
        .map(|t| super::parse_bound("from", t, super::Bound::Start))
        .transpose()?;
    let to = query
        .to
        .as_deref()
        .map(|t| super::parse_bound("to", t, super::Bound::End))
        .transpose()?;
    let bounds = (from.is_some() || to.is_some()).then(|| {
        (
            from.map_or(i128::MIN / 2, Timestamp::unix_nanos),
            to.map_or(i128::MAX / 2, Timestamp::unix_nanos),
        )
    });
    let mut out = Vec::new();
    for f in recorded_findings(ledger.store()) {
        let f = f?;
        let keep = query
            .recorder
            .as_ref()
            .is_none_or(|r| *r == f.gap.recorder_id)
            && query
                .officer
                .as_ref()
                .is_none_or(|o| *o == f.gap.officer_id)
            && query
                .open
                .is_none_or(|open| open == f.explanation.is_none());
        let keep = keep
            && match bounds {
                None => true,
                Some((lo, hi)) => super::finding_span(ledger.store(), &f)?
                    .is_some_and(|(a, b)| super::overlap_ns(lo, hi, a, b).is_some()),
            };
        if keep {
            out.push(f);
        }
    }
    Ok(out)
}
