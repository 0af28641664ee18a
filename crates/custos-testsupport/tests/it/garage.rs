//! The Garage harness itself: an object put through object_store survives a
//! kill and restart of the server, byte for byte.

use bytes::Bytes;
use custos_testsupport::Garage;
use object_store::{path::Path, ObjectStoreExt, PutPayload};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_survives_a_garage_restart() {
    let mut garage = tokio::task::spawn_blocking(Garage::start)
        .await
        .unwrap()
        .expect("Garage must be installed and start (see .ci/run)");
    let store = garage.object_store().unwrap();
    let key = Path::from("restart/test.bin");
    let data: Vec<u8> = (0..3 * 1024 * 1024 + 17)
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    store
        .put(&key, PutPayload::from(Bytes::from(data.clone())))
        .await
        .unwrap();

    garage.stop();
    assert!(
        store.get(&key).await.is_err(),
        "server is down: get must fail"
    );
    let garage = tokio::task::spawn_blocking(move || garage.start_again().map(|()| garage))
        .await
        .unwrap()
        .unwrap();

    let store = garage.object_store().unwrap();
    let mut back = None;
    // The S3 port answers before the node has re-read its layout; retry briefly.
    for _ in 0..50 {
        match store.get(&key).await {
            Ok(r) => {
                back = Some(r.bytes().await.unwrap());
                break;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
        }
    }
    let back = back.expect("object readable after restart");
    assert_eq!(back.len(), data.len());
    assert!(back == data, "bytes differ after restart");
}
