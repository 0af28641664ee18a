//! Signing keys of the two suites: Ed25519 and SM2 (国密 SM2DSA with SM3).
//!
//! **Ed25519.** A *key file* holds exactly the 32-byte seed, mode 0600.
//! Beside it, `PATH.pub` holds the C2SP signed-note verifier key
//! `name+hash+base64(0x01 || pubkey)`, where `hash` is the first four bytes
//! of SHA-256(name || 0x0A || 0x01 || pubkey) as 8 hex digits.
//!
//! **SM2.** The key file is the private key as PKCS#8 PEM (`-----BEGIN
//! PRIVATE KEY-----`, the form `openssl genpkey -algorithm SM2` writes and
//! OpenSSL 3 reads), mode 0600. `PATH.pub` holds the verifier key line
//! `name+hash+base64(0xff || point)` (the 65-byte uncompressed SEC1 point)
//! followed by the public key as PEM SubjectPublicKeyInfo: OpenSSL skips the
//! line before `-----BEGIN`, so the same file serves `openssl pkeyutl
//! -pubin -inkey PATH.pub`. Signed-note type 0xff is the spec's type for
//! signatures it does not define; the key hash is the first four bytes of
//! SHA-256(name || 0x0A || 0xff || "sm2dsa-sm3" || point), so the
//! identifier [`SM2_NOTE_IDENTIFIER`] names the algorithm. SM2 signatures
//! are SM2DSA with SM3 and the distinguishing identifier [`SM2_DISTID`]
//! (GB/T 35276's default), DER-encoded `SEQUENCE { r, s }` as OpenSSL
//! writes and reads them, over the same bytes an Ed25519 signature covers.
//!
//! `name+hash` is the key id of either suite: the DSSE `keyid` and the key
//! hash of signed-note signature lines.
//!
//! This is the one module of custos-core that touches the filesystem: the
//! refusal to load a private key others can read must be the same for every
//! caller.

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

/// The signed-note algorithm byte for types the spec does not define, used
/// for SM2 with [`SM2_NOTE_IDENTIFIER`] in the key hash.
pub const SM2_ALG: u8 = 0xff;

/// The identifier of SM2DSA-with-SM3 in an SM2 key's signed-note key hash.
pub const SM2_NOTE_IDENTIFIER: &str = "sm2dsa-sm3";

/// The SM2 distinguishing identifier (user ID) Custos signs and verifies
/// with: the default of GB/T 35276 and of OpenSSL's `distid` examples.
pub const SM2_DISTID: &str = "1234567812345678";

/// A signature suite.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    /// Ed25519 (RFC 8032).
    Ed25519,
    /// SM2DSA over SM3 (GB/T 32918.2), distinguishing identifier [`SM2_DISTID`].
    Sm2,
}

impl Algorithm {
    /// Every suite, in the order Custos signs with them.
    pub const ALL: [Algorithm; 2] = [Algorithm::Ed25519, Algorithm::Sm2];

    /// The name used in configuration and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Ed25519 => "ed25519",
            Algorithm::Sm2 => "sm2",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ed25519" => Ok(Algorithm::Ed25519),
            "sm2" => Ok(Algorithm::Sm2),
            other => Err(KeyError::UnknownAlgorithm(other.to_owned())),
        }
    }
}

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
    /// The key file is readable or writable by group or others.
    #[error("{path}: key file has mode {mode:04o}; it must be readable by its owner only (chmod 600 {path})")]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key file is neither a 32-byte Ed25519 seed nor an SM2 PKCS#8 PEM key.
    #[error("{path}: key file holds {len} bytes; an Ed25519 seed is exactly 32 (an SM2 key is a PKCS#8 PEM file)")]
    BadSeedLength {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: usize,
    },
    /// A PEM private key that is not an SM2 PKCS#8 key.
    #[error("{path}: not an SM2 private key in PKCS#8 PEM: {why}")]
    BadPrivateKey {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A verifier key string is malformed.
    #[error("malformed verifier key: {0}")]
    BadVerifierKey(String),
    /// A key name is not allowed (empty, or contains `+`, whitespace or a control character).
    #[error("invalid key name {0:?}: it must be non-empty and contain no '+', space or control characters")]
    BadName(String),
    /// A `.pub` file does not match the private key beside it.
    #[error("{path}: verifier key does not match the private key in the key file")]
    Mismatch {
        /// The `.pub` file.
        path: PathBuf,
    },
    /// A suite name Custos does not know.
    #[error("unknown signature suite {0:?}: expected ed25519 or sm2")]
    UnknownAlgorithm(String),
}

/// Why a signature did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// Not 64 bytes.
    #[error("signature is {0} bytes, an Ed25519 signature is 64")]
    BadLength(usize),
    /// An SM2 signature that is not a strict DER `SEQUENCE { r, s }`.
    #[error("SM2 signature is not a DER SEQUENCE of two integers in [1, n-1]")]
    BadEncoding,
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

/// First four bytes of SHA-256(name || '\n' || 0xff || "sm2dsa-sm3" || point).
fn sm2_key_hash(name: &str, point: &[u8]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', SM2_ALG]);
    h.update(SM2_NOTE_IDENTIFIER.as_bytes());
    h.update(point);
    let out = h.finalize();
    [out[0], out[1], out[2], out[3]]
}

/// The 65-byte uncompressed SEC1 encoding of an SM2 public key.
fn sm2_point(key: &sm2::dsa::VerifyingKey) -> Vec<u8> {
    key.to_sec1_bytes().into_vec()
}

/// DER `SEQUENCE { INTEGER r, INTEGER s }` of two 32-byte big-endian scalars.
fn der_signature(r: &[u8], s: &[u8]) -> Vec<u8> {
    fn integer(out: &mut Vec<u8>, bytes: &[u8]) {
        let start = bytes
            .iter()
            .position(|&b| b != 0)
            .unwrap_or(bytes.len() - 1);
        let body = &bytes[start..];
        let pad = body[0] & 0x80 != 0;
        out.push(0x02);
        out.push((body.len() + usize::from(pad)) as u8);
        if pad {
            out.push(0);
        }
        out.extend_from_slice(body);
    }
    let mut inner = Vec::with_capacity(72);
    integer(&mut inner, r);
    integer(&mut inner, s);
    let mut out = Vec::with_capacity(inner.len() + 2);
    out.push(0x30);
    out.push(inner.len() as u8);
    out.extend_from_slice(&inner);
    out
}

/// Read a strict DER `SEQUENCE { INTEGER r, INTEGER s }` with positive
/// integers of at most 32 bytes in minimal form; nothing may follow.
fn parse_der_signature(der: &[u8]) -> Option<([u8; 32], [u8; 32])> {
    fn integer(input: &[u8]) -> Option<([u8; 32], &[u8])> {
        let (&tag, rest) = input.split_first()?;
        let (&len, rest) = rest.split_first()?;
        let len = usize::from(len);
        if tag != 0x02 || len == 0 || len > 33 || rest.len() < len {
            return None;
        }
        let (body, rest) = rest.split_at(len);
        // Positive, minimal: no leading 0x00 unless the next byte has its top bit set.
        if body[0] & 0x80 != 0 || (body[0] == 0 && (len == 1 || body[1] & 0x80 == 0)) {
            return None;
        }
        let body = if body[0] == 0 { &body[1..] } else { body };
        if body.len() > 32 {
            return None;
        }
        let mut out = [0u8; 32];
        out[32 - body.len()..].copy_from_slice(body);
        Some((out, rest))
    }
    let (&tag, rest) = der.split_first()?;
    let (&len, rest) = rest.split_first()?;
    if tag != 0x30 || len & 0x80 != 0 || usize::from(len) != rest.len() {
        return None;
    }
    let (r, rest) = integer(rest)?;
    let (s, rest) = integer(rest)?;
    rest.is_empty().then_some((r, s))
}

enum Secret {
    Ed25519(Box<ed25519_dalek::SigningKey>),
    Sm2(Box<sm2::dsa::SigningKey>),
}

/// A signing key of either suite, with its name.
pub struct SigningKey {
    name: String,
    inner: Secret,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the private key.
        f.debug_struct("SigningKey")
            .field("key_id", &self.verifier_key().key_id())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh Ed25519 key from the caller's random number generator.
    pub fn generate<R: rand_core::CryptoRngCore + ?Sized>(
        name: &str,
        rng: &mut R,
    ) -> Result<Self, KeyError> {
        check_name(name)?;
        Ok(SigningKey {
            name: name.to_owned(),
            inner: Secret::Ed25519(Box::new(ed25519_dalek::SigningKey::generate(rng))),
        })
    }

    /// A fresh key of suite `algorithm`.
    pub fn generate_for<R: rand_core::CryptoRngCore>(
        algorithm: Algorithm,
        name: &str,
        rng: &mut R,
    ) -> Result<Self, KeyError> {
        match algorithm {
            Algorithm::Ed25519 => Self::generate(name, rng),
            Algorithm::Sm2 => {
                check_name(name)?;
                let secret = sm2::SecretKey::random(rng);
                Self::sm2_from_secret(name, &secret)
            }
        }
    }

    /// An Ed25519 key from its 32-byte seed.
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self, KeyError> {
        check_name(name)?;
        Ok(SigningKey {
            name: name.to_owned(),
            inner: Secret::Ed25519(Box::new(ed25519_dalek::SigningKey::from_bytes(seed))),
        })
    }

    /// An SM2 key from its 32-byte private scalar (big-endian, in [1, n-2]).
    pub fn sm2_from_bytes(name: &str, scalar: &[u8; 32]) -> Result<Self, KeyError> {
        check_name(name)?;
        let secret = sm2::SecretKey::from_slice(scalar)
            .map_err(|_| KeyError::BadVerifierKey("not a valid SM2 private scalar".into()))?;
        Self::sm2_from_secret(name, &secret)
    }

    fn sm2_from_secret(name: &str, secret: &sm2::SecretKey) -> Result<Self, KeyError> {
        let key = sm2::dsa::SigningKey::new(SM2_DISTID, secret)
            .map_err(|_| KeyError::BadVerifierKey("not a valid SM2 private key".into()))?;
        Ok(SigningKey {
            name: name.to_owned(),
            inner: Secret::Sm2(Box::new(key)),
        })
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key's suite.
    pub fn algorithm(&self) -> Algorithm {
        match self.inner {
            Secret::Ed25519(_) => Algorithm::Ed25519,
            Secret::Sm2(_) => Algorithm::Sm2,
        }
    }

    /// The matching verifier key.
    pub fn verifier_key(&self) -> VerifierKey {
        match &self.inner {
            Secret::Ed25519(k) => {
                let public = k.verifying_key();
                VerifierKey {
                    name: self.name.clone(),
                    hash: key_hash(&self.name, public.as_bytes()),
                    public: Public::Ed25519(public),
                }
            }
            Secret::Sm2(k) => {
                let public = k.verifying_key().clone();
                let point = sm2_point(&public);
                VerifierKey {
                    name: self.name.clone(),
                    hash: sm2_key_hash(&self.name, &point),
                    public: Public::Sm2(Box::new(public), point),
                }
            }
        }
    }

    /// Sign `message`: 64 bytes for Ed25519, a DER `SEQUENCE { r, s }`
    /// (70 to 72 bytes) for SM2.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match &self.inner {
            Secret::Ed25519(k) => k.sign(message).to_bytes().to_vec(),
            Secret::Sm2(k) => {
                use sm2::dsa::signature::Signer as _;
                let sig: sm2::dsa::Signature = k.sign(message);
                der_signature(&sig.r_bytes(), &sig.s_bytes())
            }
        }
    }

    /// The bytes of the key file: the Ed25519 seed, or the SM2 PKCS#8 PEM.
    fn file_bytes(&self) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        match &self.inner {
            Secret::Ed25519(k) => Ok(Zeroizing::new(k.as_bytes().to_vec())),
            Secret::Sm2(k) => {
                use sm2::pkcs8::EncodePrivateKey as _;
                let secret = sm2::SecretKey::from(k.as_nonzero_scalar());
                let pem = secret
                    .to_pkcs8_pem(sm2::pkcs8::LineEnding::LF)
                    .map_err(|e| KeyError::BadVerifierKey(format!("SM2 PKCS#8: {e}")))?;
                Ok(Zeroizing::new(pem.as_bytes().to_vec()))
            }
        }
    }

    /// What `PATH.pub` holds: the verifier key line, and for SM2 the PEM
    /// SubjectPublicKeyInfo after it.
    pub fn public_file_text(&self) -> String {
        self.verifier_key().public_file_text()
    }

    /// Write the private key to `path` (created with mode 0600, never
    /// overwriting an existing file) and the public key to `path.pub`.
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        use std::io::Write as _;
        let io = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        let bytes = self.file_bytes()?;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            opts.mode(0o600);
        }
        let mut f = opts.open(path).map_err(io)?;
        f.write_all(&bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
        let pub_path = pub_path(path);
        std::fs::write(&pub_path, self.public_file_text()).map_err(|source| KeyError::Io {
            path: pub_path.clone(),
            source,
        })?;
        Ok(())
    }

    /// Load the private key at `path`: a 32-byte Ed25519 seed or an SM2
    /// PKCS#8 PEM key. The key's name comes from `path.pub` when it exists
    /// (and must match the key), else from the file name without its
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
        let make: KeyMaker = if bytes.starts_with(b"-----BEGIN") {
            use sm2::pkcs8::DecodePrivateKey as _;
            let text = std::str::from_utf8(&bytes).map_err(|_| KeyError::BadPrivateKey {
                path: path.to_owned(),
                why: "not UTF-8".into(),
            })?;
            let secret =
                sm2::SecretKey::from_pkcs8_pem(text).map_err(|e| KeyError::BadPrivateKey {
                    path: path.to_owned(),
                    why: e.to_string(),
                })?;
            Box::new(move |name| SigningKey::sm2_from_secret(name, &secret))
        } else {
            let seed: [u8; 32] =
                bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| KeyError::BadSeedLength {
                        path: path.to_owned(),
                        len: bytes.len(),
                    })?;
            let seed = Zeroizing::new(seed);
            Box::new(move |name| SigningKey::from_seed(name, &seed))
        };
        let pub_path = pub_path(path);
        match std::fs::read_to_string(&pub_path) {
            Ok(text) => {
                let vk = VerifierKey::from_public_file_text(&text, None)?;
                let key = make(vk.name())?;
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
                make(name)
            }
            Err(source) => Err(KeyError::Io {
                path: pub_path,
                source,
            }),
        }
    }
}

/// The keys a party signs with, one per configured suite (`[crypto]
/// signatures`), and for a ledger whose key is being rotated its old keys
/// too: every DSSE envelope and checkpoint gets a signature by each, in
/// this order. Never empty; never the same key twice.
#[derive(Debug)]
pub struct KeySet {
    keys: Vec<SigningKey>,
}

impl KeySet {
    /// A set of `keys`: at least one, and no key twice (two keys with the
    /// same key id would sign twice under one name). Several keys of one
    /// suite are a rotation: the first of a suite is its current key.
    pub fn new(keys: Vec<SigningKey>) -> Result<Self, KeyError> {
        if keys.is_empty() {
            return Err(KeyError::BadVerifierKey(
                "a key set needs at least one key".into(),
            ));
        }
        let ids: Vec<String> = keys.iter().map(|k| k.verifier_key().key_id()).collect();
        for (i, id) in ids.iter().enumerate() {
            if ids[..i].contains(id) {
                return Err(KeyError::BadVerifierKey(format!(
                    "the key {id} is in the key set twice"
                )));
            }
        }
        Ok(KeySet { keys })
    }

    /// Load one key per suite from its file ([`SigningKey::load`]),
    /// refusing a file that holds a key of another suite than the one it is
    /// configured for. Errors name the file.
    pub fn load(files: &[(Algorithm, &Path)]) -> Result<Self, KeyError> {
        let mut keys = Vec::with_capacity(files.len());
        for &(algorithm, path) in files {
            let key = SigningKey::load(path)?;
            if key.algorithm() != algorithm {
                return Err(KeyError::BadPrivateKey {
                    path: path.to_owned(),
                    why: format!(
                        "it holds an {} key where an {algorithm} key is configured",
                        key.algorithm()
                    ),
                });
            }
            keys.push(key);
        }
        KeySet::new(keys)
    }

    /// The keys, in signing order.
    pub fn keys(&self) -> &[SigningKey] {
        &self.keys
    }

    /// The first key (the one configured first: Ed25519 unless the set is SM2 only).
    pub fn primary(&self) -> &SigningKey {
        &self.keys[0]
    }

    /// The (current) key of suite `algorithm`, if the set has one.
    pub fn get(&self, algorithm: Algorithm) -> Option<&SigningKey> {
        self.keys.iter().find(|k| k.algorithm() == algorithm)
    }

    /// The verifier keys, in signing order.
    pub fn verifier_keys(&self) -> Vec<VerifierKey> {
        self.keys.iter().map(SigningKey::verifier_key).collect()
    }
}

impl From<SigningKey> for KeySet {
    fn from(key: SigningKey) -> Self {
        KeySet { keys: vec![key] }
    }
}

/// What a signature is made with: one key or a [`KeySet`] (each of its keys).
pub trait Signers {
    /// The keys to sign with, in order; never empty.
    fn signing_keys(&self) -> Vec<&SigningKey>;
}

impl Signers for SigningKey {
    fn signing_keys(&self) -> Vec<&SigningKey> {
        vec![self]
    }
}

impl Signers for KeySet {
    fn signing_keys(&self) -> Vec<&SigningKey> {
        self.keys.iter().collect()
    }
}

impl<T: Signers + ?Sized> Signers for std::sync::Arc<T> {
    fn signing_keys(&self) -> Vec<&SigningKey> {
        (**self).signing_keys()
    }
}

/// Makes the loaded key once its name is known.
type KeyMaker = Box<dyn Fn(&str) -> Result<SigningKey, KeyError>>;

/// `PATH.pub` for a key file at `PATH`.
pub fn pub_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".pub");
    PathBuf::from(s)
}

#[derive(Clone)]
enum Public {
    Ed25519(ed25519_dalek::VerifyingKey),
    /// The key and its 65-byte uncompressed SEC1 point.
    Sm2(Box<sm2::dsa::VerifyingKey>, Vec<u8>),
}

/// A verifier key: name, 4-byte key hash and public key, of either suite.
#[derive(Clone)]
pub struct VerifierKey {
    name: String,
    hash: [u8; 4],
    public: Public,
}

impl PartialEq for VerifierKey {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.hash == other.hash
            && self.algorithm() == other.algorithm()
            && self.public_key() == other.public_key()
    }
}

impl Eq for VerifierKey {}

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

    /// The key's suite.
    pub fn algorithm(&self) -> Algorithm {
        match self.public {
            Public::Ed25519(_) => Algorithm::Ed25519,
            Public::Sm2(..) => Algorithm::Sm2,
        }
    }

    /// The 4-byte key hash (the signed-note key id).
    pub fn key_hash(&self) -> [u8; 4] {
        self.hash
    }

    /// `name+hash`: the DSSE `keyid` and the first two fields of the `.pub` file.
    pub fn key_id(&self) -> String {
        format!("{}+{}", self.name, hex::encode(self.hash))
    }

    /// The raw public key: 32 bytes for Ed25519, the 65-byte uncompressed
    /// point for SM2.
    pub fn public_key(&self) -> &[u8] {
        match &self.public {
            Public::Ed25519(k) => k.as_bytes(),
            Public::Sm2(_, point) => point,
        }
    }

    /// The 32-byte Ed25519 public key, if this is an Ed25519 key.
    pub fn ed25519_public(&self) -> Option<&[u8; 32]> {
        match &self.public {
            Public::Ed25519(k) => Some(k.as_bytes()),
            Public::Sm2(..) => None,
        }
    }

    /// Build an Ed25519 verifier key from a name and a raw public key.
    pub fn from_public(name: &str, public: &[u8; 32]) -> Result<Self, KeyError> {
        check_name(name)?;
        let public = ed25519_dalek::VerifyingKey::from_bytes(public).map_err(|_| {
            KeyError::BadVerifierKey("public key is not a valid Ed25519 point".into())
        })?;
        Ok(VerifierKey {
            name: name.to_owned(),
            hash: key_hash(name, public.as_bytes()),
            public: Public::Ed25519(public),
        })
    }

    /// Build an SM2 verifier key from a name and a SEC1 point (compressed
    /// or not).
    pub fn from_sm2_point(name: &str, point: &[u8]) -> Result<Self, KeyError> {
        check_name(name)?;
        let key = sm2::dsa::VerifyingKey::from_sec1_bytes(SM2_DISTID, point)
            .map_err(|_| KeyError::BadVerifierKey("public key is not a valid SM2 point".into()))?;
        let point = sm2_point(&key);
        Ok(VerifierKey {
            name: name.to_owned(),
            hash: sm2_key_hash(name, &point),
            public: Public::Sm2(Box::new(key), point),
        })
    }

    /// The public key as PEM SubjectPublicKeyInfo (SM2 keys only).
    pub fn sm2_pem(&self) -> Option<String> {
        use sm2::pkcs8::EncodePublicKey as _;
        match &self.public {
            Public::Ed25519(_) => None,
            Public::Sm2(k, _) => sm2::PublicKey::from(k.as_ref())
                .to_public_key_pem(sm2::pkcs8::LineEnding::LF)
                .ok(),
        }
    }

    /// What a `.pub` file holds for this key: the verifier key line, then
    /// for SM2 the PEM SubjectPublicKeyInfo (which OpenSSL reads, skipping
    /// the line before it).
    pub fn public_file_text(&self) -> String {
        let mut text = format!("{self}\n");
        if let Some(pem) = self.sm2_pem() {
            text.push_str(&pem);
        }
        text
    }

    /// Read the text of a `.pub` file: a verifier key line (for SM2
    /// followed by a PEM public key, which must be the same key), or only
    /// an SM2 PEM SubjectPublicKeyInfo as OpenSSL writes it, named
    /// `fallback_name` (refused without one).
    pub fn from_public_file_text(
        text: &str,
        fallback_name: Option<&str>,
    ) -> Result<Self, KeyError> {
        let text = text.trim();
        let (line, pem) = match text.find("-----BEGIN") {
            Some(at) => (text[..at].trim(), Some(&text[at..])),
            None => (text, None),
        };
        let from_pem = |pem: &str, name: &str| -> Result<VerifierKey, KeyError> {
            use sm2::pkcs8::DecodePublicKey as _;
            let public = sm2::PublicKey::from_public_key_pem(pem)
                .map_err(|e| KeyError::BadVerifierKey(format!("not an SM2 PEM public key: {e}")))?;
            let key = sm2::dsa::VerifyingKey::new(SM2_DISTID, public)
                .map_err(|_| KeyError::BadVerifierKey("not a valid SM2 public key".into()))?;
            VerifierKey::from_sm2_point(name, &sm2_point(&key))
        };
        match (line.is_empty(), pem) {
            (false, None) => line.parse(),
            (false, Some(pem)) => {
                let vk: VerifierKey = line.parse()?;
                if from_pem(pem, vk.name())? != vk {
                    return Err(KeyError::BadVerifierKey(
                        "the PEM public key is not the key of the verifier key line".into(),
                    ));
                }
                Ok(vk)
            }
            (true, Some(pem)) => match fallback_name {
                Some(name) => from_pem(pem, name),
                None => Err(KeyError::BadVerifierKey(
                    "a PEM public key without a verifier key line has no name".into(),
                )),
            },
            (true, None) => Err(KeyError::BadVerifierKey("empty".into())),
        }
    }

    /// Read a `.pub` file ([`VerifierKey::from_public_file_text`]); a bare
    /// PEM key is named after the file (its name without `.pub` and the
    /// extension before it).
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: path.to_owned(),
            source,
        })?;
        let file = path
            .file_name()
            .and_then(|s| s.to_str())
            .unwrap_or("custos");
        let stem = file.strip_suffix(".pub").unwrap_or(file);
        let stem = stem
            .split('.')
            .next()
            .filter(|s| !s.is_empty())
            .unwrap_or("custos");
        Self::from_public_file_text(&text, Some(stem))
    }

    /// Verify a signature over `message`.
    ///
    /// Ed25519: a 64-byte signature; `s` must be canonical (below the group
    /// order) and `[s]B - [k]A`, with `k` = SHA-512(R || A || message), must
    /// encode to exactly the signature's `R` bytes (RFC 8032's cofactorless
    /// check, as OpenSSL and Go make it).
    ///
    /// This once tried ed25519-dalek's `verify_strict` first and fell back
    /// to `verify`. Both compare the same recomputed `R` encoding with the
    /// signature's bytes, and `verify_strict` only adds refusals (small-order
    /// `R` or key), so the pair accepted exactly what `verify` accepts, at
    /// the cost of an extra point decompression and two small-order checks
    /// per signature (a fifth of the ledger's verification time).
    /// `accepts_exactly_what_strict_or_plain_accepted` holds the two to the
    /// same answers.
    ///
    /// SM2: a strict DER `SEQUENCE { r, s }` (r, s in [1, n-1]), SM2DSA
    /// over SM3 of Z_A || message with the distinguishing identifier
    /// [`SM2_DISTID`] (GB/T 32918.2 steps B1 to B7).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        match &self.public {
            Public::Ed25519(public) => {
                let sig: &[u8; 64] = signature
                    .try_into()
                    .map_err(|_| SignatureError::BadLength(signature.len()))?;
                let sig = ed25519_dalek::Signature::from_bytes(sig);
                public
                    .verify(message, &sig)
                    .map_err(|_| SignatureError::Invalid(self.key_id()))
            }
            Public::Sm2(public, _) => {
                use sm2::dsa::signature::Verifier as _;
                let (r, s) = parse_der_signature(signature).ok_or(SignatureError::BadEncoding)?;
                let sig = sm2::dsa::Signature::from_scalars(r, s)
                    .map_err(|_| SignatureError::BadEncoding)?;
                public
                    .verify(message, &sig)
                    .map_err(|_| SignatureError::Invalid(self.key_id()))
            }
        }
    }
}

impl VerifierKey {
    /// Whether the key is an Ed25519 key in the prime-order subgroup (no
    /// small-order component; every key made by [`SigningKey`] is). Only
    /// such keys are verified in batches ([`verify_batch`]); SM2 keys never
    /// are. Costs one scalar multiplication: callers keep the answer per key.
    pub fn is_torsion_free(&self) -> bool {
        match &self.public {
            Public::Ed25519(k) => k.to_edwards().is_torsion_free(),
            Public::Sm2(..) => false,
        }
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
/// Ed25519 only: a batch holding an SM2 key fails.
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
        let Public::Ed25519(ed) = &key.public else {
            return false;
        };
        let public = ed.as_bytes();
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
                points.push(ed.to_edwards());
            }
        }
    }
    scalars[0] = b_coefficient;
    EdwardsPoint::vartime_multiscalar_mul(&scalars, &points).is_identity()
}

impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let data = match &self.public {
            Public::Ed25519(k) => [&[ED25519_ALG][..], k.as_bytes()].concat(),
            Public::Sm2(_, point) => [&[SM2_ALG][..], point].concat(),
        };
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
        let vk = match data.first() {
            Some(&ED25519_ALG) => {
                let public: [u8; 32] = data[1..].try_into().map_err(|_| {
                    bad("Ed25519 key data must be 33 bytes (algorithm byte and 32-byte key)")
                })?;
                VerifierKey::from_public(name, &public)?
            }
            Some(&SM2_ALG) => {
                if data.len() != 66 || data[1] != 0x04 {
                    return Err(bad(
                        "SM2 key data must be 66 bytes (0xff and the uncompressed 65-byte point)",
                    ));
                }
                VerifierKey::from_sm2_point(name, &data[1..])?
            }
            _ => {
                return Err(bad(
                    "key algorithm is neither Ed25519 (0x01) nor SM2 (0xff)",
                ))
            }
        };
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
    fn a_key_set_holds_a_rotation_but_never_one_key_twice() {
        let old = SigningKey::from_seed("ledger", &[1; 32]).unwrap();
        let new = SigningKey::from_seed("ledger", &[2; 32]).unwrap();
        let new_id = new.verifier_key().key_id();
        let set = KeySet::new(vec![new, old]).unwrap();
        assert_eq!(set.keys().len(), 2);
        assert_eq!(set.primary().verifier_key().key_id(), new_id);
        assert_eq!(
            set.get(Algorithm::Ed25519).unwrap().verifier_key().key_id(),
            new_id
        );
        let twice = vec![
            SigningKey::from_seed("ledger", &[1; 32]).unwrap(),
            SigningKey::from_seed("ledger", &[1; 32]).unwrap(),
        ];
        let err = KeySet::new(twice).unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");
        assert!(KeySet::new(Vec::new()).is_err());
    }

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
            let Public::Ed25519(public) = &vk.public else {
                unreachable!("an Ed25519 key")
            };
            public.verify_strict(msg, &sig).is_ok() || public.verify(msg, &sig).is_ok()
        };
        let mut accepted = 0;
        for m in 0..4u8 {
            let msg = vec![m; 40 + usize::from(m)];
            let good: [u8; 64] = k.sign(&msg).try_into().unwrap();
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
        let sigs: Vec<[u8; 64]> = messages
            .iter()
            .map(|m| k.sign(m).try_into().unwrap())
            .collect();
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
            .map(|(i, m)| keys[who(i)].sign(m).try_into().unwrap())
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

    fn sm2_key(name: &str, byte: u8) -> SigningKey {
        SigningKey::sm2_from_bytes(name, &[byte; 32]).unwrap()
    }

    #[test]
    fn sm2_verifier_key_round_trip_sign_and_refusals() {
        let k = sm2_key("ledger", 7);
        assert_eq!(k.algorithm(), Algorithm::Sm2);
        let vk = k.verifier_key();
        let text = vk.to_string();
        let back: VerifierKey = text.parse().unwrap();
        assert_eq!(back, vk);
        assert_eq!(back.algorithm(), Algorithm::Sm2);
        assert_eq!(back.public_key().len(), 65);
        // The .pub text (line and PEM) reads back, and a bare PEM needs a name.
        let file = vk.public_file_text();
        assert_eq!(VerifierKey::from_public_file_text(&file, None).unwrap(), vk);
        let pem = vk.sm2_pem().unwrap();
        assert!(VerifierKey::from_public_file_text(&pem, None).is_err());
        assert_eq!(
            VerifierKey::from_public_file_text(&pem, Some("ledger")).unwrap(),
            vk
        );
        // A line naming one key over the PEM of another is refused.
        let other = sm2_key("ledger", 8).verifier_key();
        let mixed = format!("{vk}\n{}", other.sm2_pem().unwrap());
        assert!(VerifierKey::from_public_file_text(&mixed, None).is_err());

        let sig = k.sign(b"hello");
        assert!((70..=72).contains(&sig.len()), "{}", sig.len());
        vk.verify(b"hello", &sig).unwrap();
        assert!(vk.verify(b"hellp", &sig).is_err());
        assert!(other.verify(b"hello", &sig).is_err());
        // Every single-bit flip of the DER is refused.
        for bit in 0..sig.len() * 8 {
            let mut bad = sig.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(vk.verify(b"hello", &bad).is_err(), "bit {bit}");
        }
        // Trailing bytes, truncation, and an Ed25519-sized blob.
        assert!(vk
            .verify(b"hello", &[sig.as_slice(), &[0]].concat())
            .is_err());
        assert!(vk.verify(b"hello", &sig[..sig.len() - 1]).is_err());
        assert_eq!(
            vk.verify(b"hello", &[0u8; 64]),
            Err(SignatureError::BadEncoding)
        );
        // The two suites never verify each other's signatures, and an SM2
        // key never enters an Ed25519 batch.
        let ed = SigningKey::from_seed("ledger", &[7; 32]).unwrap();
        assert!(ed.verifier_key().verify(b"hello", &sig).is_err());
        assert!(vk.verify(b"hello", &ed.sign(b"hello")).is_err());
        assert_ne!(ed.verifier_key().key_hash(), vk.key_hash());
        assert!(!vk.is_torsion_free());
        assert!(!verify_batch(
            &[(&vk, b"hello".as_slice(), sig.as_slice())],
            &mut rand_core::OsRng
        ));
    }

    #[test]
    fn der_signature_codec_is_strict() {
        let r = [0x80u8; 32];
        let mut s = [0u8; 32];
        s[31] = 1;
        let der = der_signature(&r, &s);
        assert_eq!(der[..4], [0x30, 0x26, 0x02, 0x21]);
        assert_eq!(parse_der_signature(&der), Some((r, s)));
        // Non-minimal integer, negative integer, long-form length.
        assert!(parse_der_signature(&[0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01]).is_some());
        assert!(
            parse_der_signature(&[0x30, 0x07, 0x02, 0x02, 0x00, 0x01, 0x02, 0x01, 0x01]).is_none()
        );
        assert!(parse_der_signature(&[0x30, 0x06, 0x02, 0x01, 0x81, 0x02, 0x01, 0x01]).is_none());
        assert!(
            parse_der_signature(&[0x30, 0x81, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01]).is_none()
        );
        assert!(parse_der_signature(&[]).is_none());
    }

    /// OpenSSL 3 reads the SM2 key files and verifies Custos's signature
    /// with the command VERIFY.txt gives; a flipped byte fails in both;
    /// a key OpenSSL made loads in Custos and its signature verifies here.
    #[test]
    fn sm2_interoperates_with_the_openssl_command_line() {
        use std::process::Command;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("ledger.key");
        let k = SigningKey::generate_for(Algorithm::Sm2, "ledger", &mut rand_core::OsRng).unwrap();
        k.save(&key).unwrap();
        assert_eq!(
            SigningKey::load(&key).unwrap().verifier_key(),
            k.verifier_key()
        );
        let message = b"DSSEv1 3 abc 5 hello".to_vec();
        let msg = dir.path().join("pae");
        let sig = dir.path().join("sig");
        std::fs::write(&msg, &message).unwrap();
        std::fs::write(&sig, k.sign(&message)).unwrap();
        let verify = |sig: &Path| {
            Command::new("openssl")
                .args(["pkeyutl", "-verify", "-pubin", "-inkey"])
                .arg(pub_path(&key))
                .args(["-rawin", "-digest", "sm3", "-pkeyopt"])
                .arg(format!("distid:{SM2_DISTID}"))
                .arg("-in")
                .arg(&msg)
                .arg("-sigfile")
                .arg(sig)
                .output()
                .expect("openssl runs")
        };
        let out = verify(&sig);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut flipped = k.sign(&message);
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        let bad = dir.path().join("bad");
        std::fs::write(&bad, &flipped).unwrap();
        assert!(!verify(&bad).status.success());
        assert!(k.verifier_key().verify(&message, &flipped).is_err());

        // The other way: OpenSSL's key and signature.
        let theirs = dir.path().join("theirs.key");
        let ok = |c: &mut Command| assert!(c.status().unwrap().success());
        ok(Command::new("openssl")
            .args(["genpkey", "-algorithm", "SM2", "-out"])
            .arg(&theirs));
        let theirs_pub = dir.path().join("theirs.pem");
        ok(Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(&theirs)
            .arg("-out")
            .arg(&theirs_pub));
        let their_sig = dir.path().join("their.sig");
        ok(Command::new("openssl")
            .args(["pkeyutl", "-sign", "-inkey"])
            .arg(&theirs)
            .args(["-rawin", "-digest", "sm3", "-pkeyopt"])
            .arg(format!("distid:{SM2_DISTID}"))
            .arg("-in")
            .arg(&msg)
            .arg("-out")
            .arg(&their_sig));
        let vk = VerifierKey::load(&theirs_pub).unwrap();
        assert_eq!(vk.name(), "theirs");
        vk.verify(&message, &std::fs::read(&their_sig).unwrap())
            .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let loaded = SigningKey::load(&theirs).unwrap();
        assert_eq!(loaded.verifier_key(), vk);
    }
}
