//! `check_object`, the audit scrub's check of one stored object, against
//! the local store: a matching object, a missing one, one altered in place
//! (same size, other bytes) or truncated, and a key that is no path.

use custos_core::digest::{Digest, MultiHasher};
use custos_ingest::object_store::path::Path;
use custos_ingest::{
    check_object, ingest_segment, ExpectedObject, IngestOptions, IngestStore, NoProgress,
    ObjectCheck, UnreadableObject,
};

use crate::util::data;

/// A local store holding `body` at `key`, stored by the pipeline, and what
/// its manifest would say (SM3 too when `with_sm3`).
async fn stored_clip(
    dir: &std::path::Path,
    key: &str,
    body: &[u8],
    with_sm3: bool,
) -> (IngestStore, ExpectedObject) {
    let store = IngestStore::local(dir).unwrap();
    let mut opts = IngestOptions::default();
    opts.with_sm3 = with_sm3;
    let out = ingest_segment(body, &store, &Path::from(key), &opts, &NoProgress)
        .await
        .unwrap();
    let expected = ExpectedObject {
        size: out.size,
        sha256: out.digests.sha256,
        sm3: out.digests.sm3,
    };
    (store, expected)
}

#[tokio::test]
async fn a_stored_object_matches_its_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let body = data(300_000, 1);
    for with_sm3 in [false, true] {
        let key = format!("rec-1/clip-{with_sm3}.mp4");
        let (store, expected) = stored_clip(dir.path(), &key, &body, with_sm3).await;
        assert_eq!(expected.sm3.is_some(), with_sm3);
        let found = check_object(&store, &key, &expected).await;
        assert!(matches!(found, ObjectCheck::Matches), "{found:?}");
    }
}

#[tokio::test]
async fn a_deleted_file_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let (store, expected) = stored_clip(dir.path(), "rec-1/a.mp4", b"clip", false).await;
    std::fs::remove_file(dir.path().join("rec-1/a.mp4")).unwrap();
    let found = check_object(&store, "rec-1/a.mp4", &expected).await;
    assert!(matches!(found, ObjectCheck::Missing), "{found:?}");
    let never = check_object(&store, "rec-2/never.mp4", &expected).await;
    assert!(matches!(never, ObjectCheck::Missing), "{never:?}");
}

#[tokio::test]
async fn a_file_altered_in_place_is_altered_with_what_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    let body = data(70_000, 2);
    let (store, expected) = stored_clip(dir.path(), "rec-1/b.mp4", &body, true).await;
    let mut tampered = body.clone();
    tampered[1234] ^= 0x01;
    std::fs::write(dir.path().join("rec-1/b.mp4"), &tampered).unwrap();
    match check_object(&store, "rec-1/b.mp4", &expected).await {
        ObjectCheck::Altered { size, digests } => {
            assert_eq!(size, body.len() as u64);
            assert_eq!(digests.sha256, Digest::sha256(&tampered));
            let mut h = MultiHasher::new(true).unwrap();
            h.update(&tampered);
            assert_eq!(digests, h.finalize(), "SM3 computed, as expected");
        }
        other => panic!("expected Altered, got {other:?}"),
    }

    // Truncated: another size.
    std::fs::write(dir.path().join("rec-1/b.mp4"), &body[..100]).unwrap();
    match check_object(&store, "rec-1/b.mp4", &expected).await {
        ObjectCheck::Altered { size, digests } => {
            assert_eq!(size, 100);
            assert_eq!(digests.sha256, Digest::sha256(&body[..100]));
        }
        other => panic!("expected Altered, got {other:?}"),
    }
}

#[tokio::test]
async fn a_key_that_is_no_path_is_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let (store, expected) = stored_clip(dir.path(), "rec-1/c.mp4", b"clip", false).await;
    let found = check_object(&store, "rec-1//c.mp4", &expected).await;
    match found {
        ObjectCheck::Unreadable(e @ UnreadableObject::BadKey(_)) => {
            assert!(
                e.to_string()
                    .starts_with("object key is not a valid path: "),
                "{e}"
            );
        }
        other => panic!("expected Unreadable, got {other:?}"),
    }
}
