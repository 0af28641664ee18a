//! C2SP tlog-witness (<https://c2sp.org/tlog-witness>), the pure half: the
//! `add-checkpoint` request body and the witness's decision on it.
//!
//! The request body is, each line ending in a newline:
//!
//! 1. `old <size>`: the size of the checkpoint the client believes the
//!    witness last cosigned (ASCII decimal, no leading zero);
//! 2. zero to [`MAX_PROOF_LINES`] lines, each the base64 of one hash of the
//!    RFC 6962 consistency proof from that size to the new one (none when
//!    the old size is 0);
//! 3. an empty line;
//! 4. the new checkpoint, a signed note.
//!
//! [`decide`] is what the witness does with it, in the spec's order: the
//! origin must be a log it witnesses (else 404), the log's key must sign it
//! (else 403), the old size must not exceed the new (else 400) and must be
//! the size the witness last cosigned (else 409 with that size), the proof
//! must take the stored root to the new one (else 422), and an equal size
//! needs an equal root (else 409). Only then may the witness store the new
//! tree head and cosign it ([`crate::cosignature::cosign`]); storing it
//! durably, atomically with the check, is the caller's (`custos witness
//! serve`).
//!
//! # What this module must never do
//!
//! Accept a checkpoint that does not extend the tree head the witness last
//! cosigned: that refusal is how a split view is caught.

use std::fmt;

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::keys::VerifierKey;
use crate::merkle::{verify_consistency, Hash};
use crate::note::{NoteError, SignedNote};

/// The most consistency-proof lines a request may carry (the spec's limit).
pub const MAX_PROOF_LINES: usize = 63;

/// Why an `add-checkpoint` body does not parse (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// Not UTF-8.
    #[error("add-checkpoint body is not valid UTF-8")]
    NotUtf8,
    /// The first line is not `old <size>`.
    #[error(
        "add-checkpoint body does not start with a line 'old <size>' (decimal, no leading zero)"
    )]
    BadOldSize,
    /// A proof line is not the base64 of a 32-byte hash.
    #[error("add-checkpoint consistency proof line {line} is not the base64 of a 32-byte hash")]
    BadProofLine {
        /// 1-based line number in the body.
        line: usize,
    },
    /// More than [`MAX_PROOF_LINES`] proof lines.
    #[error("add-checkpoint consistency proof has more than {MAX_PROOF_LINES} lines")]
    TooManyProofLines,
    /// No empty line before the checkpoint.
    #[error("add-checkpoint body has no empty line before the checkpoint")]
    MissingBlankLine,
    /// The checkpoint is not a signed note.
    #[error("add-checkpoint checkpoint: {0}")]
    Note(#[from] NoteError),
    /// The checkpoint's body does not read.
    #[error("add-checkpoint {0}")]
    Checkpoint(#[from] CheckpointError),
}

/// An `add-checkpoint` request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpoint {
    /// The size of the checkpoint the witness last cosigned, as the client
    /// believes.
    pub old_size: u64,
    /// The consistency proof from `old_size` to the checkpoint's size.
    pub proof: Vec<Hash>,
    /// The new checkpoint, signed by the log (and maybe cosigned already).
    pub checkpoint: SignedNote,
}

impl AddCheckpoint {
    /// Parse a request body.
    pub fn parse(bytes: &[u8]) -> Result<Self, RequestError> {
        let text = std::str::from_utf8(bytes).map_err(|_| RequestError::NotUtf8)?;
        let Some((first, mut rest)) = text.split_once('\n') else {
            return Err(RequestError::BadOldSize);
        };
        let old_size = first
            .strip_prefix("old ")
            .and_then(parse_decimal)
            .ok_or(RequestError::BadOldSize)?;
        let mut proof = Vec::new();
        loop {
            let Some((line, after)) = rest.split_once('\n') else {
                return Err(RequestError::MissingBlankLine);
            };
            rest = after;
            if line.is_empty() {
                break;
            }
            if proof.len() == MAX_PROOF_LINES {
                return Err(RequestError::TooManyProofLines);
            }
            let hash: Hash = line.parse().map_err(|_| RequestError::BadProofLine {
                line: proof.len() + 2,
            })?;
            proof.push(hash);
        }
        let checkpoint = SignedNote::parse(rest.as_bytes())?;
        Checkpoint::parse(checkpoint.text())?;
        Ok(AddCheckpoint {
            old_size,
            proof,
            checkpoint,
        })
    }

    /// The request body's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }
}

impl fmt::Display for AddCheckpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "old {}", self.old_size)?;
        for hash in &self.proof {
            writeln!(f, "{hash}")?;
        }
        writeln!(f)?;
        write!(f, "{}", self.checkpoint)
    }
}

/// ASCII decimal, no sign, no leading zero unless 0, fits in u64 (the
/// sizes and indexes of tlog-witness requests and tlog-proofs).
pub(crate) fn parse_decimal(text: &str) -> Option<u64> {
    if text.is_empty()
        || !text.bytes().all(|b| b.is_ascii_digit())
        || (text.len() > 1 && text.starts_with('0'))
    {
        return None;
    }
    text.parse().ok()
}

/// Parse a `text/x.tlog.size` body (a 409's): a decimal size and a newline.
pub fn parse_size_body(body: &[u8]) -> Option<u64> {
    std::str::from_utf8(body)
        .ok()?
        .strip_suffix('\n')
        .and_then(parse_decimal)
}

/// A log the witness witnesses: its origin and the key(s) it signs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessedLog {
    /// The checkpoint origin line.
    pub origin: String,
    /// The log's verifier keys (any one signature suffices).
    pub keys: Vec<VerifierKey>,
}

/// What a witness last cosigned for one log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeHead {
    /// The tree size.
    pub size: u64,
    /// The root at that size.
    pub root: Hash,
}

/// Why the witness refuses to cosign, with the HTTP status the spec names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// 404: the origin is not a log this witness witnesses.
    #[error("unknown log origin {0:?}")]
    UnknownLog(String),
    /// 403: no signature by the log's key verifies.
    #[error("checkpoint is not signed by log {origin:?}'s key: {reason}")]
    BadSignature {
        /// The origin.
        origin: String,
        /// Why.
        reason: String,
    },
    /// 400: old size larger than the checkpoint's.
    #[error("old size {old} is larger than the checkpoint's size {new}")]
    OldSizeLarger {
        /// The request's old size.
        old: u64,
        /// The checkpoint's size.
        new: u64,
    },
    /// 409: the old size is not the size the witness last cosigned.
    #[error("old size {claimed} is not the size this witness last cosigned, {size}")]
    StaleSize {
        /// The request's old size.
        claimed: u64,
        /// The witness's size (the 409 body).
        size: u64,
    },
    /// 409: same size, another root — a fork.
    #[error("checkpoint of size {size} has another root than the one this witness cosigned at that size: the log forked")]
    RootConflict {
        /// The size.
        size: u64,
    },
    /// 422: the consistency proof does not verify — a fork, or a bad proof.
    #[error("consistency proof from size {old} to {new} does not verify against the tree head this witness cosigned: {reason}")]
    BadProof {
        /// The old size.
        old: u64,
        /// The new size.
        new: u64,
        /// Why.
        reason: String,
    },
}

impl Refusal {
    /// The HTTP status code the spec gives this refusal.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::UnknownLog(_) => 404,
            Refusal::BadSignature { .. } => 403,
            Refusal::OldSizeLarger { .. } => 400,
            Refusal::StaleSize { .. } | Refusal::RootConflict { .. } => 409,
            Refusal::BadProof { .. } => 422,
        }
    }
}

/// Decide on `request` given the logs witnessed and, per origin, the tree
/// head last cosigned (`stored`: `None` if never). On success the new tree
/// head to store (before cosigning) and the checkpoint it came from.
pub fn decide<'a>(
    logs: &'a [WitnessedLog],
    stored: impl FnOnce(&str) -> Option<TreeHead>,
    request: &AddCheckpoint,
) -> Result<(&'a WitnessedLog, Checkpoint), Refusal> {
    // INVARIANT: AddCheckpoint::parse checked that the body reads.
    let unverified =
        Checkpoint::parse(request.checkpoint.text()).map_err(|e| Refusal::BadSignature {
            origin: String::new(),
            reason: e.to_string(),
        })?;
    let origin = unverified.origin();
    let Some(log) = logs.iter().find(|l| l.origin == origin) else {
        return Err(Refusal::UnknownLog(origin.to_owned()));
    };
    request
        .checkpoint
        .verify(&log.keys)
        .map_err(|e| Refusal::BadSignature {
            origin: origin.to_owned(),
            reason: e.to_string(),
        })?;
    let new = unverified;
    if request.old_size > new.size() {
        return Err(Refusal::OldSizeLarger {
            old: request.old_size,
            new: new.size(),
        });
    }
    let head = stored(&log.origin).unwrap_or(TreeHead {
        size: 0,
        root: crate::merkle::empty_root(),
    });
    if request.old_size != head.size {
        return Err(Refusal::StaleSize {
            claimed: request.old_size,
            size: head.size,
        });
    }
    if head.size == new.size() {
        if head.root != new.root() || !request.proof.is_empty() {
            return Err(if head.root != new.root() {
                Refusal::RootConflict { size: head.size }
            } else {
                Refusal::BadProof {
                    old: head.size,
                    new: new.size(),
                    reason: "a proof between equal sizes must be empty".into(),
                }
            });
        }
        return Ok((log, new));
    }
    verify_consistency(
        head.size,
        new.size(),
        &request.proof,
        &head.root,
        &new.root(),
    )
    .map_err(|e| Refusal::BadProof {
        old: head.size,
        new: new.size(),
        reason: e.to_string(),
    })?;
    Ok((log, new))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_body() {
        assert_eq!(parse_size_body(b"12\n"), Some(12));
        assert_eq!(parse_size_body(b"012\n"), None);
        assert_eq!(parse_size_body(b"12"), None);
        assert_eq!(parse_size_body(b""), None);
    }
}
