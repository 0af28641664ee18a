//! Why a bundle did not verify: [`BundleError`] (unreadable or invalid),
//! and [`Problem`], the failed check with its message.
//!
//! The messages are what an auditor reads; `check.rs` snapshots every one
//! so that a change of wording shows in review. Nothing here displays text
//! from a bundle without [`escape_control`].

use std::io;

use super::UnsafeName;
use crate::checkpoint::CheckpointError;
use crate::digest::{Algorithm, Digest};
use crate::dsse::DsseError;
use crate::entry::EntryError;
use crate::keys::KeyError;
use crate::manifest::ManifestError;
use crate::merkle::InclusionError;

/// Why a bundle could not be verified: it is unreadable
/// ([`BundleError::is_unreadable`]) or invalid.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// Reading the bundle failed (the reader returned an error).
    #[error("reading the bundle: {0}")]
    Io(#[source] io::Error),
    /// The bytes are not a tar archive, or a header is corrupt.
    #[error(
        "not a readable tar archive: {} (at byte {offset})",
        escape_control(detail)
    )]
    NotTar {
        /// About where the problem is.
        offset: u64,
        /// What the tar reader said.
        detail: String,
    },
    /// The archive ends early: inside a header, inside a member, or without
    /// its end-of-archive marker.
    #[error("the archive is truncated: {}", escape_control(detail))]
    Truncated {
        /// Where it ends.
        detail: String,
    },
    /// A check failed: the bundle is readable but not valid. Displayed
    /// with the location's control characters escaped ([`escape_control`]):
    /// it may be a member name from the archive.
    #[error("{}: {problem}", escape_control(location))]
    Invalid {
        /// The file or entry: `footage/abc.mp4`, `entries.jsonl line 3 (seq 17)`.
        location: String,
        /// What is wrong with it.
        problem: Problem,
    },
}

impl BundleError {
    /// Whether the bundle could not be read at all (I/O error, not a tar,
    /// truncated), as opposed to read and found invalid.
    pub fn is_unreadable(&self) -> bool {
        !matches!(self, BundleError::Invalid { .. })
    }

    /// The failed check, when the bundle is invalid.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            BundleError::Invalid { problem, .. } => Some(problem),
            _ => None,
        }
    }

    /// The file or entry named, when the bundle is invalid.
    pub fn location(&self) -> Option<&str> {
        match self {
            BundleError::Invalid { location, .. } => Some(location),
            _ => None,
        }
    }
}

/// `text` with every character that could move a terminal's cursor, change
/// its colours or fake a line break escaped as `\u{..}`: control characters
/// (C0, DEL, C1, among them ESC, CR and LF), the line and paragraph
/// separators and the bidirectional-text controls. A bundle's member names
/// and texts are outside input; whatever prints them shows this instead.
pub fn escape_control(text: &str) -> std::borrow::Cow<'_, str> {
    fn unsafe_char(c: char) -> bool {
        c.is_control()
            || matches!(
                c,
                '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{061c}'
            )
            || ('\u{202a}'..='\u{202e}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c)
    }
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A [`BundleError::Invalid`] for `location`.
pub(super) fn invalid(location: impl Into<String>, problem: Problem) -> BundleError {
    BundleError::Invalid {
        location: location.into(),
        problem,
    }
}

/// A failed check, reported with the file or entry it is about.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    // --- the archive ------------------------------------------------------
    /// A member's path is not part of the bundle layout.
    #[error("not part of the bundle layout (footage/, manifests/, entries.jsonl, proofs/, checkpoint, keys/, VERIFY.txt, VERIFY.zh-CN.txt, REPORT.pdf)")]
    UnknownMember,
    /// Two members have the same path.
    #[error("appears twice in the archive")]
    DuplicateMember,
    /// A member is not a regular file (a link, a device, a global header...).
    #[error("is a {kind} member; a bundle holds regular files only")]
    NotRegularFile {
        /// The tar entry type.
        kind: String,
    },
    /// A member is larger than the verifier reads for its kind.
    #[error("is {size} bytes, more than the {max} accepted")]
    TooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The archive has more members than the verifier accepts.
    #[error("more than {max} members")]
    TooManyMembers {
        /// The limit.
        max: u64,
    },
    /// The archive has more key files than the verifier accepts.
    #[error("more than {max} key files in keys/")]
    TooManyKeys {
        /// The limit.
        max: usize,
    },
    /// The members other than footage add up to more than the verifier holds.
    #[error(
        "with it, the members other than footage add up to more than the {max} bytes accepted"
    )]
    HeldTooLarge {
        /// The limit.
        max: u64,
    },
    /// Non-zero bytes follow the end-of-archive marker.
    #[error("non-zero data after the end-of-archive marker at byte {offset}")]
    DataAfterEnd {
        /// Where the data starts.
        offset: u64,
    },
    /// A required member is absent.
    #[error("missing from the bundle")]
    Missing,

    // --- keys and checkpoint ------------------------------------------------
    /// A key file does not hold a verifier key.
    #[error("not a verifier key: {0}")]
    Key(KeyError),
    /// A key file's name is not its key's name.
    #[error("the file name does not match the key it holds ({key_id})")]
    KeyFileName {
        /// The key's `name+hash`.
        key_id: String,
    },
    /// The checkpoint is malformed.
    #[error("{0}")]
    Checkpoint(CheckpointError),
    /// The checkpoint does not verify under any pinned ledger key.
    #[error("not signed by the pinned ledger key {}: {source}", pinned.join(" or "))]
    CheckpointNotPinned {
        /// The pinned keys (`name+hash`).
        pinned: Vec<String>,
        /// Why it does not verify (under the last key tried).
        source: CheckpointError,
    },
    /// The checkpoint is not the one of the export: its tree size is not
    /// the export entry's seq + 1, so entries after the export entry could
    /// have been left out.
    #[error("the checkpoint is for tree size {size}, but the bundle's export entry is seq {export}: it must be exactly {}, so that no later entry can be left out", export.saturating_add(1))]
    NotAtExport {
        /// The checkpoint's tree size.
        size: u64,
        /// The export entry's seq.
        export: u64,
    },

    // --- entries ------------------------------------------------------------
    /// A line is not a `/v1/entries` line.
    #[error("not an entries line {{\"seq\",\"raw\",\"entry\"}}: {0}")]
    LineSyntax(String),
    /// `raw` is not standard base64.
    #[error("raw is not standard base64")]
    RawBase64,
    /// `raw` is not a canonical entry.
    #[error("raw is not a canonical custody entry: {0}")]
    RawEntry(EntryError),
    /// The line's `seq` is not the entry's.
    #[error("the line says seq {line_seq} but its entry has seq {entry_seq}")]
    SeqMismatch {
        /// The line's `seq`.
        line_seq: u64,
        /// The `seq` inside `raw`.
        entry_seq: u64,
    },
    /// The line's `entry` is not the JSON of `raw`.
    #[error("the entry field does not match the bytes in raw")]
    EntryFieldMismatch,
    /// The line does not come after the previous one in `seq` order.
    #[error("out of order: it follows seq {previous}; entries must be in ascending seq order")]
    OutOfOrder {
        /// The previous line's seq.
        previous: u64,
    },
    /// The same `seq` appears on two lines.
    #[error("seq appears twice")]
    DuplicateSeq,
    /// The hash chain is broken.
    #[error("prev does not match leaf hash of seq {previous}")]
    PrevMismatch {
        /// The seq of the entry before.
        previous: u64,
    },
    /// An entry has no proof file.
    #[error("no inclusion proof ({path} is missing)")]
    MissingProof {
        /// The proof file expected.
        path: String,
    },
    /// An entry's signed event does not verify.
    #[error("signed event: {}", event_problem(.0))]
    Event(EntryError),
    /// An entry differs from the event its actor signed.
    #[error("its {field} differs from the signed event's")]
    EventMismatch {
        /// `action`, `subject` or `details`.
        field: &'static str,
    },

    // --- proofs -------------------------------------------------------------
    /// A proof file has no entry.
    #[error("proves seq {seq}, which entries.jsonl does not hold (an entry was removed?)")]
    ProofWithoutEntry {
        /// The seq.
        seq: u64,
    },
    /// A proof file is not an inclusion proof.
    #[error("not an inclusion proof {{\"index\",\"size\",\"hashes\"}}: {0}")]
    ProofSyntax(String),
    /// A proof is for another index than its file name says.
    #[error("the proof is for index {index}, not seq {seq}")]
    ProofIndex {
        /// The proof's index.
        index: u64,
        /// The file's seq.
        seq: u64,
    },
    /// A proof is for another tree size than the checkpoint's.
    #[error("the proof is for tree size {size}, the checkpoint's is {checkpoint}")]
    ProofSize {
        /// The proof's size.
        size: u64,
        /// The checkpoint's size.
        checkpoint: u64,
    },
    /// An entry is not in the log the checkpoint vouches for.
    #[error("not in the log at the checkpoint: {proof}: {source}")]
    NotIncluded {
        /// The proof file.
        proof: String,
        /// Why the proof fails.
        source: InclusionError,
    },

    // --- witnesses ----------------------------------------------------------
    /// A tlog-proof file has no entry.
    #[error("proves seq {seq}, which entries.jsonl does not hold (an entry was removed?)")]
    TlogProofWithoutEntry {
        /// The seq.
        seq: u64,
    },
    /// The policy asks for witnesses and an entry has no tlog-proof.
    #[error("has no {path}: the policy requires every entry to be proven under a checkpoint its witnesses cosigned")]
    MissingTlogProof {
        /// The missing file.
        path: String,
    },
    /// A tlog-proof does not prove its entry, or its checkpoint is not
    /// signed or cosigned as required.
    #[error("{0}")]
    TlogProof(crate::tlog_proof::ProofError),
    /// The bundle's policy file does not read.
    #[error("{0}")]
    Policy(crate::policy::PolicyError),

    // --- export entry -------------------------------------------------------
    /// No entries at all, so no `export.created` entry.
    #[error("no export.created entry, so the bundle's completeness cannot be checked")]
    NoExportEntry,
    /// The entry with the highest seq is not an `export.created` entry.
    #[error("the bundle's last entry must be its export.created entry, but this one is {action}")]
    LastNotExport {
        /// Its action.
        action: String,
    },
    /// An entry is in the bundle but the export entry does not list it.
    #[error("not listed by the export entry (seq {export})")]
    EntryNotListed {
        /// The export entry's seq.
        export: u64,
    },
    /// The export entry's details do not list segments and entries.
    #[error(
        "the export entry's details must list \"segments\" (strings) and \"entries\" (seqs): {0}"
    )]
    ExportDetails(String),
    /// An entry the export lists is missing.
    #[error("seq {seq}, listed by the export entry (seq {export}), is missing")]
    ListedEntryMissing {
        /// The missing seq.
        seq: u64,
        /// The export entry's seq.
        export: u64,
    },
    /// A segment the export lists is missing.
    #[error("missing, but the export entry (seq {export}) lists segment {segment:?}")]
    ListedSegmentMissing {
        /// The segment.
        segment: String,
        /// The export entry's seq.
        export: u64,
    },
    /// A segment in the bundle is not listed by the export.
    #[error("segment is not listed by the export entry (seq {export})")]
    SegmentNotListed {
        /// The export entry's seq.
        export: u64,
    },

    /// A document the export entry names is not in the bundle.
    #[error("missing, but the export entry (seq {export}) names it")]
    DocumentMissing {
        /// The export entry's seq.
        export: u64,
    },
    /// A document is in the bundle but the export entry does not name it.
    #[error("not named by the export entry (seq {export})")]
    DocumentNotListed {
        /// The export entry's seq.
        export: u64,
    },
    /// A document's SHA-256 is not the one the export entry names.
    #[error("SHA-256 does not match the export entry (export entry {expected}, file {found})")]
    DocumentDigest {
        /// The export entry's digest.
        expected: Digest,
        /// The file's.
        found: Digest,
    },

    // --- manifests and footage ----------------------------------------------
    /// A manifest file is not a DSSE envelope.
    #[error("not a DSSE envelope: {0}")]
    Envelope(DsseError),
    /// A manifest does not open (signature, payload type, payload).
    #[error("{0}")]
    Manifest(ManifestError),
    /// A manifest names an unsafe segment id.
    #[error("{0}")]
    UnsafeName(UnsafeName),
    /// A manifest is for another segment than its file name says.
    #[error("the manifest is for segment {found:?}")]
    SegmentIdMismatch {
        /// The manifest's segment id.
        found: String,
    },
    /// No `segment.ingested` entry carries the manifest.
    #[error("no segment.ingested entry in entries.jsonl carries this manifest{}", if seqs.is_empty() { String::new() } else { format!(" (segment.ingested entries about the segment: seq {})", seqs.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")) })]
    NotIngested {
        /// `segment.ingested` entries about the segment, carrying something else.
        seqs: Vec<u64>,
    },
    /// A manifest's footage file is absent.
    #[error("missing from the bundle ({manifest} describes it)")]
    FootageMissing {
        /// The manifest.
        manifest: String,
    },
    /// A footage file has no manifest.
    #[error("no manifest in manifests/ describes this footage")]
    FootageWithoutManifest,
    /// A footage file's size is not the manifest's.
    #[error("{found} bytes, the manifest says {expected}")]
    FootageSize {
        /// The manifest's size.
        expected: u64,
        /// The file's size.
        found: u64,
    },
    /// A footage file's digest is not the manifest's.
    #[error("{} does not match manifest (manifest {expected}, file {found})", if expected.algorithm() == Algorithm::Sha256 { "SHA-256" } else { "SM3" })]
    FootageDigest {
        /// The manifest's digest.
        expected: Digest,
        /// The file's.
        found: Digest,
    },
}

/// What is wrong with a signed event, without the "signed event:" that
/// [`EntryError`]'s envelope errors already carry (said once, not twice).
fn event_problem(e: &EntryError) -> String {
    match e {
        EntryError::Dsse(d) => d.to_string(),
        other => other.to_string(),
    }
}
