//! Part buffers: how one segment's memory stays bounded.
//!
//! The life of a part buffer:
//!
//! 1. the reader takes a permit from the segment's semaphore (waiting while
//!    `parts_in_flight` buffers are alive), then a buffer from the pool;
//! 2. it fills the buffer from the source and freezes it into a [`Part`],
//!    which owns the permit;
//! 3. the hashing thread and the upload task each hold an `Arc<Part>`; the
//!    upload resends `Bytes` clones of it on retry;
//! 4. when both are done the last `Arc` drops: the buffer goes back to the
//!    pool (when nobody else still holds a clone of it) and the permit is
//!    released, letting the reader fill the next part.
//!
//! Reusing buffers keeps the allocator from scattering freed 16 MiB blocks
//! over per-thread arenas, which would make the resident size grow past the
//! budget even though only a few parts are ever alive. This module must
//! never hand out a buffer that is still referenced elsewhere.

use std::sync::{Arc, Mutex};

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::OwnedSemaphorePermit;

/// Free part buffers of one segment.
#[derive(Debug)]
pub(crate) struct BufferPool {
    part_size: usize,
    free: Mutex<Vec<BytesMut>>,
}

impl BufferPool {
    pub fn new(part_size: usize) -> Arc<Self> {
        Arc::new(BufferPool {
            part_size,
            free: Mutex::new(Vec::new()),
        })
    }

    /// An empty buffer with room for one part.
    pub fn take(&self) -> BytesMut {
        let reused = self.free.lock().ok().and_then(|mut f| f.pop());
        match reused {
            Some(b) => b,
            None => BytesMut::with_capacity(self.part_size),
        }
    }

    fn give_back(&self, bytes: Bytes) {
        // Only a buffer nobody else references can be written again.
        if let Ok(mut b) = bytes.try_into_mut() {
            b.clear();
            if b.capacity() >= self.part_size {
                if let Ok(mut free) = self.free.lock() {
                    free.push(b);
                }
            }
        }
    }
}

/// One filled part: its bytes, its index, and the permit that counts it
/// against the segment's in-flight limit.
#[derive(Debug)]
pub(crate) struct Part {
    /// The part's bytes; cloned (a reference count) for each send.
    pub bytes: Bytes,
    /// 0-based part index.
    pub index: usize,
    /// Where the buffer returns when the part is done.
    pool: Arc<BufferPool>,
    /// Released when the part is dropped, after the buffer went back to the
    /// pool. Taken by the reader before it filled the buffer.
    _permit: OwnedSemaphorePermit,
}

impl Part {
    pub fn new(
        bytes: Bytes,
        index: usize,
        pool: Arc<BufferPool>,
        permit: OwnedSemaphorePermit,
    ) -> Arc<Self> {
        Arc::new(Part {
            bytes,
            index,
            pool,
            _permit: permit,
        })
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }
}

impl AsRef<[u8]> for Part {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

/// The hashing thread receives `Arc<Part>`.
#[derive(Debug)]
pub(crate) struct SharedPart(pub Arc<Part>);

impl AsRef<[u8]> for SharedPart {
    fn as_ref(&self) -> &[u8] {
        &self.0.bytes
    }
}

impl Drop for Part {
    fn drop(&mut self) {
        let bytes = std::mem::take(&mut self.bytes);
        self.pool.give_back(bytes);
        // `_permit` is dropped after this, releasing the slot.
    }
}

/// Fill `buf` from `source` up to `part_size` bytes or the end of the
/// source. Returns the filled buffer (shorter than `part_size` only at the
/// end of the source) or the I/O error with the bytes read in this call.
pub(crate) async fn fill<R>(
    source: &mut R,
    mut buf: BytesMut,
    part_size: usize,
) -> Result<BytesMut, (std::io::Error, usize)>
where
    R: AsyncRead + Unpin + ?Sized,
{
    if buf.capacity() < part_size {
        buf.reserve(part_size - buf.len());
    }
    while buf.len() < part_size {
        let room = part_size - buf.len();
        let mut limited = (&mut buf).limit(room);
        match source.read_buf(&mut limited).await {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err((e, buf.len())),
        }
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::Semaphore;

    #[tokio::test]
    async fn buffers_return_to_the_pool_and_release_their_permit() {
        let pool = BufferPool::new(1024);
        let sem = Arc::new(Semaphore::new(1));
        let permit = sem.clone().acquire_owned().await.unwrap();
        let mut src: &[u8] = &[7u8; 3000];
        let buf = fill(&mut src, pool.take(), 1024).await.unwrap();
        assert_eq!(buf.len(), 1024);
        let part = Part::new(buf.freeze(), 0, pool.clone(), permit);
        let upload_copy = part.bytes.clone();
        assert_eq!(sem.available_permits(), 0);
        drop(part);
        // The permit is back, but the buffer is still referenced by the
        // upload's clone, so it must not return to the pool.
        assert_eq!(sem.available_permits(), 1);
        assert!(pool.free.lock().unwrap().is_empty());
        drop(upload_copy);

        let permit = sem.clone().acquire_owned().await.unwrap();
        let buf = fill(&mut src, pool.take(), 1024).await.unwrap();
        let part = Part::new(buf.freeze(), 1, pool.clone(), permit);
        drop(part);
        assert_eq!(pool.free.lock().unwrap().len(), 1);
        let again = pool.take();
        assert!(again.capacity() >= 1024 && again.is_empty());
    }

    #[tokio::test]
    async fn fill_stops_at_the_end_of_the_source() {
        let pool = BufferPool::new(100);
        let mut src: &[u8] = &[1u8; 150];
        let a = fill(&mut src, pool.take(), 100).await.unwrap();
        let b = fill(&mut src, pool.take(), 100).await.unwrap();
        let c = fill(&mut src, pool.take(), 100).await.unwrap();
        assert_eq!((a.len(), b.len(), c.len()), (100, 50, 0));
    }
}
