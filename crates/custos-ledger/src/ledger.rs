//! [`Ledger`]: the handle every part of the service holds, in-process or
//! behind HTTP.
//!
//! It opens the store (with the start-up check of [`crate::check`]), starts
//! the writer thread of [`crate::append`], and offers:
//!
//! - appends: [`Ledger::append`] for entries the service writes itself
//!   (case steps, approvals, views, exports: actor = the caller's role and
//!   name), [`Ledger::append_event`] for a dock's signed event,
//!   [`Ledger::create_token`];
//! - reads bounded by the *published* tree (only durable entries): the
//!   checkpoint, entries, proofs, the catalogue and custody records;
//! - health: once a tamper check fails, [`Ledger::refusal`] says why and the
//!   HTTP layer stops serving the log.
//!
//! This module must never serve an entry beyond the published size, serve an
//! entry whose bytes do not hash to its stored leaf, or let anything but the
//! writer thread write the log.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Instant;

use custos_core::checkpoint::Checkpoint;
use custos_core::dsse::{DsseError, Envelope};
use custos_core::entry::details::{SegmentIngested, TokenCreated, TokenRevoked};
use custos_core::entry::{actions, Actor, ActorKind, Details, EntryError, Event};
use custos_core::keys::{KeyError, KeySet, VerifierKey};
use custos_core::manifest::{ManifestError, SignedManifest};
use custos_core::merkle::{
    consistency_proof, inclusion_proof, leaf_hash, CompactRange, Hash, NodeId, ProofError,
};

use sha2::{Digest as _, Sha256};
use sled::IVec;
use tokio::sync::{mpsc, oneshot};

use crate::append::{Append, GuardError, Msg, Rejection, RejectionKind, Writer, WriterConfig};
use crate::auth::{self, Caller, DockKeyRecord, NewToken, Role, DOCK_KEYS, TOKENS};
use crate::catalogue::{self, SearchError, SegmentQuery, SegmentRecord};
use crate::check::{self, CheckError};
use crate::clock::{SharedClock, SystemClock};
use crate::error::{AppendError, OpenError, ReadError, StoreError, TamperError};
use crate::layout;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::verify::Preverified;
use crate::wire::{ConsistencyProof, Custody, EntryLine, InclusionProof, ProvenEntry, Receipt};

/// Most entries one `/v1/entries` page returns.
pub const MAX_ENTRIES_PER_PAGE: u64 = 4096;

/// How to open a ledger.
#[derive(Debug, Clone)]
pub struct LedgerOptions {
    /// The sled directory.
    pub data_dir: PathBuf,
    /// The checkpoint origin line.
    pub origin: String,
    /// Batching of the writer.
    pub writer: WriterConfig,
    /// Entries the start-up check re-hashes (see [`crate::check`]).
    pub startup_window: u64,
    /// The clock of entry times.
    pub clock: SharedClock,
    /// Verify the signatures of concurrent dock events in one batch
    /// ([`crate::verify`]); off by default, since a batch can accept a
    /// signature its own dock's key holder crafted to fail the single
    /// check that auditors run (see `[ledger] batch_signatures`).
    pub batch_signatures: bool,
    /// The font of chain-of-custody reports (`[ledger] report_font`),
    /// read when a report is made.
    pub report_font: PathBuf,
    /// The SM2 key that adds an SM2 line to every checkpoint (`[ledger]
    /// sm2_key_file` when `[crypto] signatures` holds `sm2`), beside the
    /// Ed25519 key file the caller names.
    pub sm2_key_file: Option<PathBuf>,
    /// Older Ed25519 keys still signing every checkpoint while the
    /// ledger's key is rotated (`[ledger] key_files` after the first).
    pub older_key_files: Vec<PathBuf>,
    /// Older SM2 keys still signing every checkpoint while the ledger's SM2
    /// key is rotated (`[ledger] sm2_key_files` after the first); read
    /// only with [`LedgerOptions::sm2_key_file`].
    pub older_sm2_key_files: Vec<PathBuf>,
}

impl LedgerOptions {
    /// Take the SM2 key file from `config` when `[crypto] signatures`
    /// holds `sm2`, and the older keys of a rotation (`[ledger]
    /// key_files`, `sm2_key_files`).
    pub fn with_config_keys(mut self, config: &custos_core::config::Config) -> Self {
        self.sm2_key_file = config
            .crypto
            .uses(custos_core::keys::Algorithm::Sm2)
            .then(|| config.ledger.sm2_key_file.clone());
        self.older_key_files = config.ledger.older_key_files().to_vec();
        self.older_sm2_key_files = config.ledger.older_sm2_key_files().to_vec();
        self
    }

    /// The ledger's signing keys: the Ed25519 key at `key_file`, the older
    /// keys of a rotation ([`LedgerOptions::older_key_files`]), and the
    /// SM2 key of [`LedgerOptions::sm2_key_file`] if set, with the older
    /// SM2 keys of its rotation.
    pub fn load_keys(&self, key_file: &std::path::Path) -> Result<KeySet, KeyError> {
        use custos_core::keys::Algorithm;
        let mut files = vec![(Algorithm::Ed25519, key_file)];
        files.extend(
            self.older_key_files
                .iter()
                .map(|p| (Algorithm::Ed25519, p.as_path())),
        );
        if let Some(sm2) = &self.sm2_key_file {
            files.push((Algorithm::Sm2, sm2.as_path()));
            files.extend(
                self.older_sm2_key_files
                    .iter()
                    .map(|p| (Algorithm::Sm2, p.as_path())),
            );
        }
        KeySet::load(&files)
    }

    /// Defaults for a ledger in `data_dir` with checkpoint origin `origin`.
    pub fn new(data_dir: impl Into<PathBuf>, origin: impl Into<String>) -> Self {
        LedgerOptions {
            data_dir: data_dir.into(),
            origin: origin.into(),
            writer: WriterConfig::default(),
            startup_window: check::DEFAULT_WINDOW,
            clock: Arc::new(SystemClock),
            batch_signatures: false,
            report_font: custos_report::DEFAULT_FONT.into(),
            sm2_key_file: None,
            older_key_files: Vec::new(),
            older_sm2_key_files: Vec::new(),
        }
    }
}

/// The published tree: the latest durable size, its root and signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The tree size (number of durable entries).
    pub size: u64,
    /// The root of the tree of that size.
    pub root: Hash,
    /// The C2SP signed checkpoint for it, as served at `/v1/checkpoint`.
    pub checkpoint: Arc<str>,
}

#[derive(Debug, Clone)]
enum Health {
    Ok,
    Tampered(TamperError),
    StorageFailed(String),
}

/// State shared by the handle and the writer thread.
#[derive(Debug)]
pub(crate) struct Shared {
    published: RwLock<Arc<Published>>,
    health: RwLock<Health>,
    pub(crate) metrics: Metrics,
    /// Tokens seen, for [`Ledger::authenticate`]; the writer invalidates.
    pub(crate) tokens: auth::TokenCache,
    /// The state of the background full verification.
    full_check: RwLock<&'static str>,
}

impl Shared {
    pub(crate) fn published(&self) -> Arc<Published> {
        // A poisoned lock means a panic while swapping an Arc; the value is
        // still a whole Arc, so reading it is sound.
        self.published
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn publish(&self, p: Published) {
        self.metrics
            .tree_size
            .set(i64::try_from(p.size).unwrap_or(i64::MAX));
        *self.published.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(p);
    }

    fn health(&self) -> Health {
        self.health
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn set_storage_failed(&self, why: String) {
        let mut h = self.health.write().unwrap_or_else(|p| p.into_inner());
        if matches!(*h, Health::Ok) {
            *h = Health::StorageFailed(why);
        }
    }

    fn set_tampered(&self, t: TamperError) {
        tracing::error!(error = %t, "ledger tamper check failed; refusing to serve the log");
        let mut h = self.health.write().unwrap_or_else(|p| p.into_inner());
        if !matches!(*h, Health::Tampered(_)) {
            *h = Health::Tampered(t);
        }
    }

    /// Why appends are refused, if they are.
    pub(crate) fn append_refusal(&self) -> Option<AppendError> {
        match self.health() {
            Health::Ok => None,
            Health::Tampered(t) => Some(AppendError::Tampered(t)),
            Health::StorageFailed(s) => Some(AppendError::Storage(s)),
        }
    }
}

/// Why a dock's event was refused; nothing was added.
#[derive(Debug, thiserror::Error)]
// Exhaustive on purpose: custos-server maps every variant to an HTTP answer.
pub enum EventError {
    /// The body is not a DSSE envelope.
    #[error("the body is not a valid DSSE envelope: {0}")]
    Envelope(DsseError),
    /// Only docks append signed events.
    #[error("role {0} may not append signed events; only docks do")]
    NotADock(Role),
    /// The dock's token carries no verifier key.
    #[error("dock {0:?} has no registered key; create its token with `custos token create --role dock --name {0} --key {0}.pub`")]
    NoKey(String),
    /// No signature is by the dock's registered key.
    #[error("the envelope is not signed by dock {dock:?}'s registered key {expected} (its signatures name {found:?})")]
    UnknownKey {
        /// The dock.
        dock: String,
        /// The registered key id.
        expected: String,
        /// The key ids the envelope names.
        found: Vec<String>,
    },
    /// A signature by the registered key does not verify.
    #[error("bad signature: {0}")]
    BadSignature(String),
    /// The payload type is not an event's.
    #[error("the envelope's payloadType is {found:?}; a custody event is {expected:?}", expected = custos_core::dsse::EVENT_PAYLOAD_TYPE)]
    WrongPayloadType {
        /// The payload type sent.
        found: String,
    },
    /// The payload is not a valid event.
    #[error("the signed payload is not a custody event: {0}")]
    BadEvent(String),
    /// The dock may not sign this action.
    #[error("a dock may not record {0:?} (docks record recorder.*, segment.ingested, segment.verified, segment.wiped and dock.* events)")]
    ActionForbidden(String),
    /// A `segment.ingested` event's manifest is missing or invalid.
    #[error("bad manifest in segment.ingested: {0}")]
    BadManifest(String),
    /// The append itself failed.
    #[error(transparent)]
    Append(#[from] AppendError),
}

/// Why a token could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The name is not usable as an actor id.
    #[error("token name {0:?} must be 1 to 128 printable characters without spaces")]
    BadName(String),
    /// `--key` was given for a role other than dock.
    #[error("only dock tokens carry a key (role {0} given)")]
    KeyForNonDock(Role),
    /// The same key was given twice for one token.
    #[error("key {0} is given twice")]
    DuplicateKey(String),
    /// The lifetime reaches beyond the year 9999.
    #[error("a token lifetime of {0:?} reaches beyond the year 9999")]
    LifetimeTooLong(std::time::Duration),
    /// `--expires` names an instant already past.
    #[error("the token would expire at {0}, which is not in the future")]
    AlreadyExpired(custos_core::manifest::Timestamp),
    /// No token in force has that name (and id).
    #[error("no token in force named {name:?}{}", token_id.as_deref().map(|id| format!(" with id {id}")).unwrap_or_default())]
    NotFound {
        /// The name asked for.
        name: String,
        /// The id asked for, if any.
        token_id: Option<String>,
    },
    /// Reading the registered keys failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The append failed (for example, the key is registered to another dock).
    #[error(transparent)]
    Append(#[from] AppendError),
}

struct Inner {
    store: Store,
    shared: Arc<Shared>,
    /// The writer's queue. Created by `open`; every append sends here; the
    /// writer thread holds the receiver and stops when `close` is called.
    tx: mpsc::Sender<Msg>,
    /// The writer thread; taken and joined by `close`.
    writer: Mutex<Option<JoinHandle<()>>>,
    verifier: VerifierKey,
    /// The key that signs checkpoints, shared with the writer thread (which
    /// signs each new tree); [`Ledger::checkpoint_at`] signs past sizes.
    signer: Arc<KeySet>,
    origin: String,
    clock: SharedClock,
    /// Batch verification of dock event signatures ([`crate::verify`]).
    batcher: crate::verify::Batcher,
    /// Whether dock events go through `batcher` at all.
    batch_signatures: bool,
    /// The report font's path.
    report_font: PathBuf,
    /// The witnesses' policy (`[[ledger.witnesses]]`, `witness_quorum`),
    /// set by the service that submits checkpoints to them.
    witness_policy: RwLock<Option<Arc<custos_core::policy::Policy>>>,
    /// The latest checkpoint published to the tiles, with the witnesses'
    /// cosignatures collected for it.
    cosigned: tokio::sync::watch::Sender<Option<Arc<str>>>,
}

impl Drop for Inner {
    /// The last handle is gone: close the writer's queue (by replacing the
    /// sender with one whose receiver is already gone), so the writer
    /// writes what it holds and stops, then wait for it, so that the sled
    /// database is closed (and its lock released) when this returns.
    fn drop(&mut self) {
        let (dummy, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.tx, dummy));
        let handle = self
            .writer
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

/// The custody ledger (see the module documentation). Cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("data_dir", &self.inner.store.path())
            .field("origin", &self.inner.origin)
            .field("size", &self.inner.shared.published().size)
            .finish()
    }
}

impl Ledger {
    /// Open the ledger in `options.data_dir` (creating an empty log there
    /// if there is none), run the start-up check, and start the writer
    /// thread. `key` signs checkpoints; a log signed by another key, or for
    /// another origin, is refused.
    ///
    /// Blocking (it reads the store); it does not need a Tokio runtime.
    ///
    /// `key` is one key or a [`KeySet`]: every checkpoint carries a
    /// signature line by each (the Ed25519 key first: it is the key the
    /// ledger is known by, and the one checked here).
    pub fn open(options: LedgerOptions, key: impl Into<KeySet>) -> Result<Ledger, OpenError> {
        let key: KeySet = key.into();
        let started = Instant::now();
        Checkpoint::new(&options.origin, 0, custos_core::merkle::empty_root()).map_err(
            |error| OpenError::Origin {
                origin: options.origin.clone(),
                error,
            },
        )?;
        let store = Store::open(&options.data_dir)?;
        let verifier = key.primary().verifier_key();
        let (range, checkpoint) = load_or_init(&store, &key, &options.origin)?;
        // Any configured key may open the stored checkpoint: during a
        // rotation the last one was signed by the old key only.
        let opened = match Checkpoint::open(checkpoint.as_bytes(), &verifier, Some(&options.origin))
        {
            Ok(opened) => opened,
            Err(error) => key
                .verifier_keys()
                .iter()
                .skip(1)
                .find_map(|k| {
                    Checkpoint::open(checkpoint.as_bytes(), k, Some(&options.origin)).ok()
                })
                .ok_or_else(|| OpenError::Checkpoint {
                    key: verifier.key_id(),
                    origin: options.origin.clone(),
                    error,
                })?,
        };
        let key_changes = key_changes(&checkpoint, &key, &options.origin)?;
        if opened.size() != range.size() {
            return Err(TamperError::Tree(format!(
                "the stored tree state has size {}, the signed checkpoint {}",
                range.size(),
                opened.size()
            ))
            .into());
        }
        let last_leaf =
            match check::quick_check(&store, &range, &opened.root(), options.startup_window) {
                Ok(leaf) => leaf,
                Err(CheckError::Tampered(t)) => return Err(t.into()),
                Err(CheckError::Store(s)) => return Err(s.into()),
            };
        match check::check_tokens(&store, range.size(), &opened.root()) {
            Ok(()) => {}
            Err(CheckError::Tampered(t)) => return Err(t.into()),
            Err(CheckError::Store(s)) => return Err(s.into()),
        }
        catalogue::build_object_keys(&store)?;
        let shared = Arc::new(Shared {
            published: RwLock::new(Arc::new(Published {
                size: range.size(),
                root: range.root(),
                checkpoint: checkpoint.into(),
            })),
            health: RwLock::new(Health::Ok),
            metrics: Metrics::new(),
            tokens: auth::TokenCache::default(),
            full_check: RwLock::new("not_run"),
        });
        shared
            .metrics
            .tree_size
            .set(i64::try_from(range.size()).unwrap_or(i64::MAX));
        let (tx, rx) = mpsc::channel(options.writer.queue.max(1));
        let key = Arc::new(key);
        let mut writer = Writer {
            store: store.clone(),
            key: key.clone(),
            origin: options.origin.clone(),
            clock: options.clock.clone(),
            config: options.writer,
            range,
            last_leaf,
            shared: shared.clone(),
        };
        // Keys added or retired since the last checkpoint are on the record
        // before anything else is appended (and the checkpoint that covers
        // them is signed by the new set).
        if !key_changes.is_empty() {
            for receipt in writer.append_now(key_changes)? {
                tracing::info!(seq = receipt.seq, "ledger key change recorded");
            }
        }
        let handle = std::thread::Builder::new()
            .name("custos-ledger-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(OpenError::Thread)?;
        tracing::info!(
            size = shared.published().size,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "ledger opened"
        );
        Ok(Ledger {
            inner: Arc::new(Inner {
                store,
                shared,
                tx,
                writer: Mutex::new(Some(handle)),
                verifier,
                signer: key,
                origin: options.origin,
                clock: options.clock,
                batcher: crate::verify::Batcher::default(),
                batch_signatures: options.batch_signatures,
                report_font: options.report_font,
                witness_policy: RwLock::new(None),
                cosigned: tokio::sync::watch::Sender::new(None),
            }),
        })
    }

    /// The policy of the witnesses this ledger's checkpoints are submitted
    /// to (`None`: no witness).
    pub fn witness_policy(&self) -> Option<Arc<custos_core::policy::Policy>> {
        self.inner
            .witness_policy
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Name the witnesses' policy (the service that submits to them does).
    pub fn set_witness_policy(&self, policy: custos_core::policy::Policy) {
        *self
            .inner
            .witness_policy
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(policy));
    }

    /// The latest checkpoint published with its witnesses' cosignatures
    /// (as the tiles' `checkpoint` holds it), if any was published.
    pub fn cosigned_checkpoint(&self) -> Option<Arc<str>> {
        self.inner.cosigned.borrow().clone()
    }

    /// Watch [`Ledger::cosigned_checkpoint`] change.
    pub fn watch_cosigned(&self) -> tokio::sync::watch::Receiver<Option<Arc<str>>> {
        self.inner.cosigned.subscribe()
    }

    /// Record the checkpoint just published with its cosignatures.
    pub(crate) fn set_cosigned(&self, note: Arc<str>) {
        self.inner.cosigned.send_replace(Some(note));
    }

    /// `text` as a C2SP signed note by the ledger's keys (the key set that
    /// signs checkpoints). For notes that can never parse as a checkpoint
    /// (a backup's seal, [`crate::backup`]).
    pub(crate) fn sign_note(&self, text: &str) -> Result<String, custos_core::note::NoteError> {
        use custos_core::keys::Signers as _;
        Ok(custos_core::note::Note::sign(text, &self.inner.signer.signing_keys())?.to_string())
    }

    /// The writer's [`crate::backup::Snapshot`], taken between two batches.
    pub(crate) async fn writer_snapshot(
        &self,
    ) -> Result<crate::backup::Snapshot, crate::backup::BackupError> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .tx
            .send(Msg::Snapshot(reply))
            .await
            .map_err(|_| crate::backup::BackupError::Closed)?;
        Ok(answer
            .await
            .map_err(|_| crate::backup::BackupError::Closed)??)
    }

    /// Finish the appends already queued, flush, and stop the writer. Later
    /// appends fail with [`AppendError::Closed`]; reads keep working.
    pub async fn close(&self) {
        let (done, wait) = oneshot::channel();
        if self.inner.tx.send(Msg::Close(done)).await.is_ok() {
            let _ = wait.await;
        }
        let handle = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(handle) = handle {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
    }

    /// The store, for reading state tables (cases, holds, access requests...).
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The ledger's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.shared.metrics
    }

    /// The key that signs checkpoints.
    pub fn verifier_key(&self) -> &VerifierKey {
        &self.inner.verifier
    }

    /// Every key that signs checkpoints: the Ed25519 key, then the SM2
    /// key when one is configured.
    pub fn verifier_keys(&self) -> Vec<VerifierKey> {
        self.inner.signer.verifier_keys()
    }

    /// The checkpoint origin.
    pub fn origin(&self) -> &str {
        &self.inner.origin
    }

    /// The font of chain-of-custody reports.
    pub fn report_font(&self) -> &std::path::Path {
        &self.inner.report_font
    }

    /// The ledger's clock.
    pub fn now(&self) -> custos_core::manifest::Timestamp {
        self.inner.clock.now()
    }

    /// The published tree.
    pub fn published(&self) -> Arc<Published> {
        self.inner.shared.published()
    }

    /// Why the ledger refuses to serve the log, if it does: a failed tamper
    /// check.
    pub fn refusal(&self) -> Option<TamperError> {
        match self.inner.shared.health() {
            Health::Tampered(t) => Some(t),
            _ => None,
        }
    }

    /// The background full verification since start-up: `not_run`,
    /// `running`, `passed` or `failed`.
    pub fn full_check(&self) -> &'static str {
        *self
            .inner
            .shared
            .full_check
            .read()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn set_full_check(&self, state: &'static str) {
        *self
            .inner
            .shared
            .full_check
            .write()
            .unwrap_or_else(|p| p.into_inner()) = state;
    }

    /// Why the ledger refuses appends, if it does (tampering or a storage failure).
    pub fn append_refusal(&self) -> Option<AppendError> {
        self.inner.shared.append_refusal()
    }

    // -----------------------------------------------------------------
    // Appends

    /// Append an entry and wait until it is durable. The internal API for
    /// everything the service records itself (case steps, approvals,
    /// views, exports, token use): build it with [`Append::new`] and,
    /// where a rule must be checked atomically with the entry,
    /// [`Append::guard`].
    pub async fn append(&self, mut append: Append) -> Result<Receipt, AppendError> {
        if let Some(refusal) = self.append_refusal() {
            return Err(refusal);
        }
        append.prepare(None)?;
        let (reply, answer) = oneshot::channel();
        self.inner
            .tx
            .send(Msg::Append(Box::new(crate::append::Request {
                append,
                reply,
                queued: Instant::now(),
            })))
            .await
            .map_err(|_| AppendError::Closed)?;
        answer.await.map_err(|_| AppendError::Closed)?
    }

    /// Shorthand: `caller` did what `details` say to `subject`.
    pub async fn record(
        &self,
        caller: &Caller,
        subject: &str,
        details: Details,
    ) -> Result<Receipt, AppendError> {
        self.append(Append::new(caller.actor(), subject, details)?)
            .await
    }

    /// Append a dock's signed event (the body of `POST /v1/events`): the
    /// envelope must be an event signed by the key registered with
    /// `caller`'s token, for an action docks may record; a
    /// `segment.ingested` event must carry its signed manifest in
    /// `details.manifest`. The same envelope sent again returns the first
    /// entry's receipt (`duplicate: true`) and adds nothing.
    pub async fn append_event(&self, caller: &Caller, body: &[u8]) -> Result<Receipt, EventError> {
        let envelope = Envelope::parse(body).map_err(EventError::Envelope)?;
        self.append_envelope(caller, envelope).await
    }

    /// [`Ledger::append_event`] for an envelope already parsed.
    pub async fn append_envelope(
        &self,
        caller: &Caller,
        envelope: Envelope,
    ) -> Result<Receipt, EventError> {
        let preverified = match (caller.role, &caller.key) {
            (Role::Dock, Some(key)) if self.inner.batch_signatures => {
                self.inner
                    .batcher
                    .preverify(key, &envelope, &self.inner.shared.metrics)
                    .await
            }
            _ => Preverified::default(),
        };
        let append = admit_event(caller, envelope, &preverified)?;
        let undocked = match (&append.typed, append.actor.kind) {
            (Details::RecorderUndocked(d), ActorKind::Dock) if d.incomplete.is_empty() => {
                Some(append.subject.clone())
            }
            _ => None,
        };
        let receipt = self.append(append).await?;
        if let Some(recorder) = undocked.filter(|_| !receipt.duplicate) {
            // The recorder's docking ended with every file done: judge its
            // footage, without making the dock wait (governance::settle).
            crate::governance::spawn_settle(self.clone(), recorder);
        }
        Ok(receipt)
    }

    /// Create a bearer token (and register a dock's key with it), recorded
    /// as a `token.created` entry by `creator`. Returns the token text, to
    /// be shown once.
    pub async fn create_token(
        &self,
        creator: Actor,
        role: Role,
        name: &str,
        key: Option<VerifierKey>,
    ) -> Result<NewToken, TokenError> {
        self.create_token_until(creator, role, name, key, None)
            .await
    }

    /// [`Ledger::create_token`] for a token that stops working at
    /// `expires_at` (none: no end).
    pub async fn create_token_until(
        &self,
        creator: Actor,
        role: Role,
        name: &str,
        key: Option<VerifierKey>,
        expires_at: Option<custos_core::manifest::Timestamp>,
    ) -> Result<NewToken, TokenError> {
        self.create_token_with_keys(creator, role, name, key.into_iter().collect(), expires_at)
            .await
    }

    /// [`Ledger::create_token_until`] registering several keys of one dock
    /// (one per suite it signs with: `custos token create --key A.pub --key
    /// B.pub`). The ledger then requires every signature of the dock's
    /// envelopes to be by one of these keys.
    pub async fn create_token_with_keys(
        &self,
        creator: Actor,
        role: Role,
        name: &str,
        keys: Vec<VerifierKey>,
        expires_at: Option<custos_core::manifest::Timestamp>,
    ) -> Result<NewToken, TokenError> {
        let mut keys = keys.into_iter();
        let key = keys.next();
        let more_keys: Vec<VerifierKey> = keys.collect();
        for (i, k) in more_keys.iter().enumerate() {
            let earlier = key.iter().chain(&more_keys[..i]);
            if earlier.clone().any(|e| e.key_id() == k.key_id()) {
                return Err(TokenError::DuplicateKey(k.key_id()));
            }
        }
        if !auth::valid_name(name) {
            return Err(TokenError::BadName(name.to_owned()));
        }
        if key.is_some() && role != Role::Dock {
            return Err(TokenError::KeyForNonDock(role));
        }
        let now = self.now();
        if let Some(end) = expires_at.filter(|end| *end <= now) {
            return Err(TokenError::AlreadyExpired(end));
        }
        let mut token = auth::generate_token(&mut rand_core::OsRng, role, name, key.as_ref(), now);
        token.record.expires_at = expires_at;
        token.record.more_keys = more_keys.iter().map(ToString::to_string).collect();
        let mut record = token.record.clone();
        let details = Details::TokenCreated(TokenCreated {
            role: role.as_str().to_owned(),
            token_id: record.id.clone(),
            secret_check: Some(record.secret_check()),
            expires_at: expires_at.map(|end| end.to_string()),
            key: key.as_ref().map(|k| k.to_string()),
            key_id: key.as_ref().map(|k| k.key_id()),
            more_keys: more_keys.iter().map(ToString::to_string).collect(),
        });
        let key_rows: Vec<DockKeyRecord> = key
            .iter()
            .chain(&more_keys)
            .map(|k| DockKeyRecord {
                dock: name.to_owned(),
                key: k.to_string(),
                token_id: record.id.clone(),
            })
            .collect();
        let append = Append::new(creator, name, details)?.guard(move |tx| {
            for row in key_rows {
                let key_id = row.key.split('+').take(2).collect::<Vec<_>>().join("+");
                if let Some(old) = tx.get_json::<DockKeyRecord>(DOCK_KEYS, key_id.as_bytes())? {
                    if old.dock != row.dock {
                        return Err(GuardError::Rejected(Rejection::new(
                            RejectionKind::Conflict,
                            "key_registered",
                            format!("key {key_id} is already registered to dock {:?}", old.dock),
                        )));
                    }
                    // The key stays registered with the token it came
                    // with first; a new token for the same dock and key
                    // adds nothing to the key table.
                } else {
                    tx.insert_json(DOCK_KEYS, key_id.as_bytes(), &row);
                }
            }
            record.created_seq = Some(tx.seq());
            tx.insert_json(TOKENS, record.id.as_bytes(), &record);
            Ok(())
        });
        self.append(append).await?;
        Ok(token)
    }

    /// Make sure `key` is registered to dock `dock` (a dock opened with
    /// this ledger in its own process, which needs no token): if the key is
    /// not registered yet, register it through [`Ledger::create_token`]
    /// (a `token.created` entry by `system` actor `dock-setup:<dock>`, so
    /// that the log itself says which key signs the dock's manifests and
    /// events; the token is never shown). A key already registered to this
    /// dock changes nothing; one registered to another dock is refused by
    /// `create_token`'s guard (409 `key_registered`), as for any token.
    pub async fn ensure_dock_key(&self, dock: &str, key: VerifierKey) -> Result<(), TokenError> {
        self.ensure_dock_keys(dock, vec![key]).await
    }

    /// [`Ledger::ensure_dock_key`] for a dock signing with several keys:
    /// nothing happens when every one of them is registered to `dock`
    /// already; otherwise one token registering all of them is created.
    pub async fn ensure_dock_keys(
        &self,
        dock: &str,
        keys: Vec<VerifierKey>,
    ) -> Result<(), TokenError> {
        let mut all_known = true;
        for key in &keys {
            let known = self
                .store()
                .table_get_json::<DockKeyRecord>(DOCK_KEYS, key.key_id().as_bytes())?;
            all_known &= known.is_some_and(|row| row.dock == dock);
        }
        if all_known && !keys.is_empty() {
            return Ok(());
        }
        let creator = Actor {
            kind: ActorKind::System,
            id: format!("dock-setup:{dock}"),
        };
        self.create_token_with_keys(creator, Role::Dock, dock, keys, None)
            .await
            .map(|_| ())
    }

    /// Revoke the tokens named `name` that are not revoked yet (only
    /// `token_id`, if given), recorded as one `token.revoked` entry by
    /// `revoker` whose details list their ids. Effective at once: the
    /// writer drops them from the token cache before this returns, so the
    /// next request with any of them is refused. A dock's key stays
    /// registered (its old signatures still verify).
    pub async fn revoke_token(
        &self,
        revoker: Actor,
        name: &str,
        token_id: Option<&str>,
    ) -> Result<(Receipt, Vec<String>), TokenError> {
        if !auth::valid_name(name) {
            return Err(TokenError::BadName(name.to_owned()));
        }
        let only = token_id.map(str::to_owned);
        // The tokens to revoke are chosen from the rows as they are now and
        // named in the entry; the guard refuses if any of them changed
        // before the writer got to it (revoked by someone else meanwhile).
        let mut ids: Vec<String> = auth::list_tokens(self.store())
            .map_err(|e| AppendError::Storage(e.to_string()))?
            .into_iter()
            .filter(|r| r.name == name && !r.revoked)
            .filter(|r| only.as_deref().is_none_or(|id| r.id == id))
            .map(|r| r.id)
            .collect();
        ids.sort();
        if ids.is_empty() {
            return Err(TokenError::NotFound {
                name: name.to_owned(),
                token_id: only,
            });
        }
        let details = Details::TokenRevoked(TokenRevoked {
            token_ids: ids.clone(),
        });
        let name_owned = name.to_owned();
        let to_revoke = ids.clone();
        let append = Append::new(revoker, name, details)?.guard(move |tx| {
                for id in &to_revoke {
                    let record = tx.get_json::<auth::TokenRecord>(TOKENS, id.as_bytes())?;
                    let Some(mut record) = record.filter(|r| r.name == name_owned && !r.revoked)
                    else {
                        return Err(GuardError::Rejected(Rejection::new(
                            RejectionKind::Conflict,
                            "token_changed",
                            format!(
                                "token {id} of {name_owned:?} was revoked meanwhile; nothing was changed"
                            ),
                        )));
                    };
                    record.revoked = true;
                    record.revoked_seq = Some(tx.seq());
                    tx.insert_json(TOKENS, id.as_bytes(), &record);
                }
                Ok(())
            });
        let receipt = self.append(append).await?;
        Ok((receipt, ids))
    }

    /// Every token, as it may be shown (no secret, no hash), by name then id.
    pub fn tokens(&self) -> Result<Vec<auth::TokenInfo>, StoreError> {
        let now = self.now();
        let mut list: Vec<_> = auth::list_tokens(self.store())?
            .iter()
            .map(|r| auth::TokenInfo::of(r, now))
            .collect();
        list.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
        Ok(list)
    }

    /// Check a bearer token's text and return who holds it.
    pub fn authenticate(&self, token: &str) -> Result<Caller, auth::AuthError> {
        self.inner
            .shared
            .tokens
            .authenticate(&self.inner.store, token, self.now())
    }

    // -----------------------------------------------------------------
    // Reads

    fn refuse_if_tampered(&self) -> Result<(), ReadError> {
        match self.refusal() {
            Some(t) => Err(ReadError::Refused(t)),
            None => Ok(()),
        }
    }

    /// The bytes of entry `seq`, checked against its stored leaf hash.
    /// A mismatch is reported, and from then on the ledger refuses to serve.
    pub fn entry(&self, seq: u64) -> Result<IVec, ReadError> {
        self.refuse_if_tampered()?;
        let size = self.published().size;
        if seq >= size {
            return Err(ReadError::OutOfRange(format!(
                "entry {seq} is not in the log of size {size}"
            )));
        }
        self.checked_entry(seq)
    }

    fn checked_entry(&self, seq: u64) -> Result<IVec, ReadError> {
        let tampered = |reason: &str| TamperError::Entry {
            index: seq,
            reason: reason.to_owned(),
        };
        let result = (|| {
            let bytes = self
                .inner
                .store
                .entry(seq)?
                .ok_or_else(|| tampered("it is missing, but the signed tree holds it"))?;
            let stored = self
                .inner
                .store
                .node(NodeId::leaf(seq))?
                .ok_or_else(|| tampered("its leaf node is missing"))?;
            if leaf_hash(&bytes) != stored {
                return Err(tampered("its bytes do not hash to its stored leaf").into());
            }
            Ok(bytes)
        })();
        if let Err(ReadError::Tampered(t)) = &result {
            self.inner.shared.set_tampered(t.clone());
        }
        result
    }

    /// Entries `[start, end)` of the published log, as `/v1/entries`
    /// lines. `end` is clamped to the published size and to
    /// [`MAX_ENTRIES_PER_PAGE`] entries after `start`; a caller that wants
    /// more asks again from where the answer stopped.
    pub fn entries(&self, start: u64, end: Option<u64>) -> Result<Vec<EntryLine>, ReadError> {
        let range = self.entry_range(start, end)?;
        let mut out = Vec::with_capacity((range.end - range.start) as usize);
        for seq in range {
            out.push(self.entry_line(seq)?);
        }
        Ok(out)
    }

    /// The page of entries [`Ledger::entries`] would serve for `start` and
    /// `end`, without reading them (`/v1/entries` streams them one by one
    /// with [`Ledger::entry_line`]).
    pub fn entry_range(
        &self,
        start: u64,
        end: Option<u64>,
    ) -> Result<std::ops::Range<u64>, ReadError> {
        self.refuse_if_tampered()?;
        let size = self.published().size;
        if start > size {
            return Err(ReadError::OutOfRange(format!(
                "start {start} is beyond the log's size {size}"
            )));
        }
        let end = end
            .unwrap_or(size)
            .min(size)
            .min(start.saturating_add(MAX_ENTRIES_PER_PAGE));
        if end < start {
            return Err(ReadError::OutOfRange(format!(
                "end {end} is before start {start}"
            )));
        }
        Ok(start..end)
    }

    /// Entry `seq` of the published log as a `/v1/entries` line, checked
    /// against its stored leaf hash.
    pub fn entry_line(&self, seq: u64) -> Result<EntryLine, ReadError> {
        let bytes = self.entry(seq)?;
        EntryLine::new(seq, &bytes).map_err(|e| {
            let t = TamperError::Entry {
                index: seq,
                reason: e.why.into(),
            };
            self.inner.shared.set_tampered(t.clone());
            ReadError::Tampered(t)
        })
    }

    /// The inclusion proof of entry `index` in the tree of `size` entries
    /// (`size` at most the published size).
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<InclusionProof, ReadError> {
        self.refuse_if_tampered()?;
        let published = self.published().size;
        if size > published {
            return Err(ReadError::OutOfRange(format!(
                "size {size} is beyond the published tree size {published}"
            )));
        }
        let hashes =
            inclusion_proof(&self.inner.store.nodes(), index, size).map_err(proof_error)?;
        Ok(InclusionProof {
            index,
            size,
            hashes,
        })
    }

    /// The signed checkpoint (C2SP signed note, as `/v1/checkpoint` serves
    /// one) of the tree of the first `size` entries, `size` at most the
    /// published size: its root is computed from the stored tree (O(log
    /// size) node reads) and signed with the ledger key. An export's bundle
    /// carries the one at its export entry's `seq + 1`.
    pub fn checkpoint_at(&self, size: u64) -> Result<String, ReadError> {
        self.refuse_if_tampered()?;
        let published = self.published();
        if size > published.size {
            return Err(ReadError::OutOfRange(format!(
                "size {size} is beyond the published tree size {}",
                published.size
            )));
        }
        let root = if size == published.size {
            published.root
        } else {
            custos_core::merkle::root_at(&self.inner.store.nodes(), size)?
        };
        let checkpoint = Checkpoint::new(&self.inner.origin, size, root)
            .map_err(|e| ReadError::OutOfRange(format!("the checkpoint of size {size}: {e}")))?;
        Ok(checkpoint.sign(&self.inner.signer))
    }

    /// The consistency proof from the tree of `from` entries to the tree of
    /// `to` entries (`to` at most the published size).
    pub fn consistency_proof(&self, from: u64, to: u64) -> Result<ConsistencyProof, ReadError> {
        self.refuse_if_tampered()?;
        let published = self.published().size;
        if to > published {
            return Err(ReadError::OutOfRange(format!(
                "size {to} is beyond the published tree size {published}"
            )));
        }
        let hashes = consistency_proof(&self.inner.store.nodes(), from, to).map_err(proof_error)?;
        Ok(ConsistencyProof { from, to, hashes })
    }

    /// A segment's catalogue record.
    pub fn segment(&self, id: &str) -> Result<Option<SegmentRecord>, ReadError> {
        self.refuse_if_tampered()?;
        Ok(catalogue::segment(&self.inner.store, id)?)
    }

    /// Search the catalogue.
    pub fn search(&self, query: &SegmentQuery) -> Result<Vec<SegmentRecord>, SearchError> {
        catalogue::search(&self.inner.store, query)
    }

    /// Every published entry about a segment, each with its inclusion proof
    /// against the current checkpoint; `None` for an unknown segment.
    pub fn custody(&self, id: &str) -> Result<Option<Custody>, ReadError> {
        self.refuse_if_tampered()?;
        if catalogue::segment(&self.inner.store, id)?.is_none() {
            return Ok(None);
        }
        let published = self.published();
        let mut entries = Vec::new();
        for seq in catalogue::segment_entries(&self.inner.store, id)? {
            if seq >= published.size {
                continue;
            }
            let bytes = self.checked_entry(seq)?;
            let line = EntryLine::new(seq, &bytes).map_err(|e| {
                ReadError::Tampered(TamperError::Entry {
                    index: seq,
                    reason: e.why.into(),
                })
            })?;
            let hashes = inclusion_proof(&self.inner.store.nodes(), seq, published.size)
                .map_err(proof_error)?;
            entries.push(ProvenEntry {
                seq: line.seq,
                raw: line.raw,
                entry: line.entry,
                proof: InclusionProof {
                    index: seq,
                    size: published.size,
                    hashes,
                },
            });
        }
        Ok(Some(Custody {
            segment_id: id.to_owned(),
            checkpoint: published.checkpoint.to_string(),
            size: published.size,
            entries,
        }))
    }

    /// Verify the whole published log against its entries
    /// ([`check::verify_all`]): blocking, O(n). On tampering the ledger
    /// stops serving and appending, and the error names the entry.
    pub fn verify_all(&self) -> Result<u64, CheckError> {
        let published = self.published();
        let result = check::verify_all(&self.inner.store, published.size, &published.root);
        if let Err(CheckError::Tampered(t)) = &result {
            self.inner.shared.set_tampered(t.clone());
        }
        result.map(|()| published.size)
    }

    /// Run [`Ledger::verify_all`] on a background thread; the service
    /// starts it after every start-up so that a change anywhere in the log,
    /// not only in the start-up window, stops the service within seconds.
    pub fn spawn_verify_all(&self) -> std::io::Result<JoinHandle<Result<u64, CheckError>>> {
        let ledger = self.clone();
        self.set_full_check("running");
        std::thread::Builder::new()
            .name("custos-ledger-verify".into())
            .spawn(move || {
                let started = Instant::now();
                let result = ledger.verify_all();
                ledger.set_full_check(if result.is_ok() { "passed" } else { "failed" });
                match &result {
                    Ok(size) => tracing::info!(
                        size,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "full log verification passed"
                    ),
                    Err(e) => tracing::error!(error = %e, "full log verification failed"),
                }
                result
            })
    }
}

/// Turn a proof computation error into a read error.
fn proof_error(e: ProofError<ReadError>) -> ReadError {
    match e {
        ProofError::Source(r) => r,
        other => ReadError::OutOfRange(other.to_string()),
    }
}

/// Load the stored tree state and checkpoint, or initialise an empty log.
/// The `ledger.key_added` and `ledger.key_retired` entries that bring the
/// record up to `keys`: a configured key that did not sign the stored
/// checkpoint is added; a key that signed it and is no longer configured
/// is retired.
fn key_changes(checkpoint: &str, keys: &KeySet, origin: &str) -> Result<Vec<Append>, OpenError> {
    use custos_core::entry::details::{LedgerKeyAdded, LedgerKeyRetired};
    let note = custos_core::note::SignedNote::parse(checkpoint.as_bytes())
        .map_err(|e| TamperError::Tree(format!("the stored checkpoint is malformed: {e}")))?;
    let signed = note.signatures();
    let configured = keys.verifier_keys();
    let actor = Actor {
        kind: ActorKind::Ledger,
        id: "keys".into(),
    };
    let mut out = Vec::new();
    let invalid = |e: AppendError| OpenError::KeyChange(e.to_string());
    for k in &configured {
        if !signed
            .iter()
            .any(|s| s.name() == k.name() && s.key_hash() == k.key_hash())
        {
            let details = Details::LedgerKeyAdded(LedgerKeyAdded {
                key: k.to_string(),
                key_id: k.key_id(),
            });
            out.push(Append::new(actor.clone(), origin, details).map_err(invalid)?);
        }
    }
    for s in signed {
        if !configured
            .iter()
            .any(|k| s.name() == k.name() && s.key_hash() == k.key_hash())
        {
            let details = Details::LedgerKeyRetired(LedgerKeyRetired { key_id: s.key_id() });
            out.push(Append::new(actor.clone(), origin, details).map_err(invalid)?);
        }
    }
    Ok(out)
}

fn load_or_init(
    store: &Store,
    key: &KeySet,
    origin: &str,
) -> Result<(CompactRange, String), OpenError> {
    match store.get(layout::META_FORMAT)? {
        Some(format) if format.as_ref() != layout::FORMAT_VERSION => {
            return Err(OpenError::Format {
                found: String::from_utf8_lossy(&format).into_owned(),
                expected: String::from_utf8_lossy(layout::FORMAT_VERSION).into_owned(),
            })
        }
        Some(_) => {}
        None => {
            if store.last_entry_seq()?.is_some() || store.get(layout::META_TREE)?.is_some() {
                return Err(TamperError::Tree(
                    "entries are stored but the format marker is missing".into(),
                )
                .into());
            }
            let range = CompactRange::new();
            let checkpoint = Checkpoint::new(origin, 0, range.root())
                .map_err(|error| OpenError::Origin {
                    origin: origin.to_owned(),
                    error,
                })?
                .sign(key);
            let mut batch = sled::Batch::default();
            batch.insert(layout::META_FORMAT, layout::FORMAT_VERSION);
            batch.insert(layout::META_TREE, range.to_bytes());
            batch.insert(layout::META_CHECKPOINT, checkpoint.as_bytes());
            store.tree().apply_batch(batch).map_err(StoreError::from)?;
            store.flush()?;
            return Ok((range, checkpoint));
        }
    }
    let tree = store
        .get(layout::META_TREE)?
        .ok_or_else(|| TamperError::Tree("the stored tree state is missing".into()))?;
    let range = CompactRange::from_bytes(&tree)
        .map_err(|e| TamperError::Tree(format!("the stored tree state is malformed: {e}")))?;
    let checkpoint = store
        .get(layout::META_CHECKPOINT)?
        .ok_or_else(|| TamperError::Tree("the stored checkpoint is missing".into()))?;
    let checkpoint = String::from_utf8(checkpoint.to_vec())
        .map_err(|_| TamperError::Tree("the stored checkpoint is not UTF-8".into()))?;
    Ok((range, checkpoint))
}

/// Step 1 of the append path for a dock's event: verify, check, wrap.
/// `preverified` holds what a batch verification already established
/// ([`crate::verify`]); every other signature is verified here.
fn admit_event(
    caller: &Caller,
    envelope: Envelope,
    preverified: &Preverified,
) -> Result<Append, EventError> {
    if caller.role != Role::Dock {
        return Err(EventError::NotADock(caller.role));
    }
    let key = caller
        .key
        .as_ref()
        .ok_or_else(|| EventError::NoKey(caller.name.clone()))?;
    let keys = caller.keys();
    // Every signature must be by a key registered to this dock and verify:
    // a good Ed25519 signature does not carry a bad or foreign SM2 one.
    let opened = envelope
        .check_signers(&keys)
        .map_err(EntryError::Dsse)
        .and_then(|()| {
            Event::open_with(&envelope, &keys, &mut |key, message, sig| {
                preverified.check(key, message, sig)
            })
        })
        .map_err(|e| match e {
            EntryError::Dsse(DsseError::UntrustedSignature { keyid }) => EventError::UnknownKey {
                dock: caller.name.clone(),
                expected: keys
                    .iter()
                    .map(VerifierKey::key_id)
                    .collect::<Vec<_>>()
                    .join(", "),
                found: vec![keyid],
            },
            EntryError::Dsse(DsseError::NoTrustedSignature { keyids }) => EventError::UnknownKey {
                dock: caller.name.clone(),
                expected: key.key_id(),
                found: keyids,
            },
            EntryError::Dsse(DsseError::BadSignature { keyid, source }) => {
                EventError::BadSignature(format!(
                    "the signature by {keyid} does not verify: {source}"
                ))
            }
            EntryError::Dsse(DsseError::WrongPayloadType { found, .. }) => {
                EventError::WrongPayloadType { found }
            }
            EntryError::Dsse(other) => EventError::Envelope(other),
            other => EventError::BadEvent(other.to_string()),
        })?;
    let event = opened.event;
    let action = event.action.as_str().to_owned();
    if !auth::dock_may(&action) {
        return Err(EventError::ActionForbidden(action));
    }
    // The details are read once, here, by their action's type; an event
    // whose details do not fit is refused before it reaches the writer.
    let typed = event.parsed_details().map_err(|e| {
        if action == actions::SEGMENT_INGESTED {
            EventError::BadManifest(e.to_string())
        } else {
            EventError::BadEvent(e.to_string())
        }
    })?;
    let manifest = if let Details::SegmentIngested(SegmentIngested { manifest, .. }) = &typed {
        if let Err(e) = manifest.check_signers(&keys) {
            return Err(EventError::BadManifest(format!(
                "the manifest envelope does not verify under the dock's keys: {e}"
            )));
        }
        let signed = SignedManifest::open(manifest.clone(), &keys).map_err(|e| {
            EventError::BadManifest(match e {
                ManifestError::Dsse(d) => {
                    format!("the manifest envelope does not verify under the dock's key: {d}")
                }
                other => other.to_string(),
            })
        })?;
        if signed.manifest.segment_id != event.subject {
            return Err(EventError::BadManifest(format!(
                "the manifest is for segment {:?} but the event's subject is {:?}",
                signed.manifest.segment_id, event.subject
            )));
        }
        Some(Box::new(signed.manifest))
    } else {
        None
    };
    let envelope_json = envelope.to_json();
    let digest: [u8; 32] = Sha256::digest(&envelope_json).into();
    let mut append = Append::with(caller.actor(), event.subject, event.details, typed)?;
    append.envelope = Some(envelope);
    append.dedup = Some(digest);
    append.manifest = manifest;
    append.prepare(Some(&envelope_json))?;
    Ok(append)
}
