//! The HTTP API: the role matrix, bad input, dock events, the catalogue,
//! the OpenAPI document.

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use custos_core::entry::details::CaseSegmentLinked;
use custos_core::entry::{actions, Details};
use custos_ledger::auth::{Access, ROUTES};
use custos_ledger::wire::{Custody, Receipt};
use custos_ledger::Role;
use serde_json::Map;

use crate::util::*;

/// A URI that reaches the route's handler (its parameters filled in).
fn uri_for(path: &str) -> String {
    let uri = path
        .replace("{id}", "no-such-thing")
        .replace("{name}", "no-such-thing")
        .replace("{seq}", "0");
    match path {
        "/v1/entries" => format!("{uri}?start=0"),
        "/v1/proof/inclusion" => format!("{uri}?index=0&size=1"),
        "/v1/proof/consistency" => format!("{uri}?from=1&to=1"),
        "/v1/supervision" => format!("{uri}?from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z"),
        _ => uri,
    }
}

fn method(m: &str) -> Method {
    m.parse().unwrap()
}

#[tokio::test]
async fn every_route_with_every_role_no_token_and_a_wrong_token() {
    let t = TestLedger::new().await;
    let wrong = "custos_00000000000000ff_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    // What each caller sees, route by route: reviewed as a snapshot.
    let mut seen = Vec::new();
    for row in ROUTES {
        let uri = uri_for(row.path);
        let what = format!("{} {}", row.method, row.path);
        for role in Role::ALL {
            let used_before = t.entries_of(actions::TOKEN_USED).len();
            let a = t
                .call(method(row.method), &uri, Some(t.token(role)), None)
                .await;
            seen.push(format!("{what} as {role}: {}", answer_line(&a)));
            assert_ne!(
                a.status,
                StatusCode::INTERNAL_SERVER_ERROR,
                "{what} as {role}"
            );
            if row.access.allows(role) {
                assert!(
                    a.status != StatusCode::UNAUTHORIZED && a.status != StatusCode::FORBIDDEN,
                    "{what} as {role}: {} {}",
                    a.status,
                    a.text()
                );
                // The route exists: not the router's 404 or 405.
                assert_ne!(a.status, StatusCode::METHOD_NOT_ALLOWED, "{what}");
                if a.status == StatusCode::NOT_FOUND {
                    assert!(!a.error().message.starts_with("no route"), "{what}");
                }
            } else {
                assert_eq!(
                    a.status,
                    StatusCode::FORBIDDEN,
                    "{what} as {role}: {}",
                    a.text()
                );
                assert_eq!(a.error().error, "forbidden");
                assert!(a.error().message.contains(role.as_str()), "{}", a.text());
            }
            // Invariant 4: an admin's token use is an entry, even when refused later.
            let used_after = t.entries_of(actions::TOKEN_USED).len();
            let expected = used_before + usize::from(role == Role::Admin);
            assert_eq!(used_after, expected, "{what} as {role}: token.used entries");
        }
        let a = t.call(method(row.method), &uri, None, None).await;
        seen.push(format!("{what} without a token: {}", answer_line(&a)));
        match row.access {
            Access::Public => assert!(a.status != StatusCode::UNAUTHORIZED, "{what} without token"),
            Access::Roles(_) => {
                assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{what} without token");
                assert_eq!(a.error().error, "missing_token");
            }
        }
        let a = t.call(method(row.method), &uri, Some(wrong), None).await;
        seen.push(format!("{what} with a wrong token: {}", answer_line(&a)));
        assert_eq!(
            a.status,
            StatusCode::UNAUTHORIZED,
            "{what} with a wrong token"
        );
        assert_eq!(a.error().error, "invalid_token");
        let a = t
            .call(method(row.method), &uri, Some("not-a-custos-token"), None)
            .await;
        assert_eq!(
            a.status,
            StatusCode::UNAUTHORIZED,
            "{what} with a malformed token"
        );
        assert_eq!(a.error().error, "malformed_token");
        // A right id with a wrong secret is as wrong as an unknown id.
        let real = t.token(Role::Auditor);
        let forged = format!("{}X", &real[..real.len() - 1]);
        let forged = if forged == real {
            format!("{}Y", &real[..real.len() - 1])
        } else {
            forged
        };
        let a = t.call(method(row.method), &uri, Some(&forged), None).await;
        assert_eq!(
            a.status,
            StatusCode::UNAUTHORIZED,
            "{what} with a forged secret"
        );
    }
    insta::assert_snapshot!("answers_by_route_and_role", seen.join("\n"));
}

/// An answer in one line: its status, and for a refusal its error code and
/// message (a success's body varies with the log and is not shown).
fn answer_line(a: &Answer) -> String {
    if a.status.is_success() {
        a.status.to_string()
    } else {
        let e = a.error();
        format!("{} {}: {}", a.status.as_u16(), e.error, e.message)
    }
}

/// The OpenAPI document, whole: any change to a route, a shape or a role
/// shows up as a snapshot diff to review (`cargo insta review`).
#[tokio::test]
async fn the_openapi_document_is_as_reviewed() {
    let t = TestLedger::new().await;
    let a = t.get("/v1/openapi.json", None).await;
    assert_eq!(a.status, StatusCode::OK);
    insta::assert_json_snapshot!("openapi", a.json());
}

#[tokio::test]
async fn openapi_lists_exactly_the_routes_of_the_role_matrix() {
    let t = TestLedger::new().await;
    let a = t.get("/v1/openapi.json", None).await;
    assert_eq!(a.status, StatusCode::OK);
    let doc = a.json();
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in item.as_object().unwrap().keys() {
            documented.insert((m.to_uppercase(), path.clone()));
        }
    }
    let matrix: BTreeSet<_> = ROUTES
        .iter()
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .collect();
    assert_eq!(documented, matrix);
    // The document states who may call what.
    let events = &doc["paths"]["/v1/events"]["post"];
    assert!(events["description"]
        .as_str()
        .unwrap()
        .contains("Roles: dock."));
    assert!(events["security"].is_array());
    // One segment: its answer carries retention and hold.
    let one = &doc["paths"]["/v1/segments/{id}"]["get"]["responses"]["200"];
    let schema_ref = one["content"]["application/json"]["schema"]["$ref"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(schema_ref, "#/components/schemas/SegmentDetail", "{one}");
    let detail = doc["components"]["schemas"]["SegmentDetail"].to_string();
    for field in ["retention", "hold", "RetentionStatus", "HoldRecord"] {
        assert!(
            detail.contains(field),
            "SegmentDetail lacks {field}: {detail}"
        );
    }
    let status = doc["components"]["schemas"]["RetentionStatus"]["properties"].clone();
    for field in ["until", "held", "open_cases", "eligible", "days"] {
        assert!(
            status.get(field).is_some(),
            "RetentionStatus lacks {field}: {status}"
        );
    }
    // And a route outside the document does not exist.
    let a = t.get("/v1/users", Some(Role::Admin)).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.error().error, "not_found");
    let a = t
        .call(Method::PUT, "/v1/events", Some(t.token(Role::Dock)), None)
        .await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(a.error().error, "method_not_allowed");
}

#[tokio::test]
async fn bad_bodies_get_a_clear_4xx_and_change_nothing() {
    let t = TestLedger::new().await;
    let size = t.size();
    let dock = Some(t.token(Role::Dock));
    // (what, content type, body, expected status, expected code)
    type Case<'a> = (&'a str, Option<&'a str>, Vec<u8>, StatusCode, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            "malformed JSON",
            Some("application/json"),
            b"{\"payload\":".to_vec(),
            StatusCode::BAD_REQUEST,
            "bad_envelope",
        ),
        (
            "JSON that is not an envelope",
            Some("application/json"),
            br#"{"a":1}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "bad_envelope",
        ),
        (
            "an empty body",
            Some("application/json"),
            Vec::new(),
            StatusCode::BAD_REQUEST,
            "empty_body",
        ),
        (
            "non-UTF-8",
            Some("application/json"),
            b"{\"payload\":\"\xff\xfe\"}".to_vec(),
            StatusCode::BAD_REQUEST,
            "not_utf8",
        ),
        (
            "a wrong content type",
            Some("text/plain"),
            docked_event("r").to_json(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "no content type",
            None,
            docked_event("r").to_json(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "a huge body",
            Some("application/json"),
            vec![b' '; 3 << 20],
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        ),
        (
            "a deeply nested body",
            Some("application/json"),
            format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(),
            StatusCode::BAD_REQUEST,
            "bad_envelope",
        ),
    ];
    for (what, ct, body, status, code) in cases {
        let mut req = axum::http::Request::builder()
            .method(Method::POST)
            .uri("/v1/events");
        if let Some(token) = dock {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        use tower::ServiceExt as _;
        let resp = t
            .app
            .clone()
            .oneshot(req.body(axum::body::Body::from(body)).unwrap())
            .await
            .unwrap();
        let got = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let err: custos_ledger::wire::ErrorBody =
            serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!(
                    "{what}: not the error shape ({e}): {}",
                    String::from_utf8_lossy(&bytes)
                )
            });
        assert_eq!(
            (got, err.error.as_str()),
            (status, code),
            "{what}: {}",
            err.message
        );
        assert!(!err.message.is_empty(), "{what}");
    }
    assert_eq!(t.size(), size, "no entry was added");
}

#[tokio::test]
async fn bad_queries_and_paths_get_a_clear_400() {
    let t = TestLedger::new().await;
    let r = Some(Role::Auditor);
    for (uri, code) in [
        ("/v1/entries", "bad_query"),
        ("/v1/entries?start=abc", "bad_query"),
        ("/v1/entries?start=-1", "bad_query"),
        ("/v1/entries?start=99999", "out_of_range"),
        ("/v1/entries?start=3&end=1", "out_of_range"),
        ("/v1/proof/inclusion?index=7", "bad_query"),
        ("/v1/proof/inclusion?index=7&size=3", "out_of_range"),
        ("/v1/proof/inclusion?index=0&size=99999", "out_of_range"),
        ("/v1/proof/consistency?from=4&to=2", "out_of_range"),
        ("/v1/proof/consistency?from=1&to=99999", "out_of_range"),
        (
            "/v1/proof/consistency?from=18446744073709551616&to=1",
            "bad_query",
        ),
        ("/v1/segments?from=yesterday", "bad_query"),
        ("/v1/segments?limit=many", "bad_query"),
    ] {
        let a = t.get(uri, r).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{uri}: {}", a.text());
        assert_eq!(a.error().error, code, "{uri}: {}", a.error().message);
    }
    // A path that is not UTF-8 once decoded.
    let a = t.get("/v1/segments/%FF%FE", r).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text());
    assert_eq!(a.error().error, "bad_path");
}

#[tokio::test]
async fn dock_events_are_verified_before_anything_is_added() {
    let t = TestLedger::new().await;
    let size = t.size();
    let stranger = custos_core::keys::SigningKey::from_seed("dock-99", &[9; 32]).unwrap();

    let a = t
        .post_event(&event_by(&stranger, "recorder.docked", "rec-1", Map::new()))
        .await;
    assert_eq!(
        (a.status, a.error().error.as_str()),
        (StatusCode::FORBIDDEN, "unknown_key"),
        "{}",
        a.text()
    );
    assert!(a.error().message.contains("dock-01"), "{}", a.text());

    let mut tampered = docked_event("rec-1");
    tampered.payload = tampered
        .payload
        .iter()
        .map(|b| if *b == b'1' { b'2' } else { *b })
        .collect();
    let a = t.post_event(&tampered).await;
    assert_eq!(
        (a.status, a.error().error.as_str()),
        (StatusCode::FORBIDDEN, "bad_signature"),
        "{}",
        a.text()
    );

    let payload = custos_core::entry::Event::new("recorder.docked", "rec-1", Map::new(), now())
        .unwrap()
        .to_canonical()
        .unwrap();
    let a = t
        .post_event(&envelope_of_type(
            "application/vnd.custos.manifest+json",
            payload,
        ))
        .await;
    assert_eq!(
        (a.status, a.error().error.as_str()),
        (StatusCode::BAD_REQUEST, "wrong_payload_type"),
        "{}",
        a.text()
    );

    let a = t
        .post_event(&envelope_of_type(
            EVENT_TYPE,
            br#"{"action":"recorder.docked"}"#.to_vec(),
        ))
        .await;
    assert_eq!(
        (a.status, a.error().error.as_str()),
        (StatusCode::BAD_REQUEST, "bad_event"),
        "{}",
        a.text()
    );

    for action in [
        "case.created",
        "access.approved",
        "token.created",
        "retention.deleted",
    ] {
        let a = t.post_event(&event(action, "x-1", Map::new())).await;
        assert_eq!(
            (a.status, a.error().error.as_str()),
            (StatusCode::FORBIDDEN, "action_forbidden"),
            "{action}"
        );
    }

    // segment.ingested needs a manifest, signed by the same dock, for the same segment.
    let a = t
        .post_event(&event("segment.ingested", "seg-1", Map::new()))
        .await;
    assert_eq!(a.error().error, "bad_manifest", "{}", a.text());
    let m = manifest("seg-1", "rec-7", "officer-42", "2026-03-01T07:00:00Z");
    let signed_by_stranger = m.sign(&stranger).unwrap();
    let mut details = Map::new();
    details.insert(
        "manifest".into(),
        serde_json::to_value(&signed_by_stranger).unwrap(),
    );
    let a = t
        .post_event(&event("segment.ingested", "seg-1", details))
        .await;
    assert_eq!(a.error().error, "bad_manifest", "{}", a.text());
    let a = t
        .post_event(&ingest_event_with(
            &dock_key(),
            &manifest("seg-2", "r", "o", "2026-03-01T07:00:00Z"),
        ))
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    let size_after_good = t.size();
    let mut details = Map::new();
    details.insert(
        "manifest".into(),
        serde_json::to_value(m.sign(&dock_key()).unwrap()).unwrap(),
    );
    let a = t
        .post_event(&event("segment.ingested", "seg-other", details))
        .await;
    assert_eq!(a.error().error, "bad_manifest", "{}", a.text());

    // Verification of a segment nobody ingested.
    let a = t.post_event(&verified_event("seg-unknown")).await;
    assert_eq!(
        (a.status, a.error().error.as_str()),
        (StatusCode::NOT_FOUND, "unknown_segment"),
        "{}",
        a.text()
    );

    // Only docks post events, and a dock token without a key cannot.
    let a = t
        .call(
            Method::POST,
            "/v1/events",
            Some(t.token(Role::Reviewer)),
            Some(("application/json", docked_event("r").to_json())),
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let keyless = t
        .ledger
        .create_token(admin_actor(), Role::Dock, "dock-keyless", None)
        .await
        .unwrap();
    let a = t
        .call(
            Method::POST,
            "/v1/events",
            Some(&keyless.token),
            Some(("application/json", docked_event("r").to_json())),
        )
        .await;
    assert_eq!(
        (a.status, a.error().error.as_str()),
        (StatusCode::FORBIDDEN, "no_registered_key"),
        "{}",
        a.text()
    );

    // One good entry and one token, nothing else.
    assert_eq!(size_after_good, size + 1);
    assert_eq!(t.size(), size + 2);
}

#[tokio::test]
async fn the_same_envelope_twice_is_one_entry() {
    let t = TestLedger::new().await;
    let env = docked_event("rec-1");
    let first = t.post_event(&env).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let first: Receipt = serde_json::from_slice(&first.body).unwrap();
    assert!(!first.duplicate);
    let size = t.size();
    for _ in 0..3 {
        let again = t.post_event(&env).await;
        assert_eq!(again.status, StatusCode::OK);
        let again: Receipt = serde_json::from_slice(&again.body).unwrap();
        assert!(again.duplicate);
        assert_eq!((again.seq, again.leaf_hash), (first.seq, first.leaf_hash));
    }
    // Concurrent copies in one batch are one entry too.
    let env2 = docked_event("rec-2");
    let answers = futures::future::join_all((0..8).map(|_| t.post_event(&env2))).await;
    let seqs: BTreeSet<u64> = answers
        .iter()
        .map(|a| serde_json::from_slice::<Receipt>(&a.body).unwrap().seq)
        .collect();
    assert_eq!(seqs.len(), 1);
    assert_eq!(t.size(), size + 1);
}

#[tokio::test]
async fn a_dock_records_a_segment_and_the_catalogue_finds_it_with_proven_custody() {
    let t = TestLedger::new().await;
    let m1 = manifest("seg-a", "rec-7", "officer-42", "2026-03-01T07:00:00Z");
    let m2 = manifest("seg-b", "rec-8", "officer-42", "2026-03-01T09:00:00Z");
    let m3 = manifest("seg-c", "rec-7", "officer-43", "2026-03-02T07:00:00Z");
    for m in [&m1, &m2, &m3] {
        let a = t.post_event(&ingest_event_with(&dock_key(), m)).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    }
    for event in [verified_event("seg-a"), wiped_event("seg-a")] {
        let a = t.post_event(&event).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    }
    // Re-ingesting the same bytes is recorded; other bytes under the id are refused.
    let mut changed = m1.clone();
    changed.digests.sha256 = format!("sha256:{}", "cd".repeat(32)).parse().unwrap();
    let a = t
        .post_event(&ingest_event_with(&dock_key(), &changed))
        .await;
    assert_eq!(
        (a.status, a.error().error.as_str()),
        (StatusCode::CONFLICT, "segment_exists"),
        "{}",
        a.text()
    );

    let ids = |a: &Answer| -> Vec<String> {
        a.json()["segments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["segment_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let r = Some(Role::Reviewer);
    assert_eq!(
        ids(&t.get("/v1/segments?officer=officer-42", r).await),
        ["seg-a", "seg-b"]
    );
    assert_eq!(
        ids(&t.get("/v1/segments?recorder=rec-7", r).await),
        ["seg-a", "seg-c"]
    );
    assert_eq!(
        ids(&t
            .get("/v1/segments?recorder=rec-7&officer=officer-43", r)
            .await),
        ["seg-c"]
    );
    assert_eq!(
        ids(&t
            .get(
                "/v1/segments?from=2026-03-01T08:00:00Z&to=2026-03-02T00:00:00Z",
                r
            )
            .await),
        ["seg-b"]
    );
    assert_eq!(
        ids(&t.get("/v1/segments", r).await),
        ["seg-a", "seg-b", "seg-c"]
    );
    assert_eq!(ids(&t.get("/v1/segments?limit=1", r).await), ["seg-a"]);
    assert!(ids(&t.get("/v1/segments?case=case-1", r).await).is_empty());

    let seg = t.get("/v1/segments/seg-a", r).await.json();
    assert_eq!(seg["status"], "wiped");
    assert_eq!(seg["manifest"]["officer_id"], "officer-42");
    assert_eq!(
        t.get("/v1/segments/seg-b", r).await.json()["status"],
        "ingested"
    );
    let a = t.get("/v1/segments/nope", r).await;
    assert_eq!(
        (a.status, a.error().error.as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );

    // Linking to a case (recorded by the service, e.g. for a supervisor).
    let sup = t.ledger.authenticate(t.token(Role::Supervisor)).unwrap();
    let details = Details::CaseSegmentLinked(CaseSegmentLinked {
        segment_id: "seg-b".into(),
    });
    t.ledger.record(&sup, "case-1", details).await.unwrap();
    assert_eq!(ids(&t.get("/v1/segments?case=case-1", r).await), ["seg-b"]);

    let custody: Custody =
        serde_json::from_slice(&t.get("/v1/segments/seg-a/custody", r).await.body).unwrap();
    let actions_seen: Vec<String> = custody
        .entries
        .iter()
        .map(|e| {
            serde_json::from_str::<serde_json::Value>(e.entry.get()).unwrap()["action"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        actions_seen,
        ["segment.ingested", "segment.verified", "segment.wiped"]
    );
    assert_eq!(custody.size, t.size());
    let root = crate::proofs::checkpoint_root(&custody.checkpoint);
    for e in &custody.entries {
        let leaf = crate::proofs::leaf(&e.line().raw_bytes().unwrap());
        let hashes: Vec<[u8; 32]> = e.proof.hashes.iter().map(|h| h.to_bytes()).collect();
        assert!(crate::proofs::verify_inclusion(
            e.proof.index,
            e.proof.size,
            leaf,
            &hashes,
            root
        ));
    }
    let a = t.get("/v1/segments/nope/custody", r).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn health_metrics_and_checkpoint_are_served() {
    let t = TestLedger::new().await;
    let a = t.post_event(&docked_event("rec-1")).await;
    assert_eq!(a.status, StatusCode::CREATED);
    let h = t.get("/healthz", None).await;
    assert_eq!(h.status, StatusCode::OK);
    assert_eq!(h.json()["status"], "ok");
    assert_eq!(h.json()["size"], t.size());
    let m = t.get("/metrics", None).await.text();
    for name in [
        "custos_ledger_appends_total{result=\"new\"}",
        "custos_ledger_batch_size_count",
        "custos_ledger_append_seconds_bucket",
        "custos_ledger_flush_seconds_sum",
        &format!("custos_ledger_tree_size {}", t.size()),
        "custos_ledger_http_requests_total{method=\"POST\",route=\"/v1/events\",status=\"201\"} 1",
        "custos_ledger_http_request_seconds_count{method=\"POST\",route=\"/v1/events\"} 1",
    ] {
        assert!(m.contains(name), "metrics lack {name}:\n{m}");
    }
    let c = t.get("/v1/checkpoint", None).await;
    assert!(c.content_type().starts_with("text/plain"));
    let text = c.text();
    assert!(
        text.starts_with(&format!("{ORIGIN}\n{}\n", t.size())),
        "{text}"
    );
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let t = TestLedger::new().await;
    use tower::ServiceExt as _;
    let req = axum::http::Request::builder()
        .uri("/healthz")
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = t.app.clone().oneshot(req).await.unwrap();
    assert!(resp.headers().get("x-request-id").is_some());
    let req = axum::http::Request::builder()
        .uri("/healthz")
        .header("x-request-id", "abc-123")
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = t.app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.headers()["x-request-id"], "abc-123");
}
