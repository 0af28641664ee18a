//! Objects of the local filesystem store, written by the pipeline itself
//! rather than through `object_store`'s `LocalFileSystem` upload: a local
//! file (below), an object whole from memory ([`write_whole`]), and the
//! staging file and [`link_into_place`] that a stream of parts uses too
//! (`Run::local_parts` in `segment.rs`).
//!
//! `LocalFileSystem`'s multipart upload writes each part on its own
//! blocking task (a mutex, a seek, a write), never flushes the file to the
//! device, and completes with a rename that replaces whatever the key
//! held. For a local file into a local store this module does instead:
//!
//! - the file is read in 64 KiB steps into one small buffer that stays in
//!   the core's cache, and each step is hashed right after its read;
//! - the bytes go to a staging file `KEY#N` created with `O_EXCL` next to
//!   the final name (the name `object_store` gives unfinished uploads; its
//!   listings skip it): written from the same buffer on the same thread
//!   when other ingests keep the cores busy (the least CPU per byte), or
//!   gathered into 1 MiB chunks for a writing thread when a core is free,
//!   so that reading and hashing on one core overlap writing on the other
//!   ([`Active`] decides);
//! - at the end the writer **flushes the file to the device**
//!   (`fdatasync`), then the staging file is **linked** to the final name
//!   (`link(2)` fails when the name exists, even against a concurrent
//!   writer: no overwrite, invariant 2), the staging name is removed and
//!   the directory is synced, so the name is durable before the caller
//!   records the object anywhere.
//!
//! Crash safety: the final name only ever points at a complete, synced
//! file. A crash before the link leaves at most a staging file, which no
//! listing shows and a later attempt does not reuse (it takes the next
//! free `#N`). Memory: one 64 KiB buffer, plus `CHUNKS` buffers of 1 MiB
//! with a writing thread, whatever the segment's size. This module must never write to the final name other than by
//! linking a synced file to it.

use std::fs::{File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use custos_core::digest::{Digests, MultiHasher};

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

/// A staging file that is removed when dropped, unless it was linked into
/// place.
#[derive(Debug)]
pub(crate) struct Staging {
    path: Option<PathBuf>,
    /// Directories created for it, outermost first; their parents are
    /// synced with the final directory.
    created: Vec<PathBuf>,
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            // Best effort: a left-over staging file is invisible garbage.
            let _ = std::fs::remove_file(p);
        }
    }
}

/// `dest#n`: object_store's name for an unfinished upload to `dest`.
fn staging_path(dest: &FsPath, n: u32) -> PathBuf {
    let mut s = dest.as_os_str().to_owned();
    s.push(format!("#{n}"));
    PathBuf::from(s)
}

/// Create a fresh staging file next to `dest` (and the directories it
/// needs), never opening an existing one.
pub(crate) fn create_staging(dest: &FsPath) -> io::Result<(File, Staging)> {
    let mut created = Vec::new();
    let mut n = 1u32;
    loop {
        let path = staging_path(dest, n);
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(f) => {
                return Ok((
                    f,
                    Staging {
                        path: Some(path),
                        created,
                    },
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => n += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound && created.is_empty() => {
                let parent = dest.parent().ok_or(e)?;
                let mut missing = Vec::new();
                let mut p = Some(parent);
                while let Some(d) = p.filter(|d| !d.exists()) {
                    missing.push(d.to_path_buf());
                    p = d.parent();
                }
                std::fs::create_dir_all(parent)?;
                missing.reverse();
                // At least the parent, so that the branch runs only once.
                created = if missing.is_empty() {
                    vec![parent.to_path_buf()]
                } else {
                    missing
                };
            }
            Err(e) => return Err(e),
        }
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
    mut hasher: MultiHasher,
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
    mut hasher: MultiHasher,
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

/// Store `chunks`, in order, as the whole object `dest` the same durable
/// way: a staging file, `fdatasync`, then [`link_into_place`]. For objects
/// that come whole from memory (a segment shorter than one part, a
/// manifest), which `object_store`'s `LocalFileSystem` would write without
/// a sync and rename over whatever the key held.
pub(crate) fn write_whole<'a>(
    dest: &FsPath,
    root: &FsPath,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> io::Result<()> {
    let (mut out, staging) = create_staging(dest)?;
    for chunk in chunks {
        out.write_all(chunk)?;
    }
    out.sync_data()?;
    drop(out);
    link_into_place(staging, dest, root)
}

/// Give the synced staging file its final name `dest`, without replacing
/// anything there (`AlreadyExists` when the name is taken), then drop the
/// staging name and sync the directories whose entries changed.
pub(crate) fn link_into_place(
    mut staging: Staging,
    dest: &FsPath,
    root: &FsPath,
) -> io::Result<()> {
    let Some(path) = staging.path.clone() else {
        return Err(io::Error::other("staging file already gone"));
    };
    std::fs::hard_link(&path, dest)?;
    // The object is complete under its name; the staging name is only a
    // second link to it now.
    staging.path = None;
    std::fs::remove_file(&path)?;
    let parent = dest.parent().unwrap_or(root);
    File::open(parent)?.sync_all()?;
    // New directories are entries in their own parents.
    for d in &staging.created {
        if let Some(p) = d.parent() {
            if p.starts_with(root) {
                File::open(p)?.sync_all()?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
            MultiHasher::sha256(),
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
                MultiHasher::sha256(),
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
    fn linking_never_replaces_and_staging_files_do_not_collide() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("obj");
        let (_a, sa) = create_staging(&dest).unwrap();
        let (_b, sb) = create_staging(&dest).unwrap();
        assert_ne!(sa.path, sb.path, "each attempt gets its own staging file");
        std::fs::write(&dest, b"taken").unwrap();
        let err = link_into_place(sa, &dest, dir.path()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&dest).unwrap(), b"taken");
        drop(sb);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "staging files are removed when dropped");
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

    #[test]
    fn a_whole_object_lands_in_order_and_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("a/b/manifest.json");
        let parts: [&[u8]; 3] = [b"{\"payload\":", b"", b"\"x\"}"];
        write_whole(&dest, dir.path(), parts).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"{\"payload\":\"x\"}");
        let err = write_whole(&dest, dir.path(), [&b"other"[..]]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&dest).unwrap(), b"{\"payload\":\"x\"}");
        let left: Vec<_> = std::fs::read_dir(dir.path().join("a/b"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec!["manifest.json"], "no staging file is left");
    }
}
