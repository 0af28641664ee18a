//! The JSON shapes of the ledger's HTTP API, shared by the server, its
//! client and the tools that read what either writes.
//!
//! Every type here is what travels on the wire, with the field names of
//! DESIGN.md ("Ledger HTTP API (v1)"): an entry line is `{"seq", "raw",
//! "entry"}`, an inclusion proof `{"index", "size", "hashes"}`, a consistency
//! proof `{"from", "to", "hashes"}`, an error `{"error", "message"}`, and the
//! catalogue's, the access rules' and the retention rules' records as the
//! API shows them. An export bundle's `proofs/<seq>.json` is an
//! [`InclusionProof`]; its `entries.jsonl` lines are [`EntryLine`]s, the
//! same type (one definition of each shape).
//!
//! The dock's status endpoint, a different server, has its shapes in
//! [`dock`].
//!
//! With the `openapi` feature the types also describe themselves to utoipa
//! for the server's OpenAPI document.
//!
//! This module must never hold behaviour beyond (de)serialisation: the rules
//! live in the ledger, the transport in the server and the client.

pub mod dock;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::entry::Actor;
use crate::manifest::Manifest;
use crate::merkle::Hash;

/// One line of `GET /v1/entries` (and of a bundle's `entries.jsonl`).
///
/// `raw` is the base64 of the exact leaf bytes; `entry` is the same bytes
/// embedded as JSON, for readers that do not want to decode `raw`. Verifiers
/// must hash `raw`, never a re-serialisation of `entry`. A line has no
/// other members.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EntryLine {
    /// The entry's index in the log.
    pub seq: u64,
    /// Base64 (standard, padded) of the exact leaf bytes.
    pub raw: String,
    /// The entry itself (the bytes of `raw`, decoded as JSON).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub entry: Box<RawValue>,
}

/// Leaf bytes that cannot travel as an [`EntryLine`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("entry {seq}: {why}")]
pub struct BadEntryLine {
    /// The entry's seq.
    pub seq: u64,
    /// What is wrong with its bytes.
    pub why: &'static str,
}

impl EntryLine {
    /// The line for entry `seq` with leaf bytes `raw`, which must be one
    /// line of UTF-8 JSON (stored entries always are).
    pub fn new(seq: u64, raw: &[u8]) -> Result<EntryLine, BadEntryLine> {
        let bad = |why| BadEntryLine { seq, why };
        let text = std::str::from_utf8(raw).map_err(|_| bad("its bytes are not UTF-8"))?;
        if text.contains(['\n', '\r']) {
            return Err(bad("its bytes hold a line break"));
        }
        let entry =
            RawValue::from_string(text.to_owned()).map_err(|_| bad("its bytes are not JSON"))?;
        Ok(EntryLine {
            seq,
            raw: B64.encode(raw),
            entry,
        })
    }

    /// The leaf bytes, decoded from `raw`.
    pub fn raw_bytes(&self) -> Result<Vec<u8>, base64::DecodeError> {
        B64.decode(&self.raw)
    }

    /// The entry's leaf hash, `SHA-256(0x00 || raw)`, over the bytes of
    /// `raw` (never of `entry`).
    pub fn leaf_hash(&self) -> Result<Hash, base64::DecodeError> {
        Ok(crate::merkle::leaf_hash(&self.raw_bytes()?))
    }

    /// `{"seq":N,"raw":"<base64>","entry":<raw>}` and a newline.
    pub fn to_json_line(&self) -> String {
        // INVARIANT: a number, a base64 string and a RawValue always
        // serialise.
        let mut line = serde_json::to_string(self).expect("an entry line serialises");
        line.push('\n');
        line
    }
}

impl PartialEq for EntryLine {
    fn eq(&self, other: &Self) -> bool {
        self.seq == other.seq && self.raw == other.raw && self.entry.get() == other.entry.get()
    }
}

impl Eq for EntryLine {}

/// `GET /v1/proof/inclusion`: the audit path of leaf `index` in the tree of
/// `size` leaves (RFC 9162 §2.1.3), sibling of the leaf first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct InclusionProof {
    /// The leaf's index (the entry's `seq`).
    pub index: u64,
    /// The tree size the proof is for.
    pub size: u64,
    /// The path, base64 hashes.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub hashes: Vec<Hash>,
}

/// `GET /v1/proof/consistency`: the proof that the tree of `from` leaves is a
/// prefix of the tree of `to` leaves (RFC 9162 §2.1.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsistencyProof {
    /// The older size.
    pub from: u64,
    /// The newer size.
    pub to: u64,
    /// The proof, base64 hashes.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub hashes: Vec<Hash>,
}

/// The answer to an append (`POST /v1/events` and the internal API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Receipt {
    /// The entry's index. For a duplicate envelope, the first entry's index.
    pub seq: u64,
    /// The entry's leaf hash (base64): `SHA-256(0x00 || entry bytes)`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub leaf_hash: Hash,
    /// The tree size published with (or, for a duplicate, after) the entry:
    /// an inclusion proof for `seq` at this size is available at once.
    pub size: u64,
    /// True when the same envelope was already in the log: nothing was added.
    pub duplicate: bool,
}

/// The one error shape of the API: `{"error": code, "message": text}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// A stable machine-readable code, e.g. `bad_signature`.
    pub error: String,
    /// What is wrong, for a person.
    pub message: String,
}

/// One custody entry with its inclusion proof, as `/v1/segments/{id}/custody`
/// serves it: the `/v1/entries` line fields plus `proof`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProvenEntry {
    /// The entry's index in the log.
    pub seq: u64,
    /// Base64 of the exact leaf bytes.
    pub raw: String,
    /// The entry itself (the bytes of `raw`, decoded as JSON).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub entry: Box<RawValue>,
    /// Its inclusion proof against the response's checkpoint.
    pub proof: InclusionProof,
}

impl ProvenEntry {
    /// The entry in the `/v1/entries` line format (without the proof).
    pub fn line(&self) -> EntryLine {
        EntryLine {
            seq: self.seq,
            raw: self.raw.clone(),
            entry: self.entry.clone(),
        }
    }
}

/// `GET /v1/segments/{id}/custody`: every entry about a segment, each with
/// its inclusion proof against one checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Custody {
    /// The segment.
    pub segment_id: String,
    /// The signed checkpoint (C2SP signed note) every proof is against.
    pub checkpoint: String,
    /// Its tree size.
    pub size: u64,
    /// The entries, in log order.
    pub entries: Vec<ProvenEntry>,
}

/// `GET /healthz`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    /// `ok`, or why the ledger refuses to serve (`tampered`, `storage_failed`).
    pub status: String,
    /// The published tree size.
    pub size: u64,
    /// The background full verification of the stored log since start-up:
    /// `not_run`, `running`, `passed` or `failed`.
    #[serde(default)]
    pub full_check: String,
    /// Details when not ok.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `GET /livez` and `GET /readyz`: whether the process answers, and whether
/// it can do its work (the ledger serving and appending, the object store
/// answering).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Readiness {
    /// `live` (`/livez`); `ready`, or why not: `tampered`,
    /// `storage_failed`, `store_unreachable` (`/readyz`).
    pub status: String,
    /// The object store footage is read from: `ok`, `unreachable` or
    /// `not_configured` (`/readyz` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// Details when not ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A segment as the API shows it: the catalogue record and its status.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SegmentView {
    /// `ingested`, `verified` or `wiped`.
    pub status: String,
    /// The catalogue record (manifest, entries, cases).
    #[serde(flatten)]
    pub record: SegmentRecord,
}

impl From<SegmentRecord> for SegmentView {
    fn from(record: SegmentRecord) -> Self {
        SegmentView {
            status: record.status().to_owned(),
            record,
        }
    }
}

/// `GET /v1/segments/{id}`: the segment, where it stands against the
/// retention rules, and its legal hold.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SegmentDetail {
    /// The segment as search shows it.
    #[serde(flatten)]
    pub segment: SegmentView,
    /// Retention: days kept, keep-until date, the open cases that keep it,
    /// whether a hold keeps it, whether the sweeper may delete it now (or
    /// the entry that recorded its deletion).
    pub retention: RetentionStatus,
    /// Its legal hold: who placed it, why, and the `hold.placed` entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold: Option<HoldRecord>,
}

/// `GET /v1/segments`: the matching segments.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SearchResults {
    /// The matching segments.
    pub segments: Vec<SegmentView>,
}

/// What the catalogue knows about one segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SegmentRecord {
    /// The segment id.
    pub segment_id: String,
    /// The signed manifest's content (the signed bytes are in entry
    /// `ingested_seq`'s `details.manifest`).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub manifest: Manifest,
    /// The entry that ingested it.
    pub ingested_seq: u64,
    /// The entry that recorded its verification in storage, once there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_seq: Option<u64>,
    /// The entry that recorded its removal from the recorder, once there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wiped_seq: Option<u64>,
    /// Cases it is linked to, in link order.
    #[serde(default)]
    pub cases: Vec<String>,
}

impl SegmentRecord {
    /// `ingested`, `verified` or `wiped` (removed from the recorder after
    /// verification; still stored).
    pub fn status(&self) -> &'static str {
        match (self.verified_seq, self.wiped_seq) {
            (_, Some(_)) => "wiped",
            (Some(_), None) => "verified",
            (None, None) => "ingested",
        }
    }
}

/// A catalogue search: every given criterion must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct SegmentQuery {
    /// Officer id.
    pub officer: Option<String>,
    /// Recorder id.
    pub recorder: Option<String>,
    /// Recording started at or after this instant (RFC 3339).
    pub from: Option<String>,
    /// Recording started before this instant (RFC 3339).
    pub to: Option<String>,
    /// Linked to this case.
    pub case: Option<String>,
    /// Most results (default 100, at most 1000).
    pub limit: Option<usize>,
}

/// A legal hold on a segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HoldRecord {
    /// The segment held.
    pub segment_id: String,
    /// Why.
    pub reason: String,
    /// Who placed it.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub placed_by: Actor,
    /// The `hold.placed` entry.
    pub placed_seq: u64,
}

/// A coverage finding about a recorder's footage, as the ledger recorded it
/// (`coverage.gap`), and its explanation once a supervisor gave one
/// (`coverage.explained`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CoverageFinding {
    /// The seq of its `coverage.gap` entry: its id.
    pub gap_seq: u64,
    /// When the ledger recorded it (RFC 3339).
    pub found_at: String,
    /// What the `coverage.gap` entry says (its members, inline).
    #[serde(flatten)]
    pub gap: crate::entry::details::CoverageGap,
    /// `open` or `explained`.
    pub state: String,
    /// The explanation, once given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<CoverageExplanation>,
}

/// A supervisor's explanation (中断说明) of a coverage finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CoverageExplanation {
    /// The seq of its `coverage.explained` entry.
    pub seq: u64,
    /// Who gave it.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub by: Actor,
    /// When (RFC 3339).
    pub at: String,
    /// The explanation.
    pub reason: String,
}

/// `GET /v1/coverage`: the findings listed, in the order they were
/// recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CoverageList {
    /// The findings.
    pub findings: Vec<CoverageFinding>,
}

/// Which coverage findings to list (`GET /v1/coverage`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct CoverageQuery {
    /// Only this recorder's.
    pub recorder: Option<String>,
    /// Only this officer's.
    pub officer: Option<String>,
    /// `true`: only open findings; `false`: only explained ones.
    pub open: Option<bool>,
    /// Only findings about footage at or after this instant (RFC 3339, or
    /// a date: that UTC day's start): the time of the gap or clock jump,
    /// or of a late file's recording.
    pub from: Option<String>,
    /// Only findings about footage before this instant (RFC 3339, or a
    /// date: that UTC day included).
    pub to: Option<String>,
}

/// The supervisor's view over a period (`GET /v1/supervision`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct SupervisionQuery {
    /// The period's start, inclusive: an RFC 3339 date-time, or a date
    /// (`2026-12-01`, from that UTC day's start). Seven days before `to`
    /// when not given.
    pub from: Option<String>,
    /// The period's end, exclusive: an RFC 3339 date-time, or a date
    /// (`2026-12-07`: that UTC day is included). Now when not given. At
    /// most 366 days after `from`.
    pub to: Option<String>,
    /// Only this officer's rows.
    pub officer: Option<String>,
    /// Only this recorder's rows.
    pub recorder: Option<String>,
    /// `csv` for a CSV file (as `Accept: text/csv` asks); JSON otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

/// One officer with one recorder over the period: what was recorded and
/// what the coverage check found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SupervisionRow {
    /// The officer.
    pub officer_id: String,
    /// The recorder.
    pub recorder_id: String,
    /// Recording time inside the period, in milliseconds (a file that
    /// straddles a bound counts only its part inside).
    pub recording_ms: u64,
    /// Files recorded (at least partly) in the period.
    pub segments: u64,
    /// Of those, docked more than 24 h after their recording ended.
    pub late: u64,
    /// Of those, damaged (still ingested).
    pub damaged: u64,
    /// Coverage findings about the period not yet explained.
    pub findings_open: u64,
    /// Coverage findings about the period explained by a supervisor.
    pub findings_explained: u64,
}

/// Counts summed over several officer-and-recorder rows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SupervisionCounts {
    /// Recording time inside the period, in milliseconds.
    pub recording_ms: u64,
    /// Files recorded (at least partly) in the period.
    pub segments: u64,
    /// Of those, docked more than 24 h after their recording ended.
    pub late: u64,
    /// Of those, damaged.
    pub damaged: u64,
    /// Coverage findings about the period not yet explained.
    pub findings_open: u64,
    /// Coverage findings about the period explained by a supervisor.
    pub findings_explained: u64,
}

impl From<&SupervisionRow> for SupervisionCounts {
    fn from(row: &SupervisionRow) -> Self {
        let mut c = SupervisionCounts::default();
        c.add(row);
        c
    }
}

impl SupervisionCounts {
    /// Adds `row`'s counts (saturating).
    pub fn add(&mut self, row: &SupervisionRow) {
        self.recording_ms = self.recording_ms.saturating_add(row.recording_ms);
        self.segments = self.segments.saturating_add(row.segments);
        self.late = self.late.saturating_add(row.late);
        self.damaged = self.damaged.saturating_add(row.damaged);
        self.findings_open = self.findings_open.saturating_add(row.findings_open);
        self.findings_explained = self
            .findings_explained
            .saturating_add(row.findings_explained);
    }
}

/// One officer's (over all their recorders) or one recorder's (over all
/// its officers) counts in the period.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SupervisionSum {
    /// The officer or recorder.
    pub id: String,
    /// Its counts.
    #[serde(flatten)]
    pub counts: SupervisionCounts,
}

/// `GET /v1/supervision`: the rows, by officer then recorder, and their
/// sums per officer, per recorder and in all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Supervision {
    /// The period's start (RFC 3339).
    pub from: String,
    /// The period's end (RFC 3339, exclusive).
    pub to: String,
    /// One row per officer and recorder with footage or findings in the
    /// period.
    pub rows: Vec<SupervisionRow>,
    /// The rows summed per officer, by officer.
    pub by_officer: Vec<SupervisionSum>,
    /// The rows summed per recorder, by recorder.
    pub by_recorder: Vec<SupervisionSum>,
    /// All rows summed.
    pub total: SupervisionCounts,
}

/// Where a segment stands against the retention rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RetentionStatus {
    /// The segment.
    pub segment_id: String,
    /// Days it is kept (never below 180), counted from the later of its
    /// recording's end and its ingest on the ledger's clock.
    pub days: u32,
    /// The category that set `days`, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// When its retention ends (RFC 3339).
    pub until: String,
    /// Under a legal hold.
    pub held: bool,
    /// Open cases it is linked to.
    pub open_cases: Vec<String>,
    /// Already deleted by the sweeper (the seq of the `retention.deleted` entry).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_seq: Option<u64>,
    /// Whether the sweeper may delete it now.
    pub eligible: bool,
}

/// What to export and why: `POST /v1/exports`'s body, and what the ledger's
/// exporter takes. With a `case`, the ledger adds the segments linked to it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportRequest {
    /// The segment ids, in the order given (duplicates are dropped).
    #[serde(default)]
    pub segments: Vec<String>,
    /// The case the segments were chosen through, if any (recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case: Option<String>,
    /// Why the export is made, if the caller said (recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
