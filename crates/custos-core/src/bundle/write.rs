//! Writing a bundle: [`BundleWriter`] streams the members into a tar
//! archive with deterministic headers, and [`BundleWriteError`] says why it
//! could not.
//!
//! It never holds footage whole (it is copied through the tar builder's
//! buffer), never writes a member twice or at a path outside the layout,
//! and never opens a file itself: the caller hands it the output and the
//! footage readers.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{self, Read, Write};

use super::{
    footage_path, key_path, key_path_with_hash, manifest_path, proof_path, EntryLine,
    InclusionProof, UnsafeName, CHECKPOINT_PATH, ENTRIES_PATH, FILE_MODE, REPORT_PATH, VERIFY_PATH,
    VERIFY_TXT, VERIFY_ZH_PATH, VERIFY_ZH_TXT,
};
use crate::dsse::Envelope;
use crate::keys::VerifierKey;
use crate::manifest::{Manifest, ManifestError};

/// Why a bundle could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleWriteError {
    /// Writing to the output failed.
    #[error("writing the bundle: {0}")]
    Write(#[source] io::Error),
    /// Reading a footage file's bytes failed.
    #[error("{path}: reading the footage: {source}")]
    FootageRead {
        /// The member being written.
        path: String,
        /// What the reader said.
        source: io::Error,
    },
    /// The footage reader gave another number of bytes than the manifest's
    /// size. The output is not a valid bundle and must be discarded.
    #[error("{path}: the manifest says {expected} bytes, the footage reader gave {}", if *more { format!("more than {expected}") } else { got.to_string() })]
    FootageSize {
        /// The member being written.
        path: String,
        /// The manifest's size.
        expected: u64,
        /// How many bytes the reader gave (when fewer).
        got: u64,
        /// Whether the reader had more bytes than expected.
        more: bool,
    },
    /// The same member was added twice.
    #[error("{0} was already added to the bundle")]
    Duplicate(String),
    /// A segment id or key name cannot name a file.
    #[error(transparent)]
    UnsafeName(#[from] UnsafeName),
    /// A manifest envelope's payload is not a valid manifest.
    #[error("manifest: {0}")]
    Manifest(#[from] ManifestError),
}

/// Streams a bundle into a [`Write`] as a tar archive.
///
/// Add members in any order; the recommended one, which lets a streaming
/// verifier know each manifest before its footage, is keys, checkpoint,
/// manifests, entries, proofs, then footage. [`BundleWriter::finish`] adds
/// `VERIFY.txt`, `VERIFY.zh-CN.txt` and the end-of-archive marker. Headers are deterministic:
/// GNU format, mode 0644, uid and gid 0, no user or group name, and the
/// mtime given to [`BundleWriter::with_mtime`] (0 by default). Footage
/// larger than 8 GiB gets a GNU base-256 size field, which GNU tar, bsdtar
/// and Python's tarfile read.
///
/// On any error the output holds a partial archive that must be discarded.
pub struct BundleWriter<W: Write> {
    tar: tar::Builder<W>,
    mtime: u64,
    paths: BTreeSet<String>,
    /// Keys written so far: `name+hash` to member path.
    keys: BTreeMap<String, String>,
}

impl<W: Write> fmt::Debug for BundleWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BundleWriter")
            .field("mtime", &self.mtime)
            .field("members", &self.paths.len())
            .finish_non_exhaustive()
    }
}

/// Reads exactly `expected` bytes from a footage reader, remembering a read
/// error and a short stream so that the writer can tell them apart from
/// output errors.
struct ExactReader<R> {
    inner: R,
    remaining: u64,
    read_error: Option<io::Error>,
    short: bool,
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        loop {
            match self.inner.read(&mut buf[..want]) {
                Ok(0) => {
                    self.short = true;
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "footage ended early",
                    ));
                }
                Ok(n) => {
                    self.remaining -= n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let copy = io::Error::new(e.kind(), e.to_string());
                    self.read_error = Some(e);
                    return Err(copy);
                }
            }
        }
    }
}

impl<W: Write> BundleWriter<W> {
    /// A writer with every mtime 0.
    pub fn new(out: W) -> Self {
        Self::with_mtime(out, 0)
    }

    /// A writer with every member's mtime set to `mtime` (seconds since the
    /// Unix epoch; the export's time, for example).
    pub fn with_mtime(out: W, mtime: u64) -> Self {
        BundleWriter {
            tar: tar::Builder::new(out),
            mtime,
            paths: BTreeSet::new(),
            keys: BTreeMap::new(),
        }
    }

    fn header(&self, size: u64) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(size);
        header.set_mode(FILE_MODE);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(self.mtime);
        header
    }

    fn claim(&mut self, path: &str) -> Result<(), BundleWriteError> {
        if !self.paths.insert(path.to_owned()) {
            return Err(BundleWriteError::Duplicate(path.to_owned()));
        }
        Ok(())
    }

    fn add_bytes(&mut self, path: &str, data: &[u8]) -> Result<(), BundleWriteError> {
        self.claim(path)?;
        let mut header = self.header(data.len() as u64);
        self.tar
            .append_data(&mut header, path, data)
            .map_err(BundleWriteError::Write)
    }

    /// Add a public key as `keys/<name>.pub` (or `keys/<name>+<hash>.pub`
    /// when another key already has that name); returns the member's path.
    /// Adding the same key again does nothing and returns its path.
    pub fn add_key(&mut self, key: &VerifierKey) -> Result<String, BundleWriteError> {
        if let Some(path) = self.keys.get(&key.key_id()) {
            return Ok(path.clone());
        }
        let plain = key_path(key)?;
        let path = if self.paths.contains(&plain) {
            key_path_with_hash(key)?
        } else {
            plain
        };
        self.add_bytes(&path, key.public_file_text().as_bytes())?;
        self.keys.insert(key.key_id(), path.clone());
        Ok(path)
    }

    /// Add the signed checkpoint (the C2SP signed note, as the ledger serves
    /// it) every proof is against.
    pub fn add_checkpoint(&mut self, signed: &str) -> Result<(), BundleWriteError> {
        self.add_bytes(CHECKPOINT_PATH, signed.as_bytes())
    }

    /// Add a signed manifest as `manifests/<segment_id>.dsse.json` (its
    /// canonical JSON); the segment id is read from the payload, which must
    /// be a valid manifest. Returns the member's path.
    pub fn add_manifest(&mut self, envelope: &Envelope) -> Result<String, BundleWriteError> {
        let manifest = Manifest::parse(&envelope.payload)?;
        let path = manifest_path(&manifest.segment_id)?;
        self.add_bytes(&path, &envelope.to_json())?;
        Ok(path)
    }

    /// Add `entries.jsonl` from these entries, which must be in ascending
    /// `seq` order (the verifier refuses any other order).
    pub fn add_entry_lines(&mut self, lines: &[EntryLine]) -> Result<(), BundleWriteError> {
        let mut text = String::new();
        for line in lines {
            text.push_str(&line.to_json_line());
        }
        self.add_bytes(ENTRIES_PATH, text.as_bytes())
    }

    /// Add `proofs/<index>.json`.
    pub fn add_proof(&mut self, proof: &InclusionProof) -> Result<(), BundleWriteError> {
        // Numbers and base64 strings: written directly, nothing to escape.
        let hashes: Vec<String> = proof.hashes.iter().map(|h| format!("\"{h}\"")).collect();
        let json = format!(
            "{{\"index\":{},\"size\":{},\"hashes\":[{}]}}",
            proof.index,
            proof.size,
            hashes.join(",")
        );
        self.add_bytes(&proof_path(proof.index), json.as_bytes())
    }

    /// Add `tlog-proofs/<seq>.tlog-proof`: entry `seq`'s C2SP tlog-proof.
    pub fn add_tlog_proof(
        &mut self,
        proof: &crate::tlog_proof::TlogProof,
    ) -> Result<(), BundleWriteError> {
        self.add_bytes(&super::tlog_proof_path(proof.index), &proof.to_bytes())
    }

    /// Add `policy.txt`, the exporting ledger's trust policy.
    pub fn add_policy(&mut self, policy: &crate::policy::Policy) -> Result<(), BundleWriteError> {
        self.add_bytes(super::POLICY_PATH, policy.to_string().as_bytes())
    }

    /// Stream a segment's footage from `reader` as [`footage_path`]`(manifest)`.
    /// The reader must give exactly `manifest.size` bytes; they are copied
    /// through a fixed buffer, never held whole. Returns the member's path.
    pub fn add_footage<R: Read>(
        &mut self,
        manifest: &Manifest,
        reader: R,
    ) -> Result<String, BundleWriteError> {
        let path = footage_path(manifest)?;
        self.claim(&path)?;
        let mut header = self.header(manifest.size);
        let mut exact = ExactReader {
            inner: reader,
            remaining: manifest.size,
            read_error: None,
            short: false,
        };
        let result = self.tar.append_data(&mut header, &path, &mut exact);
        if let Some(source) = exact.read_error.take() {
            return Err(BundleWriteError::FootageRead { path, source });
        }
        if exact.short {
            return Err(BundleWriteError::FootageSize {
                path,
                expected: manifest.size,
                got: manifest.size - exact.remaining,
                more: false,
            });
        }
        result.map_err(BundleWriteError::Write)?;
        // One more byte means the reader is longer than the manifest says.
        let mut probe = [0u8; 1];
        loop {
            match exact.inner.read(&mut probe) {
                Ok(0) => break,
                Ok(_) => {
                    return Err(BundleWriteError::FootageSize {
                        path,
                        expected: manifest.size,
                        got: manifest.size,
                        more: true,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(BundleWriteError::FootageRead { path, source }),
            }
        }
        Ok(path)
    }

    /// Add `REPORT.pdf`, the chain-of-custody report (the export entry
    /// must name its SHA-256 in `details.documents`).
    pub fn add_report(&mut self, pdf: &[u8]) -> Result<(), BundleWriteError> {
        self.add_bytes(REPORT_PATH, pdf)
    }

    /// Add `VERIFY.txt` and `VERIFY.zh-CN.txt`, write the end-of-archive
    /// marker, flush, and hand back the output.
    pub fn finish(mut self) -> Result<W, BundleWriteError> {
        self.add_bytes(VERIFY_PATH, VERIFY_TXT.as_bytes())?;
        self.add_bytes(VERIFY_ZH_PATH, VERIFY_ZH_TXT.as_bytes())?;
        let mut out = self.tar.into_inner().map_err(BundleWriteError::Write)?;
        out.flush().map_err(BundleWriteError::Write)?;
        Ok(out)
    }
}
