//! C2SP signed notes (<https://c2sp.org/signed-note>): a UTF-8 text signed by
//! one or more Ed25519 keys, the envelope of the ledger's checkpoints.
//!
//! ```text
//! custos.example.org/ledger
//! 42
//! 4vTQFA0h8Nk5vX0hxJdKZ0Iy0Q1YqTWkxJ8mZ0hVxYc=
//!
//! — custos.example.org/ledger Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe...
//! ```
//!
//! The format, as the spec lays it down and this module enforces it:
//!
//! 1. the whole note is valid UTF-8 with no ASCII control character (below
//!    U+0020) other than newline;
//! 2. the *text* ends with a newline; it may contain blank lines;
//! 3. then one blank line; the text is separated from the signatures by the
//!    *last* blank line of the note;
//! 4. then one or more signature lines, each `— <key name> <base64>` and a
//!    newline: an em dash (U+2014), a space, the key name (non-empty, no
//!    Unicode space, no `+`), a space, and the standard base64 of the 4-byte
//!    key ID (big-endian) followed by the signature bytes. For Ed25519 the key
//!    ID is [`VerifierKey::key_hash`] and the signature is over the text's
//!    bytes, final newline included.
//!
//! Verification follows the spec's rules: a signature whose key name and key
//! ID do not both match a trusted key is ignored; a signature that does match
//! must verify, or the whole note is rejected; and at least one trusted
//! signature must verify.
//!
//! # What this module must never do
//!
//! It never returns a note's text as trustworthy before [`SignedNote::verify`]
//! succeeded, never accepts a malformed note for the sake of leniency (every
//! rejection says what is wrong), and never holds more than
//! [`MAX_SIGNATURES`] signatures, so a hostile note cannot make a verifier
//! check signatures without end.

use std::fmt;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use crate::keys::{SigningKey, VerifierKey};

/// The most signature lines a note may carry. The spec asks verifiers to
/// accept at least 16 and to apply a limit; 100 is the limit of Go's
/// `golang.org/x/mod/sumdb/note`, so notes that tool accepts, this one does.
pub const MAX_SIGNATURES: usize = 100;

/// What starts every signature line: an em dash (U+2014) and a space.
const SIG_PREFIX: &str = "\u{2014} ";

/// Why bytes are not a well-formed signed note, or a text cannot be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    /// The bytes are not valid UTF-8.
    #[error("note is not valid UTF-8 (first invalid byte at offset {offset})")]
    NotUtf8 {
        /// Byte offset of the first invalid sequence.
        offset: usize,
    },
    /// An ASCII control character other than newline (including CR and tab).
    #[error("note line {line} contains control character U+{code:04X}; only newline is allowed")]
    ControlCharacter {
        /// 1-based line number.
        line: usize,
        /// The character's code point.
        code: u32,
    },
    /// The text to sign is empty.
    #[error("note text is empty")]
    EmptyText,
    /// The text to sign does not end with a newline.
    #[error("note text does not end with a newline")]
    TextNotTerminated,
    /// No blank line separates the text from the signatures.
    #[error("note has no blank line separating the text from the signatures")]
    MissingBlankLine,
    /// Nothing follows the blank line (or no key was given to sign with).
    #[error("note has no signature lines")]
    NoSignatures,
    /// The note does not end with a newline after its last signature line.
    #[error("the last signature line of the note does not end with a newline")]
    SignatureNotTerminated,
    /// More than [`MAX_SIGNATURES`] signature lines.
    #[error("note has {count} signature lines; at most {max} are accepted")]
    TooManySignatures {
        /// How many lines follow the blank line.
        count: usize,
        /// [`MAX_SIGNATURES`].
        max: usize,
    },
    /// A line after the blank line is not a well-formed signature line.
    #[error("note line {line} is not a signature line '\u{2014} <name> <base64>': {reason}")]
    BadSignatureLine {
        /// 1-based line number in the whole note.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
}

/// Why a well-formed note did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// No signature comes from a trusted key.
    #[error("note has no signature by a trusted key (signed by: {})", signers.join(", "))]
    NoTrustedSignature {
        /// `name+keyhash` of every signature in the note.
        signers: Vec<String>,
    },
    /// A signature names a trusted key but does not verify under it.
    #[error(
        "signature by trusted key {key_id} does not verify: the note was altered or mis-signed"
    )]
    BadSignature {
        /// `name+keyhash` of the key.
        key_id: String,
    },
    /// Two different trusted keys share a name and key ID, so a signature
    /// cannot be attributed.
    #[error("two different trusted keys are named {key_id}; cannot tell which one signed")]
    AmbiguousKey {
        /// `name+keyhash` shared by the keys.
        key_id: String,
    },
}

/// The text of a note: valid for signing (non-empty, ends with a newline, no
/// control character but newline). Not trusted by itself; see [`SignedNote`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    text: String,
}

impl Note {
    /// Check `text` and wrap it.
    pub fn new(text: &str) -> Result<Self, NoteError> {
        check_controls(text, 1)?;
        if text.is_empty() {
            return Err(NoteError::EmptyText);
        }
        if !text.ends_with('\n') {
            return Err(NoteError::TextNotTerminated);
        }
        Ok(Note {
            text: text.to_owned(),
        })
    }

    /// Sign `text` with every key in `keys` (at least one).
    pub fn sign(text: &str, keys: &[&SigningKey]) -> Result<SignedNote, NoteError> {
        if keys.is_empty() {
            return Err(NoteError::NoSignatures);
        }
        let mut note = SignedNote {
            note: Note::new(text)?,
            signatures: Vec::with_capacity(keys.len()),
        };
        for key in keys {
            note.add_signature(key)?;
        }
        Ok(note)
    }

    /// The text, final newline included: the bytes that are signed.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// One signature line: key name, 4-byte key ID and signature bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct NoteSignature {
    name: String,
    key_hash: [u8; 4],
    signature: Vec<u8>,
}

impl NoteSignature {
    /// A signature line from its parts (a cosignature made elsewhere, e.g.
    /// [`crate::cosignature::cosign`]). The name must be a valid key name.
    pub fn new(name: &str, key_hash: [u8; 4], signature: Vec<u8>) -> Result<Self, NoteError> {
        let line = NoteSignature {
            name: name.to_owned(),
            key_hash,
            signature,
        };
        // Round-trip through the parser: one set of rules for the line.
        parse_signature_line(&line.to_string())
            .map_err(|reason| NoteError::BadSignatureLine { line: 1, reason })
    }

    /// Parse signature lines (each `— name base64` and a newline), as a
    /// witness answers `add-checkpoint`; at most [`MAX_SIGNATURES`].
    pub fn parse_lines(text: &str) -> Result<Vec<NoteSignature>, NoteError> {
        check_controls(text, 1)?;
        let Some(body) = text.strip_suffix('\n') else {
            return Err(if text.is_empty() {
                NoteError::NoSignatures
            } else {
                NoteError::SignatureNotTerminated
            });
        };
        let count = body.split('\n').count();
        if count > MAX_SIGNATURES {
            return Err(NoteError::TooManySignatures {
                count,
                max: MAX_SIGNATURES,
            });
        }
        body.split('\n')
            .enumerate()
            .map(|(i, line)| {
                parse_signature_line(line).map_err(|reason| NoteError::BadSignatureLine {
                    line: i + 1,
                    reason,
                })
            })
            .collect()
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 4-byte key ID.
    pub fn key_hash(&self) -> [u8; 4] {
        self.key_hash
    }

    /// `name+keyhash` (8 hex digits), as [`VerifierKey::key_id`] spells it.
    pub fn key_id(&self) -> String {
        format!("{}+{}", self.name, hex::encode(self.key_hash))
    }

    /// The signature bytes after the key ID (64 for Ed25519).
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    fn matches(&self, key: &VerifierKey) -> bool {
        key.name() == self.name && key.key_hash() == self.key_hash
    }
}

impl fmt::Debug for NoteSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "NoteSignature({}, {} bytes)",
            self.key_id(),
            self.signature.len()
        )
    }
}

impl fmt::Display for NoteSignature {
    /// The signature line, without its newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut blob = Vec::with_capacity(4 + self.signature.len());
        blob.extend_from_slice(&self.key_hash);
        blob.extend_from_slice(&self.signature);
        write!(f, "{SIG_PREFIX}{} {}", self.name, B64.encode(blob))
    }
}

/// A note with its signatures, parsed or freshly signed. Its text is
/// untrusted until [`SignedNote::verify`] succeeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedNote {
    note: Note,
    // INVARIANT: 1 <= signatures.len() <= MAX_SIGNATURES.
    signatures: Vec<NoteSignature>,
}

impl SignedNote {
    /// Parse a signed note, rejecting anything the format does not allow.
    pub fn parse(bytes: &[u8]) -> Result<Self, NoteError> {
        let msg = std::str::from_utf8(bytes).map_err(|e| NoteError::NotUtf8 {
            offset: e.valid_up_to(),
        })?;
        check_controls(msg, 1)?;
        let Some(split) = msg.rfind("\n\n") else {
            return Err(NoteError::MissingBlankLine);
        };
        let (text, sigs) = (&msg[..=split], &msg[split + 2..]);
        if sigs.is_empty() {
            return Err(NoteError::NoSignatures);
        }
        let Some(sigs) = sigs.strip_suffix('\n') else {
            return Err(NoteError::SignatureNotTerminated);
        };
        let count = sigs.split('\n').count();
        if count > MAX_SIGNATURES {
            return Err(NoteError::TooManySignatures {
                count,
                max: MAX_SIGNATURES,
            });
        }
        // Line numbers: the text's lines, then the blank line.
        let first_sig_line = text.matches('\n').count() + 2;
        let signatures = sigs
            .split('\n')
            .enumerate()
            .map(|(i, line)| {
                parse_signature_line(line).map_err(|reason| NoteError::BadSignatureLine {
                    line: first_sig_line + i,
                    reason,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SignedNote {
            note: Note {
                text: text.to_owned(),
            },
            signatures,
        })
    }

    /// The note's text. Untrusted unless [`SignedNote::verify`] succeeded.
    pub fn text(&self) -> &str {
        &self.note.text
    }

    /// The note without its signatures.
    pub fn note(&self) -> &Note {
        &self.note
    }

    /// The signatures, in the order of the note.
    pub fn signatures(&self) -> &[NoteSignature] {
        &self.signatures
    }

    /// Add `key`'s signature (a cosignature), replacing an earlier signature
    /// by a key with the same name and key ID.
    pub fn add_signature(&mut self, key: &SigningKey) -> Result<(), NoteError> {
        let vk = key.verifier_key();
        self.push_signature(NoteSignature {
            name: vk.name().to_owned(),
            key_hash: vk.key_hash(),
            signature: key.sign(self.note.text.as_bytes()).to_vec(),
        })
    }

    /// Add a signature line made elsewhere (a witness's cosignature),
    /// replacing one with the same key name and key ID.
    pub fn push_signature(&mut self, sig: NoteSignature) -> Result<(), NoteError> {
        if let Some(old) = self
            .signatures
            .iter_mut()
            .find(|s| s.name == sig.name && s.key_hash == sig.key_hash)
        {
            *old = sig;
            return Ok(());
        }
        if self.signatures.len() >= MAX_SIGNATURES {
            return Err(NoteError::TooManySignatures {
                count: self.signatures.len() + 1,
                max: MAX_SIGNATURES,
            });
        }
        self.signatures.push(sig);
        Ok(())
    }

    /// Verify against the trusted `keys`; returns the names of the trusted
    /// keys whose signature verified (each once, in note order).
    ///
    /// Signatures by keys not in `keys` (name and key ID both matching) are
    /// ignored. A signature by a trusted key that fails to verify rejects the
    /// whole note; so does a note with no signature by a trusted key.
    pub fn verify(&self, keys: &[VerifierKey]) -> Result<Vec<String>, VerifyError> {
        let mut verified: Vec<String> = Vec::new();
        for sig in &self.signatures {
            let mut candidates = keys.iter().filter(|k| sig.matches(k));
            let Some(key) = candidates.next() else {
                continue;
            };
            if candidates.any(|other| other.public_key() != key.public_key()) {
                return Err(VerifyError::AmbiguousKey {
                    key_id: sig.key_id(),
                });
            }
            key.verify(self.note.text.as_bytes(), &sig.signature)
                .map_err(|_| VerifyError::BadSignature {
                    key_id: sig.key_id(),
                })?;
            if !verified.iter().any(|n| n == key.name()) {
                verified.push(key.name().to_owned());
            }
        }
        if verified.is_empty() {
            return Err(VerifyError::NoTrustedSignature {
                signers: self.signatures.iter().map(NoteSignature::key_id).collect(),
            });
        }
        Ok(verified)
    }

    /// The serialised note, as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }
}

impl fmt::Display for SignedNote {
    /// The serialised note: text, blank line, one line per signature.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.note.text)?;
        f.write_str("\n")?;
        for sig in &self.signatures {
            writeln!(f, "{sig}")?;
        }
        Ok(())
    }
}

/// Reject ASCII control characters other than newline; `first_line` is the
/// number of the first line of `text` for the message.
fn check_controls(text: &str, first_line: usize) -> Result<(), NoteError> {
    if let Some(pos) = text.bytes().position(|b| b < 0x20 && b != b'\n') {
        return Err(NoteError::ControlCharacter {
            line: first_line
                + text.as_bytes()[..pos]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count(),
            code: u32::from(text.as_bytes()[pos]),
        });
    }
    Ok(())
}

/// Parse one signature line (without its newline); the error is the reason.
fn parse_signature_line(line: &str) -> Result<NoteSignature, String> {
    let Some(rest) = line.strip_prefix(SIG_PREFIX) else {
        return Err("it does not start with an em dash (U+2014) and a space".into());
    };
    let Some((name, blob)) = rest.split_once(' ') else {
        return Err("no space between the key name and the signature".into());
    };
    if name.is_empty() {
        return Err("the key name is empty".into());
    }
    if name.chars().any(|c| c == '+' || c.is_whitespace()) {
        return Err(format!(
            "key name {name:?} contains '+' or a space character"
        ));
    }
    if blob.contains(' ') {
        return Err("more than one space-separated field after the key name".into());
    }
    let bytes = B64
        .decode(blob)
        .map_err(|_| "the signature is not valid standard base64".to_owned())?;
    let Some((key_hash, signature)) = bytes.split_first_chunk::<4>() else {
        return Err(format!(
            "the signature is {} bytes; it needs a 4-byte key ID and the signature",
            bytes.len()
        ));
    };
    if signature.is_empty() {
        return Err("the signature is only a 4-byte key ID, with no signature bytes".into());
    }
    Ok(NoteSignature {
        name: name.to_owned(),
        key_hash: *key_hash,
        signature: signature.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_character_line_numbers() {
        assert_eq!(
            check_controls("a\nb\tc\n", 1),
            Err(NoteError::ControlCharacter { line: 2, code: 9 })
        );
        assert_eq!(check_controls("a\n\nb\n", 1), Ok(()));
    }

    #[test]
    fn signature_line_reasons() {
        assert!(parse_signature_line("- a AAAAAAA=").is_err());
        assert!(parse_signature_line("\u{2014} a").is_err());
        assert!(parse_signature_line("\u{2014}  AAAAAAA=").is_err());
        assert!(parse_signature_line("\u{2014} a+b AAAAAAA=").is_err());
        assert!(parse_signature_line("\u{2014} a\u{3000}b AAAAAAA=").is_err());
        assert!(parse_signature_line("\u{2014} a AAAA AAAA").is_err());
        assert!(parse_signature_line("\u{2014} a AAAA").is_err()); // 3 bytes
        assert!(parse_signature_line("\u{2014} a AAAAAA==").is_err()); // 4 bytes
        let sig = parse_signature_line("\u{2014} a AAAAAAE=").unwrap(); // 5 bytes
        assert_eq!(sig.key_hash(), [0, 0, 0, 0]);
        assert_eq!(sig.signature(), &[1]);
        assert_eq!(sig.to_string(), "\u{2014} a AAAAAAE=");
    }
}
