//! C2SP tlog-cosignature, Ed25519 `cosignature/v1`
//! (<https://c2sp.org/tlog-cosignature>): a witness's statement that, at a
//! given time, the checkpoint it signs is the largest consistent tree head it
//! has seen for that log.
//!
//! A cosignature is an ordinary [signed-note](crate::note) signature line
//! added to the log's checkpoint, with two differences from the log's own:
//!
//! - the **key ID** is the first four bytes of
//!   SHA-256(name || `\n` || 0x04 || the 32-byte Ed25519 public key) — type
//!   byte 0x04, not the 0x01 of a plain Ed25519 note key, so a witness key
//!   can never be taken for a log key or the other way round;
//! - the **signature bytes** are an 8-byte big-endian POSIX timestamp (at
//!   most 2^63 - 1) followed by the 64-byte Ed25519 signature over the
//!   *cosigned message*: the line `cosignature/v1`, the line `time <ts>` (ASCII
//!   decimal, no leading zero), then the checkpoint's note text, final
//!   newline included.
//!
//! A witness's public key is written as a C2SP verifier key with type byte
//! 0x04: `name+hash+base64(0x04 || pubkey)` ([`CosignerKey`]).
//!
//! The timestamp is a parameter: this crate reads no clock.
//!
//! # What this module must never do
//!
//! Accept a signature line whose name and key ID are not the witness's own,
//! accept a cosignature over another text than the checkpoint's, or count a
//! witness twice towards a quorum.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};

use crate::keys::{Algorithm, KeyError, SigningKey, VerifierKey};
use crate::note::{NoteError, NoteSignature, SignedNote};

/// The type byte of an Ed25519 `cosignature/v1` key (in its key ID and its
/// verifier-key string).
pub const COSIGNATURE_V1_ALG: u8 = 0x04;

/// The first line of the cosigned message (domain separation).
pub const COSIGNATURE_V1_HEADER: &str = "cosignature/v1";

/// The largest timestamp a cosignature may carry (2^63 - 1).
pub const MAX_TIMESTAMP: u64 = i64::MAX as u64;

/// Why a cosignature or a cosigner key is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CosignatureError {
    /// The witness's verifier key string is malformed.
    #[error("witness key: {0}")]
    BadKey(String),
    /// A cosignature can only be made with an Ed25519 key.
    #[error("witness key {0} is not an Ed25519 key; cosignature/v1 needs one")]
    NotEd25519(String),
    /// The signature bytes are not 8 + 64 long.
    #[error("cosignature by {key_id} is {len} bytes; a cosignature/v1 is 72 (timestamp and Ed25519 signature)")]
    BadLength {
        /// `name+hash` of the witness.
        key_id: String,
        /// The length found.
        len: usize,
    },
    /// The timestamp is above 2^63 - 1.
    #[error("cosignature by {key_id} has timestamp {timestamp}, above 2^63-1")]
    BadTimestamp {
        /// `name+hash` of the witness.
        key_id: String,
        /// The timestamp.
        timestamp: u64,
    },
    /// The Ed25519 signature does not verify over the cosigned message.
    #[error("cosignature by witness {key_id} does not verify: the checkpoint or the cosignature was altered")]
    Invalid {
        /// `name+hash` of the witness.
        key_id: String,
    },
    /// Fewer valid cosignatures than the policy's quorum.
    #[error("checkpoint carries {got} valid witness cosignature(s) ({names}); the policy requires {quorum}")]
    NoQuorum {
        /// How many witnesses cosigned validly.
        got: usize,
        /// The policy's quorum.
        quorum: usize,
        /// Their names, comma-separated (or "none").
        names: String,
    },
    /// The note could not take another signature line.
    #[error("{0}")]
    Note(#[from] NoteError),
}

/// A witness's public key for Ed25519 `cosignature/v1`.
#[derive(Clone, PartialEq, Eq)]
pub struct CosignerKey {
    // INVARIANT: verifier holds the same name and public key; its own key
    // hash (type 0x01) is never used for cosignatures.
    verifier: VerifierKey,
    hash: [u8; 4],
}

impl CosignerKey {
    /// A cosigner key from a name and an Ed25519 public key.
    pub fn from_public(name: &str, public: &[u8; 32]) -> Result<Self, CosignatureError> {
        let verifier = VerifierKey::from_public(name, public)
            .map_err(|e| CosignatureError::BadKey(e.to_string()))?;
        Ok(CosignerKey {
            hash: cosigner_key_hash(name, public),
            verifier,
        })
    }

    /// The cosigner key of a witness's signing key (Ed25519 only).
    pub fn of(key: &SigningKey) -> Result<Self, CosignatureError> {
        let vk = key.verifier_key();
        let Some(public) = vk.ed25519_public() else {
            return Err(CosignatureError::NotEd25519(vk.key_id()));
        };
        CosignerKey::from_public(vk.name(), public)
    }

    /// The witness's name.
    pub fn name(&self) -> &str {
        self.verifier.name()
    }

    /// The 4-byte key ID (type byte 0x04).
    pub fn key_hash(&self) -> [u8; 4] {
        self.hash
    }

    /// `name+hash`, for messages.
    pub fn key_id(&self) -> String {
        format!("{}+{}", self.name(), hex::encode(self.hash))
    }

    /// The 32-byte Ed25519 public key.
    pub fn public_key(&self) -> &[u8; 32] {
        // INVARIANT: built from an Ed25519 key only.
        self.verifier
            .ed25519_public()
            .expect("INVARIANT: a cosigner key is Ed25519")
    }

    /// Whether `sig` claims to be this witness's (name and key ID).
    pub fn matches(&self, sig: &NoteSignature) -> bool {
        sig.name() == self.name() && sig.key_hash() == self.hash
    }

    /// Verify `sig` as this witness's cosignature of the note text
    /// `checkpoint_text`; returns its timestamp.
    pub fn verify(
        &self,
        checkpoint_text: &str,
        sig: &NoteSignature,
    ) -> Result<u64, CosignatureError> {
        let bytes = sig.signature();
        let Some((ts, signature)) = bytes.split_first_chunk::<8>() else {
            return Err(CosignatureError::BadLength {
                key_id: self.key_id(),
                len: bytes.len(),
            });
        };
        if signature.len() != 64 {
            return Err(CosignatureError::BadLength {
                key_id: self.key_id(),
                len: bytes.len(),
            });
        }
        let timestamp = u64::from_be_bytes(*ts);
        if timestamp > MAX_TIMESTAMP {
            return Err(CosignatureError::BadTimestamp {
                key_id: self.key_id(),
                timestamp,
            });
        }
        self.verifier
            .verify(&signed_message(checkpoint_text, timestamp), signature)
            .map_err(|_| CosignatureError::Invalid {
                key_id: self.key_id(),
            })?;
        Ok(timestamp)
    }
}

impl fmt::Debug for CosignerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CosignerKey({self})")
    }
}

impl fmt::Display for CosignerKey {
    /// `name+hash+base64(0x04 || pubkey)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let data = [&[COSIGNATURE_V1_ALG][..], self.public_key()].concat();
        write!(
            f,
            "{}+{}+{}",
            self.name(),
            hex::encode(self.hash),
            B64.encode(data)
        )
    }
}

impl FromStr for CosignerKey {
    type Err = CosignatureError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| CosignatureError::BadKey(format!("{s:?}: {why}"));
        let mut parts = s.splitn(3, '+');
        let (Some(name), Some(hash), Some(data)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("expected name+hash+base64(0x04 || key)"));
        };
        let data = B64
            .decode(data)
            .map_err(|_| bad("key data is not valid base64"))?;
        let Some((&COSIGNATURE_V1_ALG, public)) = data.split_first() else {
            return Err(bad(
                "key type is not 0x04 (an Ed25519 cosignature/v1 witness key)",
            ));
        };
        let public: &[u8; 32] = public
            .try_into()
            .map_err(|_| bad("key data must be 33 bytes (0x04 and a 32-byte Ed25519 key)"))?;
        let key = CosignerKey::from_public(name, public)?;
        if hash != hex::encode(key.hash) {
            return Err(bad("the key hash does not match the name and key"));
        }
        Ok(key)
    }
}

/// SHA-256(name || `\n` || 0x04 || public)[..4].
fn cosigner_key_hash(name: &str, public: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', COSIGNATURE_V1_ALG]);
    h.update(public);
    let out = h.finalize();
    [out[0], out[1], out[2], out[3]]
}

/// The message a `cosignature/v1` signs: header line, time line, then the
/// checkpoint's note text (which ends with its newline).
pub fn signed_message(checkpoint_text: &str, timestamp: u64) -> Vec<u8> {
    format!("{COSIGNATURE_V1_HEADER}\ntime {timestamp}\n{checkpoint_text}").into_bytes()
}

/// Cosign the checkpoint note text `checkpoint_text` at `timestamp` (POSIX
/// seconds, the caller's clock) with the witness key `key`: the signature
/// line to add to the note.
pub fn cosign(
    key: &SigningKey,
    checkpoint_text: &str,
    timestamp: u64,
) -> Result<NoteSignature, CosignatureError> {
    if key.algorithm() != Algorithm::Ed25519 {
        return Err(CosignatureError::NotEd25519(key.verifier_key().key_id()));
    }
    if timestamp > MAX_TIMESTAMP {
        return Err(CosignatureError::BadTimestamp {
            key_id: key.verifier_key().key_id(),
            timestamp,
        });
    }
    let cosigner = CosignerKey::of(key)?;
    let mut bytes = Vec::with_capacity(72);
    bytes.extend_from_slice(&timestamp.to_be_bytes());
    bytes.extend_from_slice(&key.sign(&signed_message(checkpoint_text, timestamp)));
    Ok(NoteSignature::new(
        cosigner.name(),
        cosigner.key_hash(),
        bytes,
    )?)
}

/// Check the witnesses' cosignatures on `note` and require `quorum` of them.
///
/// A signature line that names one of `witnesses` (name and key ID) must
/// verify, or the note is refused (as the signed-note rules ask); lines by
/// other keys are ignored. Each witness counts once. Returns the names of
/// the witnesses that cosigned, in the order of `witnesses`.
pub fn verify_quorum(
    note: &SignedNote,
    witnesses: &[CosignerKey],
    quorum: usize,
) -> Result<Vec<String>, CosignatureError> {
    let mut names = Vec::new();
    for witness in witnesses {
        let mut valid = false;
        for sig in note.signatures().iter().filter(|s| witness.matches(s)) {
            witness.verify(note.text(), sig)?;
            valid = true;
        }
        if valid && !names.iter().any(|n: &String| n == witness.name()) {
            names.push(witness.name().to_owned());
        }
    }
    if names.len() < quorum {
        return Err(CosignatureError::NoQuorum {
            got: names.len(),
            quorum,
            names: if names.is_empty() {
                "none".into()
            } else {
                names.join(", ")
            },
        });
    }
    Ok(names)
}

impl From<KeyError> for CosignatureError {
    fn from(e: KeyError) -> Self {
        CosignatureError::BadKey(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_seed("witness.example/w1", &[7; 32]).unwrap()
    }

    #[test]
    fn message_layout() {
        let m = signed_message("o\n1\nAAAA\n", 1_679_315_147);
        assert_eq!(m, b"cosignature/v1\ntime 1679315147\no\n1\nAAAA\n");
    }

    #[test]
    fn key_string_round_trips_and_differs_from_the_note_key() {
        let k = CosignerKey::of(&key()).unwrap();
        let text = k.to_string();
        assert_eq!(text.parse::<CosignerKey>().unwrap(), k);
        assert_ne!(k.key_hash(), key().verifier_key().key_hash());
        // A note key (type 0x01) is not a cosigner key.
        assert!(key()
            .verifier_key()
            .to_string()
            .parse::<CosignerKey>()
            .is_err());
        // A wrong hash is refused.
        let mut wrong = text.clone();
        let at = k.name().len() + 1;
        wrong.replace_range(at..at + 1, if &text[at..=at] == "0" { "1" } else { "0" });
        assert!(wrong.parse::<CosignerKey>().is_err());
    }

    #[test]
    fn cosign_then_verify() {
        let text = "example.com/log\n3\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
        let sig = cosign(&key(), text, 42).unwrap();
        let k = CosignerKey::of(&key()).unwrap();
        assert!(k.matches(&sig));
        assert_eq!(sig.signature().len(), 72);
        assert_eq!(k.verify(text, &sig), Ok(42));
        assert!(k.verify("example.com/log\n4\nAAAA\n", &sig).is_err());
        assert!(cosign(&key(), text, MAX_TIMESTAMP + 1).is_err());
    }
}
