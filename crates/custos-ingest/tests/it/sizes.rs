//! Every size class lands byte-identical with the right digest: 0 B, 1 B,
//! part-1, part, part+1 and several parts, in each kind of store.

use custos_core::digest::Digest;
use custos_ingest::object_store::path::Path;
use custos_ingest::object_store::ObjectStoreExt;
use custos_ingest::{
    ingest_segment, verify_object, IngestOptions, IngestStore, NoProgress, Progress, VerifyMethod,
    VerifyMode,
};

use crate::util::{data, garage, garage_plain, garage_store, small_parts, stored, TestSource};

/// (size, parts of the multipart upload; 0 = single put)
fn classes(part: usize) -> Vec<(usize, usize)> {
    vec![
        (0, 0),
        (1, 0),
        (part - 1, 0),
        (part, 1),
        (part + 1, 2),
        (3 * part + 12_345, 4),
    ]
}

async fn check_all_sizes(store: &IngestStore, opts: &IngestOptions, label: &str) {
    let part = opts.part_size;
    for (i, (size, parts)) in classes(part).into_iter().enumerate() {
        let body = data(size, i as u64 + 1);
        let key = Path::from(format!("{label}/size-{size}.mp4"));
        let reports = std::sync::Mutex::new(Vec::<Progress>::new());
        let sink = |p: Progress| reports.lock().unwrap().push(p);
        let source = TestSource::new(body.clone()).slow(7_919, std::time::Duration::ZERO);
        let out = ingest_segment(source, store, &key, opts, &sink)
            .await
            .unwrap_or_else(|e| panic!("{label}: ingest of {size} bytes failed: {e}"));
        assert_eq!(out.size, size as u64, "{label} size {size}");
        assert_eq!(
            out.digests.sha256,
            Digest::sha256(&body),
            "{label} size {size}"
        );
        assert_eq!(out.parts, parts, "{label} size {size}: parts");
        assert!(!out.already_present);
        assert_eq!(
            stored(store, &key).await.as_deref(),
            Some(&body[..]),
            "{label}: stored bytes of size {size}"
        );
        let v = verify_object(store, &key, &out.digests, VerifyMode::ReadBack)
            .await
            .unwrap_or_else(|e| panic!("{label}: verify of {size} bytes failed: {e}"));
        assert_eq!(v.method, VerifyMethod::ReadBack);
        assert_eq!(v.size, size as u64);

        let reports = reports.into_inner().unwrap();
        let last = reports.last().expect("at least the final report");
        assert!(last.finished);
        assert_eq!(
            (last.read, last.hashed, last.stored),
            (size as u64, size as u64, size as u64)
        );
        assert!(
            reports
                .windows(2)
                .all(|w| w[0].read <= w[1].read && w[0].stored <= w[1].stored),
            "{label}: progress went backwards: {reports:?}"
        );
    }
}

const PART: usize = 64 * 1024;

#[tokio::test]
async fn every_size_class_into_the_local_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = IngestStore::local(dir.path()).unwrap();
    check_all_sizes(&store, &small_parts(PART), "local").await;
    // Nothing but the objects is left in the directory (no staging files).
    let mut names: Vec<_> = std::fs::read_dir(dir.path().join("local"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 6, "{names:?}");
    assert!(names.iter().all(|n| !n.contains('#')), "{names:?}");
}

#[tokio::test]
async fn every_size_class_into_memory_with_sm3() {
    let store = IngestStore::in_memory();
    let mut opts = small_parts(PART);
    opts.with_sm3 = true;
    opts.parts_in_flight = 1;
    check_all_sizes(&store, &opts, "memory").await;
    let body = data(PART * 2 + 5, 99);
    let key = Path::from("memory/sm3.mp4");
    let out = ingest_segment(&body[..], &store, &key, &opts, &NoProgress)
        .await
        .unwrap();
    let sm3 = out.digests.sm3.expect("sm3 asked for");
    let mut h = custos_core::digest::MultiHasher::new(true).unwrap();
    h.update(&body);
    assert_eq!(Some(sm3), h.finalize().sm3);
    verify_object(&store, &key, &out.digests, VerifyMode::ReadBack)
        .await
        .unwrap();
}

#[tokio::test]
async fn every_size_class_into_garage() {
    let g = garage();
    // Low-level multipart interface, SHA-256 checksums checked by Garage.
    let store = garage_store(&g);
    check_all_sizes(&store, &small_parts(PART), "s3-checksummed").await;
    // The plain `Arc<dyn ObjectStore>` (high-level multipart interface).
    let plain: IngestStore = garage_plain(&g).into();
    check_all_sizes(&plain, &small_parts(PART), "s3-plain").await;
    // The S3 minimum part size for real, on a multipart segment.
    let body = data(custos_ingest::S3_MIN_PART_SIZE * 2 + 1, 7);
    let key = Path::from("s3-min/segment.mp4");
    let mut opts = small_parts(custos_ingest::S3_MIN_PART_SIZE);
    opts.allow_small_parts_for_tests = false;
    let out = ingest_segment(&body[..], &store, &key, &opts, &NoProgress)
        .await
        .unwrap();
    assert_eq!(out.parts, 3);
    assert!(out.store_checked_sha256);
    assert_eq!(stored(&store, &key).await.as_deref(), Some(&body[..]));
}

#[tokio::test]
async fn every_size_class_from_a_local_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = IngestStore::local(&dir.path().join("objects")).unwrap();
    let opts = small_parts(PART);
    // A local file into a local store is written directly (no multipart
    // upload: `parts` is 0), synced and linked into place.
    for (i, (size, _)) in classes(PART).into_iter().enumerate() {
        let body = data(size, 50 + i as u64);
        let file = dir.path().join(format!("seg-{size}.mp4"));
        std::fs::write(&file, &body).unwrap();
        let key = Path::from(format!("file/size-{size}.mp4"));
        let (tx, rx) = tokio::sync::watch::channel(Progress::default());
        let out = custos_ingest::ingest_file(&file, &store, &key, &opts, &tx)
            .await
            .unwrap_or_else(|e| panic!("ingest of a {size}-byte file failed: {e}"));
        assert_eq!((out.size, out.parts), (size as u64, 0));
        assert_eq!(out.digests.sha256, Digest::sha256(&body));
        assert_eq!(stored(&store, &key).await.as_deref(), Some(&body[..]));
        assert_eq!(rx.borrow().total, Some(size as u64));
        assert!(rx.borrow().finished);
        // The store's own ETag, so that a verification pinned to it works.
        let meta = store.object_store().head(&key).await.unwrap();
        assert_eq!(out.e_tag, meta.e_tag);
        verify_object(&store, &key, &out.digests, VerifyMode::ReadBack)
            .await
            .unwrap();
        // Again: the same bytes at the same key are already there.
        let again = custos_ingest::ingest_file(&file, &store, &key, &opts, &NoProgress)
            .await
            .unwrap();
        assert!(again.already_present);
    }
    // No staging file is left next to the objects.
    let mut names: Vec<_> = std::fs::read_dir(dir.path().join("objects/file"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), classes(PART).len(), "{names:?}");
    assert!(names.iter().all(|n| !n.contains('#')), "{names:?}");
    let err = custos_ingest::ingest_file(
        &dir.path().join("missing.mp4"),
        &store,
        &Path::from("file/missing.mp4"),
        &opts,
        &NoProgress,
    )
    .await
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, custos_ingest::IngestError::Source { read: 0, .. }),
        "{msg}"
    );
    assert!(
        msg.contains("missing.mp4") && msg.contains("No such file"),
        "{msg}"
    );
}

#[tokio::test]
async fn the_local_store_gets_small_parts_within_the_memory_budget() {
    // With the default 16 MiB parts, a local store is written in 1 MiB
    // parts, each while it is still in cache.
    let dir = tempfile::tempdir().unwrap();
    let store = IngestStore::local(dir.path()).unwrap();
    let body = data(3 * 1024 * 1024 + 512 * 1024, 77);
    let key = Path::from("local/default-options.mp4");
    let out = ingest_segment(
        &body[..],
        &store,
        &key,
        &IngestOptions::default(),
        &NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(out.parts, 4);
    assert_eq!(out.digests.sha256, Digest::sha256(&body));
    assert_eq!(stored(&store, &key).await.as_deref(), Some(&body[..]));
}

/// A local file with SM3 on, through each path that reads files (inline
/// hashing into the part buffers; one thread or two into the local
/// store): both digests equal one thread's, whether SHA-256 ran on a
/// thread of its own (the first SM3 stream of a process on two cores or
/// more) or not, and the read-back verification agrees.
#[tokio::test]
async fn local_files_with_sm3_agree_with_one_thread_in_every_store() {
    let g = garage();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("store")).unwrap();
    let local = IngestStore::local(&dir.path().join("store")).unwrap();
    let stores = [
        ("local", local),
        ("memory", IngestStore::in_memory()),
        ("garage", garage_store(&g)),
    ];
    let sizes = [0, 1, PART - 1, 5 * PART + 7, 3 * 1024 * 1024 + 12_345];
    for (label, store) in &stores {
        for (i, size) in sizes.into_iter().enumerate() {
            let body = data(size, 40 + i as u64);
            let src = dir.path().join(format!("{label}-{size}.mp4"));
            std::fs::write(&src, &body).unwrap();
            let mut opts = small_parts(PART);
            opts.with_sm3 = true;
            let key = Path::from(format!("{label}/sm3-{size}.mp4"));
            let out = custos_ingest::ingest_file(&src, store, &key, &opts, &NoProgress)
                .await
                .unwrap_or_else(|e| panic!("{label}: ingest of {size} bytes failed: {e}"));
            let mut one = custos_core::digest::MultiHasher::new(true).unwrap();
            one.update(&body);
            assert_eq!(out.digests, one.finalize(), "{label} size {size}");
            assert_eq!(stored(store, &key).await.as_deref(), Some(&body[..]));
            verify_object(store, &key, &out.digests, VerifyMode::ReadBack)
                .await
                .unwrap_or_else(|e| panic!("{label}: verify of {size} bytes failed: {e}"));
        }
    }
}
