//! The offline queue: events wait in the dock's sled tree while the ledger
//! is unreachable and are delivered in order, exactly once, to a real
//! ledger server.

use custos_client::LedgerClient;
use custos_core::entry::{Actor, ActorKind};
use custos_dock::queue::{OfflineQueue, Sent};
use custos_ledger::{LedgerOptions, Role};
use custos_server::serve::{self, ServeOptions};
use custos_server::ApiConfig;
use custos_testsupport::fixtures::{dock_key, docked_event, event, event_by, ledger_key};
use serde_json::Map;

const ORIGIN: &str = "test.custos.local/ledger";

/// A URL where nothing listens.
fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    url
}

#[tokio::test]
async fn events_wait_while_the_ledger_is_down_and_arrive_in_order() {
    // The dock's own sled database.
    let dock_dir = tempfile::tempdir().unwrap();
    let db = sled::open(dock_dir.path()).unwrap();
    let queue = OfflineQueue::new(db.open_tree("ledger-outbox").unwrap());

    // The ledger, not reachable yet.
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("ledger.key");
    ledger_key().save(&key_file).unwrap();
    let options = ServeOptions {
        listen: "127.0.0.1:0".into(),
        ledger: LedgerOptions::new(dir.path().join("ledger"), ORIGIN),
        key_file,
        api: ApiConfig::default(),
        verify_on_start: true,
        governance: Default::default(),
        sweep_interval: None,
        tls: None,
        allow_plain_http: false,
        tiles: None,
    };
    let down = LedgerClient::new(&dead_url(), Some("custos_0000000000000000_x")).unwrap();
    let events: Vec<_> = (0..5).map(|i| docked_event(&format!("rec-{i}"))).collect();
    for (i, env) in events.iter().enumerate() {
        let (sent, _) = queue.send(&down, env).await.unwrap();
        match sent {
            Sent::Queued { position, reason } => {
                assert_eq!(position, i as u64);
                assert!(reason.contains("cannot reach"), "{reason}");
            }
            other => panic!("expected queued, got {other:?}"),
        }
    }
    assert_eq!(queue.len(), 5);
    // A crash of the dock loses nothing: reopen the queue from its tree.
    drop(queue);
    let queue = OfflineQueue::new(db.open_tree("ledger-outbox").unwrap());
    assert_eq!(queue.len(), 5);

    // The ledger comes up; the dock's token is created first.
    let server = serve::start(options).await.unwrap();
    let token = server
        .ledger()
        .create_token(
            Actor {
                kind: ActorKind::Admin,
                id: "test-setup".into(),
            },
            Role::Dock,
            "dock-01",
            Some(dock_key().verifier_key()),
        )
        .await
        .unwrap();
    let up = LedgerClient::new(&server.url(), Some(&token.token)).unwrap();

    // A new event goes behind the queued ones: order is kept.
    let undocked = serde_json::json!({"slot": "1", "segments": 0, "done": 0, "incomplete": []});
    let late = event(
        "recorder.undocked",
        "rec-0",
        undocked.as_object().unwrap().clone(),
    );
    let (sent, delivery) = queue.send(&up, &late).await.unwrap();
    assert_eq!(delivery.delivered.len(), 5);
    let seqs: Vec<u64> = delivery.delivered.iter().map(|d| d.receipt.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    for (d, env) in delivery.delivered.iter().zip(&events) {
        assert_eq!(&d.envelope, env);
    }
    let Sent::Delivered(receipt) = sent else {
        panic!("expected the new event to be delivered directly");
    };
    assert!(receipt.seq > *seqs.last().unwrap());
    assert!(queue.is_empty());

    // Sent again (say, the dock crashed before removing it): a duplicate.
    queue.enqueue(&events[2]).await.unwrap();
    let delivery = queue.deliver(&up).await.unwrap();
    assert!(delivery.delivered[0].receipt.duplicate);
    assert_eq!(delivery.delivered[0].receipt.seq, seqs[2]);

    // A refusal a fix can lift (here: a key not registered to this token;
    // registering it would let the same bytes through) stops delivery and
    // keeps the event and everything behind it, in order.
    let stranger = custos_core::keys::SigningKey::from_seed("dock-99", &[9; 32]).unwrap();
    let waiting = OfflineQueue::new(db.open_tree("second-outbox").unwrap());
    waiting
        .enqueue(&event_by(&stranger, "recorder.docked", "rec-x", Map::new()))
        .await
        .unwrap();
    waiting.enqueue(&docked_event("rec-after")).await.unwrap();
    let delivery = waiting.deliver(&up).await.unwrap();
    assert!(delivery.rejected.is_empty() && delivery.delivered.is_empty());
    let stopped = delivery.stopped.expect("delivery stops at the refusal");
    assert!(stopped.to_string().contains("unknown_key"), "{stopped}");
    assert_eq!(waiting.len(), 2);
    assert!(waiting.rejected().unwrap().is_empty());

    // An event refused for its own content (a signature that does not
    // verify) is moved aside, not retried forever.
    let mut forged = docked_event("rec-forged");
    forged.signatures[0].sig[0] ^= 1;
    queue.enqueue(&forged).await.unwrap();
    queue.enqueue(&docked_event("rec-after")).await.unwrap();
    let delivery = queue.deliver(&up).await.unwrap();
    assert_eq!(delivery.rejected.len(), 1);
    assert!(
        delivery.rejected[0].error.contains("bad_signature"),
        "{}",
        delivery.rejected[0].error
    );
    assert_eq!(delivery.delivered.len(), 1);
    assert_eq!(queue.rejected().unwrap().len(), 1);
    assert!(queue.is_empty());
    server.shutdown().await.unwrap();
}
