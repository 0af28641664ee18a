//! `/livez` and `/readyz` against a real object store: live while the
//! process answers; ready only while the ledger serves and appends and the
//! store (a Garage node) answers. A load balancer or systemd watchdog reads
//! them without a token, so they must not tell a stranger where the
//! evidence is kept.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use custos_ledger::governance::Governance;
use serde_json::Value;

use crate::util::*;

async fn probe(t: &TestLedger, uri: &str) -> (StatusCode, Value) {
    let a = t.call(Method::GET, uri, None, None).await;
    (a.status, serde_json::from_slice(&a.body).unwrap())
}

#[tokio::test]
async fn ready_only_while_the_object_store_answers() {
    let mut garage = custos_testsupport::Garage::start().unwrap();
    let t = TestLedger::open(
        LedgerSetup {
            governance: Some(Governance::default().with_store(garage.object_store().unwrap())),
            ..LedgerSetup::default()
        },
        |_| {},
    )
    .await;
    let (status, body) = probe(&t, "/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["store"], "ok");

    // The store goes away: live, but not ready, and the answer names neither
    // the endpoint nor the bucket nor the key.
    garage.stop();
    let (status, body) = probe(&t, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], "store_unreachable");
    assert_eq!(body["store"], "unreachable");
    let text = body.to_string();
    let port = garage.endpoint().rsplit(':').next().unwrap().to_owned();
    for secret in [port.as_str(), garage.bucket(), garage.access_key()] {
        assert!(!text.contains(secret), "{text} names {secret}");
    }
    let (status, body) = probe(&t, "/livez").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "live");

    // Back again: ready again.
    garage.start_again().unwrap();
    let mut last = Value::Null;
    for _ in 0..50 {
        let (status, body) = probe(&t, "/readyz").await;
        if status == StatusCode::OK {
            assert_eq!(body["store"], "ok");
            return;
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("not ready after the store came back: {last}");
}

#[tokio::test]
async fn without_an_object_store_ready_says_so() {
    let t = TestLedger::new().await;
    let (status, body) = probe(&t, "/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["store"], "not_configured");
}
