//! A dock credential attests only its own work (DESIGN.md, "Trust model"):
//! a second dock's token and key, stolen or misused, cannot record events
//! about the first dock's segments, ingest a manifest naming another dock,
//! or point a segment at an object another segment holds. Each refusal is
//! a 403 and adds nothing to the log.

use axum::http::{Method, StatusCode};
use custos_core::keys::SigningKey;
use custos_ledger::catalogue;
use custos_ledger::wire::Custody;
use custos_ledger::{Ledger, LedgerOptions, Role};
use serde_json::{json, Map, Value};

use crate::util::*;

/// The second dock's key.
fn other_key() -> SigningKey {
    SigningKey::from_seed("dock-02", &[3; 32]).unwrap()
}

/// A ledger whose dock-01 ingested `seg-1`, and the token of a second
/// dock, dock-02, with its own registered key.
async fn two_docks() -> (TestLedger, String) {
    let t = TestLedger::new().await;
    let a = t.post_event(&ingest_event("seg-1")).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    let token = t
        .ledger
        .create_token(
            admin_actor(),
            Role::Dock,
            "dock-02",
            Some(other_key().verifier_key()),
        )
        .await
        .unwrap()
        .token;
    (t, token)
}

async fn post_as(t: &TestLedger, token: &str, envelope: &custos_core::dsse::Envelope) -> Answer {
    t.call(
        Method::POST,
        "/v1/events",
        Some(token),
        Some(("application/json", envelope.to_json())),
    )
    .await
}

async fn custody_len(t: &TestLedger, segment: &str) -> usize {
    let a = t
        .get(
            &format!("/v1/segments/{segment}/custody"),
            Some(Role::Auditor),
        )
        .await;
    let custody: Custody = serde_json::from_slice(&a.body).unwrap();
    custody.entries.len()
}

fn details(pairs: Value) -> Map<String, Value> {
    pairs.as_object().unwrap().clone()
}

#[tokio::test]
async fn a_second_docks_events_about_the_first_docks_segment_are_refused_and_add_nothing() {
    let (t, token) = two_docks().await;
    let size = t.size();
    let custody = custody_len(&t, "seg-1").await;
    let attempts = [
        event_by(
            &other_key(),
            "segment.verified",
            "seg-1",
            details(json!({"method": "read_back", "object_key": "k", "sha256": "00"})),
        ),
        event_by(
            &other_key(),
            "segment.wiped",
            "seg-1",
            details(json!({"recorder_id": "rec-7", "original_name": null, "verified_seq": null})),
        ),
        event_by(
            &other_key(),
            "dock.note",
            "dock-02",
            details(json!({"segment_id": "seg-1", "note": "mine now"})),
        ),
        event_by(
            &other_key(),
            "dock.note",
            "seg-1",
            details(json!({"note": "about it"})),
        ),
        event_by(
            &other_key(),
            "dock.note",
            "rec-7",
            details(json!({"segments": ["seg-1"]})),
        ),
    ];
    for envelope in &attempts {
        let a = post_as(&t, &token, envelope).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text());
        let err = a.error();
        assert_eq!(err.error, "not_own_work");
        assert!(
            err.message.contains("seg-1") && err.message.contains("dock-01"),
            "{}",
            err.message
        );
    }
    assert_eq!(t.size(), size, "a refusal appended something");
    assert_eq!(custody_len(&t, "seg-1").await, custody);
    let seg = t.ledger.segment("seg-1").unwrap().unwrap();
    assert_eq!((seg.verified_seq, seg.wiped_seq), (None, None));

    // The dock that ingested it still may.
    let a = t.post_event(&verified_event("seg-1")).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    // And dock-02 may still record its own station events.
    let a = post_as(
        &t,
        &token,
        &event_by(&other_key(), "dock.started", "dock-02", Map::new()),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
}

#[tokio::test]
async fn a_manifest_naming_another_dock_is_refused() {
    let (t, token) = two_docks().await;
    let size = t.size();
    // dock-02 signs a manifest that says dock-01 ingested it.
    let m = manifest("seg-2", "rec-7", "officer-42", "2026-03-01T07:10:00Z");
    assert_eq!(m.dock.id, "dock-01");
    let a = post_as(&t, &token, &ingest_event_with(&other_key(), &m)).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text());
    let err = a.error();
    assert_eq!(err.error, "not_own_work");
    assert!(err.message.contains("dock-01"), "{}", err.message);
    assert_eq!(t.size(), size);
    assert!(t.ledger.segment("seg-2").unwrap().is_none());

    // The same dock re-sending the first dock's segment is refused too.
    let mut again = manifest("seg-1", "rec-7", "officer-42", "2026-03-01T07:00:00Z");
    again.dock.id = "dock-02".into();
    let a = post_as(&t, &token, &ingest_event_with(&other_key(), &again)).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text());
    assert_eq!(t.size(), size);
}

#[tokio::test]
async fn a_second_segment_on_a_taken_object_key_is_refused() {
    let (t, token) = two_docks().await;
    let size = t.size();
    let taken = manifest("seg-1", "rec-7", "officer-42", "2026-03-01T07:00:00Z")
        .object
        .key;
    // A fake segment with an old recording date on the held segment's
    // object: by another dock, by the same dock, and spelt with a leading
    // slash (the same object to the store).
    let mut fake = manifest("seg-fake", "rec-7", "officer-42", "2020-01-01T00:00:00Z");
    fake.dock.id = "dock-02".into();
    fake.object.key = taken.clone();
    let a = post_as(&t, &token, &ingest_event_with(&other_key(), &fake)).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text());
    assert!(a.error().message.contains("seg-1"), "{}", a.error().message);

    let mut own = manifest("seg-3", "rec-7", "officer-42", "2020-01-01T00:00:00Z");
    own.object.key = format!("/{taken}");
    let a = t.post_event(&ingest_event_with(&dock_key(), &own)).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text());
    assert_eq!(t.size(), size);
    assert!(t.ledger.segment("seg-fake").unwrap().is_none());
    assert!(t.ledger.segment("seg-3").unwrap().is_none());

    // The same segment re-sent (a dock's retry of the same bytes) is still
    // accepted as the duplicate it is.
    let a = t.post_event(&ingest_event("seg-1")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
}

#[tokio::test]
async fn segments_ingested_before_the_index_are_indexed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger");
    let ledger = Ledger::open(LedgerOptions::new(&path, ORIGIN), ledger_key()).unwrap();
    let key = manifest("seg-old", "rec-7", "officer-42", "2026-03-01T07:00:00Z")
        .object
        .key;
    let dock_token = ledger
        .create_token(
            admin_actor(),
            Role::Dock,
            "dock-01",
            Some(dock_key().verifier_key()),
        )
        .await
        .unwrap();
    let dock = ledger.authenticate(&dock_token.token).unwrap();
    ledger
        .append_envelope(&dock, ingest_event("seg-old"))
        .await
        .unwrap();
    assert_eq!(
        catalogue::segment_by_object_key(ledger.store(), &key).unwrap(),
        Some("seg-old".to_owned())
    );
    ledger.close().await;
    drop(ledger);
    // Remove the index and its marker, as a store written before it had them.
    {
        let db = sled::open(&path).unwrap();
        let tree = db.open_tree(custos_ledger::layout::TREE_NAME).unwrap();
        let prefix = custos_ledger::layout::table_prefix(catalogue::OBJECT_KEYS);
        let keys: Vec<_> = tree.scan_prefix(&prefix).map(|r| r.unwrap().0).collect();
        assert_eq!(keys.len(), 1);
        for k in keys {
            tree.remove(k).unwrap();
        }
        tree.remove(b"Mobject_keys").unwrap();
        db.flush().unwrap();
    }
    let ledger = Ledger::open(LedgerOptions::new(&path, ORIGIN), ledger_key()).unwrap();
    assert_eq!(
        catalogue::segment_by_object_key(ledger.store(), &key).unwrap(),
        Some("seg-old".to_owned())
    );
    let mut fake = manifest("seg-new", "rec-7", "officer-42", "2026-03-01T07:00:00Z");
    fake.object.key = key;
    let dock = ledger.authenticate(&dock_token.token).unwrap();
    let err = ledger
        .append_envelope(&dock, ingest_event_with(&dock_key(), &fake))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("seg-old"), "{err}");
    ledger.close().await;
}
