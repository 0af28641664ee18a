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
//! | `keys/<name>.pub` | every public key needed, as C2SP verifier-key files |
//! | `VERIFY.txt` | how to verify, with `custos` and with standard tools ([`VERIFY_TXT`]) |
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
//! {"segments": ["<segment id>", ...], "entries": [<seq>, ...]}
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
//!    `/v1/entries` line; `raw` is canonical entry JSON ([`Entry::parse`]),
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
//!    the listed segments are exactly the bundle's manifests.
//! 10. **Manifests are the ingested ones.** Each manifest envelope verifies
//!     under a dock key in `keys/`, is a valid manifest for the segment its
//!     file name says, and is, envelope for envelope, the `details.manifest`
//!     of a `segment.ingested` entry in the bundle about that segment: the
//!     manifest is what the dock sent to the ledger, and the ledger's log
//!     (step 6) binds it.
//! 11. **Footage is the recorded bytes.** Each manifest's footage file exists
//!     and has the manifest's size and SHA-256 (and SM3 when the manifest
//!     has one and this build computes SM3); every footage file has a
//!     manifest.
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

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{self, Read, Write};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::digest::{Algorithm, Digest, Digests, MultiHasher};
use crate::dsse::{DsseError, Envelope};
use crate::entry::{actions, Entry, EntryError, Event};
use crate::keys::{KeyError, VerifierKey};
use crate::manifest::{Manifest, ManifestError, OriginalName, SignedManifest};
use crate::merkle::{leaf_hash, verify_inclusion, Hash, InclusionError};
use crate::note::{SignedNote, VerifyError};

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
/// Directory of the public keys.
pub const KEYS_DIR: &str = "keys";
/// Suffix of a key file.
pub const KEY_SUFFIX: &str = ".pub";
/// The human instructions.
pub const VERIFY_PATH: &str = "VERIFY.txt";
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
/// Largest `VERIFY.txt`: 1 MiB.
pub const MAX_VERIFY_TXT_BYTES: u64 = 1 << 20;
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
/// Zero padding read after the end-of-archive marker before the verifier
/// stops looking: 1 MiB (tar pads to its record size, 10 KiB by default).
const MAX_TRAILING_ZEROS: u64 = 1 << 20;
/// Buffer for hashing footage: 1 MiB per read keeps the hasher busy.
const READ_BUFFER: usize = 1 << 20;

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
/// `seq` and exact leaf bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryLine {
    /// The entry's index in the log.
    pub seq: u64,
    /// The exact leaf bytes (canonical entry JSON).
    pub raw: Vec<u8>,
}

impl EntryLine {
    /// The line for entry `seq` with leaf bytes `raw`.
    pub fn new(seq: u64, raw: impl Into<Vec<u8>>) -> Self {
        EntryLine {
            seq,
            raw: raw.into(),
        }
    }

    /// The entry's leaf hash, `SHA-256(0x00 || raw)`.
    pub fn leaf_hash(&self) -> Hash {
        leaf_hash(&self.raw)
    }

    /// `{"seq":N,"raw":"<base64>","entry":<raw>}` and a newline. The raw
    /// bytes must be one line of UTF-8 JSON (stored entries always are).
    pub fn to_json_line(&self) -> Result<String, BundleWriteError> {
        let bad = |why: &'static str| BundleWriteError::BadEntry { seq: self.seq, why };
        let text = std::str::from_utf8(&self.raw).map_err(|_| bad("its bytes are not UTF-8"))?;
        if text.contains(['\n', '\r']) {
            return Err(bad("its bytes hold a line break"));
        }
        serde_json::from_str::<serde::de::IgnoredAny>(text)
            .map_err(|_| bad("its bytes are not JSON"))?;
        Ok(format!(
            "{{\"seq\":{},\"raw\":\"{}\",\"entry\":{}}}\n",
            self.seq,
            B64.encode(&self.raw),
            text
        ))
    }
}

/// An inclusion proof as `/v1/proof/inclusion` serves it and
/// `proofs/<seq>.json` holds it (one type for both).
pub use crate::wire::InclusionProof;

// ---------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------

/// Why a bundle could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleWriteError {
    /// Writing to the output failed.
    #[error("writing the bundle: {0}")]
    Write(#[source] io::Error),
    /// Reading a footage file's bytes failed.
    #[error("{path}: reading the footage: {source}")]
    FootageRead {
        /// The member being written.
        path: String,
        /// What the reader said.
        source: io::Error,
    },
    /// The footage reader gave another number of bytes than the manifest's
    /// size. The output is not a valid bundle and must be discarded.
    #[error("{path}: the manifest says {expected} bytes, the footage reader gave {}", if *more { format!("more than {expected}") } else { got.to_string() })]
    FootageSize {
        /// The member being written.
        path: String,
        /// The manifest's size.
        expected: u64,
        /// How many bytes the reader gave (when fewer).
        got: u64,
        /// Whether the reader had more bytes than expected.
        more: bool,
    },
    /// The same member was added twice.
    #[error("{0} was already added to the bundle")]
    Duplicate(String),
    /// A segment id or key name cannot name a file.
    #[error(transparent)]
    UnsafeName(#[from] UnsafeName),
    /// A manifest envelope's payload is not a valid manifest.
    #[error("manifest: {0}")]
    Manifest(#[from] ManifestError),
    /// An entry's bytes cannot be written as a line.
    #[error("entry {seq}: {why}")]
    BadEntry {
        /// The entry's seq.
        seq: u64,
        /// What is wrong.
        why: &'static str,
    },
}

/// Streams a bundle into a [`Write`] as a tar archive.
///
/// Add members in any order; the recommended one, which lets a streaming
/// verifier know each manifest before its footage, is keys, checkpoint,
/// manifests, entries, proofs, then footage. [`BundleWriter::finish`] adds
/// `VERIFY.txt` and the end-of-archive marker. Headers are deterministic:
/// GNU format, mode 0644, uid and gid 0, no user or group name, and the
/// mtime given to [`BundleWriter::with_mtime`] (0 by default). Footage
/// larger than 8 GiB gets a GNU base-256 size field, which GNU tar, bsdtar
/// and Python's tarfile read.
///
/// On any error the output holds a partial archive that must be discarded.
pub struct BundleWriter<W: Write> {
    tar: tar::Builder<W>,
    mtime: u64,
    paths: BTreeSet<String>,
    /// Keys written so far: `name+hash` to member path.
    keys: BTreeMap<String, String>,
}

impl<W: Write> fmt::Debug for BundleWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BundleWriter")
            .field("mtime", &self.mtime)
            .field("members", &self.paths.len())
            .finish_non_exhaustive()
    }
}

/// Reads exactly `expected` bytes from a footage reader, remembering a read
/// error and a short stream so that the writer can tell them apart from
/// output errors.
struct ExactReader<R> {
    inner: R,
    remaining: u64,
    read_error: Option<io::Error>,
    short: bool,
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        loop {
            match self.inner.read(&mut buf[..want]) {
                Ok(0) => {
                    self.short = true;
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "footage ended early",
                    ));
                }
                Ok(n) => {
                    self.remaining -= n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let copy = io::Error::new(e.kind(), e.to_string());
                    self.read_error = Some(e);
                    return Err(copy);
                }
            }
        }
    }
}

impl<W: Write> BundleWriter<W> {
    /// A writer with every mtime 0.
    pub fn new(out: W) -> Self {
        Self::with_mtime(out, 0)
    }

    /// A writer with every member's mtime set to `mtime` (seconds since the
    /// Unix epoch; the export's time, for example).
    pub fn with_mtime(out: W, mtime: u64) -> Self {
        BundleWriter {
            tar: tar::Builder::new(out),
            mtime,
            paths: BTreeSet::new(),
            keys: BTreeMap::new(),
        }
    }

    fn header(&self, size: u64) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(size);
        header.set_mode(FILE_MODE);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(self.mtime);
        header
    }

    fn claim(&mut self, path: &str) -> Result<(), BundleWriteError> {
        if !self.paths.insert(path.to_owned()) {
            return Err(BundleWriteError::Duplicate(path.to_owned()));
        }
        Ok(())
    }

    fn add_bytes(&mut self, path: &str, data: &[u8]) -> Result<(), BundleWriteError> {
        self.claim(path)?;
        let mut header = self.header(data.len() as u64);
        self.tar
            .append_data(&mut header, path, data)
            .map_err(BundleWriteError::Write)
    }

    /// Add a public key as `keys/<name>.pub` (or `keys/<name>+<hash>.pub`
    /// when another key already has that name); returns the member's path.
    /// Adding the same key again does nothing and returns its path.
    pub fn add_key(&mut self, key: &VerifierKey) -> Result<String, BundleWriteError> {
        if let Some(path) = self.keys.get(&key.key_id()) {
            return Ok(path.clone());
        }
        let plain = key_path(key)?;
        let path = if self.paths.contains(&plain) {
            key_path_with_hash(key)?
        } else {
            plain
        };
        self.add_bytes(&path, format!("{key}\n").as_bytes())?;
        self.keys.insert(key.key_id(), path.clone());
        Ok(path)
    }

    /// Add the signed checkpoint (the C2SP signed note, as the ledger serves
    /// it) every proof is against.
    pub fn add_checkpoint(&mut self, signed: &str) -> Result<(), BundleWriteError> {
        self.add_bytes(CHECKPOINT_PATH, signed.as_bytes())
    }

    /// Add a signed manifest as `manifests/<segment_id>.dsse.json` (its
    /// canonical JSON); the segment id is read from the payload, which must
    /// be a valid manifest. Returns the member's path.
    pub fn add_manifest(&mut self, envelope: &Envelope) -> Result<String, BundleWriteError> {
        let manifest = Manifest::parse(&envelope.payload)?;
        let path = manifest_path(&manifest.segment_id)?;
        self.add_bytes(&path, &envelope.to_json())?;
        Ok(path)
    }

    /// Add `entries.jsonl` from these entries, which must be in ascending
    /// `seq` order (the verifier refuses any other order).
    pub fn add_entry_lines(&mut self, lines: &[EntryLine]) -> Result<(), BundleWriteError> {
        let mut text = String::new();
        for line in lines {
            text.push_str(&line.to_json_line()?);
        }
        self.add_bytes(ENTRIES_PATH, text.as_bytes())
    }

    /// Add `proofs/<index>.json`.
    pub fn add_proof(&mut self, proof: &InclusionProof) -> Result<(), BundleWriteError> {
        // Numbers and base64 strings: written directly, nothing to escape.
        let hashes: Vec<String> = proof.hashes.iter().map(|h| format!("\"{h}\"")).collect();
        let json = format!(
            "{{\"index\":{},\"size\":{},\"hashes\":[{}]}}",
            proof.index,
            proof.size,
            hashes.join(",")
        );
        self.add_bytes(&proof_path(proof.index), json.as_bytes())
    }

    /// Stream a segment's footage from `reader` as [`footage_path`]`(manifest)`.
    /// The reader must give exactly `manifest.size` bytes; they are copied
    /// through a fixed buffer, never held whole. Returns the member's path.
    pub fn add_footage<R: Read>(
        &mut self,
        manifest: &Manifest,
        reader: R,
    ) -> Result<String, BundleWriteError> {
        let path = footage_path(manifest)?;
        self.claim(&path)?;
        let mut header = self.header(manifest.size);
        let mut exact = ExactReader {
            inner: reader,
            remaining: manifest.size,
            read_error: None,
            short: false,
        };
        let result = self.tar.append_data(&mut header, &path, &mut exact);
        if let Some(source) = exact.read_error.take() {
            return Err(BundleWriteError::FootageRead { path, source });
        }
        if exact.short {
            return Err(BundleWriteError::FootageSize {
                path,
                expected: manifest.size,
                got: manifest.size - exact.remaining,
                more: false,
            });
        }
        result.map_err(BundleWriteError::Write)?;
        // One more byte means the reader is longer than the manifest says.
        let mut probe = [0u8; 1];
        loop {
            match exact.inner.read(&mut probe) {
                Ok(0) => break,
                Ok(_) => {
                    return Err(BundleWriteError::FootageSize {
                        path,
                        expected: manifest.size,
                        got: manifest.size,
                        more: true,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(BundleWriteError::FootageRead { path, source }),
            }
        }
        Ok(path)
    }

    /// Add `VERIFY.txt`, write the end-of-archive marker, flush, and hand
    /// back the output.
    pub fn finish(mut self) -> Result<W, BundleWriteError> {
        self.add_bytes(VERIFY_PATH, VERIFY_TXT.as_bytes())?;
        let mut out = self.tar.into_inner().map_err(BundleWriteError::Write)?;
        out.flush().map_err(BundleWriteError::Write)?;
        Ok(out)
    }
}

// ---------------------------------------------------------------------------
// Verification errors
// ---------------------------------------------------------------------------

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

fn invalid(location: impl Into<String>, problem: Problem) -> BundleError {
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
    #[error("not part of the bundle layout (footage/, manifests/, entries.jsonl, proofs/, checkpoint, keys/, VERIFY.txt)")]
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
    #[error("signed event: {0}")]
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
    ExportDetails(&'static str),
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

// ---------------------------------------------------------------------------
// Verifier
// ---------------------------------------------------------------------------

/// What a valid bundle holds, for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// The segments, by id.
    pub segments: Vec<SegmentSummary>,
    /// Total footage bytes hashed.
    pub footage_bytes: u64,
    /// How many custody entries.
    pub entries: usize,
    /// The export entry's seq.
    pub export_seq: u64,
    /// The checkpoint every proof is against.
    pub checkpoint: Checkpoint,
    /// Who vouches for the checkpoint: a key the caller trusts, or nobody.
    pub origin: Origin,
    /// The dock keys (`name+hash`) that verified manifests or events.
    pub signing_keys: Vec<String>,
    /// Things the auditor should know that do not make the bundle invalid.
    pub warnings: Vec<String>,
}

impl Report {
    /// Whether the bundle is valid: every check passed and the checkpoint
    /// verified under a key the caller trusts ([`Origin::Pinned`]). Without
    /// one, the other checks show only that the bundle is consistent with
    /// itself, which anyone with a key pair of their own can make.
    pub fn is_valid(&self) -> bool {
        matches!(self.origin, Origin::Pinned { .. })
    }
}

/// Who vouches for a bundle's checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// It carries a valid signature by this key, one the caller trusts.
    Pinned {
        /// The key (`name+hash`).
        key_id: String,
    },
    /// The caller trusted no key, so no signature was checked against one.
    /// Every other check passed; this is not a valid bundle.
    Unverified {
        /// The `name+hash` of every signature on the checkpoint (claims only).
        signers: Vec<String>,
        /// A key in the bundle's own `keys/` whose signature verifies, if
        /// any; it proves nothing, since whoever made the bundle chose it.
        bundle_key: Option<String>,
    },
}

/// One verified segment.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentSummary {
    /// The segment id.
    pub segment_id: String,
    /// The footage member.
    pub footage: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256 (equal to the manifest's).
    pub sha256: Digest,
    /// Whether its SM3 was checked too.
    pub sm3_checked: bool,
}

/// A footage member as it streamed past.
#[derive(Debug)]
struct FootageSeen {
    size: u64,
    digests: Digests,
}

/// A member path, sorted by what it is.
enum Member {
    Directory,
    Footage,
    Manifest(String),
    Entries,
    Proof(u64),
    Checkpoint,
    Key,
    VerifyTxt,
}

fn classify(path: &str) -> Option<Member> {
    if matches!(path, "" | ".") {
        return Some(Member::Directory);
    }
    if let Some(dir) = path.strip_suffix('/') {
        return matches!(
            dir,
            "." | FOOTAGE_DIR | MANIFESTS_DIR | PROOFS_DIR | KEYS_DIR
        )
        .then_some(Member::Directory);
    }
    match path {
        ENTRIES_PATH => return Some(Member::Entries),
        CHECKPOINT_PATH => return Some(Member::Checkpoint),
        VERIFY_PATH => return Some(Member::VerifyTxt),
        FOOTAGE_DIR | MANIFESTS_DIR | PROOFS_DIR | KEYS_DIR => return Some(Member::Directory),
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
        PROOFS_DIR => {
            let seq = name.strip_suffix(PROOF_SUFFIX)?;
            let canonical = !seq.is_empty()
                && seq.bytes().all(|b| b.is_ascii_digit())
                && (seq == "0" || !seq.starts_with('0'));
            if !canonical {
                return None;
            }
            seq.parse().ok().map(Member::Proof)
        }
        KEYS_DIR => {
            let stem = name.strip_suffix(KEY_SUFFIX)?;
            (!stem.is_empty()).then_some(Member::Key)
        }
        _ => None,
    }
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

/// Verifies a bundle member by member, in any order, then as a whole.
///
/// Feed it a tar with [`BundleVerifier::read_tar`] (or members one by one
/// with [`BundleVerifier::add_member`]), then call
/// [`BundleVerifier::finish`]; or use [`verify`] for both. Footage is hashed
/// as it streams; every other member is small and kept until `finish`.
#[derive(Debug, Default)]
pub struct BundleVerifier {
    limits: Limits,
    /// Members seen so far (directories included).
    count: u64,
    /// Bytes held so far against `limits.held_bytes`.
    held: u64,
    members: BTreeSet<String>,
    footage: BTreeMap<String, FootageSeen>,
    /// Footage paths whose manifest (seen before them) carries an SM3 digest.
    sm3_wanted: BTreeSet<String>,
    manifests: BTreeMap<String, Vec<u8>>,
    entries: Option<Vec<u8>>,
    proofs: BTreeMap<u64, Vec<u8>>,
    checkpoint: Option<Vec<u8>>,
    keys: BTreeMap<String, Vec<u8>>,
    verify_txt: bool,
    buffer: Vec<u8>,
}

/// The reader under the tar parser: counts bytes for the progress callback
/// and the error messages, and remembers whether the input ended or failed,
/// which is how a truncated archive is told from a corrupt one.
struct Source<'p, R> {
    inner: R,
    pos: u64,
    eof: bool,
    failed: bool,
    progress: &'p mut dyn FnMut(u64),
}

impl<R: Read> Read for Source<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        match self.inner.read(buf) {
            Ok(0) => {
                self.eof = true;
                Ok(0)
            }
            Ok(n) => {
                self.pos += n as u64;
                (self.progress)(self.pos);
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }
}

/// Why reading members stopped.
enum Stop {
    /// The tar parser failed.
    Tar(io::Error),
    /// A member was refused or could not be read.
    Bundle(BundleError),
}

fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The `path` record of a PAX extended header, if it has one (the name it
/// gives the next member; other records, such as times, are ignored). A `size` record is
/// refused: the verifier reads sizes from the headers (GNU base-256 for
/// footage over 8 GiB, as [`BundleWriter`] writes them).
fn pax_path(bytes: &[u8]) -> Result<Option<Vec<u8>>, &'static str> {
    let mut path = None;
    for record in tar::PaxExtensions::new(bytes) {
        let record = record.map_err(|_| "a record is malformed")?;
        match record.key_bytes() {
            b"path" => path = Some(record.value_bytes().to_vec()),
            b"size" => return Err("it gives a size (only header sizes are read)"),
            _ => {}
        }
    }
    Ok(path)
}

impl BundleVerifier {
    /// A verifier that has seen nothing yet, with the default [`Limits`].
    pub fn new() -> Self {
        BundleVerifier::default()
    }

    /// A verifier with other limits (smaller ones, in tests).
    pub fn with_limits(limits: Limits) -> Self {
        BundleVerifier {
            limits,
            ..BundleVerifier::default()
        }
    }

    /// Count one more member, refusing past [`Limits::members`].
    fn count_member(&mut self, path: &str) -> Result<(), BundleError> {
        self.count += 1;
        if self.count > self.limits.members {
            return Err(invalid(
                path,
                Problem::TooManyMembers {
                    max: self.limits.members,
                },
            ));
        }
        Ok(())
    }

    /// Charge `bytes` against [`Limits::held_bytes`].
    fn hold(&mut self, path: &str, bytes: u64) -> Result<(), BundleError> {
        self.held = self.held.saturating_add(bytes);
        if self.held > self.limits.held_bytes {
            return Err(invalid(
                path,
                Problem::HeldTooLarge {
                    max: self.limits.held_bytes,
                },
            ));
        }
        Ok(())
    }

    /// Read a whole tar archive from `reader`, calling `progress` with the
    /// number of bytes read so far after every read.
    ///
    /// Fails with [`BundleError::Io`], [`BundleError::NotTar`] or
    /// [`BundleError::Truncated`] when the archive cannot be read, and with
    /// [`BundleError::Invalid`] when a member is not one a bundle may hold.
    pub fn read_tar<R: Read>(
        &mut self,
        reader: R,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), BundleError> {
        let mut source = Source {
            inner: reader,
            pos: 0,
            eof: false,
            failed: false,
            progress,
        };
        let result = self.read_members(&mut source);
        let members = match result {
            Ok(n) => n,
            Err(Stop::Bundle(BundleError::Io(e))) | Err(Stop::Tar(e)) if source.failed => {
                return Err(BundleError::Io(e))
            }
            Err(Stop::Bundle(e)) => return Err(e),
            Err(Stop::Tar(_)) if source.eof && source.pos < 512 => {
                return Err(BundleError::NotTar {
                    offset: source.pos,
                    detail: format!(
                        "the file is {} bytes, shorter than one tar header",
                        source.pos
                    ),
                })
            }
            Err(Stop::Tar(e)) if source.eof => {
                return Err(BundleError::Truncated {
                    detail: format!("it ends inside a tar header at byte {} ({e})", source.pos),
                })
            }
            Err(Stop::Tar(e)) => {
                return Err(BundleError::NotTar {
                    offset: source.pos,
                    detail: e.to_string(),
                })
            }
        };
        if source.pos == 0 {
            return Err(BundleError::NotTar {
                offset: 0,
                detail: "the file is empty".into(),
            });
        }
        if source.eof {
            return Err(BundleError::Truncated {
                detail: format!(
                    "it ends after {members} members at byte {} without the end-of-archive marker",
                    source.pos
                ),
            });
        }
        // The marker is two zero blocks, of which the tar reader consumed
        // the first; tar then pads with zeros. Anything else is refused.
        let end = source.pos;
        let mut buf = [0u8; 8192];
        let mut rest = (&mut source).take(MAX_TRAILING_ZEROS);
        let mut offset = end;
        loop {
            let n = match rest.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(BundleError::Io(e)),
            };
            if n == 0 {
                break;
            }
            if let Some(i) = buf[..n].iter().position(|&b| b != 0) {
                return Err(invalid(
                    "archive",
                    Problem::DataAfterEnd {
                        offset: offset + i as u64,
                    },
                ));
            }
            offset += n as u64;
        }
        if offset - end < 512 {
            return Err(BundleError::Truncated {
                detail: format!(
                    "it ends at byte {offset}, inside the end-of-archive marker (two zero blocks)"
                ),
            });
        }
        Ok(())
    }

    /// Read every member. The tar reader runs in raw mode: GNU long-name
    /// and PAX headers come to this function, which reads them within
    /// [`MAX_NAME_HEADER_BYTES`] (the tar crate would read them whole,
    /// however large their header says they are).
    fn read_members<R: Read>(&mut self, source: &mut Source<'_, R>) -> Result<u64, Stop> {
        let mut archive = tar::Archive::new(source);
        let mut count = 0;
        // Whether a GNU long-name or PAX header came just before, and the
        // name it gave the next member (a PAX header may give none).
        let mut header_seen = false;
        let mut pending: Option<Vec<u8>> = None;
        for member in archive.entries().map_err(Stop::Tar)?.raw(true) {
            let mut member = member.map_err(Stop::Tar)?;
            let kind = member.header().entry_type();
            let size = member.size();
            if kind.is_gnu_longname() || kind.is_pax_local_extensions() {
                let what = if kind.is_gnu_longname() {
                    "GNU long-name header"
                } else {
                    "PAX extended header"
                };
                if header_seen {
                    return Err(Stop::Tar(io::Error::other(format!(
                        "a {what} follows another name header for the same member"
                    ))));
                }
                self.count_member(what).map_err(Stop::Bundle)?;
                if size > MAX_NAME_HEADER_BYTES {
                    return Err(Stop::Bundle(invalid(
                        what,
                        Problem::TooLarge {
                            size,
                            max: MAX_NAME_HEADER_BYTES,
                        },
                    )));
                }
                // INVARIANT: size <= 64 KiB.
                let mut bytes = vec![0u8; usize::try_from(size).unwrap_or(0)];
                let got = read_full(&mut member, &mut bytes)
                    .map_err(|e| Stop::Bundle(BundleError::Io(e)))?;
                if got as u64 != size {
                    return Err(Stop::Bundle(BundleError::Truncated {
                        detail: format!("the archive ends inside a {what}"),
                    }));
                }
                header_seen = true;
                pending = if kind.is_gnu_longname() {
                    let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
                    bytes.truncate(end);
                    Some(bytes)
                } else {
                    pax_path(&bytes)
                        .map_err(|why| Stop::Tar(io::Error::other(format!("a {what}: {why}"))))?
                };
                continue;
            }
            header_seen = false;
            let path_bytes = match pending.take() {
                Some(name) => name,
                None => member.path_bytes().into_owned(),
            };
            let path = String::from_utf8_lossy(&path_bytes).into_owned();
            if std::str::from_utf8(&path_bytes).is_err() {
                return Err(Stop::Bundle(invalid(path, Problem::UnknownMember)));
            }
            if kind.is_dir() {
                let path = path.strip_prefix("./").unwrap_or(&path);
                if !matches!(classify(path), Some(Member::Directory)) {
                    return Err(Stop::Bundle(invalid(path, Problem::UnknownMember)));
                }
                self.count_member(path).map_err(Stop::Bundle)?;
            } else if !kind.is_file() {
                return Err(Stop::Bundle(invalid(
                    path,
                    Problem::NotRegularFile {
                        kind: format!("{kind:?}"),
                    },
                )));
            } else {
                self.add_member(&path, size, &mut member)
                    .map_err(Stop::Bundle)?;
            }
            count += 1;
        }
        if header_seen {
            return Err(Stop::Tar(io::Error::other(
                "a name header is not followed by a member",
            )));
        }
        Ok(count)
    }

    /// Add one regular file of the bundle: `path` as in the archive (a
    /// leading `./` is ignored), `size` bytes read from `data`.
    ///
    /// Footage is hashed as it is read; other members are kept for
    /// [`BundleVerifier::finish`]. Fails when the path is not part of the
    /// layout, appears twice, is larger than its kind allows, or `data`
    /// ends before `size` bytes ([`BundleError::Truncated`]).
    pub fn add_member<R: Read>(
        &mut self,
        path: &str,
        size: u64,
        mut data: R,
    ) -> Result<(), BundleError> {
        let path = path.strip_prefix("./").unwrap_or(path);
        let Some(member) = classify(path) else {
            return Err(invalid(path, Problem::UnknownMember));
        };
        if matches!(member, Member::Directory) {
            return Err(invalid(
                path,
                Problem::NotRegularFile {
                    kind: "directory".into(),
                },
            ));
        }
        if !self.members.insert(path.to_owned()) {
            return Err(invalid(path, Problem::DuplicateMember));
        }
        self.count_member(path)?;
        self.hold(path, path.len() as u64 + MEMBER_OVERHEAD)?;
        if matches!(member, Member::Key) && self.keys.len() >= self.limits.keys {
            return Err(invalid(
                path,
                Problem::TooManyKeys {
                    max: self.limits.keys,
                },
            ));
        }
        let limit = match member {
            Member::Footage => return self.hash_footage(path, size, &mut data),
            Member::Manifest(_) => MAX_MANIFEST_BYTES,
            Member::Entries => MAX_ENTRIES_BYTES,
            Member::Proof(_) => MAX_PROOF_BYTES,
            Member::Checkpoint => MAX_CHECKPOINT_BYTES,
            Member::Key => MAX_KEY_BYTES,
            Member::VerifyTxt => MAX_VERIFY_TXT_BYTES,
            Member::Directory => 0,
        };
        if size > limit {
            return Err(invalid(path, Problem::TooLarge { size, max: limit }));
        }
        self.hold(path, size)?;
        // INVARIANT: size <= limit <= 256 MiB, which fits in usize.
        let mut bytes = vec![0u8; usize::try_from(size).unwrap_or(0)];
        let got = read_full(&mut data, &mut bytes).map_err(BundleError::Io)?;
        if got as u64 != size {
            return Err(BundleError::Truncated {
                detail: format!("{path}: the archive ends after {got} of its {size} bytes"),
            });
        }
        match member {
            Member::Manifest(id) => {
                // Peek (unverified) at the manifest to know whether its
                // footage needs SM3 too; `finish` verifies it properly.
                if let Ok(envelope) = Envelope::parse(&bytes) {
                    if let Ok(manifest) = Manifest::parse(&envelope.payload) {
                        if manifest.digests.sm3.is_some() {
                            if let Ok(footage) = footage_path(&manifest) {
                                self.sm3_wanted.insert(footage);
                            }
                        }
                    }
                }
                self.manifests.insert(id, bytes);
            }
            Member::Entries => self.entries = Some(bytes),
            Member::Proof(seq) => {
                self.proofs.insert(seq, bytes);
            }
            Member::Checkpoint => self.checkpoint = Some(bytes),
            Member::Key => {
                self.keys.insert(path.to_owned(), bytes);
            }
            Member::VerifyTxt => self.verify_txt = true,
            Member::Footage | Member::Directory => {}
        }
        Ok(())
    }

    fn hash_footage(
        &mut self,
        path: &str,
        size: u64,
        data: &mut impl Read,
    ) -> Result<(), BundleError> {
        let with_sm3 = self.sm3_wanted.contains(path) && Algorithm::Sm3.is_available();
        // INVARIANT: SM3 is only asked for when this build has it.
        let mut hasher = MultiHasher::new(with_sm3).unwrap_or_else(|_| MultiHasher::sha256());
        if self.buffer.len() != READ_BUFFER {
            self.buffer = vec![0u8; READ_BUFFER];
        }
        let mut done = 0u64;
        while done < size {
            let want = usize::try_from(size - done)
                .unwrap_or(usize::MAX)
                .min(READ_BUFFER);
            let n = read_full(data, &mut self.buffer[..want]).map_err(BundleError::Io)?;
            if n == 0 {
                return Err(BundleError::Truncated {
                    detail: format!("{path}: the archive ends after {done} of its {size} bytes"),
                });
            }
            hasher.update(&self.buffer[..n]);
            done += n as u64;
        }
        self.footage.insert(
            path.to_owned(),
            FootageSeen {
                size,
                digests: hasher.finalize(),
            },
        );
        Ok(())
    }

    /// Run every check of the module documentation, in order, and report.
    ///
    /// `trusted` are the ledger keys the caller obtained out of band: the
    /// checkpoint must carry a valid signature by one of them. With none,
    /// every other check still runs and the report's origin is
    /// [`Origin::Unverified`]: [`Report::is_valid`] is then false.
    pub fn finish(self, trusted: &[VerifierKey]) -> Result<Report, BundleError> {
        let mut warnings = Vec::new();
        if !self.verify_txt {
            warnings.push(format!(
                "{VERIFY_PATH} is missing (it only explains verification)"
            ));
        }

        // Step 2: keys.
        let mut keys: Vec<(String, VerifierKey)> = Vec::new();
        for (path, bytes) in &self.keys {
            let text = std::str::from_utf8(bytes).map_err(|_| {
                invalid(
                    path.as_str(),
                    Problem::Key(KeyError::BadVerifierKey("the file is not UTF-8".into())),
                )
            })?;
            let line = text.strip_suffix('\n').unwrap_or(text);
            let key: VerifierKey = line
                .parse()
                .map_err(|e| invalid(path.as_str(), Problem::Key(e)))?;
            if key.to_string() != line {
                return Err(invalid(
                    path.as_str(),
                    Problem::Key(KeyError::BadVerifierKey(
                        "not in canonical form (lower-case hex key hash, padded standard base64)"
                            .into(),
                    )),
                ));
            }
            let stem = path
                .strip_prefix(&format!("{KEYS_DIR}/"))
                .and_then(|s| s.strip_suffix(KEY_SUFFIX))
                .unwrap_or_default();
            if stem != key.name() && stem != key.key_id() {
                return Err(invalid(
                    path.as_str(),
                    Problem::KeyFileName {
                        key_id: key.key_id(),
                    },
                ));
            }
            keys.push((path.clone(), key));
        }

        // Step 3: the checkpoint.
        let signed = self
            .checkpoint
            .as_deref()
            .ok_or_else(|| invalid(CHECKPOINT_PATH, Problem::Missing))?;
        let (checkpoint, origin, ledger_key) = open_checkpoint(signed, trusted, &keys)?;
        if let (Origin::Pinned { .. }, Some(pinned)) = (&origin, &ledger_key) {
            for (path, key) in &keys {
                if key.name() == pinned.name() && key != pinned {
                    warnings.push(format!(
                        "{path} is a key named like the pinned ledger key but is another key; it was not trusted for the checkpoint"
                    ));
                }
            }
        }
        // The dock keys by `name+hash`, so that each envelope is checked
        // against the keys its signatures name only (linear time however
        // many keys the bundle holds).
        let dock_keys: BTreeMap<String, VerifierKey> = keys
            .iter()
            .filter(|(_, k)| Some(k) != ledger_key.as_ref())
            .map(|(_, k)| (k.key_id(), k.clone()))
            .collect();

        // Step 4: entries.
        let entries_bytes = self
            .entries
            .as_deref()
            .ok_or_else(|| invalid(ENTRIES_PATH, Problem::Missing))?;
        let lines = parse_entries(entries_bytes)?;
        let by_seq: BTreeMap<u64, &ParsedLine> = lines.iter().map(|l| (l.seq, l)).collect();

        // Step 5: the export entry is the last, and the checkpoint is its.
        let export = lines
            .last()
            .ok_or_else(|| invalid(ENTRIES_PATH, Problem::NoExportEntry))?;
        if export.entry.action != actions::EXPORT_CREATED {
            return Err(invalid(
                export.location(),
                Problem::LastNotExport {
                    action: export.entry.action.to_string(),
                },
            ));
        }
        if export.seq.checked_add(1) != Some(checkpoint.size()) {
            return Err(invalid(
                CHECKPOINT_PATH,
                Problem::NotAtExport {
                    size: checkpoint.size(),
                    export: export.seq,
                },
            ));
        }

        // Step 6: proofs.
        for seq in self.proofs.keys() {
            if !by_seq.contains_key(seq) {
                return Err(invalid(
                    proof_path(*seq),
                    Problem::ProofWithoutEntry { seq: *seq },
                ));
            }
        }
        for line in &lines {
            let path = proof_path(line.seq);
            let bytes = self.proofs.get(&line.seq).ok_or_else(|| {
                invalid(
                    line.location(),
                    Problem::MissingProof { path: path.clone() },
                )
            })?;
            let proof: InclusionProof = serde_json::from_slice(bytes)
                .map_err(|e| invalid(path.as_str(), Problem::ProofSyntax(e.to_string())))?;
            if proof.index != line.seq {
                return Err(invalid(
                    path,
                    Problem::ProofIndex {
                        index: proof.index,
                        seq: line.seq,
                    },
                ));
            }
            if proof.size != checkpoint.size() {
                return Err(invalid(
                    path,
                    Problem::ProofSize {
                        size: proof.size,
                        checkpoint: checkpoint.size(),
                    },
                ));
            }
            verify_inclusion(
                &line.leaf,
                proof.index,
                proof.size,
                &proof.hashes,
                &checkpoint.root(),
            )
            .map_err(|source| {
                invalid(
                    line.location(),
                    Problem::NotIncluded {
                        proof: path,
                        source,
                    },
                )
            })?;
        }

        // Step 7: the hash chain between adjacent entries.
        for pair in lines.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            if b.seq == a.seq + 1 && b.entry.verify_prev(Some(&a.raw)).is_err() {
                return Err(invalid(
                    b.location(),
                    Problem::PrevMismatch { previous: a.seq },
                ));
            }
        }

        // Step 8: signed events.
        let mut signing_keys = BTreeSet::new();
        for line in &lines {
            let Some(envelope) = &line.entry.envelope else {
                continue;
            };
            let signed = Event::open(envelope, &named_keys(envelope, &dock_keys))
                .map_err(|e| invalid(line.location(), Problem::Event(e)))?;
            signing_keys.extend(signed.signers);
            let event = signed.event;
            let field = if event.action != line.entry.action {
                Some("action")
            } else if event.subject != line.entry.subject {
                Some("subject")
            } else if event.details != line.entry.details {
                Some("details")
            } else {
                None
            };
            if let Some(field) = field {
                return Err(invalid(line.location(), Problem::EventMismatch { field }));
            }
        }

        // Step 9: completeness against the export entry's lists.
        let (listed_segments, listed_entries) = export_lists(&export.entry)
            .map_err(|why| invalid(export.location(), Problem::ExportDetails(why)))?;
        for seq in &listed_entries {
            if !by_seq.contains_key(seq) {
                return Err(invalid(
                    ENTRIES_PATH,
                    Problem::ListedEntryMissing {
                        seq: *seq,
                        export: export.seq,
                    },
                ));
            }
        }
        for line in &lines {
            if line.seq != export.seq && !listed_entries.contains(&line.seq) {
                return Err(invalid(
                    line.location(),
                    Problem::EntryNotListed { export: export.seq },
                ));
            }
        }
        for segment in &listed_segments {
            if !self.manifests.contains_key(segment) {
                let location =
                    manifest_path(segment).unwrap_or_else(|_| format!("segment {segment:?}"));
                return Err(invalid(
                    location,
                    Problem::ListedSegmentMissing {
                        segment: segment.clone(),
                        export: export.seq,
                    },
                ));
            }
        }
        for id in self.manifests.keys() {
            if !listed_segments.contains(id) {
                return Err(invalid(
                    manifest_location(id),
                    Problem::SegmentNotListed { export: export.seq },
                ));
            }
        }

        // Steps 10 and 11: manifests and footage. The segment.ingested
        // entries by subject, built once (not searched per manifest).
        let mut ingested_by_segment: BTreeMap<&str, Vec<&ParsedLine>> = BTreeMap::new();
        for line in &lines {
            if line.entry.action == actions::SEGMENT_INGESTED {
                ingested_by_segment
                    .entry(line.entry.subject.as_str())
                    .or_default()
                    .push(line);
            }
        }
        let mut segments = Vec::new();
        let mut matched = BTreeSet::new();
        let mut footage_bytes = 0u64;
        for (id, bytes) in &self.manifests {
            let location = manifest_location(id);
            let envelope = Envelope::parse(bytes)
                .map_err(|e| invalid(location.as_str(), Problem::Envelope(e)))?;
            let trusted_docks = named_keys(&envelope, &dock_keys);
            let signed = SignedManifest::open(envelope, &trusted_docks)
                .map_err(|e| invalid(location.as_str(), Problem::Manifest(e)))?;
            signing_keys.extend(signed.signers.iter().cloned());
            let manifest = &signed.manifest;
            if manifest.segment_id != *id {
                return Err(invalid(
                    location,
                    Problem::SegmentIdMismatch {
                        found: manifest.segment_id.clone(),
                    },
                ));
            }
            let ingested = ingested_by_segment
                .get(id.as_str())
                .map(Vec::as_slice)
                .unwrap_or_default();
            let carried = ingested.iter().any(|l| {
                l.entry
                    .details
                    .get("manifest")
                    .and_then(|v| Envelope::deserialize(v).ok())
                    .is_some_and(|e| e == signed.envelope)
            });
            if !carried {
                return Err(invalid(
                    location,
                    Problem::NotIngested {
                        seqs: ingested.iter().map(|l| l.seq).collect(),
                    },
                ));
            }
            let footage = footage_path(manifest)
                .map_err(|e| invalid(location.as_str(), Problem::UnsafeName(e)))?;
            let Some(seen) = self.footage.get(&footage) else {
                return Err(invalid(
                    footage,
                    Problem::FootageMissing { manifest: location },
                ));
            };
            if seen.size != manifest.size {
                return Err(invalid(
                    footage,
                    Problem::FootageSize {
                        expected: manifest.size,
                        found: seen.size,
                    },
                ));
            }
            if seen.digests.sha256 != manifest.digests.sha256 {
                return Err(invalid(
                    footage,
                    Problem::FootageDigest {
                        expected: manifest.digests.sha256,
                        found: seen.digests.sha256,
                    },
                ));
            }
            let mut sm3_checked = false;
            if let Some(expected) = manifest.digests.sm3 {
                match seen.digests.sm3 {
                    Some(found) if found != expected => {
                        return Err(invalid(footage, Problem::FootageDigest { expected, found }))
                    }
                    Some(_) => sm3_checked = true,
                    None if !Algorithm::Sm3.is_available() => warnings.push(format!(
                        "{footage}: SM3 not checked: this build has no SM3 (SHA-256 was checked)"
                    )),
                    None => warnings.push(format!(
                        "{footage}: SM3 not checked: the footage came before its manifest in the archive (SHA-256 was checked)"
                    )),
                }
            }
            footage_bytes += seen.size;
            matched.insert(footage.clone());
            segments.push(SegmentSummary {
                segment_id: id.clone(),
                footage,
                size: seen.size,
                sha256: seen.digests.sha256,
                sm3_checked,
            });
        }
        if let Some(orphan) = self.footage.keys().find(|p| !matched.contains(*p)) {
            return Err(invalid(orphan.as_str(), Problem::FootageWithoutManifest));
        }
        for (path, key) in &keys {
            if Some(key) != ledger_key.as_ref() && !signing_keys.contains(&key.key_id()) {
                warnings.push(format!("{path} was not needed: it verified nothing"));
            }
        }

        Ok(Report {
            segments,
            footage_bytes,
            entries: lines.len(),
            export_seq: export.seq,
            checkpoint,
            origin,
            signing_keys: signing_keys.into_iter().collect(),
            warnings,
        })
    }
}

fn manifest_location(id: &str) -> String {
    format!("{MANIFESTS_DIR}/{id}{MANIFEST_SUFFIX}")
}

/// The keys among `keys` (by `name+hash`) that `envelope`'s signatures
/// name: all an envelope can verify under, found in O(signatures × log
/// keys) rather than tried one by one. A signature without a key id names
/// none (Custos always writes one).
fn named_keys(envelope: &Envelope, keys: &BTreeMap<String, VerifierKey>) -> Vec<VerifierKey> {
    let mut out: Vec<VerifierKey> = Vec::new();
    for signature in &envelope.signatures {
        if let Some(key) = keys.get(&signature.keyid) {
            if !out.contains(key) {
                out.push(key.clone());
            }
        }
    }
    out
}

/// Open the checkpoint: with a key the caller trusts, or, when the caller
/// trusts none, unverified (its body parsed; a key of the bundle's own that
/// signed it is noted, for the report and to tell the ledger key from dock
/// keys). Returns the checkpoint, its origin and the ledger key, if known.
fn open_checkpoint(
    signed: &[u8],
    trusted: &[VerifierKey],
    keys: &[(String, VerifierKey)],
) -> Result<(Checkpoint, Origin, Option<VerifierKey>), BundleError> {
    let note = SignedNote::parse(signed).map_err(|e| {
        invalid(
            CHECKPOINT_PATH,
            Problem::Checkpoint(CheckpointError::Note(e)),
        )
    })?;
    if !trusted.is_empty() {
        // Every trusted key is tried: a signature that names one of them
        // but does not verify rejects the checkpoint even when another
        // trusted key's signature verifies (as a signed note's rules say).
        let mut opened = None;
        let mut unsigned = None;
        for key in trusted {
            match Checkpoint::open(signed, key, None) {
                Ok(checkpoint) => {
                    opened.get_or_insert((checkpoint, key));
                }
                Err(e @ CheckpointError::Signature(VerifyError::NoTrustedSignature { .. })) => {
                    unsigned = Some(e)
                }
                Err(e @ CheckpointError::Signature(_)) => {
                    return Err(invalid(
                        CHECKPOINT_PATH,
                        Problem::CheckpointNotPinned {
                            pinned: vec![key.key_id()],
                            source: e,
                        },
                    ))
                }
                Err(other) => return Err(invalid(CHECKPOINT_PATH, Problem::Checkpoint(other))),
            }
        }
        if let Some((checkpoint, key)) = opened {
            let origin = Origin::Pinned {
                key_id: key.key_id(),
            };
            return Ok((checkpoint, origin, Some(key.clone())));
        }
        // INVARIANT: `trusted` is not empty and no key opened it, so the
        // last one set `unsigned`.
        let source = unsigned.unwrap_or(CheckpointError::Signature(
            VerifyError::NoTrustedSignature {
                signers: note.signatures().iter().map(|s| s.key_id()).collect(),
            },
        ));
        return Err(invalid(
            CHECKPOINT_PATH,
            Problem::CheckpointNotPinned {
                pinned: trusted.iter().map(VerifierKey::key_id).collect(),
                source,
            },
        ));
    }
    let checkpoint = Checkpoint::parse(note.text())
        .map_err(|e| invalid(CHECKPOINT_PATH, Problem::Checkpoint(e)))?;
    let signers: Vec<String> = note.signatures().iter().map(|s| s.key_id()).collect();
    let bundle_key = keys
        .iter()
        .map(|(_, k)| k)
        .find(|k| signers.contains(&k.key_id()) && note.verify(std::slice::from_ref(*k)).is_ok())
        .cloned();
    let origin = Origin::Unverified {
        signers,
        bundle_key: bundle_key.as_ref().map(VerifierKey::key_id),
    };
    Ok((checkpoint, origin, bundle_key))
}

/// The export entry's `details.segments` and `details.entries`.
fn export_lists(entry: &Entry) -> Result<(BTreeSet<String>, BTreeSet<u64>), &'static str> {
    let segments = entry
        .details
        .get("segments")
        .and_then(Value::as_array)
        .ok_or("details.segments is missing or not an array")?
        .iter()
        .map(|v| v.as_str().map(str::to_owned))
        .collect::<Option<BTreeSet<String>>>()
        .ok_or("details.segments holds a value that is not a string")?;
    let entries = entry
        .details
        .get("entries")
        .and_then(Value::as_array)
        .ok_or("details.entries is missing or not an array")?
        .iter()
        .map(Value::as_u64)
        .collect::<Option<BTreeSet<u64>>>()
        .ok_or("details.entries holds a value that is not a seq")?;
    Ok((segments, entries))
}

/// One line of `entries.jsonl`, checked on its own (step 4).
#[derive(Debug)]
struct ParsedLine {
    line: usize,
    seq: u64,
    raw: Vec<u8>,
    entry: Entry,
    leaf: Hash,
}

impl ParsedLine {
    fn location(&self) -> String {
        format!("{ENTRIES_PATH} line {} (seq {})", self.line, self.seq)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LineJson {
    seq: u64,
    raw: String,
    entry: Value,
}

fn parse_entries(bytes: &[u8]) -> Result<Vec<ParsedLine>, BundleError> {
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let mut lines: Vec<ParsedLine> = Vec::new();
    if body.is_empty() {
        return Ok(lines);
    }
    for (i, text) in body.split(|&b| b == b'\n').enumerate() {
        let number = i + 1;
        let bare = format!("{ENTRIES_PATH} line {number}");
        let json: LineJson = serde_json::from_slice(text)
            .map_err(|e| invalid(bare.as_str(), Problem::LineSyntax(e.to_string())))?;
        let location = format!("{bare} (seq {})", json.seq);
        let raw = B64
            .decode(&json.raw)
            .map_err(|_| invalid(location.as_str(), Problem::RawBase64))?;
        let entry =
            Entry::parse(&raw).map_err(|e| invalid(location.as_str(), Problem::RawEntry(e)))?;
        if entry.seq != json.seq {
            return Err(invalid(
                location,
                Problem::SeqMismatch {
                    line_seq: json.seq,
                    entry_seq: entry.seq,
                },
            ));
        }
        // raw parsed as an entry above, so it is JSON; mapped all the same.
        let raw_value: Value = serde_json::from_slice(&raw)
            .map_err(|e| invalid(location.as_str(), Problem::LineSyntax(e.to_string())))?;
        if raw_value != json.entry {
            return Err(invalid(location, Problem::EntryFieldMismatch));
        }
        if let Some(previous) = lines.last() {
            if previous.seq == json.seq {
                return Err(invalid(location, Problem::DuplicateSeq));
            }
            if previous.seq > json.seq {
                return Err(invalid(
                    location,
                    Problem::OutOfOrder {
                        previous: previous.seq,
                    },
                ));
            }
        }
        let leaf = leaf_hash(&raw);
        lines.push(ParsedLine {
            line: number,
            seq: json.seq,
            raw,
            entry,
            leaf,
        });
    }
    Ok(lines)
}

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

// ---------------------------------------------------------------------------
// VERIFY.txt
// ---------------------------------------------------------------------------

/// The text of `VERIFY.txt`. Its command blocks (lines indented by four
/// spaces in section 3) are run by the crate's tests against a real bundle,
/// so they stay correct.
pub const VERIFY_TXT: &str = include_str!("bundle_verify.txt");
