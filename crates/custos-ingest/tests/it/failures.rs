//! The source fails, a part fails transiently, the ingest is cancelled,
//! the options are wrong: a clear error and nothing visible at the key, or
//! a retry from the kept buffer that never reads the source again.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use custos_core::digest::Digest;
use custos_ingest::object_store::memory::InMemory;
use custos_ingest::object_store::multipart::{MultipartStore, PartId};
use custos_ingest::object_store::path::Path;
use custos_ingest::object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartId, MultipartUpload, ObjectMeta,
    ObjectStore, ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult,
    RenameOptions,
};
use custos_ingest::{ingest_segment, IngestError, IngestStore, NoProgress, Progress};
use futures::stream::BoxStream;

use crate::util::{
    data, garage, garage_store, small_parts, stored, unfinished_uploads,
    wait_no_unfinished_uploads, TestSource,
};

const PART: usize = 64 * 1024;

async fn source_failure_leaves_nothing(store: &IngestStore, label: &str) {
    // Fails inside the first part (single-put path) and after several parts
    // (multipart path).
    for (size, fail_at) in [(PART / 2, 1000), (PART * 6, PART * 3 + 5)] {
        let key = Path::from(format!("{label}/fails-at-{fail_at}.mp4"));
        let source = TestSource::new(data(size, 3))
            .slow(4096, Duration::ZERO)
            .failing_at(fail_at);
        let err = ingest_segment(source, store, &key, &small_parts(PART), &NoProgress)
            .await
            .expect_err("a failing source must fail the ingest");
        match &err {
            IngestError::Source { read, orphan, .. } => {
                assert_eq!(*read, fail_at as u64, "{label}: {err}");
                assert!(orphan.is_none(), "{label}: abort must succeed: {err}");
            }
            other => panic!("{label}: expected a source error, got {other}"),
        }
        let msg = err.to_string();
        assert!(
            msg.contains(key.as_ref()) && msg.contains("recorder unplugged"),
            "{msg}"
        );
        assert!(err.is_retryable());
        assert_eq!(
            stored(store, &key).await,
            None,
            "{label}: partial object visible"
        );
    }
}

#[tokio::test]
async fn a_failing_source_leaves_no_object_in_the_local_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = IngestStore::local(dir.path()).unwrap();
    source_failure_leaves_nothing(&store, "local").await;
    // No staging file of the aborted upload is left behind either.
    let leftovers: Vec<_> = walk(dir.path());
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test]
async fn a_failing_source_leaves_no_object_and_no_upload_in_garage() {
    let g = garage();
    let store = garage_store(&g);
    source_failure_leaves_nothing(&store, "s3").await;
    assert_eq!(unfinished_uploads(&g), 0);
}

#[tokio::test]
async fn a_cancelled_ingest_aborts_its_upload_in_garage() {
    let g = garage();
    let store = garage_store(&g);
    let key = Path::from("cancelled/segment.mp4");
    let (tx, mut rx) = tokio::sync::watch::channel(Progress::default());
    let source = TestSource::new(data(PART * 20, 5)).slow(PART / 2, Duration::from_millis(20));
    let opts = small_parts(PART);
    // Boxed, so that dropping it below really drops the future.
    let mut ingest = Box::pin(ingest_segment(source, &store, &key, &opts, &tx));
    tokio::select! {
        r = &mut ingest => panic!("ingest finished before it was cancelled: {r:?}"),
        _ = rx.wait_for(|p| p.stored >= 3 * PART as u64) => {}
    }
    assert_eq!(unfinished_uploads(&g), 1, "the upload is under way");
    drop(ingest);
    wait_no_unfinished_uploads(&g).await;
    assert_eq!(stored(&store, &key).await, None);
}

#[tokio::test]
async fn bad_options_are_refused_before_reading() {
    let store = IngestStore::in_memory();
    let source = TestSource::new(data(10, 1));
    let served = source.served.clone();
    let mut opts = custos_ingest::IngestOptions::default();
    opts.part_size = 1024 * 1024; // below S3's 5 MiB, without the test switch
    let err = ingest_segment(source, &store, &Path::from("k"), &opts, &NoProgress)
        .await
        .unwrap_err();
    assert!(matches!(err, IngestError::InvalidOptions(_)), "{err}");
    assert!(err.to_string().contains("5242880"), "{err}");
    assert_eq!(served.load(Ordering::SeqCst), 0);
}

/// An in-memory store whose multipart interface fails the first
/// `failures` attempts at one part with a transient error, delays every
/// part a little, and records attempts and concurrency. It keeps the parts
/// itself (object_store 0.12's `InMemory` low-level `put_part` could not
/// take parts out of order; keeping them here also lets completion check
/// the part list) and stores the object with one put on completion. Every
/// `ObjectStore` method passes straight through to the inner store.
#[derive(Debug)]
struct Flaky {
    inner: InMemory,
    uploads: Mutex<HashMap<String, BTreeMap<usize, Bytes>>>,
    next_upload: AtomicUsize,
    fail_part: usize,
    failures: AtomicUsize,
    attempts: Mutex<HashMap<usize, usize>>,
    now: AtomicUsize,
    max: AtomicUsize,
}

impl fmt::Display for Flaky {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Flaky({})", self.inner)
    }
}

#[async_trait::async_trait]
impl MultipartStore for Flaky {
    async fn create_multipart(
        &self,
        _path: &Path,
    ) -> custos_ingest::object_store::Result<MultipartId> {
        let id = self.next_upload.fetch_add(1, Ordering::SeqCst).to_string();
        self.uploads
            .lock()
            .unwrap()
            .insert(id.clone(), BTreeMap::new());
        Ok(id)
    }
    async fn put_part(
        &self,
        path: &Path,
        id: &MultipartId,
        part_idx: usize,
        data: PutPayload,
    ) -> custos_ingest::object_store::Result<PartId> {
        *self.attempts.lock().unwrap().entry(part_idx).or_default() += 1;
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(n, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(5)).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        if part_idx == self.fail_part
            && self
                .failures
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |f| f.checked_sub(1))
                .is_ok()
        {
            return Err(custos_ingest::object_store::Error::Generic {
                store: "Flaky",
                source: "connection reset by peer (test)".into(),
            });
        }
        let _ = path;
        let bytes: Bytes = data.into();
        let mut uploads = self.uploads.lock().unwrap();
        let parts =
            uploads
                .get_mut(id)
                .ok_or_else(|| custos_ingest::object_store::Error::NotFound {
                    path: id.clone(),
                    source: "no such upload".into(),
                })?;
        parts.insert(part_idx, bytes);
        Ok(PartId {
            content_id: part_idx.to_string(),
        })
    }
    async fn complete_multipart(
        &self,
        path: &Path,
        id: &MultipartId,
        parts: Vec<PartId>,
    ) -> custos_ingest::object_store::Result<PutResult> {
        let stored = self.uploads.lock().unwrap().remove(id).unwrap_or_default();
        assert_eq!(parts.len(), stored.len(), "completed with a part missing");
        let mut all = Vec::new();
        for (i, (p, (idx, bytes))) in parts.iter().zip(stored).enumerate() {
            assert_eq!(
                (i, p.content_id.clone()),
                (idx, idx.to_string()),
                "parts out of order"
            );
            all.extend_from_slice(&bytes);
        }
        self.inner.put(path, all.into()).await
    }
    async fn abort_multipart(
        &self,
        _path: &Path,
        id: &MultipartId,
    ) -> custos_ingest::object_store::Result<()> {
        self.uploads.lock().unwrap().remove(id);
        Ok(())
    }
}

#[async_trait::async_trait]
#[deny(clippy::missing_trait_methods)]
impl ObjectStore for Flaky {
    async fn put_opts(
        &self,
        l: &Path,
        p: PutPayload,
        o: PutOptions,
    ) -> custos_ingest::object_store::Result<PutResult> {
        self.inner.put_opts(l, p, o).await
    }
    async fn put_multipart_opts(
        &self,
        l: &Path,
        o: PutMultipartOptions,
    ) -> custos_ingest::object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(l, o).await
    }
    async fn get_opts(
        &self,
        l: &Path,
        o: GetOptions,
    ) -> custos_ingest::object_store::Result<GetResult> {
        self.inner.get_opts(l, o).await
    }
    async fn get_ranges(
        &self,
        l: &Path,
        r: &[Range<u64>],
    ) -> custos_ingest::object_store::Result<Vec<Bytes>> {
        self.inner.get_ranges(l, r).await
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, custos_ingest::object_store::Result<Path>>,
    ) -> BoxStream<'static, custos_ingest::object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }
    fn list(
        &self,
        p: Option<&Path>,
    ) -> BoxStream<'static, custos_ingest::object_store::Result<ObjectMeta>> {
        self.inner.list(p)
    }
    fn list_with_offset(
        &self,
        p: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, custos_ingest::object_store::Result<ObjectMeta>> {
        self.inner.list_with_offset(p, offset)
    }
    async fn list_with_delimiter(
        &self,
        p: Option<&Path>,
    ) -> custos_ingest::object_store::Result<ListResult> {
        self.inner.list_with_delimiter(p).await
    }
    async fn copy_opts(
        &self,
        f: &Path,
        t: &Path,
        o: CopyOptions,
    ) -> custos_ingest::object_store::Result<()> {
        self.inner.copy_opts(f, t, o).await
    }
    async fn rename_opts(
        &self,
        f: &Path,
        t: &Path,
        o: RenameOptions,
    ) -> custos_ingest::object_store::Result<()> {
        self.inner.rename_opts(f, t, o).await
    }
}

fn flaky(fail_part: usize, failures: usize) -> Arc<Flaky> {
    Arc::new(Flaky {
        inner: InMemory::new(),
        uploads: Mutex::new(HashMap::new()),
        next_upload: AtomicUsize::new(1),
        fail_part,
        failures: AtomicUsize::new(failures),
        attempts: Mutex::new(HashMap::new()),
        now: AtomicUsize::new(0),
        max: AtomicUsize::new(0),
    })
}

#[tokio::test]
async fn a_transient_part_failure_is_resent_from_the_buffer_not_the_source() {
    let store = flaky(2, 2);
    let ingest_store = IngestStore::with_multipart(store.clone());
    let body = data(PART * 8 + 3, 11);
    let source = TestSource::new(body.clone());
    let served = source.served.clone();
    let mut opts = small_parts(PART);
    opts.parts_in_flight = 3;
    let key = Path::from("flaky/segment.mp4");
    let out = ingest_segment(source, &ingest_store, &key, &opts, &NoProgress)
        .await
        .unwrap();
    assert_eq!(out.parts, 9);
    assert_eq!(out.digests.sha256, Digest::sha256(&body));
    assert_eq!(
        stored(&ingest_store, &key).await.as_deref(),
        Some(&body[..])
    );
    // Read once: the source handed out each byte exactly once.
    assert_eq!(served.load(Ordering::SeqCst), body.len() as u64);
    let attempts = store.attempts.lock().unwrap().clone();
    assert_eq!(attempts[&2], 3, "part 3 failed twice, then succeeded");
    assert!(
        attempts.iter().all(|(i, n)| *i == 2 || *n == 1),
        "{attempts:?}"
    );
    // Never more parts on the wire than buffers in flight.
    let max = store.max.load(Ordering::SeqCst);
    assert!(max <= opts.parts_in_flight, "{max} parts in flight");
    assert!(max >= 2, "parts should overlap, saw {max}");
}

#[tokio::test]
async fn a_part_that_keeps_failing_aborts_the_upload_with_a_clear_error() {
    let store = flaky(1, usize::MAX);
    let ingest_store = IngestStore::with_multipart(store.clone());
    let key = Path::from("flaky/never.mp4");
    let opts = small_parts(PART);
    let err = ingest_segment(
        &data(PART * 4, 2)[..],
        &ingest_store,
        &key,
        &opts,
        &NoProgress,
    )
    .await
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("upload part 2") && msg.contains(key.as_ref()),
        "{msg}"
    );
    assert!(err.is_retryable());
    assert!(err.orphaned_upload().is_none());
    assert_eq!(
        store.attempts.lock().unwrap()[&1],
        opts.retry.max_attempts as usize
    );
    assert_eq!(stored(&ingest_store, &key).await, None);
    assert!(
        store.uploads.lock().unwrap().is_empty(),
        "upload not aborted"
    );
}

#[tokio::test]
async fn a_multi_chunk_part_is_resent_whole() {
    // 2.5 MiB parts are read as three chunks (1 MiB, 1 MiB, 0.5 MiB).
    let part = 5 * 512 * 1024;
    let store = flaky(1, 1);
    let ingest_store = IngestStore::with_multipart(store.clone());
    let body = data(part * 3 + 777, 12);
    let source = TestSource::new(body.clone());
    let served = source.served.clone();
    let key = Path::from("flaky/chunks.mp4");
    let out = ingest_segment(source, &ingest_store, &key, &small_parts(part), &NoProgress)
        .await
        .unwrap();
    assert_eq!(out.parts, 4);
    assert_eq!(out.digests.sha256, Digest::sha256(&body));
    assert_eq!(
        stored(&ingest_store, &key).await.as_deref(),
        Some(&body[..])
    );
    assert_eq!(served.load(Ordering::SeqCst), body.len() as u64);
    assert_eq!(store.attempts.lock().unwrap()[&1], 2);
}
