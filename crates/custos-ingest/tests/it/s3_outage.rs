//! The S3 server dies mid-upload. Killed for good: a clear error, no
//! partial object, the orphaned upload named and abortable, and a retry
//! after it returns completes. Killed and back within the retry budget:
//! the failed parts are resent from their buffers and the ingest succeeds
//! without reading the source twice.

use std::sync::atomic::Ordering;
use std::time::Duration;

use custos_core::digest::Digest;
use custos_ingest::object_store::path::Path;
use custos_ingest::{
    abort_orphan, ingest_segment, verify_object, IngestError, NoProgress, Progress, RetryPolicy,
    VerifyMode,
};

use crate::util::{
    data, garage, garage_store, small_parts, stored, unfinished_uploads, TestSource,
};

const PART: usize = 64 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garage_killed_mid_upload_fails_cleanly_and_a_retry_completes() {
    let mut g = garage();
    let store = garage_store(&g);
    let key = Path::from("outage/segment.mp4");
    let body = data(PART * 40, 21);
    let mut opts = small_parts(PART);
    opts.retry = RetryPolicy::new(2, Duration::from_millis(50), Duration::from_millis(100));

    let (tx, mut rx) = tokio::sync::watch::channel(Progress::default());
    let source = TestSource::new(body.clone()).slow(PART / 2, Duration::from_millis(10));
    let task = {
        let (store, key, opts) = (store.clone(), key.clone(), opts.clone());
        tokio::spawn(async move { ingest_segment(source, &store, &key, &opts, &tx).await })
    };
    rx.wait_for(|p| p.stored >= 3 * PART as u64)
        .await
        .expect("the ingest ended before Garage was stopped");
    g.stop();

    let err = task.await.unwrap().expect_err("the store died mid-upload");
    let msg = err.to_string();
    assert!(matches!(err, IngestError::Store { .. }), "{msg}");
    assert!(msg.contains(key.as_ref()), "{msg}");
    assert!(err.is_retryable(), "{msg}");
    // The abort could not reach the dead server: the upload is named.
    let orphan = err.orphaned_upload().expect("an orphaned upload").clone();
    assert_eq!(orphan.key, key.as_ref());
    assert!(orphan.upload_id.is_some());

    g.start_again().unwrap();
    assert_eq!(stored(&store, &key).await, None, "partial object visible");
    assert_eq!(unfinished_uploads(&g), 1);
    abort_orphan(&store, &orphan).await.unwrap();
    assert_eq!(unfinished_uploads(&g), 0);

    let out = ingest_segment(&body[..], &store, &key, &opts, &NoProgress)
        .await
        .unwrap();
    assert_eq!(out.digests.sha256, Digest::sha256(&body));
    assert_eq!(stored(&store, &key).await.as_deref(), Some(&body[..]));
    verify_object(&store, &key, &out.digests, VerifyMode::ReadBack)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garage_back_within_the_retry_budget_resends_parts_from_their_buffers() {
    let g = garage();
    let store = garage_store(&g);
    let key = Path::from("blip/segment.mp4");
    let body = data(PART * 24, 22);
    let mut opts = small_parts(PART);
    opts.retry = RetryPolicy::new(10, Duration::from_millis(200), Duration::from_secs(1));

    let (tx, mut rx) = tokio::sync::watch::channel(Progress::default());
    let source = TestSource::new(body.clone()).slow(PART / 2, Duration::from_millis(10));
    let served = source.served.clone();
    let task = {
        let (store, key, opts) = (store.clone(), key.clone(), opts.clone());
        tokio::spawn(async move { ingest_segment(source, &store, &key, &opts, &tx).await })
    };
    rx.wait_for(|p| p.stored >= 3 * PART as u64)
        .await
        .expect("the ingest ended before Garage was stopped");
    let g = tokio::task::spawn_blocking(move || {
        let mut g = g;
        g.stop();
        std::thread::sleep(Duration::from_millis(700));
        g.start_again().unwrap();
        g
    })
    .await
    .unwrap();

    let out = task.await.unwrap().expect("the retries outlast the outage");
    // The outage really happened mid-upload: the ingest waited it out.
    assert!(
        out.timings.total >= Duration::from_millis(700),
        "{:?}",
        out.timings
    );
    assert_eq!(out.digests.sha256, Digest::sha256(&body));
    assert_eq!(
        served.load(Ordering::SeqCst),
        body.len() as u64,
        "source read twice"
    );
    assert_eq!(stored(&store, &key).await.as_deref(), Some(&body[..]));
    assert_eq!(unfinished_uploads(&g), 0);
}
