//! Governance through the HTTP API: access requests and approvals, footage
//! streamed with HTTP Range and logged, cases and legal holds; against a
//! real object store (a directory, and Garage over S3).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use custos_core::entry::Event;
use custos_core::manifest::{Manifest, Timestamp};
use custos_ledger::clock::Clock;
use custos_ledger::governance::Governance;
use custos_ledger::Role;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use serde_json::{json, Map, Value};
use tempfile::TempDir;

use crate::util::*;

/// An object store in a fresh directory (kept while the returned guard
/// lives).
fn local_store() -> (tempfile::TempDir, Arc<dyn ObjectStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> =
        Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
    (dir, store)
}

/// Footage bytes that differ at every offset (so a wrong range shows).
fn footage(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

/// `[retention]` of these tests: the default 180 days, and 10 years for
/// the `homicide` category.
fn retention() -> custos_core::config::RetentionConfig {
    let mut retention = custos_core::config::RetentionConfig::default();
    retention.categories.insert("homicide".into(), 3650);
    retention
}

/// A ledger whose footage lives in `objects`, reading `clock` when given;
/// besides a token per role, `reviewer-2` and `supervisor-2`.
async fn governed(objects: Arc<dyn ObjectStore>, clock: Option<TestClock>) -> TestLedger {
    TestLedger::open(
        LedgerSetup {
            clock: clock.map(|c| Arc::new(c) as Arc<dyn Clock>),
            governance: Some(
                Governance::default()
                    .with_retention(retention())
                    .with_store(objects),
            ),
            named: vec![
                ("reviewer-2", Role::Reviewer),
                ("supervisor-2", Role::Supervisor),
            ],
        },
        |_| {},
    )
    .await
}

impl TestLedger {
    /// Ingest `segment` (a signed manifest through the dock's path) whose
    /// bytes are stored under `key`.
    async fn ingest(&self, segment: &str, key: &str, bytes: &[u8]) {
        self.ingest_recorded(segment, key, bytes, "2026-03-01T07:00:00Z")
            .await;
    }

    /// [`TestLedger::ingest`] of footage whose recorder says it was recorded at
    /// `start`.
    async fn ingest_recorded(&self, segment: &str, key: &str, bytes: &[u8], start: &str) {
        let manifest: Manifest = serde_json::from_value(json!({
            "segment_id": segment,
            "recorder": {"id": "rec-7", "model": "BWC-9", "profile": "generic"},
            "officer_id": "officer-42",
            "dock": {"id": "dock-01", "clock_offset_ms": 0},
            "original_name": format!("{segment}.MP4"),
            "size": bytes.len(),
            "digests": {"sha256": format!("sha256:{}", "ab".repeat(32))},
            "recorded": {"start": start, "end": start, "source": "media"},
            "media": {"container": "mov,mp4,m4a,3gp,3g2,mj2", "duration_ms": 1000, "streams": [], "damaged": null},
            "ingested_at": start,
            "object": {"url": "file:///objects", "key": key},
            "late": false
        }))
        .unwrap();
        let signed = manifest.sign(&dock_key()).unwrap();
        let mut details = Map::new();
        details.insert("manifest".into(), serde_json::to_value(&signed).unwrap());
        let env = Event::new(
            "segment.ingested",
            segment,
            details,
            Timestamp::parse(start).unwrap(),
        )
        .unwrap()
        .sign(&dock_key())
        .unwrap();
        let dock = self
            .ledger
            .authenticate(self.token_named("dock-01"))
            .unwrap();
        self.ledger.append_envelope(&dock, env).await.unwrap();
    }

    /// `GET uri` as the token named `who`.
    async fn get_as(&self, uri: &str, who: &str) -> Answer {
        self.call_as(Method::GET, uri, who, None, None).await
    }

    /// `POST uri` as the token named `who`, with a JSON body when given.
    async fn post_as(&self, uri: &str, who: &str, body: Option<Value>) -> Answer {
        self.call_as(Method::POST, uri, who, body, None).await
    }

    /// `method uri` as the token named `who`, with a JSON body and a Range
    /// header when given.
    async fn call_as(
        &self,
        method: Method,
        uri: &str,
        who: &str,
        body: Option<Value>,
        range: Option<&str>,
    ) -> Answer {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {}", self.token_named(who)));
        if let Some(r) = range {
            req = req.header("range", r);
        }
        let body = match body {
            Some(v) => {
                req = req.header("content-type", "application/json");
                Body::from(serde_json::to_vec(&v).unwrap())
            }
            None => Body::empty(),
        };
        self.send(req.body(body).unwrap()).await
    }
}

async fn local_env() -> (TestLedger, TempDir, Vec<u8>) {
    let (objects_dir, store) = local_store();
    let bytes = footage(1000);
    store
        .put(&ObjectPath::from("seg/seg-1.mp4"), bytes.clone().into())
        .await
        .unwrap();
    let env = governed(store, None).await;
    env.ingest("seg-1", "seg/seg-1.mp4", &bytes).await;
    (env, objects_dir, bytes)
}

#[tokio::test]
async fn a_reviewer_without_approval_is_refused_and_logged_then_streams_with_range() {
    let (env, _objects, bytes) = local_env().await;
    let content = "/v1/segments/seg-1/content";

    // No request yet: 403, and the attempt is on the record.
    let a = env.get_as(content, "reviewer-1").await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.json()["error"], "approval_required");
    assert!(a.json()["message"]
        .as_str()
        .unwrap()
        .contains("access request"));
    let refused = env.entries_of("access.refused");
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["subject"], "seg-1");
    assert_eq!(refused[0]["actor"]["id"], "reviewer-1");
    assert!(env.entries_of("segment.viewed").is_empty());

    // A request needs a reason and something that exists.
    let a = env
        .post_as(
            "/v1/access-requests",
            "reviewer-1",
            Some(json!({"segment": "seg-1", "reason": "  "})),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.json());
    assert!(a.json()["message"].as_str().unwrap().contains("reason"));
    let a = env
        .post_as(
            "/v1/access-requests",
            "reviewer-1",
            Some(json!({"segment": "nope", "reason": "court"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.json());
    let a = env
        .post_as(
            "/v1/access-requests",
            "reviewer-1",
            Some(json!({"reason": "court"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);

    let a = env
        .post_as(
            "/v1/access-requests",
            "reviewer-1",
            Some(json!({"segment": "seg-1", "reason": "court order 2026-17"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.json());
    let request = a.json()["request"]["id"].as_str().unwrap().to_owned();
    assert_eq!(a.json()["request"]["status"], "pending");

    // Still pending: still refused (and logged again).
    let a = env.get_as(content, "reviewer-1").await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(env.entries_of("access.refused").len(), 2);

    // A reviewer cannot approve; an unknown request is 404.
    let approve = format!("/v1/access-requests/{request}/approve");
    let a = env.post_as(&approve, "reviewer-1", None).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = env
        .post_as("/v1/access-requests/ar-none/approve", "supervisor-1", None)
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);

    let a = env
        .post_as(
            &approve,
            "supervisor-1",
            Some(json!({"note": "ok per order"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.json());
    let a = env.post_as(&approve, "supervisor-2", None).await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.json());
    let approved = env.entries_of("access.approved");
    assert_eq!(approved.len(), 1);
    assert_eq!(approved[0]["actor"]["id"], "supervisor-1");
    assert_eq!(approved[0]["details"]["note"], "ok per order");

    // Another reviewer's approval does not cover reviewer-2.
    let a = env.get_as(content, "reviewer-2").await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);

    // Approved: Range requests.
    let a = env
        .call_as(
            Method::GET,
            content,
            "reviewer-1",
            None,
            Some("bytes=10-19"),
        )
        .await;
    assert_eq!(a.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(a.body, bytes[10..20]);
    assert_eq!(a.header("content-range"), "bytes 10-19/1000");
    assert_eq!(a.header("accept-ranges"), "bytes");
    assert_eq!(a.header("content-type"), "video/mp4");
    assert_eq!(a.header("content-length"), "10");

    let a = env
        .call_as(Method::GET, content, "reviewer-1", None, Some("bytes=-5"))
        .await;
    assert_eq!(a.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(a.body, bytes[995..]);
    assert_eq!(a.header("content-range"), "bytes 995-999/1000");

    let a = env
        .call_as(Method::GET, content, "reviewer-1", None, Some("bytes=990-"))
        .await;
    assert_eq!(a.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(a.body, bytes[990..]);

    let a = env
        .call_as(
            Method::GET,
            content,
            "reviewer-1",
            None,
            Some("bytes=990-5000"),
        )
        .await;
    assert_eq!(a.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(a.header("content-range"), "bytes 990-999/1000");

    let a = env
        .call_as(
            Method::GET,
            content,
            "reviewer-1",
            None,
            Some("bytes=1000-"),
        )
        .await;
    assert_eq!(a.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(a.header("content-range"), "bytes */1000");

    let a = env.get_as(content, "reviewer-1").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body, bytes);
    assert_eq!(a.header("accept-ranges"), "bytes");

    // Every stream is on the record, with its range and request.
    let viewed = env.entries_of("segment.viewed");
    assert_eq!(viewed.len(), 5);
    assert_eq!(viewed[0]["details"]["range"], "bytes=10-19");
    assert_eq!(viewed[0]["details"]["request_id"], request.as_str());
    assert_eq!(viewed[0]["actor"]["id"], "reviewer-1");
    assert_eq!(viewed[0]["actor"]["kind"], "reviewer");
    assert_eq!(viewed[4]["details"]["range"], Value::Null);

    // A supervisor is not in approval_required: streams, logged without a request.
    let a = env
        .call_as(
            Method::GET,
            content,
            "supervisor-2",
            None,
            Some("bytes=0-0"),
        )
        .await;
    assert_eq!(a.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(a.body, bytes[..1]);
    let viewed = env.entries_of("segment.viewed");
    assert_eq!(viewed[5]["details"]["request_id"], Value::Null);

    // Unknown segment: 404, nothing logged.
    let a = env.get_as("/v1/segments/none/content", "reviewer-1").await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);

    // The custody record of the segment lists the request, decision and views.
    let a = env.get_as("/v1/segments/seg-1/custody", "auditor-1").await;
    let text = String::from_utf8_lossy(&a.body).to_string();
    for action in [
        "access.requested",
        "access.approved",
        "segment.viewed",
        "access.refused",
    ] {
        assert!(text.contains(action), "custody lacks {action}");
    }
}

#[tokio::test]
async fn deny_and_own_requests() {
    let (env, _objects, _) = local_env().await;
    let ask = |who: &'static str| {
        let env = &env;
        async move {
            let a = env
                .post_as(
                    "/v1/access-requests",
                    who,
                    Some(json!({"segment": "seg-1", "reason": "review"})),
                )
                .await;
            assert_eq!(a.status, StatusCode::CREATED);
            a.json()["request"]["id"].as_str().unwrap().to_owned()
        }
    };
    // A supervisor cannot approve their own request.
    let own = ask("supervisor-1").await;
    let a = env
        .post_as(
            &format!("/v1/access-requests/{own}/approve"),
            "supervisor-1",
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.json()["error"], "own_request");
    assert!(env.entries_of("access.approved").is_empty());

    // Denied: the reviewer stays refused; a denied request cannot be approved.
    let r = ask("reviewer-1").await;
    let a = env
        .post_as(
            &format!("/v1/access-requests/{r}/deny"),
            "supervisor-2",
            Some(json!({"note": "no grounds"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(env.entries_of("access.denied").len(), 1);
    let a = env
        .post_as(
            &format!("/v1/access-requests/{r}/approve"),
            "supervisor-2",
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT);
    let a = env.get_as("/v1/segments/seg-1/content", "reviewer-1").await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn cases_link_search_close_and_grant_access_through_the_case() {
    let (env, _objects, bytes) = local_env().await;
    let a = env
        .post_as("/v1/cases", "supervisor-1", Some(json!({"title": ""})))
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let a = env
        .post_as("/v1/cases", "reviewer-1", Some(json!({"title": "x"})))
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = env
        .post_as(
            "/v1/cases",
            "supervisor-1",
            Some(json!({"title": "Assault, Main St", "category": "criminal"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.json());
    let case = a.json()["case"]["id"].as_str().unwrap().to_owned();
    assert_eq!(env.entries_of("case.created").len(), 1);

    let link = format!("/v1/cases/{case}/segments");
    let a = env
        .post_as(
            &link,
            "supervisor-1",
            Some(json!({"segments": ["seg-1", "nope"]})),
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert!(a.json()["message"].as_str().unwrap().contains("nope"));
    assert!(
        env.entries_of("case.segment_linked").is_empty(),
        "nothing linked"
    );
    let a = env
        .post_as(
            "/v1/cases/case-none/segments",
            "supervisor-1",
            Some(json!({"segments": ["seg-1"]})),
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let a = env
        .post_as(&link, "supervisor-1", Some(json!({"segments": ["seg-1"]})))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.json());

    // The catalogue finds it by case.
    let a = env
        .get_as(&format!("/v1/segments?case={case}"), "reviewer-1")
        .await;
    let found = a.json();
    assert_eq!(found["segments"].as_array().unwrap().len(), 1);
    assert_eq!(found["segments"][0]["segment_id"], "seg-1");

    // Access to the case covers its segments.
    let a = env
        .post_as(
            "/v1/access-requests",
            "reviewer-1",
            Some(json!({"case": case, "reason": "prosecution review"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED);
    let r = a.json()["request"]["id"].as_str().unwrap().to_owned();
    let a = env
        .post_as(
            &format!("/v1/access-requests/{r}/approve"),
            "supervisor-2",
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    let a = env
        .call_as(
            Method::GET,
            "/v1/segments/seg-1/content",
            "reviewer-1",
            None,
            Some("bytes=0-3"),
        )
        .await;
    assert_eq!(a.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(a.body, bytes[..4]);

    // Closed: no more links, no second close.
    let close = format!("/v1/cases/{case}/close");
    let a = env.post_as(&close, "supervisor-1", None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(env.entries_of("case.closed").len(), 1);
    let a = env
        .post_as(&link, "supervisor-1", Some(json!({"segments": ["seg-1"]})))
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT);
    assert_eq!(a.json()["error"], "case_closed");
    let a = env.post_as(&close, "supervisor-1", None).await;
    assert_eq!(a.status, StatusCode::CONFLICT);
    let a = env
        .post_as("/v1/cases/case-none/close", "supervisor-1", None)
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn holds_are_placed_once_and_released_once() {
    let (env, _objects, _) = local_env().await;
    let hold = "/v1/segments/seg-1/hold";
    let a = env
        .post_as(hold, "supervisor-1", Some(json!({"reason": ""})))
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let a = env.post_as(hold, "supervisor-1", None).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "a hold needs a reason");
    let a = env
        .post_as(
            "/v1/segments/none/hold",
            "supervisor-1",
            Some(json!({"reason": "x"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let a = env
        .post_as(hold, "supervisor-1", Some(json!({"reason": "litigation"})))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.json());
    assert!(custos_ledger::governance::hold(&env.ledger, "seg-1")
        .unwrap()
        .is_some());
    let a = env
        .post_as(hold, "supervisor-2", Some(json!({"reason": "again"})))
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT);
    let a = env
        .call_as(Method::DELETE, hold, "reviewer-1", None, None)
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = env
        .call_as(Method::DELETE, hold, "supervisor-2", None, None)
        .await;
    assert_eq!(a.status, StatusCode::OK);
    let a = env
        .call_as(Method::DELETE, hold, "supervisor-2", None, None)
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT);
    assert_eq!(env.entries_of("hold.placed").len(), 1);
    assert_eq!(env.entries_of("hold.released").len(), 1);
    assert_eq!(
        env.entries_of("hold.released")[0]["actor"]["id"],
        "supervisor-2"
    );
}

#[tokio::test]
async fn footage_streams_from_garage_with_range() {
    let garage = custos_testsupport::Garage::start().unwrap();
    let store = garage.object_store().unwrap();
    let bytes = footage(3 << 20);
    store
        .put(&ObjectPath::from("ev/seg-g.mp4"), bytes.clone().into())
        .await
        .unwrap();
    let env = governed(store, None).await;
    env.ingest("seg-g", "ev/seg-g.mp4", &bytes).await;
    let a = env
        .call_as(
            Method::GET,
            "/v1/segments/seg-g/content",
            "supervisor-1",
            None,
            Some("bytes=1048570-2097160"),
        )
        .await;
    assert_eq!(a.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(a.body, bytes[1048570..=2097160]);
    assert_eq!(
        a.header("content-range"),
        format!("bytes 1048570-2097160/{}", bytes.len())
    );
    let a = env
        .get_as("/v1/segments/seg-g/content", "supervisor-1")
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body, bytes);
    assert_eq!(env.entries_of("segment.viewed").len(), 2);
}

#[tokio::test]
async fn the_sweeper_deletes_only_what_is_eligible_and_records_each_deletion() {
    let (_objects_dir, store) = local_store();
    // Recorded and docked 2026-03-01; swept on 2026-12-05, more than 180
    // days later.
    let clock = TestClock::at("2026-03-01T07:00:00Z");
    let env = governed(store.clone(), Some(clock.clone())).await;
    for s in ["held", "open-case", "long-case", "free"] {
        let key = format!("seg/{s}.mp4");
        store
            .put(&ObjectPath::from(key.as_str()), footage(64).into())
            .await
            .unwrap();
        env.ingest(s, &key, &footage(64)).await;
    }
    let a = env
        .post_as(
            "/v1/segments/held/hold",
            "supervisor-1",
            Some(json!({"reason": "appeal"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    let new_case = |category: Option<&'static str>| {
        let env = &env;
        async move {
            let a = env
                .post_as(
                    "/v1/cases",
                    "supervisor-1",
                    Some(json!({"title": "t", "category": category})),
                )
                .await;
            a.json()["case"]["id"].as_str().unwrap().to_owned()
        }
    };
    let open = new_case(None).await;
    let long = new_case(Some("homicide")).await;
    for (case, seg) in [(&open, "open-case"), (&long, "long-case")] {
        let a = env
            .post_as(
                &format!("/v1/cases/{case}/segments"),
                "supervisor-1",
                Some(json!({"segments": [seg]})),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK);
    }
    let a = env
        .post_as(&format!("/v1/cases/{long}/close"), "supervisor-1", None)
        .await;
    assert_eq!(a.status, StatusCode::OK);

    clock.set("2026-12-05T00:00:00Z");
    let retention = retention();
    let gov = custos_ledger::governance::sweep;

    // GET /v1/segments/{id} shows where each stands.
    let seg = |id: &'static str| {
        let env = &env;
        async move {
            let a = env.get_as(&format!("/v1/segments/{id}"), "auditor-1").await;
            assert_eq!(a.status, StatusCode::OK, "{id}");
            a.json()
        }
    };
    let held = seg("held").await;
    assert_eq!(held["segment_id"], "held");
    assert_eq!(held["retention"]["held"], true);
    assert_eq!(held["retention"]["eligible"], false);
    assert_eq!(held["retention"]["days"], 180);
    assert_eq!(held["retention"]["until"], "2026-08-28T07:00:00Z");
    assert_eq!(held["hold"]["reason"], "appeal");
    assert_eq!(held["hold"]["placed_by"]["id"], "supervisor-1");
    assert!(held["hold"]["placed_seq"].is_u64());
    let linked = seg("open-case").await;
    assert_eq!(linked["retention"]["open_cases"], json!([open]));
    assert_eq!(linked["retention"]["held"], false);
    assert_eq!(linked["retention"]["eligible"], false);
    assert!(linked.get("hold").is_none());
    let long_kept = seg("long-case").await;
    assert_eq!(long_kept["retention"]["category"], "homicide");
    assert_eq!(long_kept["retention"]["days"], 3650);
    assert_eq!(long_kept["retention"]["eligible"], false);
    let free = seg("free").await;
    assert_eq!(free["retention"]["eligible"], true);
    assert_eq!(free["retention"]["open_cases"], json!([]));
    assert!(free["retention"].get("deleted_seq").is_none());

    // A dry run lists, and changes nothing.
    let listed = gov(&env.ledger, &retention, Some(&store), true)
        .await
        .unwrap();
    let ids: Vec<_> = listed
        .iter()
        .map(|i| i.status.segment_id.as_str())
        .collect();
    assert_eq!(ids, ["free"]);
    assert!(env.entries_of("retention.deleted").is_empty());
    assert!(store.head(&ObjectPath::from("seg/free.mp4")).await.is_ok());

    // The real sweep: one entry, then the object is gone.
    let done = gov(&env.ledger, &retention, Some(&store), false)
        .await
        .unwrap();
    assert_eq!(done.len(), 1);
    assert!(done[0].error.is_none());
    let deleted = env.entries_of("retention.deleted");
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0]["subject"], "free");
    assert_eq!(deleted[0]["actor"]["kind"], "ledger");
    assert_eq!(deleted[0]["details"]["object_key"], "seg/free.mp4");
    assert!(store.head(&ObjectPath::from("seg/free.mp4")).await.is_err());
    let free = seg("free").await;
    assert_eq!(free["retention"]["eligible"], false);
    assert_eq!(free["retention"]["deleted_seq"], deleted[0]["seq"]);
    for kept in ["held", "open-case", "long-case"] {
        assert!(
            store
                .head(&ObjectPath::from(format!("seg/{kept}.mp4").as_str()))
                .await
                .is_ok(),
            "{kept}"
        );
    }
    // Nothing twice.
    assert!(gov(&env.ledger, &retention, Some(&store), false)
        .await
        .unwrap()
        .is_empty());

    // Released hold, closed case: now they go (the long category still keeps its segment).
    let a = env
        .call_as(
            Method::DELETE,
            "/v1/segments/held/hold",
            "supervisor-1",
            None,
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    let a = env
        .post_as(&format!("/v1/cases/{open}/close"), "supervisor-1", None)
        .await;
    assert_eq!(a.status, StatusCode::OK);
    let done = gov(&env.ledger, &retention, Some(&store), false)
        .await
        .unwrap();
    let mut ids: Vec<_> = done.iter().map(|i| i.status.segment_id.clone()).collect();
    ids.sort();
    assert_eq!(ids, ["held", "open-case"]);
    assert!(store
        .head(&ObjectPath::from("seg/long-case.mp4"))
        .await
        .is_ok());
    assert_eq!(env.entries_of("retention.deleted").len(), 3);
}

/// A recorder whose clock was reset says its footage was recorded in 2000;
/// it was docked on 2026-12-05. Retention counts from the later of the
/// recording's end and the ledger's time of the ingest, so the sweep keeps
/// it for 180 days from the docking, not from 2000.
#[tokio::test]
async fn retention_counts_from_the_ingest_not_from_a_reset_recorder_clock() {
    let (_objects_dir, store) = local_store();
    let clock = TestClock::at("2026-12-05T10:00:00Z");
    let env = governed(store.clone(), Some(clock.clone())).await;
    store
        .put(&ObjectPath::from("seg/reset.mp4"), footage(64).into())
        .await
        .unwrap();
    env.ingest_recorded(
        "reset",
        "seg/reset.mp4",
        &footage(64),
        "2000-01-01T00:00:00Z",
    )
    .await;
    clock.set("2026-12-06T00:00:00Z");
    let a = env.get_as("/v1/segments/reset", "auditor-1").await;
    assert_eq!(a.json()["retention"]["until"], "2027-06-03T10:00:00Z");
    assert_eq!(a.json()["retention"]["eligible"], false);
    let listed = custos_ledger::governance::sweep(&env.ledger, &retention(), Some(&store), true)
        .await
        .unwrap();
    assert!(listed.is_empty(), "{listed:?}");
    // 180 days after the docking it may go.
    clock.set("2027-06-03T10:00:01Z");
    let listed = custos_ledger::governance::sweep(&env.ledger, &retention(), Some(&store), true)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
}

/// Two segments recorded before the object-key index may name one object.
/// When the first's retention ends, the sweep records its deletion but
/// keeps the object, which the second (live) segment still references;
/// once the second goes too, the object is deleted.
#[tokio::test]
async fn the_sweep_keeps_an_object_another_live_segment_references() {
    let (_objects_dir, store) = local_store();
    let clock = TestClock::at("2026-01-01T10:00:00Z");
    let env = governed(store.clone(), Some(clock.clone())).await;
    let shared = ObjectPath::from("seg/shared.mp4");
    store.put(&shared, footage(64).into()).await.unwrap();
    env.ingest_recorded(
        "first",
        "seg/shared.mp4",
        &footage(64),
        "2026-01-01T09:00:00Z",
    )
    .await;
    // As a store written before the index: the key's row is not there.
    let row = custos_ledger::layout::table_key(
        custos_ledger::catalogue::OBJECT_KEYS,
        custos_ledger::catalogue::object_key_id("seg/shared.mp4").as_bytes(),
    );
    env.ledger.store().tree().remove(row).unwrap();
    clock.set("2026-03-01T10:00:00Z");
    env.ingest_recorded(
        "second",
        "seg/shared.mp4",
        &footage(64),
        "2026-03-01T09:00:00Z",
    )
    .await;

    // The first's 180 days have ended, the second's have not.
    clock.set("2026-07-15T00:00:00Z");
    let done = custos_ledger::governance::sweep(&env.ledger, &retention(), Some(&store), false)
        .await
        .unwrap();
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(done[0].status.segment_id, "first");
    let why = done[0].error.as_deref().unwrap_or_default();
    assert!(
        why.contains("second"),
        "the kept object names its other segment: {why}"
    );
    assert!(store.head(&shared).await.is_ok(), "the object was deleted");
    assert_eq!(env.entries_of("retention.deleted").len(), 1);

    clock.set("2026-09-01T00:00:00Z");
    let done = custos_ledger::governance::sweep(&env.ledger, &retention(), Some(&store), false)
        .await
        .unwrap();
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(done[0].status.segment_id, "second");
    assert_eq!(done[0].error, None);
    assert!(
        store.head(&shared).await.is_err(),
        "the object outlived both"
    );
}

/// An approval stays in force for the days the supervisor gave (default
/// `[access] approval_valid_days`); past its end it opens no footage by any
/// path, and the refusal is on the record.
#[tokio::test]
async fn an_approval_ends() {
    let (_objects_dir, store) = local_store();
    let clock = TestClock::at("2026-12-05T10:00:00Z");
    let env = governed(store.clone(), Some(clock.clone())).await;
    store
        .put(&ObjectPath::from("seg/a.mp4"), footage(64).into())
        .await
        .unwrap();
    env.ingest("a", "seg/a.mp4", &footage(64)).await;
    let a = env
        .post_as(
            "/v1/access-requests",
            "reviewer-1",
            Some(json!({"segment": "a", "reason": "hearing"})),
        )
        .await;
    let request = a.json()["request"]["id"].as_str().unwrap().to_owned();
    // Out of range: refused, nothing decided.
    for days in [0, 367] {
        let a = env
            .post_as(
                &format!("/v1/access-requests/{request}/approve"),
                "supervisor-1",
                Some(json!({"valid_days": days})),
            )
            .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{days}");
    }
    let a = env
        .post_as(
            &format!("/v1/access-requests/{request}/approve"),
            "supervisor-1",
            Some(json!({"valid_days": 2})),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    let content = "/v1/segments/a/content";
    clock.set("2026-12-07T09:59:59Z");
    let a = env.get_as(content, "reviewer-1").await;
    assert_eq!(a.status, StatusCode::OK);
    clock.set("2026-12-07T10:00:00Z");
    let refused_before = env.entries_of("access.refused").len();
    for (method, body) in [
        (Method::GET, None),
        (Method::HEAD, None),
        (Method::POST, Some(json!({"segments": ["a"]}))),
    ] {
        let uri = if method == Method::POST {
            "/v1/exports"
        } else {
            content
        };
        let a = env
            .call_as(method.clone(), uri, "reviewer-1", body, None)
            .await;
        assert_eq!(
            a.status,
            StatusCode::FORBIDDEN,
            "{method} after the approval ended"
        );
    }
    assert_eq!(env.entries_of("access.refused").len(), refused_before + 3);
    assert!(env.entries_of("export.created").is_empty());
}

/// HEAD on every GET route answers what GET would (it answered 500: HEAD
/// was missing from the role matrix); on footage, without a body and
/// without a view entry.
#[tokio::test]
async fn head_answers_as_get_does() {
    let (_objects_dir, store) = local_store();
    let env = governed(store.clone(), None).await;
    store
        .put(&ObjectPath::from("seg/a.mp4"), footage(64).into())
        .await
        .unwrap();
    env.ingest("a", "seg/a.mp4", &footage(64)).await;
    for uri in [
        "/v1/checkpoint",
        "/v1/entries?start=0",
        "/v1/segments",
        "/v1/segments/a",
        "/v1/segments/a/custody",
        "/v1/openapi.json",
        "/healthz",
    ] {
        let get = env.get_as(uri, "auditor-1").await;
        let head = env
            .call_as(Method::HEAD, uri, "auditor-1", None, None)
            .await;
        assert_eq!(head.status, get.status, "HEAD {uri}");
        assert!(head.body.is_empty(), "HEAD {uri} has no body");
    }
    let views = env.entries_of("segment.viewed").len();
    let head = env
        .call_as(
            Method::HEAD,
            "/v1/segments/a/content",
            "supervisor-1",
            None,
            Some("bytes=0-9"),
        )
        .await;
    assert_eq!(head.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(head.header("content-range"), "bytes 0-9/64");
    assert_eq!(head.header("content-length"), "10");
    assert!(head.body.is_empty());
    assert_eq!(env.entries_of("segment.viewed").len(), views);
    // Without approval: refused as a GET is, and the refusal recorded.
    let refused = env.entries_of("access.refused").len();
    let head = env
        .call_as(
            Method::HEAD,
            "/v1/segments/a/content",
            "reviewer-1",
            None,
            None,
        )
        .await;
    assert_eq!(head.status, StatusCode::FORBIDDEN);
    assert_eq!(env.entries_of("access.refused").len(), refused + 1);
}
