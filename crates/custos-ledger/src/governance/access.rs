//! Access to footage: access requests (`access.requested`), a
//! supervisor's decision on them (`access.approved`, `access.denied`), and
//! the [`FootageGate`] that every view and export of footage passes
//! (`segment.viewed`, or `access.refused`).
//!
//! A request's row lives in [`ACCESS_REQUESTS`]. This module must never let
//! footage be read without first appending the entry that records the
//! access, never let a requester decide their own request, and never let
//! an approval open footage past its `valid_until`.

use custos_core::entry::details::{AccessDecision, AccessRefused, AccessRequested, SegmentViewed};
use custos_core::entry::{actions, Actor, Details};
use custos_core::manifest::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::cases::case_of;
use super::ACCESS_REQUESTS;
use super::{new_id, reject, scan_rows, segment_of, text, Governance, GovernanceError};
use crate::append::{Append, GuardError, Rejection, RejectionKind, StateTx};
use crate::auth::Caller;
use crate::catalogue::SegmentRecord;
use crate::error::{AppendError, ReadError};
use crate::ledger::Ledger;
use crate::wire::Receipt;

/// Where an access request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    /// Waiting for a supervisor.
    Pending,
    /// Approved: the requester may view what it covers.
    Approved,
    /// Denied.
    Denied,
}

/// An access request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AccessRequest {
    /// The request id.
    pub id: String,
    /// Who asked (role and name).
    #[schema(value_type = Object)]
    pub requester: Actor,
    /// The public id of the token the request was made with: a supervisor
    /// can never decide a request made with their own token, whatever
    /// names the tokens carry. Absent in rows written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester_token: Option<String>,
    /// The case it covers (every segment linked to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case: Option<String>,
    /// The segment it covers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
    /// Why.
    pub reason: String,
    /// Where it stands.
    pub status: RequestStatus,
    /// The `access.requested` entry.
    pub requested_seq: u64,
    /// The `access.approved` or `access.denied` entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_seq: Option<u64>,
    /// Who decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub decided_by: Option<Actor>,
    /// When an approval stops opening footage (RFC 3339, the ledger's
    /// clock). An approval without one (written before approvals had an
    /// end) is treated as ended: it opens nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub valid_until: Option<Timestamp>,
}

impl AccessRequest {
    /// Whether this request opens `segment`'s footage to `who` at `now`:
    /// approved, made by `who`, covering the segment (directly or through a
    /// case it is linked to), and not past its end.
    pub fn opens(&self, who: &Actor, segment: &SegmentRecord, now: Timestamp) -> bool {
        let covers = self.segment.as_deref() == Some(segment.segment_id.as_str())
            || self
                .case
                .as_ref()
                .is_some_and(|c| segment.cases.contains(c));
        self.status == RequestStatus::Approved
            && self.requester == *who
            && covers
            && self.valid_until.is_some_and(|until| now < until)
    }
}

/// What an access request asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessAsk {
    /// A case: every segment linked to it.
    #[serde(default)]
    pub case: Option<String>,
    /// One segment.
    #[serde(default)]
    pub segment: Option<String>,
    /// Why (required).
    #[serde(default)]
    pub reason: String,
}

/// Ask for access (`access.requested`).
pub async fn request_access(
    ledger: &Ledger,
    caller: &Caller,
    ask: &AccessAsk,
) -> Result<(AccessRequest, Receipt), GovernanceError> {
    let reason = text("reason", &ask.reason, true)?;
    match (&ask.case, &ask.segment) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(GovernanceError::Invalid(
                "name exactly one of case or segment".into(),
            ))
        }
        _ => {}
    }
    let id = new_id("ar");
    let details = Details::AccessRequested(AccessRequested {
        reason: reason.clone(),
        case: ask.case.clone(),
        segment_id: ask.segment.clone(),
    });
    let mut request = AccessRequest {
        id: id.clone(),
        requester: caller.actor(),
        case: ask.case.clone(),
        segment: ask.segment.clone(),
        reason,
        requester_token: Some(caller.token_id.clone()),
        status: RequestStatus::Pending,
        requested_seq: 0,
        decided_seq: None,
        decided_by: None,
        valid_until: None,
    };
    let row = request.clone();
    let receipt = ledger
        .append(Append::new(caller.actor(), &id, details)?.guard(move |tx| {
            let mut row = row;
            if let Some(c) = &row.case {
                case_of(tx, c)?;
            }
            if let Some(s) = &row.segment {
                segment_of(tx, s)?;
            }
            row.requested_seq = tx.seq();
            tx.insert_json(ACCESS_REQUESTS, row.id.as_bytes(), &row);
            Ok(())
        }))
        .await?;
    request.requested_seq = receipt.seq;
    Ok((request, receipt))
}

/// Read an access request.
pub fn access_request(ledger: &Ledger, id: &str) -> Result<Option<AccessRequest>, GovernanceError> {
    Ok(ledger
        .store()
        .table_get_json(ACCESS_REQUESTS, id.as_bytes())
        .map_err(ReadError::from)?)
}

/// Longest an approval may stay in force, in days.
pub const MAX_APPROVAL_DAYS: u32 = 366;

/// A supervisor's decision on an access request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// Approve (`access.approved`) or deny (`access.denied`).
    pub approve: bool,
    /// A note for the record.
    pub note: Option<String>,
    /// For an approval: how many days it stays in force (default
    /// [`Governance::approval_valid_days`], at most [`MAX_APPROVAL_DAYS`]).
    pub valid_days: Option<u32>,
}

/// Approve (`access.approved`) or deny (`access.denied`) a pending request.
/// Nobody decides a request made with their own token, or with a token of
/// their own name. An approval is in force until `valid_until` (the
/// ledger's time of the decision plus the days asked, or the policy's
/// default), written in the entry and on the request.
pub async fn decide(
    ledger: &Ledger,
    policy: &Governance,
    caller: &Caller,
    request_id: &str,
    decision: &Decision,
) -> Result<Receipt, GovernanceError> {
    let approve = decision.approve;
    let note = decision
        .note
        .as_deref()
        .map(|n| text("note", n, false))
        .transpose()?;
    let days = decision.valid_days.unwrap_or(policy.approval_valid_days);
    if approve && !(1..=MAX_APPROVAL_DAYS).contains(&days) {
        return Err(GovernanceError::Invalid(format!(
            "valid_days is {days}; an approval stays in force from 1 to {MAX_APPROVAL_DAYS} days"
        )));
    }
    let valid_for = time::Duration::days(i64::from(days));
    // The details name what the request covers, so the decision is listed
    // in the segment's custody record.
    let current = access_request(ledger, request_id)?;
    let decision = AccessDecision {
        note: note.clone(),
        requester: current.as_ref().map(|r| r.requester.id.clone()),
        segment_id: current.as_ref().and_then(|r| r.segment.clone()),
        case: current.as_ref().and_then(|r| r.case.clone()),
        valid_days: approve.then_some(days),
    };
    let details = if approve {
        Details::AccessApproved(decision)
    } else {
        Details::AccessDenied(decision)
    };
    let id = request_id.to_owned();
    let me = caller.actor();
    let my_token = caller.token_id.clone();
    Ok(ledger
        .append(
            Append::new(caller.actor(), request_id, details)?.guard(move |tx| {
                let mut r = tx
                    .get_json::<AccessRequest>(ACCESS_REQUESTS, id.as_bytes())?
                    .ok_or_else(|| {
                        reject(
                            RejectionKind::NotFound,
                            "unknown_request",
                            format!("no access request {id:?}"),
                        )
                    })?;
                if r.status != RequestStatus::Pending {
                    return Err(reject(
                        RejectionKind::Conflict,
                        "already_decided",
                        format!("access request {id:?} was already {:?}", r.status).to_lowercase(),
                    ));
                }
                let same_token = r.requester_token.as_deref() == Some(my_token.as_str());
                if same_token || r.requester.id == me.id {
                    return Err(reject(
                        RejectionKind::Forbidden,
                        "own_request",
                        format!("{} cannot decide their own access request {id:?}", me.id),
                    ));
                }
                r.status = if approve {
                    RequestStatus::Approved
                } else {
                    RequestStatus::Denied
                };
                if approve {
                    r.valid_until = Some(tx.time().checked_add(valid_for).ok_or_else(|| {
                        reject(
                            RejectionKind::Invalid,
                            "bad_validity",
                            format!("{days} days from now is beyond the calendar"),
                        )
                    })?);
                }
                r.decided_seq = Some(tx.seq());
                r.decided_by = Some(me);
                tx.insert_json(ACCESS_REQUESTS, id.as_bytes(), &r);
                Ok(())
            }),
        )
        .await?)
}

/// Every access request, in id order (read-only; for listings such as the
/// web console's approval queue).
pub fn access_requests(ledger: &Ledger) -> Result<Vec<AccessRequest>, GovernanceError> {
    scan_rows(ledger, ACCESS_REQUESTS)
}

// ---------------------------------------------------------------------------
// The footage gate

/// The one gate in front of footage bytes. Every path that yields footage
/// — `GET`/`HEAD /v1/segments/{id}/content`, the console's player, exports
/// by segment and by case through the API, the console and `custos export`
/// — asks it, with the same rule: a role listed in `[access]
/// approval_required` needs an approval in force (approved, its own,
/// covering the segment, not past `valid_until`); a refusal is an
/// `access.refused` entry and nothing else changes.
///
/// The rule is checked twice: once before anything is recorded
/// ([`FootageGate::precheck`], so a refused export or view writes only its
/// refusal), and again inside the writer's guard of the entry that records
/// the access ([`FootageGate::check_in`]), atomically with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FootageGate {
    /// Who asks: the actor of the access entry.
    pub actor: Actor,
    /// The role's name for the record (`role` in the entry's details).
    pub role: String,
    /// Whether an approval in force is needed.
    pub needs_approval: bool,
}

/// The approval each segment rests on (segment id → request id), for the
/// access entry's details.
pub type Approvals = Vec<(String, Option<String>)>;

impl FootageGate {
    /// The gate for an API or console caller under `policy`.
    pub fn for_caller(policy: &Governance, caller: &Caller) -> FootageGate {
        FootageGate {
            actor: caller.actor(),
            role: caller.role.as_str().to_owned(),
            needs_approval: policy.needs_approval(caller.role),
        }
    }

    /// The gate for an operator who opened the ledger's directory
    /// (`custos export` with the service stopped): whoever can do that can
    /// read the store and the database anyway, so no approval is asked; the
    /// access is still recorded under the operator's name.
    pub fn operator(actor: Actor) -> FootageGate {
        FootageGate {
            actor,
            role: "operator".to_owned(),
            needs_approval: false,
        }
    }

    /// The approval in force for `segment`, if any (the first in request
    /// id order).
    fn approval(
        &self,
        rows: impl IntoIterator<Item = Vec<u8>>,
        segment: &SegmentRecord,
        now: Timestamp,
    ) -> Option<AccessRequest> {
        rows.into_iter()
            .filter_map(|value| serde_json::from_slice::<AccessRequest>(&value).ok())
            .find(|r| r.opens(&self.actor, segment, now))
    }

    fn refusal(&self, segment_id: &str) -> Rejection {
        Rejection::new(
            RejectionKind::Forbidden,
            "approval_required",
            format!(
                "{} {} needs an approved access request in force covering segment {segment_id:?}; ask for one with POST /v1/access-requests",
                self.actor.kind.as_str(),
                self.actor.id
            ),
        )
    }

    /// The decision before anything is recorded: for each segment, the
    /// approval it rests on (`None` where the role needs none and has
    /// none). A refusal is recorded as `access.refused` entries (one per
    /// refused segment, naming `attempted`) and returned as a 403
    /// rejection.
    pub async fn precheck(
        &self,
        ledger: &Ledger,
        segments: &[SegmentRecord],
        attempted: &str,
    ) -> Result<Approvals, GovernanceError> {
        let rows = access_rows(ledger)?;
        let now = ledger.now();
        let mut approvals = Vec::with_capacity(segments.len());
        let mut refused = Vec::new();
        for segment in segments {
            let approval = self.approval(rows.iter().cloned(), segment, now);
            if self.needs_approval && approval.is_none() {
                refused.push(segment.segment_id.clone());
            }
            approvals.push((segment.segment_id.clone(), approval.map(|r| r.id)));
        }
        match refused.first() {
            None => Ok(approvals),
            Some(first) => {
                let rejection = self.refusal(first);
                for id in &refused {
                    self.record_refusal(ledger, id, attempted, &self.refusal(id))
                        .await?;
                }
                Err(AppendError::Rejected(rejection).into())
            }
        }
    }

    /// The same rule inside the writer's guard of the access entry: each
    /// segment must still exist and, where an approval is needed, the
    /// request named in `approvals` must still open it at the entry's time.
    pub fn check_in(&self, tx: &StateTx<'_>, approvals: &Approvals) -> Result<(), GuardError> {
        for (segment_id, request) in approvals {
            let segment = segment_of(tx, segment_id)?;
            if !self.needs_approval {
                continue;
            }
            let still = match request {
                Some(r) => tx.get(ACCESS_REQUESTS, r.as_bytes())?,
                None => None,
            };
            if self.approval(still, &segment, tx.time()).is_none() {
                return Err(self.refusal(segment_id).into());
            }
        }
        Ok(())
    }

    /// Record a refused attempt on `segment_id` (`access.refused`).
    pub async fn record_refusal(
        &self,
        ledger: &Ledger,
        segment_id: &str,
        attempted: &str,
        why: &Rejection,
    ) -> Result<Receipt, GovernanceError> {
        let details = Details::AccessRefused(AccessRefused {
            role: self.role.clone(),
            attempted: attempted.to_owned(),
            why: why.message.clone(),
        });
        Ok(ledger
            .append(Append::new(self.actor.clone(), segment_id, details)?)
            .await?)
    }

    /// After an access entry was refused in its guard (the approval ended
    /// or vanished between the precheck and the entry): record the refusal
    /// and pass the error on.
    pub async fn refused_in_guard(
        &self,
        ledger: &Ledger,
        error: AppendError,
        segments: &[String],
        attempted: &str,
    ) -> GovernanceError {
        match error {
            AppendError::Rejected(r) if r.kind == RejectionKind::Forbidden => {
                for id in segments {
                    if let Err(e) = self.record_refusal(ledger, id, attempted, &r).await {
                        return e;
                    }
                }
                AppendError::Rejected(r).into()
            }
            other => other.into(),
        }
    }
}

fn access_rows(ledger: &Ledger) -> Result<Vec<Vec<u8>>, GovernanceError> {
    let mut rows = Vec::new();
    for row in ledger.store().table_scan(ACCESS_REQUESTS, b"") {
        let (_, value) = row.map_err(ReadError::from)?;
        rows.push(value.to_vec());
    }
    Ok(rows)
}

/// The approval in force of `caller` that opens `segment` now, if any: the
/// one a view would rest on. A read for display only; a view itself is
/// decided by the [`FootageGate`].
pub fn approved_request(
    ledger: &Ledger,
    caller: &Caller,
    segment: &SegmentRecord,
) -> Result<Option<AccessRequest>, GovernanceError> {
    let gate = FootageGate {
        actor: caller.actor(),
        role: caller.role.as_str().to_owned(),
        needs_approval: true,
    };
    Ok(gate.approval(access_rows(ledger)?, segment, ledger.now()))
}

/// Whether `caller` may see `segment`'s footage now, without recording a
/// view: the answer to `HEAD /v1/segments/{id}/content`. A refusal is
/// recorded as `access.refused`, as for a `GET`.
pub async fn check_footage_access(
    ledger: &Ledger,
    policy: &Governance,
    caller: &Caller,
    segment: &SegmentRecord,
) -> Result<Option<String>, GovernanceError> {
    let (_, approvals) = view_gate(ledger, policy, caller, segment).await?;
    Ok(approvals.into_iter().next().and_then(|(_, r)| r))
}

/// The caller's gate and its pre-check of one segment's view: what
/// [`check_footage_access`] answers and [`record_view`] records.
async fn view_gate(
    ledger: &Ledger,
    policy: &Governance,
    caller: &Caller,
    segment: &SegmentRecord,
) -> Result<(FootageGate, Approvals), GovernanceError> {
    let gate = FootageGate::for_caller(policy, caller);
    let approvals = gate
        .precheck(
            ledger,
            std::slice::from_ref(segment),
            actions::SEGMENT_VIEWED,
        )
        .await?;
    Ok((gate, approvals))
}

/// Record a view of `segment`'s bytes `[start, end]` (inclusive) of `size`
/// as a `segment.viewed` entry, *before* any byte is sent, through the
/// [`FootageGate`]: a role that needs approval must have an approval in
/// force covering the segment; if not, the refused attempt is itself
/// recorded (`access.refused`) and the error is a 403 rejection. Returns
/// the receipt and the request id the view rests on (also in the entry's
/// `details.request_id`).
pub async fn record_view(
    ledger: &Ledger,
    policy: &Governance,
    caller: &Caller,
    segment: &SegmentRecord,
    range: Option<(u64, u64)>,
) -> Result<(Receipt, Option<String>), GovernanceError> {
    let (gate, approvals) = view_gate(ledger, policy, caller, segment).await?;
    let request_id = approvals.first().and_then(|(_, r)| r.clone());
    let details = Details::SegmentViewed(SegmentViewed {
        role: caller.role.as_str().to_owned(),
        size: segment.manifest.size,
        range: range.map(|(a, b)| format!("bytes={a}-{b}")),
        request_id: request_id.clone(),
    });
    let id = segment.segment_id.clone();
    let guard_gate = gate.clone();
    let result = ledger
        .append(
            Append::new(gate.actor.clone(), &id, details)?
                .guard(move |tx| guard_gate.check_in(tx, &approvals)),
        )
        .await;
    match result {
        Ok(receipt) => Ok((receipt, request_id)),
        Err(e) => Err(gate
            .refused_in_guard(ledger, e, &[id], actions::SEGMENT_VIEWED)
            .await),
    }
}
