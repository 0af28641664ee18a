//! Cases: open one (`case.created`), link segments to it
//! (`case.segment_linked`, indexed by the catalogue for the `case`
//! search), close it (`case.closed`), and read them.
//!
//! A case's row lives in [`CASES`]; it changes only in the guard of the
//! entry that justifies it. This module must never link a segment to a
//! closed case or to a case or segment that does not exist.

use custos_core::entry::details::{CaseCreated, CaseSegmentLinked, NoDetails};
use custos_core::entry::Details;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{new_id, reject, scan_rows, text, GovernanceError, CASES};
use crate::append::{Append, GuardError, Rejection, RejectionKind, StateTx};
use crate::auth::Caller;
use crate::error::{AppendError, ReadError};
use crate::ledger::Ledger;
use crate::wire::Receipt;

/// Whether a case is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    /// Segments can be linked; linked footage is kept.
    Open,
    /// Closed: no more links.
    Closed,
}

/// A case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CaseRecord {
    /// The case id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// Its retention category, if any (`[retention.categories]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Open or closed.
    pub status: CaseStatus,
    /// The `case.created` entry.
    pub created_seq: u64,
    /// The `case.closed` entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_seq: Option<u64>,
}

pub(super) fn case_of(tx: &StateTx<'_>, id: &str) -> Result<CaseRecord, GuardError> {
    tx.get_json::<CaseRecord>(CASES, id.as_bytes())?
        .ok_or_else(|| {
            reject(
                RejectionKind::NotFound,
                "unknown_case",
                format!("no case {id:?}"),
            )
        })
}

fn open_case(tx: &StateTx<'_>, id: &str) -> Result<CaseRecord, GuardError> {
    let case = case_of(tx, id)?;
    if case.status == CaseStatus::Closed {
        return Err(reject(
            RejectionKind::Conflict,
            "case_closed",
            format!("case {id:?} is closed"),
        ));
    }
    Ok(case)
}

/// Open a case (`case.created`); returns its id.
pub async fn create_case(
    ledger: &Ledger,
    caller: &Caller,
    title: &str,
    category: Option<&str>,
) -> Result<(CaseRecord, Receipt), GovernanceError> {
    let title = text("title", title, true)?;
    let category = category.map(|c| text("category", c, true)).transpose()?;
    let id = new_id("case");
    let details = Details::CaseCreated(CaseCreated {
        title: title.clone(),
        category: category.clone(),
    });
    let mut record = CaseRecord {
        id: id.clone(),
        title,
        category,
        status: CaseStatus::Open,
        created_seq: 0,
        closed_seq: None,
    };
    let row = record.clone();
    let receipt = ledger
        .append(Append::new(caller.actor(), &id, details)?.guard(move |tx| {
            let mut row = row;
            row.created_seq = tx.seq();
            tx.insert_json(CASES, row.id.as_bytes(), &row);
            Ok(())
        }))
        .await?;
    record.created_seq = receipt.seq;
    Ok((record, receipt))
}

/// Read a case.
pub fn case(ledger: &Ledger, id: &str) -> Result<Option<CaseRecord>, GovernanceError> {
    Ok(ledger
        .store()
        .table_get_json(CASES, id.as_bytes())
        .map_err(ReadError::from)?)
}

/// Link `segments` to an open case: one `case.segment_linked` entry per
/// segment (the catalogue indexes it). Every segment must exist; none is
/// linked if one does not.
pub async fn link_segments(
    ledger: &Ledger,
    caller: &Caller,
    case_id: &str,
    segments: &[String],
) -> Result<Vec<Receipt>, GovernanceError> {
    if segments.is_empty() {
        return Err(GovernanceError::Invalid(
            "segments must list at least one segment id".into(),
        ));
    }
    if case(ledger, case_id)?.is_none() {
        return Err(AppendError::Rejected(Rejection::new(
            RejectionKind::NotFound,
            "unknown_case",
            format!("no case {case_id:?}"),
        ))
        .into());
    }
    for s in segments {
        if ledger.segment(s)?.is_none() {
            return Err(AppendError::Rejected(Rejection::new(
                RejectionKind::NotFound,
                "unknown_segment",
                format!("no segment {s:?}"),
            ))
            .into());
        }
    }
    let mut receipts = Vec::new();
    for s in segments {
        let details = Details::CaseSegmentLinked(CaseSegmentLinked {
            segment_id: s.clone(),
        });
        let case = case_id.to_owned();
        receipts.push(
            ledger
                .append(
                    Append::new(caller.actor(), case_id, details)?
                        .guard(move |tx| open_case(tx, &case).map(|_| ())),
                )
                .await?,
        );
    }
    Ok(receipts)
}

/// Close an open case (`case.closed`).
pub async fn close_case(
    ledger: &Ledger,
    caller: &Caller,
    case_id: &str,
) -> Result<Receipt, GovernanceError> {
    let id = case_id.to_owned();
    Ok(ledger
        .append(
            Append::new(caller.actor(), case_id, Details::CaseClosed(NoDetails {}))?.guard(
                move |tx| {
                    let mut case = open_case(tx, &id)?;
                    case.status = CaseStatus::Closed;
                    case.closed_seq = Some(tx.seq());
                    tx.insert_json(CASES, id.as_bytes(), &case);
                    Ok(())
                },
            ),
        )
        .await?)
}

/// Every case, in id order (read-only).
pub fn cases(ledger: &Ledger) -> Result<Vec<CaseRecord>, GovernanceError> {
    scan_rows(ledger, CASES)
}
