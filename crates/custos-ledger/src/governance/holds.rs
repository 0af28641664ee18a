//! Legal holds: place one on a segment (`hold.placed`), release it
//! (`hold.released`), and read them. A held segment is never deleted by
//! the retention sweep.
//!
//! A hold's row lives in [`HOLDS`]. This module must never place a second
//! hold on a held segment, nor hold a segment that does not exist.

use custos_core::entry::details::{HoldPlaced, NoDetails};
use custos_core::entry::Details;

use super::{reject, scan_rows, segment_of, text, GovernanceError, HoldRecord, HOLDS};
use crate::append::{Append, RejectionKind};
use crate::auth::Caller;
use crate::error::ReadError;
use crate::ledger::Ledger;
use crate::wire::Receipt;

/// Place a legal hold (`hold.placed`); a segment holds one hold at a time.
pub async fn place_hold(
    ledger: &Ledger,
    caller: &Caller,
    segment_id: &str,
    reason: &str,
) -> Result<Receipt, GovernanceError> {
    let reason = text("reason", reason, true)?;
    let details = Details::HoldPlaced(HoldPlaced {
        reason: reason.clone(),
    });
    let id = segment_id.to_owned();
    let me = caller.actor();
    Ok(ledger
        .append(
            Append::new(caller.actor(), segment_id, details)?.guard(move |tx| {
                segment_of(tx, &id)?;
                if let Some(h) = tx.get_json::<HoldRecord>(HOLDS, id.as_bytes())? {
                    return Err(reject(
                        RejectionKind::Conflict,
                        "already_held",
                        format!(
                            "segment {id:?} is already under a hold placed at entry {}",
                            h.placed_seq
                        ),
                    ));
                }
                let row = HoldRecord {
                    segment_id: id.clone(),
                    reason,
                    placed_by: me,
                    placed_seq: tx.seq(),
                };
                tx.insert_json(HOLDS, id.as_bytes(), &row);
                Ok(())
            }),
        )
        .await?)
}

/// Release a segment's legal hold (`hold.released`).
pub async fn release_hold(
    ledger: &Ledger,
    caller: &Caller,
    segment_id: &str,
) -> Result<Receipt, GovernanceError> {
    let id = segment_id.to_owned();
    Ok(ledger
        .append(
            Append::new(
                caller.actor(),
                segment_id,
                Details::HoldReleased(NoDetails {}),
            )?
            .guard(move |tx| {
                segment_of(tx, &id)?;
                if tx.get(HOLDS, id.as_bytes())?.is_none() {
                    return Err(reject(
                        RejectionKind::Conflict,
                        "not_held",
                        format!("segment {id:?} is not under a hold"),
                    ));
                }
                tx.remove(HOLDS, id.as_bytes());
                Ok(())
            }),
        )
        .await?)
}

/// A segment's hold, if it has one.
pub fn hold(ledger: &Ledger, segment_id: &str) -> Result<Option<HoldRecord>, GovernanceError> {
    Ok(ledger
        .store()
        .table_get_json(HOLDS, segment_id.as_bytes())
        .map_err(ReadError::from)?)
}

/// Every legal hold in force, in segment id order (read-only).
pub fn holds(ledger: &Ledger) -> Result<Vec<HoldRecord>, GovernanceError> {
    scan_rows(ledger, HOLDS)
}
