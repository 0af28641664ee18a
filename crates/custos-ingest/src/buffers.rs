//! Part buffers, and the sources that fill them: how one segment's memory
//! stays bounded.
//!
//! The life of a part buffer:
//!
//! 1. the reader takes a permit from the segment's semaphore (waiting while
//!    `parts_in_flight` buffers are alive), then a buffer from the pool;
//! 2. the source fills the buffer, which becomes a [`Part`] owning the
//!    permit (`Vec<u8>` into `Bytes` moves the allocation, no copy);
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

use std::future::Future;
use std::io::{self, Read as _};
use std::sync::{Arc, Mutex};

use bytes::{BufMut, Bytes};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::OwnedSemaphorePermit;

/// Free part buffers of one segment.
#[derive(Debug)]
pub(crate) struct BufferPool {
    part_size: usize,
    free: Mutex<Vec<Vec<u8>>>,
}

impl BufferPool {
    pub fn new(part_size: usize) -> Arc<Self> {
        Arc::new(BufferPool {
            part_size,
            free: Mutex::new(Vec::new()),
        })
    }

    /// An empty buffer with room for one part.
    pub fn take(&self) -> Vec<u8> {
        let reused = self.free.lock().ok().and_then(|mut f| f.pop());
        match reused {
            Some(b) => b,
            None => Vec::with_capacity(self.part_size),
        }
    }

    fn give_back(&self, bytes: Bytes) {
        // Only a buffer nobody else references can be written again.
        if let Ok(b) = bytes.try_into_mut() {
            let mut v = Vec::from(b);
            v.clear();
            if v.capacity() >= self.part_size {
                if let Ok(mut free) = self.free.lock() {
                    free.push(v);
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
        buf: Vec<u8>,
        index: usize,
        pool: Arc<BufferPool>,
        permit: OwnedSemaphorePermit,
    ) -> Arc<Self> {
        Arc::new(Part {
            bytes: Bytes::from(buf),
            index,
            pool,
            _permit: permit,
        })
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }
}

/// The hashing thread receives `Arc<Part>`.
#[derive(Debug)]
pub(crate) struct SharedPart(pub Arc<Part>);

impl crate::hasher::Chunks for SharedPart {
    fn each(&self, f: &mut dyn FnMut(&[u8])) {
        f(&self.0.bytes)
    }
}

impl Drop for Part {
    fn drop(&mut self) {
        let bytes = std::mem::take(&mut self.bytes);
        self.pool.give_back(bytes);
        // `_permit` is dropped after this, releasing the slot.
    }
}

/// The bytes of a segment, one part at a time.
pub(crate) trait PartSource: Send {
    /// Fill `buf` up to `part_size` bytes or the end of the source. Returns
    /// the buffer (shorter than `part_size` only at the end) or the I/O
    /// error with the bytes read in this call.
    fn fill(
        &mut self,
        buf: Vec<u8>,
        part_size: usize,
    ) -> impl Future<Output = Result<Vec<u8>, (io::Error, usize)>> + Send;
}

/// Any async reader.
pub(crate) struct AsyncSource<R>(pub R);

impl<R: AsyncRead + Unpin + Send> PartSource for AsyncSource<R> {
    async fn fill(
        &mut self,
        mut buf: Vec<u8>,
        part_size: usize,
    ) -> Result<Vec<u8>, (io::Error, usize)> {
        buf.reserve(part_size.saturating_sub(buf.len()));
        while buf.len() < part_size {
            let room = part_size - buf.len();
            // Reads into the spare capacity: no zeroing, no copy.
            let mut limited = (&mut buf).limit(room);
            match self.0.read_buf(&mut limited).await {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err((e, buf.len())),
            }
        }
        Ok(buf)
    }
}

/// A local file read on a blocking thread straight into the part buffer.
/// `tokio::fs::File` reads through its own 2 MiB buffer and copies; this
/// saves that copy and most thread hand-overs, roughly doubling the read
/// rate, which matters on a dock whose cores also hash.
pub(crate) struct FileSource {
    /// `None` only while a read is running on the blocking thread (or after
    /// that thread died).
    file: Option<std::fs::File>,
}

impl FileSource {
    pub fn new(file: std::fs::File) -> Self {
        FileSource { file: Some(file) }
    }
}

impl PartSource for FileSource {
    async fn fill(
        &mut self,
        mut buf: Vec<u8>,
        part_size: usize,
    ) -> Result<Vec<u8>, (io::Error, usize)> {
        let Some(mut file) = self.file.take() else {
            return Err((io::Error::other("an earlier read of this file failed"), 0));
        };
        let joined = tokio::task::spawn_blocking(move || {
            let before = buf.len();
            let want = part_size.saturating_sub(before) as u64;
            // `read_to_end` reads into the spare capacity without zeroing it.
            let r = (&mut file).take(want).read_to_end(&mut buf);
            let got = buf.len() - before;
            (file, buf, r.map(|_| ()).map_err(|e| (e, got)))
        })
        .await;
        match joined {
            Ok((file, buf, r)) => {
                self.file = Some(file);
                r.map(|()| buf)
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
    async fn buffers_return_to_the_pool_and_release_their_permit() {
        let pool = BufferPool::new(1024);
        let sem = Arc::new(Semaphore::new(1));
        let permit = sem.clone().acquire_owned().await.unwrap();
        let mut src = AsyncSource(&[7u8; 3000][..]);
        let buf = src.fill(pool.take(), 1024).await.unwrap();
        assert_eq!(buf.len(), 1024);
        let part = Part::new(buf, 0, pool.clone(), permit);
        let upload_copy = part.bytes.clone();
        assert_eq!(sem.available_permits(), 0);
        drop(part);
        // The permit is back, but the buffer is still referenced by the
        // upload's clone, so it must not return to the pool.
        assert_eq!(sem.available_permits(), 1);
        assert!(pool.free.lock().unwrap().is_empty());
        drop(upload_copy);

        let permit = sem.clone().acquire_owned().await.unwrap();
        let buf = src.fill(pool.take(), 1024).await.unwrap();
        let first_ptr = buf.as_ptr();
        let part = Part::new(buf, 1, pool.clone(), permit);
        assert_eq!(
            part.bytes.as_ptr(),
            first_ptr,
            "Vec into Bytes must not copy"
        );
        drop(part);
        assert_eq!(pool.free.lock().unwrap().len(), 1);
        let again = pool.take();
        assert!(again.capacity() >= 1024 && again.is_empty());
        assert_eq!(again.as_ptr(), first_ptr, "the very buffer comes back");
    }

    #[tokio::test]
    async fn sources_stop_at_the_end() {
        let pool = BufferPool::new(100);
        let mut src = AsyncSource(&[1u8; 150][..]);
        let a = src.fill(pool.take(), 100).await.unwrap();
        let b = src.fill(pool.take(), 100).await.unwrap();
        let c = src.fill(pool.take(), 100).await.unwrap();
        assert_eq!((a.len(), b.len(), c.len()), (100, 50, 0));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, [2u8; 150]).unwrap();
        let mut src = FileSource::new(std::fs::File::open(&path).unwrap());
        let a = src.fill(pool.take(), 100).await.unwrap();
        let b = src.fill(pool.take(), 100).await.unwrap();
        let c = src.fill(pool.take(), 100).await.unwrap();
        assert_eq!((a.len(), b.len(), c.len()), (100, 50, 0));
        assert!(a.iter().chain(&b).all(|&x| x == 2));
    }
}
