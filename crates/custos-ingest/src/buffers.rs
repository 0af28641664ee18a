//! Part buffers, and the sources that fill them: how one segment's memory
//! stays bounded.
//!
//! A part (16 MiB by default, the unit of the multipart upload) is read as
//! a few chunks (1 MiB), and each chunk goes to the hashing thread the
//! moment it is read, while it is still in the processor's cache: hashing
//! a 16 MiB buffer after the fact would read it back from memory, and on a
//! small dock memory bandwidth, not SHA-256, is what runs out first.
//!
//! The life of a part:
//!
//! 1. the reader takes a permit from the segment's semaphore (waiting while
//!    `parts_in_flight` parts are alive);
//! 2. it fills chunk buffers from the pool, handing each to the hashing
//!    thread (bounded queue) as soon as it is full (`Vec<u8>` into `Bytes`
//!    moves the allocation, no copy);
//! 3. the chunks form a [`Part`], owning the permit, which the upload task
//!    sends (and resends on retry) as a payload of `Bytes` clones;
//! 4. when the upload is acknowledged the part drops, releasing the permit;
//!    each chunk goes back to the pool once the hasher is done with it too.
//!
//! Memory per segment: `parts_in_flight` parts plus the few chunks queued
//! for the hasher. Reusing buffers keeps the allocator from scattering
//! freed blocks over per-thread arenas, which would make the resident size
//! grow past the budget even though only a few parts are ever alive. This
//! module must never hand out a buffer that is still referenced elsewhere.

use std::future::Future;
use std::io::{self, Read as _};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::split::StreamHasher;

use bytes::{BufMut, Bytes};
use object_store::PutPayload;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::OwnedSemaphorePermit;

/// Free chunk buffers of one segment.
#[derive(Debug)]
pub(crate) struct ChunkPool {
    chunk_size: usize,
    free: Mutex<Vec<Vec<u8>>>,
}

impl ChunkPool {
    pub(crate) fn new(chunk_size: usize) -> Arc<Self> {
        Arc::new(ChunkPool {
            chunk_size,
            free: Mutex::new(Vec::new()),
        })
    }

    /// An empty buffer with room for one chunk.
    pub(crate) fn take(&self) -> Vec<u8> {
        let reused = self.free.lock().ok().and_then(|mut f| f.pop());
        match reused {
            Some(b) => b,
            None => Vec::with_capacity(self.chunk_size),
        }
    }

    fn give_back(&self, bytes: Bytes) {
        // Only a buffer nobody else references can be written again.
        if let Ok(b) = bytes.try_into_mut() {
            let mut v = Vec::from(b);
            v.clear();
            if v.capacity() >= self.chunk_size {
                if let Ok(mut free) = self.free.lock() {
                    free.push(v);
                }
            }
        }
    }
}

/// One chunk of a part: read in one go, hashed at once while it is still
/// in the processor's cache, sent later as a slice of the part's payload.
#[derive(Debug)]
pub(crate) struct Chunk {
    pub bytes: Bytes,
    pool: Arc<ChunkPool>,
}

impl Chunk {
    pub(crate) fn new(buf: Vec<u8>, pool: Arc<ChunkPool>) -> Arc<Self> {
        // `Vec<u8>` into `Bytes` moves the allocation; nothing is copied.
        Arc::new(Chunk {
            bytes: Bytes::from(buf),
            pool,
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.bytes.len()
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        let bytes = std::mem::take(&mut self.bytes);
        self.pool.give_back(bytes);
    }
}

/// The hashing thread receives each chunk as soon as it is read.
#[derive(Debug)]
pub(crate) struct HashChunk(pub Arc<Chunk>);

impl crate::hasher::Chunks for HashChunk {
    fn each(&self, f: &mut dyn FnMut(&[u8])) {
        f(&self.0.bytes)
    }
}

/// One filled part: its chunks, its index, and the permit that counts it
/// against the segment's in-flight limit.
#[derive(Debug)]
pub(crate) struct Part {
    /// The part's bytes, in order.
    pub chunks: Vec<Arc<Chunk>>,
    /// Total bytes.
    pub len: usize,
    /// 0-based part index.
    pub index: usize,
    /// Released when the part is dropped (its chunks go back to the pool
    /// first, if the hasher is done with them). Taken by the reader before
    /// it read the part's first chunk.
    _permit: OwnedSemaphorePermit,
}

impl Part {
    pub(crate) fn new(chunks: Vec<Arc<Chunk>>, index: usize, permit: OwnedSemaphorePermit) -> Self {
        let len = chunks.iter().map(|c| c.len()).sum();
        Part {
            chunks,
            len,
            index,
            _permit: permit,
        }
    }

    /// The part as an upload payload: reference counts of its chunks.
    pub(crate) fn payload(&self) -> PutPayload {
        self.chunks.iter().map(|c| c.bytes.clone()).collect()
    }
}

/// What one read produced.
#[derive(Debug)]
pub(crate) struct Filled {
    /// The bytes read.
    pub buf: Vec<u8>,
    /// The hasher lent to the read, back (it has hashed `buf`), when the
    /// source hashes inline.
    pub hasher: Option<StreamHasher>,
    /// Time spent hashing inside the read.
    pub hashing: Duration,
}

/// The bytes of a segment, one chunk at a time.
pub(crate) trait PartSource: Send {
    /// Whether `fill` hashes what it reads when lent the hasher.
    fn hashes_inline(&self) -> bool {
        false
    }

    /// Fill `buf` up to `limit` bytes or the end of the source, hashing
    /// them with `hasher` if one is lent. Returns the buffer (shorter than
    /// `limit` only at the end) or the I/O error with the bytes read in this
    /// call (the lent hasher is then lost: the ingest fails anyway).
    fn fill(
        &mut self,
        buf: Vec<u8>,
        limit: usize,
        hasher: Option<StreamHasher>,
    ) -> impl Future<Output = Result<Filled, (io::Error, usize)>> + Send;
}

/// Any async reader. It never hashes inline: it reads on the runtime's
/// threads, which must not hash.
pub(crate) struct AsyncSource<R>(pub R);

impl<R: AsyncRead + Unpin + Send> PartSource for AsyncSource<R> {
    async fn fill(
        &mut self,
        mut buf: Vec<u8>,
        limit: usize,
        hasher: Option<StreamHasher>,
    ) -> Result<Filled, (io::Error, usize)> {
        buf.reserve(limit.saturating_sub(buf.len()));
        while buf.len() < limit {
            let room = limit - buf.len();
            // Reads into the spare capacity: no zeroing, no copy.
            let mut limited = (&mut buf).limit(room);
            match self.0.read_buf(&mut limited).await {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err((e, buf.len())),
            }
        }
        Ok(Filled {
            buf,
            hasher,
            hashing: Duration::ZERO,
        })
    }
}

/// Bytes per read system call of a local file: 64 KiB, a buffer that
/// stays in the core's cache (see [`FileSource`]).
pub(crate) const FILE_READ_STEP: usize = 64 * 1024;

/// A local file, read on a blocking thread.
///
/// Each read system call fills one small buffer that stays in the core's
/// cache; the bytes are hashed from there and then appended to the chunk.
/// Measured on the 2-core reference machine (see benches/README.md), the
/// kernel copies a file into a small cache-resident buffer about three
/// times faster than into a 1 MiB chunk, and the extra user-space copy
/// costs less than the difference. `tokio::fs::File` would instead read
/// through its own 2 MiB buffer on the runtime's blocking pool.
pub(crate) struct FileSource {
    /// The file and the step buffer; `None` only while a read is running
    /// on the blocking thread (or after that thread died).
    state: Option<(std::fs::File, Vec<u8>)>,
}

impl FileSource {
    pub(crate) fn new(file: std::fs::File) -> Self {
        FileSource {
            state: Some((file, vec![0u8; FILE_READ_STEP])),
        }
    }
}

impl PartSource for FileSource {
    fn hashes_inline(&self) -> bool {
        true
    }

    async fn fill(
        &mut self,
        mut buf: Vec<u8>,
        limit: usize,
        mut hasher: Option<StreamHasher>,
    ) -> Result<Filled, (io::Error, usize)> {
        let Some((mut file, mut step)) = self.state.take() else {
            return Err((io::Error::other("an earlier read of this file failed"), 0));
        };
        let joined = tokio::task::spawn_blocking(move || {
            buf.clear();
            buf.reserve(limit);
            let mut hashing = Duration::ZERO;
            let r = loop {
                let want = (limit - buf.len()).min(step.len());
                if want == 0 {
                    break Ok(());
                }
                match file.read(&mut step[..want]) {
                    Ok(0) => break Ok(()),
                    Ok(n) => {
                        let fresh = &step[..n];
                        if let Some(h) = hasher.as_mut() {
                            let t = Instant::now();
                            h.update(fresh);
                            hashing += t.elapsed();
                        }
                        buf.extend_from_slice(fresh);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            };
            let got = buf.len();
            let r = r.map(|()| Filled {
                buf,
                hasher,
                hashing,
            });
            (file, step, r.map_err(|e| (e, got)))
        })
        .await;
        match joined {
            Ok((file, step, r)) => {
                self.state = Some((file, step));
                r
            }
            Err(e) => Err((io::Error::other(format!("file read thread failed: {e}")), 0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::Semaphore;

    #[tokio::test]
    async fn chunks_return_to_the_pool_and_parts_release_their_permit() {
        let pool = ChunkPool::new(1024);
        let sem = Arc::new(Semaphore::new(1));
        let permit = sem.clone().acquire_owned().await.unwrap();
        let mut src = AsyncSource(&[7u8; 3000][..]);
        let a = src.fill(pool.take(), 1024, None).await.unwrap().buf;
        let a_ptr = a.as_ptr();
        let b = src.fill(pool.take(), 1024, None).await.unwrap().buf;
        let (a, b) = (Chunk::new(a, pool.clone()), Chunk::new(b, pool.clone()));
        assert_eq!(a.bytes.as_ptr(), a_ptr, "Vec into Bytes must not copy");
        let hashing = HashChunk(a.clone());
        let part = Part::new(vec![a, b], 0, permit);
        assert_eq!(part.len, 2048);
        let payload = part.payload();
        assert_eq!(payload.content_length(), 2048);
        assert_eq!(sem.available_permits(), 0);
        drop(part);
        // The permit is back; chunk b is still referenced by the payload
        // and chunk a by the hasher, so neither may return to the pool.
        assert_eq!(sem.available_permits(), 1);
        assert!(pool.free.lock().unwrap().is_empty());
        drop(payload);
        assert_eq!(
            pool.free.lock().unwrap().len(),
            0,
            "b was dropped while shared"
        );
        drop(hashing);
        assert_eq!(pool.free.lock().unwrap().len(), 1);
        let again = pool.take();
        assert!(again.capacity() >= 1024 && again.is_empty());
        assert_eq!(again.as_ptr(), a_ptr, "the very buffer comes back");
    }

    #[tokio::test]
    async fn sources_stop_at_the_end() {
        let pool = ChunkPool::new(100);
        let mut src = AsyncSource(&[1u8; 150][..]);
        let a = src.fill(pool.take(), 100, None).await.unwrap().buf;
        let b = src.fill(pool.take(), 100, None).await.unwrap().buf;
        let c = src.fill(pool.take(), 100, None).await.unwrap().buf;
        assert_eq!((a.len(), b.len(), c.len()), (100, 50, 0));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, [2u8; 150]).unwrap();
        let mut src = FileSource::new(std::fs::File::open(&path).unwrap());
        assert!(src.hashes_inline());
        let a = src
            .fill(pool.take(), 100, Some(StreamHasher::sha256()))
            .await
            .unwrap();
        let h = a.hasher.expect("the hasher comes back");
        assert_eq!(h.bytes(), 100);
        let b = src.fill(pool.take(), 100, Some(h)).await.unwrap();
        let c = src.fill(pool.take(), 100, b.hasher).await.unwrap();
        assert_eq!((a.buf.len(), b.buf.len(), c.buf.len()), (100, 50, 0));
        assert!(a.buf.iter().chain(&b.buf).all(|&x| x == 2));
        assert_eq!(
            c.hasher.unwrap().finalize().sha256,
            custos_core::digest::Digest::sha256(&[2u8; 150])
        );
    }
}
