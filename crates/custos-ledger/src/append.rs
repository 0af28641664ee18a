//! The append path: one writer thread that sequences, integrates and
//! publishes entries in durable batches.
//!
//! # The life of an append
//!
//! 1. **Admit** (the caller's task, [`crate::Ledger`]). The request is
//!    checked where it arrived: a dock's envelope is verified against its
//!    registered key, its manifest opened, its action checked against the
//!    role. What passes becomes an [`Append`] and is sent on the writer's
//!    bounded channel (a full channel makes the caller wait: backpressure,
//!    not unbounded memory). *Crash here:* nothing was written; the caller
//!    was never acknowledged and retries.
//! 2. **Sequence** (the writer thread). The writer takes everything waiting,
//!    up to [`WriterConfig::max_batch`], and for each append in arrival order:
//!    looks its envelope up in the de-duplication index (a resent envelope
//!    is answered with its first index and adds nothing), runs its
//!    [`Guard`] against the state as this batch has left it, assigns
//!    `seq` = the tree size, `prev` = the previous leaf hash and `time` =
//!    the ledger's clock, and writes the entry's canonical bytes.
//!    *Crash here:* nothing was written (all of it is in memory).
//! 3. **Integrate**. Each entry's leaf hash is appended to a copy of the
//!    compact range; every perfect-subtree node that completes is put in
//!    the batch with the entry, its de-duplication key, catalogue and
//!    state-table rows; then the new compact range and a checkpoint for the
//!    new tree, signed with the ledger key, are added, and the whole batch
//!    goes to sled in one `apply_batch` (atomic, also across a crash: after
//!    recovery either all of the batch is there or none of it).
//!    *Crash after the apply but before step 4:* the batch may or may not
//!    have reached the disk, as a whole. Nobody was acknowledged. If it
//!    did, a dock that resends its envelope gets the stored index back.
//! 4. **Flush**. `sled::Db::flush` fsyncs the log. When it returns the
//!    batch is durable. *Crash during the flush:* as in step 3.
//! 5. **Publish**. The in-memory published state (tree size, root, signed
//!    checkpoint) moves to the new size, so readers now serve the new
//!    entries, and every caller of the batch is acknowledged with its
//!    [`Receipt`]. *Crash here:* the entries are durable and some callers
//!    were not acknowledged: as in step 3.
//!
//! So an acknowledged entry is always durable, and a durable entry always
//! comes with the tree nodes and the signed checkpoint that cover it: the
//! stored tree state never lags behind or runs ahead of the entries.
//!
//! If sled fails in step 3 or 4 the writer cannot know what reached the
//! disk, so it stops: this and every later append fail with
//! [`AppendError::Storage`] until the ledger is restarted, which re-reads
//! the stored state. Reads keep serving the published (durable) log.
//!
//! # What this module must never do
//!
//! Reuse an index, write a log key outside the batch of step 3, acknowledge
//! before step 4 returned, or publish a size whose checkpoint is not stored.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use custos_core::checkpoint::Checkpoint;
use custos_core::dsse::Envelope;
use custos_core::entry::{Action, Actor, Details, Entry, EntryBody};
use custos_core::keys::KeySet;
use custos_core::manifest::{Manifest, Timestamp};
use custos_core::merkle::{leaf_hash, CompactRange, Hash, NodeId};
use custos_core::tiles::MAX_ENTRY_LEN;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};

use crate::catalogue;
use crate::clock::SharedClock;
use crate::error::{AppendError, OpenError, StoreError};
use crate::layout;
use crate::ledger::{Published, Shared};
use crate::store::Store;
use crate::wire::Receipt;

/// How the writer batches; see [`crate::LedgerOptions`].
#[derive(Debug, Clone, Copy)]
pub struct WriterConfig {
    /// Most appends written in one batch (one sled batch, one fsync).
    pub max_batch: usize,
    /// Capacity of the channel in front of the writer; callers wait when it
    /// is full.
    pub queue: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            // 1024 appends of a few KiB each is a few MiB per sled batch:
            // large enough that fsync cost is amortised at any realistic
            // load, small enough that one batch never stalls readers.
            max_batch: 1024,
            // Four batches' worth of waiting callers before backpressure.
            queue: 4096,
        }
    }
}

// ---------------------------------------------------------------------------
// Rejections and guards

/// What kind of refusal a [`Rejection`] is; the API maps it to a status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectionKind {
    /// The request contradicts the state (409).
    Conflict,
    /// The request names something that does not exist (404).
    NotFound,
    /// The request is malformed for this state (400).
    Invalid,
    /// The caller may not do this (403).
    Forbidden,
}

/// A guard's (or the catalogue's) refusal of an append: nothing is added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Rejection {
    /// The kind, for the status code.
    pub kind: RejectionKind,
    /// A stable machine-readable code (`case_closed`, `segment_exists`...).
    pub code: String,
    /// What is wrong, for a person.
    pub message: String,
}

impl Rejection {
    /// A rejection of `kind` with `code` and `message`.
    pub fn new(kind: RejectionKind, code: &str, message: impl Into<String>) -> Rejection {
        Rejection {
            kind,
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

/// Why a guard stopped an append.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GuardError {
    /// The guard refused the append.
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// Reading the state failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A check-and-write that runs in the writer, in sequence order, just before
/// its entry is sequenced: it reads the state tables as the batch has left
/// them, may refuse the append, and may stage state-table writes that are
/// applied atomically with the entry. Retrieval uses it for rules such as
/// "approve only a pending request" without races.
///
/// It runs on the writer thread: it must be quick and must not block.
pub type Guard = Box<dyn FnOnce(&mut StateTx<'_>) -> Result<(), GuardError> + Send>;

/// A state-table row: (key without the table prefix, value).
pub type Row = (Vec<u8>, Vec<u8>);

/// The state tables as seen by a [`Guard`]: committed rows, overlaid with
/// the writes of earlier appends of the same batch and this append's own.
#[derive(Debug)]
pub struct StateTx<'a> {
    store: &'a Store,
    batch: &'a BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    staged: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    seq: u64,
    time: Timestamp,
}

impl<'a> StateTx<'a> {
    fn new(
        store: &'a Store,
        batch: &'a BTreeMap<Vec<u8>, Option<Vec<u8>>>,
        seq: u64,
        time: Timestamp,
    ) -> Self {
        StateTx {
            store,
            batch,
            staged: BTreeMap::new(),
            seq,
            time,
        }
    }

    /// The index the entry will get if the append goes through.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The `time` the entry will carry.
    pub fn time(&self) -> Timestamp {
        self.time
    }

    /// Row `key` of `table`.
    pub fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let full = layout::table_key(table, key);
        if let Some(v) = self.staged.get(&full).or_else(|| self.batch.get(&full)) {
            return Ok(v.clone());
        }
        Ok(self.store.get(&full)?.map(|v| v.to_vec()))
    }

    /// Row `key` of `table`, decoded from JSON.
    pub fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        table: &str,
        key: &[u8],
    ) -> Result<Option<T>, StoreError> {
        let Some(bytes) = self.get(table, key)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Malformed {
                what: format!("row {:?} of table {table}", String::from_utf8_lossy(key)),
                why: e.to_string(),
            })
    }

    /// The rows of `table` whose key starts with `prefix`, as this append
    /// would leave them, in key order (keys without the table prefix).
    pub fn scan(&self, table: &str, prefix: &[u8]) -> Result<Vec<Row>, StoreError> {
        let full = layout::table_key(table, prefix);
        let skip = layout::table_prefix(table).len();
        let mut rows: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        for row in self.store.tree().scan_prefix(&full) {
            let (k, v) = row.map_err(StoreError::from)?;
            rows.insert(k.to_vec(), Some(v.to_vec()));
        }
        for layer in [self.batch, &self.staged] {
            for (k, v) in layer.range(full.clone()..) {
                if !k.starts_with(&full) {
                    break;
                }
                rows.insert(k.clone(), v.clone());
            }
        }
        Ok(rows
            .into_iter()
            .filter_map(|(k, v)| Some((k[skip..].to_vec(), v?)))
            .collect())
    }

    /// Stage `value` as row `key` of `table`. Panics (a programming error)
    /// if `table` is not a valid table name.
    pub fn insert(&mut self, table: &str, key: &[u8], value: Vec<u8>) {
        assert!(layout::valid_table(table), "invalid table name {table:?}");
        self.staged
            .insert(layout::table_key(table, key), Some(value));
    }

    /// Stage `value`, as JSON, as row `key` of `table`.
    pub fn insert_json<T: serde::Serialize>(&mut self, table: &str, key: &[u8], value: &T) {
        // INVARIANT: the state rows are plain data structs whose
        // serialisation into memory cannot fail.
        let bytes = serde_json::to_vec(value).expect("INVARIANT: state rows serialise");
        self.insert(table, key, bytes);
    }

    /// Stage the removal of row `key` of `table`.
    pub fn remove(&mut self, table: &str, key: &[u8]) {
        assert!(layout::valid_table(table), "invalid table name {table:?}");
        self.staged.insert(layout::table_key(table, key), None);
    }
}

// ---------------------------------------------------------------------------
// Appends

/// One entry to append: who, what, to what, details, and optionally the
/// envelope the actor signed and a [`Guard`].
pub struct Append {
    pub(crate) actor: Actor,
    pub(crate) action: Action,
    pub(crate) subject: String,
    /// The details as the entry holds them (for an event, exactly as the
    /// dock signed them).
    pub(crate) details: Map<String, Value>,
    /// The same details, typed: what the catalogue and the guards read.
    pub(crate) typed: Details,
    pub(crate) envelope: Option<Envelope>,
    pub(crate) guard: Option<Guard>,
    /// SHA-256 of the envelope's canonical JSON, for de-duplication.
    pub(crate) dedup: Option<[u8; 32]>,
    /// The opened manifest of a `segment.ingested` event, for the catalogue.
    pub(crate) manifest: Option<Box<Manifest>>,
    /// The entry's canonical bytes but for `seq`, `prev` and `time`,
    /// written by [`Append::prepare`] in the caller's task so that the
    /// writer only splices those three in.
    pub(crate) body: Option<EntryBody>,
}

impl std::fmt::Debug for Append {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Append")
            .field("actor", &self.actor)
            .field("action", &self.action)
            .field("subject", &self.subject)
            .field("guard", &self.guard.is_some())
            .finish_non_exhaustive()
    }
}

impl Append {
    /// An entry by `actor` doing what `details` say (their action) to
    /// `subject`.
    pub fn new(
        actor: Actor,
        subject: impl Into<String>,
        details: Details,
    ) -> Result<Append, AppendError> {
        let map = details.to_map();
        // `Other` with the name of a typed action must still fit the type.
        let details = match details {
            Details::Other { action, details } => Details::parse(&action, &details)
                .map_err(|e| AppendError::Invalid(e.to_string()))?,
            typed => typed,
        };
        Append::with(actor, subject.into(), map, details)
    }

    /// The entry for a dock's event: its details as signed (`map`) and
    /// as parsed at admission (`typed`).
    pub(crate) fn with(
        actor: Actor,
        subject: String,
        map: Map<String, Value>,
        typed: Details,
    ) -> Result<Append, AppendError> {
        let action = Action::new(typed.action())?;
        if subject.is_empty() {
            return Err(AppendError::Invalid("the subject is empty".into()));
        }
        if actor.id.is_empty() {
            return Err(AppendError::Invalid("the actor id is empty".into()));
        }
        Ok(Append {
            actor,
            action,
            subject,
            details: map,
            typed,
            envelope: None,
            guard: None,
            dedup: None,
            manifest: None,
            body: None,
        })
    }

    /// Write the entry's body ([`EntryBody`]) now, in the caller's task,
    /// unless it is written already; `envelope_json` is the envelope's
    /// canonical JSON if the caller has it. Step 1 of the module
    /// documentation: the costly serialisation runs in parallel, outside
    /// the writer.
    pub(crate) fn prepare(&mut self, envelope_json: Option<&[u8]>) -> Result<(), AppendError> {
        if self.body.is_some() {
            return Ok(());
        }
        let computed;
        let envelope_json = match (&self.envelope, envelope_json) {
            (None, _) => None,
            (Some(_), Some(json)) => Some(json),
            (Some(envelope), None) => {
                computed = envelope.to_json();
                Some(computed.as_slice())
            }
        };
        let body = EntryBody::new(
            &self.actor,
            &self.action,
            &self.subject,
            &self.details,
            envelope_json,
        )?;
        // Refused here already when the body alone is too long, so that a
        // hopeless append never waits for the writer (which checks the
        // entry's exact length).
        if body.min_len() > MAX_ENTRY_LEN {
            return Err(too_long(body.min_len(), "at least "));
        }
        self.body = Some(body);
        Ok(())
    }

    /// Run `guard` in the writer before sequencing (see [`Guard`]).
    pub fn guard(
        mut self,
        guard: impl FnOnce(&mut StateTx<'_>) -> Result<(), GuardError> + Send + 'static,
    ) -> Self {
        self.guard = Some(Box::new(guard));
        self
    }
}

/// The refusal of an entry longer than a tlog-tiles entry bundle holds
/// ([`MAX_ENTRY_LEN`]): every entry must be publishable as tiles.
fn too_long(len: usize, at_least: &str) -> AppendError {
    AppendError::Invalid(format!(
        "the entry would be {at_least}{len} bytes, more than the {MAX_ENTRY_LEN} bytes a custody entry may hold (the limit of a tlog-tiles entry bundle)"
    ))
}

/// One queued append and where to answer it.
pub(crate) struct Request {
    pub(crate) append: Append,
    /// The caller waits on the other end; dropping it (the caller gave
    /// up) does not undo the append.
    pub(crate) reply: oneshot::Sender<Result<Receipt, AppendError>>,
    /// When it was queued, for the latency metric.
    pub(crate) queued: Instant,
}

/// A message to the writer.
pub(crate) enum Msg {
    /// Append this.
    Append(Box<Request>),
    /// Finish what is queued, flush, stop; then answer.
    Close(oneshot::Sender<()>),
    /// Between two batches, answer the tree size and the rows a backup
    /// copies ([`crate::backup`]): the state exactly as of that size.
    Snapshot(oneshot::Sender<Result<crate::backup::Snapshot, StoreError>>),
}

/// The writer thread's state. Owned by the thread; nobody else touches the
/// compact range.
pub(crate) struct Writer {
    pub(crate) store: Store,
    pub(crate) key: std::sync::Arc<KeySet>,
    pub(crate) origin: String,
    pub(crate) clock: SharedClock,
    pub(crate) config: WriterConfig,
    /// The tree as stored and published.
    pub(crate) range: CompactRange,
    /// The leaf hash of the last entry, for the next `prev`.
    pub(crate) last_leaf: Option<Hash>,
    pub(crate) shared: Arc<Shared>,
}

/// The perfect-subtree nodes that appending leaf `index` completes, lowest
/// first: the leaf, then one node per trailing one bit of `index` (the same
/// nodes `CompactRange::append` reports).
fn completed_nodes(index: u64) -> impl Iterator<Item = NodeId> {
    (0..=index.trailing_ones() as u8).map(move |level| NodeId {
        level,
        index: index >> level,
    })
}

/// Everything one batch accumulates before the commit (steps 2 and 3).
pub(crate) struct Pending {
    /// A copy of the tree, advanced by each append of the batch.
    pub(crate) range: CompactRange,
    /// The leaf hash of the batch's last entry so far.
    pub(crate) last_leaf: Option<Hash>,
    /// State-table writes (key → value, `None` to remove).
    pub(crate) state: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Envelope digests appended in this batch, for in-batch duplicates.
    pub(crate) in_batch: HashMap<[u8; 32], (u64, Hash)>,
    /// Node chunks extended by the batch, whole (see `layout::node_chunk`).
    pub(crate) chunks: BTreeMap<[u8; 10], Vec<u8>>,
    /// Entries and de-duplication keys.
    pub(crate) sled_batch: sled::Batch,
}

impl Pending {
    /// An empty batch that continues the tree `range` whose last leaf is
    /// `last_leaf`.
    pub(crate) fn new(range: CompactRange, last_leaf: Option<Hash>) -> Pending {
        Pending {
            range,
            last_leaf,
            state: BTreeMap::new(),
            in_batch: HashMap::new(),
            chunks: BTreeMap::new(),
            sled_batch: sled::Batch::default(),
        }
    }
}

/// An entry with its fixed bytes, as [`integrate`] takes it.
pub(crate) struct Sequenced<'a> {
    /// The entry.
    pub(crate) entry: &'a Entry,
    /// Its canonical bytes (the leaf).
    pub(crate) bytes: Vec<u8>,
    /// Its details, typed.
    pub(crate) typed: &'a Details,
    /// The opened manifest of a `segment.ingested` entry.
    pub(crate) manifest: Option<&'a Manifest>,
    /// SHA-256 of its envelope's canonical JSON, if it carries one.
    pub(crate) dedup: Option<[u8; 32]>,
}

/// Step 3 for one entry whose bytes are fixed (`entry.seq` is the size of
/// `pending.range`): index it in the catalogue on `tx` (which may already
/// hold its guard's writes), stage those writes, extend the tree nodes,
/// and put the entry and its de-duplication key in the batch. Nothing is
/// changed when it fails. The writer calls it for every new entry, and a
/// restore ([`crate::backup`]) for every entry of a backup, so the tree,
/// the catalogue and the de-duplication index are derived by this one
/// code path.
pub(crate) fn integrate(
    store: &Store,
    pending: &mut Pending,
    sequenced: Sequenced<'_>,
    guard: Option<Guard>,
) -> Result<Hash, AppendError> {
    let Sequenced {
        entry,
        bytes,
        typed,
        manifest,
        dedup,
    } = sequenced;
    let seq = entry.seq;
    let Pending {
        range,
        last_leaf,
        state,
        in_batch,
        chunks,
        sled_batch,
    } = pending;
    let mut tx = StateTx::new(store, state, seq, entry.time);
    if let Some(guard) = guard {
        match guard(&mut tx) {
            Ok(()) => {}
            Err(GuardError::Rejected(r)) => return Err(AppendError::Rejected(r)),
            Err(GuardError::Store(e)) => return Err(AppendError::Storage(e.to_string())),
        }
    }
    match catalogue::index(&mut tx, entry, typed, manifest) {
        Ok(()) => {}
        Err(GuardError::Rejected(r)) => return Err(AppendError::Rejected(r)),
        Err(GuardError::Store(e)) => return Err(AppendError::Storage(e.to_string())),
    }
    // Load every chunk this append will extend before changing the
    // range, so that a read error leaves nothing half done.
    for id in completed_nodes(seq) {
        load_chunk(store, chunks, id).map_err(AppendError::Storage)?;
    }
    let staged = tx.staged;
    state.extend(staged);

    let leaf = leaf_hash(&bytes);
    for (id, hash) in range.append(leaf) {
        let (key, _) = layout::node_chunk(id);
        // INVARIANT: load_chunk loaded every chunk of completed_nodes(seq),
        // which are exactly the nodes append() completes.
        chunks
            .get_mut(&key)
            .expect("INVARIANT: chunk loaded above")
            .extend_from_slice(hash.as_bytes());
    }
    sled_batch.insert(&layout::entry_key(seq)[..], bytes);
    if let Some(digest) = dedup {
        sled_batch.insert(&layout::dedup_key(&digest)[..], &seq.to_be_bytes()[..]);
        in_batch.insert(digest, (seq, leaf));
    }
    *last_leaf = Some(leaf);
    Ok(leaf)
}

/// Make sure `chunks` holds the chunk of node `id`, read from the store
/// on first use, and that the chunk ends exactly where `id` goes.
fn load_chunk(
    store: &Store,
    chunks: &mut BTreeMap<[u8; 10], Vec<u8>>,
    id: NodeId,
) -> Result<(), String> {
    let (key, offset) = layout::node_chunk(id);
    if let std::collections::btree_map::Entry::Vacant(slot) = chunks.entry(key) {
        let stored = store.get(&key).map_err(|e| e.to_string())?;
        slot.insert(stored.map(|v| v.to_vec()).unwrap_or_default());
    }
    let len = chunks[&key].len();
    if len != offset {
        return Err(format!(
            "the stored chunk of tree {id} holds {len} bytes where {offset} were expected"
        ));
    }
    Ok(())
}

/// What happened to one append of a batch.
enum Outcome {
    New { seq: u64, leaf: Hash },
    Duplicate { seq: u64, leaf: Hash },
    Failed(AppendError),
}

impl Writer {
    /// The thread's body: batch until the channel closes or a `Close` comes.
    pub(crate) fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        // Reused from batch to batch: a request is a few hundred bytes, and
        // growing a fresh vector of them for every batch copies each
        // several times.
        let mut batch: Vec<Request> = Vec::with_capacity(self.config.max_batch.min(256));
        loop {
            let Some(first) = rx.blocking_recv() else {
                break;
            };
            let mut close = None;
            let mut snapshots = Vec::new();
            let mut take = |msg: Msg, batch: &mut Vec<Request>| match msg {
                Msg::Append(request) => batch.push(*request),
                Msg::Close(done) => close = Some(done),
                Msg::Snapshot(reply) => snapshots.push(reply),
            };
            take(first, &mut batch);
            while batch.len() < self.config.max_batch {
                match rx.try_recv() {
                    Ok(msg) => take(msg, &mut batch),
                    Err(_) => break,
                }
            }
            if !batch.is_empty() {
                self.write_batch(&mut batch);
            }
            for reply in snapshots {
                let _ = reply.send(self.snapshot());
            }
            if let Some(done) = close {
                // Refuse new sends, then write what was already admitted.
                rx.close();
                while let Ok(msg) = rx.try_recv() {
                    if let Msg::Append(request) = msg {
                        batch.push(*request);
                        if batch.len() == self.config.max_batch {
                            self.write_batch(&mut batch);
                        }
                    }
                }
                if !batch.is_empty() {
                    self.write_batch(&mut batch);
                }
                let _ = self.store.flush();
                let _ = done.send(());
                return;
            }
        }
        let _ = self.store.flush();
    }

    /// The tree size as stored and published, and the rows a backup
    /// copies: read between batches, so they belong to that size.
    fn snapshot(&self) -> Result<crate::backup::Snapshot, StoreError> {
        Ok(crate::backup::Snapshot {
            size: self.range.size(),
            rows: crate::backup::copied_rows(&self.store)?,
        })
    }

    /// Before the thread starts: write `appends` as one batch on the
    /// calling thread (the ledger's own entries at start-up).
    pub(crate) fn append_now(&mut self, appends: Vec<Append>) -> Result<Vec<Receipt>, OpenError> {
        let mut batch = Vec::with_capacity(appends.len());
        let mut answers = Vec::with_capacity(appends.len());
        for mut append in appends {
            append
                .prepare(None)
                .map_err(|e| OpenError::KeyChange(e.to_string()))?;
            let (reply, answer) = oneshot::channel();
            batch.push(Request {
                append,
                reply,
                queued: Instant::now(),
            });
            answers.push(answer);
        }
        self.write_batch(&mut batch);
        answers
            .into_iter()
            .map(|mut answer| match answer.try_recv() {
                Ok(Ok(receipt)) => Ok(receipt),
                Ok(Err(e)) => Err(OpenError::KeyChange(e.to_string())),
                Err(_) => Err(OpenError::KeyChange("no answer from the writer".into())),
            })
            .collect()
    }

    /// Write `requests` (emptied, its capacity kept for the next batch).
    fn write_batch(&mut self, requests: &mut Vec<Request>) {
        let metrics = &self.shared.metrics;
        if let Some(refusal) = self.shared.append_refusal() {
            for Request { reply, .. } in requests.drain(..) {
                metrics.appends.with_label_values(&["failed"]).inc();
                let _ = reply.send(Err(refusal.clone()));
            }
            return;
        }
        let started = Instant::now();
        let mut pending = Pending::new(self.range.clone(), self.last_leaf);
        let mut outcomes = Vec::with_capacity(requests.len());
        let mut replies = Vec::with_capacity(requests.len());

        for Request {
            append,
            reply,
            queued,
        } in requests.drain(..)
        {
            replies.push((reply, queued));
            let outcome = self.sequence(append, &mut pending);
            outcomes.push(outcome);
        }

        let Pending {
            range,
            last_leaf,
            state,
            chunks,
            mut sled_batch,
            ..
        } = pending;
        let new_entries = range.size() - self.range.size();
        if new_entries > 0 {
            for (key, chunk) in chunks {
                sled_batch.insert(&key[..], chunk);
            }
            if let Err(e) = self.commit(&range, state, sled_batch) {
                let err = AppendError::Storage(e.to_string());
                tracing::error!(error = %e, "ledger write failed; refusing appends until restart");
                self.shared.set_storage_failed(e.to_string());
                for (reply, _) in replies {
                    metrics.appends.with_label_values(&["failed"]).inc();
                    let _ = reply.send(Err(err.clone()));
                }
                return;
            }
            self.range = range;
            self.last_leaf = last_leaf;
            metrics.batch_size.observe(new_entries as f64);
            metrics
                .flush_seconds
                .observe(started.elapsed().as_secs_f64());
        }
        let size = self.shared.published().size;
        for ((reply, queued), outcome) in replies.into_iter().zip(outcomes) {
            let result = match outcome {
                Outcome::New { seq, leaf } => {
                    metrics.appends.with_label_values(&["new"]).inc();
                    Ok(Receipt {
                        seq,
                        leaf_hash: leaf,
                        size,
                        duplicate: false,
                    })
                }
                Outcome::Duplicate { seq, leaf } => {
                    metrics.appends.with_label_values(&["duplicate"]).inc();
                    Ok(Receipt {
                        seq,
                        leaf_hash: leaf,
                        size,
                        duplicate: true,
                    })
                }
                Outcome::Failed(e) => {
                    let label = match e {
                        AppendError::Rejected(_) | AppendError::Invalid(_) => "rejected",
                        _ => "failed",
                    };
                    metrics.appends.with_label_values(&[label]).inc();
                    Err(e)
                }
            };
            metrics
                .append_seconds
                .observe(queued.elapsed().as_secs_f64());
            let _ = reply.send(result);
        }
    }

    /// Steps 2 and 3 for one append: sequence it and stage its writes.
    fn sequence(&self, append: Append, pending: &mut Pending) -> Outcome {
        if let Some(digest) = append.dedup {
            if let Some(&(seq, leaf)) = pending.in_batch.get(&digest) {
                return Outcome::Duplicate { seq, leaf };
            }
            match self.lookup_duplicate(&digest) {
                Ok(Some((seq, leaf))) => return Outcome::Duplicate { seq, leaf },
                Ok(None) => {}
                Err(e) => return Outcome::Failed(e),
            }
        }
        let seq = pending.range.size();
        let time = self.clock.now();
        let last_leaf = pending.last_leaf;
        let entry = Entry {
            seq,
            time,
            prev: last_leaf,
            actor: append.actor,
            action: append.action,
            subject: append.subject,
            details: append.details,
            envelope: append.envelope,
        };
        let bytes = match &append.body {
            Some(body) => body.to_bytes(seq, last_leaf, time),
            None => entry.to_bytes(),
        };
        debug_assert!(
            bytes.is_err() || bytes.as_ref().ok() == entry.to_bytes().ok().as_ref(),
            "the prepared body of entry {seq} differs from the entry's canonical bytes"
        );
        let bytes = match bytes {
            Ok(b) if b.len() <= MAX_ENTRY_LEN => b,
            Ok(b) => return Outcome::Failed(too_long(b.len(), "")),
            Err(e) => return Outcome::Failed(e.into()),
        };
        let sequenced = Sequenced {
            entry: &entry,
            bytes,
            typed: &append.typed,
            manifest: append.manifest.as_deref(),
            dedup: append.dedup,
        };
        match integrate(&self.store, pending, sequenced, append.guard) {
            Ok(leaf) => Outcome::New { seq, leaf },
            Err(e) => Outcome::Failed(e),
        }
    }

    fn lookup_duplicate(&self, digest: &[u8; 32]) -> Result<Option<(u64, Hash)>, AppendError> {
        let storage = |e: String| AppendError::Storage(e);
        let Some(seq) = self
            .store
            .dedup(digest)
            .map_err(|e| storage(e.to_string()))?
        else {
            return Ok(None);
        };
        let leaf = self
            .store
            .node(NodeId::leaf(seq))
            .map_err(|e| storage(e.to_string()))?
            .ok_or_else(|| storage(format!("the leaf hash of duplicate entry {seq} is missing")))?;
        Ok(Some((seq, leaf)))
    }

    /// Steps 3 (the apply), 4 and 5.
    fn commit(
        &self,
        range: &CompactRange,
        state: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
        mut sled_batch: sled::Batch,
    ) -> Result<(), StoreError> {
        let token_rows = layout::table_prefix(crate::auth::TOKENS);
        let changed_tokens: Vec<String> = state
            .keys()
            .filter_map(|k| k.strip_prefix(token_rows.as_slice()))
            .map(|id| String::from_utf8_lossy(id).into_owned())
            .collect();
        for (key, value) in state {
            match value {
                Some(v) => sled_batch.insert(key, v),
                None => sled_batch.remove(key),
            }
        }
        let root = range.root();
        let checkpoint = Checkpoint::new(&self.origin, range.size(), root)
            .map_err(|e| StoreError::Malformed {
                what: "the new checkpoint".into(),
                why: e.to_string(),
            })?
            .sign(&self.key);
        sled_batch.insert(layout::META_TREE, range.to_bytes());
        sled_batch.insert(layout::META_CHECKPOINT, checkpoint.as_bytes());
        self.store.tree().apply_batch(sled_batch)?;
        for id in &changed_tokens {
            self.shared.tokens.invalidate(id);
        }
        self.store.flush()?;
        self.shared.publish(Published {
            size: range.size(),
            root,
            checkpoint: checkpoint.into(),
        });
        Ok(())
    }
}
