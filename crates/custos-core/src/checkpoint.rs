//! C2SP transparency-log checkpoints (<https://c2sp.org/tlog-checkpoint>): the
//! ledger's signed statement "my tree of this size has this root".
//!
//! A checkpoint is a [signed note](crate::note) whose text is, line by line:
//!
//! 1. the **origin**, the log's identity (Custos uses the `[ledger] origin`
//!    setting, e.g. `custos.example.org/ledger`); non-empty;
//! 2. the **tree size**, in ASCII decimal with no leading zero (`0` for the
//!    empty tree);
//! 3. the **root hash**, standard base64 of the 32-byte RFC 6962 root
//!    ([`crate::merkle`]);
//! 4. optional **extension lines**, each non-empty (Custos writes none).
//!
//! [`Checkpoint::sign`] produces the signed note the ledger serves at
//! `GET /v1/checkpoint`; [`Checkpoint::open`] is the only way for a verifier to
//! get a checkpoint out of untrusted bytes: it checks the note's format, the
//! ledger key's signature and, if asked, the origin, before reading the body.
//!
//! # What this module must never do
//!
//! It never hands out a checkpoint from a note the ledger key did not sign,
//! never trusts any key but the one the caller names (a dock's key in the same
//! bundle must not be able to vouch for a tree head), and never produces a
//! body that its own parser would reject.

use std::fmt;

use crate::keys::{Signers, VerifierKey};
use crate::merkle::Hash;
use crate::note::{Note, NoteError, SignedNote, VerifyError};

/// Why a checkpoint could not be built, parsed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The signed text is not a well-formed signed note.
    #[error("checkpoint is not a well-formed signed note: {0}")]
    Note(#[from] NoteError),
    /// The note is not validly signed by the expected key.
    #[error("checkpoint signature: {0}")]
    Signature(#[from] VerifyError),
    /// The body does not end with a newline.
    #[error("checkpoint body does not end with a newline")]
    NotTerminated,
    /// The body has fewer than three lines.
    #[error("checkpoint body has no {0} line")]
    MissingLine(&'static str),
    /// The origin line is empty.
    #[error("checkpoint origin (line 1) is empty")]
    EmptyOrigin,
    /// A line holds a newline or another control character.
    #[error("checkpoint {field} contains a newline or control character")]
    ControlCharacter {
        /// Which field: "origin" or "extension line".
        field: &'static str,
    },
    /// The size line is not canonical decimal or does not fit in 64 bits.
    #[error("checkpoint tree size (line 2) {0:?} is not a decimal number without leading zeros")]
    BadSize(String),
    /// The root line is not the base64 of 32 bytes.
    #[error("checkpoint root hash (line 3) {0:?} is not the standard base64 of a 32-byte hash")]
    BadRoot(String),
    /// An extension line is empty.
    #[error("checkpoint extension line {line} is empty; extension lines must not be")]
    EmptyExtension {
        /// 1-based line number in the body.
        line: usize,
    },
    /// The checkpoint is for another log.
    #[error("checkpoint is for log {found:?}, expected {expected:?}")]
    OriginMismatch {
        /// The origin the caller expected.
        expected: String,
        /// The origin in the checkpoint.
        found: String,
    },
}

/// A tree head: origin, size, root hash and optional extension lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    // INVARIANT: origin is non-empty, extensions are non-empty, and neither
    // holds a control character (newline included), so to_body() is always
    // a valid note text that parse() reads back identically.
    origin: String,
    size: u64,
    root: Hash,
    extensions: Vec<String>,
}

fn has_control(s: &str) -> bool {
    s.chars().any(|c| c.is_ascii_control())
}

impl Checkpoint {
    /// A checkpoint without extension lines.
    pub fn new(origin: &str, size: u64, root: Hash) -> Result<Self, CheckpointError> {
        if origin.is_empty() {
            return Err(CheckpointError::EmptyOrigin);
        }
        if has_control(origin) {
            return Err(CheckpointError::ControlCharacter { field: "origin" });
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
            extensions: Vec::new(),
        })
    }

    /// Add extension lines (each non-empty, without newline).
    pub fn with_extensions<I, S>(mut self, lines: I) -> Result<Self, CheckpointError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        for line in lines {
            let line = line.into();
            if line.is_empty() {
                return Err(CheckpointError::EmptyExtension {
                    line: 4 + self.extensions.len(),
                });
            }
            if has_control(&line) {
                return Err(CheckpointError::ControlCharacter {
                    field: "extension line",
                });
            }
            self.extensions.push(line);
        }
        Ok(self)
    }

    /// The log's origin line.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The tree size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The root hash of the tree at that size.
    pub fn root(&self) -> Hash {
        self.root
    }

    /// The extension lines, usually none.
    pub fn extensions(&self) -> &[String] {
        &self.extensions
    }

    /// The note text: origin, size, root and extension lines, each followed
    /// by a newline.
    pub fn to_body(&self) -> String {
        let mut body = format!("{}\n{}\n{}\n", self.origin, self.size, self.root);
        for line in &self.extensions {
            body.push_str(line);
            body.push('\n');
        }
        body
    }

    /// Parse a checkpoint body (the note text, not the signed note).
    pub fn parse(body: &str) -> Result<Self, CheckpointError> {
        let Some(body) = body.strip_suffix('\n') else {
            return Err(CheckpointError::NotTerminated);
        };
        let mut lines = body.split('\n');
        let origin = lines.next().unwrap_or_default();
        let size = lines
            .next()
            .ok_or(CheckpointError::MissingLine("tree size"))?;
        let root = lines
            .next()
            .ok_or(CheckpointError::MissingLine("root hash"))?;
        let size = parse_size(size)?;
        let root: Hash = root
            .parse()
            .map_err(|_| CheckpointError::BadRoot(root.to_owned()))?;
        let checkpoint = Checkpoint::new(origin, size, root)?;
        let mut extensions = Vec::new();
        for (i, line) in lines.enumerate() {
            if line.is_empty() {
                return Err(CheckpointError::EmptyExtension { line: 4 + i });
            }
            extensions.push(line);
        }
        checkpoint.with_extensions(extensions)
    }

    /// Sign with the ledger's keys (one signature line per key: Ed25519,
    /// then SM2 when configured): the signed note the ledger serves.
    pub fn sign(&self, key: &(impl Signers + ?Sized)) -> String {
        // INVARIANT: to_body() is a valid note text (see the struct), and a
        // Signers value holds at least one key, so signing cannot fail.
        Note::sign(&self.to_body(), &key.signing_keys())
            .expect("INVARIANT: a checkpoint body is a valid note text")
            .to_string()
    }

    /// Open a signed checkpoint: parse the note, require a valid signature by
    /// `key` (other signatures, such as witnesses', are ignored), parse the
    /// body and, when `expected_origin` is given, require that origin.
    pub fn open(
        signed: impl AsRef<[u8]>,
        key: &VerifierKey,
        expected_origin: Option<&str>,
    ) -> Result<Self, CheckpointError> {
        let note = SignedNote::parse(signed.as_ref())?;
        note.verify(std::slice::from_ref(key))?;
        let checkpoint = Checkpoint::parse(note.text())?;
        if let Some(expected) = expected_origin {
            if checkpoint.origin != expected {
                return Err(CheckpointError::OriginMismatch {
                    expected: expected.to_owned(),
                    found: checkpoint.origin,
                });
            }
        }
        Ok(checkpoint)
    }
}

impl fmt::Display for Checkpoint {
    /// A one-line summary for logs and messages: `origin@size root`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{} {}", self.origin, self.size, self.root)
    }
}

/// ASCII decimal, no sign, no leading zero unless the value is 0, fits in u64.
fn parse_size(text: &str) -> Result<u64, CheckpointError> {
    let bad = || CheckpointError::BadSize(text.to_owned());
    if text.is_empty()
        || !text.bytes().all(|b| b.is_ascii_digit())
        || (text.len() > 1 && text.starts_with('0'))
    {
        return Err(bad());
    }
    text.parse().map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_rules() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("20852163"), Ok(20_852_163));
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
        for bad in [
            "",
            "00",
            "01",
            "+1",
            "-1",
            " 1",
            "1 ",
            "1e3",
            "18446744073709551616",
            "١",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?} accepted");
        }
    }
}
