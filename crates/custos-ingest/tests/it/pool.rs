//! Several segments at once, never more than the pool's concurrency.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use custos_core::digest::Digest;
use custos_ingest::object_store::path::Path;
use custos_ingest::{IngestPool, IngestStore, Progress, ProgressSink};

use crate::util::{data, small_parts, stored, TestSource};

const PART: usize = 64 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_bounds_concurrent_segments_and_keeps_input_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = IngestStore::local(dir.path()).unwrap();
    let pool = IngestPool::new(&store, small_parts(PART), 2);
    let now = Arc::new(AtomicUsize::new(0));
    let max = Arc::new(AtomicUsize::new(0));
    let bodies: Vec<Vec<u8>> = (0..5)
        .map(|i| data(PART * 2 + i * 1000, i as u64))
        .collect();
    let segments: Vec<(TestSource, Path)> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let s = TestSource::new(b.clone())
                .slow(PART / 4, Duration::from_millis(3))
                .tracked(now.clone(), max.clone());
            (s, Path::from(format!("pool/{i}.mp4")))
        })
        .collect();
    let results = pool.ingest_all(segments).await;
    assert_eq!(results.len(), 5);
    for (i, r) in results.into_iter().enumerate() {
        let out = r.unwrap();
        assert_eq!(out.key, Path::from(format!("pool/{i}.mp4")));
        assert_eq!(out.digests.sha256, Digest::sha256(&bodies[i]));
        assert_eq!(
            stored(&store, &out.key).await.as_deref(),
            Some(&bodies[i][..])
        );
    }
    let peak = max.load(Ordering::SeqCst);
    assert_eq!(peak, 2, "at most 2 segments at once, and they did overlap");
    assert_eq!(pool.running(), 0);
}

#[tokio::test]
async fn spawned_ingests_report_progress_through_a_watch_channel() {
    let pool = IngestPool::new(IngestStore::in_memory(), small_parts(PART), 1);
    let body = data(PART * 3 + 1, 5);
    let (tx, rx) = tokio::sync::watch::channel(Progress::default());
    let sink: Arc<dyn ProgressSink> = Arc::new(tx);
    let mut opts = small_parts(PART);
    opts.expected_size = Some(body.len() as u64);
    let h = pool.spawn(
        TestSource::new(body.clone()),
        Path::from("p/1.mp4"),
        Some(opts),
        sink,
    );
    let out = h.await.unwrap().unwrap();
    assert_eq!(out.size, body.len() as u64);
    let last = *rx.borrow();
    assert!(last.finished);
    assert_eq!(last.done(), body.len() as u64);
    assert_eq!(last.total, Some(body.len() as u64));
}
