//! [`IngestPool`]: several segments at once, bounded.
//!
//! A dock ingests from up to 20 recorders at shift end; each segment's
//! pipeline already overlaps reading, hashing and uploading, so the pool
//! only bounds how many segments run at once (and with them memory: about
//! `concurrency * part_size * parts_in_flight`). This module must never
//! start a segment without a free slot.

use std::sync::Arc;

use object_store::path::Path;
use tokio::io::AsyncRead;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::error::IngestError;
use crate::options::IngestOptions;
use crate::progress::ProgressSink;
use crate::segment::{ingest_segment, IngestOutcome};
use crate::store::IngestStore;

/// Runs ingests against one store, at most `concurrency` at a time. Cheap
/// to clone; clones share the limit.
#[derive(Debug, Clone)]
pub struct IngestPool {
    store: IngestStore,
    opts: Arc<IngestOptions>,
    /// One permit per running segment. Created here; each ingest holds a
    /// permit for its whole run, so dropping the permit (at the end of the
    /// run, success or not) lets the next waiting segment start.
    slots: Arc<Semaphore>,
    concurrency: usize,
}

impl IngestPool {
    /// A pool over `store` with the given options, running at most
    /// `concurrency` segments at once (at least 1).
    pub fn new(store: impl Into<IngestStore>, opts: IngestOptions, concurrency: usize) -> Self {
        let concurrency = concurrency.max(1);
        IngestPool {
            store: store.into(),
            opts: Arc::new(opts),
            slots: Arc::new(Semaphore::new(concurrency)),
            concurrency,
        }
    }

    /// The store the pool writes to.
    pub fn store(&self) -> &IngestStore {
        &self.store
    }

    /// The options every ingest uses.
    pub fn options(&self) -> &IngestOptions {
        &self.opts
    }

    /// Segments that may run at once.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// Segments running now.
    pub fn running(&self) -> usize {
        self.concurrency - self.slots.available_permits()
    }

    /// Ingest one segment once a slot is free (waits for it).
    pub async fn ingest<R>(
        &self,
        source: R,
        key: &Path,
        progress: &dyn ProgressSink,
    ) -> Result<IngestOutcome, IngestError>
    where
        R: AsyncRead + Unpin + Send,
    {
        // INVARIANT: the pool's semaphore is never closed.
        let _slot = self
            .slots
            .acquire()
            .await
            .expect("pool semaphore is never closed");
        ingest_segment(source, &self.store, key, &self.opts, progress).await
    }

    /// Ingest one segment on its own task (waiting there for a slot), as a
    /// dock slot does; the per-segment options override the pool's.
    pub fn spawn<R>(
        &self,
        source: R,
        key: Path,
        opts: Option<IngestOptions>,
        progress: Arc<dyn ProgressSink>,
    ) -> JoinHandle<Result<IngestOutcome, IngestError>>
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        let pool = self.clone();
        tokio::spawn(async move {
            // INVARIANT: the pool's semaphore is never closed.
            let _slot = pool
                .slots
                .acquire()
                .await
                .expect("pool semaphore is never closed");
            let opts = opts.unwrap_or_else(|| (*pool.opts).clone());
            ingest_segment(source, &pool.store, &key, &opts, progress.as_ref()).await
        })
    }

    /// Ingest every `(source, key)` pair, at most `concurrency` at a time;
    /// results in input order.
    pub async fn ingest_all<R, I>(&self, segments: I) -> Vec<Result<IngestOutcome, IngestError>>
    where
        R: AsyncRead + Unpin + Send + 'static,
        I: IntoIterator<Item = (R, Path)>,
    {
        let handles: Vec<_> = segments
            .into_iter()
            .map(|(source, key)| {
                let h = self.spawn(source, key.clone(), None, Arc::new(crate::NoProgress));
                (key, h)
            })
            .collect();
        let mut out = Vec::with_capacity(handles.len());
        for (key, h) in handles {
            out.push(match h.await {
                Ok(r) => r,
                Err(e) => Err(IngestError::Internal {
                    key: key.to_string(),
                    detail: format!("ingest task failed: {e}"),
                }),
            });
        }
        out
    }
}
