//! The hasher every path of the pipeline feeds: SHA-256 (and SM3 when
//! enabled) over one stream, with SHA-256 moved to a thread of its own
//! when SM3 is on and a core is free.
//!
//! With SM3 on, SM3 bounds the speed: the `sm3` crate runs at roughly a
//! fifth of SHA-256 with SHA-NI, and on one thread SHA-256 adds its time on
//! top (measured: 13 % of `custos hash --algo sm3`'s samples). A
//! [`StreamHasher::Split`] hashes SM3 on the caller's thread, straight from
//! the caller's (cache-hot) buffer, and hands a copy of each buffer to a
//! SHA-256 thread; the copy costs a few microseconds per 64 KiB against
//! ~300 µs of SM3. It only splits while at most half the cores carry a
//! hashing stream with SM3 ([`StreamHasher::new`]): when the cores are
//! busy anyway a second thread adds hand-overs and wins nothing.
//!
//! This module must never reorder bytes (the SHA-256 thread sees the
//! buffers in the order `update` was called) nor return digests before
//! the SHA-256 thread has hashed every byte.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Mutex;
use std::thread::JoinHandle;

use custos_core::digest::{Digest, Digests, MultiHasher, Sm3Hasher, Sm3Unavailable};

/// Bytes gathered before a hand-over to the SHA-256 thread.
const BATCH: usize = 256 * 1024;

/// Batches in flight to the SHA-256 thread (memory per split stream:
/// this many times [`BATCH`]).
const BATCHES: usize = 4;

/// Hashing streams with SM3 alive in this process.
static SM3_STREAMS: AtomicUsize = AtomicUsize::new(0);

/// SHA-256, and SM3 when asked for, over one stream of bytes.
#[derive(Debug)]
pub enum StreamHasher {
    /// Every digest on the caller's thread.
    One(MultiHasher, Option<Sm3Stream>),
    /// SM3 on the caller's thread, SHA-256 on its own.
    Split(SplitHasher),
}

/// Counts one SM3 stream in [`SM3_STREAMS`] while it lives.
#[derive(Debug)]
pub struct Sm3Stream(());

impl Sm3Stream {
    /// Count one more stream.
    fn enter() -> Sm3Stream {
        SM3_STREAMS.fetch_add(1, Ordering::Relaxed);
        Sm3Stream(())
    }
}

impl Drop for Sm3Stream {
    fn drop(&mut self) {
        SM3_STREAMS.fetch_sub(1, Ordering::Relaxed);
    }
}

impl From<MultiHasher> for StreamHasher {
    fn from(h: MultiHasher) -> Self {
        StreamHasher::One(h, None)
    }
}

impl StreamHasher {
    /// SHA-256 only, on the caller's thread.
    pub fn sha256() -> Self {
        StreamHasher::One(MultiHasher::sha256(), None)
    }

    /// SHA-256 and, if `with_sm3`, SM3: split over two threads when this
    /// process has a core to spare for it (see the module's doc).
    pub fn new(with_sm3: bool) -> Result<Self, Sm3Unavailable> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::with_cores(with_sm3, cores)
    }

    /// As [`StreamHasher::new`], as if the machine had `cores` cores.
    pub fn with_cores(with_sm3: bool, cores: usize) -> Result<Self, Sm3Unavailable> {
        let busy = SM3_STREAMS.load(Ordering::Relaxed);
        Self::with_split(with_sm3, 2 * (busy + 1) <= cores)
    }

    /// SHA-256 and, if `with_sm3`, SM3, split over two threads if `split`
    /// (and SM3 is on), for a caller that decides itself.
    pub fn with_split(with_sm3: bool, split: bool) -> Result<Self, Sm3Unavailable> {
        let one = MultiHasher::new(with_sm3)?;
        if !with_sm3 {
            return Ok(StreamHasher::One(one, None));
        }
        let stream = Sm3Stream::enter();
        if !split {
            return Ok(StreamHasher::One(one, Some(stream)));
        }
        let sm3 = Sm3Hasher::new()?;
        // Without a thread to spare (the process is at its limit), one
        // thread hashes both, as it would without the spare core.
        Ok(match SplitHasher::start(sm3, stream) {
            Ok(split) => StreamHasher::Split(split),
            Err(stream) => StreamHasher::One(one, Some(stream)),
        })
    }

    /// Whether SHA-256 runs on a thread of its own.
    pub fn is_split(&self) -> bool {
        matches!(self, StreamHasher::Split(_))
    }

    /// Hash one more buffer.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            StreamHasher::One(h, _) => h.update(data),
            StreamHasher::Split(s) => s.update(data),
        }
    }

    /// How many bytes were hashed so far.
    pub fn bytes(&self) -> u64 {
        match self {
            StreamHasher::One(h, _) => h.bytes(),
            StreamHasher::Split(s) => s.bytes,
        }
    }

    /// The digests of everything fed in (waits for the SHA-256 thread).
    pub fn finalize(self) -> Digests {
        match self {
            StreamHasher::One(h, _) => h.finalize(),
            StreamHasher::Split(s) => s.finalize(),
        }
    }
}

/// SM3 here, SHA-256 on a thread fed batches of copied bytes.
#[derive(Debug)]
pub struct SplitHasher {
    sm3: Sm3Hasher,
    /// The batch being filled.
    batch: Vec<u8>,
    /// Full batches to the SHA-256 thread; `None` once finalising.
    to_sha: Option<SyncSender<Vec<u8>>>,
    /// Emptied batches back from it. (In a mutex, never contended, only
    /// so that the hasher is `Sync`: the pipeline's futures hold it across
    /// awaits behind shared references.)
    back: Mutex<Receiver<Vec<u8>>>,
    /// Batches made so far (at most [`BATCHES`] + the one being filled).
    made: usize,
    thread: Option<JoinHandle<Digest>>,
    bytes: u64,
    _stream: Sm3Stream,
}

impl SplitHasher {
    /// Start the SHA-256 thread; gives the stream back if it cannot.
    fn start(sm3: Sm3Hasher, stream: Sm3Stream) -> Result<Self, Sm3Stream> {
        let (to_sha, from_caller) = mpsc::sync_channel::<Vec<u8>>(BATCHES - 1);
        let (give_back, back) = mpsc::channel::<Vec<u8>>();
        let spawned = std::thread::Builder::new()
            .name("sha256".into())
            .spawn(move || {
                let mut h = MultiHasher::sha256();
                for mut batch in from_caller {
                    h.update(&batch);
                    batch.clear();
                    // The caller may be done: the batch then just goes.
                    let _ = give_back.send(batch);
                }
                h.finalize().sha256
            });
        let Ok(thread) = spawned else {
            return Err(stream);
        };
        Ok(SplitHasher {
            sm3,
            batch: Vec::with_capacity(BATCH),
            to_sha: Some(to_sha),
            back: Mutex::new(back),
            made: 1,
            thread: Some(thread),
            bytes: 0,
            _stream: stream,
        })
    }

    fn update(&mut self, mut data: &[u8]) {
        self.sm3.update(data);
        self.bytes += data.len() as u64;
        while !data.is_empty() {
            let room = BATCH - self.batch.len();
            let (now, rest) = data.split_at(room.min(data.len()));
            self.batch.extend_from_slice(now);
            data = rest;
            if self.batch.len() == BATCH {
                self.hand_over();
            }
        }
    }

    /// Send the full batch and take an empty one (a returned one, a new
    /// one while fewer than [`BATCHES`] exist, or wait for one).
    fn hand_over(&mut self) {
        let back = self.back.get_mut().unwrap_or_else(|p| p.into_inner());
        let next = match back.try_recv() {
            Ok(b) => Some(b),
            Err(_) if self.made < BATCHES => {
                self.made += 1;
                Some(Vec::with_capacity(BATCH))
            }
            Err(_) => back.recv().ok(),
        };
        let Some(next) = next else {
            self.sha_thread_died()
        };
        let full = std::mem::replace(&mut self.batch, next);
        if let Some(tx) = &self.to_sha {
            if tx.send(full).is_err() {
                self.sha_thread_died();
            }
        }
    }

    fn finalize(mut self) -> Digests {
        if !self.batch.is_empty() {
            let last = std::mem::take(&mut self.batch);
            if let Some(tx) = &self.to_sha {
                if tx.send(last).is_err() {
                    self.sha_thread_died();
                }
            }
        }
        self.to_sha = None;
        let sha256 = match self.thread.take().map(JoinHandle::join) {
            Some(Ok(d)) => d,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => unreachable!("the thread is joined only here"),
        };
        Digests {
            sha256,
            // A copy of the state (a few dozen bytes): `Drop` keeps `self`.
            sm3: Some(self.sm3.clone().finalize()),
        }
    }

    /// The SHA-256 thread hangs up only by panicking: pass the panic on.
    fn sha_thread_died(&mut self) -> ! {
        self.to_sha = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            _ => panic!("the SHA-256 thread stopped early"),
        }
    }
}

impl Drop for SplitHasher {
    fn drop(&mut self) {
        // Hang up first, so an abandoned stream's thread ends at once.
        self.to_sha = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn one_thread(data: &[u8]) -> Digests {
        let mut h = MultiHasher::new(true).unwrap();
        h.update(data);
        h.finalize()
    }

    #[test]
    fn splits_only_while_a_core_is_free() {
        // Other tests in this binary may hold streams: count from here.
        let a = StreamHasher::with_cores(true, 1000).unwrap();
        assert!(a.is_split());
        let b = StreamHasher::with_cores(true, 1).unwrap();
        assert!(!b.is_split(), "one core: never split");
        assert!(!StreamHasher::with_cores(false, 1000).unwrap().is_split());
        assert!(!StreamHasher::with_split(false, true).unwrap().is_split());
        drop((a, b));
    }

    #[test]
    fn empty_stream() {
        let h = StreamHasher::with_split(true, true).unwrap();
        assert!(h.is_split());
        assert_eq!(h.finalize(), one_thread(b""));
    }

    #[test]
    fn an_abandoned_split_stream_ends_its_thread() {
        let mut h = StreamHasher::with_split(true, true).unwrap();
        h.update(&vec![5u8; 3 * BATCH + 7]);
        drop(h);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Any cut of any stream into updates gives the digests one
        /// thread gives, whether split or not.
        #[test]
        fn split_agrees_with_one_thread(
            data in proptest::collection::vec(any::<u8>(), 0..(BATCHES * BATCH + 3 * BATCH)),
            cuts in proptest::collection::vec(1usize..(2 * BATCH), 1..12),
        ) {
            for split in [false, true] {
                let mut h = StreamHasher::with_split(true, split).unwrap();
                let mut rest = &data[..];
                let mut i = 0;
                while !rest.is_empty() {
                    let n = cuts[i % cuts.len()].min(rest.len());
                    h.update(&rest[..n]);
                    rest = &rest[n..];
                    i += 1;
                }
                prop_assert_eq!(h.bytes(), data.len() as u64);
                prop_assert_eq!(h.finalize(), one_thread(&data));
            }
        }
    }
}
