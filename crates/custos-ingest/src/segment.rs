//! [`ingest_segment`]: one segment, read once, hashed and stored.
//!
//! The steps, and what a failure at each leaves behind:
//!
//! 1. **Look at the key** (HEAD). If an object is there, the segment is
//!    read and hashed without uploading anything, then compared with the
//!    stored object (size, then SHA-256 of the object read back): equal
//!    means an earlier attempt already stored it (an idempotent retry);
//!    different means the key is taken and the ingest is refused. Nothing
//!    is written either way.
//! 2. **Read the first part.** If the source ends before the part is full,
//!    the segment is hashed and stored with one conditional put
//!    (`PutMode::Create`, falling back to a plain put on stores without
//!    conditional puts, after step 1's check). A store that honours the
//!    condition and already has the key sends us to the comparison of
//!    step 1. A failure stores nothing.
//! 3. **Multipart.** Parts are read into buffers, each buffer goes to the
//!    hashing thread and to an upload task at once (no copy), at most
//!    `parts_in_flight` alive. A failed part is resent from its buffer. Any
//!    failure aborts the upload: nothing is visible at the key, and if the
//!    abort itself fails (store down) the error names the orphaned upload.
//! 4. **Check the key again** just before completing: if another writer
//!    stored an object meanwhile, the upload is aborted and the segment is
//!    compared with that object as in step 1.
//! 5. **Complete.** The object appears at the key, whole.
//!
//! Why HEAD and compare rather than trusting the store: Garage accepts
//! `If-None-Match: *` and overwrites anyway (DESIGN.md, "Real components"),
//! and multipart completion has no conditional form in object_store. The
//! check-then-write window between steps 4 and 5 remains on such stores; it
//! is one request long, and Custos never has two writers for one key (the
//! key names the recorder and its file, and a recorder sits in one slot).
//!
//! This module must never read the source twice, and never write to a key
//! that holds other bytes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use custos_core::digest::{Digest, Digests, MultiHasher};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStoreExt, PutMode, PutOptions, PutPayload, PutResult};
use tokio::io::AsyncRead;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::buffers::{AsyncSource, Chunk, ChunkPool, FileSource, Part, PartSource};
use crate::error::{IngestError, KeyTakenReason, OrphanedUpload};
use crate::hasher::{Hashed, HasherDied, Hashing};
use crate::options::{IngestOptions, S3_MAX_PARTS};

/// Bytes read, and handed to the hasher, at a time: 1 MiB, so that a chunk
/// is hashed while it is still in the processor's cache.
const CHUNK_SIZE: usize = 1024 * 1024;

/// Part size for stores without S3's 5 MiB minimum (the local filesystem,
/// memory): one chunk, so each part is written while it is still in cache.
const LOCAL_PART_SIZE: usize = CHUNK_SIZE;

/// Parts in flight for those stores, within the same memory budget.
const LOCAL_PARTS_IN_FLIGHT: usize = 8;

/// The sizes one ingest actually uses, from its options and its store.
#[derive(Debug, Clone, Copy)]
struct Plan {
    part_size: usize,
    chunk_size: usize,
    parts_in_flight: usize,
    max_parts: Option<usize>,
}

impl Plan {
    fn new(opts: &IngestOptions, store: &IngestStore) -> Plan {
        let small = store.accepts_small_parts();
        let (part_size, parts_in_flight) = if small && opts.part_size > LOCAL_PART_SIZE {
            let budget = opts.part_size.saturating_mul(opts.parts_in_flight);
            let n = (budget / LOCAL_PART_SIZE)
                .min(LOCAL_PARTS_IN_FLIGHT)
                .max(opts.parts_in_flight);
            (LOCAL_PART_SIZE, n)
        } else {
            (opts.part_size, opts.parts_in_flight)
        };
        Plan {
            part_size,
            chunk_size: CHUNK_SIZE.min(part_size),
            parts_in_flight,
            max_parts: (!small).then_some(S3_MAX_PARTS),
        }
    }
}
use crate::local;
use crate::progress::{Progress, ProgressSink};
use crate::retry::with_retry;
use crate::store::IngestStore;
use crate::upload::{OpenUpload, PartDone, PartFuture};
use crate::verify::read_back;

/// What an ingest achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IngestOutcome {
    /// The object key.
    pub key: Path,
    /// Bytes in the segment (and in the object).
    pub size: u64,
    /// Digests of the bytes read from the source.
    pub digests: Digests,
    /// The store's ETag of the object, where it gives one.
    pub e_tag: Option<String>,
    /// The store's version id of the object, where versioning is on.
    pub version: Option<String>,
    /// Parts of the multipart upload; 0 for a single put, a local file
    /// written directly into the local store, or when nothing was
    /// uploaded.
    pub parts: usize,
    /// The key already held these exact bytes (an earlier attempt stored
    /// them); nothing was uploaded this time.
    pub already_present: bool,
    /// The store checked an SHA-256 of every byte it received.
    pub store_checked_sha256: bool,
    /// Where the time went.
    pub timings: Timings,
}

impl IngestOutcome {
    /// Proof that the store itself checked the uploaded bytes, usable with
    /// [`VerifyMode::TrustStoreChecksum`](crate::VerifyMode::TrustStoreChecksum);
    /// `None` when the store does not check checksums, gave no ETag, or
    /// nothing was uploaded this time.
    pub fn store_receipt(&self) -> Option<StoreReceipt> {
        if !self.store_checked_sha256 || self.already_present {
            return None;
        }
        Some(StoreReceipt {
            size: self.size,
            sha256: self.digests.sha256,
            e_tag: self.e_tag.clone()?,
        })
    }
}

/// What a store acknowledged after checking an SHA-256 of every byte: a
/// put whose `x-amz-checksum-sha256` it verified, or a multipart upload
/// whose every part it verified while the pipeline hashed those very parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreReceipt {
    /// Size of the stored object.
    pub size: u64,
    /// SHA-256 of the bytes sent.
    pub sha256: Digest,
    /// The ETag the store gave the object.
    pub e_tag: String,
}

/// Where an ingest's time went. The stages overlap, so the parts do not
/// add up to `total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timings {
    /// Time spent waiting on the source.
    pub read: Duration,
    /// Time the hashing thread spent hashing.
    pub hash: Duration,
    /// From the first store write to the store's last acknowledgement.
    pub upload: Duration,
    /// Time the reader waited for a free part buffer (all
    /// `parts_in_flight` busy): the store or the hasher was slower than
    /// the source.
    pub stalled: Duration,
    /// The whole ingest.
    pub total: Duration,
}

/// Read `source` once, hash it and store it at `key`, with memory bounded
/// by `opts.part_size * opts.parts_in_flight` whatever the segment's size.
///
/// `store` is an [`IngestStore`] or anything that converts into one (an
/// `Arc<dyn ObjectStore>`). Progress goes to `progress` a few times per
/// part. See the module documentation for the steps and for what a failure
/// leaves behind.
pub async fn ingest_segment<R>(
    source: R,
    store: impl Into<IngestStore>,
    key: &Path,
    opts: &IngestOptions,
    progress: &dyn ProgressSink,
) -> Result<IngestOutcome, IngestError>
where
    R: AsyncRead + Unpin + Send,
{
    run_ingest(AsyncSource(source), &store.into(), key, opts, progress).await
}

/// [`ingest_segment`] for a local file (a recorder mounted as mass
/// storage): read on blocking threads straight into the part buffers,
/// which saves the copy `tokio::fs::File` makes through its own buffer.
/// Into a store made by [`IngestStore::local`], the pipeline writes the
/// object itself (module `local`: a staging file, synced, then linked to
/// the key, never replacing an object there), and `parts` is 0.
/// The file's size becomes `expected_size` unless that is already set.
pub async fn ingest_file(
    path: &std::path::Path,
    store: impl Into<IngestStore>,
    key: &Path,
    opts: &IngestOptions,
    progress: &dyn ProgressSink,
) -> Result<IngestOutcome, IngestError> {
    let open = async {
        let file = tokio::fs::File::open(path).await?;
        let size = file.metadata().await?.len();
        Ok::<_, std::io::Error>((file.into_std().await, size))
    };
    let (file, size) = open.await.map_err(|source| IngestError::Source {
        key: key.to_string(),
        read: 0,
        source: std::io::Error::new(source.kind(), format!("{}: {source}", path.display())),
        orphan: None,
    })?;
    let mut opts = opts.clone();
    opts.expected_size.get_or_insert(size);
    let store = store.into();
    let job = if store.local_fs().is_some() {
        // Written by the pipeline itself: module `local`.
        Job::LocalFile(file)
    } else {
        Job::Parts(FileSource::new(file))
    };
    run_job(job, &store, key, &opts, progress).await
}

/// What one ingest reads, and how it is stored.
enum Job<S> {
    /// Any source, in parts, through the store's put or multipart upload.
    Parts(S),
    /// A local file into the local filesystem store (module `local`).
    LocalFile(std::fs::File),
}

async fn run_ingest<S: PartSource>(
    source: S,
    store: &IngestStore,
    key: &Path,
    opts: &IngestOptions,
    progress: &dyn ProgressSink,
) -> Result<IngestOutcome, IngestError> {
    run_job(Job::Parts(source), store, key, opts, progress).await
}

/// Set up a [`Run`], do `job`, and send the final progress report.
async fn run_job<S: PartSource>(
    job: Job<S>,
    store: &IngestStore,
    key: &Path,
    opts: &IngestOptions,
    progress: &dyn ProgressSink,
) -> Result<IngestOutcome, IngestError> {
    let mut run = Run {
        store,
        key,
        opts,
        progress,
        started: Instant::now(),
        read: 0,
        stored: 0,
        timings: Timings::default(),
        plan: Plan::new(opts, store),
    };
    let r = match job {
        Job::Parts(source) => run.go(source).await,
        Job::LocalFile(file) => run.local_file(file).await,
    };
    let mut last = run.snapshot(0);
    last.finished = true;
    if let Ok(o) = &r {
        last.read = o.size;
        last.hashed = o.size;
        last.stored = o.size;
        last.total = Some(o.size);
    }
    progress.report(last);
    r
}

/// The state of one ingest.
struct Run<'a> {
    store: &'a IngestStore,
    key: &'a Path,
    opts: &'a IngestOptions,
    progress: &'a dyn ProgressSink,
    started: Instant,
    /// Bytes read from the source.
    read: u64,
    /// Bytes acknowledged by the store.
    stored: u64,
    timings: Timings,
    plan: Plan,
}

impl Run<'_> {
    async fn go<S>(&mut self, mut source: S) -> Result<IngestOutcome, IngestError>
    where
        S: PartSource,
    {
        self.opts.validate()?;
        let hasher =
            MultiHasher::new(self.opts.with_sm3).map_err(|_| IngestError::Sm3Unavailable)?;

        // Step 1.
        if let Some(existing) = self.head().await? {
            return self.existing_key(&mut source, existing, hasher).await;
        }

        // Step 2.
        let pool = ChunkPool::new(self.plan.chunk_size);
        let slots = Arc::new(Semaphore::new(self.plan.parts_in_flight));
        let mut worker = Hashing::start(&source, hasher);
        let first = self
            .next_part(&mut source, &pool, &slots, 0, &mut worker)
            .await?;
        self.report(worker.hashed());
        if first.len < self.plan.part_size {
            return self.single_put(first, worker).await;
        }
        if let Some(local) = self.store.local_fs().cloned() {
            return self
                .local_parts(&mut source, first, worker, &pool, &slots, local)
                .await;
        }

        // Steps 3 to 5.
        self.multipart(&mut source, first, worker, &pool, &slots)
            .await
    }

    /// Steps 3 to 5 into the local filesystem store, for a source that is
    /// not a local file: each part appended to a staging file as it is
    /// read (and hashed by the worker meanwhile), then `fdatasync` and
    /// `link(2)` to the key ([`local::link_into_place`]), instead of
    /// `LocalFileSystem`'s multipart upload, which never syncs and
    /// completes with a rename over whatever the key holds.
    async fn local_parts<S>(
        &mut self,
        source: &mut S,
        first: Part,
        mut worker: Hashing,
        pool: &Arc<ChunkPool>,
        slots: &Arc<Semaphore>,
        (fs, root): (Arc<LocalFileSystem>, std::path::PathBuf),
    ) -> Result<IngestOutcome, IngestError>
    where
        S: PartSource,
    {
        let dest = fs
            .path_to_filesystem(self.key)
            .map_err(|e| self.store_error("find the object's file", e, None))?;
        let d = dest.clone();
        let (mut out, staging) = tokio::task::spawn_blocking(move || local::create_staging(&d))
            .await
            .map_err(|e| self.join_error(e))?
            .map_err(|e| self.local_error("create the object's file", e))?;
        let part_size = self.plan.part_size;
        let mut part = first;
        let mut index = 0;
        let mut parts = 0;
        let mut writing = Duration::ZERO;
        loop {
            let len = part.len;
            let t = Instant::now();
            let (o, written) = tokio::task::spawn_blocking(move || {
                let r = part
                    .chunks
                    .iter()
                    .try_for_each(|c| std::io::Write::write_all(&mut out, &c.bytes));
                // The part (and its buffer slot) is released once written.
                drop(part);
                (out, r)
            })
            .await
            .map_err(|e| self.join_error(e))?;
            writing += t.elapsed();
            out = o;
            written.map_err(|e| self.local_error("write the object", e))?;
            parts += 1;
            self.stored += len as u64;
            self.report(worker.hashed());
            if len < part_size {
                break;
            }
            index += 1;
            if let Some(max_parts) = self.plan.max_parts.filter(|m| index >= *m) {
                return Err(IngestError::TooManyParts {
                    key: self.key.to_string(),
                    max_parts,
                    part_size,
                });
            }
            part = self
                .next_part(source, pool, slots, index, &mut worker)
                .await?;
            if part.len == 0 {
                break;
            }
        }
        let hashed = worker.finish().await.map_err(|e| self.hasher_error(e))?;
        self.timings.hash = hashed.busy;
        let size = hashed.bytes;
        let t = Instant::now();
        let linked = tokio::task::spawn_blocking(move || {
            out.sync_data()?;
            drop(out);
            local::link_into_place(staging, &dest, &root)
        })
        .await
        .map_err(|e| self.join_error(e))?;
        writing += t.elapsed();
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                tracing::warn!(key = %self.key, "key was taken while writing; comparing instead");
                return self.compare_with_stored(size, hashed.digests).await;
            }
            Err(e) => return Err(self.local_error("give the object its name", e)),
        }
        self.timings.upload = writing;
        self.local_outcome(size, hashed.digests, parts).await
    }

    /// A local file into the local filesystem store, written by the
    /// pipeline's own two threads (module `local`): step 1 as for any
    /// source, then read, hash and write at once into a staging file,
    /// synced and linked to the key only when complete.
    async fn local_file(&mut self, file: std::fs::File) -> Result<IngestOutcome, IngestError> {
        self.opts.validate()?;
        let hasher =
            MultiHasher::new(self.opts.with_sm3).map_err(|_| IngestError::Sm3Unavailable)?;
        let Some((fs, root)) = self.store.local_fs().cloned() else {
            return Err(IngestError::Internal {
                key: self.key.to_string(),
                detail: "not a local store".into(),
            });
        };

        // Step 1.
        if let Some(existing) = self.head().await? {
            let mut source = FileSource::new(file);
            return self.existing_key(&mut source, existing, hasher).await;
        }

        let dest = fs
            .path_to_filesystem(self.key)
            .map_err(|e| self.store_error("find the object's file", e, None))?;
        let d = dest.clone();
        let (out, staging) = tokio::task::spawn_blocking(move || local::create_staging(&d))
            .await
            .map_err(|e| self.join_error(e))?
            .map_err(|e| self.local_error("create the object's file", e))?;

        let uploading = Instant::now();
        let shared = Arc::new(local::Shared::default());
        let _stop = local::StopOnDrop(shared.clone());
        let active = local::Active::enter();
        if !active.overlap {
            let s = shared.clone();
            let mut worker =
                tokio::task::spawn_blocking(move || local::read_hash_write(file, hasher, out, &s));
            let (done, busy) = match self.local_progress(&mut worker, &shared).await? {
                Ok(x) => x,
                Err((local::ReadFail::Source(source, read), _)) => {
                    return Err(IngestError::Source {
                        key: self.key.to_string(),
                        read,
                        source,
                        orphan: None,
                    })
                }
                Err((_, Some(e))) => return Err(self.local_error("write the object", e)),
                Err((_, None)) => {
                    return Err(IngestError::Internal {
                        key: self.key.to_string(),
                        detail: "stopped".into(),
                    })
                }
            };
            self.timings.upload = busy;
            return self.link_local(done, staging, dest, root, uploading).await;
        }
        let ch = local::Channels::new();
        let (from_reader, back) = (ch.from_reader, ch.back);
        let s = shared.clone();
        let writer =
            tokio::task::spawn_blocking(move || local::write_chunks(out, from_reader, back, &s));
        let (to_writer, free) = (ch.to_writer, ch.free);
        let s = shared.clone();
        let mut reader = tokio::task::spawn_blocking(move || {
            local::read_and_hash(file, hasher, to_writer, free, &s)
        });
        let read = self.local_progress(&mut reader, &shared).await?;
        let written = writer.await.map_err(|e| self.join_error(e))?;
        let done = match (read, written) {
            (Ok(done), Ok(busy)) => {
                self.timings.upload = busy;
                done
            }
            (Err(local::ReadFail::Source(source, read)), _) => {
                return Err(IngestError::Source {
                    key: self.key.to_string(),
                    read,
                    source,
                    orphan: None,
                })
            }
            (_, Err(e)) => return Err(self.local_error("write the object", e)),
            (Err(local::ReadFail::Stopped), Ok(_)) => {
                return Err(IngestError::Internal {
                    key: self.key.to_string(),
                    detail: "the reading thread stopped early".into(),
                })
            }
        };
        self.link_local(done, staging, dest, root, uploading).await
    }

    /// Wait for a thread of [`Run::local_file`], reporting every 50 ms the
    /// progress the local threads publish in `shared`.
    async fn local_progress<T>(
        &mut self,
        thread: &mut tokio::task::JoinHandle<T>,
        shared: &local::Shared,
    ) -> Result<T, IngestError> {
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        let joined = loop {
            tokio::select! {
                r = &mut *thread => break r,
                _ = tick.tick() => {
                    self.read = shared.read.load(std::sync::atomic::Ordering::Relaxed);
                    self.stored = shared.written.load(std::sync::atomic::Ordering::Relaxed);
                    self.report(self.read);
                }
            }
        };
        joined.map_err(|e| self.join_error(e))
    }

    /// The end of [`Run::local_file`]: the synced staging file takes its
    /// name, unless the name is taken.
    async fn link_local(
        &mut self,
        done: local::ReadDone,
        staging: local::Staging,
        dest: std::path::PathBuf,
        root: std::path::PathBuf,
        uploading: Instant,
    ) -> Result<IngestOutcome, IngestError> {
        self.read = done.bytes;
        self.timings.read = done.read;
        self.timings.hash = done.hash;
        self.timings.stalled = done.stalled;

        // Steps 4 and 5 at once: link(2) refuses a taken name.
        let d = dest.clone();
        let linked =
            tokio::task::spawn_blocking(move || local::link_into_place(staging, &d, &root))
                .await
                .map_err(|e| self.join_error(e))?;
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                tracing::warn!(key = %self.key, "key was taken while writing; comparing instead");
                return self.compare_with_stored(done.bytes, done.digests).await;
            }
            Err(e) => return Err(self.local_error("give the object its name", e)),
        }
        self.timings.upload = uploading.elapsed();
        self.stored = done.bytes;
        self.local_outcome(done.bytes, done.digests, 0).await
    }

    /// The outcome of an object the pipeline wrote into the local store
    /// itself: its ETag as the store reports it.
    async fn local_outcome(
        &mut self,
        size: u64,
        digests: Digests,
        parts: usize,
    ) -> Result<IngestOutcome, IngestError> {
        let meta = self.head().await?;
        let put = PutResult {
            e_tag: meta.and_then(|m| m.e_tag),
            version: None,
            extensions: Default::default(),
        };
        Ok(self.outcome(size, digests, put, parts))
    }

    fn join_error(&self, e: tokio::task::JoinError) -> IngestError {
        IngestError::Internal {
            key: self.key.to_string(),
            detail: format!("an ingest thread failed: {e}"),
        }
    }

    /// HEAD the key: `None` when no object is there.
    async fn head(&self) -> Result<Option<ObjectMeta>, IngestError> {
        let objects = self.store.object_store();
        match with_retry(&self.opts.retry, "look up the key", || {
            objects.head(self.key)
        })
        .await
        {
            Ok(meta) => Ok(Some(meta)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(source) => Err(self.store_error("look up the key", source, None)),
        }
    }

    /// Take a slot, read part `index` chunk by chunk, handing each chunk to
    /// the hasher as soon as it is read. The part is shorter than the part
    /// size only at the end of the source (and empty past it).
    async fn next_part<S>(
        &mut self,
        source: &mut S,
        pool: &Arc<ChunkPool>,
        slots: &Arc<Semaphore>,
        index: usize,
        worker: &mut Hashing,
    ) -> Result<Part, IngestError>
    where
        S: PartSource,
    {
        let waiting = Instant::now();
        // INVARIANT: the semaphore is owned by this ingest and never closed.
        let permit = slots
            .clone()
            .acquire_owned()
            .await
            .expect("part semaphore is never closed");
        self.timings.stalled += waiting.elapsed();
        let part_size = self.plan.part_size;
        let mut chunks = Vec::with_capacity(part_size.div_ceil(self.plan.chunk_size));
        let mut len = 0;
        while len < part_size {
            let want = self.plan.chunk_size.min(part_size - len);
            let reading = Instant::now();
            let filled = source.fill(pool.take(), want, worker.lend()).await;
            self.timings.read += reading.elapsed();
            let buf = match filled {
                Ok(filled) => worker.take_back(filled),
                Err((source, got)) => {
                    return Err(IngestError::Source {
                        key: self.key.to_string(),
                        read: self.read + got as u64,
                        source,
                        orphan: None,
                    })
                }
            };
            let n = buf.len();
            if n == 0 {
                break;
            }
            self.read += n as u64;
            let chunk = Chunk::new(buf, pool.clone());
            worker
                .feed(&chunk)
                .await
                .map_err(|e| self.hasher_error(e))?;
            len += n;
            chunks.push(chunk);
            if n < want {
                break;
            }
        }
        Ok(Part::new(chunks, index, permit))
    }

    /// Step 2: a segment shorter than one part.
    async fn single_put(
        &mut self,
        part: Part,
        worker: Hashing,
    ) -> Result<IngestOutcome, IngestError> {
        let hashed = worker.finish().await.map_err(|e| self.hasher_error(e))?;
        self.timings.hash = hashed.busy;
        let size = part.len as u64;
        let payload = part.payload();
        drop(part);

        if let Some((fs, root)) = self.store.local_fs().cloned() {
            return self
                .local_put(&fs, root, payload, size, hashed.digests)
                .await;
        }
        let objects = self.store.object_store();
        let uploading = Instant::now();
        let create = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        let mut r = with_retry(&self.opts.retry, "put the object", || {
            objects.put_opts(self.key, payload.clone(), create.clone())
        })
        .await;
        if matches!(r, Err(object_store::Error::NotImplemented { .. })) {
            // The store has no conditional put; step 1 found the key free.
            r = with_retry(&self.opts.retry, "put the object", || {
                objects.put(self.key, payload.clone())
            })
            .await;
        }
        self.timings.upload = uploading.elapsed();
        match r {
            Ok(put) => {
                self.stored = size;
                Ok(self.outcome(size, hashed.digests, put, 0))
            }
            Err(object_store::Error::AlreadyExists { .. }) => {
                // Someone (maybe our own earlier attempt whose answer was
                // lost) stored an object there meanwhile.
                self.compare_with_stored(size, hashed.digests).await
            }
            Err(source) => Err(self.store_error("put the object", source, None)),
        }
    }

    /// Step 2 into the local filesystem store: the whole object written
    /// durably by [`local::write_whole`] (synced, then linked to the key
    /// only if the key is free).
    async fn local_put(
        &mut self,
        fs: &LocalFileSystem,
        root: std::path::PathBuf,
        payload: PutPayload,
        size: u64,
        digests: Digests,
    ) -> Result<IngestOutcome, IngestError> {
        let dest = fs
            .path_to_filesystem(self.key)
            .map_err(|e| self.store_error("find the object's file", e, None))?;
        let uploading = Instant::now();
        let written = tokio::task::spawn_blocking(move || {
            local::write_whole(&dest, &root, payload.iter().map(|b| &b[..]))
        })
        .await
        .map_err(|e| self.join_error(e))?;
        self.timings.upload = uploading.elapsed();
        match written {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // Someone (maybe our own earlier attempt) stored an object
                // there meanwhile.
                return self.compare_with_stored(size, digests).await;
            }
            Err(e) => return Err(self.local_error("write the object", e)),
        }
        self.stored = size;
        self.local_outcome(size, digests, 0).await
    }

    /// Steps 3 to 5.
    async fn multipart<S>(
        &mut self,
        source: &mut S,
        first: Part,
        mut worker: Hashing,
        pool: &Arc<ChunkPool>,
        slots: &Arc<Semaphore>,
    ) -> Result<IngestOutcome, IngestError>
    where
        S: PartSource,
    {
        let uploading = Instant::now();
        let mut upload = OpenUpload::create(self.store, self.key, &self.opts.retry)
            .await
            .map_err(|e| self.store_error("start a multipart upload", e, None))?;

        let sent = self
            .send_parts(&mut upload, source, first, &mut worker, pool, slots)
            .await;
        let parts = match sent {
            Ok(parts) => parts,
            Err(e) => {
                let orphan = upload.abort().await.err();
                // Some stores (Garage) drop an upload when another writer
                // stores an object at its key; the next part then fails
                // with "no such upload". Compare with that object rather
                // than report a store error.
                let vanished = matches!(
                    &e,
                    IngestError::Store { source, .. }
                        if matches!(**source, object_store::Error::NotFound { .. })
                );
                if vanished && matches!(self.head().await, Ok(Some(_))) {
                    tracing::warn!(key = %self.key, "upload dropped by the store: the key was taken meanwhile");
                    let hashed = self.hash_rest(source, worker, pool, slots).await?;
                    return self
                        .compare_with_stored(hashed.bytes, hashed.digests)
                        .await
                        .map_err(|e| e.with_orphan(orphan));
                }
                return Err(e.with_orphan(orphan));
            }
        };
        let hashed = match worker.finish().await {
            Ok(h) => h,
            Err(e) => {
                let err = self.hasher_error(e);
                let _ = upload.abort().await;
                return Err(err);
            }
        };
        self.timings.hash = hashed.busy;
        let size = hashed.bytes;
        debug_assert_eq!(size, self.read);

        // Step 4.
        match self.head().await {
            Ok(None) => {}
            Ok(Some(_)) => {
                tracing::warn!(key = %self.key, "key was taken while uploading; comparing instead of completing");
                let orphan = upload.abort().await.err();
                return self
                    .compare_with_stored(size, hashed.digests)
                    .await
                    .map_err(|e| e.with_orphan(orphan));
            }
            Err(e) => {
                let orphan = upload.abort().await.err();
                return Err(e.with_orphan(orphan));
            }
        }

        // Step 5.
        let count = parts.len();
        match upload.complete(parts).await {
            Ok(put) => {
                self.timings.upload = uploading.elapsed();
                Ok(self.outcome(size, hashed.digests, put, count))
            }
            Err(source) => {
                let orphan = upload.abort().await.err();
                Err(self.store_error("complete the multipart upload", source, orphan))
            }
        }
    }

    /// Read the remaining parts and upload every part; returns the
    /// acknowledged parts in index order.
    async fn send_parts<S>(
        &mut self,
        upload: &mut OpenUpload,
        source: &mut S,
        first: Part,
        worker: &mut Hashing,
        pool: &Arc<ChunkPool>,
        slots: &Arc<Semaphore>,
    ) -> Result<Vec<PartDone>, IngestError>
    where
        S: PartSource,
    {
        let part_size = self.plan.part_size;
        // Upload tasks; dropping the set (on an error return) cancels them.
        let mut tasks: JoinSet<Result<PartDone, (usize, object_store::Error)>> = JoinSet::new();
        let mut done: Vec<Option<PartDone>> = Vec::new();
        spawn_part(&mut tasks, upload.put_part(first));
        let mut index = 1;
        loop {
            // Collect finished uploads (surfacing failures early) while
            // waiting for a free buffer.
            while let Some(joined) = tasks.try_join_next() {
                self.collect(joined, &mut done, worker)?;
            }
            if slots.available_permits() == 0 && !tasks.is_empty() {
                let waiting = Instant::now();
                tokio::select! {
                    Some(joined) = tasks.join_next() => {
                        self.timings.stalled += waiting.elapsed();
                        self.collect(joined, &mut done, worker)?;
                        continue;
                    }
                    // INVARIANT: the semaphore is never closed.
                    _ = slots.acquire() => {
                        self.timings.stalled += waiting.elapsed();
                    }
                }
            }
            let part = self.next_part(source, pool, slots, index, worker).await?;
            if part.len == 0 {
                break;
            }
            if let Some(max_parts) = self.plan.max_parts.filter(|m| index >= *m) {
                return Err(IngestError::TooManyParts {
                    key: self.key.to_string(),
                    max_parts,
                    part_size,
                });
            }
            let short = part.len < part_size;
            spawn_part(&mut tasks, upload.put_part(part));
            self.report(worker.hashed());
            index += 1;
            if short {
                break;
            }
        }
        while let Some(joined) = tasks.join_next().await {
            self.collect(joined, &mut done, worker)?;
        }
        let parts: Option<Vec<PartDone>> = done.into_iter().collect();
        // INVARIANT: every spawned part either failed (returned above) or
        // was recorded at its index, and indexes are 0..index.
        Ok(parts.expect("every uploaded part was acknowledged"))
    }

    /// Record one finished part upload.
    fn collect(
        &mut self,
        joined: Result<Result<PartDone, (usize, object_store::Error)>, tokio::task::JoinError>,
        done: &mut Vec<Option<PartDone>>,
        worker: &Hashing,
    ) -> Result<(), IngestError> {
        match joined {
            Ok(Ok(part)) => {
                self.stored += part.len as u64;
                let i = part.index;
                if done.len() <= i {
                    done.resize_with(i + 1, || None);
                }
                done[i] = Some(part);
                self.report(worker.hashed());
                Ok(())
            }
            Ok(Err((i, source))) => {
                Err(self.store_error(&format!("upload part {}", i + 1), source, None))
            }
            Err(join) => Err(self.store_error(
                "upload a part",
                object_store::Error::JoinError { source: join },
                None,
            )),
        }
    }

    /// Step 1, key taken: hash the whole source without uploading, then
    /// compare with what is stored.
    async fn existing_key<S>(
        &mut self,
        source: &mut S,
        existing: ObjectMeta,
        hasher: MultiHasher,
    ) -> Result<IngestOutcome, IngestError>
    where
        S: PartSource,
    {
        if let Some(expected) = self.opts.expected_size {
            if expected != existing.size {
                return Err(IngestError::KeyTaken {
                    key: self.key.to_string(),
                    reason: KeyTakenReason::Size {
                        existing: existing.size,
                        segment: expected,
                    },
                });
            }
        }
        let pool = ChunkPool::new(self.plan.chunk_size);
        let slots = Arc::new(Semaphore::new(self.plan.parts_in_flight));
        let worker = Hashing::start(&*source, hasher);
        let hashed = self.hash_rest(source, worker, &pool, &slots).await?;
        self.compare_with_stored(hashed.bytes, hashed.digests).await
    }

    /// Read the rest of the source into the hasher only, uploading nothing.
    async fn hash_rest<S>(
        &mut self,
        source: &mut S,
        mut worker: Hashing,
        pool: &Arc<ChunkPool>,
        slots: &Arc<Semaphore>,
    ) -> Result<Hashed, IngestError>
    where
        S: PartSource,
    {
        loop {
            let part = self.next_part(source, pool, slots, 0, &mut worker).await?;
            let len = part.len;
            drop(part);
            self.report(worker.hashed());
            if len < self.plan.part_size {
                break;
            }
        }
        let hashed = worker.finish().await.map_err(|e| self.hasher_error(e))?;
        self.timings.hash = hashed.busy;
        Ok(hashed)
    }

    /// The key holds an object: succeed if it has exactly the segment's
    /// bytes, refuse otherwise.
    async fn compare_with_stored(
        &mut self,
        size: u64,
        digests: Digests,
    ) -> Result<IngestOutcome, IngestError> {
        let Some(meta) = self.head().await? else {
            // It was there a moment ago and is gone: nothing to compare
            // with, and not ours to recreate behind a deleter's back.
            return Err(self.store_error(
                "find the object that held the key",
                object_store::Error::NotFound {
                    path: self.key.to_string(),
                    source: "object vanished while comparing".into(),
                },
                None,
            ));
        };
        if meta.size != size {
            return Err(IngestError::KeyTaken {
                key: self.key.to_string(),
                reason: KeyTakenReason::Size {
                    existing: meta.size,
                    segment: size,
                },
            });
        }
        let stored: Hashed = read_back(self.store, self.key, &meta, MultiHasher::sha256())
            .await
            .map_err(|e| IngestError::Compare {
                key: self.key.to_string(),
                source: Box::new(e),
            })?;
        if stored.digests.sha256 != digests.sha256 {
            return Err(IngestError::KeyTaken {
                key: self.key.to_string(),
                reason: KeyTakenReason::Content {
                    existing: stored.digests.sha256,
                    segment: digests.sha256,
                },
            });
        }
        tracing::info!(key = %self.key, "segment already stored with the same bytes");
        self.stored = size;
        let mut outcome = self.outcome(
            size,
            digests,
            PutResult {
                e_tag: meta.e_tag,
                version: meta.version,
                extensions: Default::default(),
            },
            0,
        );
        outcome.already_present = true;
        Ok(outcome)
    }

    fn outcome(
        &mut self,
        size: u64,
        digests: Digests,
        put: PutResult,
        parts: usize,
    ) -> IngestOutcome {
        self.timings.total = self.started.elapsed();
        IngestOutcome {
            key: self.key.clone(),
            size,
            digests,
            e_tag: put.e_tag,
            version: put.version,
            parts,
            already_present: false,
            store_checked_sha256: self.store.checks_sha256(),
            timings: self.timings,
        }
    }

    fn snapshot(&self, hashed: u64) -> Progress {
        Progress {
            read: self.read,
            hashed,
            stored: self.stored,
            total: self.opts.expected_size,
            finished: false,
        }
    }

    fn report(&self, hashed: u64) {
        self.progress.report(self.snapshot(hashed));
    }

    fn store_error(
        &self,
        during: &str,
        source: object_store::Error,
        orphan: Option<OrphanedUpload>,
    ) -> IngestError {
        IngestError::Store {
            key: self.key.to_string(),
            during: during.to_owned(),
            source: Box::new(source),
            orphan: orphan.map(Box::new),
        }
    }

    /// An I/O error of the local store's own write path
    /// ([`crate::local`]), reported as the store's.
    fn local_error(&self, during: &str, e: std::io::Error) -> IngestError {
        self.store_error(
            during,
            object_store::Error::Generic {
                store: "LocalFileSystem",
                source: Box::new(e),
            },
            None,
        )
    }

    fn hasher_error(&self, e: HasherDied) -> IngestError {
        IngestError::Internal {
            key: self.key.to_string(),
            detail: e.0,
        }
    }
}

fn spawn_part(
    tasks: &mut JoinSet<Result<PartDone, (usize, object_store::Error)>>,
    fut: PartFuture,
) {
    tasks.spawn(fut);
}

impl IngestError {
    /// Attach the orphaned upload left by the abort that followed this error.
    fn with_orphan(self, new: Option<OrphanedUpload>) -> IngestError {
        match self {
            IngestError::Source {
                key,
                read,
                source,
                orphan,
            } => IngestError::Source {
                key,
                read,
                source,
                orphan: orphan.or(new.map(Box::new)),
            },
            IngestError::Store {
                key,
                during,
                source,
                orphan,
            } => IngestError::Store {
                key,
                during,
                source,
                orphan: orphan.or(new.map(Box::new)),
            },
            other => other,
        }
    }
}
