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
//! Read-back is one read pinned to the object's ETag with `If-Match`, so a
//! concurrent replacement is detected rather than mixed in, with memory
//! bounded by a few fixed buffers.

use std::time::Instant;

use crate::split::StreamHasher;
use bytes::Bytes;
use custos_core::digest::{Digest, Digests};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{GetOptions, GetResultPayload, ObjectMeta, ObjectStoreExt};

use crate::error::VerifyError;
use crate::files::{hash_reader, DEFAULT_HASH_BUFFER};
use crate::hasher::{HashWorker, Hashed};
use crate::segment::StoreReceipt;
use crate::store::IngestStore;

/// Bytes of a streamed object body handed to the hashing thread at once:
/// 1 MiB, so the hand-over costs nothing next to the hashing, and two
/// batches queued stay far below the per-segment memory budget.
pub const READ_BACK_BATCH: usize = 1024 * 1024;

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
        StreamHasher::new(expected.sm3.is_some()).map_err(|_| VerifyError::Sm3Unavailable)?;
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
    let hasher = StreamHasher::new(with_sm3).map_err(|_| VerifyError::Sm3Unavailable)?;
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

/// Hash the object described by `meta` through `hasher`, in one read
/// pinned to its ETag (`If-Match`), so a concurrent replacement fails the
/// read instead of mixing two versions.
///
/// A local file is hashed straight from the file on a blocking thread with
/// one fixed buffer; a remote object's body is hashed as it streams in,
/// batched into about [`READ_BACK_BATCH`] bytes per hand-over. Either way
/// memory stays a few MiB, whatever the object's size.
pub(crate) async fn read_back(
    store: &IngestStore,
    key: &Path,
    meta: &ObjectMeta,
    hasher: StreamHasher,
) -> Result<Hashed, VerifyError> {
    let name = key.to_string();
    let store_err = |source: object_store::Error| match source {
        object_store::Error::Precondition { .. } => VerifyError::Changed { key: name.clone() },
        object_store::Error::NotFound { .. } => VerifyError::NotFound { key: name.clone() },
        source => VerifyError::Store {
            key: name.clone(),
            source,
        },
    };
    let opts = GetOptions {
        if_match: meta.e_tag.clone(),
        ..GetOptions::default()
    };
    let got = store
        .object_store()
        .get_opts(key, opts)
        .await
        .map_err(store_err)?;
    let size = got.meta.size;
    let hashed = match got.payload {
        GetResultPayload::File(file, path) => {
            let t = Instant::now();
            let counted = Counted { inner: file, n: 0 };
            let r = tokio::task::spawn_blocking(move || {
                let mut counted = counted;
                let d = hash_reader(&mut counted, hasher, DEFAULT_HASH_BUFFER);
                d.map(|d| (d, counted.n))
            })
            .await
            .map_err(|e| VerifyError::Internal {
                key: key.to_string(),
                detail: format!("read-back thread failed: {e}"),
            })?;
            let (digests, bytes) = r.map_err(|e| VerifyError::Store {
                key: key.to_string(),
                source: object_store::Error::Generic {
                    store: "LocalFileSystem",
                    source: format!("reading {}: {e}", path.display()).into(),
                },
            })?;
            Hashed {
                digests,
                bytes,
                busy: t.elapsed(),
            }
        }
        GetResultPayload::Stream(mut body) => {
            let worker: HashWorker<Vec<Bytes>> = HashWorker::start(hasher, 2);
            let mut batch = Vec::new();
            let mut batched = 0;
            while let Some(chunk) = body.try_next().await.map_err(store_err)? {
                batched += chunk.len();
                batch.push(chunk);
                if batched >= READ_BACK_BATCH {
                    feed(&worker, std::mem::take(&mut batch), key).await?;
                    batched = 0;
                }
            }
            if !batch.is_empty() {
                feed(&worker, batch, key).await?;
            }
            worker.finish().await.map_err(|e| VerifyError::Internal {
                key: key.to_string(),
                detail: e.0,
            })?
        }
    };
    if hashed.bytes != size {
        return Err(VerifyError::SizeMismatch {
            key: key.to_string(),
            expected: size,
            actual: hashed.bytes,
        });
    }
    Ok(hashed)
}

async fn feed(
    worker: &HashWorker<Vec<Bytes>>,
    batch: Vec<Bytes>,
    key: &Path,
) -> Result<(), VerifyError> {
    worker.feed(batch).await.map_err(|e| VerifyError::Internal {
        key: key.to_string(),
        detail: e.0,
    })
}

/// A reader that counts what it reads.
struct Counted<R> {
    inner: R,
    n: u64,
}

impl<R: std::io::Read> std::io::Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}
