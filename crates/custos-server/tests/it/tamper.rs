//! Values changed behind the ledger's back: found at start-up (with the
//! entry's index), or by the full verification, after which the service
//! refuses to serve the log.

use std::path::Path;

use axum::http::StatusCode;
use custos_core::checkpoint::Checkpoint;
use custos_core::keys::SigningKey;
use custos_core::merkle::NodeId;
use custos_ledger::check::CheckError;
use custos_ledger::layout;
use custos_ledger::{Ledger, LedgerOptions, OpenError, Role, TamperError};
use custos_server::{app, AppState};

use crate::util::*;

/// A closed ledger of 30 entries in `dir`.
async fn closed_ledger(dir: &Path) {
    let ledger = Ledger::open(LedgerOptions::new(dir, ORIGIN), ledger_key()).unwrap();
    let sup = custos_core::entry::Actor {
        kind: custos_core::entry::ActorKind::Supervisor,
        id: "sup-1".into(),
    };
    for i in 0..30 {
        ledger
            .append(
                custos_ledger::Append::new(sup.clone(), format!("case-{i}"), case_created())
                    .unwrap(),
            )
            .await
            .unwrap();
    }
    ledger.close().await;
}

/// Change one stored value with sled directly, as an intruder with disk access would.
fn poke(dir: &Path, key: &[u8], change: impl FnOnce(Vec<u8>) -> Option<Vec<u8>>) {
    // sled lets go of its lock when its flusher thread has stopped, a
    // moment after the ledger closed (longer on a loaded machine).
    let mut tries = 0;
    let db = loop {
        match sled::open(dir) {
            Ok(db) => break db,
            Err(e) if tries < 200 && e.to_string().contains("lock") => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => panic!("opening {} with sled: {e}", dir.display()),
        }
    };
    let tree = db.open_tree(layout::TREE_NAME).unwrap();
    let old = tree
        .get(key)
        .unwrap()
        .map(|v| v.to_vec())
        .unwrap_or_default();
    match change(old) {
        Some(new) => tree.insert(key, new).unwrap(),
        None => tree.remove(key).unwrap(),
    };
    db.flush().unwrap();
}

/// Overwrite the stored hash of tree node `id`.
fn poke_node(dir: &Path, id: NodeId) {
    let (key, offset) = layout::node_chunk(id);
    poke(dir, &key, |mut chunk| {
        chunk[offset..offset + 32].copy_from_slice(&[7; 32]);
        Some(chunk)
    });
}

/// Replace the first `case-` with `casX-` in an entry: same length, other bytes.
fn alter(bytes: Vec<u8>) -> Option<Vec<u8>> {
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.contains("case-"));
    Some(text.replacen("case-", "casX-", 1).into_bytes())
}

fn open(dir: &Path, window: u64) -> Result<Ledger, OpenError> {
    let mut options = LedgerOptions::new(dir, ORIGIN);
    options.startup_window = window;
    Ledger::open(options, ledger_key())
}

fn tampered_index(result: Result<Ledger, OpenError>) -> (Option<u64>, String) {
    match result {
        Err(OpenError::Tampered(t)) => (t.index(), t.to_string()),
        Err(other) => panic!("expected a tamper refusal, got {other}"),
        Ok(_) => panic!("the ledger opened a tampered log"),
    }
}

#[tokio::test]
async fn a_changed_entry_is_refused_at_startup_naming_its_index() {
    let dir = tempfile::tempdir().unwrap();
    closed_ledger(dir.path()).await;
    assert!(open(dir.path(), 1024).is_ok(), "an honest log opens");
    poke(dir.path(), &layout::entry_key(17), alter);
    let (index, message) = tampered_index(open(dir.path(), 1024));
    assert_eq!(index, Some(17), "{message}");
    assert!(message.contains("entry 17"), "{message}");
}

#[tokio::test]
async fn changed_tree_state_is_refused_at_startup() {
    // A leaf node.
    let dir = tempfile::tempdir().unwrap();
    closed_ledger(dir.path()).await;
    poke_node(dir.path(), NodeId::leaf(20));
    assert_eq!(tampered_index(open(dir.path(), 1024)).0, Some(20));

    // An interior node within the window.
    let dir = tempfile::tempdir().unwrap();
    closed_ledger(dir.path()).await;
    poke_node(dir.path(), NodeId { level: 2, index: 5 });
    assert_eq!(tampered_index(open(dir.path(), 1024)).0, Some(20));

    // A chunk of nodes cut short.
    let dir = tempfile::tempdir().unwrap();
    closed_ledger(dir.path()).await;
    poke(dir.path(), &layout::node_chunk(NodeId::leaf(0)).0, |c| {
        Some(c[..c.len() - 40].to_vec())
    });
    assert!(matches!(
        open(dir.path(), 1024),
        Err(OpenError::Tampered(_))
    ));

    // The last entry removed.
    let dir = tempfile::tempdir().unwrap();
    closed_ledger(dir.path()).await;
    poke(dir.path(), &layout::entry_key(29), |_| None);
    assert_eq!(tampered_index(open(dir.path(), 1024)).0, Some(29));

    // An entry appended behind the ledger's back.
    let dir = tempfile::tempdir().unwrap();
    closed_ledger(dir.path()).await;
    poke(dir.path(), &layout::entry_key(30), |_| Some(b"{}".to_vec()));
    assert_eq!(tampered_index(open(dir.path(), 1024)).0, Some(30));

    // The tree state rolled back to an earlier, honestly signed size.
    let dir = tempfile::tempdir().unwrap();
    closed_ledger(dir.path()).await;
    poke(dir.path(), layout::META_TREE, |_| {
        Some(custos_core::merkle::CompactRange::new().to_bytes())
    });
    assert!(matches!(
        open(dir.path(), 1024),
        Err(OpenError::Tampered(_))
    ));
}

#[tokio::test]
async fn a_checkpoint_signed_by_another_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    closed_ledger(dir.path()).await;
    let intruder = SigningKey::from_seed("ledger", &[66; 32]).unwrap();
    poke(dir.path(), layout::META_CHECKPOINT, |old| {
        let text = String::from_utf8(old).unwrap();
        let body: String = text.split_inclusive('\n').take(3).collect();
        Some(
            Checkpoint::parse(&body)
                .unwrap()
                .sign(&intruder)
                .into_bytes(),
        )
    });
    match open(dir.path(), 1024) {
        Err(e @ OpenError::Checkpoint { .. }) => {
            assert!(e.to_string().contains("ledger key"), "{e}")
        }
        other => panic!("expected a checkpoint refusal, got {:?}", other.map(|_| ())),
    }
    // The right key for this directory, but the wrong origin configured.
    let dir = tempfile::tempdir().unwrap();
    closed_ledger(dir.path()).await;
    let wrong_origin = Ledger::open(
        LedgerOptions::new(dir.path(), "other.example/ledger"),
        ledger_key(),
    );
    assert!(matches!(wrong_origin, Err(OpenError::Checkpoint { .. })));
}

#[tokio::test]
async fn an_old_entry_changed_is_found_by_the_full_check_and_the_service_stops_serving() {
    let dir = tempfile::tempdir().unwrap();
    closed_ledger(dir.path()).await;
    poke(dir.path(), &layout::entry_key(3), alter);
    // Outside a start-up window of 8 entries: the ledger opens...
    let ledger = open(dir.path(), 8).unwrap();
    let router = app(AppState::new(ledger.clone()));
    // ...and the full verification names the entry.
    match ledger.verify_all() {
        Err(CheckError::Tampered(TamperError::Entry { index, .. })) => assert_eq!(index, 3),
        other => panic!("expected entry 3 to be reported, got {other:?}"),
    }
    // From then on the log is not served, and nothing is appended.
    use tower::ServiceExt as _;
    for uri in ["/v1/checkpoint", "/v1/proof/inclusion?index=0&size=1"] {
        let req = axum::http::Request::builder()
            .uri(uri)
            .body(axum::body::Body::empty())
            .unwrap();
        let resp = router.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE, "{uri}");
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let err: custos_ledger::wire::ErrorBody = serde_json::from_slice(&body).unwrap();
        assert_eq!(err.error, "ledger_tampered");
        assert!(err.message.contains("entry 3"), "{}", err.message);
    }
    let req = axum::http::Request::builder()
        .uri("/healthz")
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    // Not ready either, though the process is live.
    for (uri, status) in [
        ("/readyz", StatusCode::SERVICE_UNAVAILABLE),
        ("/livez", StatusCode::OK),
    ] {
        let req = axum::http::Request::builder()
            .uri(uri)
            .body(axum::body::Body::empty())
            .unwrap();
        let resp = router.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), status, "{uri}");
    }
    let sup = custos_core::entry::Actor {
        kind: custos_core::entry::ActorKind::Supervisor,
        id: "sup-1".into(),
    };
    let appended = ledger
        .append(custos_ledger::Append::new(sup, "case-x", case_created()).unwrap())
        .await;
    assert!(matches!(
        appended,
        Err(custos_ledger::AppendError::Tampered(_))
    ));
    ledger.close().await;
}

#[tokio::test]
async fn reading_a_changed_entry_is_refused_even_before_the_full_check() {
    let t = TestLedger::with_options(|o| o.startup_window = 4).await;
    for i in 0..10 {
        let a = t.post_event(&docked_event(&format!("rec-{i}"))).await;
        assert_eq!(a.status, StatusCode::CREATED);
    }
    // Change entry 8 while the service runs (sled shares the open database).
    let tree = t.ledger.store().tree();
    let old = tree.get(layout::entry_key(8)).unwrap().unwrap().to_vec();
    let new = String::from_utf8(old).unwrap().replacen("rec-", "reX-", 1);
    tree.insert(layout::entry_key(8), new.as_bytes()).unwrap();
    let a = t.get("/v1/entries?start=0", Some(Role::Auditor)).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.text());
    assert!(
        a.error().message.contains("entry 8"),
        "{}",
        a.error().message
    );
    // And the ledger now refuses the rest of the log too.
    let a = t.get("/v1/checkpoint", None).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
}

fn case_created() -> custos_core::entry::Details {
    custos_core::entry::Details::CaseCreated(custos_core::entry::details::CaseCreated {
        title: "a case".into(),
        category: None,
    })
}
