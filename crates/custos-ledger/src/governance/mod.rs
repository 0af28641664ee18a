//! Governance of footage: cases, access requests and their approval, legal
//! holds, retention, and the gate in front of every view of footage.
//!
//! Every step is a custody entry (DESIGN.md invariant 4) with actor = the
//! caller's role and name, and every rule is checked by the entry's
//! [`Append::guard`](crate::append::Append::guard), in the writer,
//! atomically with the entry: two supervisors approving the same request
//! at once cannot both succeed, and a view is logged only if the approval
//! it rests on is there when the entry is sequenced. State rows (JSON):
//!
//! | table | key | value |
//! | --- | --- | --- |
//! | [`CASES`] | case id | [`CaseRecord`] |
//! | [`ACCESS_REQUESTS`] | request id | [`AccessRequest`] |
//! | [`HOLDS`] | segment id | [`HoldRecord`] |
//! | [`DELETED`] | segment id | seq of its `retention.deleted` entry |
//! | [`COVERAGE`] and others | see `coverage.rs` | coverage findings |
//!
//! ## Rooms
//!
//! - this file: the policy ([`Governance`]), the error
//!   ([`GovernanceError`]) and the small checks every room shares;
//! - `cases.rs`: open, link segments to, close and read cases;
//! - `access.rs`: access requests and their decision, and the
//!   [`FootageGate`] in front of every view and export of footage;
//! - `holds.rs`: place, release and read legal holds;
//! - `coverage.rs`: the ledger's `coverage.gap` findings about each
//!   recorder's footage and a supervisor's `coverage.explained`;
//! - `retention.rs`: where a segment stands against `[retention]`, and
//!   the sweeper.
//!
//! The rooms are private; every public item is re-exported here, so its
//! one path is `governance::create_case`, `governance::FootageGate`, ….
//!
//! Linking a segment to a case writes `case.segment_linked` with
//! `details.segment_id`, which the [`crate::catalogue`] indexes for the
//! `case` search.
//!
//! This module must never let footage be read without first appending its
//! `segment.viewed` entry, never let a requester approve their own request,
//! and never change a row outside the guard of the entry that justifies it.

use custos_core::config::{AccessConfig, RetentionConfig};
use object_store::ObjectStore;
use rand_core::RngCore as _;
use std::sync::Arc;

use crate::append::{GuardError, Rejection, RejectionKind, StateTx};
use crate::auth::{Role, UnknownRole};
use crate::catalogue::{SegmentRecord, SEGMENTS};
use crate::error::{AppendError, ReadError};
use crate::ledger::Ledger;

mod access;
mod cases;
mod coverage;
mod holds;
mod retention;
mod supervision;

pub use crate::catalogue::{ACCESS_REQUESTS, CASES, HOLDS};
pub use access::{
    access_request, access_requests, approved_request, check_footage_access, decide, record_view,
    request_access, AccessAsk, AccessRequest, Approvals, Decision, FootageGate, RequestStatus,
    MAX_APPROVAL_DAYS,
};
pub use cases::{case, cases, close_case, create_case, link_segments, CaseRecord, CaseStatus};
pub use coverage::{
    coverage_actor, coverage_finding, coverage_findings, explain_gap, settle, settle_all, COVERAGE,
    COVERAGE_KEYS, COVERAGE_SETTLED, MAX_EXPLANATION,
};
pub(crate) use coverage::{index as coverage_index, spawn_settle};
pub use custos_core::wire::{HoldRecord, RetentionStatus};
pub use holds::{hold, holds, place_hold, release_hold};
pub use retention::{retention_status, sweep, SweepItem, DELETED};
pub use supervision::{
    aggregate, csv_cell, finding_span, overlap_ns, parse_bound, sums, supervision, to_csv,
    view as supervision_view, Bound, FileFacts as SupervisionFile,
    FindingFacts as SupervisionFinding, Period, CSV_HEADER, DEFAULT_PERIOD_DAYS, LONGEST_FILE,
    MAX_PERIOD_DAYS,
};

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
