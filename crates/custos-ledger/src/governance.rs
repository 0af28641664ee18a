//! Governance of footage: cases, access requests and their approval, legal
//! holds, and the gate in front of every view of footage.
//!
//! Every step is a custody entry (DESIGN.md invariant 4) with actor = the
//! caller's role and name, and every rule is checked by the entry's
//! [`Append::guard`], in the writer, atomically with the entry: two
//! supervisors approving the same request at once cannot both succeed, and
//! a view is logged only if the approval it rests on is there when the
//! entry is sequenced. State rows (JSON):
//!
//! | table | key | value |
//! | --- | --- | --- |
//! | [`CASES`] | case id | [`CaseRecord`] |
//! | [`ACCESS_REQUESTS`] | request id | [`AccessRequest`] |
//! | [`HOLDS`] | segment id | [`HoldRecord`] |
//!
//! Linking a segment to a case writes `case.segment_linked` with
//! `details.segment_id`, which the [`crate::catalogue`] indexes for the
//! `case` search.
//!
//! This module must never let footage be read without first appending its
//! `segment.viewed` entry, never let a requester approve their own request,
//! and never change a row outside the guard of the entry that justifies it.

use std::sync::Arc;

use custos_core::config::{AccessConfig, RetentionConfig};
use custos_core::entry::details::{
    AccessDecision, AccessRefused, AccessRequested, CaseCreated, CaseSegmentLinked, HoldPlaced,
    NoDetails, RetentionDeleted, SegmentViewed,
};
use custos_core::entry::{actions, Actor, Details};
use custos_core::manifest::Timestamp;
use object_store::{ObjectStore, ObjectStoreExt};
use rand_core::RngCore as _;
use serde::{Deserialize, Serialize};

use utoipa::ToSchema;

use crate::append::{Append, GuardError, Rejection, RejectionKind, StateTx};
use crate::auth::{Caller, Role, UnknownRole};
use crate::catalogue::{SegmentRecord, SEGMENTS};
use crate::error::{AppendError, ReadError};
use crate::ledger::Ledger;
use crate::wire::Receipt;

pub use crate::catalogue::{ACCESS_REQUESTS, CASES, HOLDS};
pub use custos_core::wire::{HoldRecord, RetentionStatus};

/// Longest case title, reason or note, in bytes.
pub const MAX_TEXT: usize = 4096;

/// The governance policy and what footage is read from.
#[derive(Debug, Clone)]
pub struct Governance {
    /// Roles that need an approved access request before viewing footage
    /// (`[access] approval_required`).
    pub approval_required: Vec<Role>,
    /// The object store footage is read from (`[storage] url`); without it
    /// content requests answer 503.
    pub objects: Option<Arc<dyn ObjectStore>>,
    /// Retention periods (`[retention]`), for the sweeper and the retention
    /// status of `GET /v1/segments/{id}`.
    pub retention: RetentionConfig,
    /// How long an approval stays in force when the supervisor names no
    /// end (`[access] approval_valid_days`).
    pub approval_valid_days: u32,
}

impl Default for Governance {
    fn default() -> Self {
        // The configuration's default policy; every name in it is a role.
        Governance::from_access(&AccessConfig::default()).unwrap_or(Governance {
            approval_required: vec![Role::Reviewer, Role::Officer],
            objects: None,
            retention: RetentionConfig::default(),
            approval_valid_days: custos_core::config::DEFAULT_APPROVAL_VALID_DAYS,
        })
    }
}

impl Governance {
    /// The policy of `[access]`, without an object store.
    pub fn from_access(access: &AccessConfig) -> Result<Governance, UnknownRole> {
        let approval_required = access
            .approval_required
            .iter()
            .map(|r| r.parse())
            .collect::<Result<Vec<Role>, _>>()?;
        Ok(Governance {
            approval_required,
            objects: None,
            retention: RetentionConfig::default(),
            approval_valid_days: access.approval_valid_days,
        })
    }

    /// Every role needs approval: the fail-closed policy when `[access]`
    /// names something that is not a role.
    pub fn strict() -> Governance {
        Governance {
            approval_required: Role::ALL.to_vec(),
            objects: None,
            retention: RetentionConfig::default(),
            approval_valid_days: custos_core::config::DEFAULT_APPROVAL_VALID_DAYS,
        }
    }

    /// The same policy, reading footage from `objects`.
    pub fn with_store(mut self, objects: Arc<dyn ObjectStore>) -> Governance {
        self.objects = Some(objects);
        self
    }

    /// The same policy with the retention periods of `[retention]`.
    pub fn with_retention(mut self, retention: RetentionConfig) -> Governance {
        self.retention = retention;
        self
    }

    /// Whether `role` needs an approved request to view footage.
    pub fn needs_approval(&self, role: Role) -> bool {
        self.approval_required.contains(&role)
    }
}

/// Why a governance step failed.
#[derive(Debug, thiserror::Error)]
// Exhaustive on purpose: custos-server maps every variant to an HTTP answer.
pub enum GovernanceError {
    /// The request is malformed (an empty reason, both case and segment...).
    #[error("{0}")]
    Invalid(String),
    /// The entry was refused by its rule, or could not be appended.
    #[error(transparent)]
    Append(#[from] AppendError),
    /// Reading the state failed.
    #[error(transparent)]
    Read(#[from] ReadError),
}

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

fn new_id(prefix: &str) -> String {
    let mut bytes = [0u8; 8];
    rand_core::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}-{}", hex::encode(bytes))
}

fn text(what: &str, value: &str, required: bool) -> Result<String, GovernanceError> {
    let trimmed = value.trim();
    if required && trimmed.is_empty() {
        return Err(GovernanceError::Invalid(format!(
            "{what} is required and must not be empty"
        )));
    }
    if trimmed.len() > MAX_TEXT {
        return Err(GovernanceError::Invalid(format!(
            "{what} is {} bytes long; at most {MAX_TEXT} are accepted",
            trimmed.len()
        )));
    }
    Ok(trimmed.to_owned())
}

fn reject(kind: RejectionKind, code: &str, message: String) -> GuardError {
    Rejection::new(kind, code, message).into()
}

fn case_of(tx: &StateTx<'_>, id: &str) -> Result<CaseRecord, GuardError> {
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

fn segment_of(tx: &StateTx<'_>, id: &str) -> Result<SegmentRecord, GuardError> {
    tx.get_json::<SegmentRecord>(SEGMENTS, id.as_bytes())?
        .ok_or_else(|| {
            reject(
                RejectionKind::NotFound,
                "unknown_segment",
                format!("no segment {id:?}"),
            )
        })
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

/// Every access request, in id order (read-only; for listings such as the
/// web console's approval queue).
pub fn access_requests(ledger: &Ledger) -> Result<Vec<AccessRequest>, GovernanceError> {
    scan_rows(ledger, ACCESS_REQUESTS)
}

/// Every case, in id order (read-only).
pub fn cases(ledger: &Ledger) -> Result<Vec<CaseRecord>, GovernanceError> {
    scan_rows(ledger, CASES)
}

/// Every legal hold in force, in segment id order (read-only).
pub fn holds(ledger: &Ledger) -> Result<Vec<HoldRecord>, GovernanceError> {
    scan_rows(ledger, HOLDS)
}

fn scan_rows<T: serde::de::DeserializeOwned>(
    ledger: &Ledger,
    table: &str,
) -> Result<Vec<T>, GovernanceError> {
    let mut out = Vec::new();
    for row in ledger.store().table_scan(table, b"") {
        let (_, value) = row.map_err(ReadError::from)?;
        if let Ok(v) = serde_json::from_slice(&value) {
            out.push(v);
        }
    }
    Ok(out)
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

// ---------------------------------------------------------------------------
// Retention

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
                    if let Err(e) = store.delete(&key).await {
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
