//! Hashing files and standard input on plain threads: the core of
//! `custos hash`, and of any tool that hashes many local files.
//!
//! Several files are hashed in parallel, one per core; the results come
//! back in argument order. Each file is read and hashed on one thread, in
//! 64 KiB steps, so every byte is hashed from the core's own cache right
//! after the read copied it there. (A separate reader thread per file was
//! measured slower: handing buffers between cores costs more than the
//! reads it would overlap; see benches/README.md.) With SM3 on and a core
//! to spare (one file on two cores), SM3 stays on the reading thread and
//! SHA-256, several times faster, runs on the spare core
//! ([`StreamHasher`], module `split`): the reading thread computes only
//! SM3, as `openssl dgst -sm3` does. This module must never load a whole
//! file into memory: one 64 KiB buffer per thread, and the split hasher's
//! few batches.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use custos_core::digest::{Digests, MultiHasher};

use crate::split::StreamHasher;

/// Default read size: 64 KiB, small enough to stay in the core's cache
/// between the read and the hash, large enough that system calls are
/// noise (measured best among 16 KiB to 4 MiB; see benches/README.md).
pub const DEFAULT_HASH_BUFFER: usize = 64 * 1024;

/// One input of `custos hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashSource {
    /// Standard input (`-` on the command line).
    Stdin,
    /// A file.
    File(PathBuf),
}

impl HashSource {
    /// `-` is standard input, anything else a path.
    pub fn from_arg(arg: &OsStr) -> Self {
        if arg == "-" {
            HashSource::Stdin
        } else {
            HashSource::File(PathBuf::from(arg))
        }
    }
}

impl fmt::Display for HashSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HashSource::Stdin => f.write_str("-"),
            HashSource::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Options of [`hash_sources`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileHashOptions {
    /// Compute SM3 as well as SHA-256.
    pub with_sm3: bool,
    /// Threads to use; 0 means one per available core.
    pub threads: usize,
    /// Bytes per read.
    pub buffer_size: usize,
}

impl Default for FileHashOptions {
    fn default() -> Self {
        FileHashOptions {
            with_sm3: false,
            threads: 0,
            buffer_size: DEFAULT_HASH_BUFFER,
        }
    }
}

/// Why one input could not be hashed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HashFileError {
    /// Opening or reading the input failed.
    #[error("{input}: {source}")]
    Read {
        /// The input, as given (`-` for standard input).
        input: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// SM3 was asked for but this build has no SM3 support.
    #[error("this build of custos has no SM3 support (feature `sm3` of custos-core is off)")]
    Sm3Unavailable,
}

/// Hash every source, in parallel, and call `emit(index, result)` for each
/// in index order as soon as it and all before it are done.
pub fn hash_sources<F>(sources: &[HashSource], opts: &FileHashOptions, mut emit: F)
where
    F: FnMut(usize, Result<Digests, HashFileError>),
{
    if MultiHasher::new(opts.with_sm3).is_err() {
        for i in 0..sources.len() {
            emit(i, Err(HashFileError::Sm3Unavailable));
        }
        return;
    }
    let cores = if opts.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        opts.threads
    };
    let workers = cores.min(sources.len()).max(1);
    // A core for each worker's SHA-256 beside its SM3.
    let split = opts.with_sm3 && cores >= 2 * workers;
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|s| {
        for _ in 0..workers {
            let tx = tx.clone();
            let next = &next;
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(source) = sources.get(i) else { break };
                let r = hash_source_on(source, opts, split);
                if tx.send((i, r)).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let mut pending = BTreeMap::new();
        let mut want = 0;
        for (i, r) in rx {
            pending.insert(i, r);
            while let Some(r) = pending.remove(&want) {
                emit(want, r);
                want += 1;
            }
        }
    });
}

/// Hash one source, on this thread.
pub fn hash_source(source: &HashSource, opts: &FileHashOptions) -> Result<Digests, HashFileError> {
    hash_source_on(source, opts, false)
}

/// Hash one source; with `split` (which [`hash_sources`] sets only with
/// SM3 on), SHA-256 on a second thread.
fn hash_source_on(
    source: &HashSource,
    opts: &FileHashOptions,
    split: bool,
) -> Result<Digests, HashFileError> {
    let hasher = StreamHasher::with_split(opts.with_sm3, split)
        .map_err(|_| HashFileError::Sm3Unavailable)?;
    let size = opts.buffer_size.max(4096);
    let hash = |reader: &mut dyn Read| hash_reader(reader, hasher, size);
    let r = match source {
        HashSource::Stdin => hash(&mut io::stdin().lock()),
        HashSource::File(path) => match std::fs::File::open(path) {
            Ok(mut file) => hash(&mut file),
            Err(e) => Err(e),
        },
    };
    r.map_err(|e| HashFileError::Read {
        input: source.to_string(),
        source: e,
    })
}

/// Hash everything `reader` yields, reading and hashing on this thread
/// (SHA-256 on a second one when `hasher` is split).
pub fn hash_reader<R: Read>(
    mut reader: R,
    hasher: impl Into<StreamHasher>,
    buffer_size: usize,
) -> io::Result<Digests> {
    let mut hasher = hasher.into();
    let mut buf = vec![0u8; buffer_size.max(1)];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use custos_core::digest::Digest;
    use std::io::Write;

    #[test]
    fn sha256_beside_sm3_on_two_threads_agrees_with_one_thread() {
        let data: Vec<u8> = (0..300_007u32).map(|i| (i * 31 % 251) as u8).collect();
        for size in [7, 4096, 65536, 1 << 20] {
            let one = hash_reader(&data[..], MultiHasher::new(true).unwrap(), size).unwrap();
            let two = hash_reader(
                &data[..],
                StreamHasher::with_split(true, true).unwrap(),
                size,
            )
            .unwrap();
            assert_eq!(one, two, "buffer size {size}");
            assert!(two.sm3.is_some());
        }
        let split = StreamHasher::with_split(true, true).unwrap();
        let empty = hash_reader(io::empty(), split, 65536).unwrap();
        assert_eq!(empty.sha256, Digest::sha256(b""));
    }

    #[test]
    fn a_read_error_on_the_split_path_is_returned() {
        struct Fails(usize);
        impl Read for Fails {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("the disk went away"));
                }
                self.0 -= 1;
                buf[0] = 1;
                Ok(1)
            }
        }
        let split = StreamHasher::with_split(true, true).unwrap();
        let err = hash_reader(Fails(10), split, 4096).unwrap_err();
        assert_eq!(err.to_string(), "the disk went away");
    }

    #[test]
    fn any_buffer_size_agrees_with_one_shot() {
        let data: Vec<u8> = (0..200_003u32).map(|i| (i * 31 % 251) as u8).collect();
        let want = Digest::sha256(&data);
        for size in [7, 4096, 65536, 1 << 20] {
            let a = hash_reader(&data[..], MultiHasher::sha256(), size).unwrap();
            assert_eq!(a.sha256, want);
        }
    }

    #[test]
    fn results_come_back_in_argument_order_with_errors_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let mut sources = Vec::new();
        let mut want = Vec::new();
        for i in 0..7usize {
            let p = dir.path().join(format!("f{i}"));
            let body = vec![i as u8; 10_000 * (7 - i)];
            std::fs::File::create(&p).unwrap().write_all(&body).unwrap();
            want.push(Some(Digest::sha256(&body)));
            sources.push(HashSource::File(p));
        }
        sources.insert(3, HashSource::File(dir.path().join("missing")));
        want.insert(3, None);
        for threads in [1, 2, 8] {
            let opts = FileHashOptions {
                threads,
                ..FileHashOptions::default()
            };
            let mut got = Vec::new();
            hash_sources(&sources, &opts, |i, r| got.push((i, r)));
            assert_eq!(got.len(), sources.len());
            for (k, (i, r)) in got.into_iter().enumerate() {
                assert_eq!(i, k);
                match (&want[i], r) {
                    (Some(d), Ok(g)) => assert_eq!(g.sha256, *d),
                    (None, Err(HashFileError::Read { input, .. })) => {
                        assert!(input.ends_with("missing"), "{input}")
                    }
                    (w, r) => panic!("input {i}: wanted {w:?}, got {r:?}"),
                }
            }
        }
    }

    #[test]
    fn dash_is_stdin() {
        assert_eq!(HashSource::from_arg(OsStr::new("-")), HashSource::Stdin);
        assert_eq!(
            HashSource::from_arg(OsStr::new("a-b")),
            HashSource::File("a-b".into())
        );
    }
}
