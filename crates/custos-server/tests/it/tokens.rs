//! The token lifecycle: revocation effective on the very next request,
//! expiry, a dock key replaced without breaking what the old key signed,
//! the admin's routes, the offline commands, and token rows changed behind
//! the ledger's back found at start-up.

use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;

use axum::http::{Method, StatusCode};
use custos_core::bundle;
use custos_core::digest::Digest;
use custos_core::entry::actions;
use custos_core::entry::details::SegmentVerified;
use custos_core::entry::Details;
use custos_core::keys::SigningKey;
use custos_ledger::auth::{DOCK_KEYS, TOKENS};
use custos_ledger::export::{self, ExportRequest, ObjectFootage};
use custos_ledger::{layout, Ledger, LedgerOptions, OpenError, Role, TamperError};
use custos_server::offline;
use object_store::memory::InMemory;
use object_store::{ObjectStore, ObjectStoreExt};
use serde_json::Value;

use crate::util::*;

#[tokio::test]
async fn a_revoked_token_is_refused_on_the_very_next_request() {
    let t = TestLedger::new().await;
    let admin = t.token(Role::Admin).to_owned();
    // Used once, so that any cache of tokens holds it.
    let a = t.get("/v1/segments", Some(Role::Reviewer)).await;
    assert_eq!(a.status, StatusCode::OK);

    // Only an admin may revoke or list.
    for role in [Role::Reviewer, Role::Supervisor, Role::Auditor, Role::Dock] {
        let a = t
            .call(
                Method::POST,
                "/v1/tokens/reviewer-1/revoke",
                Some(t.token(role)),
                None,
            )
            .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{role}");
        let a = t.get("/v1/tokens", Some(role)).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{role}");
    }
    assert!(t.entries_of(actions::TOKEN_REVOKED).is_empty());

    let a = t
        .call(
            Method::POST,
            "/v1/tokens/reviewer-1/revoke",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let answer = a.json();
    let a = t.get("/v1/segments", Some(Role::Reviewer)).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.text());
    assert_eq!(a.error().error, "revoked_token");

    let revoked = t.entries_of(actions::TOKEN_REVOKED);
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["subject"], "reviewer-1");
    assert_eq!(revoked[0]["actor"]["id"], "admin-1");
    assert_eq!(revoked[0]["details"]["token_ids"], answer["token_ids"]);
    assert_eq!(revoked[0]["seq"], answer["seq"]);

    // Listed as revoked; no secret and no hash of one in the list.
    let a = t.get("/v1/tokens", Some(Role::Admin)).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(!a.text().contains("secret"), "{}", a.text());
    let list = a.json();
    let row = list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "reviewer-1")
        .unwrap()
        .clone();
    assert_eq!(row["state"], "revoked");
    assert_eq!(row["id"], answer["token_ids"][0]);

    // Nothing left to revoke: 404 and no token.revoked entry.
    let a = t
        .call(
            Method::POST,
            "/v1/tokens/reviewer-1/revoke",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.text());
    assert_eq!(t.entries_of(actions::TOKEN_REVOKED).len(), 1);
    t.ledger.close().await;
}

#[tokio::test]
async fn an_expired_token_answers_401() {
    let clock = TestClock::new();
    let c = clock.clone();
    let t = TestLedger::with_options(move |o| o.clock = Arc::new(c)).await;
    let end = now().checked_add(time::Duration::seconds(60)).unwrap();
    let token = t
        .ledger
        .create_token_until(admin_actor(), Role::Auditor, "temp-1", None, Some(end))
        .await
        .unwrap()
        .token;
    let a = t
        .call(Method::GET, "/v1/segments", Some(&token), None)
        .await;
    assert_eq!(a.status, StatusCode::OK);
    clock.advance(60);
    let a = t
        .call(Method::GET, "/v1/segments", Some(&token), None)
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.text());
    assert_eq!(a.error().error, "expired_token");
    // An end already past is refused at creation.
    assert!(t
        .ledger
        .create_token_until(admin_actor(), Role::Auditor, "temp-2", None, Some(end))
        .await
        .is_err());
    let list = t.ledger.tokens().unwrap();
    let temp = list.iter().find(|i| i.name == "temp-1").unwrap();
    assert_eq!(
        (temp.state.as_str(), temp.expires_at),
        ("expired", Some(end))
    );
    t.ledger.close().await;
}

/// Footage bytes and their manifest, signed by dock-01's `key`.
fn ingest_with_footage(
    key: &SigningKey,
    segment: &str,
    bytes: &[u8],
) -> (custos_core::dsse::Envelope, String) {
    let mut m = manifest(segment, "rec-7", "officer-42", "2026-03-01T07:00:00Z");
    m.size = bytes.len() as u64;
    m.digests.sha256 = Digest::sha256(bytes);
    let object = m.object.key.clone();
    (ingest_event_with(key, &m), object)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_dock_key_still_verifies_what_it_signed() {
    let t = TestLedger::new().await;
    let old_token = t.token(Role::Dock).to_owned();
    let old_key = dock_key();
    let new_key = SigningKey::from_seed("dock-01-2027", &[9; 32]).unwrap();
    let objects: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let bytes_a = vec![7u8; 5000];
    let (env_a, key_a) = ingest_with_footage(&old_key, "seg-a", &bytes_a);
    objects
        .put(
            &object_store::path::Path::parse(&key_a).unwrap(),
            bytes_a.clone().into(),
        )
        .await
        .unwrap();
    assert_eq!(t.post_event(&env_a).await.status, StatusCode::CREATED);

    // The new key comes with a new token; the old token is revoked by id.
    let new_token = t
        .ledger
        .create_token(
            admin_actor(),
            Role::Dock,
            "dock-01",
            Some(new_key.verifier_key()),
        )
        .await
        .unwrap();
    let old_id = t.ledger.authenticate(&old_token).unwrap().token_id;
    let a = t
        .call(
            Method::POST,
            &format!("/v1/tokens/dock-01/revoke?token_id={old_id}"),
            Some(t.token(Role::Admin)),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.json()["token_ids"], serde_json::json!([old_id]));

    let post = |token: String, env: custos_core::dsse::Envelope| {
        let t = &t;
        async move {
            t.call(
                Method::POST,
                "/v1/events",
                Some(&token),
                Some(("application/json", env.to_json())),
            )
            .await
        }
    };
    // The old token is refused; the new token with the old key is too.
    let verified = Details::SegmentVerified(SegmentVerified {
        method: "read_back".into(),
        object_key: "objects/seg-a".into(),
        sha256: "00".repeat(32),
    })
    .to_map();
    let a = post(
        old_token.clone(),
        event_by(&old_key, "segment.verified", "seg-a", verified.clone()),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let a = post(
        new_token.token.clone(),
        event_by(&old_key, "segment.verified", "seg-a", verified.clone()),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text());
    // The new key works for the same dock's segment.
    let a = post(
        new_token.token.clone(),
        event_by(&new_key, "segment.verified", "seg-a", verified.clone()),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());

    // Both keys stay registered to dock-01, and a bundle of seg-a (its
    // manifest signed by the old key, its verification by the new one)
    // verifies with the ledger key pinned.
    for key in [&old_key, &new_key] {
        let row = t
            .ledger
            .store()
            .table_get(DOCK_KEYS, key.verifier_key().key_id().as_bytes())
            .unwrap();
        assert!(
            row.is_some(),
            "{} unregistered",
            key.verifier_key().key_id()
        );
    }
    let reviewer = custos_core::entry::Actor {
        kind: custos_core::entry::ActorKind::Reviewer,
        id: "reviewer-1".into(),
    };
    let source = Arc::new(ObjectFootage::new(
        objects.clone(),
        tokio::runtime::Handle::current(),
    ));
    let request = ExportRequest {
        segments: vec!["seg-a".into()],
        case: None,
        reason: Some("key rotation".into()),
    };
    // The bundle's keys are under test here, not the footage gate.
    let gate = custos_ledger::governance::FootageGate::operator(reviewer);
    let (tar, _) = export::export_bundle(&t.ledger, &gate, &request, source, Vec::new())
        .await
        .unwrap();
    let report = bundle::verify(
        Cursor::new(&tar),
        std::slice::from_ref(t.ledger.verifier_key()),
        &mut |_| {},
    )
    .unwrap_or_else(|e| panic!("the bundle does not verify: {e}"));
    assert!(report.is_valid(), "{report:?}");
    t.ledger.close().await;
}

/// A closed ledger with a reviewer, a dock and a revoked auditor token.
async fn closed_ledger_with_tokens(dir: &Path) {
    let ledger = Ledger::open(LedgerOptions::new(dir, ORIGIN), ledger_key()).unwrap();
    for (role, name) in [(Role::Reviewer, "rev-1"), (Role::Auditor, "aud-1")] {
        ledger
            .create_token(admin_actor(), role, name, None)
            .await
            .unwrap();
    }
    ledger
        .create_token(
            admin_actor(),
            Role::Dock,
            "dock-01",
            Some(dock_key().verifier_key()),
        )
        .await
        .unwrap();
    ledger
        .revoke_token(admin_actor(), "aud-1", None)
        .await
        .unwrap();
    ledger.close().await;
}

/// Change the row `key` of `table` as an intruder with disk access would.
fn poke_row(dir: &Path, table: &str, find: impl Fn(&Value) -> bool, change: impl Fn(&mut Value)) {
    let db = sled::open(dir).unwrap();
    let tree = db.open_tree(layout::TREE_NAME).unwrap();
    let prefix = layout::table_prefix(table);
    let mut done = false;
    for row in tree.scan_prefix(&prefix) {
        let (k, v) = row.unwrap();
        let mut value: Value = serde_json::from_slice(&v).unwrap();
        if find(&value) {
            change(&mut value);
            tree.insert(k, serde_json::to_vec(&value).unwrap()).unwrap();
            done = true;
            break;
        }
    }
    assert!(done, "no row to change in {table}");
    db.flush().unwrap();
}

fn open(dir: &Path) -> Result<Ledger, OpenError> {
    Ledger::open(LedgerOptions::new(dir, ORIGIN), ledger_key())
}

fn row_refusal(result: Result<Ledger, OpenError>) -> String {
    match result {
        Err(OpenError::Tampered(t @ TamperError::Row { .. })) => t.to_string(),
        Err(other) => panic!("expected a tampered row, got {other}"),
        Ok(_) => panic!("the ledger opened with a tampered token row"),
    }
}

#[tokio::test]
async fn a_tampered_token_row_is_found_at_start_up() {
    // A reviewer's token made an admin's.
    let dir = tempfile::tempdir().unwrap();
    closed_ledger_with_tokens(dir.path()).await;
    poke_row(
        dir.path(),
        TOKENS,
        |v| v["name"] == "rev-1",
        |v| v["role"] = "admin".into(),
    );
    let why = row_refusal(open(dir.path()));
    assert!(why.contains("role") && why.contains(TOKENS), "{why}");

    // A token's secret hash replaced by one whose secret the intruder knows.
    let dir = tempfile::tempdir().unwrap();
    closed_ledger_with_tokens(dir.path()).await;
    poke_row(
        dir.path(),
        TOKENS,
        |v| v["name"] == "rev-1",
        |v| v["secret_sha256"] = "00".repeat(32).into(),
    );
    let why = row_refusal(open(dir.path()));
    assert!(why.contains("secret"), "{why}");

    // A dock key moved to another dock.
    let dir = tempfile::tempdir().unwrap();
    closed_ledger_with_tokens(dir.path()).await;
    poke_row(
        dir.path(),
        DOCK_KEYS,
        |_| true,
        |v| v["dock"] = "dock-99".into(),
    );
    let why = row_refusal(open(dir.path()));
    assert!(why.contains(DOCK_KEYS), "{why}");

    // A revoked token marked revoked no more, the entry that revoked it
    // still named: found at start-up.
    let dir = tempfile::tempdir().unwrap();
    closed_ledger_with_tokens(dir.path()).await;
    poke_row(
        dir.path(),
        TOKENS,
        |v| v["name"] == "aud-1",
        |v| v["revoked"] = false.into(),
    );
    row_refusal(open(dir.path()));

    // ... and with that entry's seq removed as well: the start-up check
    // cannot tell, the full verification (run after every start) does.
    let dir = tempfile::tempdir().unwrap();
    closed_ledger_with_tokens(dir.path()).await;
    poke_row(
        dir.path(),
        TOKENS,
        |v| v["name"] == "aud-1",
        |v| {
            v["revoked"] = false.into();
            v.as_object_mut().unwrap().remove("revoked_seq");
        },
    );
    let ledger = open(dir.path()).unwrap();
    let err = ledger.verify_all().unwrap_err();
    assert!(
        err.to_string().contains("aud-1") || err.to_string().contains("revoked"),
        "{err}"
    );
    assert!(ledger.refusal().is_some());
    ledger.close().await;

    // The untouched ledger opens and verifies.
    let dir = tempfile::tempdir().unwrap();
    closed_ledger_with_tokens(dir.path()).await;
    let ledger = open(dir.path()).unwrap();
    ledger.verify_all().unwrap();
    ledger.close().await;
}

#[tokio::test]
async fn tokens_are_listed_and_revoked_with_the_service_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger");
    let key_file = dir.path().join("ledger.key");
    ledger_key().save(&key_file).unwrap();
    let options = || LedgerOptions::new(&path, ORIGIN);
    let reviewer = offline::create_token(
        options(),
        &key_file,
        admin_actor(),
        Role::Reviewer,
        "rev-1",
        None,
    )
    .unwrap();
    let week = std::time::Duration::from_secs(7 * 86_400);
    let temp = offline::create_token_for(
        options(),
        &key_file,
        admin_actor(),
        Role::Auditor,
        "aud-1",
        None,
        Some(week),
    )
    .unwrap();
    assert!(temp.record.expires_at.is_some());
    let list = offline::list_tokens(options(), &key_file).unwrap();
    assert_eq!(list.len(), 2);
    assert!(list.iter().all(|t| t.state == "active"));

    let (seq, ids) =
        offline::revoke_token(options(), &key_file, admin_actor(), "rev-1", None).unwrap();
    assert_eq!(ids, vec![reviewer.record.id.clone()]);
    let ledger = open(&path).unwrap();
    let err = ledger.authenticate(&reviewer.token).unwrap_err();
    assert!(err.to_string().contains("revoked"), "{err}");
    ledger.authenticate(&temp.token).unwrap();
    let entry: Value = serde_json::from_slice(&ledger.entry(seq).unwrap()).unwrap();
    assert_eq!(entry["action"], actions::TOKEN_REVOKED);
    // Never a token in an entry.
    let size = ledger.published().size;
    for s in 0..size {
        let bytes = ledger.entry(s).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for token in [&reviewer.token, &temp.token] {
            // `custos_<id>_<secret>`; the secret is URL-safe base64 and
            // may itself hold `_`, so split after the id, as the parser does.
            let (_, secret) = token
                .strip_prefix(custos_ledger::auth::TOKEN_PREFIX)
                .and_then(|rest| rest.split_once('_'))
                .unwrap();
            assert!(!text.contains(secret), "entry {s} holds a token");
        }
    }
    ledger.close().await;
    drop(ledger);
    let list = offline::list_tokens(options(), &key_file).unwrap();
    let states: Vec<_> = list
        .iter()
        .map(|t| (t.name.as_str(), t.state.as_str()))
        .collect();
    assert_eq!(states, vec![("aud-1", "active"), ("rev-1", "revoked")]);
}
