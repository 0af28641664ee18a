//! Object stores reached through their API (S3 and its kin, and the
//! in-memory store): a segment shorter than one part in one conditional
//! put, anything longer as a multipart upload (module `upload`: one upload
//! in progress over either of object_store's multipart interfaces, and its
//! clean-up).
//!
//! For the multipart upload (steps 3 to 5 of `segment`): parts are read
//! into buffers, each buffer goes to the hashing thread and to an upload
//! task at once (no copy), at most `parts_in_flight` alive. A failed part
//! is resent from its buffer. Any failure aborts the upload: nothing is
//! visible at the key, and if the abort itself fails (store down) the error
//! names the orphaned upload. Just before completing, the key is looked up
//! again; an object that appeared meanwhile aborts the upload and sends the
//! segment to the comparison of module `taken`, as does a conditional put
//! the store refuses, or an upload the store dropped because another
//! writer stored an object at its key.
//!
//! This module must never complete an upload whose key was found taken,
//! never leave an upload open on an error path without reporting it, and
//! never re-read the source to resend a part.

mod upload;

use std::sync::Arc;
use std::time::Instant;

use custos_core::digest::Digests;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::buffers::{ChunkPool, Part, PartSource};
use crate::error::{IngestError, OrphanedUpload};
use crate::hasher::Hashing;
use crate::retry::with_retry;
use crate::segment::{IngestOutcome, Run};
use upload::{OpenUpload, PartDone, PartFuture};

pub use upload::abort_orphan;

impl Run<'_> {
    /// Step 2 into an object store: a segment shorter than one part, in one
    /// conditional put.
    pub(crate) async fn single_put(
        &mut self,
        payload: PutPayload,
        size: u64,
        digests: Digests,
    ) -> Result<IngestOutcome, IngestError> {
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
                Ok(self.outcome(size, digests, put, 0))
            }
            Err(object_store::Error::AlreadyExists { .. }) => {
                // Someone (maybe our own earlier attempt whose answer was
                // lost) stored an object there meanwhile.
                self.compare_with_stored(size, digests).await
            }
            Err(source) => Err(self.store_error("put the object", source, None)),
        }
    }

    /// Steps 3 to 5 into an object store: a multipart upload.
    pub(crate) async fn multipart<S>(
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
