//! Publishing the log as C2SP tlog-tiles in an object store (`[ledger]
//! tiles_url`), so that anyone can check it from static files, without a
//! token or the API.
//!
//! The tiles are derived state: sled stays the sequencer and the only
//! record; everything here can be written again from it at any time. The
//! layout and the contents are [`custos_core::tiles`]'s.
//!
//! # The life of a publication
//!
//! Once per [`PublishOptions::interval`] at most, while entries arrive:
//!
//! 1. **Snapshot.** Take the ledger's published state (size `n`, its signed
//!    checkpoint): everything below `n` is durable, and the checkpoint is
//!    for exactly `n`.
//! 2. **Bundles and tiles.** Write every entry bundle and hash tile the tree
//!    of `n` has and the last published one did not
//!    ([`custos_core::tiles::new_bundles`], [`custos_core::tiles::new_tiles`]).
//!    Each is written once with its one content: a conditional create, and
//!    where the key exists already, the stored bytes are read and must be
//!    the same (a crash between steps 2 and 3 left them there). *Crash
//!    here:* some tiles of `n` exist with no checkpoint naming them; readers
//!    still follow the old checkpoint, whose tiles are all there.
//! 3. **Checkpoint.** Read the stored `checkpoint`: it must be the one this
//!    publisher last wrote (or found at start). Write the new one — a
//!    conditional update on the version read where the store honours it —
//!    and read it back: it must be ours. Anything else means a second
//!    writer: the publisher logs an error and stops publishing rather than
//!    overwrite. *Crash here:* the old or the new checkpoint is there, and
//!    every tile either names is there (step 2 came first).
//!
//! **Invariant:** a checkpoint is written only after every tile and bundle
//! it covers.
//!
//! **Witnesses.** With a [`Cosigner`] ([`PublishOptions::cosigner`]), the
//! checkpoint of step 3 is first submitted to the witnesses, and written
//! with the cosignatures that came back in time (possibly none: a witness
//! that is down delays a publication by its timeout at most, and never an
//! append, which does not wait for the publisher). The written note is
//! then [`Ledger::cosigned_checkpoint`], which `GET /v1/checkpoint` and
//! exports use.
//!
//! At start-up the publisher lists the store's `tile/` objects, checks that
//! a stored checkpoint is one of this log's (same origin, a size this
//! ledger has, the root this ledger's tree has at that size: not a second
//! writer's), writes every tile and bundle of the ledger's tree that is
//! missing — all of them after the tiles were lost — and then a checkpoint.
//!
//! # What this module must never do
//!
//! Write a checkpoint before the tiles it covers, write a tile or bundle
//! with bytes other than those already stored under its name, or
//! overwrite a checkpoint that someone else wrote.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use custos_core::checkpoint::Checkpoint;
use custos_core::note::SignedNote;
use custos_core::tiles::{
    bundles, encode_bundle, encode_tile, new_bundles, new_tiles, tile_hashes, tiles, BundleId,
    TileError, TileId, CHECKPOINT_PATH,
};
use futures::{StreamExt as _, TryStreamExt as _};
use object_store::path::Path;
use object_store::{
    ObjectStore, ObjectStoreExt as _, PutMode, PutOptions, PutPayload, UpdateVersion,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::ReadError;
use crate::ledger::{Ledger, Published};

/// How many tiles and bundles are written at once.
const WRITES_IN_FLIGHT: usize = 8;

/// Where and how often the ledger publishes its tiles.
#[derive(Debug, Clone)]
pub struct PublishOptions {
    /// The store the tiles go to (a prefix already applied).
    pub store: Arc<dyn ObjectStore>,
    /// Its URL, for messages.
    pub url: String,
    /// At most one checkpoint per this long (`[ledger] checkpoint_interval`).
    pub interval: Duration,
    /// Who collects witnesses' cosignatures on each new checkpoint.
    pub cosigner: Option<Arc<dyn Cosigner>>,
}

/// Collects witnesses' cosignatures on a checkpoint the ledger is about to
/// publish (implemented over HTTP by custos-server).
pub trait Cosigner: Send + Sync + std::fmt::Debug {
    /// The signed checkpoint `note` (of `ledger`'s tree at its size) with
    /// the cosignatures collected within the witnesses' timeout added.
    /// Never fails: a witness that does not answer is left out (and warned
    /// about by the implementation).
    fn cosign<'a>(
        &'a self,
        ledger: &'a Ledger,
        note: &'a str,
    ) -> futures::future::BoxFuture<'a, String>;

    /// The witnesses' keys and the quorum an export's policy requires.
    fn witnesses(&self) -> (Vec<custos_core::cosignature::CosignerKey>, usize);
}

/// Why a publication failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The store failed (the next interval tries again).
    #[error("tiles store {path}: {source}")]
    Store {
        /// The object.
        path: String,
        /// The store's error.
        source: object_store::Error,
    },
    /// The ledger could not be read.
    #[error("reading the ledger: {0}")]
    Read(#[from] ReadError),
    /// An entry or tile could not be encoded.
    #[error("{0}")]
    Tile(#[from] TileError),
    /// The blocking task that read the ledger panicked or was cancelled.
    #[error("reading the ledger for the tiles: {0}")]
    Task(String),
    /// Someone else writes to the same place: publishing stops.
    #[error("another writer publishes to this tiles store: {0}; this ledger stops publishing there (nothing was overwritten)")]
    SecondWriter(String),
}

impl PublishError {
    /// Whether publishing must stop (a second writer) rather than retry.
    pub fn is_fatal(&self) -> bool {
        matches!(self, PublishError::SecondWriter(_))
    }
}

fn store_error(path: &str) -> impl FnOnce(object_store::Error) -> PublishError + '_ {
    move |source| PublishError::Store {
        path: path.to_owned(),
        source,
    }
}

/// The stored checkpoint as last read.
#[derive(Debug, Clone)]
struct Stored {
    bytes: Bytes,
    version: UpdateVersion,
}

/// Publishes one ledger's tiles to one store; [`Publisher::start`] then
/// [`Publisher::publish`] as often as wanted.
#[derive(Debug)]
pub struct Publisher {
    ledger: Ledger,
    store: Arc<dyn ObjectStore>,
    /// The size the last checkpoint written (or found at start) covers.
    size: u64,
    /// What the store's checkpoint held when this publisher last read or
    /// wrote it (`None`: there was none).
    stored: Option<Stored>,
    /// The witnesses, if any.
    cosigner: Option<Arc<dyn Cosigner>>,
}

impl Publisher {
    /// Check the store's checkpoint, write whatever tiles and bundles of
    /// the ledger's tree are missing, and the checkpoint (the start-up
    /// described in the module documentation).
    pub async fn start(
        ledger: Ledger,
        store: Arc<dyn ObjectStore>,
        cosigner: Option<Arc<dyn Cosigner>>,
    ) -> Result<Publisher, PublishError> {
        let mut publisher = Publisher {
            ledger,
            store,
            size: 0,
            stored: None,
            cosigner,
        };
        publisher.stored = publisher.read_checkpoint().await?;
        if let Some(stored) = &publisher.stored {
            publisher.check_ours(&stored.bytes)?;
        }
        let snapshot = publisher.ledger.published();
        let present = publisher.list_tiles().await?;
        let missing_bundles: Vec<BundleId> = bundles(snapshot.size)
            .filter(|b| !present.contains(&b.path()))
            .collect();
        let missing_tiles: Vec<TileId> = tiles(snapshot.size)
            .filter(|t| !present.contains(&t.path()))
            .collect();
        if !missing_bundles.is_empty() || !missing_tiles.is_empty() {
            tracing::info!(
                bundles = missing_bundles.len(),
                tiles = missing_tiles.len(),
                size = snapshot.size,
                "writing the missing tiles of the log"
            );
        }
        publisher.write_all(missing_bundles, missing_tiles).await?;
        publisher.write_checkpoint(&snapshot).await?;
        Ok(publisher)
    }

    /// The size the last checkpoint written covers.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Publish the ledger's current tree if it grew: steps 1 to 3 of the
    /// module documentation. Returns the size published, if any.
    pub async fn publish(&mut self) -> Result<Option<u64>, PublishError> {
        let snapshot = self.ledger.published();
        if snapshot.size <= self.size {
            return Ok(None);
        }
        let bundles = new_bundles(self.size, snapshot.size).collect();
        let tiles = new_tiles(self.size, snapshot.size).collect();
        self.write_all(bundles, tiles).await?;
        self.write_checkpoint(&snapshot).await?;
        Ok(Some(snapshot.size))
    }

    /// Every object under `tile/`.
    async fn list_tiles(&self) -> Result<HashSet<String>, PublishError> {
        let prefix = Path::from("tile");
        self.store
            .list(Some(&prefix))
            .map_ok(|meta| meta.location.to_string())
            .try_collect()
            .await
            .map_err(store_error("tile/"))
    }

    /// Step 2: bundles, then tiles level by level (the order a reader needs
    /// them in does not matter: the checkpoint comes after all of them).
    async fn write_all(
        &self,
        bundles: Vec<BundleId>,
        tiles: Vec<TileId>,
    ) -> Result<(), PublishError> {
        for chunk in bundles.chunks(WRITES_IN_FLIGHT * 4) {
            let ledger = self.ledger.clone();
            let chunk = chunk.to_vec();
            let contents = tokio::task::spawn_blocking(move || {
                chunk
                    .into_iter()
                    .map(|b| Ok((b.path(), bundle_bytes(&ledger, b)?)))
                    .collect::<Result<Vec<_>, PublishError>>()
            })
            .await
            .map_err(|e| PublishError::Task(e.to_string()))??;
            self.put_all(contents).await?;
        }
        for chunk in tiles.chunks(WRITES_IN_FLIGHT * 4) {
            let ledger = self.ledger.clone();
            let chunk = chunk.to_vec();
            let contents = tokio::task::spawn_blocking(move || {
                chunk
                    .into_iter()
                    .map(|t| {
                        let hashes = tile_hashes(&ledger.store().nodes(), t)?;
                        Ok((t.path(), Bytes::from(encode_tile(&hashes))))
                    })
                    .collect::<Result<Vec<_>, PublishError>>()
            })
            .await
            .map_err(|e| PublishError::Task(e.to_string()))??;
            self.put_all(contents).await?;
        }
        Ok(())
    }

    async fn put_all(&self, contents: Vec<(String, Bytes)>) -> Result<(), PublishError> {
        futures::stream::iter(contents)
            .map(|(path, bytes)| self.put_immutable(path, bytes))
            .buffer_unordered(WRITES_IN_FLIGHT)
            .try_collect::<()>()
            .await
    }

    /// Write `bytes` under `path` unless it is there: a conditional create;
    /// an existing object must hold the same bytes.
    async fn put_immutable(&self, path: String, bytes: Bytes) -> Result<(), PublishError> {
        let location = Path::from(path.as_str());
        let create = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .store
            .put_opts(&location, PutPayload::from(bytes.clone()), create)
            .await
        {
            Ok(_) => Ok(()),
            Err(object_store::Error::AlreadyExists { .. }) => {
                let stored = self
                    .store
                    .get(&location)
                    .await
                    .map_err(store_error(&path))?
                    .bytes()
                    .await
                    .map_err(store_error(&path))?;
                if stored == bytes {
                    Ok(())
                } else {
                    Err(PublishError::SecondWriter(format!(
                        "{path} holds other bytes than this ledger's"
                    )))
                }
            }
            Err(object_store::Error::NotImplemented { .. }) => self
                .store
                .put(&location, PutPayload::from(bytes))
                .await
                .map(|_| ())
                .map_err(store_error(&path)),
            Err(e) => Err(store_error(&path)(e)),
        }
    }

    async fn read_checkpoint(&self) -> Result<Option<Stored>, PublishError> {
        let location = Path::from(CHECKPOINT_PATH);
        match self.store.get(&location).await {
            Ok(got) => {
                let version = UpdateVersion {
                    e_tag: got.meta.e_tag.clone(),
                    version: got.meta.version.clone(),
                };
                let bytes = got.bytes().await.map_err(store_error(CHECKPOINT_PATH))?;
                Ok(Some(Stored { bytes, version }))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_error(CHECKPOINT_PATH)(e)),
        }
    }

    /// A checkpoint found in the store must be this log's: the same
    /// origin, a size this ledger has published and this ledger's root at
    /// that size. (Its signature is not what matters: a checkpoint signed
    /// by an older key of this ledger is as good.)
    fn check_ours(&self, bytes: &[u8]) -> Result<(), PublishError> {
        let foreign = |why: String| PublishError::SecondWriter(format!("its checkpoint {why}"));
        let note =
            SignedNote::parse(bytes).map_err(|e| foreign(format!("is not a signed note: {e}")))?;
        let checkpoint =
            Checkpoint::parse(note.text()).map_err(|e| foreign(format!("does not read: {e}")))?;
        if checkpoint.origin() != self.ledger.origin() {
            return Err(foreign(format!(
                "is for log {:?}, this ledger is {:?}",
                checkpoint.origin(),
                self.ledger.origin()
            )));
        }
        let size = self.ledger.published().size;
        if checkpoint.size() > size {
            return Err(foreign(format!(
                "has {} entries, this ledger {size}",
                checkpoint.size()
            )));
        }
        let root = custos_core::merkle::root_at(&self.ledger.store().nodes(), checkpoint.size())?;
        if root != checkpoint.root() {
            return Err(foreign(format!(
                "of size {} has another root than this ledger's tree (a fork)",
                checkpoint.size()
            )));
        }
        Ok(())
    }

    /// Step 3 of the module documentation.
    async fn write_checkpoint(&mut self, snapshot: &Published) -> Result<(), PublishError> {
        let location = Path::from(CHECKPOINT_PATH);
        let now = self.read_checkpoint().await?;
        let unchanged = match (&now, &self.stored) {
            (None, None) => true,
            (Some(a), Some(b)) => a.bytes == b.bytes,
            _ => false,
        };
        if !unchanged {
            return Err(PublishError::SecondWriter(
                "the stored checkpoint changed since this ledger last wrote it".into(),
            ));
        }
        let note: String = match &self.cosigner {
            Some(c) => c.cosign(&self.ledger, &snapshot.checkpoint).await,
            None => snapshot.checkpoint.to_string(),
        };
        let text = Bytes::from(note.clone().into_bytes());
        let mode = match &now {
            None => PutMode::Create,
            Some(s) if s.version.e_tag.is_some() || s.version.version.is_some() => {
                PutMode::Update(s.version.clone())
            }
            Some(_) => PutMode::Overwrite,
        };
        let put = self
            .store
            .put_opts(
                &location,
                PutPayload::from(text.clone()),
                PutOptions {
                    mode,
                    ..PutOptions::default()
                },
            )
            .await;
        match put {
            Ok(_) => {}
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => {
                return Err(PublishError::SecondWriter(
                    "the store refused the conditional write of the checkpoint".into(),
                ))
            }
            Err(object_store::Error::NotImplemented { .. }) => {
                self.store
                    .put(&location, PutPayload::from(text.clone()))
                    .await
                    .map_err(store_error(CHECKPOINT_PATH))?;
            }
            Err(e) => return Err(store_error(CHECKPOINT_PATH)(e)),
        }
        let back = self.read_checkpoint().await?;
        match back {
            Some(s) if s.bytes == text => {
                self.stored = Some(s);
                self.size = snapshot.size;
                self.ledger.set_cosigned(note.into());
                Ok(())
            }
            _ => Err(PublishError::SecondWriter(
                "the checkpoint read back is not the one just written".into(),
            )),
        }
    }
}

/// The bytes of entry bundle `id`, from the ledger's checked entries.
fn bundle_bytes(ledger: &Ledger, id: BundleId) -> Result<Bytes, PublishError> {
    let entries = (0..u64::from(id.width()))
        .map(|i| ledger.entry(id.first_seq() + i))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Bytes::from(encode_bundle(
        entries.iter().map(|e| e.as_ref()),
    )?))
}

/// The publisher's task and its stop signal (see [`spawn`]).
#[derive(Debug)]
pub struct PublisherTask {
    /// Created by [`spawn`]; sending `true` (or dropping it) stops the task
    /// after one last publication.
    stop: watch::Sender<bool>,
    /// The task; ends when stopped or when a second writer was found.
    task: JoinHandle<()>,
}

impl PublisherTask {
    /// Publish what the ledger holds one last time and stop.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Start publishing `ledger` per `options` on a task of its own: the
/// start-up catch-up, then one publication per interval while the ledger
/// grows. A store error is logged and retried at the next interval; a
/// second writer is logged as an error and ends publishing.
pub fn spawn(ledger: Ledger, options: PublishOptions) -> PublisherTask {
    let (stop, mut stopped) = watch::channel(false);
    let every = options.interval.max(Duration::from_millis(10));
    let url = options.url.clone();
    if let Some(cosigner) = &options.cosigner {
        let (witnesses, quorum) = cosigner.witnesses();
        match custos_core::policy::Policy::new(
            ledger.verifier_keys(),
            witnesses.into_iter().map(|w| (w, None)).collect(),
            quorum,
        ) {
            Ok(policy) => {
                ledger.set_witness_policy(policy.with_origin(Some(ledger.origin().to_owned())))
            }
            Err(error) => tracing::error!(%error, "witnesses: no policy for exports"),
        }
    }
    let task = tokio::spawn(async move {
        let mut publisher = loop {
            match Publisher::start(
                ledger.clone(),
                options.store.clone(),
                options.cosigner.clone(),
            )
            .await
            {
                Ok(p) => break p,
                Err(error) if error.is_fatal() => {
                    tracing::error!(tiles = %url, %error, "tiles: not publishing");
                    return;
                }
                Err(error) => {
                    tracing::warn!(tiles = %url, %error, "tiles: start-up publication failed; retrying");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stopped.changed() => return,
            }
        };
        tracing::info!(tiles = %url, size = publisher.size(), "tiles: published");
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let last = tokio::select! {
                _ = ticker.tick() => false,
                _ = stopped.changed() => true,
            };
            match publisher.publish().await {
                Ok(Some(size)) => tracing::debug!(tiles = %url, size, "tiles: published"),
                Ok(None) => {}
                Err(error) if error.is_fatal() => {
                    tracing::error!(tiles = %url, %error, "tiles: publishing stopped");
                    return;
                }
                Err(error) => {
                    tracing::warn!(tiles = %url, %error, "tiles: publication failed; retrying")
                }
            }
            if last {
                return;
            }
        }
    });
    PublisherTask { stop, task }
}
