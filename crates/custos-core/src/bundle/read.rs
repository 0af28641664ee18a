//! Step 1 of the verification, the archive is whole: [`BundleVerifier`]
//! reads the tar stream member by member (GNU long names and PAX `path`
//! records within [`MAX_NAME_HEADER_BYTES`]), refuses a member outside the
//! layout, twice, over its `MAX_*` size or past the [`Limits`], hashes
//! footage and documents as they stream and keeps the other members for
//! `check.rs`.
//!
//! It never holds footage in memory, never reads a header or a member
//! beyond its limit before refusing it, and tells a truncated archive
//! ([`BundleError::Truncated`]) from one that is not a tar.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};

use super::{
    classify, footage_path, invalid, BundleError, Limits, Member, Problem, MAX_CHECKPOINT_BYTES,
    MAX_DOCUMENT_BYTES, MAX_ENTRIES_BYTES, MAX_KEY_BYTES, MAX_MANIFEST_BYTES,
    MAX_NAME_HEADER_BYTES, MAX_PROOF_BYTES, MAX_VERIFY_TXT_BYTES, MEMBER_OVERHEAD,
};
use crate::digest::{Algorithm, Digests, MultiHasher};
use crate::dsse::Envelope;
use crate::manifest::Manifest;

/// Zero padding read after the end-of-archive marker before the verifier
/// stops looking: 1 MiB (tar pads to its record size, 10 KiB by default).
const MAX_TRAILING_ZEROS: u64 = 1 << 20;
/// Buffer for hashing footage: 1 MiB per read keeps the hasher busy.
const READ_BUFFER: usize = 1 << 20;

/// A footage member as it streamed past.
#[derive(Debug)]
pub(super) struct FootageSeen {
    pub(super) size: u64,
    pub(super) digests: Digests,
}

/// Verifies a bundle member by member, in any order, then as a whole.
///
/// Feed it a tar with [`BundleVerifier::read_tar`] (or members one by one
/// with [`BundleVerifier::add_member`]), then call
/// [`BundleVerifier::finish`]; or use [`verify`](super::verify) for both. Footage is hashed
/// as it streams; every other member is small and kept until `finish`.
#[derive(Debug, Default)]
pub struct BundleVerifier {
    limits: Limits,
    /// Members seen so far (directories included).
    count: u64,
    /// Bytes held so far against `limits.held_bytes`.
    held: u64,
    members: BTreeSet<String>,
    /// The footage seen, by path: hashed, not held.
    pub(super) footage: BTreeMap<String, FootageSeen>,
    /// Footage paths whose manifest (seen before them) carries an SM3 digest.
    sm3_wanted: BTreeSet<String>,
    /// The manifest files, by segment id.
    pub(super) manifests: BTreeMap<String, Vec<u8>>,
    /// `entries.jsonl`.
    pub(super) entries: Option<Vec<u8>>,
    /// The proof files, by seq.
    pub(super) proofs: BTreeMap<u64, Vec<u8>>,
    /// The tlog-proof files, by seq.
    pub(super) tlog_proofs: BTreeMap<u64, Vec<u8>>,
    /// `policy.txt`.
    pub(super) policy: Option<Vec<u8>>,
    /// `checkpoint`.
    pub(super) checkpoint: Option<Vec<u8>>,
    /// The key files, by path.
    pub(super) keys: BTreeMap<String, Vec<u8>>,
    /// The documents (`REPORT.pdf`), by path: hashed, not held.
    pub(super) documents: BTreeMap<String, FootageSeen>,
    /// Whether `VERIFY.txt` was seen.
    pub(super) verify_txt: bool,
    buffer: Vec<u8>,
}

/// The reader under the tar parser: counts bytes for the progress callback
/// and the error messages, and remembers whether the input ended or failed,
/// which is how a truncated archive is told from a corrupt one.
struct Source<'p, R> {
    inner: R,
    pos: u64,
    eof: bool,
    failed: bool,
    progress: &'p mut dyn FnMut(u64),
}

impl<R: Read> Read for Source<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        match self.inner.read(buf) {
            Ok(0) => {
                self.eof = true;
                Ok(0)
            }
            Ok(n) => {
                self.pos += n as u64;
                (self.progress)(self.pos);
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }
}

/// Why reading members stopped.
enum Stop {
    /// The tar parser failed.
    Tar(io::Error),
    /// A member was refused or could not be read.
    Bundle(BundleError),
}

fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The `path` record of a PAX extended header, if it has one (the name it
/// gives the next member; other records, such as times, are ignored). A `size` record is
/// refused: the verifier reads sizes from the headers (GNU base-256 for
/// footage over 8 GiB, as [`BundleWriter`](super::BundleWriter) writes them).
fn pax_path(bytes: &[u8]) -> Result<Option<Vec<u8>>, &'static str> {
    let mut path = None;
    for record in tar::PaxExtensions::new(bytes) {
        let record = record.map_err(|_| "a record is malformed")?;
        match record.key_bytes() {
            b"path" => path = Some(record.value_bytes().to_vec()),
            b"size" => return Err("it gives a size (only header sizes are read)"),
            _ => {}
        }
    }
    Ok(path)
}

impl BundleVerifier {
    /// A verifier that has seen nothing yet, with the default [`Limits`].
    pub fn new() -> Self {
        BundleVerifier::default()
    }

    /// A verifier with other limits (smaller ones, in tests).
    pub fn with_limits(limits: Limits) -> Self {
        BundleVerifier {
            limits,
            ..BundleVerifier::default()
        }
    }

    /// Count one more member, refusing past [`Limits::members`].
    fn count_member(&mut self, path: &str) -> Result<(), BundleError> {
        self.count += 1;
        if self.count > self.limits.members {
            return Err(invalid(
                path,
                Problem::TooManyMembers {
                    max: self.limits.members,
                },
            ));
        }
        Ok(())
    }

    /// Charge `bytes` against [`Limits::held_bytes`].
    fn hold(&mut self, path: &str, bytes: u64) -> Result<(), BundleError> {
        self.held = self.held.saturating_add(bytes);
        if self.held > self.limits.held_bytes {
            return Err(invalid(
                path,
                Problem::HeldTooLarge {
                    max: self.limits.held_bytes,
                },
            ));
        }
        Ok(())
    }

    /// Read a whole tar archive from `reader`, calling `progress` with the
    /// number of bytes read so far after every read.
    ///
    /// Fails with [`BundleError::Io`], [`BundleError::NotTar`] or
    /// [`BundleError::Truncated`] when the archive cannot be read, and with
    /// [`BundleError::Invalid`] when a member is not one a bundle may hold.
    pub fn read_tar<R: Read>(
        &mut self,
        reader: R,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), BundleError> {
        let mut source = Source {
            inner: reader,
            pos: 0,
            eof: false,
            failed: false,
            progress,
        };
        let result = self.read_members(&mut source);
        let members = match result {
            Ok(n) => n,
            Err(Stop::Bundle(BundleError::Io(e))) | Err(Stop::Tar(e)) if source.failed => {
                return Err(BundleError::Io(e))
            }
            Err(Stop::Bundle(e)) => return Err(e),
            Err(Stop::Tar(_)) if source.eof && source.pos < 512 => {
                return Err(BundleError::NotTar {
                    offset: source.pos,
                    detail: format!(
                        "the file is {} bytes, shorter than one tar header",
                        source.pos
                    ),
                })
            }
            Err(Stop::Tar(e)) if source.eof => {
                return Err(BundleError::Truncated {
                    detail: format!("it ends inside a tar header at byte {} ({e})", source.pos),
                })
            }
            Err(Stop::Tar(e)) => {
                return Err(BundleError::NotTar {
                    offset: source.pos,
                    detail: e.to_string(),
                })
            }
        };
        if source.pos == 0 {
            return Err(BundleError::NotTar {
                offset: 0,
                detail: "the file is empty".into(),
            });
        }
        if source.eof {
            return Err(BundleError::Truncated {
                detail: format!(
                    "it ends after {members} members at byte {} without the end-of-archive marker",
                    source.pos
                ),
            });
        }
        // The marker is two zero blocks, of which the tar reader consumed
        // the first; tar then pads with zeros. Anything else is refused.
        let end = source.pos;
        let mut buf = [0u8; 8192];
        let mut rest = (&mut source).take(MAX_TRAILING_ZEROS);
        let mut offset = end;
        loop {
            let n = match rest.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(BundleError::Io(e)),
            };
            if n == 0 {
                break;
            }
            if let Some(i) = buf[..n].iter().position(|&b| b != 0) {
                return Err(invalid(
                    "archive",
                    Problem::DataAfterEnd {
                        offset: offset + i as u64,
                    },
                ));
            }
            offset += n as u64;
        }
        if offset - end < 512 {
            return Err(BundleError::Truncated {
                detail: format!(
                    "it ends at byte {offset}, inside the end-of-archive marker (two zero blocks)"
                ),
            });
        }
        Ok(())
    }

    /// Read every member. The tar reader runs in raw mode: GNU long-name
    /// and PAX headers come to this function, which reads them within
    /// [`MAX_NAME_HEADER_BYTES`] (the tar crate would read them whole,
    /// however large their header says they are).
    fn read_members<R: Read>(&mut self, source: &mut Source<'_, R>) -> Result<u64, Stop> {
        let mut archive = tar::Archive::new(source);
        let mut count = 0;
        // Whether a GNU long-name or PAX header came just before, and the
        // name it gave the next member (a PAX header may give none).
        let mut header_seen = false;
        let mut pending: Option<Vec<u8>> = None;
        for member in archive.entries().map_err(Stop::Tar)?.raw(true) {
            let mut member = member.map_err(Stop::Tar)?;
            let kind = member.header().entry_type();
            let size = member.size();
            if kind.is_gnu_longname() || kind.is_pax_local_extensions() {
                let what = if kind.is_gnu_longname() {
                    "GNU long-name header"
                } else {
                    "PAX extended header"
                };
                if header_seen {
                    return Err(Stop::Tar(io::Error::other(format!(
                        "a {what} follows another name header for the same member"
                    ))));
                }
                self.count_member(what).map_err(Stop::Bundle)?;
                if size > MAX_NAME_HEADER_BYTES {
                    return Err(Stop::Bundle(invalid(
                        what,
                        Problem::TooLarge {
                            size,
                            max: MAX_NAME_HEADER_BYTES,
                        },
                    )));
                }
                // INVARIANT: size <= 64 KiB.
                let mut bytes = vec![0u8; usize::try_from(size).unwrap_or(0)];
                let got = read_full(&mut member, &mut bytes)
                    .map_err(|e| Stop::Bundle(BundleError::Io(e)))?;
                if got as u64 != size {
                    return Err(Stop::Bundle(BundleError::Truncated {
                        detail: format!("the archive ends inside a {what}"),
                    }));
                }
                header_seen = true;
                pending = if kind.is_gnu_longname() {
                    let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
                    bytes.truncate(end);
                    Some(bytes)
                } else {
                    pax_path(&bytes)
                        .map_err(|why| Stop::Tar(io::Error::other(format!("a {what}: {why}"))))?
                };
                continue;
            }
            header_seen = false;
            let path_bytes = match pending.take() {
                Some(name) => name,
                None => member.path_bytes().into_owned(),
            };
            let path = String::from_utf8_lossy(&path_bytes).into_owned();
            if std::str::from_utf8(&path_bytes).is_err() {
                return Err(Stop::Bundle(invalid(path, Problem::UnknownMember)));
            }
            if kind.is_dir() {
                let path = path.strip_prefix("./").unwrap_or(&path);
                if !matches!(classify(path), Some(Member::Directory)) {
                    return Err(Stop::Bundle(invalid(path, Problem::UnknownMember)));
                }
                self.count_member(path).map_err(Stop::Bundle)?;
            } else if !kind.is_file() {
                return Err(Stop::Bundle(invalid(
                    path,
                    Problem::NotRegularFile {
                        kind: format!("{kind:?}"),
                    },
                )));
            } else {
                self.add_member(&path, size, &mut member)
                    .map_err(Stop::Bundle)?;
            }
            count += 1;
        }
        if header_seen {
            return Err(Stop::Tar(io::Error::other(
                "a name header is not followed by a member",
            )));
        }
        Ok(count)
    }

    /// Add one regular file of the bundle: `path` as in the archive (a
    /// leading `./` is ignored), `size` bytes read from `data`.
    ///
    /// Footage is hashed as it is read; other members are kept for
    /// [`BundleVerifier::finish`]. Fails when the path is not part of the
    /// layout, appears twice, is larger than its kind allows, or `data`
    /// ends before `size` bytes ([`BundleError::Truncated`]).
    pub fn add_member<R: Read>(
        &mut self,
        path: &str,
        size: u64,
        mut data: R,
    ) -> Result<(), BundleError> {
        let path = path.strip_prefix("./").unwrap_or(path);
        let Some(member) = classify(path) else {
            return Err(invalid(path, Problem::UnknownMember));
        };
        if matches!(member, Member::Directory) {
            return Err(invalid(
                path,
                Problem::NotRegularFile {
                    kind: "directory".into(),
                },
            ));
        }
        if !self.members.insert(path.to_owned()) {
            return Err(invalid(path, Problem::DuplicateMember));
        }
        self.count_member(path)?;
        self.hold(path, path.len() as u64 + MEMBER_OVERHEAD)?;
        if matches!(member, Member::Key) && self.keys.len() >= self.limits.keys {
            return Err(invalid(
                path,
                Problem::TooManyKeys {
                    max: self.limits.keys,
                },
            ));
        }
        let limit = match member {
            Member::Footage => {
                let with_sm3 = self.sm3_wanted.contains(path) && Algorithm::Sm3.is_available();
                let seen = self.hash_stream(path, size, &mut data, with_sm3)?;
                self.footage.insert(path.to_owned(), seen);
                return Ok(());
            }
            Member::Document => {
                if size > MAX_DOCUMENT_BYTES {
                    return Err(invalid(
                        path,
                        Problem::TooLarge {
                            size,
                            max: MAX_DOCUMENT_BYTES,
                        },
                    ));
                }
                let seen = self.hash_stream(path, size, &mut data, false)?;
                self.documents.insert(path.to_owned(), seen);
                return Ok(());
            }
            Member::Manifest(_) => MAX_MANIFEST_BYTES,
            Member::Entries => MAX_ENTRIES_BYTES,
            Member::Proof(_) => MAX_PROOF_BYTES,
            Member::TlogProof(_) => super::MAX_TLOG_PROOF_BYTES,
            Member::Policy => super::MAX_POLICY_BYTES,
            Member::Checkpoint => MAX_CHECKPOINT_BYTES,
            Member::Key => MAX_KEY_BYTES,
            Member::VerifyTxt => MAX_VERIFY_TXT_BYTES,
            Member::Directory => 0,
        };
        if size > limit {
            return Err(invalid(path, Problem::TooLarge { size, max: limit }));
        }
        self.hold(path, size)?;
        // INVARIANT: size <= limit <= 256 MiB, which fits in usize.
        let mut bytes = vec![0u8; usize::try_from(size).unwrap_or(0)];
        let got = read_full(&mut data, &mut bytes).map_err(BundleError::Io)?;
        if got as u64 != size {
            return Err(BundleError::Truncated {
                detail: format!("{path}: the archive ends after {got} of its {size} bytes"),
            });
        }
        match member {
            Member::Manifest(id) => {
                // Peek (unverified) at the manifest to know whether its
                // footage needs SM3 too; `finish` verifies it properly.
                if let Ok(envelope) = Envelope::parse(&bytes) {
                    if let Ok(manifest) = Manifest::parse(&envelope.payload) {
                        if manifest.digests.sm3.is_some() {
                            if let Ok(footage) = footage_path(&manifest) {
                                self.sm3_wanted.insert(footage);
                            }
                        }
                    }
                }
                self.manifests.insert(id, bytes);
            }
            Member::Entries => self.entries = Some(bytes),
            Member::Proof(seq) => {
                self.proofs.insert(seq, bytes);
            }
            Member::TlogProof(seq) => {
                self.tlog_proofs.insert(seq, bytes);
            }
            Member::Policy => self.policy = Some(bytes),
            Member::Checkpoint => self.checkpoint = Some(bytes),
            Member::Key => {
                self.keys.insert(path.to_owned(), bytes);
            }
            Member::VerifyTxt => self.verify_txt |= path == super::VERIFY_PATH,
            Member::Footage | Member::Document | Member::Directory => {}
        }
        Ok(())
    }

    /// Hash `size` bytes of `data` (a footage file or a document) as they
    /// stream, never holding them.
    fn hash_stream(
        &mut self,
        path: &str,
        size: u64,
        data: &mut impl Read,
        with_sm3: bool,
    ) -> Result<FootageSeen, BundleError> {
        // INVARIANT: SM3 is only asked for when this build has it.
        let mut hasher = MultiHasher::new(with_sm3).unwrap_or_else(|_| MultiHasher::sha256());
        if self.buffer.len() != READ_BUFFER {
            self.buffer = vec![0u8; READ_BUFFER];
        }
        let mut done = 0u64;
        while done < size {
            let want = usize::try_from(size - done)
                .unwrap_or(usize::MAX)
                .min(READ_BUFFER);
            let n = read_full(data, &mut self.buffer[..want]).map_err(BundleError::Io)?;
            if n == 0 {
                return Err(BundleError::Truncated {
                    detail: format!("{path}: the archive ends after {done} of its {size} bytes"),
                });
            }
            hasher.update(&self.buffer[..n]);
            done += n as u64;
        }
        Ok(FootageSeen {
            size,
            digests: hasher.finalize(),
        })
    }
}
