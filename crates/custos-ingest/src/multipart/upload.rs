//! One multipart upload in progress, over either of object_store's two
//! multipart interfaces, and its clean-up.
//!
//! With the low-level interface (`MultipartStore`) a part that failed is
//! resent under its own part number, from the buffer kept for it, with the
//! segment's [`RetryPolicy`]. With the high-level one
//! (`ObjectStoreExt::put_multipart`) part numbers are assigned per call, so a
//! failed part cannot be resent without leaving a hole: there, only the
//! store client's own per-request retries apply.
//!
//! An upload that is not completed is aborted: explicitly on every error
//! path, and from `Drop` when the ingest future is cancelled. This module
//! must never complete an upload with a missing or reordered part.

use std::sync::Arc;

use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{MultipartId, MultipartUpload, ObjectStoreExt, PutResult};

use crate::buffers::Part;
use crate::error::OrphanedUpload;
use crate::options::RetryPolicy;
use crate::retry::with_retry;
use crate::store::IngestStore;

/// The future of one part's upload, spawned on the runtime.
pub(crate) type PartFuture =
    futures::future::BoxFuture<'static, Result<PartDone, (usize, object_store::Error)>>;

/// A part the store acknowledged.
#[derive(Debug)]
pub(crate) struct PartDone {
    pub index: usize,
    pub len: usize,
    /// The store's id for the part (low-level interface only).
    pub id: Option<PartId>,
}

enum Kind {
    /// `ObjectStoreExt::put_multipart`: parts numbered in call order.
    HighLevel(Box<dyn MultipartUpload>),
    /// `MultipartStore`: we number the parts and keep the upload id.
    LowLevel {
        store: Arc<dyn MultipartStore>,
        id: MultipartId,
    },
}

/// An open multipart upload. Aborted on drop unless completed or aborted.
pub(crate) struct OpenUpload {
    key: Path,
    retry: RetryPolicy,
    /// `None` once completed or aborted.
    kind: Option<Kind>,
}

impl std::fmt::Debug for OpenUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenUpload")
            .field("key", &self.key)
            .field("upload_id", &self.upload_id())
            .finish()
    }
}

impl OpenUpload {
    /// Start a multipart upload to `key`.
    pub(crate) async fn create(
        store: &IngestStore,
        key: &Path,
        retry: &RetryPolicy,
    ) -> Result<Self, object_store::Error> {
        let kind = match store.multipart_store() {
            Some(parts) => {
                let id = with_retry(retry, "create multipart upload", || {
                    parts.create_multipart(key)
                })
                .await?;
                Kind::LowLevel {
                    store: parts.clone(),
                    id,
                }
            }
            None => {
                // Creating an upload has no side effect visible at the key,
                // so retrying it is safe.
                let objects = store.object_store();
                let up = with_retry(retry, "create multipart upload", || {
                    objects.put_multipart(key)
                })
                .await?;
                Kind::HighLevel(up)
            }
        };
        Ok(OpenUpload {
            key: key.clone(),
            retry: retry.clone(),
            kind: Some(kind),
        })
    }

    /// The store's upload id, where known.
    pub(crate) fn upload_id(&self) -> Option<String> {
        match &self.kind {
            Some(Kind::LowLevel { id, .. }) => Some(id.clone()),
            _ => None,
        }
    }

    /// The future that uploads `part`. Parts must be started in index
    /// order (the high-level interface numbers them by call order).
    pub(crate) fn put_part(&mut self, part: Part) -> PartFuture {
        let index = part.index;
        let len = part.len;
        match &mut self.kind {
            Some(Kind::HighLevel(up)) => {
                let fut = up.put_part(part.payload());
                Box::pin(async move {
                    let r = fut.await;
                    drop(part);
                    r.map(|()| PartDone {
                        index,
                        len,
                        id: None,
                    })
                    .map_err(|e| (index, e))
                })
            }
            Some(Kind::LowLevel { store, id }) => {
                let store = store.clone();
                let id = id.clone();
                let key = self.key.clone();
                let retry = self.retry.clone();
                Box::pin(async move {
                    let what = format!("upload part {}", index + 1);
                    let r = with_retry(&retry, &what, || {
                        // Each attempt resends the kept buffer: a reference
                        // count, not a copy, and never a re-read.
                        store.put_part(&key, &id, index, part.payload())
                    })
                    .await;
                    drop(part);
                    r.map(|pid| PartDone {
                        index,
                        len,
                        id: Some(pid),
                    })
                    .map_err(|e| (index, e))
                })
            }
            None => Box::pin(async move {
                Err((
                    index,
                    object_store::Error::Generic {
                        store: "custos-ingest",
                        source: "multipart upload already finished".into(),
                    },
                ))
            }),
        }
    }

    /// Complete the upload with the acknowledged parts, in index order.
    pub(crate) async fn complete(
        &mut self,
        parts: Vec<PartDone>,
    ) -> Result<PutResult, object_store::Error> {
        let r = match &mut self.kind {
            Some(Kind::HighLevel(up)) => up.complete().await,
            Some(Kind::LowLevel { store, id }) => {
                let mut ids = Vec::with_capacity(parts.len());
                for (i, p) in parts.into_iter().enumerate() {
                    match p.id {
                        Some(pid) if p.index == i => ids.push(pid),
                        _ => {
                            return Err(object_store::Error::Generic {
                                store: "custos-ingest",
                                source: format!("part {} missing before completion", i + 1).into(),
                            })
                        }
                    }
                }
                // Completing is idempotent on S3 (a repeat of the same list
                // yields the same object); object_store already retries it.
                store.complete_multipart(&self.key, id, ids).await
            }
            None => {
                return Err(object_store::Error::Generic {
                    store: "custos-ingest",
                    source: "multipart upload already finished".into(),
                })
            }
        };
        if r.is_ok() {
            self.kind = None;
        }
        r
    }

    /// Abort the upload now. On failure, returns what is left behind.
    pub(crate) async fn abort(&mut self) -> Result<(), OrphanedUpload> {
        let upload_id = self.upload_id();
        let r = match self.kind.take() {
            None => return Ok(()),
            Some(Kind::HighLevel(mut up)) => up.abort().await,
            Some(Kind::LowLevel { store, id }) => {
                with_retry(&self.retry, "abort multipart upload", || {
                    store.abort_multipart(&self.key, &id)
                })
                .await
            }
        };
        match r {
            // Already gone (the store dropped it, e.g. Garage when another
            // writer stored an object at the key): nothing is left behind.
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(OrphanedUpload {
                key: self.key.to_string(),
                upload_id,
                abort_error: e.to_string(),
            }),
        }
    }
}

impl Drop for OpenUpload {
    fn drop(&mut self) {
        // Cancelled mid-upload (the ingest future was dropped): abort in
        // the background, best effort. A crash leaves the same residue,
        // which a bucket lifecycle rule cleans.
        let Some(kind) = self.kind.take() else {
            return;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let key = self.key.clone();
        rt.spawn(async move {
            let r = match kind {
                Kind::HighLevel(mut up) => up.abort().await,
                Kind::LowLevel { store, id } => store.abort_multipart(&key, &id).await,
            };
            if let Err(e) = r {
                tracing::warn!(%key, error = %e, "could not abort a cancelled multipart upload");
            }
        });
    }
}

/// Abort an upload reported by [`IngestError::orphaned_upload`](crate::IngestError::orphaned_upload),
/// once the store is reachable again. Needs the upload id, which stores
/// reached through the low-level multipart interface report.
pub async fn abort_orphan(
    store: &IngestStore,
    orphan: &OrphanedUpload,
) -> Result<(), object_store::Error> {
    let (Some(parts), Some(id)) = (store.multipart_store(), orphan.upload_id.as_ref()) else {
        return Err(object_store::Error::NotSupported {
            source: format!(
                "cannot abort the orphaned upload for {}: the store has no low-level multipart interface or the upload id is unknown",
                orphan.key
            )
            .into(),
        });
    };
    let key =
        Path::parse(&orphan.key).map_err(|e| object_store::Error::InvalidPath { source: e })?;
    parts.abort_multipart(&key, id).await
}
