//! The `details` of each custody action, as Rust types.
//!
//! An entry's `details` is a JSON object whose members depend on its
//! action. [`Details`] has one variant per action Custos writes, each with a
//! struct naming its members, and [`Details::Other`] for any other action
//! name (the log accepts any valid name; see [`super::Action`]). The parts
//! that write entries build a `Details` value (the dock's events, the
//! ledger's governance, token and audit entries) and the parts that read
//! them parse one with [`Details::parse`] and match on it: nobody looks up
//! members by name.
//!
//! The JSON these types write is the JSON Custos has always written, member
//! for member (the unit tests hold each type to a sample): optional members
//! are absent when unset, except the few that have always been written as
//! `null` (`range` and `request_id` of a view, `original_name` and
//! `verified_seq` of a wipe), which stay `null`.
//!
//! Reading is lenient the way entries are (see the module documentation of
//! [`super`]): members a type does not name are ignored, so that a later
//! version's extra members do not make an old verifier refuse the log. A
//! known action whose details lack a member its type needs does not parse;
//! the ledger refuses such an event when it is admitted, so an entry of
//! this ledger always parses.
//!
//! The canonical bytes of an entry are never re-derived from these types:
//! an [`super::Entry`] keeps the details object it was read from, and the
//! leaf hash covers those bytes.
//!
//! This module never reads a clock, draws randomness or does I/O.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::actions;
use crate::dsse::Envelope;
use crate::manifest::OriginalName;

/// Why a details object does not fit its action's type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("details of {action}: {why}")]
pub struct DetailsError {
    /// The action.
    pub action: String,
    /// What does not fit (serde's words: "missing field `slot`", ...).
    pub why: String,
}

fn is_false(b: &bool) -> bool {
    !*b
}

// ---------------------------------------------------------------------------
// The dock's events

/// `recorder.docked`: a recorder was identified in a slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecorderDocked {
    /// The dock slot.
    pub slot: String,
    /// The recorder profile that matched it.
    pub profile: String,
    /// Its model.
    pub model: String,
    /// How the dock reached it: `directory`, `usb` or `simulated`.
    pub transport: String,
    /// The recorder's clock minus the dock's, in milliseconds, when read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_offset_ms: Option<i64>,
    /// The recorder's clock when it was read (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorder_time: Option<String>,
    /// Its USB serial number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// The officer it is assigned to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub officer_id: Option<String>,
    /// Its firmware version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<String>,
}

/// `recorder.clock_set`: the dock set the recorder's clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecorderClockSet {
    /// The dock slot.
    pub slot: String,
    /// How (the profile's method).
    pub method: String,
    /// The offset found before setting it, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset_ms_before: Option<i64>,
}

/// `recorder.undocked`: the recorder left its slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecorderUndocked {
    /// The dock slot.
    pub slot: String,
    /// Segments found on it.
    pub segments: u64,
    /// Segments finished.
    pub done: u64,
    /// Segment ids not finished.
    pub incomplete: Vec<String>,
}

/// `segment.ingested`: a segment was read, hashed, stored and its manifest
/// signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentIngested {
    /// The signed manifest's DSSE envelope.
    pub manifest: Envelope,
    /// Where the footage is stored (the manifest's `object.key`, repeated
    /// for readers of the entry; the manifest is what counts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_key: Option<String>,
    /// Its SHA-256 (the manifest's, repeated likewise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// `segment.verified`: the stored object was checked against the segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentVerified {
    /// `read_back` or `store_checksum`.
    pub method: String,
    /// The object checked.
    pub object_key: String,
    /// Its SHA-256 (hex).
    pub sha256: String,
}

/// `segment.wiped`: the segment's file was removed from the recorder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentWiped {
    /// The recorder.
    pub recorder_id: String,
    /// The file's name on the recorder (`null` when unknown).
    pub original_name: Option<OriginalName>,
    /// The seq of the segment's `segment.verified` (`null` when unknown).
    pub verified_seq: Option<u64>,
    /// A repeated wipe of a file that came back.
    #[serde(default, skip_serializing_if = "is_false")]
    pub again: bool,
}

// ---------------------------------------------------------------------------
// Access to footage

/// `segment.viewed`: someone played or fetched the footage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentViewed {
    /// The viewer's role.
    pub role: String,
    /// The segment's size in bytes.
    pub size: u64,
    /// The byte range asked for (`bytes=a-b`), `null` for the whole.
    pub range: Option<String>,
    /// The approval the view rests on, `null` for a role that needs none.
    pub request_id: Option<String>,
}

/// `access.requested`: someone asked for access to a case or a segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRequested {
    /// Why.
    pub reason: String,
    /// The case asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case: Option<String>,
    /// The segment asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_id: Option<String>,
}

/// `access.approved` and `access.denied`: a supervisor's decision on a
/// request (the subject is the request id).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AccessDecision {
    /// The supervisor's note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Who asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<String>,
    /// The segment the request covers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_id: Option<String>,
    /// The case the request covers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case: Option<String>,
    /// Days an approval stays in force (approvals only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_days: Option<u32>,
}

/// `access.refused`: an attempt on footage without an approval in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRefused {
    /// The caller's role.
    pub role: String,
    /// The action attempted (`segment.viewed`, `export.created`).
    pub attempted: String,
    /// Why it was refused.
    pub why: String,
}

/// `export.created`: an export bundle was built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportCreated {
    /// The segments exported.
    pub segments: Vec<String>,
    /// The seqs of every custody entry in the bundle.
    pub entries: Vec<u64>,
    /// The case exported, if a case was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case: Option<String>,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Per segment, the approved request used (absent when none was).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<BTreeMap<String, String>>,
    /// The bundle's documents besides the evidence, by member path, with
    /// their SHA-256 (`{"REPORT.pdf": "sha256:..."}`): the bundle verifier
    /// checks each. Absent in exports made before bundles held a report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documents: Option<BTreeMap<String, crate::digest::Digest>>,
    /// An export too large for one entry ([`crate::tiles::MAX_ENTRY_LEN`])
    /// lists its segments, entries and approvals in `export.listed`
    /// entries made just before this one, and names their seqs here; then
    /// `segments`, `entries` and `requests` are empty, and the listing is
    /// the union of the parts'. Absent for an export listed in full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<Vec<u64>>,
}

/// `export.listed` (the subject is the export's id, as its
/// `export.created`'s): one part of a large export's listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportListed {
    /// The segments of this part.
    pub segments: Vec<String>,
    /// The seqs of every custody entry about them in the bundle (all
    /// before this entry).
    pub entries: Vec<u64>,
    /// Per segment of this part, the approved request used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<BTreeMap<String, String>>,
}

// ---------------------------------------------------------------------------
// Cases, holds and retention

/// `case.created`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseCreated {
    /// The case's title.
    pub title: String,
    /// Its category (which may set a retention period).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
}

/// `case.segment_linked` (the subject is the case id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseSegmentLinked {
    /// The segment linked.
    pub segment_id: String,
}

/// `hold.placed` (the subject is the segment id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldPlaced {
    /// Why.
    pub reason: String,
}

/// `retention.deleted`: the sweeper deleted footage whose retention ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionDeleted {
    /// The object deleted.
    pub object_key: String,
    /// The store it was in.
    pub object_url: String,
    /// Its SHA-256 (hex).
    pub sha256: String,
    /// The retention period that ended, in days.
    pub retention_days: u32,
    /// When it ended (RFC 3339).
    pub retention_until: String,
}

/// `audit.scrubbed`: one finding of a scrub (subject: the segment), or its
/// summary (subject: the scrub id), told apart by `result`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditScrubbed {
    /// An object that was missing, altered or unreadable.
    Finding(ScrubFinding),
    /// The scrub's totals (`result: "summary"`).
    Summary(ScrubSummary),
}

/// One object a scrub found wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrubFinding {
    /// The scrub.
    pub scrub_id: String,
    /// `missing`, `altered` or `unreadable`.
    pub result: String,
    /// The object.
    pub object_key: String,
    /// The manifest's SHA-256.
    pub expected_sha256: String,
    /// The manifest's size.
    pub expected_size: u64,
    /// What the object hashed to, when it could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual_sha256: Option<String>,
    /// Its size, when it could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual_size: Option<u64>,
    /// Why it could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A scrub's totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrubSummary {
    /// The store scrubbed.
    pub storage: String,
    /// When it started.
    pub started: String,
    /// When it finished.
    pub finished: String,
    /// Objects checked.
    pub checked: u64,
    /// Objects that matched.
    pub ok: u64,
    /// Objects missing.
    pub missing: u64,
    /// Objects altered.
    pub altered: u64,
    /// Objects unreadable.
    pub unreadable: u64,
    /// Segments skipped because the sweeper deleted them.
    pub skipped_deleted: u64,
    /// The seqs of the finding entries.
    pub findings: Vec<u64>,
}

/// The `result` of a scrub's summary entry.
const SUMMARY: &str = "summary";

// ---------------------------------------------------------------------------
// Tokens

/// `token.created` (the subject is the token's name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenCreated {
    /// Its role.
    pub role: String,
    /// Its id.
    pub token_id: String,
    /// A check value of its secret's hash (never the secret); absent from
    /// entries written before tokens recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_check: Option<String>,
    /// When it expires (RFC 3339), if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// A dock's verifier key registered with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// That key's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The dock's further verifier keys registered with the same token (a
    /// dock signing with several suites: `key` is its first key, these the
    /// others, e.g. its SM2 key beside its Ed25519 key).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_keys: Vec<String>,
}

/// `token.revoked` (the subject is the tokens' name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRevoked {
    /// The ids revoked.
    pub token_ids: Vec<String>,
}

/// `token.used`: an admin token was used (the subject is its name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsed {
    /// The HTTP method.
    pub method: String,
    /// The route's pattern.
    pub route: String,
    /// The URI asked for.
    pub uri: String,
    /// The token's id.
    pub token_id: String,
}

// ---------------------------------------------------------------------------
// Coverage of a recorder's footage

/// `coverage.gap`: the ledger found a gap in a recorder's footage (the
/// subject is the recorder id). Derived by the ledger from the manifests
/// in its catalogue ([`crate::coverage::findings`]), never by a dock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CoverageGap {
    /// The recorder.
    pub recorder_id: String,
    /// The officer of the file the finding is about.
    pub officer_id: String,
    /// `missing_files`, `clock_jump` or `late_ingest`.
    pub kind: String,
    /// The segments it is about: for missing files and a clock jump, the
    /// file before and the file after; for a late ingest, the file.
    pub segments: Vec<String>,
    /// The first missing file number (missing files only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first: Option<u32>,
    /// The last missing file number (missing files only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<u32>,
    /// Where the gap starts (RFC 3339): the end of the file before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Where it ends (RFC 3339): the start of the file after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// One line for a person, Chinese first.
    pub description: String,
}

/// `coverage.explained`: a supervisor's explanation (中断说明) of a
/// `coverage.gap` (the subject is the recorder id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoverageExplained {
    /// The seq of the `coverage.gap` entry explained.
    pub gap_seq: u64,
    /// The explanation.
    pub reason: String,
    /// The segments the gap is about (repeated from it, so that the
    /// explanation is listed in their custody).
    pub segments: Vec<String>,
}

// ---------------------------------------------------------------------------
// The ledger's own keys

/// `ledger.key_added`: from this entry's checkpoint on, `key` signs the
/// ledger's checkpoints too (the subject is the ledger's origin). Appended
/// by the ledger when it starts with a key that did not sign its last
/// checkpoint: auditors learn the new key from a log the old key vouches
/// for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerKeyAdded {
    /// The C2SP verifier key (`name+hash+base64`).
    pub key: String,
    /// Its key id (`name+hash`).
    pub key_id: String,
}

/// `ledger.key_retired`: the key `key_id`, which signed the ledger's last
/// checkpoint, signs no more (the subject is the ledger's origin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerKeyRetired {
    /// The retired key's id (`name+hash`).
    pub key_id: String,
}

/// No members (`case.closed`, `hold.released`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NoDetails {}

// ---------------------------------------------------------------------------
// Details

/// An entry's details, typed by its action (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Details {
    /// `recorder.docked`.
    RecorderDocked(RecorderDocked),
    /// `recorder.clock_set`.
    RecorderClockSet(RecorderClockSet),
    /// `recorder.undocked`.
    RecorderUndocked(RecorderUndocked),
    /// `segment.ingested`.
    SegmentIngested(SegmentIngested),
    /// `segment.verified`.
    SegmentVerified(SegmentVerified),
    /// `segment.wiped`.
    SegmentWiped(SegmentWiped),
    /// `segment.viewed`.
    SegmentViewed(SegmentViewed),
    /// `case.created`.
    CaseCreated(CaseCreated),
    /// `case.segment_linked`.
    CaseSegmentLinked(CaseSegmentLinked),
    /// `case.closed`.
    CaseClosed(NoDetails),
    /// `access.requested`.
    AccessRequested(AccessRequested),
    /// `access.approved`.
    AccessApproved(AccessDecision),
    /// `access.denied`.
    AccessDenied(AccessDecision),
    /// `access.refused`.
    AccessRefused(AccessRefused),
    /// `export.created`.
    ExportCreated(ExportCreated),
    /// `export.listed`.
    ExportListed(ExportListed),
    /// `hold.placed`.
    HoldPlaced(HoldPlaced),
    /// `hold.released`.
    HoldReleased(NoDetails),
    /// `retention.deleted`.
    RetentionDeleted(RetentionDeleted),
    /// `audit.scrubbed`.
    AuditScrubbed(AuditScrubbed),
    /// `token.created`.
    TokenCreated(TokenCreated),
    /// `token.revoked`.
    TokenRevoked(TokenRevoked),
    /// `token.used`.
    TokenUsed(TokenUsed),
    /// `coverage.gap`.
    CoverageGap(CoverageGap),
    /// `coverage.explained`.
    CoverageExplained(CoverageExplained),
    /// `ledger.key_added`.
    LedgerKeyAdded(LedgerKeyAdded),
    /// `ledger.key_retired`.
    LedgerKeyRetired(LedgerKeyRetired),
    /// Any other action (including names in [`actions::ALL`] that Custos
    /// defines but does not write, such as `retention.changed`): its
    /// details as they are.
    Other {
        /// The action's name.
        action: String,
        /// Its details.
        details: Map<String, Value>,
    },
}

fn typed<T: DeserializeOwned>(
    action: &str,
    details: &Map<String, Value>,
) -> Result<T, DetailsError> {
    serde_json::from_value(Value::Object(details.clone())).map_err(|e| DetailsError {
        action: action.to_owned(),
        why: e.to_string(),
    })
}

impl Details {
    /// Read `details` as the type of `action`. Any action name outside the
    /// typed set gives [`Details::Other`]; a typed action whose details do
    /// not fit gives an error naming the member.
    pub fn parse(action: &str, details: &Map<String, Value>) -> Result<Details, DetailsError> {
        use actions as a;
        let d = details;
        Ok(match action {
            a::RECORDER_DOCKED => Details::RecorderDocked(typed(action, d)?),
            a::RECORDER_CLOCK_SET => Details::RecorderClockSet(typed(action, d)?),
            a::RECORDER_UNDOCKED => Details::RecorderUndocked(typed(action, d)?),
            a::SEGMENT_INGESTED => Details::SegmentIngested(typed(action, d)?),
            a::SEGMENT_VERIFIED => Details::SegmentVerified(typed(action, d)?),
            a::SEGMENT_WIPED => Details::SegmentWiped(typed(action, d)?),
            a::SEGMENT_VIEWED => Details::SegmentViewed(typed(action, d)?),
            a::CASE_CREATED => Details::CaseCreated(typed(action, d)?),
            a::CASE_SEGMENT_LINKED => Details::CaseSegmentLinked(typed(action, d)?),
            a::CASE_CLOSED => Details::CaseClosed(typed(action, d)?),
            a::ACCESS_REQUESTED => Details::AccessRequested(typed(action, d)?),
            a::ACCESS_APPROVED => Details::AccessApproved(typed(action, d)?),
            a::ACCESS_DENIED => Details::AccessDenied(typed(action, d)?),
            a::ACCESS_REFUSED => Details::AccessRefused(typed(action, d)?),
            a::EXPORT_CREATED => Details::ExportCreated(typed(action, d)?),
            a::EXPORT_LISTED => Details::ExportListed(typed(action, d)?),
            a::HOLD_PLACED => Details::HoldPlaced(typed(action, d)?),
            a::HOLD_RELEASED => Details::HoldReleased(typed(action, d)?),
            a::RETENTION_DELETED => Details::RetentionDeleted(typed(action, d)?),
            a::AUDIT_SCRUBBED => Details::AuditScrubbed(
                if d.get("result").and_then(Value::as_str) == Some(SUMMARY) {
                    AuditScrubbed::Summary(typed(action, d)?)
                } else {
                    AuditScrubbed::Finding(typed(action, d)?)
                },
            ),
            a::TOKEN_CREATED => Details::TokenCreated(typed(action, d)?),
            a::TOKEN_REVOKED => Details::TokenRevoked(typed(action, d)?),
            a::TOKEN_USED => Details::TokenUsed(typed(action, d)?),
            a::COVERAGE_GAP => Details::CoverageGap(typed(action, d)?),
            a::COVERAGE_EXPLAINED => Details::CoverageExplained(typed(action, d)?),
            a::LEDGER_KEY_ADDED => Details::LedgerKeyAdded(typed(action, d)?),
            a::LEDGER_KEY_RETIRED => Details::LedgerKeyRetired(typed(action, d)?),
            other => Details::Other {
                action: other.to_owned(),
                details: details.clone(),
            },
        })
    }

    /// The action these details belong to.
    pub fn action(&self) -> &str {
        use actions as a;
        match self {
            Details::RecorderDocked(_) => a::RECORDER_DOCKED,
            Details::RecorderClockSet(_) => a::RECORDER_CLOCK_SET,
            Details::RecorderUndocked(_) => a::RECORDER_UNDOCKED,
            Details::SegmentIngested(_) => a::SEGMENT_INGESTED,
            Details::SegmentVerified(_) => a::SEGMENT_VERIFIED,
            Details::SegmentWiped(_) => a::SEGMENT_WIPED,
            Details::SegmentViewed(_) => a::SEGMENT_VIEWED,
            Details::CaseCreated(_) => a::CASE_CREATED,
            Details::CaseSegmentLinked(_) => a::CASE_SEGMENT_LINKED,
            Details::CaseClosed(_) => a::CASE_CLOSED,
            Details::AccessRequested(_) => a::ACCESS_REQUESTED,
            Details::AccessApproved(_) => a::ACCESS_APPROVED,
            Details::AccessDenied(_) => a::ACCESS_DENIED,
            Details::AccessRefused(_) => a::ACCESS_REFUSED,
            Details::ExportCreated(_) => a::EXPORT_CREATED,
            Details::ExportListed(_) => a::EXPORT_LISTED,
            Details::HoldPlaced(_) => a::HOLD_PLACED,
            Details::HoldReleased(_) => a::HOLD_RELEASED,
            Details::RetentionDeleted(_) => a::RETENTION_DELETED,
            Details::AuditScrubbed(_) => a::AUDIT_SCRUBBED,
            Details::TokenCreated(_) => a::TOKEN_CREATED,
            Details::TokenRevoked(_) => a::TOKEN_REVOKED,
            Details::TokenUsed(_) => a::TOKEN_USED,
            Details::CoverageGap(_) => a::COVERAGE_GAP,
            Details::CoverageExplained(_) => a::COVERAGE_EXPLAINED,
            Details::LedgerKeyAdded(_) => a::LEDGER_KEY_ADDED,
            Details::LedgerKeyRetired(_) => a::LEDGER_KEY_RETIRED,
            Details::Other { action, .. } => action,
        }
    }

    /// The details as the JSON object an entry or event holds.
    pub fn to_map(&self) -> Map<String, Value> {
        fn object<T: Serialize>(value: &T) -> Map<String, Value> {
            match serde_json::to_value(value) {
                Ok(Value::Object(m)) => m,
                // INVARIANT: every details type is a struct of strings,
                // integers, lists, maps with string keys and envelopes,
                // which serde_json writes as an object without fail.
                other => unreachable!("details did not serialise to an object: {other:?}"),
            }
        }
        match self {
            Details::RecorderDocked(d) => object(d),
            Details::RecorderClockSet(d) => object(d),
            Details::RecorderUndocked(d) => object(d),
            Details::SegmentIngested(d) => object(d),
            Details::SegmentVerified(d) => object(d),
            Details::SegmentWiped(d) => object(d),
            Details::SegmentViewed(d) => object(d),
            Details::CaseCreated(d) => object(d),
            Details::CaseSegmentLinked(d) => object(d),
            Details::CaseClosed(d) | Details::HoldReleased(d) => object(d),
            Details::AccessRequested(d) => object(d),
            Details::AccessApproved(d) | Details::AccessDenied(d) => object(d),
            Details::AccessRefused(d) => object(d),
            Details::ExportCreated(d) => object(d),
            Details::ExportListed(d) => object(d),
            Details::HoldPlaced(d) => object(d),
            Details::RetentionDeleted(d) => object(d),
            Details::AuditScrubbed(AuditScrubbed::Finding(d)) => object(d),
            Details::AuditScrubbed(AuditScrubbed::Summary(d)) => {
                let mut m = object(d);
                m.insert("result".into(), SUMMARY.into());
                m
            }
            Details::TokenCreated(d) => object(d),
            Details::TokenRevoked(d) => object(d),
            Details::TokenUsed(d) => object(d),
            Details::CoverageGap(d) => object(d),
            Details::CoverageExplained(d) => object(d),
            Details::LedgerKeyAdded(d) => object(d),
            Details::LedgerKeyRetired(d) => object(d),
            Details::Other { details, .. } => details.clone(),
        }
    }

    /// The segment ids these details name besides the entry's subject: a
    /// linked, requested or decided segment, or an export's segments. For an
    /// action outside the typed set, its `segment_id` string and the strings
    /// of its `segments` list, so that an unknown action cannot name a
    /// segment unseen (the catalogue lists the entry under each, and a
    /// dock's entry is refused when one is another dock's work).
    pub fn segments_named(&self) -> Vec<&str> {
        match self {
            Details::CaseSegmentLinked(d) => vec![d.segment_id.as_str()],
            Details::AccessRequested(AccessRequested { segment_id, .. })
            | Details::AccessApproved(AccessDecision { segment_id, .. })
            | Details::AccessDenied(AccessDecision { segment_id, .. }) => {
                segment_id.iter().map(String::as_str).collect()
            }
            Details::ExportCreated(d) => d.segments.iter().map(String::as_str).collect(),
            Details::ExportListed(d) => d.segments.iter().map(String::as_str).collect(),
            Details::CoverageGap(d) => d.segments.iter().map(String::as_str).collect(),
            Details::CoverageExplained(d) => d.segments.iter().map(String::as_str).collect(),
            Details::Other { details, .. } => {
                let one = details.get("segment_id").and_then(Value::as_str);
                let list = details
                    .get("segments")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str);
                one.into_iter().chain(list).collect()
            }
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    /// Each action with a sample of its details as Custos has written them
    /// (built the way the writers built them before these types existed).
    fn samples() -> Vec<(&'static str, Value)> {
        let envelope = json!({
            "payloadType": "application/vnd.custos.manifest+json",
            "payload": "e30=",
            "signatures": [{"keyid": "dock-01+0a0b0c0d", "sig": "c2ln"}]
        });
        vec![
            (
                "recorder.docked",
                json!({"slot": "3", "profile": "generic", "model": "BWC-1", "transport": "usb"}),
            ),
            (
                "recorder.docked",
                json!({"slot": "3", "profile": "generic", "model": "BWC-1", "transport": "usb",
                "clock_offset_ms": -1500, "recorder_time": "2026-03-01T07:00:00Z",
                "serial": "SN1", "officer_id": "o-42", "firmware": "1.2"}),
            ),
            ("recorder.clock_set", json!({"slot": "3", "method": "file"})),
            (
                "recorder.clock_set",
                json!({"slot": "3", "method": "usb", "offset_ms_before": 90000}),
            ),
            (
                "recorder.undocked",
                json!({"slot": "3", "segments": 4, "done": 3, "incomplete": ["s-4"]}),
            ),
            (
                "segment.ingested",
                json!({"manifest": envelope, "object_key": "k/1.mp4", "sha256": "ab"}),
            ),
            (
                "segment.verified",
                json!({"method": "read_back", "object_key": "k/1.mp4", "sha256": "ab"}),
            ),
            (
                "segment.wiped",
                json!({"recorder_id": "r-1", "original_name": "A.MP4", "verified_seq": 7}),
            ),
            (
                "segment.wiped",
                json!({"recorder_id": "r-1", "original_name": {"base64": "/w=="}, "verified_seq": null, "again": true}),
            ),
            (
                "segment.wiped",
                json!({"recorder_id": "r-1", "original_name": null, "verified_seq": 7}),
            ),
            (
                "segment.viewed",
                json!({"role": "reviewer", "size": 10, "range": null, "request_id": null}),
            ),
            (
                "segment.viewed",
                json!({"role": "reviewer", "size": 10, "range": "bytes=0-9", "request_id": "ar-1"}),
            ),
            ("case.created", json!({"title": "T"})),
            ("case.created", json!({"title": "T", "category": "traffic"})),
            ("case.segment_linked", json!({"segment_id": "s-1"})),
            ("case.closed", json!({})),
            ("access.requested", json!({"reason": "R", "case": "case-1"})),
            (
                "access.requested",
                json!({"reason": "R", "segment_id": "s-1"}),
            ),
            (
                "access.approved",
                json!({"requester": "rev", "segment_id": "s-1", "valid_days": 7, "note": "ok"}),
            ),
            (
                "access.denied",
                json!({"requester": "rev", "case": "case-1"}),
            ),
            ("access.denied", json!({})),
            (
                "access.refused",
                json!({"role": "reviewer", "attempted": "segment.viewed", "why": "no approval"}),
            ),
            (
                "export.created",
                json!({"segments": ["s-1"], "entries": [0, 3]}),
            ),
            (
                "export.created",
                json!({"segments": ["s-1", "s-2"], "entries": [1], "case": "case-1",
                "reason": "court", "requests": {"s-1": "ar-1"}}),
            ),
            (
                "export.created",
                json!({"segments": [], "entries": [], "reason": "court", "parts": [7, 9]}),
            ),
            (
                "export.listed",
                json!({"segments": ["s-1"], "entries": [0, 3], "requests": {"s-1": "ar-1"}}),
            ),
            ("hold.placed", json!({"reason": "R"})),
            ("hold.released", json!({})),
            (
                "retention.deleted",
                json!({"object_key": "k", "object_url": "s3://b", "sha256": "ab",
                "retention_days": 180, "retention_until": "2026-09-01T00:00:00Z"}),
            ),
            (
                "audit.scrubbed",
                json!({"scrub_id": "scrub-1", "result": "missing", "object_key": "k",
                "expected_sha256": "ab", "expected_size": 10}),
            ),
            (
                "audit.scrubbed",
                json!({"scrub_id": "scrub-1", "result": "altered", "object_key": "k",
                "expected_sha256": "ab", "expected_size": 10, "actual_sha256": "cd", "actual_size": 11}),
            ),
            (
                "audit.scrubbed",
                json!({"scrub_id": "scrub-1", "result": "unreadable", "object_key": "k",
                "expected_sha256": "ab", "expected_size": 10, "error": "denied"}),
            ),
            (
                "audit.scrubbed",
                json!({"result": "summary", "storage": "file:///s", "started": "a", "finished": "b",
                "checked": 3, "ok": 1, "missing": 1, "altered": 1, "unreadable": 0, "skipped_deleted": 0,
                "findings": [4, 5]}),
            ),
            (
                "token.created",
                json!({"role": "reviewer", "token_id": "t1", "secret_check": "x"}),
            ),
            (
                "token.created",
                json!({"role": "dock", "token_id": "t1", "secret_check": "x",
                "expires_at": "2027-01-01T00:00:00Z", "key": "dock-01+0a0b0c0d+AQ==", "key_id": "dock-01+0a0b0c0d"}),
            ),
            ("token.revoked", json!({"token_ids": ["t1", "t2"]})),
            (
                "token.used",
                json!({"method": "GET", "route": "/v1/tokens", "uri": "/v1/tokens", "token_id": "t1"}),
            ),
            (
                "dock.note",
                json!({"segment_id": "s-1", "anything": [1, {"x": null}]}),
            ),
            ("retention.changed", json!({"days": 30})),
            (
                "coverage.gap",
                json!({"recorder_id": "r-1", "officer_id": "o-42", "kind": "missing_files",
                "segments": ["s-2", "s-4"], "first": 3, "last": 3,
                "from": "2026-03-01T08:15:00Z", "to": "2026-03-01T09:00:00Z",
                "description": "缺失文件 missing file(s) 0003"}),
            ),
            (
                "coverage.gap",
                json!({"recorder_id": "r-1", "officer_id": "o-42", "kind": "late_ingest",
                "segments": ["s-2"], "description": "逾期入库"}),
            ),
            (
                "coverage.explained",
                json!({"gap_seq": 12, "reason": "battery ran out", "segments": ["s-2", "s-4"]}),
            ),
            (
                "ledger.key_added",
                json!({"key": "ledger+0a0b0c0d+AeGx6vSgfxAfXz1NRWKPPcyDl7tHITKUEQpn9ZSc3ubE",
                "key_id": "ledger+0a0b0c0d"}),
            ),
            ("ledger.key_retired", json!({"key_id": "ledger+0a0b0c0d"})),
        ]
    }

    #[test]
    fn every_sample_reads_and_writes_back_member_for_member() {
        for (action, value) in samples() {
            let m = map(value);
            let d = Details::parse(action, &m).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(d.action(), action);
            assert_eq!(d.to_map(), m, "{action}");
        }
    }

    #[test]
    fn every_action_custos_writes_has_a_type() {
        let typed: Vec<&str> = samples()
            .iter()
            .filter_map(|(a, v)| match Details::parse(a, &map(v.clone())) {
                Ok(Details::Other { .. }) => None,
                _ => Some(*a),
            })
            .collect();
        for a in actions::ALL {
            let expected = !matches!(
                *a,
                actions::RETENTION_CHANGED | actions::SEGMENT_DOWNLOADED | actions::KEY_REGISTERED
            );
            assert_eq!(typed.contains(a), expected, "{a}");
        }
    }

    #[test]
    fn a_missing_member_is_named_and_an_unknown_one_ignored() {
        let e = Details::parse("recorder.docked", &map(json!({"slot": "1"}))).unwrap_err();
        assert_eq!(e.action, "recorder.docked");
        assert!(e.why.contains("profile"), "{e}");
        assert_eq!(
            e.to_string(),
            format!("details of recorder.docked: {}", e.why)
        );
        let d = Details::parse("hold.placed", &map(json!({"reason": "R", "later": 1}))).unwrap();
        assert_eq!(d, Details::HoldPlaced(HoldPlaced { reason: "R".into() }));
        let e = Details::parse(
            "segment.viewed",
            &map(json!({"role": "r", "size": "ten", "range": null, "request_id": null})),
        )
        .unwrap_err();
        assert!(e.why.contains("invalid type"), "{e}");
    }

    #[test]
    fn the_segments_an_entry_names() {
        let named = |a: &str, v: Value| -> Vec<String> {
            let d = Details::parse(a, &map(v)).unwrap();
            d.segments_named().into_iter().map(str::to_owned).collect()
        };
        assert_eq!(
            named("case.segment_linked", json!({"segment_id": "s-1"})),
            ["s-1"]
        );
        assert_eq!(
            named("access.requested", json!({"reason": "r", "case": "c"})),
            Vec::<String>::new()
        );
        assert_eq!(
            named("access.approved", json!({"segment_id": "s-2"})),
            ["s-2"]
        );
        assert_eq!(
            named(
                "export.created",
                json!({"segments": ["a", "b"], "entries": []})
            ),
            ["a", "b"]
        );
        assert_eq!(
            named(
                "export.listed",
                json!({"segments": ["c", "a"], "entries": [4]})
            ),
            ["c", "a"]
        );
        assert_eq!(
            named(
                "dock.note",
                json!({"segment_id": "x", "segments": ["y", 3, "z"]})
            ),
            ["x", "y", "z"]
        );
        // A typed action names only what its type holds.
        assert_eq!(
            named("hold.placed", json!({"reason": "r", "segment_id": "s"})),
            Vec::<String>::new()
        );
    }
}
