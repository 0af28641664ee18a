//! Ed25519 keys: seed files and C2SP verifier keys.
//!
//! A *key file* holds exactly the 32-byte Ed25519 seed, mode 0600. Beside it,
//! `PATH.pub` holds the C2SP signed-note verifier key
//! `name+hash+base64(0x01 || pubkey)`, where `hash` is the first four bytes of
//! SHA-256(name || 0x0A || 0x01 || pubkey) as 8 hex digits. `name+hash` is the
//! key id used in DSSE signatures and the key hash in signed-note signature
//! lines.
//!
//! This is the one module of custos-core that touches the filesystem: the
//! refusal to load a seed others can read must be the same for every caller.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, Verifier as _};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

/// The signed-note algorithm byte for Ed25519 (C2SP signed-note).
pub const ED25519_ALG: u8 = 0x01;

/// Errors loading, saving or parsing keys.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Reading or writing a key file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The seed file is readable or writable by group or others.
    #[error("{path}: key file has mode {mode:04o}; it must be readable by its owner only (chmod 600 {path})")]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The seed file is not exactly 32 bytes.
    #[error("{path}: key file holds {len} bytes; an Ed25519 seed is exactly 32")]
    BadSeedLength {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: usize,
    },
    /// A verifier key string is malformed.
    #[error("malformed verifier key: {0}")]
    BadVerifierKey(String),
    /// A key name is not allowed (empty, or contains `+`, whitespace or a control character).
    #[error("invalid key name {0:?}: it must be non-empty and contain no '+', space or control characters")]
    BadName(String),
    /// A `.pub` file does not match the seed beside it.
    #[error("{path}: verifier key does not match the seed in the key file")]
    Mismatch {
        /// The `.pub` file.
        path: PathBuf,
    },
}

/// Why a signature did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// Not 64 bytes.
    #[error("signature is {0} bytes, an Ed25519 signature is 64")]
    BadLength(usize),
    /// The signature does not verify under the key.
    #[error("signature does not verify under key {0}")]
    Invalid(String),
}

fn check_name(name: &str) -> Result<(), KeyError> {
    if name.is_empty()
        || name
            .chars()
            .any(|c| c == '+' || c.is_whitespace() || c.is_control())
    {
        return Err(KeyError::BadName(name.to_owned()));
    }
    Ok(())
}

/// First four bytes of SHA-256(name || '\n' || 0x01 || pubkey): the C2SP key hash.
fn key_hash(name: &str, public: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ED25519_ALG]);
    h.update(public);
    let out = h.finalize();
    [out[0], out[1], out[2], out[3]]
}

/// An Ed25519 signing key with its name.
pub struct SigningKey {
    name: String,
    inner: ed25519_dalek::SigningKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the seed.
        f.debug_struct("SigningKey")
            .field("key_id", &self.verifier_key().key_id())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh key from the caller's random number generator.
    pub fn generate<R: rand_core::CryptoRngCore + ?Sized>(
        name: &str,
        rng: &mut R,
    ) -> Result<Self, KeyError> {
        check_name(name)?;
        Ok(SigningKey {
            name: name.to_owned(),
            inner: ed25519_dalek::SigningKey::generate(rng),
        })
    }

    /// A key from its 32-byte seed.
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self, KeyError> {
        check_name(name)?;
        Ok(SigningKey {
            name: name.to_owned(),
            inner: ed25519_dalek::SigningKey::from_bytes(seed),
        })
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The matching verifier key.
    pub fn verifier_key(&self) -> VerifierKey {
        let public = self.inner.verifying_key();
        VerifierKey {
            name: self.name.clone(),
            hash: key_hash(&self.name, public.as_bytes()),
            public,
        }
    }

    /// Sign `message`; returns the 64-byte signature.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.inner.sign(message).to_bytes()
    }

    /// Write the seed to `path` (created with mode 0600, never overwriting an
    /// existing file) and the verifier key to `path.pub`.
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        use std::io::Write as _;
        let io = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            opts.mode(0o600);
        }
        let mut f = opts.open(path).map_err(io)?;
        f.write_all(self.inner.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        let pub_path = pub_path(path);
        std::fs::write(&pub_path, format!("{}\n", self.verifier_key())).map_err(|source| {
            KeyError::Io {
                path: pub_path.clone(),
                source,
            }
        })?;
        Ok(())
    }

    /// Load the seed at `path`. The key's name comes from `path.pub` when it
    /// exists (and must match the seed), else from the file name without its
    /// extension. Refuses a file that group or others can read or write.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = meta.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                return Err(KeyError::TooOpen {
                    path: path.to_owned(),
                    mode,
                });
            }
        }
        let _ = meta;
        let bytes = Zeroizing::new(std::fs::read(path).map_err(io)?);
        let seed: &[u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::BadSeedLength {
                path: path.to_owned(),
                len: bytes.len(),
            })?;
        let pub_path = pub_path(path);
        match std::fs::read_to_string(&pub_path) {
            Ok(text) => {
                let vk: VerifierKey = text.trim().parse()?;
                let key = SigningKey::from_seed(&vk.name, seed)?;
                if key.verifier_key() != vk {
                    return Err(KeyError::Mismatch { path: pub_path });
                }
                Ok(key)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let name = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or("custos");
                SigningKey::from_seed(name, seed)
            }
            Err(source) => Err(KeyError::Io {
                path: pub_path,
                source,
            }),
        }
    }
}

/// `PATH.pub` for a key file at `PATH`.
pub fn pub_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".pub");
    PathBuf::from(s)
}

/// A C2SP verifier key: name, 4-byte key hash, Ed25519 public key.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    hash: [u8; 4],
    public: ed25519_dalek::VerifyingKey,
}

impl fmt::Debug for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifierKey({self})")
    }
}

impl VerifierKey {
    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 4-byte key hash (the signed-note key id).
    pub fn key_hash(&self) -> [u8; 4] {
        self.hash
    }

    /// `name+hash`: the DSSE `keyid` and the first two fields of the `.pub` file.
    pub fn key_id(&self) -> String {
        format!("{}+{}", self.name, hex::encode(self.hash))
    }

    /// The raw 32-byte public key.
    pub fn public_key(&self) -> &[u8; 32] {
        self.public.as_bytes()
    }

    /// Build a verifier key from a name and a raw public key.
    pub fn from_public(name: &str, public: &[u8; 32]) -> Result<Self, KeyError> {
        check_name(name)?;
        let public = ed25519_dalek::VerifyingKey::from_bytes(public).map_err(|_| {
            KeyError::BadVerifierKey("public key is not a valid Ed25519 point".into())
        })?;
        Ok(VerifierKey {
            name: name.to_owned(),
            hash: key_hash(name, public.as_bytes()),
            public,
        })
    }

    /// Verify a 64-byte Ed25519 signature over `message`: `s` must be
    /// canonical (below the group order) and `[s]B - [k]A`, with `k` =
    /// SHA-512(R || A || message), must encode to exactly the signature's
    /// `R` bytes (RFC 8032's cofactorless check, as OpenSSL and Go make it).
    ///
    /// This once tried ed25519-dalek's `verify_strict` first and fell back
    /// to `verify`. Both compare the same recomputed `R` encoding with the
    /// signature's bytes, and `verify_strict` only adds refusals (small-order
    /// `R` or key), so the pair accepted exactly what `verify` accepts, at
    /// the cost of an extra point decompression and two small-order checks
    /// per signature (a fifth of the ledger's verification time).
    /// `accepts_exactly_what_strict_or_plain_accepted` holds the two to the
    /// same answers.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        let sig: &[u8; 64] = signature
            .try_into()
            .map_err(|_| SignatureError::BadLength(signature.len()))?;
        let sig = ed25519_dalek::Signature::from_bytes(sig);
        self.public
            .verify(message, &sig)
            .map_err(|_| SignatureError::Invalid(self.key_id()))
    }
}

impl VerifierKey {
    /// Whether the key lies in Ed25519's prime-order subgroup (no
    /// small-order component; every key made by [`SigningKey`] does). Only
    /// such keys are verified in batches ([`verify_batch`]). Costs one
    /// scalar multiplication: callers keep the answer per key.
    pub fn is_torsion_free(&self) -> bool {
        self.public.to_edwards().is_torsion_free()
    }
}

/// Verify several `(key, message, signature)` triples at once, with one
/// multi-scalar multiplication: about half the work of verifying them one
/// by one once there are eight or more.
///
/// The equation is RFC 8032's, summed with random weights: with `z_i`
/// random 128-bit scalars (fresh from `rng` for every batch: it must be a
/// cryptographic generator the signers cannot predict, the operating
/// system's in the ledger) and `k_i` = SHA-512(R_i || A_i || M_i), it checks
/// `Σ z_i R_i + Σ_A (Σ_{i: A_i = A} z_i k_i) A - (Σ z_i s_i) B = 0`.
/// Signatures under the same key share one term for that key, so a batch
/// from one dock costs one point per signature (its `R`) plus one, where
/// ed25519-dalek's `verify_batch` takes two.
///
/// `true` means all of them verify; `false` that at least one does not (or
/// is not 64 bytes, or has a non-canonical `s` or an `R` that is not a
/// point), without saying which: verify them one by one with
/// [`VerifierKey::verify`] to find it and to get its error.
///
/// One difference from [`VerifierKey::verify`], which matters only to the
/// holder of a private key: the weighted sum can vanish for a signature
/// whose `R` its signer deliberately built with a small-order component
/// (about one chance in two per try for an order-2 component), while the
/// single-signature check refuses it. Nobody without the private key can
/// make one (it would be a forgery under the single check too), and an
/// honest signer never does. Keys with a small-order component must not be
/// batched ([`VerifierKey::is_torsion_free`]).
pub fn verify_batch<R: rand_core::CryptoRngCore + ?Sized>(
    items: &[(&VerifierKey, &[u8], &[u8])],
    rng: &mut R,
) -> bool {
    use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
    use curve25519_dalek::scalar::Scalar;
    use curve25519_dalek::traits::{IsIdentity as _, VartimeMultiscalarMul as _};
    use sha2::Sha512;

    let mut weights = vec![0u8; 16 * items.len()];
    if rng.try_fill_bytes(&mut weights).is_err() {
        return false;
    }
    let mut b_coefficient = Scalar::ZERO;
    let mut scalars = Vec::with_capacity(items.len() + 2);
    let mut points = Vec::with_capacity(items.len() + 2);
    // (public key bytes, index of its term in scalars/points)
    let mut keys: Vec<([u8; 32], usize)> = Vec::new();
    scalars.push(Scalar::ZERO); // B's, filled in at the end
    points.push(curve25519_dalek::constants::ED25519_BASEPOINT_POINT);
    for ((key, message, signature), z) in items.iter().zip(weights.chunks_exact(16)) {
        let Ok(sig) = <&[u8; 64]>::try_from(*signature) else {
            return false;
        };
        let mut r_bytes = [0u8; 32];
        r_bytes.copy_from_slice(&sig[..32]);
        let mut s_bytes = [0u8; 32];
        s_bytes.copy_from_slice(&sig[32..]);
        let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes)) else {
            return false;
        };
        let Some(r) = CompressedEdwardsY(r_bytes).decompress() else {
            return false;
        };
        let public = key.public.as_bytes();
        let mut h = Sha512::new();
        h.update(r_bytes);
        h.update(public);
        h.update(message);
        let mut wide = [0u8; 64];
        wide.copy_from_slice(&h.finalize());
        let k = Scalar::from_bytes_mod_order_wide(&wide);
        let mut z_bytes = [0u8; 16];
        z_bytes.copy_from_slice(z);
        let z = Scalar::from(u128::from_le_bytes(z_bytes));
        b_coefficient -= z * s;
        scalars.push(z);
        points.push(r);
        match keys.iter().find(|(p, _)| p == public) {
            Some(&(_, at)) => scalars[at] += z * k,
            None => {
                keys.push((*public, scalars.len()));
                scalars.push(z * k);
                points.push(key.public.to_edwards());
            }
        }
    }
    scalars[0] = b_coefficient;
    EdwardsPoint::vartime_multiscalar_mul(&scalars, &points).is_identity()
}

impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut data = [0u8; 33];
        data[0] = ED25519_ALG;
        data[1..].copy_from_slice(self.public.as_bytes());
        write!(
            f,
            "{}+{}+{}",
            self.name,
            hex::encode(self.hash),
            B64.encode(data)
        )
    }
}

impl FromStr for VerifierKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| KeyError::BadVerifierKey(why.to_owned());
        let mut parts = s.splitn(3, '+');
        let (Some(name), Some(hash), Some(data)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("expected three '+'-separated fields: name+hash+key"));
        };
        check_name(name)?;
        if hash.len() != 8
            || !hash
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(bad("key hash must be 8 lower-case hex digits"));
        }
        let data = B64
            .decode(data)
            .map_err(|_| bad("key data is not valid base64"))?;
        if data.len() != 33 {
            return Err(bad(
                "key data must be 33 bytes (algorithm byte and 32-byte key)",
            ));
        }
        if data[0] != ED25519_ALG {
            return Err(bad("key algorithm is not Ed25519 (0x01)"));
        }
        let mut public = [0u8; 32];
        public.copy_from_slice(&data[1..]);
        let vk = VerifierKey::from_public(name, &public)?;
        let mut want = [0u8; 4];
        // INVARIANT: hash is 8 hex digits (checked above).
        hex::decode_to_slice(hash, &mut want).map_err(|_| bad("key hash must be 8 hex digits"))?;
        if want != vk.hash {
            return Err(bad("key hash does not match the name and key"));
        }
        Ok(vk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifier_key_round_trip_and_sign() {
        let k = SigningKey::from_seed("dock-01", &[7u8; 32]).unwrap();
        let vk = k.verifier_key();
        let text = vk.to_string();
        assert!(text.starts_with("dock-01+"));
        let back: VerifierKey = text.parse().unwrap();
        assert_eq!(back, vk);
        let sig = k.sign(b"hello");
        vk.verify(b"hello", &sig).unwrap();
        assert!(vk.verify(b"hellp", &sig).is_err());
        assert!(vk.verify(b"hello", &sig[..63]).is_err());
    }

    #[test]
    fn accepts_exactly_what_strict_or_plain_accepted() {
        // The former rule: verify_strict, else verify. Valid signatures,
        // every single-bit flip of R and s, and flips of the message.
        let k = SigningKey::from_seed("dock-01", &[9u8; 32]).unwrap();
        let vk = k.verifier_key();
        let former = |msg: &[u8], sig: &[u8; 64]| {
            let sig = ed25519_dalek::Signature::from_bytes(sig);
            vk.public.verify_strict(msg, &sig).is_ok() || vk.public.verify(msg, &sig).is_ok()
        };
        let mut accepted = 0;
        for m in 0..4u8 {
            let msg = vec![m; 40 + usize::from(m)];
            let good = k.sign(&msg);
            for bit in 0..=512 {
                let mut sig = good;
                if bit < 512 {
                    sig[bit / 8] ^= 1 << (bit % 8);
                }
                for msg in [msg.clone(), [msg.as_slice(), b"x"].concat()] {
                    let now = vk.verify(&msg, &sig).is_ok();
                    assert_eq!(now, former(&msg, &sig), "message {m}, bit {bit}");
                    accepted += usize::from(now);
                }
            }
        }
        // Only the unflipped signatures over their own messages verify.
        assert_eq!(accepted, 4);
    }

    #[test]
    fn batch_verification_fails_when_one_signature_is_bad() {
        let k = SigningKey::from_seed("dock-01", &[5u8; 32]).unwrap();
        let vk = k.verifier_key();
        assert!(vk.is_torsion_free());
        let messages: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i; 100]).collect();
        let sigs: Vec<[u8; 64]> = messages.iter().map(|m| k.sign(m)).collect();
        let items = |sigs: &[[u8; 64]]| -> Vec<(Vec<u8>, Vec<u8>)> {
            messages
                .iter()
                .zip(sigs)
                .map(|(m, s)| (m.clone(), s.to_vec()))
                .collect()
        };
        let run = |items: &[(Vec<u8>, Vec<u8>)]| {
            let refs: Vec<(&VerifierKey, &[u8], &[u8])> = items
                .iter()
                .map(|(m, s)| (&vk, m.as_slice(), s.as_slice()))
                .collect();
            verify_batch(&refs, &mut rand_core::OsRng)
        };
        assert!(run(&items(&sigs)));
        for bit in [3, 255, 300, 511] {
            let mut bad = sigs.clone();
            bad[5][bit / 8] ^= 1 << (bit % 8);
            assert!(!run(&items(&bad)), "bit {bit}");
        }
        let mut short = items(&sigs);
        short[2].1.pop();
        assert!(!run(&short));
        let mut swapped = items(&sigs);
        swapped[0].0 = messages[1].clone();
        assert!(!run(&swapped));
    }

    #[test]
    fn batch_verification_with_several_keys() {
        // Each key gets one term however many of its signatures the batch
        // holds; a signature paired with the wrong key fails the batch.
        let keys: Vec<SigningKey> = (1..=3u8)
            .map(|i| SigningKey::from_seed(&format!("dock-{i}"), &[i; 32]).unwrap())
            .collect();
        let vks: Vec<VerifierKey> = keys.iter().map(SigningKey::verifier_key).collect();
        let messages: Vec<Vec<u8>> = (0..12u8).map(|i| vec![i; 10 + usize::from(i)]).collect();
        let who = |i: usize| (i * 7) % 3;
        let sigs: Vec<[u8; 64]> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| keys[who(i)].sign(m))
            .collect();
        let check = |pair: &dyn Fn(usize) -> usize| {
            let items: Vec<(&VerifierKey, &[u8], &[u8])> = messages
                .iter()
                .zip(&sigs)
                .enumerate()
                .map(|(i, (m, s))| (&vks[pair(i)], m.as_slice(), s.as_slice()))
                .collect();
            verify_batch(&items, &mut rand_core::OsRng)
        };
        assert!(check(&who));
        assert!(!check(&|i| if i == 4 { (who(i) + 1) % 3 } else { who(i) }));
        assert!(verify_batch(&[], &mut rand_core::OsRng));
    }

    #[test]
    fn known_c2sp_key_hash() {
        // The signed-note example key from the Go sumdb note package
        // ("PeterNeumann"), whose verifier key string is published.
        let text = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
        let vk: VerifierKey = text.parse().unwrap();
        assert_eq!(vk.to_string(), text);
        assert_eq!(vk.key_id(), "PeterNeumann+c74f20a3");
    }

    #[test]
    fn malformed_verifier_keys() {
        for bad in [
            "",
            "name",
            "name+0011",
            "na me+00112233+AQ==",
            "name+0011223g+AA",
            "name+00112233+!!!",
            "name+00112233+AQ==",
            "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        ] {
            assert!(bad.parse::<VerifierKey>().is_err(), "{bad:?} accepted");
        }
        // Right shape, wrong hash.
        let good = SigningKey::from_seed("a", &[1; 32])
            .unwrap()
            .verifier_key()
            .to_string();
        let mut fields: Vec<&str> = good.split('+').collect();
        fields[1] = "00000000";
        assert!(fields.join("+").parse::<VerifierKey>().is_err());
    }

    #[test]
    fn save_load_and_refuse_open_file() {
        let dir = std::env::temp_dir().join(format!("custos-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ledger.key");
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(pub_path(&path));
        let k = SigningKey::from_seed("ledger", &[9; 32]).unwrap();
        k.save(&path).unwrap();
        let back = SigningKey::load(&path).unwrap();
        assert_eq!(back.verifier_key(), k.verifier_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let err = SigningKey::load(&path).unwrap_err();
            assert!(err.to_string().contains("chmod 600"), "{err}");
        }
        // save never overwrites
        assert!(k.save(&path).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
