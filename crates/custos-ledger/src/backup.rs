//! Backup and restore of a ledger: `custos ledger backup` and `custos
//! ledger restore`, and `GET /v1/backup`.
//!
//! # What a backup holds
//!
//! A backup is taken at one tree size N, fixed when it starts: the writer
//! thread answers [`snapshot`] between two batches, when the stored state
//! is exactly the published tree of N entries, and copies the state-table
//! rows that cannot be derived from the entries ([`copied_table`]: tokens
//! — their hashes as stored, never a secret — dock keys, cases, holds,
//! access requests, coverage findings and their explanations, retention's
//! deletions). Entries 0..N are then streamed from the store (they never
//! change once written), with the checkpoint of exactly size N signed by
//! the ledger's keys ([`Ledger::checkpoint_at`]). Appends continue
//! meanwhile; they are not in the backup.
//!
//! Never copied, always re-derived at restore: the Merkle tree nodes and
//! tree state, the envelope de-duplication index and the catalogue
//! ([`DERIVED_TABLES`]), through the writer's own [`integrate`] step, so a
//! restored ledger holds what the writer would have written for the same
//! entries.
//!
//! # The format
//!
//! JSON lines ([`FORMAT`]), in this order:
//!
//! ```text
//! {"type":"header","format":"custos-ledger-backup/1","origin":"…","size":N,"created":"…","rows":R}
//! {"type":"checkpoint","text":"<the signed note of size N>"}
//! {"type":"row","table":"tokens","key":"<base64>","value":"<base64>"}      R times
//! {"type":"entry","seq":0,"entry":{…the exact leaf bytes…}}              N times
//! {"type":"end","entries":N,"rows":R,"sha256":"<hex>","seal":"<signed note>"}
//! ```
//!
//! `sha256` is the SHA-256 of every byte before the `end` line: a changed
//! byte anywhere, a missing line or a cut-off file is refused. `seal` is a
//! C2SP signed note by the ledger's keys over [`seal_text`] (format,
//! origin, size, rows, `sha256`), so that the rows, which no checkpoint
//! covers, cannot be changed either without the ledger's key (the note's
//! second line is the origin, never a number, so it never parses as a
//! checkpoint). The entries are also checked against the signed checkpoint
//! (the recomputed root).
//!
//! # Restore
//!
//! [`restore`] writes into an empty `data_dir` only, and removes what it
//! wrote when anything fails: a backup that is malformed, truncated,
//! altered, for another origin, not signed by a configured ledger key, or
//! inconsistent with any checkpoint an auditor kept (`--checkpoint OLD`:
//! the root of the restored tree at OLD's size must be OLD's root) leaves
//! the directory as it found it. After the entries, the token rows are
//! checked against the `token.created`/`token.revoked` entries
//! ([`check::check_tokens`]), as at every start.
//!
//! This module must never copy a derived table or a tree node, never hold
//! the whole log in memory, and never leave a partial restore behind.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use custos_core::checkpoint::Checkpoint;
use custos_core::entry::{Details, Entry, MAX_ENTRY_BYTES};
use custos_core::keys::VerifierKey;
use custos_core::manifest::Manifest;
use custos_core::merkle::{CompactRange, Hash};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest as _, Sha256};

use crate::append::{integrate, Pending, Sequenced};
use crate::catalogue;
use crate::check::{self, CheckError};
use crate::error::{ReadError, StoreError};
use crate::governance::COVERAGE_SETTLED;
use crate::layout;
use crate::ledger::Ledger;
use crate::store::Store;

/// The format name in a backup's header.
pub const FORMAT: &str = "custos-ledger-backup/1";

/// The tables a restore re-derives from the entries (through the writer's
/// catalogue step); a backup never carries them.
pub const DERIVED_TABLES: &[&str] = &[
    catalogue::SEGMENTS,
    catalogue::SEGMENT_ENTRIES,
    catalogue::BY_RECORDER,
    catalogue::BY_OFFICER,
    catalogue::BY_TIME,
    catalogue::BY_CASE,
    catalogue::SEGMENT_CASES,
    catalogue::OBJECT_KEYS,
    COVERAGE_SETTLED,
];

/// Whether a backup carries the rows of `table`: every state table but the
/// derived ones, so a table added later is kept unless it is declared
/// derivable.
pub fn copied_table(table: &str) -> bool {
    !DERIVED_TABLES.contains(&table)
}

/// The longest line a backup may hold: an entry of [`MAX_ENTRY_BYTES`]
/// with its frame, or a state row (rows are far smaller).
const MAX_LINE: u64 = MAX_ENTRY_BYTES as u64 * 2 + 4096;

/// Entries a restore writes per sled batch.
const RESTORE_BATCH: u64 = 1024;

/// Why a backup or a restore failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading the log failed (or the ledger refuses to serve).
    #[error(transparent)]
    Read(#[from] ReadError),
    /// Reading or writing the backup failed.
    #[error("{what}: {error}")]
    Io {
        /// What was read or written.
        what: String,
        /// The error.
        error: std::io::Error,
    },
    /// The ledger's writer has stopped (the ledger is closing).
    #[error("the ledger is closing; no backup can be taken")]
    Closed,
    /// The backup is not a well-formed backup of this format.
    #[error("the backup is malformed at line {line}: {why}")]
    Malformed {
        /// The line (1-based).
        line: u64,
        /// What is wrong.
        why: String,
    },
    /// The backup ends before its `end` line.
    #[error("the backup is truncated: it ends after {entries} of its {size} entries, without its end line")]
    Truncated {
        /// Entries read.
        entries: u64,
        /// Entries the header announced.
        size: u64,
    },
    /// The SHA-256 of the backup does not match its `end` line.
    #[error("the backup was altered: its SHA-256 is {found}, its end line says {expected}")]
    Altered {
        /// The digest of the bytes read.
        found: String,
        /// The digest the `end` line carries.
        expected: String,
    },
    /// The end line's seal does not hold: the backup was changed by
    /// someone without the ledger's key, or made by another ledger.
    #[error("the backup was altered or made by another ledger: {0}")]
    Seal(String),
    /// The backup's checkpoint does not open or does not match its entries.
    #[error("the backup's checkpoint: {0}")]
    Checkpoint(String),
    /// The backup disagrees with a checkpoint an auditor kept.
    #[error("the backup is inconsistent with checkpoint {file}: {why}")]
    Inconsistent {
        /// The checkpoint file.
        file: String,
        /// How.
        why: String,
    },
    /// An entry of the backup cannot be restored.
    #[error("entry {seq} of the backup: {why}")]
    Entry {
        /// Its seq.
        seq: u64,
        /// Why.
        why: String,
    },
    /// A restore target that is not empty.
    #[error("{} is not empty: a ledger is restored into an empty data_dir only", .0.display())]
    NotEmpty(PathBuf),
    /// The restored state fails the ledger's own check.
    #[error("the restored ledger fails its check: {0}")]
    Check(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackupError {
    let what = what.into();
    move |error| BackupError::Io { what, error }
}

/// One state-table row as a backup carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRow {
    /// The table.
    pub table: String,
    /// The row key (without the table prefix).
    pub key: Vec<u8>,
    /// The value, as stored.
    pub value: Vec<u8>,
}

/// The state a backup is taken from: a tree size and the copied rows as
/// they were at that size (see the module documentation).
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The tree size N.
    pub size: u64,
    /// The rows of the copied tables at size N, in key order.
    pub rows: Vec<TableRow>,
}

/// Read the copied tables' rows from `store` (the writer calls this
/// between batches, so they match the published size).
pub(crate) fn copied_rows(store: &Store) -> Result<Vec<TableRow>, StoreError> {
    let mut rows = Vec::new();
    for row in store.tree().scan_prefix([layout::TABLE]) {
        let (key, value) = row?;
        let rest = &key[1..];
        let Some(end) = rest.iter().position(|&b| b == 0) else {
            return Err(StoreError::Malformed {
                what: format!("state row {:?}", String::from_utf8_lossy(&key)),
                why: "its key names no table".into(),
            });
        };
        let table = String::from_utf8_lossy(&rest[..end]).into_owned();
        if copied_table(&table) {
            rows.push(TableRow {
                table,
                key: rest[end + 1..].to_vec(),
                value: value.to_vec(),
            });
        }
    }
    Ok(rows)
}

/// Fix a backup's size and state: asks the writer for a [`Snapshot`]
/// between two batches.
pub async fn snapshot(ledger: &Ledger) -> Result<Snapshot, BackupError> {
    ledger.writer_snapshot().await
}

/// What [`write_backup`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSummary {
    /// Entries (the tree size N).
    pub entries: u64,
    /// State rows.
    pub rows: u64,
    /// SHA-256 of the backup before its end line (hex).
    pub sha256: String,
    /// Bytes written.
    pub bytes: u64,
}

/// A writer that hashes and counts what passes.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Hashing<W> {
    fn line(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.hash.update(bytes);
        self.bytes += bytes.len() as u64;
        self.inner.write_all(bytes)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    #[serde(rename = "type")]
    kind: String,
    format: String,
    origin: String,
    size: u64,
    created: String,
    rows: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointLine {
    #[serde(rename = "type")]
    kind: String,
    text: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RowLine {
    #[serde(rename = "type")]
    kind: String,
    table: String,
    key: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryRow {
    #[serde(rename = "type")]
    _kind: String,
    seq: u64,
    entry: Box<RawValue>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct End {
    #[serde(rename = "type")]
    kind: String,
    entries: u64,
    rows: u64,
    sha256: String,
    seal: String,
}

/// The text a backup's seal signs: the format, the origin, the size, the
/// row count and the SHA-256 of the backup before its end line, a line
/// each.
pub fn seal_text(origin: &str, size: u64, rows: u64, sha256: &str) -> String {
    format!("{FORMAT}\n{origin}\n{size}\n{rows}\n{sha256}\n")
}

/// The `type` of a line, read before the line itself.
#[derive(Deserialize)]
struct Kind {
    #[serde(rename = "type")]
    kind: String,
}

fn json_line(value: &impl Serialize) -> Vec<u8> {
    // INVARIANT: the line structs are strings and numbers.
    let mut line = serde_json::to_vec(value).expect("INVARIANT: a backup line serialises");
    line.push(b'\n');
    line
}

/// Write the backup of `snapshot` to `out` (blocking): the header, the
/// checkpoint of its size, its rows, entries 0..N read from the store one
/// at a time, the end line. `progress` is called with the entries written
/// so far, every few thousand entries and at the end.
pub fn write_backup<W: Write>(
    ledger: &Ledger,
    snapshot: &Snapshot,
    out: W,
    progress: &mut dyn FnMut(u64),
) -> Result<BackupSummary, BackupError> {
    let size = snapshot.size;
    let checkpoint = ledger.checkpoint_at(size)?;
    let mut out = Hashing {
        inner: out,
        hash: Sha256::new(),
        bytes: 0,
    };
    let write = io("writing the backup");
    let header = Header {
        kind: "header".into(),
        format: FORMAT.into(),
        origin: ledger.origin().to_owned(),
        size,
        created: ledger.now().to_string(),
        rows: snapshot.rows.len() as u64,
    };
    let lines = [
        json_line(&header),
        json_line(&CheckpointLine {
            kind: "checkpoint".into(),
            text: checkpoint,
        }),
    ];
    for line in lines {
        out.line(&line).map_err(io("writing the backup"))?;
    }
    for row in &snapshot.rows {
        let line = json_line(&RowLine {
            kind: "row".into(),
            table: row.table.clone(),
            key: B64.encode(&row.key),
            value: B64.encode(&row.value),
        });
        out.line(&line).map_err(io("writing the backup"))?;
    }
    let store = ledger.store();
    let mut line = Vec::with_capacity(4096);
    let mut expected = 0u64;
    for item in store
        .tree()
        .range(layout::entry_key(0)..layout::entry_key(size))
    {
        let (key, bytes) = item.map_err(StoreError::from)?;
        let seq = layout::entry_seq(&key).ok_or_else(|| BackupError::Entry {
            seq: expected,
            why: "its key is malformed".into(),
        })?;
        if seq != expected {
            return Err(BackupError::Entry {
                seq: expected,
                why: "it is missing from the store".into(),
            });
        }
        // Stored entries are one line of canonical JSON (EntryLine::new
        // checks the same for /v1/entries).
        custos_core::wire::EntryLine::new(seq, &bytes).map_err(|e| BackupError::Entry {
            seq,
            why: e.why.into(),
        })?;
        line.clear();
        line.extend_from_slice(br#"{"type":"entry","seq":"#);
        line.extend_from_slice(seq.to_string().as_bytes());
        line.extend_from_slice(br#","entry":"#);
        line.extend_from_slice(&bytes);
        line.extend_from_slice(b"}\n");
        out.line(&line).map_err(io("writing the backup"))?;
        expected += 1;
        if expected.is_multiple_of(10_000) {
            progress(expected);
        }
    }
    if expected != size {
        return Err(BackupError::Entry {
            seq: expected,
            why: "it is missing from the store".into(),
        });
    }
    let sha256 = hex::encode(out.hash.clone().finalize());
    let rows = snapshot.rows.len() as u64;
    let seal = ledger
        .sign_note(&seal_text(ledger.origin(), size, rows, &sha256))
        .map_err(|e| BackupError::Checkpoint(format!("sealing the backup: {e}")))?;
    let end = json_line(&End {
        kind: "end".into(),
        entries: size,
        rows,
        sha256: sha256.clone(),
        seal,
    });
    out.line(&end).map_err(write)?;
    out.inner.flush().map_err(io("writing the backup"))?;
    progress(size);
    Ok(BackupSummary {
        entries: size,
        rows: snapshot.rows.len() as u64,
        sha256,
        bytes: out.bytes,
    })
}

/// Check a written backup without restoring it: its lines are well
/// formed and in order, it is complete, and its SHA-256 matches its end
/// line. Returns its header's origin and size and its row count. (Its
/// checkpoint and entries are checked against the ledger's keys by
/// [`restore`].)
pub fn check_backup(input: impl BufRead) -> Result<(String, u64, u64), BackupError> {
    let mut lines = Lines {
        input,
        hash: Sha256::new(),
        line: 0,
        buf: Vec::new(),
    };
    if !lines.next()? {
        return Err(lines.malformed("the file is empty".into()));
    }
    let header: Header = lines.parse(lines.current(), "header")?;
    if header.kind != "header" || header.format != FORMAT {
        return Err(lines.malformed(format!(
            "not a ledger backup: the first line must be a {FORMAT} header"
        )));
    }
    lines.hash_line();
    let (mut entries, mut rows) = (0u64, 0u64);
    while lines.next()? {
        let Kind { kind } = lines.parse(lines.current(), "backup")?;
        match kind.as_str() {
            "checkpoint" if lines.line == 2 => {}
            "row" if entries == 0 => rows += 1,
            "entry" => {
                let line: EntryRow = lines.parse(lines.current(), "entry")?;
                if line.seq != entries {
                    return Err(lines.malformed(format!(
                        "entry {} where entry {entries} was expected",
                        line.seq
                    )));
                }
                entries += 1;
            }
            "end" => {
                let found = hex::encode(lines.hash.clone().finalize());
                let end: End = lines.parse(lines.current(), "end")?;
                if end.sha256 != found {
                    return Err(BackupError::Altered {
                        found,
                        expected: end.sha256,
                    });
                }
                if lines.next()? {
                    return Err(lines.malformed("data after the end line".into()));
                }
                if end.entries != entries || header.size != entries || end.rows != rows {
                    return Err(BackupError::Truncated {
                        entries,
                        size: header.size,
                    });
                }
                return Ok((header.origin, entries, rows));
            }
            other => return Err(lines.malformed(format!("unexpected line type {other:?}"))),
        }
        lines.hash_line();
    }
    Err(BackupError::Truncated {
        entries,
        size: header.size,
    })
}

/// What a restore needs besides the backup.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// The empty directory to restore into.
    pub data_dir: PathBuf,
    /// The configured origin; the backup must be of it.
    pub origin: String,
    /// The configured ledger keys; the backup's checkpoint must be signed
    /// by one of them.
    pub keys: Vec<VerifierKey>,
    /// Checkpoints kept by auditors: (file name, signed note text). The
    /// restored log must be consistent with each.
    pub checkpoints: Vec<(String, String)>,
    /// Keys the ledger signed with before a rotation retired them: a kept
    /// checkpoint may be signed by one of these or by one of `keys`. They
    /// never open the backup's own checkpoint or its seal, which must be
    /// by a key the ledger signs with now.
    pub retired_keys: Vec<VerifierKey>,
}

/// What [`restore`] restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreSummary {
    /// Entries (the tree size).
    pub entries: u64,
    /// State rows copied.
    pub rows: u64,
    /// The root of the restored tree (the backup checkpoint's).
    pub root: Hash,
    /// The checkpoints kept by auditors that the restored log is
    /// consistent with.
    pub checked: usize,
}

/// Restore the backup read from `input` into `options.data_dir`, which
/// must be missing or empty (see the module documentation). On any error
/// the directory is left as it was found. `progress` is called with the
/// entries restored so far and the total.
pub fn restore(
    options: &RestoreOptions,
    input: impl BufRead,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<RestoreSummary, BackupError> {
    let dir = &options.data_dir;
    let existed = dir.exists();
    if existed {
        let mut children =
            std::fs::read_dir(dir).map_err(io(format!("reading {}", dir.display())))?;
        if children.next().is_some() {
            return Err(BackupError::NotEmpty(dir.clone()));
        }
    }
    let result = restore_into(options, input, progress);
    if result.is_err() {
        remove_written(dir, existed);
    }
    result
}

/// Remove what a failed restore wrote: the directory if it created it,
/// else everything in it (it was empty).
fn remove_written(dir: &Path, existed: bool) {
    if !existed {
        let _ = std::fs::remove_dir_all(dir);
        return;
    }
    if let Ok(children) = std::fs::read_dir(dir) {
        for child in children.flatten() {
            let path = child.path();
            let _ = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
        }
    }
}

/// Reads a backup line by line, hashing every byte, within [`MAX_LINE`].
struct Lines<R> {
    input: R,
    hash: Sha256,
    line: u64,
    buf: Vec<u8>,
}

impl<R: BufRead> Lines<R> {
    /// Read the next line ([`Lines::current`]); `false` at the end. A
    /// last line without a newline is a truncated file.
    fn next(&mut self) -> Result<bool, BackupError> {
        self.buf.clear();
        let n = std::io::Read::take(&mut self.input, MAX_LINE)
            .read_until(b'\n', &mut self.buf)
            .map_err(io("reading the backup"))?;
        if n == 0 {
            return Ok(false);
        }
        self.line += 1;
        if self.buf.last() != Some(&b'\n') {
            return Err(self.malformed(if n as u64 == MAX_LINE {
                "the line is too long".into()
            } else {
                "the line is cut off".into()
            }));
        }
        Ok(true)
    }

    /// The line last read, without its newline.
    fn current(&self) -> &[u8] {
        &self.buf[..self.buf.len().saturating_sub(1)]
    }

    /// Count the line just read into the digest.
    fn hash_line(&mut self) {
        self.hash.update(&self.buf);
    }

    fn malformed(&self, why: String) -> BackupError {
        BackupError::Malformed {
            line: self.line,
            why,
        }
    }

    fn parse<'a, T: Deserialize<'a>>(&self, bytes: &'a [u8], kind: &str) -> Result<T, BackupError> {
        serde_json::from_slice(bytes).map_err(|e| self.malformed(format!("not a {kind} line: {e}")))
    }
}

/// Open a signed checkpoint with any of `keys` for `origin`.
fn open_checkpoint(text: &str, keys: &[VerifierKey], origin: &str) -> Result<Checkpoint, String> {
    let mut last = String::from("no ledger key is configured");
    for key in keys {
        match Checkpoint::open(text.as_bytes(), key, Some(origin)) {
            Ok(c) => return Ok(c),
            Err(e) => last = format!("not signed by a configured ledger key for {origin:?} ({e})"),
        }
    }
    Err(last)
}

fn restore_into(
    options: &RestoreOptions,
    input: impl BufRead,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<RestoreSummary, BackupError> {
    let mut lines = Lines {
        input,
        hash: Sha256::new(),
        line: 0,
        buf: Vec::new(),
    };
    let truncated = |entries, size| BackupError::Truncated { entries, size };

    // The header and the checkpoint.
    if !lines.next()? {
        return Err(lines.malformed("the file is empty".into()));
    }
    let header: Header = lines.parse(lines.current(), "header")?;
    if header.kind != "header" || header.format != FORMAT {
        return Err(lines.malformed(format!(
            "not a ledger backup: the first line must be a {FORMAT} header"
        )));
    }
    lines.hash_line();
    if header.origin != options.origin {
        return Err(BackupError::Checkpoint(format!(
            "the backup is of origin {:?}, this ledger is configured for {:?}",
            header.origin, options.origin
        )));
    }
    let size = header.size;
    if !lines.next()? {
        return Err(truncated(0, size));
    }
    let line: CheckpointLine = lines.parse(lines.current(), "checkpoint")?;
    if line.kind != "checkpoint" {
        return Err(lines.malformed("the second line must be the checkpoint".into()));
    }
    lines.hash_line();
    let checkpoint_text = line.text;
    let checkpoint = open_checkpoint(&checkpoint_text, &options.keys, &options.origin)
        .map_err(BackupError::Checkpoint)?;
    if checkpoint.size() != size {
        return Err(BackupError::Checkpoint(format!(
            "it has size {}, the header says {size}",
            checkpoint.size()
        )));
    }

    // The auditors' checkpoints: the root each must find at its size.
    let mut wanted: BTreeMap<u64, Vec<(String, Hash)>> = BTreeMap::new();
    let kept_keys: Vec<VerifierKey> = options
        .keys
        .iter()
        .chain(&options.retired_keys)
        .cloned()
        .collect();
    for (file, text) in &options.checkpoints {
        let old = open_checkpoint(text, &kept_keys, &options.origin).map_err(|why| {
            BackupError::Inconsistent {
                file: file.clone(),
                why,
            }
        })?;
        if old.size() > size {
            return Err(BackupError::Inconsistent {
                file: file.clone(),
                why: format!(
                    "it covers {} entries, the backup only {size}: the backup is older than what was seen",
                    old.size()
                ),
            });
        }
        wanted
            .entry(old.size())
            .or_default()
            .push((file.clone(), old.root()));
    }
    let mut check_root = |range: &CompactRange| -> Result<(), BackupError> {
        if let Some(list) = wanted.remove(&range.size()) {
            let root = range.root();
            for (file, expected) in list {
                if expected != root {
                    return Err(BackupError::Inconsistent {
                        file,
                        why: format!(
                            "its root at size {} is {expected}, the backup's entries give {root}: \
                             the backup is of another (forked) log",
                            range.size()
                        ),
                    });
                }
            }
        }
        Ok(())
    };

    let store = Store::open(&options.data_dir)?;
    let mut pending = Pending::new(CompactRange::new(), None);
    check_root(&pending.range)?;
    let mut rows = 0u64;
    let mut rows_batch = sled::Batch::default();
    let mut end = None;
    while lines.next()? {
        let bytes = lines.current();
        let Kind { kind } = lines.parse(bytes, "backup")?;
        match kind.as_str() {
            "row" => {
                if pending.range.size() > 0 {
                    return Err(lines.malformed("a row after the entries".into()));
                }
                let row: RowLine = lines.parse(bytes, "row")?;
                if !layout::valid_table(&row.table) || !copied_table(&row.table) {
                    return Err(lines
                        .malformed(format!("table {:?} is not one a backup carries", row.table)));
                }
                let decode = |what: &str, text: &str| {
                    B64.decode(text)
                        .map_err(|e| lines.malformed(format!("the row's {what}: {e}")))
                };
                let key = decode("key", &row.key)?;
                let value = decode("value", &row.value)?;
                rows_batch.insert(layout::table_key(&row.table, &key), value);
                rows += 1;
            }
            "entry" => {
                let line: EntryRow = lines.parse(bytes, "entry")?;
                let seq = pending.range.size();
                if line.seq != seq {
                    return Err(lines
                        .malformed(format!("entry {} where entry {seq} was expected", line.seq)));
                }
                if seq >= size {
                    return Err(
                        lines.malformed(format!("more entries than the {size} of the header"))
                    );
                }
                if seq == 0 {
                    store
                        .tree()
                        .apply_batch(std::mem::take(&mut rows_batch))
                        .map_err(StoreError::from)?;
                }
                restore_entry(&store, &mut pending, seq, line.entry.get().as_bytes())?;
                check_root(&pending.range)?;
                if pending.range.size().is_multiple_of(RESTORE_BATCH) {
                    commit(&store, &mut pending)?;
                    progress(pending.range.size(), size);
                }
            }
            "end" => {
                let found = hex::encode(lines.hash.clone().finalize());
                let line: End = lines.parse(bytes, "end")?;
                if line.sha256 != found {
                    return Err(BackupError::Altered {
                        found,
                        expected: line.sha256,
                    });
                }
                check_seal(&line, &header, &options.keys)?;
                end = Some(line);
                break;
            }
            other => return Err(lines.malformed(format!("unknown line type {other:?}"))),
        }
        lines.hash_line();
    }
    let Some(end) = end else {
        return Err(truncated(pending.range.size(), size));
    };
    if lines.next()? {
        return Err(lines.malformed("data after the end line".into()));
    }
    if end.entries != size || pending.range.size() != size {
        return Err(truncated(pending.range.size(), size));
    }
    if end.rows != rows || header.rows != rows {
        return Err(lines.malformed(format!(
            "{rows} rows, the header says {} and the end line {}",
            header.rows, end.rows
        )));
    }
    if size == 0 {
        store
            .tree()
            .apply_batch(std::mem::take(&mut rows_batch))
            .map_err(StoreError::from)?;
    }
    commit(&store, &mut pending)?;
    progress(size, size);
    let root = pending.range.root();
    if root != checkpoint.root() {
        return Err(BackupError::Checkpoint(format!(
            "its root is {}, the backup's entries give {root}",
            checkpoint.root()
        )));
    }
    if let Some((_, list)) = wanted.into_iter().next() {
        // INVARIANT: every wanted size is at most `size` and was checked
        // when the tree passed it.
        let file = list.first().map(|(f, _)| f.clone()).unwrap_or_default();
        return Err(BackupError::Inconsistent {
            file,
            why: "its size was never reached".into(),
        });
    }
    let mut meta = sled::Batch::default();
    meta.insert(layout::META_FORMAT, layout::FORMAT_VERSION);
    meta.insert(layout::META_TREE, pending.range.to_bytes());
    meta.insert(layout::META_CHECKPOINT, checkpoint_text.as_bytes());
    store.tree().apply_batch(meta).map_err(StoreError::from)?;
    store.flush()?;
    check::check_tokens(&store, size, &root).map_err(|e| match e {
        CheckError::Store(s) => BackupError::Store(s),
        CheckError::Tampered(t) => BackupError::Check(t.to_string()),
    })?;
    Ok(RestoreSummary {
        entries: size,
        rows,
        root,
        checked: options.checkpoints.len(),
    })
}

/// The end line's seal: signed by a configured ledger key, over this
/// backup's origin, size, rows and SHA-256.
fn check_seal(end: &End, header: &Header, keys: &[VerifierKey]) -> Result<(), BackupError> {
    let bad = BackupError::Seal;
    let note = custos_core::note::SignedNote::parse(end.seal.as_bytes())
        .map_err(|e| bad(format!("the seal is malformed: {e}")))?;
    note.verify(keys).map_err(|e| {
        bad(format!(
            "the seal is not signed by a configured ledger key: {e}"
        ))
    })?;
    let expected = seal_text(&header.origin, header.size, header.rows, &end.sha256);
    if note.text() != expected {
        return Err(bad("the seal is for another backup".into()));
    }
    Ok(())
}

/// Derive entry `seq` of a backup into `pending` through the writer's
/// [`integrate`] step.
fn restore_entry(
    store: &Store,
    pending: &mut Pending,
    seq: u64,
    bytes: &[u8],
) -> Result<(), BackupError> {
    let bad = |why: String| BackupError::Entry { seq, why };
    if bytes.len() > MAX_ENTRY_BYTES {
        return Err(bad(format!(
            "{} bytes, more than an entry may hold",
            bytes.len()
        )));
    }
    let entry = Entry::parse(bytes).map_err(|e| bad(e.to_string()))?;
    if entry.seq != seq {
        return Err(bad(format!("it says it is entry {}", entry.seq)));
    }
    if entry.prev != pending.last_leaf {
        return Err(bad(
            "its prev is not the leaf hash of the entry before it".into()
        ));
    }
    let typed = entry.parsed_details().map_err(|e| bad(e.to_string()))?;
    let manifest = match &typed {
        Details::SegmentIngested(d) => Some(
            Manifest::parse(&d.manifest.payload).map_err(|e| bad(format!("its manifest: {e}")))?,
        ),
        _ => None,
    };
    let dedup = entry
        .envelope
        .as_ref()
        .map(|envelope| Sha256::digest(envelope.to_json()).into());
    let sequenced = Sequenced {
        entry: &entry,
        bytes: bytes.to_vec(),
        typed: &typed,
        manifest: manifest.as_ref(),
        dedup,
    };
    integrate(store, pending, sequenced, None).map_err(|e| bad(e.to_string()))?;
    Ok(())
}

/// Apply what `pending` holds (entries, their nodes, de-duplication keys,
/// catalogue rows) and start the next batch where it ends.
fn commit(store: &Store, pending: &mut Pending) -> Result<(), BackupError> {
    let next = Pending::new(pending.range.clone(), pending.last_leaf);
    let Pending {
        state,
        chunks,
        mut sled_batch,
        ..
    } = std::mem::replace(pending, next);
    for (key, chunk) in chunks {
        sled_batch.insert(&key[..], chunk);
    }
    for (key, value) in state {
        match value {
            Some(v) => sled_batch.insert(key, v),
            None => sled_batch.remove(key),
        }
    }
    store
        .tree()
        .apply_batch(sled_batch)
        .map_err(StoreError::from)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;
    use crate::LedgerOptions;
    use custos_core::entry::{Actor, ActorKind};
    use custos_core::keys::SigningKey;

    const ORIGIN: &str = "backup.unit/ledger";

    fn admin() -> Actor {
        Actor {
            kind: ActorKind::Admin,
            id: "admin-1".into(),
        }
    }

    /// Every key and value of the store but the marker written at open.
    fn dump(dir: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
        let store = Store::open(dir).unwrap();
        store
            .tree()
            .iter()
            .map(|kv| kv.unwrap())
            .filter(|(k, _)| k.as_ref() != b"Mobject_keys")
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_restore_writes_what_the_writer_wrote() {
        let key = SigningKey::from_seed("ledger", &[9; 32]).unwrap();
        let dock = SigningKey::from_seed("dock-1", &[4; 32]).unwrap();
        let from = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(
            LedgerOptions::new(from.path(), ORIGIN),
            SigningKey::from_seed("ledger", &[9; 32]).unwrap(),
        )
        .unwrap();
        ledger
            .create_token(admin(), Role::Dock, "dock-1", Some(dock.verifier_key()))
            .await
            .unwrap();
        ledger
            .create_token(admin(), Role::Auditor, "aud-1", None)
            .await
            .unwrap();
        for i in 0..300u64 {
            let mut details = serde_json::Map::new();
            details.insert("n".into(), i.into());
            let details = Details::Other {
                action: "test.loaded".into(),
                details,
            };
            ledger
                .append(crate::Append::new(admin(), format!("object-{i}"), details).unwrap())
                .await
                .unwrap();
        }
        ledger.revoke_token(admin(), "aud-1", None).await.unwrap();
        let snapshot = snapshot(&ledger).await.unwrap();
        assert_eq!(snapshot.size, ledger.published().size);
        assert!(snapshot.rows.iter().any(|r| r.table == "tokens"));
        assert!(snapshot.rows.iter().any(|r| r.table == "dock_keys"));
        let mut file = Vec::new();
        let summary = write_backup(&ledger, &snapshot, &mut file, &mut |_| {}).unwrap();
        assert_eq!(summary.entries, snapshot.size);
        ledger.close().await;
        drop(ledger);
        assert_eq!(
            check_backup(&file[..]).unwrap(),
            (ORIGIN.to_owned(), summary.entries, summary.rows)
        );

        let to = tempfile::tempdir().unwrap();
        let options = RestoreOptions {
            data_dir: to.path().join("ledger"),
            origin: ORIGIN.into(),
            keys: vec![key.verifier_key()],
            checkpoints: Vec::new(),
            retired_keys: Vec::new(),
        };
        let restored = restore(&options, &file[..], &mut |_, _| {}).unwrap();
        assert_eq!(restored.entries, summary.entries);
        // Byte for byte: the entries, every tree node chunk, the tree
        // state, the checkpoint, the catalogue and the copied rows.
        assert_eq!(dump(from.path()), dump(&options.data_dir));

        // Another ledger key's backup is refused, and nothing is left; a
        // retired key opens kept checkpoints only, never the backup's.
        let other = RestoreOptions {
            data_dir: to.path().join("other"),
            keys: vec![dock.verifier_key()],
            retired_keys: vec![key.verifier_key()],
            ..options.clone()
        };
        let err = restore(&other, &file[..], &mut |_, _| {}).unwrap_err();
        assert!(matches!(err, BackupError::Checkpoint(_)), "{err}");
        assert!(!other.data_dir.exists());
        // A restore refuses the directory it filled.
        let err = restore(&options, &file[..], &mut |_, _| {}).unwrap_err();
        assert!(matches!(err, BackupError::NotEmpty(_)), "{err}");
    }
}
