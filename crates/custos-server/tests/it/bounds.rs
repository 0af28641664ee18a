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
