//! [`verify_object`]: is the stored object exactly the segment?
//!
//! The default reads the object back through the same hashing core the
//! ingest used and compares digests. Where the store itself checked an
//! SHA-256 of every byte at upload time (S3 checksums), the ingest's
//! [`StoreReceipt`] can stand in for the read-back, after a HEAD confirms
//! that the object is still the one the store acknowledged (same size,
//! same ETag). This module must never report success without either a
//! read-back that matched or such a receipt.
//!
//! Read-back uses ranged reads of a few MiB, two in flight, pinned to one
//! object version with `If-Match`, so memory stays bounded and a
//! concurrent replacement is detected rather than mixed in.

use custos_core::digest::{Digest, Digests, MultiHasher};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectMeta};

use crate::error::VerifyError;
use crate::hasher::{HashWorker, Hashed};
use crate::segment::StoreReceipt;
use crate::store::IngestStore;

/// Bytes per ranged read when reading an object back: 8 MiB, large enough
/// for full-speed HTTP transfers, small enough for two in flight plus the
/// hasher's queue to stay well under the per-segment memory budget.
pub const READ_BACK_CHUNK: u64 = 8 * 1024 * 1024;

/// Ranged reads in flight during a read-back.
const READS_IN_FLIGHT: usize = 2;

/// How to verify.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum VerifyMode {
    /// Read the object back and hash it (the default, and always sound).
    #[default]
    ReadBack,
    /// Accept the store's own SHA-256 check done at upload time, if the
    /// store is one that checks ([`IngestStore::checks_sha256`]), the
    /// receipt's digest is the expected one, and a HEAD shows the same
    /// size and ETag. Otherwise falls back to a read-back.
    TrustStoreChecksum(StoreReceipt),
}

/// How a verification was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyMethod {
    /// The object was read back and hashed.
    ReadBack,
    /// The store's checksum receipt was accepted.
    StoreChecksum,
}

/// A verified object.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verified {
    /// Size of the object.
    pub size: u64,
    /// Its digests (computed on read-back; the expected ones when the
    /// store's receipt was trusted).
    pub digests: Digests,
    /// Its ETag.
    pub e_tag: Option<String>,
    /// How the verification was done.
    pub method: VerifyMethod,
}

/// Check that the object at `key` has the `expected` digests (SHA-256, and
/// SM3 too when `expected.sm3` is set).
pub async fn verify_object(
    store: impl Into<IngestStore>,
    key: &Path,
    expected: &Digests,
    mode: VerifyMode,
) -> Result<Verified, VerifyError> {
    let store = store.into();
    let meta = head(&store, key).await?;
    if let VerifyMode::TrustStoreChecksum(receipt) = &mode {
        let trusted = store.checks_sha256()
            && receipt.sha256 == expected.sha256
            && receipt.size == meta.size
            && meta.e_tag.as_deref() == Some(receipt.e_tag.as_str());
        if trusted {
            return Ok(Verified {
                size: meta.size,
                digests: *expected,
                e_tag: meta.e_tag,
                method: VerifyMethod::StoreChecksum,
            });
        }
        tracing::info!(%key, "store receipt not usable; reading the object back");
    }
    let hasher =
        MultiHasher::new(expected.sm3.is_some()).map_err(|_| VerifyError::Sm3Unavailable)?;
    let hashed = read_back(&store, key, &meta, hasher).await?;
    check(key, expected.sha256, hashed.digests.sha256)?;
    if let (Some(want), Some(got)) = (expected.sm3, hashed.digests.sm3) {
        check(key, want, got)?;
    }
    Ok(Verified {
        size: hashed.bytes,
        digests: hashed.digests,
        e_tag: meta.e_tag,
        method: VerifyMethod::ReadBack,
    })
}

/// Read the object at `key` back and return its size and digests
/// (SHA-256, plus SM3 when `with_sm3`), as the audit scrub needs.
pub async fn hash_object(
    store: impl Into<IngestStore>,
    key: &Path,
    with_sm3: bool,
) -> Result<(u64, Digests), VerifyError> {
    let store = store.into();
    let meta = head(&store, key).await?;
    let hasher = MultiHasher::new(with_sm3).map_err(|_| VerifyError::Sm3Unavailable)?;
    let h = read_back(&store, key, &meta, hasher).await?;
    Ok((h.bytes, h.digests))
}

fn check(key: &Path, expected: Digest, actual: Digest) -> Result<(), VerifyError> {
    if expected == actual {
        Ok(())
    } else {
        Err(VerifyError::DigestMismatch {
            key: key.to_string(),
            expected,
            actual,
        })
    }
}

async fn head(store: &IngestStore, key: &Path) -> Result<ObjectMeta, VerifyError> {
    match store.object_store().head(key).await {
        Ok(m) => Ok(m),
        Err(object_store::Error::NotFound { .. }) => Err(VerifyError::NotFound {
            key: key.to_string(),
        }),
        Err(source) => Err(VerifyError::Store {
            key: key.to_string(),
            source,
        }),
    }
}

/// Hash the object described by `meta` through `hasher`, reading it in
/// ranges pinned to its ETag.
pub(crate) async fn read_back(
    store: &IngestStore,
    key: &Path,
    meta: &ObjectMeta,
    hasher: MultiHasher,
) -> Result<Hashed, VerifyError> {
    let objects = store.object_store().clone();
    let worker = HashWorker::start(hasher, READS_IN_FLIGHT);
    let size = meta.size;
    let ranges = (0..size.div_ceil(READ_BACK_CHUNK))
        .map(|i| i * READ_BACK_CHUNK..((i + 1) * READ_BACK_CHUNK).min(size));
    let mut chunks = futures::stream::iter(ranges)
        .map(|range| {
            let objects = objects.clone();
            let opts = GetOptions {
                range: Some(GetRange::Bounded(range)),
                if_match: meta.e_tag.clone(),
                ..GetOptions::default()
            };
            async move { objects.get_opts(key, opts).await?.bytes().await }
        })
        .buffered(READS_IN_FLIGHT);
    loop {
        let next = chunks.try_next().await.map_err(|source| match source {
            object_store::Error::Precondition { .. } => VerifyError::Changed {
                key: key.to_string(),
            },
            object_store::Error::NotFound { .. } => VerifyError::NotFound {
                key: key.to_string(),
            },
            source => VerifyError::Store {
                key: key.to_string(),
                source,
            },
        })?;
        let Some(bytes) = next else { break };
        worker
            .feed(bytes)
            .await
            .map_err(|e| VerifyError::Internal {
                key: key.to_string(),
                detail: e.0,
            })?;
    }
    let hashed = worker.finish().await.map_err(|e| VerifyError::Internal {
        key: key.to_string(),
        detail: e.0,
    })?;
    if hashed.bytes != size {
        return Err(VerifyError::SizeMismatch {
            key: key.to_string(),
            expected: size,
            actual: hashed.bytes,
        });
    }
    Ok(hashed)
}
