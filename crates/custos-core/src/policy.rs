//! The trust policy an auditor checks a checkpoint against: the log's key,
//! the witnesses, and how many of them must have cosigned.
//!
//! C2SP has no policy format; this one follows the shape of Sigsum's
//! policy files (one statement per line, a keyword first), reduced to what
//! Custos needs. A `policy.txt` reads:
//!
//! ```text
//! # Custos trust policy (comments and blank lines are ignored)
//! origin custos.example.org/ledger
//! log custos.example.org/ledger+1a2b3c4d+AeF...
//! witness court.example/w1+5e6f7a8b+BK1...
//! witness procuratorate.example/w1+9c0d1e2f+BHm... https://witness.example/
//! quorum 1
//! ```
//!
//! - `origin <origin>` (optional, at most once): the checkpoint's origin
//!   line must be exactly this.
//! - `log <verifier key>`: the ledger's C2SP verifier key
//!   (`name+hash+base64(0x01 || key)`, or an SM2 key); one or more lines (a
//!   ledger signing with Ed25519 and SM2, or during a key rotation); the
//!   checkpoint must carry a valid signature by one of them.
//! - `witness <cosigner key> [<url>]`: a witness's `cosignature/v1` key
//!   (`name+hash+base64(0x04 || key)`, [`CosignerKey`]); the URL where the
//!   log submits to it is informational. Names must be distinct.
//! - `quorum <k>`: how many distinct witnesses must have cosigned; at most
//!   the number of witnesses; exactly one such line. `quorum 0` accepts a
//!   checkpoint the log alone signed.
//!
//! Any other line is an error naming its line number; so is a key that does
//! not parse. The file must be UTF-8.
//!
//! # What this module must never do
//!
//! Accept a checkpoint with fewer valid cosignatures than the quorum, or a
//! policy whose quorum its witnesses cannot meet.

use std::fmt;

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::cosignature::{verify_quorum, CosignatureError, CosignerKey};
use crate::keys::VerifierKey;
use crate::note::SignedNote;

/// Why a policy file does not read, or a checkpoint does not satisfy it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A line of the file is wrong.
    #[error("policy line {line}: {reason}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The file is not UTF-8.
    #[error("policy file is not valid UTF-8")]
    NotUtf8,
    /// No `log` line.
    #[error("policy names no log key (a line 'log <verifier key>')")]
    NoLog,
    /// No `quorum` line.
    #[error("policy has no 'quorum <k>' line")]
    NoQuorum,
    /// Two witnesses share a name.
    #[error("policy names witness {0} twice")]
    DuplicateWitness(String),
    /// The quorum exceeds the witnesses.
    #[error("policy quorum {quorum} is more than its {witnesses} witness(es)")]
    QuorumTooLarge {
        /// The quorum.
        quorum: usize,
        /// The number of witnesses.
        witnesses: usize,
    },
    /// The log's signature.
    #[error("{0}")]
    Checkpoint(#[from] CheckpointError),
    /// The witnesses' cosignatures.
    #[error("{0}")]
    Cosignatures(#[from] CosignatureError),
}

/// A trust policy: log keys, witnesses, quorum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    origin: Option<String>,
    logs: Vec<VerifierKey>,
    witnesses: Vec<(CosignerKey, Option<String>)>,
    quorum: usize,
}

/// A checkpoint that satisfied a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// The witnesses whose cosignature verified.
    pub witnesses: Vec<String>,
}

impl Policy {
    /// A policy from its parts.
    pub fn new(
        logs: Vec<VerifierKey>,
        witnesses: Vec<(CosignerKey, Option<String>)>,
        quorum: usize,
    ) -> Result<Self, PolicyError> {
        if logs.is_empty() {
            return Err(PolicyError::NoLog);
        }
        if quorum > witnesses.len() {
            return Err(PolicyError::QuorumTooLarge {
                quorum,
                witnesses: witnesses.len(),
            });
        }
        for (i, (w, _)) in witnesses.iter().enumerate() {
            if witnesses[..i].iter().any(|(o, _)| o.name() == w.name()) {
                return Err(PolicyError::DuplicateWitness(w.name().to_owned()));
            }
        }
        Ok(Policy {
            origin: None,
            logs,
            witnesses,
            quorum,
        })
    }

    /// Parse a policy file.
    pub fn parse(bytes: &[u8]) -> Result<Self, PolicyError> {
        let text = std::str::from_utf8(bytes).map_err(|_| PolicyError::NotUtf8)?;
        let mut logs = Vec::new();
        let mut witnesses: Vec<(CosignerKey, Option<String>)> = Vec::new();
        let mut quorum = None;
        let mut origin = None;
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let err = |reason: String| PolicyError::Line { line, reason };
            let content = raw.trim();
            if content.is_empty() || content.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = content.split_whitespace().collect();
            match fields.as_slice() {
                ["log", key] => logs.push(
                    key.parse::<VerifierKey>()
                        .map_err(|e| err(format!("log key: {e}")))?,
                ),
                ["witness", key, rest @ ..] if rest.len() <= 1 => {
                    let key: CosignerKey = key.parse().map_err(|e| err(format!("{e}")))?;
                    if witnesses.iter().any(|(w, _)| w.name() == key.name()) {
                        return Err(err(format!("witness {} is named twice", key.name())));
                    }
                    witnesses.push((key, rest.first().map(|s| (*s).to_owned())));
                }
                ["origin", o] => {
                    if origin.is_some() {
                        return Err(err("a second 'origin' line".into()));
                    }
                    origin = Some((*o).to_owned());
                }
                ["quorum", k] => {
                    if quorum.is_some() {
                        return Err(err("a second 'quorum' line".into()));
                    }
                    quorum = Some(k.parse::<usize>().map_err(|_| {
                        err(format!("quorum {k:?} is not a non-negative number"))
                    })?);
                }
                _ => {
                    return Err(err(format!(
                        "expected 'origin <origin>', 'log <key>', 'witness <key> [<url>]' or 'quorum <k>', found {content:?}"
                    )))
                }
            }
        }
        let quorum = quorum.ok_or(PolicyError::NoQuorum)?;
        Ok(Policy::new(logs, witnesses, quorum)?.with_origin(origin))
    }

    /// Require this origin (`None`: any).
    pub fn with_origin(mut self, origin: Option<String>) -> Self {
        self.origin = origin;
        self
    }

    /// The log keys.
    pub fn logs(&self) -> &[VerifierKey] {
        &self.logs
    }

    /// The witnesses' keys.
    pub fn witnesses(&self) -> Vec<CosignerKey> {
        self.witnesses.iter().map(|(k, _)| k.clone()).collect()
    }

    /// The quorum.
    pub fn quorum(&self) -> usize {
        self.quorum
    }

    /// Check a signed checkpoint: signed by a log key, and cosigned by at least the quorum of witnesses.
    pub fn verify(&self, signed: &[u8]) -> Result<Verified, PolicyError> {
        let note = SignedNote::parse(signed).map_err(CheckpointError::from)?;
        self.verify_note(&note)
    }

    /// [`Policy::verify`] on a parsed note.
    pub fn verify_note(&self, note: &SignedNote) -> Result<Verified, PolicyError> {
        note.verify(&self.logs).map_err(CheckpointError::from)?;
        let checkpoint = Checkpoint::parse(note.text())?;
        if let Some(origin) = &self.origin {
            if checkpoint.origin() != origin {
                return Err(CheckpointError::OriginMismatch {
                    expected: origin.clone(),
                    found: checkpoint.origin().to_owned(),
                }
                .into());
            }
        }
        let witnesses = verify_quorum(note, &self.witnesses(), self.quorum)?;
        Ok(Verified {
            checkpoint,
            witnesses,
        })
    }
}

impl fmt::Display for Policy {
    /// The policy file's text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "# Custos trust policy: the ledger's key, the witnesses that cosign its"
        )?;
        writeln!(f, "# checkpoints, and how many of them must have cosigned.")?;
        if let Some(origin) = &self.origin {
            writeln!(f, "origin {origin}")?;
        }
        for log in &self.logs {
            writeln!(f, "log {log}")?;
        }
        for (w, url) in &self.witnesses {
            match url {
                Some(url) => writeln!(f, "witness {w} {url}")?,
                None => writeln!(f, "witness {w}")?,
            }
        }
        writeln!(f, "quorum {}", self.quorum)
    }
}
