//! Where a segment is hashed: on a hashing thread fed through a bounded
//! channel, or inline on the blocking thread that reads a local file.
//!
//! Either way hashing runs on a blocking thread (tokio's `spawn_blocking`),
//! so SHA-256 at 1.7 GB/s never stalls the async runtime that drives the
//! reads and the uploads, and it reads the very buffers the upload sends
//! (`Bytes` clones are reference counts): no byte is copied for it. For a
//! local file, hashing right after each read on the same thread, while the
//! bytes are in that core's cache, costs less than handing them to another
//! core (measured: see benches/README.md). This module must never reorder
//! buffers: the digest is of the stream in source order.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::split::StreamHasher;
use custos_core::digest::Digests;

use crate::buffers::{Chunk, Filled, HashChunk, PartSource};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// What the hashing thread returns.
#[derive(Debug)]
pub(crate) struct Hashed {
    /// The digests of every byte fed in.
    pub digests: Digests,
    /// Total bytes hashed.
    pub bytes: u64,
    /// Time the thread spent inside the hash functions.
    pub busy: Duration,
}

/// What the hashing thread accepts: one buffer, or several in order.
pub(crate) trait Chunks: Send + 'static {
    /// Call `f` on each slice, in order.
    fn each(&self, f: &mut dyn FnMut(&[u8]));
}

impl Chunks for bytes::Bytes {
    fn each(&self, f: &mut dyn FnMut(&[u8])) {
        f(self)
    }
}

impl Chunks for Vec<bytes::Bytes> {
    fn each(&self, f: &mut dyn FnMut(&[u8])) {
        for b in self {
            f(b)
        }
    }
}

/// A running hashing thread.
#[derive(Debug)]
pub(crate) struct HashWorker<T> {
    /// Feeds buffers to the thread. Created here, held by the pipeline;
    /// dropping it (in `finish`) tells the thread the stream has ended.
    tx: mpsc::Sender<T>,
    /// The thread; yields the digests once `tx` is dropped.
    handle: JoinHandle<Hashed>,
    /// Bytes hashed so far, updated by the thread after each buffer, read
    /// by the pipeline for progress reports.
    hashed: Arc<AtomicU64>,
}

/// The hashing thread is gone (it panicked: a bug).
#[derive(Debug)]
pub(crate) struct HasherDied(pub String);

impl<T: Chunks> HashWorker<T> {
    /// Start a thread hashing SHA-256 (and SM3 when `with_sm3`), accepting
    /// up to `queue` buffers ahead of it.
    pub(crate) fn start(hasher: StreamHasher, queue: usize) -> Self {
        let (tx, mut rx) = mpsc::channel::<T>(queue.max(1));
        let hashed = Arc::new(AtomicU64::new(0));
        let counter = hashed.clone();
        let handle = tokio::task::spawn_blocking(move || {
            let mut hasher = hasher;
            let mut busy = Duration::ZERO;
            while let Some(buf) = rx.blocking_recv() {
                let t = Instant::now();
                let mut n = 0;
                buf.each(&mut |data| {
                    hasher.update(data);
                    n += data.len();
                });
                busy += t.elapsed();
                counter.fetch_add(n as u64, Ordering::Relaxed);
                // `buf` is dropped here: for a part buffer that may be the
                // last reference, which returns it to the pool.
            }
            let bytes = hasher.bytes();
            Hashed {
                digests: hasher.finalize(),
                bytes,
                busy,
            }
        });
        HashWorker { tx, handle, hashed }
    }

    /// Queue one buffer; waits while the queue is full.
    pub(crate) async fn feed(&self, buf: T) -> Result<(), HasherDied> {
        self.tx
            .send(buf)
            .await
            .map_err(|_| HasherDied("hashing thread exited early".into()))
    }

    /// Bytes hashed so far.
    pub(crate) fn hashed(&self) -> u64 {
        self.hashed.load(Ordering::Relaxed)
    }

    /// End the stream and wait for the digests.
    pub(crate) async fn finish(self) -> Result<Hashed, HasherDied> {
        drop(self.tx);
        self.handle
            .await
            .map_err(|e| HasherDied(format!("hashing thread failed: {e}")))
    }
}

/// Where one segment's bytes are hashed.
#[derive(Debug)]
pub(crate) enum Hashing {
    /// On a hashing thread fed each chunk as soon as it is read (async
    /// sources, which read on the runtime's threads).
    Thread(HashWorker<HashChunk>),
    /// By the source itself, on the blocking thread that reads, a few KiB
    /// after each read while the bytes are still in that core's cache
    /// (local files). The hasher travels with each read.
    Inline {
        /// `None` while lent to a read (or lost with a failed one). Boxed:
        /// the hasher states are a few hundred bytes.
        hasher: Option<Box<StreamHasher>>,
        bytes: u64,
        busy: Duration,
    },
}

/// Chunks queued for the hashing thread.
const HASH_QUEUE_CHUNKS: usize = 2;

impl Hashing {
    /// The right place for `source`.
    pub(crate) fn start<S: PartSource>(source: &S, hasher: StreamHasher) -> Self {
        if source.hashes_inline() {
            Hashing::Inline {
                hasher: Some(Box::new(hasher)),
                bytes: 0,
                busy: Duration::ZERO,
            }
        } else {
            Hashing::Thread(HashWorker::start(hasher, HASH_QUEUE_CHUNKS))
        }
    }

    /// The hasher for the next read, when the source hashes inline.
    pub(crate) fn lend(&mut self) -> Option<StreamHasher> {
        match self {
            Hashing::Inline { hasher, .. } => hasher.take().map(|h| *h),
            Hashing::Thread(_) => None,
        }
    }

    /// After a read: take the hasher back and count what it hashed.
    pub(crate) fn take_back(&mut self, filled: Filled) -> Vec<u8> {
        if let Hashing::Inline {
            hasher,
            bytes,
            busy,
        } = self
        {
            *hasher = filled.hasher.map(Box::new);
            *bytes += filled.buf.len() as u64;
            *busy += filled.hashing;
        }
        filled.buf
    }

    /// After a read: queue the chunk for the hashing thread (a no-op when
    /// the source hashed it already).
    pub(crate) async fn feed(&self, chunk: &Arc<Chunk>) -> Result<(), HasherDied> {
        match self {
            Hashing::Thread(w) => w.feed(HashChunk(chunk.clone())).await,
            Hashing::Inline { .. } => Ok(()),
        }
    }

    /// Bytes hashed so far.
    pub(crate) fn hashed(&self) -> u64 {
        match self {
            Hashing::Thread(w) => w.hashed(),
            Hashing::Inline { bytes, .. } => *bytes,
        }
    }

    /// The digests of everything read.
    pub(crate) async fn finish(self) -> Result<Hashed, HasherDied> {
        match self {
            Hashing::Thread(w) => w.finish().await,
            Hashing::Inline {
                hasher,
                bytes,
                busy,
            } => {
                let hasher = hasher
                    .ok_or_else(|| HasherDied("the hasher was lost with a failed read".into()))?;
                debug_assert_eq!(hasher.bytes(), bytes);
                Ok(Hashed {
                    digests: hasher.finalize(),
                    bytes,
                    busy,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use custos_core::digest::Digest;

    #[tokio::test]
    async fn hashes_buffers_in_order() {
        let w = HashWorker::start(StreamHasher::sha256(), 2);
        let mut all = Vec::new();
        for i in 0..50u8 {
            let b = Bytes::from(vec![i; 1000 + i as usize]);
            all.extend_from_slice(&b);
            w.feed(b).await.unwrap();
        }
        let h = w.finish().await.unwrap();
        assert_eq!(h.bytes, all.len() as u64);
        assert_eq!(h.digests.sha256, Digest::sha256(&all));
    }
}
