//! The audit scrub's side of the ledger: which objects a scrub must find,
//! and how its result goes on the record.
//!
//! `custos audit scrub` re-hashes every stored object against the SHA-256
//! (and size) of its signed manifest; the hashing and the comparison are
//! `custos_ingest::check_object`, called by the command. This module
//! lists what to check ([`scrub_targets`]: every catalogued segment except
//! those the retention sweeper deleted, whose objects are meant to be gone)
//! and records a finished scrub ([`record_scrub`]) as `audit.scrubbed`
//! entries:
//!
//! - one per missing, altered or unreadable object, whose subject is the
//!   segment id (so the entry joins that segment's custody record and any
//!   export of it), with `details` `{scrub_id, result, object_key,
//!   expected_sha256, expected_size, actual_sha256?, actual_size?, error?}`;
//! - then one summary, whose subject is the scrub id (`scrub-<hex>`), with
//!   `details` `{result: "summary", checked, ok, missing, altered,
//!   unreadable, skipped_deleted, started, finished, storage, findings:
//!   [seq of each entry above]}`.
//!
//! The actor is whoever ran the scrub: the caller's role and name when a
//! running ledger records it for an auditor's token, or
//! `system`/`audit-scrub:local:<user>` when the command opened the ledger
//! itself (the service stopped). A finding's entry is refused unless its
//! segment is catalogued, checked in the writer with the entry.

use custos_core::entry::details::{AuditScrubbed, ScrubFinding as Finding, ScrubSummary};
use custos_core::entry::{Actor, Details};
use rand_core::RngCore as _;
use serde::{Deserialize, Serialize};

use utoipa::ToSchema;

use crate::append::{Append, Rejection, RejectionKind};
use crate::catalogue::{SegmentRecord, SEGMENTS};
use crate::error::{AppendError, ReadError};
use crate::governance::{GovernanceError, DELETED};
use crate::ledger::Ledger;
use crate::wire::Receipt;

/// Most findings one scrub report may carry (each becomes an entry).
pub const MAX_FINDINGS: usize = 100_000;

/// One object the scrub must re-hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrubTarget {
    /// The segment.
    pub segment_id: String,
    /// Its object key in the store.
    pub object_key: String,
    /// The manifest's SHA-256 (`sha256:<hex>`).
    pub sha256: custos_core::digest::Digest,
    /// The manifest's SM3, where the dock computed one.
    pub sm3: Option<custos_core::digest::Digest>,
    /// The manifest's size.
    pub size: u64,
}

/// What a scrub found wrong with one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScrubProblem {
    /// The store has no object under the manifest's key.
    Missing,
    /// The object's bytes do not hash to the manifest's digest (or its size differs).
    Altered,
    /// The store answered with an error other than "not found".
    Unreadable,
}

impl ScrubProblem {
    /// `missing`, `altered` or `unreadable`.
    pub fn as_str(self) -> &'static str {
        match self {
            ScrubProblem::Missing => "missing",
            ScrubProblem::Altered => "altered",
            ScrubProblem::Unreadable => "unreadable",
        }
    }
}

/// One object that failed the scrub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScrubFinding {
    /// The segment.
    pub segment_id: String,
    /// What is wrong.
    pub problem: ScrubProblem,
    /// Its object key.
    pub object_key: String,
    /// The manifest's SHA-256.
    pub expected_sha256: String,
    /// The manifest's size.
    pub expected_size: u64,
    /// The SHA-256 the stored bytes have (altered objects).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual_sha256: Option<String>,
    /// The stored object's size (altered objects).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual_size: Option<u64>,
    /// The store's error (unreadable objects).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A finished scrub, as the command reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScrubReport {
    /// The store scrubbed (`[storage] url`).
    pub storage: String,
    /// When the scrub started (RFC 3339).
    pub started: String,
    /// When it finished (RFC 3339).
    pub finished: String,
    /// Objects re-hashed.
    pub checked: u64,
    /// Objects that matched their manifest.
    pub ok: u64,
    /// Segments skipped because the retention sweeper deleted them.
    pub skipped_deleted: u64,
    /// Every object that did not match.
    pub findings: Vec<ScrubFinding>,
}

/// The entries a recorded scrub appended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ScrubRecord {
    /// The scrub id (the summary entry's subject).
    pub scrub_id: String,
    /// The summary entry.
    pub summary_seq: u64,
    /// One entry per finding, in the report's order.
    pub finding_seqs: Vec<u64>,
}

/// Every catalogued segment's object, except those the retention sweeper
/// deleted; and how many were skipped for that reason.
pub fn scrub_targets(ledger: &Ledger) -> Result<(Vec<ScrubTarget>, u64), ReadError> {
    let store = ledger.store();
    let mut targets = Vec::new();
    let mut skipped = 0;
    for row in store.table_scan(SEGMENTS, b"") {
        let (_, value) = row?;
        let Ok(s) = serde_json::from_slice::<SegmentRecord>(&value) else {
            continue;
        };
        if store.table_get(DELETED, s.segment_id.as_bytes())?.is_some() {
            skipped += 1;
            continue;
        }
        targets.push(ScrubTarget {
            object_key: s.manifest.object.key.clone(),
            sha256: s.manifest.digests.sha256,
            sm3: s.manifest.digests.sm3,
            size: s.manifest.size,
            segment_id: s.segment_id,
        });
    }
    Ok((targets, skipped))
}

fn new_scrub_id() -> String {
    let mut bytes = [0u8; 8];
    rand_core::OsRng.fill_bytes(&mut bytes);
    format!("scrub-{}", hex::encode(bytes))
}

fn invalid(message: String) -> GovernanceError {
    GovernanceError::Invalid(message)
}

/// Record `report` as `audit.scrubbed` entries by `actor` (see the module
/// documentation): the findings first, then the summary naming them.
pub async fn record_scrub(
    ledger: &Ledger,
    actor: Actor,
    report: &ScrubReport,
) -> Result<ScrubRecord, GovernanceError> {
    if report.findings.len() > MAX_FINDINGS {
        return Err(invalid(format!(
            "a scrub report carries at most {MAX_FINDINGS} findings; this one has {}",
            report.findings.len()
        )));
    }
    for (what, t) in [("started", &report.started), ("finished", &report.finished)] {
        custos_core::manifest::Timestamp::parse(t)
            .map_err(|e| invalid(format!("{what} {t:?} is not an RFC 3339 time: {e}")))?;
    }
    let problems =
        |p: ScrubProblem| report.findings.iter().filter(|f| f.problem == p).count() as u64;
    if report.ok + report.findings.len() as u64 != report.checked {
        return Err(invalid(format!(
            "checked = {} but ok ({}) + findings ({}) differ",
            report.checked,
            report.ok,
            report.findings.len()
        )));
    }
    let scrub_id = new_scrub_id();
    let mut finding_seqs = Vec::new();
    for f in &report.findings {
        let details = Details::AuditScrubbed(AuditScrubbed::Finding(Finding {
            scrub_id: scrub_id.clone(),
            result: f.problem.as_str().to_owned(),
            object_key: f.object_key.clone(),
            expected_sha256: f.expected_sha256.clone(),
            expected_size: f.expected_size,
            actual_sha256: f.actual_sha256.clone(),
            actual_size: f.actual_size,
            error: f.error.clone(),
        }));
        let id = f.segment_id.clone();
        let receipt: Receipt = ledger
            .append(
                Append::new(actor.clone(), &f.segment_id, details)?.guard(move |tx| {
                    if tx.get(SEGMENTS, id.as_bytes())?.is_none() {
                        return Err(Rejection::new(
                            RejectionKind::NotFound,
                            "unknown_segment",
                            format!("the scrub names segment {id:?}, which was never ingested"),
                        )
                        .into());
                    }
                    Ok(())
                }),
            )
            .await?;
        finding_seqs.push(receipt.seq);
    }
    let details = Details::AuditScrubbed(AuditScrubbed::Summary(ScrubSummary {
        storage: report.storage.clone(),
        started: report.started.clone(),
        finished: report.finished.clone(),
        checked: report.checked,
        ok: report.ok,
        missing: problems(ScrubProblem::Missing),
        altered: problems(ScrubProblem::Altered),
        unreadable: problems(ScrubProblem::Unreadable),
        skipped_deleted: report.skipped_deleted,
        findings: finding_seqs.clone(),
    }));
    let summary = ledger
        .append(Append::new(actor, &scrub_id, details)?)
        .await
        .map_err(|e: AppendError| GovernanceError::from(e))?;
    Ok(ScrubRecord {
        scrub_id,
        summary_seq: summary.seq,
        finding_seqs,
    })
}
