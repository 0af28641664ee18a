//! [`ingest_segment`]: one segment, read once, hashed and stored; what is
//! common to every store, and the dispatch to the store's kind.
//!
//! The steps, who does each, and what a failure at each leaves behind:
//!
//! 1. **Look at the key** (HEAD; module `taken`). If an object is there,
//!    the segment is read and hashed without storing anything, then
//!    compared with the stored object (size, then SHA-256 of the object
//!    read back): equal means an earlier attempt already stored it (an
//!    idempotent retry); different means the key is taken and the ingest
//!    is refused. Nothing is written either way.
//! 2. **Read the first part** (here). If the source ends before the part
//!    is full, the segment is hashed and stored whole: with one conditional
//!    put (`PutMode::Create`, falling back to a plain put on stores without
//!    conditional puts, after step 1's check; module `multipart`), or into
//!    a local store as a synced file linked to the key (module `local`). A
//!    store that finds the key taken after all sends us to the comparison
//!    of step 1. A failure stores nothing.
//! 3. **Store the parts.** Parts are read into buffers here, each buffer
//!    going to the hashing thread (module `hasher`) and to the store's
//!    writer at once (no copy), at most `parts_in_flight` alive: a
//!    multipart upload (module `multipart`; a failed part is resent from
//!    its buffer, any failure aborts the upload and names an upload that
//!    could not be aborted) or a staging file in a local store (module
//!    `local`). Nothing is visible at the key meanwhile.
//! 4. **Check the key again** just before completing: if another writer
//!    stored an object meanwhile, the write is abandoned and the segment is
//!    compared with that object as in step 1.
//! 5. **Complete.** The object appears at the key, whole.
//!
//! A local file into a local store ([`ingest_file`]) takes its own way
//! through steps 2 to 5 (module `local`); step 1 is the same.
//!
//! This module holds what every store kind shares: the outcome and its
//! timings, the [`Run`] state with its reading of parts, progress and
//! errors. It must never read the source twice, and never write to a key
//! itself: every write goes through the store kind's module.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::split::StreamHasher;
use custos_core::digest::{Digest, Digests};
use object_store::path::Path;
use object_store::PutResult;
use tokio::io::AsyncRead;
use tokio::sync::Semaphore;

use crate::buffers::{AsyncSource, Chunk, ChunkPool, FileSource, Part, PartSource};
use crate::error::{IngestError, OrphanedUpload};
use crate::hasher::{Hashed, HasherDied, Hashing};
use crate::options::{IngestOptions, S3_MAX_PARTS};
use crate::progress::{Progress, ProgressSink};
use crate::store::{IngestStore, StoreKind};

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
pub(crate) struct Plan {
    /// Bytes per part (the last may be shorter).
    pub(crate) part_size: usize,
    /// Bytes read, and handed to the hasher, at a time.
    pub(crate) chunk_size: usize,
    /// Part buffers alive at once.
    pub(crate) parts_in_flight: usize,
    /// The store's limit on parts (S3's 10 000), if it has one.
    pub(crate) max_parts: Option<usize>,
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
    let job = if matches!(store.kind(), StoreKind::Local(_)) {
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

/// The state of one ingest, shared by the store kinds' modules, which add
/// their steps to it (`impl Run` in `taken`, `multipart` and `local`).
pub(crate) struct Run<'a> {
    /// The store written to.
    pub(crate) store: &'a IngestStore,
    /// The object key.
    pub(crate) key: &'a Path,
    /// The caller's options.
    pub(crate) opts: &'a IngestOptions,
    /// Where progress reports go.
    pub(crate) progress: &'a dyn ProgressSink,
    /// When the ingest started.
    pub(crate) started: Instant,
    /// Bytes read from the source.
    pub(crate) read: u64,
    /// Bytes acknowledged by the store.
    pub(crate) stored: u64,
    /// Where the time went so far.
    pub(crate) timings: Timings,
    /// The sizes this ingest uses.
    pub(crate) plan: Plan,
}

impl Run<'_> {
    /// Steps 1 to 5 for any source, dispatched to the store's kind.
    async fn go<S>(&mut self, mut source: S) -> Result<IngestOutcome, IngestError>
    where
        S: PartSource,
    {
        self.opts.validate()?;
        let hasher =
            StreamHasher::new(self.opts.with_sm3).map_err(|_| IngestError::Sm3Unavailable)?;

        // Step 1 (module `taken`).
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
        let store = self.store;
        if first.len < self.plan.part_size {
            let hashed = worker.finish().await.map_err(|e| self.hasher_error(e))?;
            self.timings.hash = hashed.busy;
            let size = first.len as u64;
            let payload = first.payload();
            drop(first);
            return match store.kind() {
                StoreKind::Local(local) => {
                    self.local_put(local, payload, size, hashed.digests).await
                }
                StoreKind::Multipart => self.single_put(payload, size, hashed.digests).await,
            };
        }

        // Steps 3 to 5.
        match store.kind() {
            StoreKind::Local(local) => {
                self.local_parts(&mut source, first, worker, &pool, &slots, local)
                    .await
            }
            StoreKind::Multipart => {
                self.multipart(&mut source, first, worker, &pool, &slots)
                    .await
            }
        }
    }

    pub(crate) fn join_error(&self, e: tokio::task::JoinError) -> IngestError {
        IngestError::Internal {
            key: self.key.to_string(),
            detail: format!("an ingest thread failed: {e}"),
        }
    }

    /// Take a slot, read part `index` chunk by chunk, handing each chunk to
    /// the hasher as soon as it is read. The part is shorter than the part
    /// size only at the end of the source (and empty past it).
    pub(crate) async fn next_part<S>(
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

    /// Read the rest of the source into the hasher only, uploading nothing.
    pub(crate) async fn hash_rest<S>(
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

    pub(crate) fn outcome(
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

    pub(crate) fn report(&self, hashed: u64) {
        self.progress.report(self.snapshot(hashed));
    }

    pub(crate) fn store_error(
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

    pub(crate) fn hasher_error(&self, e: HasherDied) -> IngestError {
        IngestError::Internal {
            key: self.key.to_string(),
            detail: e.0,
        }
    }
}
