//! Export bundles from a live ledger (DESIGN.md "Formats", export bundle;
//! the layout and the verifier are in [`custos_core::bundle`]).
//!
//! An export runs in two steps:
//!
//! 1. [`prepare_export`] (async, small): gathers every entry about the
//!    requested segments, makes the chain-of-custody report from them
//!    ([`crate::report`]), appends the `export.created` entry naming them
//!    and the report's SHA-256 (`details.segments`, `details.entries`,
//!    `details.documents`), waits until it is durable and
//!    published, and collects what the bundle holds besides footage: the
//!    checkpoint the ledger signs at exactly the export entry's seq + 1
//!    (whatever the log has grown to meanwhile; [`Ledger::checkpoint_at`]),
//!    the entry lines, their inclusion proofs at that size, the signed
//!    manifests and
//!    the keys (the ledger's and every dock key that signed a manifest or an
//!    event in the bundle). With witnesses ([`Ledger::witness_policy`]), it
//!    also waits (at most 15 s) for the first checkpoint the tiles
//!    publisher published with the witnesses' cosignatures that covers the
//!    export entry, and proves every entry under it: one C2SP tlog-proof per
//!    entry, and the policy file. All of it is bounded by the number of
//!    entries, never by the size of the footage.
//! 2. [`write_bundle`] (blocking): writes the tar through
//!    [`BundleWriter`], streaming each segment's footage from a
//!    [`FootageSource`] through a fixed buffer.
//!
//! This module must never hold a footage object in memory, never write a
//! bundle whose checkpoint is not at its export entry's seq + 1 (a verifier
//! refuses it: an entry after the export could have been dropped), never
//! export part of a case silently, and never record an export of a segment
//! the catalogue does not know.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt as _};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

use custos_core::bundle::{BundleWriteError, BundleWriter, EntryLine, InclusionProof};
use custos_core::dsse::Envelope;
use custos_core::entry::details::{ExportCreated, ExportListed, SegmentIngested};
use custos_core::entry::{actions, Details, Entry};
use custos_core::keys::VerifierKey;
use custos_core::manifest::Manifest;
use rand_core::RngCore as _;

use crate::append::Append;
use crate::auth::{DockKeyRecord, DOCK_KEYS};
use crate::error::{AppendError, ReadError, StoreError};
use crate::governance::{FootageGate, GovernanceError};
use crate::ledger::Ledger;

/// Most segments one export may name. Its listing (the segments, every
/// earlier entry about them, the approvals used) goes into its
/// `export.created` entry when it fits one entry (a tlog-tiles entry
/// bundle holds 65,535 bytes), else into `export.listed` parts that the
/// `export.created` names ([`listing_parts`]).
pub const MAX_EXPORT_SEGMENTS: usize = 10_000;

/// The longest `details` (as JSON) of an export's own entries: what a
/// custody entry may hold, less room for its other fields (seq, prev,
/// time, actor, action, subject).
pub const EXPORT_DETAILS_BUDGET: usize = custos_core::tiles::MAX_ENTRY_LEN - 1024;

/// Append one of the export's own entries (`export.listed` or
/// `export.created`, subject `export_id`) by the gate's actor, guarded by
/// the approvals it relies on (still in force in the writer); a refusal is
/// on the record ([`FootageGate::refused_in_guard`]). Its seq.
async fn append_export_entry(
    ledger: &Ledger,
    gate: &FootageGate,
    approvals: &crate::governance::Approvals,
    export_id: &str,
    segments: &[String],
    details: Details,
) -> Result<u64, ExportError> {
    let guard_gate = gate.clone();
    let approvals = approvals.clone();
    let appended = ledger
        .append(
            Append::new(gate.actor.clone(), export_id, details)?
                .guard(move |tx| guard_gate.check_in(tx, &approvals)),
        )
        .await;
    match appended {
        Ok(receipt) => Ok(receipt.seq),
        Err(e) => Err(ExportError::Refused(
            gate.refused_in_guard(ledger, e, segments, actions::EXPORT_CREATED)
                .await,
        )),
    }
}

/// The length of `details` (an action's typed details) as an entry holds
/// them: their JSON.
fn details_len(details: &impl serde::Serialize) -> usize {
    serde_json::to_vec(details).map_or(usize::MAX, |v| v.len())
}

/// A large export's listing in parts: the segments in their order, each
/// with the seqs of the entries about it (`about`) and its approved
/// request (`requests`), packed greedily into `export.listed` details of
/// at most `budget` bytes each. A segment whose own listing exceeds the
/// budget cannot be listed ([`ExportError::SegmentTooLong`]).
pub fn listing_parts(
    about: &[(String, Vec<u64>)],
    requests: &BTreeMap<String, String>,
    budget: usize,
) -> Result<Vec<ExportListed>, ExportError> {
    let mut parts = Vec::new();
    let mut current = PartListing::default();
    for (segment, entries) in about {
        let request = requests.get(segment);
        if current.len_with(segment, entries, request) > budget {
            if current.is_empty() {
                return Err(ExportError::SegmentTooLong(segment.clone()));
            }
            parts.push(std::mem::take(&mut current).into_details());
            if current.len_with(segment, entries, request) > budget {
                return Err(ExportError::SegmentTooLong(segment.clone()));
            }
        }
        current.add(segment, entries, request);
    }
    if !current.is_empty() {
        parts.push(current.into_details());
    }
    Ok(parts)
}

/// One `export.listed` part being filled, with the exact length its
/// details will have as JSON, kept as segments are added (so packing is
/// linear in the listing, not a serialisation per segment).
#[derive(Default)]
struct PartListing {
    segments: Vec<String>,
    entries: BTreeSet<u64>,
    requests: BTreeMap<String, String>,
    /// The JSON of the items themselves, without their separators.
    items_len: usize,
}

impl PartListing {
    fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// The JSON length of `{"entries":[…],"segments":[…]}` (with
    /// `,"requests":{…}` when it has any): fixed parts, items, and one comma
    /// between neighbours.
    fn len(&self, segments: usize, entries: usize, requests: usize, items_len: usize) -> usize {
        let commas = |n: usize| n.saturating_sub(1);
        let fixed = r#"{"entries":[],"segments":[]}"#.len();
        let with_requests = if requests > 0 {
            r#","requests":{}"#.len() + commas(requests)
        } else {
            0
        };
        fixed + items_len + commas(segments) + commas(entries) + with_requests
    }

    /// The JSON length of a string (quoted and escaped as serde_json does).
    fn quoted(text: &str) -> usize {
        serde_json::to_string(text).map_or(usize::MAX / 4, |s| s.len())
    }

    /// What adding one segment brings: its items' length, new entries.
    fn added(&self, segment: &str, entries: &[u64], request: Option<&String>) -> (usize, usize) {
        let mut len = Self::quoted(segment);
        let mut new = 0;
        let mut seen = BTreeSet::new();
        for seq in entries {
            if !self.entries.contains(seq) && seen.insert(*seq) {
                len += seq.to_string().len();
                new += 1;
            }
        }
        if let Some(request) = request {
            len += Self::quoted(segment) + 1 + Self::quoted(request);
        }
        (len, new)
    }

    /// The details' length once `segment` is added.
    fn len_with(&self, segment: &str, entries: &[u64], request: Option<&String>) -> usize {
        let (items, new) = self.added(segment, entries, request);
        self.len(
            self.segments.len() + 1,
            self.entries.len() + new,
            self.requests.len() + usize::from(request.is_some()),
            self.items_len + items,
        )
    }

    fn add(&mut self, segment: &str, entries: &[u64], request: Option<&String>) {
        self.items_len += self.added(segment, entries, request).0;
        self.segments.push(segment.to_owned());
        self.entries.extend(entries.iter().copied());
        if let Some(request) = request {
            self.requests.insert(segment.to_owned(), request.clone());
        }
    }

    fn into_details(self) -> ExportListed {
        ExportListed {
            segments: self.segments,
            entries: self.entries.into_iter().collect(),
            requests: (!self.requests.is_empty()).then_some(self.requests),
        }
    }
}

/// Where footage bytes come from: the object store, in production.
///
/// `open` is called from a blocking context (never inside an async task),
/// once per segment, and the reader is read to its end; it must stream.
pub trait FootageSource: Send + Sync {
    /// A reader of the stored object of `manifest` (`manifest.object`).
    fn open(&self, manifest: &Manifest) -> io::Result<Box<dyn Read + Send + '_>>;
}

/// A [`FootageSource`] over an object store: `manifest.object.key` is read
/// with `get` and streamed chunk by chunk (never collected), each chunk
/// awaited on `runtime`. `open` and the reader must be used off the
/// runtime's threads (from `spawn_blocking` or a thread of their own).
#[derive(Debug, Clone)]
pub struct ObjectFootage {
    objects: Arc<dyn ObjectStore>,
    runtime: tokio::runtime::Handle,
}

impl ObjectFootage {
    /// Read from `objects`, driving its futures on `runtime`.
    pub fn new(objects: Arc<dyn ObjectStore>, runtime: tokio::runtime::Handle) -> Self {
        ObjectFootage { objects, runtime }
    }
}

impl FootageSource for ObjectFootage {
    fn open(&self, manifest: &Manifest) -> io::Result<Box<dyn Read + Send + '_>> {
        let key = ObjectPath::parse(&manifest.object.key)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let got = self
            .runtime
            .block_on(self.objects.get(&key))
            .map_err(|e| match e {
                object_store::Error::NotFound { .. } => {
                    io::Error::new(io::ErrorKind::NotFound, e.to_string())
                }
                other => io::Error::other(other.to_string()),
            })?;
        Ok(Box::new(StreamReader {
            stream: got.into_stream(),
            chunk: Bytes::new(),
            runtime: &self.runtime,
        }))
    }
}

/// A blocking [`Read`] over an object's byte stream: one chunk at a time.
struct StreamReader<'a> {
    stream: BoxStream<'static, object_store::Result<Bytes>>,
    chunk: Bytes,
    runtime: &'a tokio::runtime::Handle,
}

impl Read for StreamReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match self.runtime.block_on(self.stream.next()) {
                None => return Ok(0),
                Some(Ok(chunk)) => self.chunk = chunk,
                Some(Err(e)) => return Err(io::Error::other(e.to_string())),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

/// What to export and why (the API's request body).
pub use custos_core::wire::ExportRequest;

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The request names no segment.
    #[error("the export names no segment")]
    NoSegments,
    /// The request names more segments than one export may hold.
    #[error("the export names {0} segments; at most {MAX_EXPORT_SEGMENTS} fit in one")]
    TooManySegments(usize),
    /// One segment's own listing (the entries about it) is longer than an
    /// entry may hold.
    #[error("segment {0:?} has more custody entries than one export entry can list")]
    SegmentTooLong(String),
    /// A requested segment is not in the catalogue.
    #[error("segment {0:?} was never ingested")]
    UnknownSegment(String),
    /// The case is not known or links no segment.
    #[error("case {0:?} links no segment")]
    EmptyCase(String),
    /// The case links more segments than one export may hold.
    #[error("case {case:?} links more than {MAX_EXPORT_SEGMENTS} segments, more than one export may hold; export them in parts with --segment")]
    CaseTooLarge {
        /// The case.
        case: String,
    },
    /// The catalogue could not be searched for a case's segments.
    #[error("finding the segments of case {case:?}: {why}")]
    Case {
        /// The case.
        case: String,
        /// What the catalogue said.
        why: String,
    },
    /// Reading the log failed.
    #[error("reading the ledger: {0}")]
    Read(#[from] ReadError),
    /// Reading the ledger's tables failed.
    #[error("reading the ledger's tables: {0}")]
    Store(#[from] StoreError),
    /// Appending the export entry failed.
    #[error("recording the export: {0}")]
    Append(#[from] AppendError),
    /// The footage gate refused the export (no approval in force), or
    /// recording the export failed; the refusal is on the record.
    #[error("{0}")]
    Refused(#[source] GovernanceError),
    /// A stored entry or manifest does not have the expected shape.
    #[error("entry {seq}: {why}")]
    BadEntry {
        /// The entry's seq.
        seq: u64,
        /// What is wrong.
        why: String,
    },
    /// An envelope in the bundle is signed by a key the ledger has no record of.
    #[error("entry {seq} is signed by key {keyid:?}, which is not a registered dock key")]
    UnknownKey {
        /// The entry carrying the envelope.
        seq: u64,
        /// The signature's key id.
        keyid: String,
    },
    /// The published checkpoint does not cover the export entry (the ledger
    /// acknowledged it, so this is a bug or a tampered store).
    #[error("the published tree of size {size} does not hold the export entry {seq}")]
    NotCovered {
        /// The export entry's seq.
        seq: u64,
        /// The published size.
        size: u64,
    },
    /// Opening a segment's footage in the object store failed.
    #[error("segment {segment}: opening its footage at {key:?}: {source}")]
    Footage {
        /// The segment.
        segment: String,
        /// The object key.
        key: String,
        /// What the store said.
        source: io::Error,
    },
    /// Writing the bundle failed.
    #[error(transparent)]
    Write(#[from] BundleWriteError),
    /// Making the bundle's REPORT.pdf failed (before anything was recorded).
    #[error(transparent)]
    Report(#[from] crate::report::ReportError),
    /// Writing a downloaded bundle to its output failed.
    #[error("writing the bundle: {0}")]
    Output(#[source] io::Error),
}

/// Everything a bundle holds but footage, gathered by [`prepare_export`].
#[derive(Debug, Clone)]
pub struct PreparedExport {
    /// The export id (the subject of the `export.created` entry).
    pub export_id: String,
    /// The `export.created` entry's seq.
    pub export_seq: u64,
    /// The signed checkpoint every proof is against.
    pub checkpoint: String,
    /// Its tree size.
    pub size: u64,
    /// The keys: the ledger's first, then the dock keys.
    pub keys: Vec<VerifierKey>,
    /// The segments' signed manifests, in request order.
    pub manifests: Vec<Envelope>,
    /// The entries, ascending `seq`, the export entry last.
    pub lines: Vec<EntryLine>,
    /// One inclusion proof per line, same order.
    pub proofs: Vec<InclusionProof>,
    /// When the export was recorded (seconds since the Unix epoch), used as
    /// every member's mtime.
    pub mtime: u64,
    /// `REPORT.pdf`, whose SHA-256 the export entry names.
    pub report: Vec<u8>,
    /// With witnesses: one C2SP tlog-proof per line against the first
    /// published checkpoint covering the export entry, with the witnesses'
    /// cosignatures it carries (empty without witnesses, or when none was
    /// published in time).
    pub tlog_proofs: Vec<custos_core::tlog_proof::TlogProof>,
    /// With witnesses: the ledger's trust policy (`policy.txt`).
    pub policy: Option<custos_core::policy::Policy>,
}

/// How long an export waits for a published (witnessed) checkpoint that
/// covers its export entry: a publication comes every
/// `checkpoint_interval` plus at most the witnesses' timeout.
const WITNESS_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// With witnesses: wait for the published checkpoint that covers `size`
/// entries and prove each of `seqs` under it (see
/// [`PreparedExport::tlog_proofs`]).
async fn witness_proofs(
    ledger: &Ledger,
    seqs: &BTreeSet<u64>,
    size: u64,
) -> Result<
    (
        Vec<custos_core::tlog_proof::TlogProof>,
        Option<custos_core::policy::Policy>,
    ),
    ExportError,
> {
    use custos_core::checkpoint::Checkpoint;
    use custos_core::note::SignedNote;
    let Some(policy) = ledger.witness_policy() else {
        return Ok((Vec::new(), None));
    };
    let parse = |note: &str| -> Option<(SignedNote, Checkpoint)> {
        let signed = SignedNote::parse(note.as_bytes()).ok()?;
        let cp = Checkpoint::parse(signed.text()).ok()?;
        Some((signed, cp))
    };
    let mut watch = ledger.watch_cosigned();
    let deadline = tokio::time::Instant::now() + WITNESS_WAIT;
    let found = loop {
        let current = watch.borrow_and_update().clone();
        if let Some(found) = current
            .as_deref()
            .and_then(parse)
            .filter(|(_, cp)| cp.size() >= size)
        {
            break Some(found);
        }
        match tokio::time::timeout_at(deadline, watch.changed()).await {
            Ok(Ok(())) => continue,
            _ => break None,
        }
    };
    let Some((note, cp)) = found else {
        tracing::warn!(
            size,
            "export: no published checkpoint covers the export entry yet; the bundle carries no tlog-proofs"
        );
        return Ok((Vec::new(), Some((*policy).clone())));
    };
    let mut proofs = Vec::with_capacity(seqs.len());
    for &seq in seqs {
        let proof = ledger.inclusion_proof(seq, cp.size())?;
        proofs.push(custos_core::tlog_proof::TlogProof {
            extra: None,
            index: seq,
            proof: proof.hashes,
            checkpoint: note.clone(),
        });
    }
    Ok((proofs, Some((*policy).clone())))
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    /// The export id.
    pub export_id: String,
    /// The `export.created` entry's seq.
    pub export_seq: u64,
    /// The checkpoint's tree size.
    pub size: u64,
    /// Segments exported.
    pub segments: usize,
    /// Entries in `entries.jsonl`.
    pub entries: usize,
    /// Footage bytes written.
    pub footage_bytes: u64,
}

impl PreparedExport {
    /// The summary of this export once written.
    pub fn summary(&self) -> ExportSummary {
        ExportSummary {
            export_id: self.export_id.clone(),
            export_seq: self.export_seq,
            size: self.size,
            segments: self.manifests.len(),
            entries: self.lines.len(),
            footage_bytes: self.manifests.iter().map(manifest_size).sum(),
        }
    }
}

fn manifest_size(envelope: &Envelope) -> u64 {
    Manifest::parse(&envelope.payload)
        .map(|m| m.size)
        .unwrap_or(0)
}

/// Every segment linked to `case` in the catalogue, in id order: all of
/// them, or [`ExportError::CaseTooLarge`] when there are more than
/// [`MAX_EXPORT_SEGMENTS`] (never the first page of a search: a case
/// exported in part would look complete).
pub fn case_segments(ledger: &Ledger, case: &str) -> Result<Vec<String>, ExportError> {
    let failed = |why: String| ExportError::Case {
        case: case.to_owned(),
        why,
    };
    let prefix = crate::layout::composite(&[case.as_bytes()]);
    let mut ids = Vec::new();
    for row in ledger
        .store()
        .table_scan(crate::catalogue::BY_CASE, &prefix)
    {
        let (key, _) = row.map_err(|e| failed(e.to_string()))?;
        let id = crate::layout::split_composite(&key)
            .and_then(|parts| parts.get(1).copied())
            .and_then(|b| std::str::from_utf8(b).ok())
            .ok_or_else(|| failed("a (case, segment) row of the catalogue is malformed".into()))?;
        if ledger.segment(id)?.is_none() {
            continue;
        }
        if ids.len() == MAX_EXPORT_SEGMENTS {
            return Err(ExportError::CaseTooLarge {
                case: case.to_owned(),
            });
        }
        ids.push(id.to_owned());
    }
    if ids.is_empty() {
        return Err(ExportError::EmptyCase(case.to_owned()));
    }
    Ok(ids)
}

fn parse_entry(seq: u64, raw: &[u8]) -> Result<Entry, ExportError> {
    Entry::parse(raw).map_err(|e| ExportError::BadEntry {
        seq,
        why: format!("not a valid entry: {e}"),
    })
}

/// A new export id: `exp-` and 16 random hex digits.
fn new_export_id() -> String {
    let mut bytes = [0u8; 8];
    rand_core::OsRng.fill_bytes(&mut bytes);
    format!("exp-{}", hex::encode(bytes))
}

/// Check, before anything is recorded, that every segment is known and its
/// stored object exists with the manifest's size, so that the common
/// failures (an unknown id, a missing object) are refused cleanly rather
/// than after an export entry and part of a bundle were written.
pub async fn check_footage(
    ledger: &Ledger,
    objects: &dyn ObjectStore,
    segments: &[String],
) -> Result<(), ExportError> {
    for id in segments {
        let record = ledger
            .segment(id)?
            .ok_or_else(|| ExportError::UnknownSegment(id.clone()))?;
        let manifest = &record.manifest;
        let footage = |source: io::Error| ExportError::Footage {
            segment: id.clone(),
            key: manifest.object.key.clone(),
            source,
        };
        let key = ObjectPath::parse(&manifest.object.key)
            .map_err(|e| footage(io::Error::new(io::ErrorKind::InvalidInput, e.to_string())))?;
        let meta = objects.head(&key).await.map_err(|e| {
            footage(match e {
                object_store::Error::NotFound { .. } => {
                    io::Error::new(io::ErrorKind::NotFound, "the stored object is missing")
                }
                other => io::Error::other(other.to_string()),
            })
        })?;
        if meta.size != manifest.size {
            return Err(footage(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the stored object has {} bytes, the manifest says {}",
                    meta.size, manifest.size
                ),
            )));
        }
    }
    Ok(())
}

/// Step 1 of an export (see the module documentation): record the export
/// by the `gate`'s actor and gather the bundle's small members. An export
/// yields footage, so it passes the [`FootageGate`] like a view: every
/// segment needs an approval in force where the role needs one (checked
/// before anything is recorded and again in the export entry's guard), a
/// refusal is an `access.refused` entry per refused segment and no export
/// entry. The approvals used are named in `details.requests`.
pub async fn prepare_export(
    ledger: &Ledger,
    gate: &FootageGate,
    request: &ExportRequest,
) -> Result<PreparedExport, ExportError> {
    let mut segments: Vec<String> = Vec::new();
    for id in &request.segments {
        if !segments.contains(id) {
            segments.push(id.clone());
        }
    }
    if segments.is_empty() {
        return Err(ExportError::NoSegments);
    }
    if segments.len() > MAX_EXPORT_SEGMENTS {
        return Err(ExportError::TooManySegments(segments.len()));
    }

    // Every published entry about the segments, and their manifests.
    let mut records = Vec::with_capacity(segments.len());
    for id in &segments {
        records.push(
            ledger
                .segment(id)?
                .ok_or_else(|| ExportError::UnknownSegment(id.clone()))?,
        );
    }
    let approvals = gate
        .precheck(ledger, &records, actions::EXPORT_CREATED)
        .await
        .map_err(ExportError::Refused)?;

    let published = ledger.published();
    let mut seqs = BTreeSet::new();
    let mut ingested = Vec::with_capacity(segments.len());
    let mut reported = Vec::with_capacity(records.len());
    for record in records {
        ingested.push(record.ingested_seq);
        let about: Vec<u64> =
            crate::catalogue::segment_entries(ledger.store(), &record.segment_id)?
                .into_iter()
                .filter(|&seq| seq < published.size)
                .collect();
        seqs.extend(about.iter().copied());
        reported.push((record, about));
    }

    // Each segment with the entries about it: the export's listing.
    let about: Vec<(String, Vec<u64>)> = reported
        .iter()
        .map(|(record, about)| (record.segment_id.clone(), about.clone()))
        .collect();

    // The report, made before the export entry that names its SHA-256
    // (see crate::report): from the same published tree as the entries.
    let export_id = new_export_id();
    let used: std::collections::BTreeMap<String, String> = approvals
        .iter()
        .filter_map(|(segment, request)| Some((segment.clone(), request.clone()?)))
        .collect();
    // Laying out and drawing takes a while for a large export (about
    // 10 ms a segment): on a blocking thread, never on the runtime's.
    let report = {
        let ledger = ledger.clone();
        let size = published.size;
        let case = request.case.clone();
        let actor = gate.actor.clone();
        let facts = custos_report::ExportFacts {
            export_id: export_id.clone(),
            reason: request.reason.clone(),
            requests: used.clone(),
        };
        tokio::task::spawn_blocking(move || {
            let font = crate::report::load_font(ledger.report_font())?;
            let input = crate::report::gather(&ledger, &reported, size, case, &actor, Some(facts))?;
            custos_report::build(&input, &font).map_err(crate::report::ReportError::from)
        })
        .await
        .map_err(|e| crate::report::ReportError::Stopped(e.to_string()))??
    };

    // The export entry names them, or, when that would not fit one entry,
    // names the `export.listed` parts appended just before it that do.
    let mut export = ExportCreated {
        segments: segments.to_vec(),
        entries: seqs.iter().copied().collect(),
        case: request.case.clone(),
        reason: request.reason.clone(),
        requests: (!used.is_empty()).then(|| used.clone()),
        documents: Some(BTreeMap::from([(
            custos_core::bundle::REPORT_PATH.to_owned(),
            custos_core::digest::Digest::sha256(&report),
        )])),
        parts: None,
    };
    if details_len(&export) > EXPORT_DETAILS_BUDGET {
        let mut parts = Vec::new();
        for part in listing_parts(&about, &used, EXPORT_DETAILS_BUDGET)? {
            let seq = append_export_entry(
                ledger,
                gate,
                &approvals,
                &export_id,
                &segments,
                Details::ExportListed(part),
            )
            .await?;
            seqs.insert(seq);
            parts.push(seq);
        }
        export.segments = Vec::new();
        export.entries = Vec::new();
        export.requests = None;
        export.parts = Some(parts);
    }
    let export_seq = append_export_entry(
        ledger,
        gate,
        &approvals,
        &export_id,
        &segments,
        Details::ExportCreated(export),
    )
    .await?;
    seqs.insert(export_seq);

    // The checkpoint at exactly export_seq + 1, so that the export entry
    // is the last entry it covers (the receipt's size is published once
    // the append is acknowledged; later appends may have grown it since).
    let published = ledger.published();
    if published.size <= export_seq {
        return Err(ExportError::NotCovered {
            seq: export_seq,
            size: published.size,
        });
    }
    let size = export_seq + 1;
    let checkpoint = ledger.checkpoint_at(size)?;
    let (tlog_proofs, policy) = witness_proofs(ledger, &seqs, size).await?;

    let mut lines = Vec::with_capacity(seqs.len());
    let mut proofs = Vec::with_capacity(seqs.len());
    let mut entries: BTreeMap<u64, Entry> = BTreeMap::new();
    for &seq in &seqs {
        let raw = ledger.entry(seq)?;
        entries.insert(seq, parse_entry(seq, &raw)?);
        lines.push(
            EntryLine::new(seq, &raw).map_err(|e| ExportError::BadEntry {
                seq,
                why: e.why.to_owned(),
            })?,
        );
        let proof = ledger.inclusion_proof(seq, size)?;
        proofs.push(InclusionProof {
            index: proof.index,
            size: proof.size,
            hashes: proof.hashes,
        });
    }

    // The manifests, from the segment.ingested entries.
    let mut manifests = Vec::with_capacity(segments.len());
    for seq in ingested {
        let entry = entries.get(&seq).ok_or_else(|| ExportError::BadEntry {
            seq,
            why: "the segment's ingest entry is not among its custody entries".into(),
        })?;
        let envelope = match entry.parsed_details() {
            Ok(Details::SegmentIngested(SegmentIngested { manifest, .. })) => manifest,
            Ok(_) => {
                return Err(ExportError::BadEntry {
                    seq,
                    why: "the segment's ingest entry is not a segment.ingested".into(),
                })
            }
            Err(e) => {
                return Err(ExportError::BadEntry {
                    seq,
                    why: e.to_string(),
                })
            }
        };
        manifests.push((seq, envelope));
    }

    // The keys: the ledger's, and every dock key that signed something here.
    let mut keys = ledger.verifier_keys();
    let mut seen = BTreeSet::new();
    let signed = entries
        .iter()
        .filter_map(|(seq, e)| e.envelope.as_ref().map(|env| (*seq, env)))
        .chain(manifests.iter().map(|(seq, env)| (*seq, env)));
    for (seq, envelope) in signed {
        for signature in &envelope.signatures {
            if !seen.insert(signature.keyid.clone()) {
                continue;
            }
            let record: DockKeyRecord = ledger
                .store()
                .table_get_json(DOCK_KEYS, signature.keyid.as_bytes())?
                .ok_or_else(|| ExportError::UnknownKey {
                    seq,
                    keyid: signature.keyid.clone(),
                })?;
            let key = record
                .key
                .parse::<VerifierKey>()
                .map_err(|e| ExportError::BadEntry {
                    seq,
                    why: format!("the registered key {:?} does not parse: {e}", record.key),
                })?;
            keys.push(key);
        }
    }

    let mtime = entries
        .get(&export_seq)
        .map(|e| e.time.unix_seconds().max(0) as u64)
        .unwrap_or(0);
    Ok(PreparedExport {
        export_id,
        export_seq,
        checkpoint,
        size,
        keys,
        manifests: manifests.into_iter().map(|(_, env)| env).collect(),
        lines,
        proofs,
        mtime,
        report,
        tlog_proofs,
        policy,
    })
}

/// Step 2 of an export: write the bundle of `prepared` into `out`,
/// streaming footage from `source`. Blocking. On error `out` holds a
/// partial archive that must be discarded.
pub fn write_bundle<W: Write>(
    prepared: &PreparedExport,
    source: &dyn FootageSource,
    out: W,
) -> Result<(W, ExportSummary), ExportError> {
    let mut writer = BundleWriter::with_mtime(out, prepared.mtime);
    for key in &prepared.keys {
        writer.add_key(key)?;
    }
    writer.add_checkpoint(&prepared.checkpoint)?;
    let mut manifests = Vec::with_capacity(prepared.manifests.len());
    for envelope in &prepared.manifests {
        writer.add_manifest(envelope)?;
        // add_manifest has just parsed this payload, so this cannot fail.
        manifests.push(Manifest::parse(&envelope.payload).map_err(BundleWriteError::Manifest)?);
    }
    writer.add_entry_lines(&prepared.lines)?;
    for proof in &prepared.proofs {
        writer.add_proof(proof)?;
    }
    for proof in &prepared.tlog_proofs {
        writer.add_tlog_proof(proof)?;
    }
    if let Some(policy) = &prepared.policy {
        writer.add_policy(policy)?;
    }
    writer.add_report(&prepared.report)?;
    for manifest in &manifests {
        let reader = source
            .open(manifest)
            .map_err(|source| ExportError::Footage {
                segment: manifest.segment_id.clone(),
                key: manifest.object.key.clone(),
                source,
            })?;
        writer.add_footage(manifest, reader)?;
    }
    let out = writer.finish()?;
    Ok((out, prepared.summary()))
}

/// Both steps: record the export through `gate` and write its bundle into
/// `out`, the writing on a blocking thread (so `source` may be an
/// [`ObjectFootage`] on the current runtime). Returns `out` and the summary.
pub async fn export_bundle<W: Write + Send + 'static>(
    ledger: &Ledger,
    gate: &FootageGate,
    request: &ExportRequest,
    source: Arc<dyn FootageSource>,
    out: W,
) -> Result<(W, ExportSummary), ExportError> {
    let prepared = prepare_export(ledger, gate, request).await?;
    tokio::task::spawn_blocking(move || write_bundle(&prepared, source.as_ref(), out))
        .await
        .map_err(|e| {
            ExportError::Output(io::Error::other(format!("the bundle writer stopped: {e}")))
        })?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn about(n: usize, entries_each: u64) -> Vec<(String, Vec<u64>)> {
        (0..n)
            .map(|i| {
                let first = i as u64 * entries_each;
                (
                    format!("seg-{i:05}"),
                    (first..first + entries_each).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn parts_hold_every_segment_once_in_order_and_fit_the_budget() {
        for (n, each, budget) in [(1, 1, 2_000), (50, 3, 2_000), (400, 7, 9_000), (37, 1, 300)] {
            let about = about(n, each);
            let requests: BTreeMap<String, String> = about
                .iter()
                .step_by(3)
                .map(|(id, _)| (id.clone(), format!("req-{id}")))
                .collect();
            let parts = listing_parts(&about, &requests, budget).unwrap();
            let segments: Vec<&String> = parts.iter().flat_map(|p| &p.segments).collect();
            let want: Vec<&String> = about.iter().map(|(id, _)| id).collect();
            assert_eq!(segments, want, "n {n}");
            for part in &parts {
                assert!(details_len(part) <= budget);
                let mine: BTreeSet<u64> = about
                    .iter()
                    .filter(|(id, _)| part.segments.contains(id))
                    .flat_map(|(_, a)| a.iter().copied())
                    .collect();
                assert_eq!(part.entries, mine.into_iter().collect::<Vec<_>>());
                for (id, req) in part.requests.iter().flatten() {
                    assert!(part.segments.contains(id));
                    assert_eq!(requests.get(id), Some(req));
                }
            }
            // Greedy: no two neighbouring parts would fit in one.
            for pair in parts.windows(2) {
                let mut both = pair[0].clone();
                both.segments.extend(pair[1].segments.iter().cloned());
                both.entries.extend(pair[1].entries.iter().copied());
                assert!(details_len(&both) > budget);
            }
        }
    }

    #[test]
    fn a_part_knows_its_exact_length_as_it_grows() {
        let about = about(40, 4);
        let mut part = PartListing::default();
        for (i, (id, entries)) in about.iter().enumerate() {
            // Neighbours share an entry, every third segment has a request,
            // and one id needs escaping.
            let mut entries = entries.clone();
            entries.push(i as u64 * 4 + 4);
            let id = if i == 7 {
                format!("{id}\"q")
            } else {
                id.clone()
            };
            let request = (i % 3 == 0).then(|| format!("req-{i}"));
            let predicted = part.len_with(&id, &entries, request.as_ref());
            part.add(&id, &entries, request.as_ref());
            let details = ExportListed {
                segments: part.segments.clone(),
                entries: part.entries.iter().copied().collect(),
                requests: (!part.requests.is_empty()).then(|| part.requests.clone()),
            };
            assert_eq!(predicted, details_len(&details), "after {} segments", i + 1);
            assert_eq!(
                details_len(&details),
                details_len(&Details::ExportListed(details.clone()).to_map()),
                "as an entry holds them"
            );
        }
    }

    #[test]
    fn a_segment_too_long_for_any_part_is_named() {
        let about = about(3, 200);
        let err = listing_parts(&about, &BTreeMap::new(), 500).unwrap_err();
        assert!(
            matches!(err, ExportError::SegmentTooLong(ref id) if id == "seg-00000"),
            "{err}"
        );
    }
}
