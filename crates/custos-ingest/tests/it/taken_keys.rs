//! Invariant 2: a key, once written, is never written again with other
//! bytes, on any store, including Garage, which accepts
//! `If-None-Match: *` and overwrites anyway. The same bytes again are an
//! idempotent success.

use std::sync::atomic::Ordering;
use std::time::Duration;

use custos_ingest::object_store::path::Path;
use custos_ingest::object_store::{ObjectStoreExt, PutPayload};
use custos_ingest::{
    ingest_segment, IngestError, IngestStore, KeyTakenReason, NoProgress, Progress,
};

use crate::util::{
    data, garage, garage_store, small_parts, stored, unfinished_uploads, TestSource,
};

const PART: usize = 64 * 1024;

async fn taken_keys_are_refused(store: &IngestStore, label: &str) {
    let opts = small_parts(PART);
    for size in [100, PART * 3 + 1] {
        let key = Path::from(format!("{label}/taken-{size}.mp4"));
        let original = data(size, 1);
        ingest_segment(&original[..], store, &key, &opts, &NoProgress)
            .await
            .unwrap();

        // Same size, other bytes.
        let other = data(size, 2);
        let err = ingest_segment(&other[..], store, &key, &opts, &NoProgress)
            .await
            .unwrap_err();
        assert!(
            matches!(
                &err,
                IngestError::KeyTaken {
                    reason: KeyTakenReason::Content { .. },
                    ..
                }
            ),
            "{label}: {err}"
        );
        assert!(err.to_string().contains("refusing to overwrite"), "{err}");
        assert!(!err.is_retryable());
        // Other size.
        let longer = data(size + 1, 3);
        let err = ingest_segment(&longer[..], store, &key, &opts, &NoProgress)
            .await
            .unwrap_err();
        assert!(
            matches!(
                &err,
                IngestError::KeyTaken {
                    reason: KeyTakenReason::Size { .. },
                    ..
                }
            ),
            "{label}: {err}"
        );
        assert_eq!(
            stored(store, &key).await.as_deref(),
            Some(&original[..]),
            "{label}: object changed"
        );

        // The same bytes again: an idempotent retry.
        let again = ingest_segment(&original[..], store, &key, &opts, &NoProgress)
            .await
            .unwrap();
        assert!(again.already_present, "{label}");
        assert_eq!(again.size, size as u64);
        assert_eq!(
            again.digests.sha256,
            custos_core::digest::Digest::sha256(&original)
        );
        assert!(again.store_receipt().is_none());

        // A known size that differs is refused without reading the source.
        let source = TestSource::new(data(size + 5, 4));
        let served = source.served.clone();
        let mut sized = opts.clone();
        sized.expected_size = Some(size as u64 + 5);
        let err = ingest_segment(source, store, &key, &sized, &NoProgress)
            .await
            .unwrap_err();
        assert!(matches!(err, IngestError::KeyTaken { .. }), "{err}");
        assert_eq!(served.load(Ordering::SeqCst), 0);
        assert_eq!(stored(store, &key).await.as_deref(), Some(&original[..]));
    }
}

#[tokio::test]
async fn taken_keys_are_refused_in_the_local_store() {
    let dir = tempfile::tempdir().unwrap();
    taken_keys_are_refused(&IngestStore::local(dir.path()).unwrap(), "local").await;
}

#[tokio::test]
async fn taken_keys_are_refused_in_memory() {
    taken_keys_are_refused(&IngestStore::in_memory(), "memory").await;
}

#[tokio::test]
async fn taken_keys_are_refused_in_garage() {
    let g = garage();
    let store = garage_store(&g);
    taken_keys_are_refused(&store, "s3").await;
    assert_eq!(unfinished_uploads(&g), 0);
}

/// Another writer stores an object at the key while a multipart upload is
/// under way: the upload is not completed over it (step 4).
async fn a_key_taken_during_the_upload_is_not_overwritten(store: &IngestStore) {
    let key = Path::from("race/segment.mp4");
    let body = data(PART * 10, 8);
    let (tx, mut rx) = tokio::sync::watch::channel(Progress::default());
    let source = TestSource::new(body).slow(PART / 4, Duration::from_millis(2));
    let opts = small_parts(PART);
    let ingest = ingest_segment(source, store, &key, &opts, &tx);
    tokio::pin!(ingest);
    tokio::select! {
        r = &mut ingest => panic!("ingest finished too early: {r:?}"),
        _ = rx.wait_for(|p| p.stored >= 2 * PART as u64) => {}
    }
    let intruder = data(777, 9);
    store
        .object_store()
        .put(&key, PutPayload::from(intruder.clone()))
        .await
        .unwrap();
    let err = ingest.await.unwrap_err();
    assert!(matches!(err, IngestError::KeyTaken { .. }), "{err}");
    assert!(err.orphaned_upload().is_none());
    assert_eq!(stored(store, &key).await.as_deref(), Some(&intruder[..]));
}

#[tokio::test]
async fn a_key_taken_during_the_upload_is_not_overwritten_locally() {
    let dir = tempfile::tempdir().unwrap();
    let store = IngestStore::local(dir.path()).unwrap();
    a_key_taken_during_the_upload_is_not_overwritten(&store).await;
}

#[tokio::test]
async fn a_key_taken_during_the_upload_is_not_overwritten_in_garage() {
    let g = garage();
    a_key_taken_during_the_upload_is_not_overwritten(&garage_store(&g)).await;
    assert_eq!(unfinished_uploads(&g), 0);
}

/// A FIFO at `path`, so that a test decides when the "file" being
/// ingested yields its bytes.
fn fifo(path: &std::path::Path) {
    let ok = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(ok.success(), "mkfifo {}", path.display());
}

/// A FIFO at `path` and a thread that opens it for writing and writes
/// `head`; joined, it hands back the open writer for the rest.
fn fifo_fed(path: &std::path::Path, head: Vec<u8>) -> std::thread::JoinHandle<std::fs::File> {
    use std::io::Write as _;
    fifo(path);
    let path = path.to_owned();
    std::thread::spawn(move || {
        let mut w = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        w.write_all(&head).unwrap();
        w
    })
}

/// Wait (up to 10 s) until `dir` holds nothing.
async fn until_empty(dir: &std::path::Path) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = names(dir);
        if left.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "left behind: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Names in `dir`, sorted.
fn names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// A local file written directly into the local store (no multipart
/// upload): an object that appears at the key meanwhile is not replaced,
/// the ingest compares and refuses, and no staging file is left.
#[tokio::test]
async fn a_key_taken_while_a_local_file_is_written_is_not_overwritten() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let store = IngestStore::local(&dir.path().join("objects")).unwrap();
    let key = Path::from("race/direct.mp4");
    let src = dir.path().join("segment.fifo");
    let body = data(3 * 1024 * 1024 + 17, 21);
    let (tx, mut rx) = tokio::sync::watch::channel(Progress::default());
    let feeder = fifo_fed(&src, body[..2 * 1024 * 1024].to_vec());
    let opts = small_parts(PART);
    let ingest = custos_ingest::ingest_file(&src, &store, &key, &opts, &tx);
    tokio::pin!(ingest);
    tokio::select! {
        r = &mut ingest => panic!("ingest finished too early: {r:?}"),
        _ = rx.wait_for(|p| p.read >= 1024 * 1024) => {}
    }
    let intruder = data(777, 22);
    store
        .object_store()
        .put(&key, PutPayload::from(intruder.clone()))
        .await
        .unwrap();
    let mut w = feeder.join().unwrap();
    w.write_all(&body[2 * 1024 * 1024..]).unwrap();
    drop(w);
    let err = ingest.await.unwrap_err();
    assert!(
        matches!(
            &err,
            IngestError::KeyTaken {
                reason: KeyTakenReason::Size { .. },
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(stored(&store, &key).await.as_deref(), Some(&intruder[..]));
    assert_eq!(
        names(&dir.path().join("objects/race")),
        vec!["direct.mp4".to_owned()]
    );
}

/// An ingest of a local file abandoned half-way (its future dropped, as
/// when a docking ends) leaves nothing at the key and no staging file.
#[tokio::test]
async fn an_abandoned_local_file_ingest_leaves_nothing() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let store = IngestStore::local(&dir.path().join("objects")).unwrap();
    let key = Path::from("cancel/direct.mp4");
    let src = dir.path().join("segment.fifo");
    let body = data(4 * 1024 * 1024, 23);
    let (tx, mut rx) = tokio::sync::watch::channel(Progress::default());
    let feeder = fifo_fed(&src, body[..2 * 1024 * 1024].to_vec());
    {
        let opts = small_parts(PART);
        let ingest = custos_ingest::ingest_file(&src, &store, &key, &opts, &tx);
        tokio::pin!(ingest);
        tokio::select! {
            r = &mut ingest => panic!("ingest finished too early: {r:?}"),
            _ = rx.wait_for(|p| p.stored >= 1024 * 1024) => {}
        }
        // Dropped here, mid-write.
    }
    // The source now ends: the abandoned threads must not complete the
    // object anyway. (The reading thread may have stopped and closed the
    // pipe already: a broken pipe here is that.)
    let mut w = feeder.join().unwrap();
    let _ = w.write_all(&body[2 * 1024 * 1024..]);
    drop(w);
    until_empty(&dir.path().join("objects/cancel")).await;
    assert_eq!(stored(&store, &key).await, None);
}

/// A long stream (not a file) into the local store, abandoned half-way:
/// nothing at the key, no staging file; and run to the end, its object
/// appears whole under the key with no staging file beside it.
#[tokio::test]
async fn a_stream_into_the_local_store_appears_only_complete() {
    let dir = tempfile::tempdir().unwrap();
    let store = IngestStore::local(&dir.path().join("objects")).unwrap();
    let key = Path::from("stream/segment.mp4");
    let body = data(PART * 10 + 5, 24);
    let opts = small_parts(PART);
    {
        let (tx, mut rx) = tokio::sync::watch::channel(Progress::default());
        let source = TestSource::new(body.clone()).slow(PART / 4, Duration::from_millis(2));
        let ingest = ingest_segment(source, &store, &key, &opts, &tx);
        tokio::pin!(ingest);
        tokio::select! {
            r = &mut ingest => panic!("ingest finished too early: {r:?}"),
            _ = rx.wait_for(|p| p.stored >= 2 * PART as u64) => {}
        }
        // Dropped here, mid-write.
    }
    until_empty(&dir.path().join("objects/stream")).await;
    let out = ingest_segment(&body[..], &store, &key, &opts, &NoProgress)
        .await
        .unwrap();
    assert_eq!(out.parts, 11);
    assert_eq!(stored(&store, &key).await.as_deref(), Some(&body[..]));
    assert_eq!(
        names(&dir.path().join("objects/stream")),
        vec!["segment.mp4".to_owned()]
    );
}
