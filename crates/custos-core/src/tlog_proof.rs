//! C2SP tlog-proof (<https://c2sp.org/tlog-proof>): an offline proof that
//! one entry is in the log, checkable with nothing but the entry, the proof
//! file and a [policy](crate::policy).
//!
//! The file is a sequence of newline-terminated lines:
//!
//! 1. `c2sp.org/tlog-proof@v1`;
//! 2. optionally `extra <base64>`: opaque data, *not* authenticated (Custos
//!    writes none and never trusts it);
//! 3. `index <n>`: the entry's zero-based index (decimal, no leading zero);
//! 4. zero or more base64 hashes: the RFC 6962 inclusion proof, from the
//!    leaf's sibling up;
//! 5. an empty line;
//! 6. the checkpoint, a signed note, verbatim (with any cosignatures).
//!
//! [`TlogProof::verify`] checks the checkpoint under a policy (the log's
//! signature and the witnesses' quorum) and the inclusion of the entry's
//! leaf hash under its root.
//!
//! # What this module must never do
//!
//! Call an entry proven on the strength of the extra data, of a checkpoint
//! the policy does not accept, or of a proof of another index.

use std::fmt;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use crate::checkpoint::Checkpoint;
use crate::merkle::{leaf_hash, verify_inclusion, Hash, InclusionError};
use crate::note::{NoteError, SignedNote};
use crate::policy::{Policy, PolicyError, Verified};
use crate::witness::parse_decimal;

/// The first line of every proof.
pub const HEADER: &str = "c2sp.org/tlog-proof@v1";

/// The most inclusion-proof lines (a tree of 2^64 leaves has 64 levels).
pub const MAX_PROOF_LINES: usize = 64;

/// Why a proof does not parse or does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// Not UTF-8.
    #[error("tlog-proof is not valid UTF-8")]
    NotUtf8,
    /// The first line is not the header.
    #[error("tlog-proof does not start with the line {HEADER:?}")]
    BadHeader,
    /// The extra line's data is not base64.
    #[error("tlog-proof 'extra' line is not base64")]
    BadExtra,
    /// No `index <n>` line.
    #[error("tlog-proof has no line 'index <n>' (decimal, no leading zero)")]
    BadIndex,
    /// A proof line is not a base64 hash.
    #[error("tlog-proof line {line} is not the base64 of a 32-byte hash")]
    BadProofLine {
        /// 1-based line number.
        line: usize,
    },
    /// Too many proof lines.
    #[error("tlog-proof holds more than {MAX_PROOF_LINES} inclusion proof lines")]
    TooManyProofLines,
    /// No empty line before the checkpoint.
    #[error("tlog-proof has no empty line before the checkpoint")]
    MissingBlankLine,
    /// The checkpoint is not a signed note.
    #[error("tlog-proof checkpoint: {0}")]
    Note(#[from] NoteError),
    /// The checkpoint does not satisfy the policy.
    #[error("tlog-proof checkpoint: {0}")]
    Policy(#[from] PolicyError),
    /// The inclusion proof does not verify.
    #[error("tlog-proof: {0}")]
    Inclusion(#[from] InclusionError),
    /// The proof is for another entry than the one expected.
    #[error("tlog-proof is for entry {found}, expected entry {expected}")]
    WrongIndex {
        /// The index expected.
        expected: u64,
        /// The index in the proof.
        found: u64,
    },
}

/// A parsed tlog-proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlogProof {
    /// Opaque, unauthenticated extra data.
    pub extra: Option<Vec<u8>>,
    /// The entry's index.
    pub index: u64,
    /// The inclusion proof.
    pub proof: Vec<Hash>,
    /// The checkpoint, with its signatures.
    pub checkpoint: SignedNote,
}

impl TlogProof {
    /// Parse a proof file.
    pub fn parse(bytes: &[u8]) -> Result<Self, ProofError> {
        let text = std::str::from_utf8(bytes).map_err(|_| ProofError::NotUtf8)?;
        let mut rest = text;
        let mut next = |missing: ProofError| -> Result<&str, ProofError> {
            let (line, after) = rest.split_once('\n').ok_or(missing)?;
            rest = after;
            Ok(line)
        };
        if next(ProofError::BadHeader)? != HEADER {
            return Err(ProofError::BadHeader);
        }
        let mut line = next(ProofError::BadIndex)?;
        let mut extra = None;
        if let Some(data) = line.strip_prefix("extra ") {
            extra = Some(B64.decode(data).map_err(|_| ProofError::BadExtra)?);
            line = next(ProofError::BadIndex)?;
        }
        let index = line
            .strip_prefix("index ")
            .and_then(parse_decimal)
            .ok_or(ProofError::BadIndex)?;
        let first_proof_line = if extra.is_some() { 4 } else { 3 };
        let mut proof = Vec::new();
        loop {
            let line = next(ProofError::MissingBlankLine)?;
            if line.is_empty() {
                break;
            }
            if proof.len() == MAX_PROOF_LINES {
                return Err(ProofError::TooManyProofLines);
            }
            proof.push(line.parse().map_err(|_| ProofError::BadProofLine {
                line: first_proof_line + proof.len(),
            })?);
        }
        let checkpoint = SignedNote::parse(rest.as_bytes())?;
        Ok(TlogProof {
            extra,
            index,
            proof,
            checkpoint,
        })
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }

    /// Verify that `entry` (the leaf's bytes) is entry `expected_index` of
    /// the log the policy names, under a checkpoint the policy accepts.
    /// Returns the checkpoint and the witnesses that cosigned it.
    pub fn verify(
        &self,
        entry: &[u8],
        expected_index: u64,
        policy: &Policy,
    ) -> Result<Verified, ProofError> {
        if self.index != expected_index {
            return Err(ProofError::WrongIndex {
                expected: expected_index,
                found: self.index,
            });
        }
        let verified = policy.verify_note(&self.checkpoint)?;
        let checkpoint: &Checkpoint = &verified.checkpoint;
        verify_inclusion(
            &leaf_hash(entry),
            self.index,
            checkpoint.size(),
            &self.proof,
            &checkpoint.root(),
        )?;
        Ok(verified)
    }
}

impl fmt::Display for TlogProof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{HEADER}")?;
        if let Some(extra) = &self.extra {
            writeln!(f, "extra {}", B64.encode(extra))?;
        }
        writeln!(f, "index {}", self.index)?;
        for hash in &self.proof {
            writeln!(f, "{hash}")?;
        }
        writeln!(f)?;
        write!(f, "{}", self.checkpoint)
    }
}
