//! DSSE v1 envelopes: the signed wrapper around every manifest and event.
//!
//! Follows the Dead Simple Signing Envelope protocol and JSON envelope of
//! secure-systems-lab/dsse (protocol v1.0.0). A signature covers the
//! *pre-authentication encoding* of the payload type and the payload bytes,
//!
//! ```text
//! PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body
//! ```
//!
//! (`LEN` is the decimal byte length without leading zeros), so a signature
//! over a manifest can never be replayed as an event and no byte of either is
//! outside the signature. The JSON form is
//! `{"payload": base64, "payloadType": string, "signatures": [{"keyid", "sig"}]}`.
//! Custos signs with Ed25519 ([`crate::keys`]); each `keyid` is the signer's
//! C2SP key id `name+hash`, which tells a verifier which key to try and is
//! *never* trusted for anything else.
//!
//! Parsing is strict: unknown fields, malformed base64, an empty signature
//! list and oversized inputs or counts are errors. As the protocol requires,
//! both the standard and the URL-safe base64 alphabets are accepted on input;
//! output always uses the standard alphabet with padding.
//!
//! This module must never report an envelope as verified unless at least one
//! signature verified under a key the caller trusts, and must never skip a
//! failing signature that names a trusted key.

use std::collections::BTreeSet;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::keys::{SignatureError, SigningKey, VerifierKey};

/// The payload type of a signed segment manifest.
pub const MANIFEST_PAYLOAD_TYPE: &str = "application/vnd.custos.manifest+json";
/// The payload type of a custody event a dock sends to the ledger.
pub const EVENT_PAYLOAD_TYPE: &str = "application/vnd.custos.event+json";

/// Largest serialised envelope [`Envelope::parse`] reads: 1 MiB. A manifest
/// or event is a few KiB; anything near this is not one of ours.
pub const MAX_ENVELOPE_BYTES: usize = 1 << 20;
/// Most signatures one envelope may carry. Custos signs with one key; a few
/// co-signers are plausible, hundreds are an attack on the verifier's time.
pub const MAX_SIGNATURES: usize = 16;
/// Longest `keyid` accepted, in bytes.
pub const MAX_KEYID_LEN: usize = 256;
/// Longest `payloadType` accepted, in bytes.
pub const MAX_PAYLOAD_TYPE_LEN: usize = 256;
/// Largest decoded signature accepted, in bytes (room for RSA-4096; Ed25519
/// signatures are 64).
pub const MAX_SIG_BYTES: usize = 512;

/// Decoders for input: either alphabet, padding optional; non-zero trailing
/// bits are still refused so that each byte string has one encoding per
/// alphabet.
const STANDARD_IN: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
const URL_SAFE_IN: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// What went wrong reading, signing or verifying an envelope.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DsseError {
    /// The bytes are not JSON of the envelope's shape (syntax, a missing or
    /// unknown field, a wrong type, a duplicate field).
    #[error("malformed DSSE envelope: {0}")]
    Json(#[from] serde_json::Error),
    /// The serialised envelope is larger than [`MAX_ENVELOPE_BYTES`].
    #[error("DSSE envelope is {len} bytes, more than the {max} accepted")]
    TooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The envelope carries no signature.
    #[error("DSSE envelope has no signatures")]
    NoSignatures,
    /// The envelope carries more than [`MAX_SIGNATURES`] signatures.
    #[error("DSSE envelope has {count} signatures, more than the {max} accepted")]
    TooManySignatures {
        /// How many it has.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A base64 field does not decode.
    #[error("DSSE envelope field {field} is not valid base64 (standard or URL-safe alphabet)")]
    BadBase64 {
        /// The field, e.g. `payload` or `signatures[1].sig`.
        field: String,
    },
    /// A field is empty or longer than its limit.
    #[error("DSSE envelope field {field} is {len} bytes; it must be 1 to {max}")]
    BadLength {
        /// The field.
        field: String,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A signature names a trusted key but does not verify under it: the
    /// payload, its type or the signature was altered.
    #[error("signature with keyid {keyid:?} does not verify: {source}")]
    BadSignature {
        /// The keyid the signature claims.
        keyid: String,
        /// Why verification failed.
        source: SignatureError,
    },
    /// A signature by a key that is not one of the signer's registered
    /// keys ([`Envelope::check_signers`]).
    #[error("signature by key {keyid:?}, which is not a registered key of the signer")]
    UntrustedSignature {
        /// Its keyid (empty when it had none).
        keyid: String,
    },
    /// No signature verified under any trusted key.
    #[error("no signature by a trusted key (envelope keyids: {keyids:?})")]
    NoTrustedSignature {
        /// The keyids the envelope's signatures claim.
        keyids: Vec<String>,
    },
    /// The payload type is not the one the caller expects.
    #[error("DSSE payloadType is {found:?}, expected {expected:?}")]
    WrongPayloadType {
        /// What the caller expects.
        expected: String,
        /// What the envelope says.
        found: String,
    },
}

/// The DSSE v1 pre-authentication encoding of `payload_type` and `payload`:
/// the exact bytes a signature covers.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let type_len = payload_type.len().to_string();
    let body_len = payload.len().to_string();
    let mut out = Vec::with_capacity(
        "DSSEv1".len() + 4 + type_len.len() + payload_type.len() + body_len.len() + payload.len(),
    );
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(type_len.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(body_len.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// A single-signature check for [`Envelope::verify_with`]: (trusted key,
/// PAE bytes, signature bytes) -> verified or why not.
pub type SignatureCheck<'a> =
    dyn FnMut(&VerifierKey, &[u8], &[u8]) -> Result<(), SignatureError> + 'a;

/// One signature of an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// The signer's key id (`name+hash` for Custos keys); a hint for choosing
    /// the key, not authenticated. Empty when the signer gave none (it is
    /// then omitted from the JSON).
    pub keyid: String,
    /// The raw signature bytes (64 for Ed25519).
    pub sig: Vec<u8>,
}

/// A DSSE envelope: payload bytes, their type, and signatures over both.
///
/// The fields are public so that tools can inspect (and tests can tamper
/// with) them; [`Envelope::verify`] checks whatever they hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The signed payload bytes (base64 in the JSON form).
    pub payload: Vec<u8>,
    /// How to interpret the payload (`payloadType` in the JSON form).
    pub payload_type: String,
    /// The signatures, in the order they were added.
    pub signatures: Vec<Signature>,
}

impl Envelope {
    /// Sign `payload` as `payload_type` with each of `signers`, in order.
    ///
    /// Fails with [`DsseError::NoSignatures`] when `signers` is empty and
    /// [`DsseError::TooManySignatures`] when it has more than
    /// [`MAX_SIGNATURES`] distinct keys: either envelope would be refused by
    /// [`Envelope::parse`].
    pub fn sign(
        payload_type: &str,
        payload: Vec<u8>,
        signers: &[&SigningKey],
    ) -> Result<Envelope, DsseError> {
        if signers.is_empty() {
            return Err(DsseError::NoSignatures);
        }
        let mut envelope = Envelope {
            payload,
            payload_type: payload_type.to_owned(),
            signatures: Vec::with_capacity(signers.len()),
        };
        for key in signers {
            envelope.add_signature(key)?;
        }
        Ok(envelope)
    }

    /// Add `key`'s signature over the current payload and type. If a
    /// signature with the same keyid is present it is replaced (Ed25519 is
    /// deterministic, so it holds the same bytes unless the payload changed).
    pub fn add_signature(&mut self, key: &SigningKey) -> Result<(), DsseError> {
        let keyid = key.verifier_key().key_id();
        let sig = key.sign(&self.pae()).to_vec();
        if let Some(existing) = self.signatures.iter_mut().find(|s| s.keyid == keyid) {
            existing.sig = sig;
            return Ok(());
        }
        if self.signatures.len() >= MAX_SIGNATURES {
            return Err(DsseError::TooManySignatures {
                count: self.signatures.len() + 1,
                max: MAX_SIGNATURES,
            });
        }
        self.signatures.push(Signature { keyid, sig });
        Ok(())
    }

    /// The bytes the signatures cover: [`pae`] of this envelope's type and payload.
    pub fn pae(&self) -> Vec<u8> {
        pae(&self.payload_type, &self.payload)
    }

    /// Verify the signatures against the `trusted` keys; returns the key ids
    /// (`name+hash`) of the trusted keys that signed, each once, in signature
    /// order.
    ///
    /// A signature whose keyid names a trusted key must verify under it
    /// (or, if several trusted keys share that id, under one of them),
    /// otherwise the whole envelope is refused with
    /// [`DsseError::BadSignature`]. A signature with an unknown keyid is
    /// ignored; one without a keyid is tried against every trusted key and
    /// ignored if none accepts it. At least one trusted signature must
    /// remain, otherwise [`DsseError::NoTrustedSignature`].
    ///
    /// This does not look at the payload type: see [`Envelope::verify_for`].
    pub fn verify(&self, trusted: &[VerifierKey]) -> Result<Vec<String>, DsseError> {
        self.verify_with(trusted, &mut |key, message, sig| key.verify(message, sig))
    }

    /// [`Envelope::verify`], with the single-signature check done by
    /// `check` (called with a trusted key, the PAE bytes and a signature,
    /// exactly where `verify` would call [`VerifierKey::verify`]). A caller
    /// that has already verified some signatures (in a batch) answers those
    /// from what it knows and verifies the rest with `VerifierKey::verify`,
    /// so that the envelope rules and the errors stay the ones of `verify`.
    pub fn verify_with(
        &self,
        trusted: &[VerifierKey],
        check: &mut SignatureCheck<'_>,
    ) -> Result<Vec<String>, DsseError> {
        if self.signatures.is_empty() {
            return Err(DsseError::NoSignatures);
        }
        let message = self.pae();
        let ids: Vec<String> = trusted.iter().map(VerifierKey::key_id).collect();
        let mut seen = BTreeSet::new();
        let mut accepted = Vec::new();
        for signature in &self.signatures {
            let verified_by = if signature.keyid.is_empty() {
                trusted
                    .iter()
                    .zip(&ids)
                    .find(|(key, _)| check(key, &message, &signature.sig).is_ok())
                    .map(|(_, id)| id)
            } else {
                let mut candidates = trusted
                    .iter()
                    .zip(&ids)
                    .filter(|(_, id)| **id == signature.keyid);
                let Some((first, first_id)) = candidates.next() else {
                    continue; // not a key the caller trusts
                };
                match check(first, &message, &signature.sig) {
                    Ok(()) => Some(first_id),
                    Err(source) => match candidates
                        .find(|(key, _)| check(key, &message, &signature.sig).is_ok())
                    {
                        Some((_, id)) => Some(id),
                        None => {
                            return Err(DsseError::BadSignature {
                                keyid: signature.keyid.clone(),
                                source,
                            })
                        }
                    },
                }
            };
            if let Some(id) = verified_by {
                if seen.insert(id.clone()) {
                    accepted.push(id.clone());
                }
            }
        }
        if accepted.is_empty() {
            return Err(DsseError::NoTrustedSignature {
                keyids: self.signatures.iter().map(|s| s.keyid.clone()).collect(),
            });
        }
        Ok(accepted)
    }

    /// The strict rule of a party that knows *all* of the signer's keys (the
    /// ledger, for a dock whose keys it registered): every signature must
    /// name one of `keys` by its keyid. Cheap (no signature is verified):
    /// follow it with [`Envelope::verify_with`] (or an `open` built on it),
    /// which verifies every signature naming a trusted key and refuses the
    /// envelope if one fails, so that together a good Ed25519 signature
    /// never carries a bad or foreign SM2 one. A keyid-less signature is
    /// refused here too (Custos always writes key ids).
    pub fn check_signers(&self, keys: &[VerifierKey]) -> Result<(), DsseError> {
        for signature in &self.signatures {
            if !keys.iter().any(|k| k.key_id() == signature.keyid) {
                return Err(DsseError::UntrustedSignature {
                    keyid: signature.keyid.clone(),
                });
            }
        }
        Ok(())
    }

    /// [`Envelope::check_signers`], then [`Envelope::verify_with`].
    pub fn verify_every_with(
        &self,
        keys: &[VerifierKey],
        check: &mut SignatureCheck<'_>,
    ) -> Result<Vec<String>, DsseError> {
        self.check_signers(keys)?;
        self.verify_with(keys, check)
    }

    /// Refuse the envelope unless its payload type is exactly `expected`.
    pub fn verify_payload_type(&self, expected: &str) -> Result<(), DsseError> {
        if self.payload_type == expected {
            Ok(())
        } else {
            Err(DsseError::WrongPayloadType {
                expected: expected.to_owned(),
                found: self.payload_type.clone(),
            })
        }
    }

    /// [`Envelope::verify`] then [`Envelope::verify_payload_type`], in the
    /// protocol's order; returns the key ids that signed.
    pub fn verify_for(
        &self,
        payload_type: &str,
        trusted: &[VerifierKey],
    ) -> Result<Vec<String>, DsseError> {
        self.verify_for_with(payload_type, trusted, &mut |key, message, sig| {
            key.verify(message, sig)
        })
    }

    /// [`Envelope::verify_for`] with the signature check of
    /// [`Envelope::verify_with`].
    pub fn verify_for_with(
        &self,
        payload_type: &str,
        trusted: &[VerifierKey],
        check: &mut SignatureCheck<'_>,
    ) -> Result<Vec<String>, DsseError> {
        let signers = self.verify_with(trusted, check)?;
        self.verify_payload_type(payload_type)?;
        Ok(signers)
    }

    /// Parse a JSON envelope strictly (see the module documentation).
    pub fn parse(bytes: &[u8]) -> Result<Envelope, DsseError> {
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(DsseError::TooLarge {
                len: bytes.len(),
                max: MAX_ENVELOPE_BYTES,
            });
        }
        let raw: RawEnvelope = serde_json::from_slice(bytes)?;
        raw.check()
    }

    /// The envelope as RFC 8785 canonical JSON (standard base64, padded).
    ///
    /// Written directly rather than through [`crate::canonical`]: every
    /// append to the ledger writes one, and an envelope is only strings,
    /// whose canonical form is `serde_json`'s escaping, in members whose
    /// canonical order is fixed (`payload`, `payloadType`, `signatures`;
    /// `keyid`, `sig`). A test holds it to the canonical writer's output.
    pub fn to_json(&self) -> Vec<u8> {
        fn string(out: &mut Vec<u8>, text: &str) {
            // INVARIANT: writing a string into a Vec cannot fail.
            serde_json::to_writer(&mut *out, text).expect("INVARIANT: a string writes");
        }
        let sigs: usize = self
            .signatures
            .iter()
            .map(|s| s.keyid.len() + s.sig.len() * 4 / 3 + 32)
            .sum();
        let mut out = Vec::with_capacity(
            self.payload.len().div_ceil(3) * 4 + self.payload_type.len() + sigs + 64,
        );
        out.extend_from_slice(b"{\"payload\":\"");
        let mut b64 = String::with_capacity(self.payload.len().div_ceil(3) * 4);
        STANDARD.encode_string(&self.payload, &mut b64);
        out.extend_from_slice(b64.as_bytes());
        out.extend_from_slice(b"\",\"payloadType\":");
        string(&mut out, &self.payload_type);
        out.extend_from_slice(b",\"signatures\":[");
        for (i, signature) in self.signatures.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'{');
            if !signature.keyid.is_empty() {
                out.extend_from_slice(b"\"keyid\":");
                string(&mut out, &signature.keyid);
                out.push(b',');
            }
            out.extend_from_slice(b"\"sig\":\"");
            b64.clear();
            STANDARD.encode_string(&signature.sig, &mut b64);
            out.extend_from_slice(b64.as_bytes());
            out.extend_from_slice(b"\"}");
        }
        out.extend_from_slice(b"]}");
        out
    }
}

/// Decode base64 in either alphabet, padding optional.
fn decode_b64(field: impl FnOnce() -> String, text: &str) -> Result<Vec<u8>, DsseError> {
    let engine = if text.contains(['-', '_']) {
        &URL_SAFE_IN
    } else {
        &STANDARD_IN
    };
    engine
        .decode(text)
        .map_err(|_| DsseError::BadBase64 { field: field() })
}

fn check_len(field: impl FnOnce() -> String, len: usize, max: usize) -> Result<(), DsseError> {
    if len == 0 || len > max {
        return Err(DsseError::BadLength {
            field: field(),
            len,
            max,
        });
    }
    Ok(())
}

/// The envelope exactly as it appears in JSON, before any checks.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnvelope {
    /// "Empty fields may be omitted" (envelope spec): an absent payload is empty.
    #[serde(default)]
    payload: String,
    #[serde(rename = "payloadType")]
    payload_type: String,
    signatures: Vec<RawSignature>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSignature {
    #[serde(default)]
    keyid: String,
    sig: String,
}

impl RawEnvelope {
    fn check(self) -> Result<Envelope, DsseError> {
        check_len(
            || "payloadType".into(),
            self.payload_type.len(),
            MAX_PAYLOAD_TYPE_LEN,
        )?;
        if self.signatures.is_empty() {
            return Err(DsseError::NoSignatures);
        }
        if self.signatures.len() > MAX_SIGNATURES {
            return Err(DsseError::TooManySignatures {
                count: self.signatures.len(),
                max: MAX_SIGNATURES,
            });
        }
        let payload = decode_b64(|| "payload".into(), &self.payload)?;
        let mut signatures = Vec::with_capacity(self.signatures.len());
        for (i, raw) in self.signatures.into_iter().enumerate() {
            if raw.keyid.len() > MAX_KEYID_LEN {
                return Err(DsseError::BadLength {
                    field: format!("signatures[{i}].keyid"),
                    len: raw.keyid.len(),
                    max: MAX_KEYID_LEN,
                });
            }
            let sig = decode_b64(|| format!("signatures[{i}].sig"), &raw.sig)?;
            check_len(|| format!("signatures[{i}].sig"), sig.len(), MAX_SIG_BYTES)?;
            signatures.push(Signature {
                keyid: raw.keyid,
                sig,
            });
        }
        Ok(Envelope {
            payload,
            payload_type: self.payload_type,
            signatures,
        })
    }
}

#[derive(Serialize)]
struct SignatureOut<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    keyid: &'a str,
    sig: String,
}

#[derive(Serialize)]
struct EnvelopeOut<'a> {
    payload: String,
    #[serde(rename = "payloadType")]
    payload_type: &'a str,
    signatures: Vec<SignatureOut<'a>>,
}

impl Serialize for Envelope {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        EnvelopeOut {
            payload: STANDARD.encode(&self.payload),
            payload_type: &self.payload_type,
            signatures: self
                .signatures
                .iter()
                .map(|s| SignatureOut {
                    keyid: &s.keyid,
                    sig: STANDARD.encode(&s.sig),
                })
                .collect(),
        }
        .serialize(serializer)
    }
}

/// Reading an envelope inside another document (a ledger entry) applies the
/// same checks as [`Envelope::parse`], except the overall size limit, which
/// belongs to the enclosing document.
impl<'de> Deserialize<'de> for Envelope {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        RawEnvelope::deserialize(deserializer)?
            .check()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, byte: u8) -> SigningKey {
        SigningKey::from_seed(name, &[byte; 32]).unwrap()
    }

    #[test]
    fn pae_known_answer_from_protocol() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ");
    }

    #[test]
    fn sign_verify_and_json_round_trip() {
        let k = key("dock-1", 1);
        let env = Envelope::sign(EVENT_PAYLOAD_TYPE, b"{}".to_vec(), &[&k]).unwrap();
        let json = env.to_json();
        let back = Envelope::parse(&json).unwrap();
        assert_eq!(back, env);
        assert_eq!(back.to_json(), json);
        let vk = k.verifier_key();
        assert_eq!(
            back.verify(std::slice::from_ref(&vk)).unwrap(),
            vec![vk.key_id()]
        );
        assert!(back.verify_for(MANIFEST_PAYLOAD_TYPE, &[vk]).is_err());
    }

    #[test]
    fn empty_signer_list_is_refused() {
        assert!(matches!(
            Envelope::sign(EVENT_PAYLOAD_TYPE, vec![], &[]),
            Err(DsseError::NoSignatures)
        ));
    }

    /// The direct writer of `to_json` writes what the canonical writer
    /// writes, for payload types and key ids that need escaping, with and
    /// without key ids, over payloads of every length modulo 3.
    #[test]
    fn to_json_is_the_canonical_form() {
        let odd = [
            "application/vnd.custos.event+json",
            "q\"uote\\back/slash",
            "ctl\u{1}\u{8}\u{c}\n\r\t\u{1f}\u{7f}",
            "\u{e9}\u{2028}\u{1f600}",
        ];
        for payload_type in odd {
            for len in 0..5 {
                let payload: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(97)).collect();
                let mut envelope =
                    Envelope::sign(payload_type, payload, &[&key("a", 1), &key("b", 2)]).unwrap();
                for (i, keyid) in ["", odd[len % odd.len()]].into_iter().enumerate() {
                    envelope.signatures[i].keyid = keyid.to_owned();
                }
                let canonical = crate::canonical::to_canonical_vec(&envelope).unwrap();
                assert_eq!(
                    String::from_utf8(envelope.to_json()).unwrap(),
                    String::from_utf8(canonical).unwrap()
                );
                assert!(crate::canonical::is_canonical(&envelope.to_json()));
            }
        }
    }
}
