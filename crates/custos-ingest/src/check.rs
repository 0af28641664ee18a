//! [`check_object`]: does a stored object still hold what its manifest
//! says? The audit scrub's question, asked of one object.
//!
//! The object is read back whole through the ingest's own hashing core
//! ([`hash_object`]: SHA-256, and SM3 when the manifest has one), then
//! compared with the expected size and digests
//! ([`ExpectedObject::compare`], pure). The answer is one of four: the
//! object matches; it is missing (no object under the key); it is altered
//! (another size or digest, with what was found); or it could not be read
//! (the key is not a valid path, the store failed, SM3 is not built in).
//!
//! This module never writes to the store. It must never answer
//! [`ObjectCheck::Matches`] without having read back every byte of the
//! object, nor call an object missing because reading it failed otherwise.

use custos_core::digest::{Digest, Digests};
use object_store::path::Path;

use crate::error::VerifyError;
use crate::store::IngestStore;
use crate::verify::hash_object;

/// What a manifest says an object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectedObject {
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256.
    pub sha256: Digest,
    /// Its SM3, when the manifest has one; the object's SM3 is then
    /// computed and compared too.
    pub sm3: Option<Digest>,
}

impl ExpectedObject {
    /// Compare with the `size` and `digests` of the object as read back:
    /// [`ObjectCheck::Matches`] when the size and the SHA-256 are the
    /// expected ones, and so is the SM3 when one is expected;
    /// [`ObjectCheck::Altered`] otherwise.
    pub fn compare(&self, size: u64, digests: Digests) -> ObjectCheck {
        let same = size == self.size
            && digests.sha256 == self.sha256
            && (self.sm3.is_none() || digests.sm3 == self.sm3);
        if same {
            ObjectCheck::Matches
        } else {
            ObjectCheck::Altered { size, digests }
        }
    }
}

/// What [`check_object`] found.
///
/// Exhaustive on purpose: these are the only answers a check can give, and
/// a caller (the scrub) must decide what each means for the record.
#[derive(Debug)]
pub enum ObjectCheck {
    /// The object has the expected size and digests.
    Matches,
    /// The store has no object under the key.
    Missing,
    /// The object's size or a digest differs from the expected one.
    Altered {
        /// The object's size.
        size: u64,
        /// The object's digests (SM3 only when one was expected).
        digests: Digests,
    },
    /// The object could not be read to the end.
    Unreadable(UnreadableObject),
}

/// Why an object could not be checked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UnreadableObject {
    /// The object key is not a valid object store path (a bad catalogue
    /// row, not a store failure).
    #[error("object key is not a valid path: {0}")]
    BadKey(#[source] object_store::path::Error),
    /// Reading the object back failed for another reason than its absence.
    #[error(transparent)]
    Read(VerifyError),
}

/// Read the object at `object_key` back and compare it with `expected`.
///
/// `store` is an [`IngestStore`] or anything that converts into one. The
/// whole object is read once (in one read pinned to its ETag, as
/// [`hash_object`] does), whatever its size, with bounded memory.
pub async fn check_object(
    store: impl Into<IngestStore>,
    object_key: &str,
    expected: &ExpectedObject,
) -> ObjectCheck {
    let key = match Path::parse(object_key) {
        Ok(key) => key,
        Err(e) => return ObjectCheck::Unreadable(UnreadableObject::BadKey(e)),
    };
    match hash_object(store, &key, expected.sm3.is_some()).await {
        Ok((size, digests)) => expected.compare(size, digests),
        Err(VerifyError::NotFound { .. }) => ObjectCheck::Missing,
        Err(e) => ObjectCheck::Unreadable(UnreadableObject::Read(e)),
    }
}

#[cfg(test)]
mod tests {
    use custos_core::digest::Algorithm;

    use super::*;

    fn sha(data: &[u8]) -> Digest {
        Digest::sha256(data)
    }

    fn sm3(n: u8) -> Digest {
        Digest::new(Algorithm::Sm3, [n; 32])
    }

    fn expected(sm3: Option<Digest>) -> ExpectedObject {
        ExpectedObject {
            size: 5,
            sha256: sha(b"clip1"),
            sm3,
        }
    }

    fn digests(sha256: Digest, sm3: Option<Digest>) -> Digests {
        Digests { sha256, sm3 }
    }

    /// `compare`'s answer, as `Some((size, digests))` for `Altered` and
    /// `None` for `Matches`.
    fn check(e: ExpectedObject, size: u64, d: Digests) -> Option<(u64, Digests)> {
        match e.compare(size, d) {
            ObjectCheck::Matches => None,
            ObjectCheck::Altered { size, digests } => Some((size, digests)),
            other => panic!("compare answered {other:?}"),
        }
    }

    #[test]
    fn the_same_size_and_digests_match() {
        assert_eq!(check(expected(None), 5, digests(sha(b"clip1"), None)), None);
        let with_sm3 = digests(sha(b"clip1"), Some(sm3(1)));
        assert_eq!(check(expected(Some(sm3(1))), 5, with_sm3), None);
    }

    #[test]
    fn another_size_is_altered_even_with_the_same_digests() {
        let d = digests(sha(b"clip1"), None);
        assert_eq!(check(expected(None), 6, d), Some((6, d)));
        assert_eq!(check(expected(None), 0, d), Some((0, d)));
    }

    #[test]
    fn another_sha256_is_altered() {
        let d = digests(sha(b"clip2"), None);
        assert_eq!(check(expected(None), 5, d), Some((5, d)));
        let d = digests(sha(b"clip2"), Some(sm3(1)));
        assert_eq!(check(expected(Some(sm3(1))), 5, d), Some((5, d)));
    }

    #[test]
    fn another_sm3_is_altered_when_one_is_expected() {
        let d = digests(sha(b"clip1"), Some(sm3(2)));
        assert_eq!(check(expected(Some(sm3(1))), 5, d), Some((5, d)));
        // Expected, but not computed: not a match either.
        let d = digests(sha(b"clip1"), None);
        assert_eq!(check(expected(Some(sm3(1))), 5, d), Some((5, d)));
    }

    #[test]
    fn an_sm3_not_expected_is_not_compared() {
        let d = digests(sha(b"clip1"), Some(sm3(9)));
        assert_eq!(check(expected(None), 5, d), None);
    }

    #[test]
    fn unreadable_reasons_read_as_before() {
        let bad = Path::parse("a//b").unwrap_err();
        let text = bad.to_string();
        assert_eq!(
            UnreadableObject::BadKey(bad).to_string(),
            format!("object key is not a valid path: {text}")
        );
        let read = VerifyError::Sm3Unavailable;
        let text = read.to_string();
        assert_eq!(UnreadableObject::Read(read).to_string(), text);
    }
}
