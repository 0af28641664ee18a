//! The threads that read, hash and write a local file into the local
//! store, and what they share with the async side: one thread reading,
//! hashing and writing 64 KiB steps from one cache-resident buffer
//! ([`read_hash_write`]), or a reading thread handing 1 MiB chunks to a
//! writing thread ([`read_and_hash`], [`write_chunks`]) when a core is
//! free; [`Active`] decides which.
//!
//! Memory: one 64 KiB buffer, plus `CHUNKS` buffers of 1 MiB with a
//! writing thread, whatever the segment's size. The threads write only to
//! the staging file they are given, and the writer flushes it to the device
//! before it reports success; this module must never name, link or remove
//! a file, and never report success for bytes not synced.

use std::fs::File;
use std::io::{self, Read as _, Write as _};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::split::StreamHasher;
use custos_core::digest::Digests;

use crate::buffers::FILE_READ_STEP;

/// Bytes handed from the reading thread to the writing thread at once.
pub(crate) const LOCAL_CHUNK: usize = 1024 * 1024;

/// Chunk buffers per segment: the writer's queue plus the one being read
/// and the one being written.
const CHUNKS: usize = 6;

/// Local-file ingests running in this process.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

/// One running local-file ingest, and whether it gets two threads.
///
/// Two threads (read and hash on one core, write on the other) finish one
/// file sooner when a core is free, at the price of handing every chunk
/// between cores (measured ~0.1-0.25 s more CPU per GiB). When ingests
/// already fill the cores, as four recorders on a two-core dock do, each
/// runs on one thread, reading, hashing and writing each 64 KiB step from
/// one cache-resident buffer: the least CPU per byte.
#[derive(Debug)]
pub(crate) struct Active {
    /// Whether this ingest overlaps its writes on a second thread.
    pub overlap: bool,
}

impl Active {
    pub(crate) fn enter() -> Active {
        let before = ACTIVE.fetch_add(1, Ordering::Relaxed);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Active {
            overlap: 2 * (before + 1) <= cores,
        }
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        ACTIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counters the two threads update and the async side reports as progress.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Bytes read (and hashed) so far.
    pub read: AtomicU64,
    /// Bytes written to the staging file so far.
    pub written: AtomicU64,
    /// Set when the ingest is abandoned (its future dropped): both threads
    /// stop at their next chunk.
    cancelled: AtomicBool,
}

/// Sets [`Shared::cancelled`] when dropped: held by the async side, so a
/// cancelled ingest stops its threads.
#[derive(Debug)]
pub(crate) struct StopOnDrop(pub Arc<Shared>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.cancelled.store(true, Ordering::Relaxed);
    }
}

/// What the reading thread hands the writing thread.
pub(crate) enum Msg {
    /// A full buffer, or a shorter last one: `(buffer, bytes used)`.
    Chunk(Vec<u8>, usize),
    /// The source ended: flush and finish.
    End,
}

/// The two channels between the threads.
pub(crate) struct Channels {
    /// Reader to writer: chunks, bounded.
    pub to_writer: SyncSender<Msg>,
    /// Writer side of the chunk channel.
    pub from_reader: Receiver<Msg>,
    /// Writer to reader: emptied buffers for reuse.
    pub back: Sender<Vec<u8>>,
    /// Reader side of the return channel.
    pub free: Receiver<Vec<u8>>,
}

impl Channels {
    pub(crate) fn new() -> Self {
        let (to_writer, from_reader) = mpsc::sync_channel(CHUNKS - 2);
        let (back, free) = mpsc::channel();
        Channels {
            to_writer,
            from_reader,
            back,
            free,
        }
    }
}

/// How the reading thread ended, short of success.
#[derive(Debug)]
pub(crate) enum ReadFail {
    /// The source failed after `read` bytes.
    Source(io::Error, u64),
    /// The writer stopped (it failed, and says why) or the ingest was
    /// abandoned.
    Stopped,
}

/// What the reading thread achieved.
#[derive(Debug)]
pub(crate) struct ReadDone {
    pub digests: Digests,
    pub bytes: u64,
    /// Time inside the hash functions.
    pub hash: Duration,
    /// Time inside read system calls.
    pub read: Duration,
    /// Time waiting for a free buffer (the writer was slower).
    pub stalled: Duration,
}

/// The reading thread: read `file` to its end in 64 KiB steps into one
/// small buffer that stays in the core's cache, hash each step from there,
/// append it to the current chunk buffer, and queue full chunks for the
/// writer; `End` once the source is exhausted. (Reading straight into the
/// 1 MiB chunks was measured slower: the kernel's copy into memory the
/// other core just wrote out costs more than this user-space copy.)
pub(crate) fn read_and_hash(
    mut file: File,
    mut hasher: StreamHasher,
    to_writer: SyncSender<Msg>,
    free: Receiver<Vec<u8>>,
    shared: &Shared,
) -> Result<ReadDone, ReadFail> {
    let (mut hash, mut read, mut stalled) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut step = vec![0u8; FILE_READ_STEP];
    let mut total = 0u64;
    let mut allocated = 0;
    loop {
        if shared.cancelled.load(Ordering::Relaxed) {
            return Err(ReadFail::Stopped);
        }
        let mut buf = match free.try_recv() {
            Ok(b) => b,
            Err(_) if allocated < CHUNKS => {
                allocated += 1;
                Vec::with_capacity(LOCAL_CHUNK)
            }
            Err(_) => {
                let t = Instant::now();
                let b = free.recv().map_err(|_| ReadFail::Stopped)?;
                stalled += t.elapsed();
                b
            }
        };
        buf.clear();
        let mut end = false;
        while buf.len() < LOCAL_CHUNK {
            let want = (LOCAL_CHUNK - buf.len()).min(step.len());
            let t = Instant::now();
            let r = file.read(&mut step[..want]);
            read += t.elapsed();
            match r {
                Ok(0) => {
                    end = true;
                    break;
                }
                Ok(n) => {
                    let t = Instant::now();
                    hasher.update(&step[..n]);
                    hash += t.elapsed();
                    buf.extend_from_slice(&step[..n]);
                    total += n as u64;
                    shared.read.store(total, Ordering::Relaxed);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ReadFail::Source(e, total)),
            }
        }
        if !buf.is_empty() {
            let len = buf.len();
            to_writer
                .send(Msg::Chunk(buf, len))
                .map_err(|_| ReadFail::Stopped)?;
        }
        if end {
            to_writer.send(Msg::End).map_err(|_| ReadFail::Stopped)?;
            return Ok(ReadDone {
                digests: hasher.finalize(),
                bytes: total,
                hash,
                read,
                stalled,
            });
        }
    }
}

/// Read, hash and write on one thread, 64 KiB at a time: each step is
/// read into one small buffer that stays in the core's cache, hashed from
/// there and written from there. Ends with the file synced.
pub(crate) fn read_hash_write(
    mut file: File,
    mut hasher: StreamHasher,
    mut out: File,
    shared: &Shared,
) -> Result<(ReadDone, Duration), (ReadFail, Option<io::Error>)> {
    let (mut hash, mut read, mut write) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut step = vec![0u8; FILE_READ_STEP];
    let mut total = 0u64;
    loop {
        if shared.cancelled.load(Ordering::Relaxed) {
            return Err((ReadFail::Stopped, None));
        }
        let t = Instant::now();
        let r = file.read(&mut step);
        read += t.elapsed();
        match r {
            Ok(0) => break,
            Ok(n) => {
                let t = Instant::now();
                hasher.update(&step[..n]);
                hash += t.elapsed();
                total += n as u64;
                shared.read.store(total, Ordering::Relaxed);
                let t = Instant::now();
                out.write_all(&step[..n])
                    .map_err(|e| (ReadFail::Stopped, Some(e)))?;
                write += t.elapsed();
                shared.written.store(total, Ordering::Relaxed);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err((ReadFail::Source(e, total), None)),
        }
    }
    let t = Instant::now();
    out.sync_data().map_err(|e| (ReadFail::Stopped, Some(e)))?;
    write += t.elapsed();
    Ok((
        ReadDone {
            digests: hasher.finalize(),
            bytes: total,
            hash,
            read,
            stalled: Duration::ZERO,
        },
        write,
    ))
}

/// The writing thread: append every chunk to the staging file, then flush
/// it to the device. Returns the time spent writing and syncing. Ends with
/// an error when a write fails, or when the reader went away without
/// `End` (the source failed or the ingest was abandoned).
pub(crate) fn write_chunks(
    mut file: File,
    from_reader: Receiver<Msg>,
    back: Sender<Vec<u8>>,
    shared: &Shared,
) -> io::Result<Duration> {
    let mut busy = Duration::ZERO;
    while let Ok(msg) = from_reader.recv() {
        if shared.cancelled.load(Ordering::Relaxed) {
            break;
        }
        let t = Instant::now();
        match msg {
            Msg::Chunk(buf, len) => {
                file.write_all(&buf[..len])?;
                busy += t.elapsed();
                shared.written.fetch_add(len as u64, Ordering::Relaxed);
                // The reader may have finished already: nobody to return to.
                let _ = back.send(buf);
            }
            Msg::End => {
                file.sync_data()?;
                busy += t.elapsed();
                return Ok(busy);
            }
        }
    }
    Err(io::Error::other(
        "the ingest stopped before the end of the source",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::staging::{create_staging, link_into_place};

    fn run(body: &[u8]) -> (Result<ReadDone, ReadFail>, io::Result<Duration>, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::write(&src, body).unwrap();
        let dest = dir.path().join("a/b/obj");
        let (out, staging) = create_staging(&dest).unwrap();
        let ch = Channels::new();
        let shared = Arc::new(Shared::default());
        let s2 = shared.clone();
        let writer = std::thread::spawn(move || write_chunks(out, ch.from_reader, ch.back, &s2));
        let r = read_and_hash(
            File::open(&src).unwrap(),
            StreamHasher::sha256(),
            ch.to_writer,
            ch.free,
            &shared,
        );
        let w = writer.join().unwrap();
        if r.is_ok() && w.is_ok() {
            link_into_place(staging, &dest, dir.path()).unwrap();
            (r, w, std::fs::read(&dest).unwrap())
        } else {
            drop(staging);
            (r, w, Vec::new())
        }
    }

    #[test]
    fn chunk_boundaries_land_byte_identical() {
        for size in [
            0,
            1,
            LOCAL_CHUNK - 1,
            LOCAL_CHUNK,
            LOCAL_CHUNK + 1,
            7 * LOCAL_CHUNK + 3,
        ] {
            let body: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
            let (r, w, stored) = run(&body);
            let r = r.unwrap();
            w.unwrap();
            assert_eq!(r.bytes, size as u64);
            assert_eq!(r.digests.sha256, custos_core::digest::Digest::sha256(&body));
            assert_eq!(stored, body, "size {size}");
        }
    }

    #[test]
    fn one_thread_lands_byte_identical_and_synced() {
        for size in [0, 1, FILE_READ_STEP + 1, 3 * LOCAL_CHUNK + 5] {
            let body: Vec<u8> = (0..size).map(|i| (i * 13 % 251) as u8).collect();
            let dir = tempfile::tempdir().unwrap();
            let src = dir.path().join("src");
            std::fs::write(&src, &body).unwrap();
            let dest = dir.path().join("d/obj");
            let (out, staging) = create_staging(&dest).unwrap();
            let shared = Shared::default();
            let (done, _) = read_hash_write(
                File::open(&src).unwrap(),
                StreamHasher::sha256(),
                out,
                &shared,
            )
            .unwrap_or_else(|_| panic!("size {size}"));
            assert_eq!(done.bytes, size as u64);
            assert_eq!(
                done.digests.sha256,
                custos_core::digest::Digest::sha256(&body)
            );
            link_into_place(staging, &dest, dir.path()).unwrap();
            assert_eq!(std::fs::read(&dest).unwrap(), body, "size {size}");
            assert_eq!(
                std::fs::read_dir(dest.parent().unwrap()).unwrap().count(),
                1
            );
        }
    }

    #[test]
    fn an_abandoned_write_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("obj");
        let (out, staging) = create_staging(&dest).unwrap();
        let ch = Channels::new();
        let shared = Shared::default();
        ch.to_writer.send(Msg::Chunk(vec![1u8; 10], 10)).unwrap();
        drop(ch.to_writer);
        let w = write_chunks(out, ch.from_reader, ch.back, &shared);
        assert!(w.is_err(), "no End: the writer must not report success");
        drop(staging);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
