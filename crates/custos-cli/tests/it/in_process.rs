//! A dock's ledger in the same process (custos-cli's `in_process`): the
//! sink answers as the HTTP API does, and the dock's key is registered once,
//! to that dock only.

use custos_cli::in_process::LocalSink;
use custos_core::keys::SigningKey;
use custos_dock::queue::EventSink;
use custos_ledger::{AppendError, Caller, Ledger, LedgerOptions, TokenError};
use custos_testsupport::fixtures::{dock_key, event, ingest_event, ledger_key};
use serde_json::Map;

fn open(dir: &tempfile::TempDir) -> Ledger {
    let options = LedgerOptions::new(dir.path().join("ledger"), "test.custos.local/ledger");
    Ledger::open(options, ledger_key()).unwrap()
}

#[tokio::test]
async fn an_in_process_dock_uses_the_same_rules() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&dir);
    ledger
        .ensure_dock_key("dock-01", dock_key().verifier_key())
        .await
        .unwrap();
    let sink = LocalSink::new(
        ledger.clone(),
        Caller::in_process_dock("dock-01", dock_key().verifier_key()),
    );
    let receipt = sink.send_event(&ingest_event("seg-1")).await.unwrap();
    assert!(!receipt.duplicate);
    let again = sink.send_event(&ingest_event("seg-1")).await.unwrap();
    assert!(again.duplicate && again.seq == receipt.seq);

    // An action a dock may not record: refused for good, in the API's words.
    let refused = sink
        .send_event(&event("case.created", "c-1", Map::new()))
        .await
        .unwrap_err();
    assert!(refused.is_final_refusal(), "{refused}");
    let (status, code, _) = refused.ledger_message().unwrap();
    assert_eq!((status, code), (403, "action_forbidden"));
    assert!(ledger.segment("seg-1").unwrap().is_some());
    ledger.close().await;
}

#[tokio::test]
async fn a_dock_key_is_registered_once_and_to_one_dock() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&dir);
    let key = dock_key().verifier_key();
    ledger
        .ensure_dock_key("dock-01", key.clone())
        .await
        .unwrap();
    let size = ledger.published().size;
    // Again at the next start: nothing new in the log.
    ledger
        .ensure_dock_key("dock-01", key.clone())
        .await
        .unwrap();
    assert_eq!(ledger.published().size, size);
    // The same key for another dock is refused, and the log is unchanged.
    let err = ledger.ensure_dock_key("dock-02", key).await.unwrap_err();
    assert!(
        matches!(&err, TokenError::Append(AppendError::Rejected(r)) if r.code == "key_registered"),
        "{err}"
    );
    assert!(err.to_string().contains("dock-01"), "{err}");
    assert_eq!(ledger.published().size, size);
    // Another key for the same dock is registered beside the first.
    let second = SigningKey::from_seed("dock-01", &[5; 32]).unwrap();
    ledger
        .ensure_dock_key("dock-01", second.verifier_key())
        .await
        .unwrap();
    assert_eq!(ledger.published().size, size + 1);
    ledger.close().await;
}
