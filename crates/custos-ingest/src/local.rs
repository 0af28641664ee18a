//! The local filesystem store: how a segment lands in a `file://`
//! directory. The pipeline writes these objects itself rather than through
//! `object_store`'s `LocalFileSystem` upload, which writes each part on its
//! own blocking task (a mutex, a seek, a write), never flushes the file to
//! the device, and completes with a rename that replaces whatever the key
//! held. `LocalFileSystem` only serves reads, listings and HEADs.
//!
//! Three ways in, all ending the same way (module `staging`: a staging file
//! `KEY#N` created with `O_EXCL`, `fdatasync`, then `link(2)` to the key,
//! which fails rather than replace, and a directory sync):
//!
//! - a local file ([`Run::local_file`], from `ingest_file`): read, hashed
//!   and written by the pipeline's own threads (module `threads`: one
//!   thread per 64 KiB step when other ingests keep the cores busy, a
//!   reading and a writing thread when a core is free);
//! - any other source longer than one part ([`Run::local_parts`]): each
//!   part appended to the staging file as it is read, while the hashing
//!   thread hashes it;
//! - an object whole from memory ([`Run::local_put`], a segment shorter
//!   than one part; [`staging::write_whole`] for the rest).
//!
//! A name that turns out to be taken when linking sends the ingest to the
//! comparison of module `taken`. This module must never write to an
//! object's final name other than by linking a complete, synced file to it,
//! and never go through `LocalFileSystem`'s own writes.

mod staging;
mod threads;

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::split::StreamHasher;
use custos_core::digest::Digests;
use object_store::local::LocalFileSystem;
use object_store::{PutPayload, PutResult};
use tokio::sync::Semaphore;

use crate::buffers::{ChunkPool, FileSource, Part, PartSource};
use crate::error::{IngestError, StoreError};
use crate::hasher::Hashing;
use crate::segment::{IngestOutcome, Run};
use crate::store::StoreKind;

/// A directory on the local filesystem as an object store: `object_store`'s
/// `LocalFileSystem` over it for reads, listings and HEADs, and its
/// canonical path, under which the pipeline writes objects itself.
#[derive(Debug, Clone)]
pub(crate) struct LocalStore {
    /// Reads, listings, HEADs, and the file of each key.
    fs: Arc<LocalFileSystem>,
    /// The directory, canonical: the limit up to which new directories'
    /// parents are synced.
    root: PathBuf,
}

impl LocalStore {
    /// The directory `dir`, created if missing.
    pub(crate) fn open(dir: &FsPath) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::LocalDir {
            path: dir.display().to_string(),
            source,
        })?;
        let fs = LocalFileSystem::new_with_prefix(dir).map_err(|source| StoreError::Config {
            url: format!("file://{}", dir.display()),
            source,
        })?;
        let root = std::fs::canonicalize(dir).map_err(|source| StoreError::LocalDir {
            path: dir.display().to_string(),
            source,
        })?;
        Ok(LocalStore {
            fs: Arc::new(fs),
            root,
        })
    }

    /// The `LocalFileSystem` over the directory.
    pub(crate) fn objects(&self) -> Arc<LocalFileSystem> {
        self.fs.clone()
    }
}

impl Run<'_> {
    /// Steps 3 to 5 into the local filesystem store, for a source that is
    /// not a local file: each part appended to a staging file as it is
    /// read (and hashed by the worker meanwhile), then `fdatasync` and
    /// `link(2)` to the key ([`staging::link_into_place`]), instead of
    /// `LocalFileSystem`'s multipart upload, which never syncs and
    /// completes with a rename over whatever the key holds.
    pub(crate) async fn local_parts<S>(
        &mut self,
        source: &mut S,
        first: Part,
        mut worker: Hashing,
        pool: &Arc<ChunkPool>,
        slots: &Arc<Semaphore>,
        local: &LocalStore,
    ) -> Result<IngestOutcome, IngestError>
    where
        S: PartSource,
    {
        let dest = self.file_of(local)?;
        let root = local.root.clone();
        let d = dest.clone();
        let (mut out, staged) = tokio::task::spawn_blocking(move || staging::create_staging(&d))
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
            staging::link_into_place(staged, &dest, &root)
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

    /// Step 2 into the local filesystem store: the whole object written
    /// durably by [`staging::write_whole`] (synced, then linked to the key
    /// only if the key is free).
    pub(crate) async fn local_put(
        &mut self,
        local: &LocalStore,
        payload: PutPayload,
        size: u64,
        digests: Digests,
    ) -> Result<IngestOutcome, IngestError> {
        let dest = self.file_of(local)?;
        let root = local.root.clone();
        let uploading = Instant::now();
        let written = tokio::task::spawn_blocking(move || {
            staging::write_whole(&dest, &root, payload.iter().map(|b| &b[..]))
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

    /// A local file into the local filesystem store, written by the
    /// pipeline's own threads (module `threads`): step 1 as for any
    /// source, then read, hash and write at once into a staging file,
    /// synced and linked to the key only when complete.
    pub(crate) async fn local_file(
        &mut self,
        file: std::fs::File,
    ) -> Result<IngestOutcome, IngestError> {
        self.opts.validate()?;
        let hasher =
            StreamHasher::new(self.opts.with_sm3).map_err(|_| IngestError::Sm3Unavailable)?;
        let store = self.store;
        let StoreKind::Local(local) = store.kind() else {
            return Err(IngestError::Internal {
                key: self.key.to_string(),
                detail: "not a local store".into(),
            });
        };

        // Step 1 (module `taken`).
        if let Some(existing) = self.head().await? {
            let mut source = FileSource::new(file);
            return self.existing_key(&mut source, existing, hasher).await;
        }

        let dest = self.file_of(local)?;
        let root = local.root.clone();
        let d = dest.clone();
        let (out, staged) = tokio::task::spawn_blocking(move || staging::create_staging(&d))
            .await
            .map_err(|e| self.join_error(e))?
            .map_err(|e| self.local_error("create the object's file", e))?;

        let uploading = Instant::now();
        let shared = Arc::new(threads::Shared::default());
        let _stop = threads::StopOnDrop(shared.clone());
        let active = threads::Active::enter();
        if !active.overlap {
            let s = shared.clone();
            let mut worker = tokio::task::spawn_blocking(move || {
                threads::read_hash_write(file, hasher, out, &s)
            });
            let (done, busy) = match self.local_progress(&mut worker, &shared).await? {
                Ok(x) => x,
                Err((threads::ReadFail::Source(source, read), _)) => {
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
            return self.link_local(done, staged, dest, root, uploading).await;
        }
        let ch = threads::Channels::new();
        let (from_reader, back) = (ch.from_reader, ch.back);
        let s = shared.clone();
        let writer =
            tokio::task::spawn_blocking(move || threads::write_chunks(out, from_reader, back, &s));
        let (to_writer, free) = (ch.to_writer, ch.free);
        let s = shared.clone();
        let mut reader = tokio::task::spawn_blocking(move || {
            threads::read_and_hash(file, hasher, to_writer, free, &s)
        });
        let read = self.local_progress(&mut reader, &shared).await?;
        let written = writer.await.map_err(|e| self.join_error(e))?;
        let done = match (read, written) {
            (Ok(done), Ok(busy)) => {
                self.timings.upload = busy;
                done
            }
            (Err(threads::ReadFail::Source(source, read)), _) => {
                return Err(IngestError::Source {
                    key: self.key.to_string(),
                    read,
                    source,
                    orphan: None,
                })
            }
            (_, Err(e)) => return Err(self.local_error("write the object", e)),
            (Err(threads::ReadFail::Stopped), Ok(_)) => {
                return Err(IngestError::Internal {
                    key: self.key.to_string(),
                    detail: "the reading thread stopped early".into(),
                })
            }
        };
        self.link_local(done, staged, dest, root, uploading).await
    }

    /// Wait for a thread of [`Run::local_file`], reporting every 50 ms the
    /// progress the local threads publish in `shared`.
    async fn local_progress<T>(
        &mut self,
        thread: &mut tokio::task::JoinHandle<T>,
        shared: &threads::Shared,
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
        done: threads::ReadDone,
        staged: staging::Staging,
        dest: PathBuf,
        root: PathBuf,
        uploading: Instant,
    ) -> Result<IngestOutcome, IngestError> {
        self.read = done.bytes;
        self.timings.read = done.read;
        self.timings.hash = done.hash;
        self.timings.stalled = done.stalled;

        // Steps 4 and 5 at once: link(2) refuses a taken name.
        let d = dest.clone();
        let linked =
            tokio::task::spawn_blocking(move || staging::link_into_place(staged, &d, &root))
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

    /// The file of the ingest's key in `local`.
    fn file_of(&self, local: &LocalStore) -> Result<PathBuf, IngestError> {
        local
            .fs
            .path_to_filesystem(self.key)
            .map_err(|e| self.store_error("find the object's file", e, None))
    }

    /// An I/O error of the local store's own write path, reported as the
    /// store's.
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
}
