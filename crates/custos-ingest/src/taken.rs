//! The taken-key check: is the segment's object key already taken, and by
//! which bytes?
//!
//! Before anything is written (step 1 of `segment`), the key is looked up
//! with a HEAD. When an object is there, the segment is read and hashed
//! without storing anything and compared with it: the same size and then
//! the same SHA-256 of the object read back means an earlier attempt
//! already stored these bytes (an idempotent retry, reported as
//! `already_present`); anything else is [`IngestError::KeyTaken`]. The same
//! comparison runs whenever a write finds the key taken after all: a
//! conditional put refused, a multipart upload dropped by the store or
//! about to complete over an object that appeared meanwhile, a `link(2)`
//! into a local store that fails because the name exists.
//!
//! Why HEAD and compare rather than trusting the store: Garage accepts
//! `If-None-Match: *` and overwrites anyway (DESIGN.md, "Real components"),
//! and multipart completion has no conditional form in object_store. The
//! check-then-write window between steps 4 and 5 remains on such stores; it
//! is one request long, and Custos never has two writers for one key (the
//! key names the recorder and its file, and a recorder sits in one slot).
//!
//! This module writes nothing. It must never accept a taken key whose
//! object it has not read back whole and found equal to the segment, and
//! never recreate an object that vanished while it was being compared.

use std::sync::Arc;

use crate::split::StreamHasher;
use custos_core::digest::Digests;
use object_store::{ObjectMeta, ObjectStoreExt, PutResult};
use tokio::sync::Semaphore;

use crate::buffers::{ChunkPool, PartSource};
use crate::error::{IngestError, KeyTakenReason};
use crate::hasher::{Hashed, Hashing};
use crate::retry::with_retry;
use crate::segment::{IngestOutcome, Run};
use crate::verify::read_back;

impl Run<'_> {
    /// HEAD the key: `None` when no object is there (also the ETag of an
    /// object the pipeline wrote into a local store itself).
    pub(crate) async fn head(&self) -> Result<Option<ObjectMeta>, IngestError> {
        let objects = self.store.object_store();
        match with_retry(&self.opts.retry, "look up the key", || {
            objects.head(self.key)
        })
        .await
        {
            Ok(meta) => Ok(Some(meta)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(source) => Err(self.store_error("look up the key", source, None)),
        }
    }

    /// Step 1, key taken: hash the whole source without uploading, then
    /// compare with what is stored.
    pub(crate) async fn existing_key<S>(
        &mut self,
        source: &mut S,
        existing: ObjectMeta,
        hasher: StreamHasher,
    ) -> Result<IngestOutcome, IngestError>
    where
        S: PartSource,
    {
        if let Some(expected) = self.opts.expected_size {
            if expected != existing.size {
                return Err(IngestError::KeyTaken {
                    key: self.key.to_string(),
                    reason: KeyTakenReason::Size {
                        existing: existing.size,
                        segment: expected,
                    },
                });
            }
        }
        let pool = ChunkPool::new(self.plan.chunk_size);
        let slots = Arc::new(Semaphore::new(self.plan.parts_in_flight));
        let worker = Hashing::start(&*source, hasher);
        let hashed = self.hash_rest(source, worker, &pool, &slots).await?;
        self.compare_with_stored(hashed.bytes, hashed.digests).await
    }

    /// The key holds an object: succeed if it has exactly the segment's
    /// bytes, refuse otherwise.
    pub(crate) async fn compare_with_stored(
        &mut self,
        size: u64,
        digests: Digests,
    ) -> Result<IngestOutcome, IngestError> {
        let Some(meta) = self.head().await? else {
            // It was there a moment ago and is gone: nothing to compare
            // with, and not ours to recreate behind a deleter's back.
            return Err(self.store_error(
                "find the object that held the key",
                object_store::Error::NotFound {
                    path: self.key.to_string(),
                    source: "object vanished while comparing".into(),
                },
                None,
            ));
        };
        if meta.size != size {
            return Err(IngestError::KeyTaken {
                key: self.key.to_string(),
                reason: KeyTakenReason::Size {
                    existing: meta.size,
                    segment: size,
                },
            });
        }
        let stored: Hashed = read_back(self.store, self.key, &meta, StreamHasher::sha256())
            .await
            .map_err(|e| IngestError::Compare {
                key: self.key.to_string(),
                source: Box::new(e),
            })?;
        if stored.digests.sha256 != digests.sha256 {
            return Err(IngestError::KeyTaken {
                key: self.key.to_string(),
                reason: KeyTakenReason::Content {
                    existing: stored.digests.sha256,
                    segment: digests.sha256,
                },
            });
        }
        tracing::info!(key = %self.key, "segment already stored with the same bytes");
        self.stored = size;
        let mut outcome = self.outcome(
            size,
            digests,
            PutResult {
                e_tag: meta.e_tag,
                version: meta.version,
                extensions: Default::default(),
            },
            0,
        );
        outcome.already_present = true;
        Ok(outcome)
    }
}
