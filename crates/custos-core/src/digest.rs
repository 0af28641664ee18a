//! Digests: SHA-256 (and SM3 behind the `sm3` feature), their `algo:<hex>`
//! text form, and [`MultiHasher`], the one hashing core that the ingest
//! pipeline, `custos hash`, verification and the audit scrub all share.
//!
//! SHA-256 comes from `sha2`, which picks the x86-64 SHA extensions (SHA-NI)
//! at run time when the processor has them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Digest as _;

/// A digest algorithm Custos knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Algorithm {
    /// SHA-256 (FIPS 180-4); always computed.
    Sha256,
    /// SM3 (GB/T 32905-2016); computed where the `sm3` feature is on.
    Sm3,
}

impl Algorithm {
    /// The lower-case name used in the `name:<hex>` form and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sm3 => "sm3",
        }
    }

    /// Whether this build can compute the algorithm.
    pub fn is_available(self) -> bool {
        match self {
            Algorithm::Sha256 => true,
            Algorithm::Sm3 => cfg!(feature = "sm3"),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algorithm {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sha256" => Ok(Algorithm::Sha256),
            "sm3" => Ok(Algorithm::Sm3),
            other => Err(DigestError::UnknownAlgorithm(other.to_owned())),
        }
    }
}

/// Why a digest string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DigestError {
    /// The text has no `algo:` prefix.
    #[error("digest {0:?} has no algorithm prefix (expected e.g. \"sha256:<64 hex>\")")]
    MissingPrefix(String),
    /// The prefix names no algorithm Custos knows.
    #[error("unknown digest algorithm {0:?} (expected sha256 or sm3)")]
    UnknownAlgorithm(String),
    /// The hex part is not 64 lower-case hex digits.
    #[error("digest value {0:?} is not 64 lower-case hex digits")]
    BadHex(String),
}

/// A 32-byte digest together with its algorithm, shown as `sha256:<64 hex>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest {
    algorithm: Algorithm,
    bytes: [u8; 32],
}

impl Digest {
    /// A digest from its algorithm and raw bytes.
    pub fn new(algorithm: Algorithm, bytes: [u8; 32]) -> Self {
        Digest { algorithm, bytes }
    }

    /// SHA-256 of `data` in one call.
    pub fn sha256(data: &[u8]) -> Self {
        Digest::new(Algorithm::Sha256, sha2::Sha256::digest(data).into())
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// The 64 lower-case hex digits, without the prefix (as `sha256sum` prints).
    pub fn hex(&self) -> String {
        hex::encode(self.bytes)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (algo, hex_part) = s
            .split_once(':')
            .ok_or_else(|| DigestError::MissingPrefix(s.to_owned()))?;
        let algorithm: Algorithm = algo.parse()?;
        let valid = hex_part.len() == 64
            && hex_part
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !valid {
            return Err(DigestError::BadHex(hex_part.to_owned()));
        }
        let mut bytes = [0u8; 32];
        // INVARIANT: checked above to be 64 hex digits, so decoding cannot fail.
        hex::decode_to_slice(hex_part, &mut bytes)
            .map_err(|_| DigestError::BadHex(hex_part.to_owned()))?;
        Ok(Digest { algorithm, bytes })
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The digests of one byte stream: SHA-256 always, SM3 when asked for.
///
/// Serialises as the manifest's `digests` object: `{"sha256": "sha256:…",
/// "sm3": "sm3:…"}` with `sm3` absent when not computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digests {
    /// SHA-256 of the stream.
    pub sha256: Digest,
    /// SM3 of the stream, where computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sm3: Option<Digest>,
}

/// Streaming hasher over every requested algorithm at once.
///
/// Feed it the same buffers the upload sends (`update`), then `finalize`.
/// It never copies the data: each algorithm reads the caller's slice.
#[derive(Clone)]
pub struct MultiHasher {
    sha256: sha2::Sha256,
    #[cfg(feature = "sm3")]
    sm3: Option<sm3::Sm3>,
    bytes: u64,
}

impl fmt::Debug for MultiHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiHasher")
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

/// SM3 was asked for in a build without the `sm3` feature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("this build of custos has no SM3 support (feature `sm3` is off)")]
pub struct Sm3Unavailable;

impl MultiHasher {
    /// A hasher for SHA-256 only.
    pub fn sha256() -> Self {
        MultiHasher {
            sha256: sha2::Sha256::new(),
            #[cfg(feature = "sm3")]
            sm3: None,
            bytes: 0,
        }
    }

    /// A hasher for SHA-256 and, if `with_sm3`, SM3 as well.
    pub fn new(with_sm3: bool) -> Result<Self, Sm3Unavailable> {
        let mut h = Self::sha256();
        if with_sm3 {
            #[cfg(feature = "sm3")]
            {
                h.sm3 = Some(sm3::Sm3::new());
            }
            #[cfg(not(feature = "sm3"))]
            return Err(Sm3Unavailable);
        }
        Ok(h)
    }

    /// Hash one more buffer.
    pub fn update(&mut self, data: &[u8]) {
        self.sha256.update(data);
        #[cfg(feature = "sm3")]
        if let Some(sm3) = self.sm3.as_mut() {
            sm3.update(data);
        }
        self.bytes += data.len() as u64;
    }

    /// How many bytes were hashed so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The digests of everything fed in.
    pub fn finalize(self) -> Digests {
        Digests {
            sha256: Digest::new(Algorithm::Sha256, self.sha256.finalize().into()),
            #[cfg(feature = "sm3")]
            sm3: self
                .sm3
                .map(|h| Digest::new(Algorithm::Sm3, h.finalize().into())),
            #[cfg(not(feature = "sm3"))]
            sm3: None,
        }
    }
}

/// SM3 alone, for a caller that computes SHA-256 on another thread
/// ([`MultiHasher::sha256`] there) and puts the two together with
/// [`Digests`]: with SM3 on, SM3 is the slower of the two, and a spare core
/// can take SHA-256 off its path.
#[derive(Clone)]
pub struct Sm3Hasher {
    #[cfg(feature = "sm3")]
    sm3: sm3::Sm3,
}

impl fmt::Debug for Sm3Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sm3Hasher").finish_non_exhaustive()
    }
}

impl Sm3Hasher {
    /// A hasher with nothing hashed yet, where this build has SM3.
    pub fn new() -> Result<Self, Sm3Unavailable> {
        #[cfg(feature = "sm3")]
        return Ok(Sm3Hasher {
            sm3: sm3::Sm3::new(),
        });
        #[cfg(not(feature = "sm3"))]
        Err(Sm3Unavailable)
    }

    /// Hash one more buffer.
    pub fn update(&mut self, data: &[u8]) {
        #[cfg(feature = "sm3")]
        self.sm3.update(data);
        #[cfg(not(feature = "sm3"))]
        let _ = data;
    }

    /// The SM3 digest of everything fed in.
    pub fn finalize(self) -> Digest {
        #[cfg(feature = "sm3")]
        return Digest::new(Algorithm::Sm3, self.sm3.finalize().into());
        #[cfg(not(feature = "sm3"))]
        unreachable!("an Sm3Hasher exists only where SM3 is built in")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_known_answers() {
        let d = Digest::sha256(b"");
        assert_eq!(
            d.to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let mut h = MultiHasher::sha256();
        h.update(b"a");
        h.update(b"bc");
        assert_eq!(
            h.finalize().sha256.hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[cfg(feature = "sm3")]
    #[test]
    fn sm3_known_answer() {
        // GB/T 32905-2016 example 1: SM3("abc").
        let mut h = MultiHasher::new(true).unwrap();
        h.update(b"abc");
        assert_eq!(
            h.finalize().sm3.unwrap().to_string(),
            "sm3:66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
        );
    }

    #[test]
    fn parse_round_trip_and_errors() {
        let s = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let d: Digest = s.parse().unwrap();
        assert_eq!(d.to_string(), s);
        assert!(matches!(
            "e3b0".parse::<Digest>(),
            Err(DigestError::MissingPrefix(_))
        ));
        assert!(matches!(
            "md5:00".parse::<Digest>(),
            Err(DigestError::UnknownAlgorithm(_))
        ));
        assert!(matches!(
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"
                .parse::<Digest>(),
            Err(DigestError::BadHex(_))
        ));
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, format!("\"{s}\""));
    }
}
