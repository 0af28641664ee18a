//! Verification reads the object back through the same hasher, or trusts
//! the store's checksum receipt only while the object is the one the store
//! acknowledged.

use custos_core::digest::{Digest, Digests, MultiHasher};
use custos_ingest::object_store::path::Path;
use custos_ingest::object_store::{ObjectStoreExt, PutPayload};
use custos_ingest::{
    hash_object, ingest_segment, verify_object, IngestStore, NoProgress, StoreReceipt, VerifyError,
    VerifyMethod, VerifyMode, READ_BACK_BATCH,
};

use crate::util::{data, garage, garage_store, small_parts};

const PART: usize = 64 * 1024;

#[tokio::test]
async fn read_back_spans_several_ranges_and_catches_other_bytes() {
    let store = IngestStore::in_memory();
    let key = Path::from("v/segment.mp4");
    let body = data(9 * READ_BACK_BATCH + 1234, 31);
    let mut opts = small_parts(1024 * 1024);
    opts.with_sm3 = true;
    let out = ingest_segment(&body[..], &store, &key, &opts, &NoProgress)
        .await
        .unwrap();
    let v = verify_object(&store, &key, &out.digests, VerifyMode::ReadBack)
        .await
        .unwrap();
    assert_eq!(v.digests, out.digests);
    assert!(v.digests.sm3.is_some());
    let (size, d) = hash_object(&store, &key, false).await.unwrap();
    assert_eq!((size, d.sha256), (body.len() as u64, Digest::sha256(&body)));

    // Someone replaces the object behind Custos's back.
    let mut other = body.clone();
    other[READ_BACK_BATCH + 7] ^= 1;
    store
        .object_store()
        .put(&key, PutPayload::from(other.clone()))
        .await
        .unwrap();
    let err = verify_object(&store, &key, &out.digests, VerifyMode::ReadBack)
        .await
        .unwrap_err();
    match &err {
        VerifyError::DigestMismatch {
            expected, actual, ..
        } => {
            assert_eq!(*expected, out.digests.sha256);
            assert_eq!(*actual, Digest::sha256(&other));
        }
        e => panic!("expected a digest mismatch, got {e}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(key.as_ref()) && msg.contains("expected sha256:"),
        "{msg}"
    );

    let err = verify_object(
        &store,
        &Path::from("v/missing"),
        &out.digests,
        VerifyMode::ReadBack,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, VerifyError::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn a_receipt_is_not_trusted_from_a_store_that_checks_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = IngestStore::local(dir.path()).unwrap();
    let key = Path::from("v/local.mp4");
    let body = data(1000, 1);
    let out = ingest_segment(&body[..], &store, &key, &small_parts(PART), &NoProgress)
        .await
        .unwrap();
    assert!(out.store_receipt().is_none());
    let forged = StoreReceipt {
        size: 1000,
        sha256: out.digests.sha256,
        e_tag: out.e_tag.clone().unwrap(),
    };
    let v = verify_object(
        &store,
        &key,
        &out.digests,
        VerifyMode::TrustStoreChecksum(forged),
    )
    .await
    .unwrap();
    assert_eq!(v.method, VerifyMethod::ReadBack);
}

#[tokio::test]
async fn garage_checksum_receipt_is_trusted_only_while_the_object_is_unchanged() {
    let g = garage();
    let store = garage_store(&g);
    for size in [1000, PART * 3 + 5] {
        let key = Path::from(format!("v/receipt-{size}.mp4"));
        let body = data(size, 41);
        let out = ingest_segment(&body[..], &store, &key, &small_parts(PART), &NoProgress)
            .await
            .unwrap();
        let receipt = out
            .store_receipt()
            .expect("Garage checked SHA-256 checksums");
        let v = verify_object(
            &store,
            &key,
            &out.digests,
            VerifyMode::TrustStoreChecksum(receipt.clone()),
        )
        .await
        .unwrap();
        assert_eq!(v.method, VerifyMethod::StoreChecksum, "size {size}");

        // A receipt for other digests is not accepted.
        let wrong = Digests {
            sha256: Digest::sha256(b"something else"),
            sm3: None,
        };
        let err = verify_object(
            &store,
            &key,
            &wrong,
            VerifyMode::TrustStoreChecksum(receipt.clone()),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, VerifyError::DigestMismatch { .. }), "{err}");

        // The object is replaced (same size, other bytes): the receipt no
        // longer matches its ETag and the read-back catches it.
        let other = data(size, 42);
        store
            .object_store()
            .put(&key, PutPayload::from(other))
            .await
            .unwrap();
        let err = verify_object(
            &store,
            &key,
            &out.digests,
            VerifyMode::TrustStoreChecksum(receipt),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, VerifyError::DigestMismatch { .. }), "{err}");
    }
    // The same hashing core on both sides.
    let mut h = MultiHasher::sha256();
    h.update(b"abc");
    assert_eq!(
        h.finalize().sha256.hex(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}
