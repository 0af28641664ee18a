//! Export bundles: the tar archive a court receives and an auditor verifies
//! offline, with nothing but the archive and the ledger's public key.
//!
//! # Layout
//!
//! Every member is a regular file (mode 0644, uid/gid 0, the writer's fixed
//! mtime) at the top level of the archive, in GNU tar format:
//!
//! | path | what |
//! | --- | --- |
//! | `footage/<segment_id>.<ext>` | the recording, byte for byte ([`footage_path`]) |
//! | `manifests/<segment_id>.dsse.json` | its signed manifest: the DSSE envelope as canonical JSON |
//! | `entries.jsonl` | the custody entries about the footage, one `/v1/entries` line each, in ascending `seq` |
//! | `proofs/<seq>.json` | each entry's inclusion proof, `/v1/proof/inclusion` format ([`InclusionProof`]) |
//! | `checkpoint` | the ledger's signed checkpoint (C2SP signed note) every proof is against |
//! | `tlog-proofs/<seq>.tlog-proof` | with witnesses: each entry's C2SP tlog-proof against a checkpoint the witnesses cosigned ([`crate::tlog_proof`]) |
//! | `policy.txt` | with witnesses: the ledger's trust policy — its keys, the witnesses, the quorum ([`crate::policy`]) |
//! | `keys/<name>.pub` | every public key needed, as C2SP verifier-key files (an SM2 key's line is followed by its PEM public key, as `custos keygen --algo sm2` writes it) |
//! | `VERIFY.txt` | how to verify, with `custos` and with standard tools ([`VERIFY_TXT`]) |
//! | `VERIFY.zh-CN.txt` | the same in Chinese ([`VERIFY_ZH_TXT`]) |
//! | `REPORT.pdf` | the chain-of-custody report for a court (custos-report); its SHA-256 is in the export entry |
//!
//! `<ext>` is the extension of the recorder's original file name, lower-cased,
//! when it is 1 to [`MAX_EXTENSION_LEN`] ASCII letters and digits (`mp4`,
//! `mov`, `avi`), else [`DEFAULT_FOOTAGE_EXTENSION`]: a court's player opens the
//! file, and the manifest names the original name anyway. A key whose name is
//! already taken by another key in the bundle (a rotated dock key) is written
//! as `keys/<name>+<hash>.pub`.
//!
//! An `entries.jsonl` line is `{"seq":N,"raw":"<base64>","entry":{...}}`:
//! `raw` is the standard base64 of the exact leaf bytes, `entry` the same
//! bytes embedded as JSON. Verifiers hash `raw`, never `entry`.
//!
//! # The export entry
//!
//! A bundle holds "every custody entry about the exported footage", not the
//! whole log, so gaps in `seq` are normal and the hash chain can only be
//! walked between entries adjacent in `seq`. What makes dropping an entry
//! detectable is the export itself: building a bundle appends an
//! `export.created` entry whose `details` name what the bundle must hold,
//!
//! ```json
//! {"segments": ["<segment id>", ...], "entries": [<seq>, ...],
//!  "documents": {"REPORT.pdf": "sha256:<hex>"}}
//! ```
//!
//! (`entries`: every entry about those segments that precedes the export
//! entry; the export entry itself is in the bundle too). The export entry is
//! the bundle's last entry (the highest `seq`; an older export of the same
//! footage is an entry about it, listed like any other), and the checkpoint
//! is the ledger's signed checkpoint at exactly the export entry's `seq + 1`
//! (the ledger signs one for every export, whatever its log has grown to
//! since). Because that entry is in the log, its lists are vouched for by
//! the ledger like any other entry; because the checkpoint ends with it,
//! dropping a later entry (and the later export entry that lists it) leaves
//! a checkpoint that no longer matches the last entry left.
//!
//! # What the verifier checks, and why that is enough
//!
//! The auditor trusts one thing: the ledger's public key, obtained out of
//! band (`custos verify bundle --ledger-key`, or a directory of trusted
//! keys). Without one, nothing shows which ledger signed the checkpoint:
//! anyone can make a bundle consistent with itself with a key pair of their
//! own. The verifier then runs every other check but never calls the bundle
//! valid ([`Origin::Unverified`], [`Report::is_valid`]). From the key, step
//! by step (step 1 happens as [`BundleVerifier::read_tar`] streams the
//! archive; [`BundleVerifier::finish`] runs the others in this order; each
//! stops at the first failure, naming the file or entry):
//!
//! 1. **The archive is whole.** Every member is a regular file (or one of the
//!    four directories) at a path of the layout, none appears twice (a tar
//!    with two members of one name extracts differently with different
//!    tools), nothing but zero padding follows the end-of-archive marker, and
//!    the archive is not truncated (that is [`BundleError::Truncated`], an
//!    unreadable bundle rather than an invalid one). Its shape is within the
//!    [`Limits`] (members, key files, bytes held) and each member within its
//!    `MAX_*` size.
//! 2. **Keys.** Each `keys/*.pub` parses as a verifier key and its file name
//!    is its name (or `name+hash`).
//! 3. **The ledger vouches for a tree.** `checkpoint` is a signed note
//!    carrying a valid signature by a key the caller trusts. The checkpoint
//!    gives a tree size and root.
//! 4. **Entries are well-formed.** Each line of `entries.jsonl` is a
//!    `/v1/entries` line; `raw` is canonical entry JSON ([`Entry::parse`](crate::entry::Entry::parse)),
//!    whose `seq` is the line's `seq` and which equals the line's `entry`
//!    value; lines are in strictly ascending `seq` (so two entries swapped
//!    are caught here).
//! 5. **The checkpoint is the export's.** The last entry is an
//!    `export.created` entry and the checkpoint's size is its `seq + 1`.
//! 6. **Every entry is in the log.** Each entry has `proofs/<seq>.json`, an
//!    inclusion proof of its leaf hash `SHA-256(0x00 || raw)` at index `seq`
//!    in the tree of the checkpoint's size, which leads to the checkpoint's
//!    root (RFC 9162 §2.1.3.2). Every proof file belongs to an entry in the
//!    bundle (a proof left behind by a removed entry is caught). Being in the
//!    log at position `seq` is what the ledger's signature covers: an entry
//!    changed by one byte no longer leads to the root.
//! 7. **The hash chain holds** between every two entries adjacent in `seq`:
//!    entry `n`'s `prev` is the leaf hash of entry `n - 1`.
//! 8. **Signed events are genuine.** An entry carrying the DSSE envelope its
//!    actor sent verifies under a key in `keys/` other than the ledger key
//!    (a dock key), and the entry's `action`, `subject` and `details` are the
//!    signed event's.
//! 9. **Nothing was left out, nothing added.** Every entry the export entry
//!    lists is in `entries.jsonl`, every other entry there is listed, and
//!    the listed segments are exactly the bundle's manifests. An export too
//!    large for one entry lists in `export.listed` parts (each an earlier
//!    entry in the bundle by the same actor about the same export, named in
//!    the export entry's `details.parts`): its listing is their union, and
//!    the parts are listed too.
//! 10. **Manifests are the ingested ones.** Each manifest envelope verifies
//!     under a dock key in `keys/`, is a valid manifest for the segment its
//!     file name says, and is, envelope for envelope, the `details.manifest`
//!     of a `segment.ingested` entry in the bundle about that segment: the
//!     manifest is what the dock sent to the ledger, and the ledger's log
//!     (step 6) binds it.
//! 11. **Documents are the exported ones.** Every document the export
//!     entry's `details.documents` names (`REPORT.pdf`) is in the bundle
//!     with that SHA-256, and a document in the bundle is named there. A
//!     bundle from before documents existed names none and holds none.
//! 12. **Footage is the recorded bytes.** Each manifest's footage file exists
//!     and has the manifest's size and SHA-256 (and SM3 when the manifest
//!     has one and this build computes SM3); every footage file has a
//!     manifest.
//!
//! 13. **Witnesses saw the same log** (`verify bundle --policy FILE`). Every
//!     entry has `tlog-proofs/<seq>.tlog-proof`, a C2SP tlog-proof of its
//!     leaf at index `seq` under a checkpoint signed by the policy's ledger
//!     key and cosigned by the policy's quorum of witnesses. A witness
//!     cosigns a checkpoint only if it extends every one it cosigned
//!     before, so the entries are in the one history those witnesses saw:
//!     a ledger that showed the court a different log could not have
//!     obtained these cosignatures. Without `--policy`, tlog-proofs that are
//!     present must still prove their entry under a checkpoint signed by a
//!     pinned key (any quorum), and every one must belong to an entry.
//!     `policy.txt` in the bundle is the exporting ledger's own statement:
//!     informative only; the auditor's policy is the one given.
//!
//! Dock keys come from the bundle itself. Replacing one gains a forger
//! nothing: the manifest and the event envelope (signatures included) are
//! inside leaf bytes the ledger signed. The report lists the dock key ids
//! that verified something, so an auditor who also holds the docks' keys can
//! compare them.
//!
//! Memory is bounded in total, not only per member ([`Limits`]), and time is
//! linear in the bundle's size: each envelope is checked against the keys its
//! signatures name (found by key id), manifests find their ingest entries
//! through one index, and every proof is checked once.
//!
//! # What this module must never do
//!
//! It never reports a bundle valid when any check above failed or was
//! skipped (a skipped SM3 check is a warning in the report, and SHA-256 is
//! always checked) or when the caller trusted no ledger key, never trusts a
//! key from the bundle for the checkpoint, never holds footage in memory (it
//! is hashed as it streams; the other members are small and bounded by the
//! `MAX_*` constants and [`Limits`]), never displays a member name without
//! escaping its control characters ([`escape_control`]), and never touches
//! a file or the network: the caller hands it a reader or a writer.
//!
//! # Where the code is
//!
//! This file holds what the writer and the verifier share: the member
//! paths and names, [`EntryLine`], [`Limits`] and the sorting of a member
//! path by what it is. `write.rs` is [`BundleWriter`]; `read.rs` is step 1,
//! [`BundleVerifier`] reading the tar stream member by member; `check.rs`
//! is [`BundleVerifier::finish`], one function per step 2 to 12, and the
//! [`Report`]; `error.rs` is [`BundleError`] and every [`Problem`]'s
//! message; `VERIFY.txt` is the text of [`VERIFY_TXT`].

mod check;
mod error;
mod read;
mod write;

use std::io::Read;

use crate::keys::VerifierKey;
use crate::manifest::{Manifest, OriginalName};

pub use check::{Origin, Report, SegmentSummary, Witnessed};
pub use error::{escape_control, BundleError, Problem};
pub use read::BundleVerifier;
pub use write::{BundleWriteError, BundleWriter};

use error::invalid;

// ---------------------------------------------------------------------------
// Layout
// ---------------------------------------------------------------------------

/// Directory of the footage files.
pub const FOOTAGE_DIR: &str = "footage";
/// Directory of the signed manifests.
pub const MANIFESTS_DIR: &str = "manifests";
/// Suffix of a manifest file after the segment id.
pub const MANIFEST_SUFFIX: &str = ".dsse.json";
/// The custody entries, one `/v1/entries` line each.
pub const ENTRIES_PATH: &str = "entries.jsonl";
/// Directory of the inclusion proofs.
pub const PROOFS_DIR: &str = "proofs";
/// Suffix of a proof file after the seq.
pub const PROOF_SUFFIX: &str = ".json";
/// The ledger's signed checkpoint.
pub const CHECKPOINT_PATH: &str = "checkpoint";
/// Directory of the C2SP tlog-proofs.
pub const TLOG_PROOFS_DIR: &str = "tlog-proofs";
/// Suffix of a tlog-proof file after the seq.
pub const TLOG_PROOF_SUFFIX: &str = ".tlog-proof";
/// The exporting ledger's trust policy.
pub const POLICY_PATH: &str = "policy.txt";
/// Largest tlog-proof file: 64 KiB (64 hashes and a checkpoint with up to
/// 100 signature lines fit).
pub const MAX_TLOG_PROOF_BYTES: u64 = 64 << 10;
/// Largest policy file: 64 KiB.
pub const MAX_POLICY_BYTES: u64 = 64 << 10;
/// Directory of the public keys.
pub const KEYS_DIR: &str = "keys";
/// Suffix of a key file.
pub const KEY_SUFFIX: &str = ".pub";
/// The human instructions.
pub const VERIFY_PATH: &str = "VERIFY.txt";
/// The human instructions in Chinese.
pub const VERIFY_ZH_PATH: &str = "VERIFY.zh-CN.txt";
/// The chain-of-custody report.
pub const REPORT_PATH: &str = "REPORT.pdf";
/// Footage extension when the original name has no usable one.
pub const DEFAULT_FOOTAGE_EXTENSION: &str = "bin";
/// Longest footage extension taken from an original name.
pub const MAX_EXTENSION_LEN: usize = 8;
/// Longest segment id that can name bundle files, in bytes (file names are
/// at most 255 bytes on common file systems; the suffixes need the rest).
pub const MAX_SEGMENT_ID_LEN: usize = 200;
/// Permission bits of every member.
pub const FILE_MODE: u32 = 0o644;

/// Largest `entries.jsonl` the verifier reads: 256 MiB. About 30 000
/// `segment.ingested` entries with their envelopes, far more than the custody
/// record of any export.
pub const MAX_ENTRIES_BYTES: u64 = 256 << 20;
/// Largest proof file: 64 KiB (a proof holds at most 63 hashes, about 3 KiB).
pub const MAX_PROOF_BYTES: u64 = 64 << 10;
/// Largest checkpoint file: 64 KiB.
pub const MAX_CHECKPOINT_BYTES: u64 = 64 << 10;
/// Largest key file: 4 KiB (a verifier key is under 300 bytes).
pub const MAX_KEY_BYTES: u64 = 4 << 10;
/// Largest `VERIFY.txt` (and `VERIFY.zh-CN.txt`): 1 MiB.
pub const MAX_VERIFY_TXT_BYTES: u64 = 1 << 20;
/// Largest document (`REPORT.pdf`): 1 GiB. It is hashed as it streams,
/// never held; a report of the largest export (10 000 segments) is far
/// smaller.
pub const MAX_DOCUMENT_BYTES: u64 = 1 << 30;
/// Largest manifest file: the DSSE envelope limit.
pub const MAX_MANIFEST_BYTES: u64 = crate::dsse::MAX_ENVELOPE_BYTES as u64;
/// Most members (files and directories) one bundle may have: 1,048,576.
/// The largest export the ledger writes (10 000 segments) with ten entries
/// per segment has about 120 000.
pub const MAX_MEMBERS: u64 = 1 << 20;
/// Most key files one bundle may have: 4096 (the ledger's key and one or
/// two per dock that signed something in it).
pub const MAX_KEYS: usize = 4096;
/// Most bytes the verifier holds at once for all members but footage
/// together, each member also charged [`MEMBER_OVERHEAD`] for its
/// bookkeeping: 512 MiB. The per-member limits bound one file; this bounds
/// their sum, so memory stays bounded however many members a bundle has.
/// What `finish` builds from them (parsed entries) is a small multiple.
pub const MAX_HELD_BYTES: u64 = 512 << 20;
/// What each member costs against [`MAX_HELD_BYTES`] besides its bytes:
/// its path is kept (to refuse duplicates), plus map nodes.
pub const MEMBER_OVERHEAD: u64 = 128;
/// Largest GNU long-name or PAX extended header the verifier reads: 64 KiB
/// (a bundle's member names are under 300 bytes).
pub const MAX_NAME_HEADER_BYTES: u64 = 64 << 10;

/// A segment id or key name that cannot name a file in a bundle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {name:?} cannot name a bundle file: {why}")]
pub struct UnsafeName {
    /// What the name is of: "segment id" or "key name".
    pub what: &'static str,
    /// The name.
    pub name: String,
    /// Why it is refused.
    pub why: &'static str,
}

fn check_file_name(what: &'static str, name: &str, max: usize) -> Result<(), UnsafeName> {
    let why = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > max {
        Some("it is too long")
    } else if name == "." || name == ".." {
        Some("it is a relative directory name")
    } else if name.contains(['/', '\\']) {
        Some("it contains a path separator")
    } else if name.chars().any(char::is_control) {
        Some("it contains a control character")
    } else {
        None
    };
    match why {
        Some(why) => Err(UnsafeName {
            what,
            name: name.to_owned(),
            why,
        }),
        None => Ok(()),
    }
}

/// Check that `id` can name bundle files: 1 to [`MAX_SEGMENT_ID_LEN`] bytes,
/// not `.` or `..`, without `/`, `\` or control characters.
pub fn check_segment_id(id: &str) -> Result<(), UnsafeName> {
    check_file_name("segment id", id, MAX_SEGMENT_ID_LEN)
}

/// The footage file extension for a recorder's original file name (see the
/// module documentation).
pub fn footage_extension(original: &OriginalName) -> String {
    let bytes = original.as_bytes();
    let ext = match bytes.iter().rposition(|&b| b == b'.') {
        Some(dot) => &bytes[dot + 1..],
        None => &[][..],
    };
    if (1..=MAX_EXTENSION_LEN).contains(&ext.len()) && ext.iter().all(u8::is_ascii_alphanumeric) {
        String::from_utf8_lossy(ext).to_ascii_lowercase()
    } else {
        DEFAULT_FOOTAGE_EXTENSION.to_owned()
    }
}

/// `footage/<segment_id>.<ext>` for a manifest.
pub fn footage_path(manifest: &Manifest) -> Result<String, UnsafeName> {
    check_segment_id(&manifest.segment_id)?;
    Ok(format!(
        "{FOOTAGE_DIR}/{}.{}",
        manifest.segment_id,
        footage_extension(&manifest.original_name)
    ))
}

/// `manifests/<segment_id>.dsse.json`.
pub fn manifest_path(segment_id: &str) -> Result<String, UnsafeName> {
    check_segment_id(segment_id)?;
    Ok(format!("{MANIFESTS_DIR}/{segment_id}{MANIFEST_SUFFIX}"))
}

/// `proofs/<seq>.json`.
pub fn proof_path(seq: u64) -> String {
    format!("{PROOFS_DIR}/{seq}{PROOF_SUFFIX}")
}

/// `tlog-proofs/<seq>.tlog-proof`.
pub fn tlog_proof_path(seq: u64) -> String {
    format!("{TLOG_PROOFS_DIR}/{seq}{TLOG_PROOF_SUFFIX}")
}

/// `keys/<name>.pub`.
pub fn key_path(key: &VerifierKey) -> Result<String, UnsafeName> {
    check_file_name("key name", key.name(), 200)?;
    Ok(format!("{KEYS_DIR}/{}{KEY_SUFFIX}", key.name()))
}

/// `keys/<name>+<hash>.pub`: a key whose plain name is taken.
fn key_path_with_hash(key: &VerifierKey) -> Result<String, UnsafeName> {
    check_file_name("key name", key.name(), 200)?;
    Ok(format!("{KEYS_DIR}/{}{KEY_SUFFIX}", key.key_id()))
}

// ---------------------------------------------------------------------------
// Lines and proofs
// ---------------------------------------------------------------------------

/// One custody entry as the bundle (and `/v1/entries`) carries it: its
/// `seq` and exact leaf bytes, as one JSON line (one type for both).
pub use crate::wire::{BadEntryLine, EntryLine};

/// An inclusion proof as `/v1/proof/inclusion` serves it and
/// `proofs/<seq>.json` holds it (one type for both).
pub use crate::wire::InclusionProof;

// ---------------------------------------------------------------------------
// Members
// ---------------------------------------------------------------------------

/// A member path, sorted by what it is.
enum Member {
    Directory,
    Footage,
    Manifest(String),
    Entries,
    Proof(u64),
    TlogProof(u64),
    Policy,
    Checkpoint,
    Key,
    VerifyTxt,
    Document,
}

/// What the member at `path` is, or `None` when the layout has no such
/// path (a leading `./` is stripped by the caller).
fn classify(path: &str) -> Option<Member> {
    if matches!(path, "" | ".") {
        return Some(Member::Directory);
    }
    if let Some(dir) = path.strip_suffix('/') {
        return matches!(
            dir,
            "." | FOOTAGE_DIR | MANIFESTS_DIR | PROOFS_DIR | KEYS_DIR | TLOG_PROOFS_DIR
        )
        .then_some(Member::Directory);
    }
    match path {
        ENTRIES_PATH => return Some(Member::Entries),
        CHECKPOINT_PATH => return Some(Member::Checkpoint),
        POLICY_PATH => return Some(Member::Policy),
        VERIFY_PATH | VERIFY_ZH_PATH => return Some(Member::VerifyTxt),
        REPORT_PATH => return Some(Member::Document),
        FOOTAGE_DIR | MANIFESTS_DIR | PROOFS_DIR | KEYS_DIR | TLOG_PROOFS_DIR => {
            return Some(Member::Directory)
        }
        _ => {}
    }
    let (dir, name) = path.split_once('/')?;
    if name.is_empty() || name.contains('/') {
        return None;
    }
    match dir {
        FOOTAGE_DIR => Some(Member::Footage),
        MANIFESTS_DIR => {
            let id = name.strip_suffix(MANIFEST_SUFFIX)?;
            check_segment_id(id).ok()?;
            Some(Member::Manifest(id.to_owned()))
        }
        PROOFS_DIR => canonical_seq(name.strip_suffix(PROOF_SUFFIX)?).map(Member::Proof),
        TLOG_PROOFS_DIR => {
            canonical_seq(name.strip_suffix(TLOG_PROOF_SUFFIX)?).map(Member::TlogProof)
        }
        KEYS_DIR => {
            let stem = name.strip_suffix(KEY_SUFFIX)?;
            (!stem.is_empty()).then_some(Member::Key)
        }
        _ => None,
    }
}

/// A seq in a file name: decimal without leading zero.
fn canonical_seq(seq: &str) -> Option<u64> {
    let canonical = !seq.is_empty()
        && seq.bytes().all(|b| b.is_ascii_digit())
        && (seq == "0" || !seq.starts_with('0'));
    if !canonical {
        return None;
    }
    seq.parse().ok()
}

/// How much of a bundle the verifier accepts: the bounds on its memory
/// (the per-member `MAX_*` limits bound each file; these bound the sum).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Most members ([`MAX_MEMBERS`]).
    pub members: u64,
    /// Most key files ([`MAX_KEYS`]).
    pub keys: usize,
    /// Most bytes held for all members but footage ([`MAX_HELD_BYTES`]).
    pub held_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            members: MAX_MEMBERS,
            keys: MAX_KEYS,
            held_bytes: MAX_HELD_BYTES,
        }
    }
}

impl Limits {
    /// These limits with at most `members` members.
    pub fn members(mut self, members: u64) -> Self {
        self.members = members;
        self
    }

    /// These limits with at most `keys` key files.
    pub fn keys(mut self, keys: usize) -> Self {
        self.keys = keys;
        self
    }

    /// These limits with at most `bytes` held.
    pub fn held_bytes(mut self, bytes: u64) -> Self {
        self.held_bytes = bytes;
        self
    }
}

// ---------------------------------------------------------------------------
// Verifying in one call
// ---------------------------------------------------------------------------

/// Verify a whole bundle read from `reader` (see the module documentation)
/// against the ledger keys the caller `trusted` ([`BundleVerifier::finish`]);
/// `progress` is called with the bytes read so far.
pub fn verify<R: Read>(
    reader: R,
    trusted: &[VerifierKey],
    progress: &mut dyn FnMut(u64),
) -> Result<Report, BundleError> {
    let mut verifier = BundleVerifier::new();
    verifier.read_tar(reader, progress)?;
    verifier.finish(trusted)
}

/// [`verify`] with an auditor's trust policy: step 13 requires every entry
/// to be proven under a checkpoint the policy's quorum of witnesses
/// cosigned ([`BundleVerifier::finish_with_policy`]).
pub fn verify_with_policy<R: Read>(
    reader: R,
    trusted: &[VerifierKey],
    policy: Option<&crate::policy::Policy>,
    progress: &mut dyn FnMut(u64),
) -> Result<Report, BundleError> {
    let mut verifier = BundleVerifier::new();
    verifier.read_tar(reader, progress)?;
    verifier.finish_with_policy(trusted, policy)
}

// ---------------------------------------------------------------------------
// VERIFY.txt
// ---------------------------------------------------------------------------

/// The text of `VERIFY.txt`. Its command blocks (lines indented by four
/// spaces in section 3) are run by the crate's tests against a real bundle,
/// so they stay correct.
pub const VERIFY_TXT: &str = include_str!("VERIFY.txt");

/// The text of `VERIFY.zh-CN.txt`: `VERIFY.txt` in Chinese, with the same
/// commands (its command blocks are run by the tests too).
pub const VERIFY_ZH_TXT: &str = include_str!("VERIFY.zh-CN.txt");
