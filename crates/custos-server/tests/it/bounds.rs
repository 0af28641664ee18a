//! The server side of "bounded under hostile input": metrics labels a
//! client cannot multiply, `/v1/entries` streamed.

use axum::http::{Method, StatusCode};
use custos_ledger::Role;

use crate::util::*;

#[tokio::test]
async fn unknown_methods_are_one_metrics_label() {
    let t = TestLedger::new().await;
    for i in 0..20 {
        let m = Method::from_bytes(format!("BOGUS{i}").as_bytes()).unwrap();
        let a = t.call(m.clone(), "/v1/checkpoint", None, None).await;
        assert!(a.status.is_client_error(), "{m}: {}", a.status);
        let a = t.call(m, "/no/such/route", None, None).await;
        assert!(a.status.is_client_error());
    }
    let metrics = t.get("/metrics", None).await.text();
    assert!(!metrics.contains("BOGUS"), "{metrics}");
    assert!(metrics.contains("method=\"other\""), "{metrics}");
    let a = t.get("/v1/checkpoint", None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(t
        .get("/metrics", None)
        .await
        .text()
        .contains("method=\"GET\""));
}

#[tokio::test]
async fn entries_are_streamed_a_chunk_at_a_time_and_read_whole() {
    let t = TestLedger::new().await;
    for i in 0..150 {
        let a = t.post_event(&docked_event(&format!("rec-{i}"))).await;
        assert_eq!(a.status, StatusCode::CREATED);
    }
    let size = t.size();
    let resp = {
        use tower::ServiceExt as _;
        let req = axum::http::Request::builder()
            .uri("/v1/entries?start=0")
            .header(
                "authorization",
                format!("Bearer {}", t.token(Role::Auditor)),
            )
            .body(axum::body::Body::empty())
            .unwrap();
        t.app.clone().oneshot(req).await.unwrap()
    };
    assert_eq!(resp.status(), StatusCode::OK);
    // A streamed body: no length known in advance.
    assert!(resp.headers().get("content-length").is_none());
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    let lines: Vec<_> = std::str::from_utf8(&body).unwrap().lines().collect();
    assert_eq!(lines.len() as u64, size);
    for (i, line) in lines.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["seq"], i as u64);
    }
    // The same lines as the in-process read.
    let whole = t.ledger.entries(0, None).unwrap();
    let expected: Vec<String> = whole
        .iter()
        .map(|l| serde_json::to_string(l).unwrap())
        .collect();
    assert_eq!(lines, expected);
}

/// A docking event whose `serial` is `len` bytes long.
fn docked_with_serial(subject: &str, len: usize) -> custos_core::dsse::Envelope {
    use custos_core::entry::details::RecorderDocked;
    use custos_core::entry::Details;
    let details = Details::RecorderDocked(RecorderDocked {
        slot: "1".into(),
        profile: "generic".into(),
        model: "BWC-T".into(),
        transport: "simulated".into(),
        clock_offset_ms: None,
        recorder_time: None,
        serial: Some("s".repeat(len)),
        officer_id: None,
        firmware: None,
    });
    event(details.action(), subject, details.to_map())
}

/// Every entry must fit a tlog-tiles entry bundle (two-byte length
/// prefix): a larger event is refused with one clear line and adds nothing;
/// one that fits is accepted.
#[tokio::test]
async fn an_event_larger_than_an_entry_bundle_allows_is_refused() {
    let t = TestLedger::new().await;
    let size = t.size();
    // The entry holds the details twice: decoded, and base64 in the envelope.
    let a = t.post_event(&docked_with_serial("rec-big", 40_000)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text());
    let err = a.error();
    assert_eq!(err.error, "invalid_entry");
    assert!(err.message.contains("65535"), "{}", err.message);
    assert!(!err.message.contains('\n'), "{}", err.message);
    assert_eq!(t.size(), size, "a refused event added an entry");
    // Just inside the bound after the writer adds seq, prev and time.
    let a = t.post_event(&docked_with_serial("rec-fits", 20_000)).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    let entry = t.ledger.entry(size).unwrap();
    assert!(entry.len() <= custos_core::tiles::MAX_ENTRY_LEN);
    assert!(entry.len() > 45_000, "{}", entry.len());
}
