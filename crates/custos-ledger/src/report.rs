//! Chain-of-custody reports from a live ledger: the facts a report needs
//! ([`custos_report::ReportInput`]), gathered from the catalogue, the log
//! and the access requests, and the PDF made from them with the configured
//! font (`[ledger] report_font`).
//!
//! An export's `REPORT.pdf` is made by [`crate::export::prepare_export`]
//! before its `export.created` entry is appended (that entry names the
//! report's SHA-256), so the report is made from the published tree just
//! before the export: it lists every entry the bundle lists but the export
//! entry itself, and its footer names that tree's checkpoint. A report made
//! on its own ([`standalone_report`]) records nothing.
//!
//! This module never writes to the log and never reads footage.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use custos_core::bundle::footage_path;
use custos_core::checkpoint::Checkpoint;
use custos_core::entry::details::SegmentViewed;
use custos_core::entry::{actions, Actor, Entry};
use custos_core::merkle::leaf_hash;
use custos_core::wire::SegmentRecord;
use custos_report::{Approval, EntryFacts, ExportFacts, ReportFont, ReportInput, SegmentFacts};

use crate::error::{ReadError, StoreError};
use crate::governance::{access_request, RequestStatus};
use crate::ledger::Ledger;

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The font file could not be read.
    #[error("reading the report font {path}: {source} (install Debian's fonts-wqy-microhei, or set [ledger] report_font)")]
    FontFile {
        /// The configured path.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// Laying out or writing the PDF failed.
    #[error("making the report: {0}")]
    Pdf(#[from] custos_report::ReportError),
    /// A segment is not in the catalogue.
    #[error("segment {0:?} was never ingested")]
    UnknownSegment(String),
    /// Reading the log failed.
    #[error("reading the ledger: {0}")]
    Read(#[from] ReadError),
    /// Reading the ledger's tables failed.
    #[error("reading the ledger's tables: {0}")]
    Store(#[from] StoreError),
    /// The thread making the report stopped (a bug: it panicked).
    #[error("the report maker stopped: {0}")]
    Stopped(String),
    /// A stored entry does not parse (a bug or a tampered store).
    #[error("entry {seq}: {why}")]
    BadEntry {
        /// The entry.
        seq: u64,
        /// What is wrong.
        why: String,
    },
}

/// Read the report font at `path`.
pub fn load_font(path: &Path) -> Result<ReportFont, ReportError> {
    let bytes = std::fs::read(path).map_err(|source| ReportError::FontFile {
        path: path.to_owned(),
        source,
    })?;
    Ok(ReportFont::new(bytes)?)
}

fn actor_name(actor: &Actor) -> String {
    format!("{}:{}", actor.kind, actor.id)
}

/// The facts of a report on `records` (each with the seqs of its entries,
/// all below the published `size`), made by `made_by`, with the tree of
/// `size` entries as its checkpoint.
pub fn gather(
    ledger: &Ledger,
    records: &[(SegmentRecord, Vec<u64>)],
    size: u64,
    case: Option<String>,
    made_by: &Actor,
    export: Option<ExportFacts>,
) -> Result<ReportInput, ReportError> {
    let root = if size == ledger.published().size {
        ledger.published().root
    } else {
        custos_core::merkle::root_at(&ledger.store().nodes(), size)?
    };
    let checkpoint = Checkpoint::new(ledger.origin(), size, root).map_err(|e| {
        ReportError::Read(ReadError::OutOfRange(format!(
            "the checkpoint of size {size}: {e}"
        )))
    })?;

    let mut entries: BTreeMap<u64, EntryFacts> = BTreeMap::new();
    let mut request_ids: Vec<String> = export
        .as_ref()
        .map(|e| e.requests.values().cloned().collect())
        .unwrap_or_default();
    let mut segments = Vec::with_capacity(records.len());
    for (record, seqs) in records {
        for &seq in seqs {
            if entries.contains_key(&seq) {
                continue;
            }
            let raw = ledger.entry(seq)?;
            let entry = Entry::parse(&raw).map_err(|e| ReportError::BadEntry {
                seq,
                why: e.to_string(),
            })?;
            let action = entry.action.as_str();
            if action == actions::SEGMENT_VIEWED || action == actions::SEGMENT_DOWNLOADED {
                let viewed: Option<SegmentViewed> =
                    serde_json::from_value(serde_json::Value::Object(entry.details.clone())).ok();
                if let Some(id) = viewed.and_then(|v| v.request_id) {
                    request_ids.push(id);
                }
            }
            entries.insert(
                seq,
                EntryFacts {
                    seq,
                    leaf: leaf_hash(&raw),
                    entry,
                },
            );
        }
        segments.push(SegmentFacts {
            bundle_path: footage_path(&record.manifest).map_err(|e| ReportError::BadEntry {
                seq: record.ingested_seq,
                why: e.to_string(),
            })?,
            manifest: record.manifest.clone(),
            ingested_seq: record.ingested_seq,
            entries: seqs.clone(),
        });
    }

    // Every access request about the case, the segments or a case they are
    // linked to (a reviewer's approval for a case covers a segment's own
    // report), besides those the export and the views used.
    let ids: std::collections::BTreeSet<&str> =
        records.iter().map(|(r, _)| r.segment_id.as_str()).collect();
    let linked: std::collections::BTreeSet<&str> = records
        .iter()
        .flat_map(|(r, _)| r.cases.iter().map(String::as_str))
        .chain(case.as_deref())
        .collect();
    for r in crate::governance::access_requests(ledger).map_err(|e| ReportError::BadEntry {
        seq: 0,
        why: format!("access requests: {e}"),
    })? {
        let about_case = r.case.as_deref().is_some_and(|c| linked.contains(c));
        let about_segment = r.segment.as_deref().is_some_and(|s| ids.contains(s));
        if about_case || about_segment {
            request_ids.push(r.id);
        }
    }

    let mut approvals = BTreeMap::new();
    for id in request_ids {
        if approvals.contains_key(&id) {
            continue;
        }
        let Some(r) = access_request(ledger, &id).map_err(|e| ReportError::BadEntry {
            seq: 0,
            why: format!("access request {id}: {e}"),
        })?
        else {
            continue;
        };
        let covers = match (&r.case, &r.segment) {
            (Some(c), _) => format!("案件 case {c}"),
            (None, Some(s)) => format!("片段 segment {s}"),
            (None, None) => "—".into(),
        };
        approvals.insert(
            id.clone(),
            Approval {
                request_id: id,
                requester: actor_name(&r.requester),
                reason: r.reason,
                covers,
                status: match r.status {
                    RequestStatus::Pending => "pending 待审批",
                    RequestStatus::Approved => "approved 已批准",
                    RequestStatus::Denied => "denied 已驳回",
                }
                .to_owned(),
                decided_by: r.decided_by.as_ref().map(actor_name),
                decided_seq: r.decided_seq,
                valid_until: r.valid_until,
            },
        );
    }

    Ok(ReportInput {
        made_at: ledger.now(),
        made_by: actor_name(made_by),
        case,
        export,
        approvals,
        ledger_key: ledger.verifier_key().clone(),
        checkpoint,
        segments,
        entries: entries.into_values().collect(),
    })
}

/// The facts of a report on `segments` made outside an export, from the
/// published tree (for the PDF, [`standalone_report`], and the console's
/// print view). Records nothing.
pub fn standalone_input(
    ledger: &Ledger,
    segments: &[String],
    case: Option<String>,
    made_by: &Actor,
) -> Result<ReportInput, ReportError> {
    let size = ledger.published().size;
    let mut records = Vec::with_capacity(segments.len());
    for id in segments {
        let record = ledger
            .segment(id)?
            .ok_or_else(|| ReportError::UnknownSegment(id.clone()))?;
        let seqs: Vec<u64> = crate::catalogue::segment_entries(ledger.store(), id)?
            .into_iter()
            .filter(|&s| s < size)
            .collect();
        records.push((record, seqs));
    }
    gather(ledger, &records, size, case, made_by, None)
}

/// A report on `segments` made outside an export, from the published tree:
/// nothing is recorded (it yields no footage). Returns the PDF bytes.
pub fn standalone_report(
    ledger: &Ledger,
    segments: &[String],
    case: Option<String>,
    made_by: &Actor,
    font: &ReportFont,
) -> Result<Vec<u8>, ReportError> {
    let input = standalone_input(ledger, segments, case, made_by)?;
    Ok(custos_report::build(&input, font)?)
}
