//! [`IngestStore`]: the object store an ingest writes to, with what the
//! pipeline needs to know about it.
//!
//! `object_store`'s `dyn ObjectStore` hides two things the pipeline needs:
//! the low-level multipart interface (`MultipartStore`), which lets one
//! failed part be resent under its own part number and tells the upload id
//! (so an upload that cannot be aborted now can be aborted later), and
//! whether the store checks an SHA-256 of every byte it receives. An
//! `IngestStore` carries both. A plain `Arc<dyn ObjectStore>` converts into
//! one and still works: parts are then sent through
//! `ObjectStoreExt::put_multipart`, where only the store client's own
//! per-request retries apply.
//!
//! This module must never weaken a store's settings: stores built here
//! always send SHA-256 checksums to S3.

use std::fmt;
use std::sync::Arc;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::memory::InMemory;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{MultipartId, ObjectStore, PutPayload, PutResult};

use crate::error::StoreError;
use crate::local::LocalStore;

/// An object store as the ingest pipeline sees it. Cheap to clone.
#[derive(Clone)]
pub struct IngestStore {
    /// Every object operation goes here.
    objects: Arc<dyn ObjectStore>,
    /// The same store's low-level multipart interface, when it has one.
    parts: Option<Arc<dyn MultipartStore>>,
    /// The store verifies an SHA-256 checksum of every byte it receives
    /// (S3 with `x-amz-checksum-sha256`), so its acknowledgement confirms
    /// the bytes.
    checks_sha256: bool,
    /// The store takes multipart parts of any size (the local filesystem,
    /// memory), unlike S3 and its kin (5 MiB but the last).
    small_parts: bool,
    /// A human-readable name for logs and errors, e.g. `s3://evidence`.
    name: String,
    /// The local filesystem store, when this is one: its objects are then
    /// written by the pipeline itself (module `local`).
    local: Option<LocalStore>,
}

/// How the pipeline writes to a store: the room of the crate that does it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum StoreKind<'a> {
    /// A directory on the local filesystem: the pipeline writes the
    /// objects itself (module `local`).
    Local(&'a LocalStore),
    /// Any other store, through its API: a put, or a multipart upload
    /// (module `multipart`).
    Multipart,
}

impl fmt::Debug for IngestStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IngestStore")
            .field("name", &self.name)
            .field("multipart_store", &self.parts.is_some())
            .field("checks_sha256", &self.checks_sha256)
            .finish()
    }
}

impl From<Arc<dyn ObjectStore>> for IngestStore {
    fn from(objects: Arc<dyn ObjectStore>) -> Self {
        IngestStore::new(objects)
    }
}

impl From<&IngestStore> for IngestStore {
    fn from(s: &IngestStore) -> Self {
        s.clone()
    }
}

impl IngestStore {
    /// Any object store. Multipart uploads go through
    /// `ObjectStoreExt::put_multipart`; no store-side checksum is assumed.
    pub fn new(objects: Arc<dyn ObjectStore>) -> Self {
        let name = objects.to_string();
        // object_store's own local and in-memory stores take parts of any
        // size; anything else is assumed to have S3's minimum.
        let small_parts = name.starts_with("LocalFileSystem(") || name == "InMemory";
        IngestStore {
            objects,
            parts: None,
            checks_sha256: false,
            small_parts,
            name,
            local: None,
        }
    }

    /// A store that also offers the low-level multipart interface
    /// (`AmazonS3`, ...): failed parts are resent under their
    /// own number and unabortable uploads are reported with their id.
    pub fn with_multipart<S>(store: Arc<S>) -> Self
    where
        S: ObjectStore + MultipartStore,
    {
        let name = store.to_string();
        IngestStore {
            objects: store.clone(),
            parts: Some(store),
            checks_sha256: false,
            small_parts: false,
            name,
            local: None,
        }
    }

    /// An S3 store from `builder`, with SHA-256 checksums switched on: S3
    /// then checks every put and every part against the SHA-256 the client
    /// sends, and refuses bytes damaged on the way.
    pub fn s3(builder: AmazonS3Builder) -> Result<Self, StoreError> {
        Self::s3_with_prefix(builder, None)
    }

    fn s3_with_prefix(builder: AmazonS3Builder, prefix: Option<Path>) -> Result<Self, StoreError> {
        let bucket = builder
            .get_config_value(&AmazonS3ConfigKey::Bucket)
            .unwrap_or_default();
        // Custos deletes one object at a time (the retention sweep). Since
        // object_store 0.13 a single delete goes through `delete_stream`,
        // which on S3 sends a bulk `DeleteObjects` request by default; keep
        // the plain `DELETE /key` with its status-mapped errors instead.
        let mut builder = builder
            .with_checksum_algorithm(object_store::aws::Checksum::SHA256)
            .with_disable_bulk_delete(true);
        // The endpoint the client will use: `AWS_ENDPOINT_URL_S3` (read since
        // object_store 0.13) takes precedence over `AWS_ENDPOINT_URL`.
        let endpoint = builder
            .get_config_value(&AmazonS3ConfigKey::S3Endpoint)
            .or_else(|| builder.get_config_value(&AmazonS3ConfigKey::Endpoint));
        if endpoint.is_some_and(|e| e.starts_with("http://")) {
            // A plain-HTTP endpoint was configured on purpose (a store on
            // loopback or a private network); object_store refuses it
            // unless told.
            builder = builder.with_allow_http(true);
        }
        let s3 = Arc::new(builder.build().map_err(|source| StoreError::Config {
            url: format!("s3://{bucket}"),
            source,
        })?);
        let mut store = match prefix {
            None => IngestStore::with_multipart(s3),
            Some(prefix) => IngestStore {
                objects: Arc::new(PrefixStore::new(
                    s3.clone() as Arc<dyn ObjectStore>,
                    prefix.clone(),
                )),
                parts: Some(Arc::new(PrefixedParts { inner: s3, prefix })),
                checks_sha256: false,
                small_parts: false,
                name: String::new(),
                local: None,
            },
        };
        store.checks_sha256 = true;
        store.name = format!("s3://{bucket}");
        Ok(store)
    }

    /// A directory on the local filesystem, created if missing.
    pub fn local(dir: &std::path::Path) -> Result<Self, StoreError> {
        let local = LocalStore::open(dir)?;
        let mut store = IngestStore::new(local.objects());
        store.name = format!("file://{}", dir.display());
        store.local = Some(local);
        Ok(store)
    }

    /// A fresh in-memory store (tests, demos).
    ///
    /// Through its high-level multipart interface, as a plain
    /// `Arc<dyn ObjectStore>` would be (object_store 0.12's `InMemory`
    /// low-level `put_part` panicked when parts arrived out of order, as
    /// concurrent parts do; 0.13 fixed that, but the in-memory store keeps
    /// exercising the high-level path).
    pub fn in_memory() -> Self {
        let mut store = IngestStore::new(Arc::new(InMemory::new()));
        store.name = "memory://".into();
        store
    }

    /// A store from the `[storage] url` of the configuration:
    /// `file:///abs/dir` or `file://./rel/dir` (a directory, created if
    /// missing), `s3://bucket[/prefix]` (credentials, region and endpoint
    /// from the standard `AWS_*` environment variables, e.g.
    /// `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`), or `memory://`.
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        let bad = |reason: &str| StoreError::BadUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some(rest) = url.strip_prefix("file://") {
            if rest.is_empty() {
                return Err(bad("no directory after file://"));
            }
            // `file://./data/objects` (relative, as in the embedded default)
            // and `file:///var/lib/...` (absolute) are both accepted.
            return IngestStore::local(std::path::Path::new(rest));
        }
        if url == "memory://" || url == "memory:" {
            return Ok(IngestStore::in_memory());
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("no bucket after s3://"));
            }
            let prefix = prefix.trim_matches('/');
            let prefix = if prefix.is_empty() {
                None
            } else {
                Some(Path::parse(prefix).map_err(|e| bad(&format!("bad prefix: {e}")))?)
            };
            let builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
            return IngestStore::s3_with_prefix(builder, prefix);
        }
        Err(bad("expected file://, s3:// or memory://"))
    }

    /// The store for every other object operation (get, head, list).
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.objects
    }

    /// The low-level multipart interface, when the store has one.
    pub fn multipart_store(&self) -> Option<&Arc<dyn MultipartStore>> {
        self.parts.as_ref()
    }

    /// Whether the store checks an SHA-256 of every byte it receives.
    pub fn checks_sha256(&self) -> bool {
        self.checks_sha256
    }

    /// Declare that the store checks SHA-256 checksums of what it receives
    /// (an S3 store built by hand with `Checksum::SHA256`). Only then can
    /// [`VerifyMode::TrustStoreChecksum`](crate::VerifyMode) be used.
    pub fn assume_store_checks_sha256(mut self, yes: bool) -> Self {
        self.checks_sha256 = yes;
        self
    }

    /// Whether the store takes multipart parts of any size. The pipeline
    /// then uses small parts (written while still in cache) whatever
    /// `part_size` says; S3-like stores get `part_size` exactly.
    pub fn accepts_small_parts(&self) -> bool {
        self.small_parts
    }

    /// Which of the pipeline's rooms writes to this store: module `local`
    /// for stores made by [`IngestStore::local`], module `multipart` for
    /// every other.
    pub(crate) fn kind(&self) -> StoreKind<'_> {
        match &self.local {
            Some(local) => StoreKind::Local(local),
            None => StoreKind::Multipart,
        }
    }

    /// A name for logs, e.g. `s3://evidence` or `file:///var/lib/custos`.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The low-level multipart interface of a store seen under a key prefix,
/// the counterpart of `PrefixStore` (which only wraps `ObjectStore`).
#[derive(Debug)]
struct PrefixedParts<S> {
    inner: Arc<S>,
    prefix: Path,
}

impl<S> PrefixedParts<S> {
    fn full(&self, path: &Path) -> Path {
        self.prefix.parts().chain(path.parts()).collect()
    }
}

// `MultipartStore` is declared with `async_trait`; implementing it needs the
// same macro.
#[async_trait::async_trait]
impl<S: MultipartStore> MultipartStore for PrefixedParts<S> {
    async fn create_multipart(&self, path: &Path) -> object_store::Result<MultipartId> {
        self.inner.create_multipart(&self.full(path)).await
    }

    async fn put_part(
        &self,
        path: &Path,
        id: &MultipartId,
        part_idx: usize,
        data: PutPayload,
    ) -> object_store::Result<PartId> {
        self.inner
            .put_part(&self.full(path), id, part_idx, data)
            .await
    }

    async fn complete_multipart(
        &self,
        path: &Path,
        id: &MultipartId,
        parts: Vec<PartId>,
    ) -> object_store::Result<PutResult> {
        self.inner
            .complete_multipart(&self.full(path), id, parts)
            .await
    }

    async fn abort_multipart(&self, path: &Path, id: &MultipartId) -> object_store::Result<()> {
        self.inner.abort_multipart(&self.full(path), id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().join("objects").display());
        let s = IngestStore::from_url(&url).unwrap();
        assert!(dir.path().join("objects").is_dir());
        assert!(s.accepts_small_parts());
        assert!(IngestStore::in_memory().accepts_small_parts());
        assert!(s.multipart_store().is_none());
        assert!(!s.checks_sha256());
        assert_eq!(
            IngestStore::from_url("memory://").unwrap().name(),
            "memory://"
        );
        for bad in ["ftp://x", "file://", "s3://", "s3:///x"] {
            assert!(
                matches!(IngestStore::from_url(bad), Err(StoreError::BadUrl { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn s3_url_with_prefix_builds() {
        let b = AmazonS3Builder::new()
            .with_bucket_name("evidence")
            .with_region("garage")
            .with_endpoint("http://127.0.0.1:1")
            .with_access_key_id("k")
            .with_secret_access_key("s");
        let s = IngestStore::s3_with_prefix(b, Some(Path::from("site/a"))).unwrap();
        assert!(s.checks_sha256());
        assert!(!s.accepts_small_parts());
        assert_eq!(s.name(), "s3://evidence");
        let p = PrefixedParts {
            inner: Arc::new(InMemory::new()),
            prefix: Path::from("site/a"),
        };
        assert_eq!(p.full(&Path::from("x/y.mp4")).as_ref(), "site/a/x/y.mp4");
    }
}
