//! Request timeouts on a real socket: a client that stops in the middle of
//! its request gets the configured timeout answer (503 `timeout`, the JSON
//! error shape) and its connection is closed, instead of holding a
//! connection and a task for ever; the service keeps serving others.

use std::time::{Duration, Instant};

use custos_client::LedgerClient;
use custos_ledger::{LedgerOptions, Role};
use custos_server::serve::{self, ServeOptions, Server};
use custos_server::ApiConfig;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::util::*;

const TIMEOUT: Duration = Duration::from_millis(600);

/// A served ledger whose requests time out after [`TIMEOUT`], and a dock token.
async fn server() -> (tempfile::TempDir, Server, String) {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("ledger.key");
    ledger_key().save(&key_file).unwrap();
    let options = ServeOptions {
        listen: "127.0.0.1:0".into(),
        ledger: LedgerOptions::new(dir.path().join("ledger"), ORIGIN),
        key_file,
        api: ApiConfig {
            request_timeout: TIMEOUT,
            ..ApiConfig::default()
        },
        verify_on_start: false,
        governance: Default::default(),
        sweep_interval: None,
        tls: None,
        allow_plain_http: false,
        tiles: None,
    };
    let server = serve::start(options).await.unwrap();
    let token = server
        .ledger()
        .create_token(
            admin_actor(),
            Role::Dock,
            "dock-01",
            Some(dock_key().verifier_key()),
        )
        .await
        .unwrap();
    (dir, server, token.token)
}

/// Send `head` (and nothing more), then read until the server closes the
/// connection; fails if it is still open after 10 s. Returns what was
/// read and when the first byte of it came.
async fn stall(server: &Server, head: &str) -> (String, Duration) {
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut first = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut first))
        .await
        .expect("no answer 10 s after the client stalled: the connection hangs")
        .unwrap();
    let answered = started.elapsed();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest))
        .await
        .expect("the connection stays open after the timeout answer")
        .unwrap();
    let mut text = String::from_utf8_lossy(&first[..n]).into_owned();
    text.push_str(&String::from_utf8_lossy(&rest));
    (text, answered)
}

#[tokio::test]
async fn a_stalled_body_gets_the_timeout_answer_and_the_connection_closes() {
    let (_dir, server, token) = server().await;
    let size = server.ledger().published().size;
    let envelope = docked_event("rec-1").to_json();
    let half = &envelope[..envelope.len() / 2];
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: ledger\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
        envelope.len(),
        String::from_utf8_lossy(half)
    );
    let (text, answered) = stall(&server, &head).await;
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains(r#""error":"timeout""#), "{text}");
    assert!(
        answered >= TIMEOUT - Duration::from_millis(50),
        "answered after {answered:?}, before the timeout"
    );
    // Nothing was appended, and the service still serves other clients.
    assert_eq!(server.ledger().published().size, size);
    let client = LedgerClient::new(&server.url(), Some(&token)).unwrap();
    let receipt = client
        .append_envelope(&docked_event("rec-1"))
        .await
        .unwrap();
    assert_eq!(receipt.seq, size);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn stalled_headers_get_the_connection_closed() {
    let (_dir, server, _token) = server().await;
    let (text, answered) = stall(&server, "GET /v1/checkpoint HTTP/1.1\r\nHost: led").await;
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
    assert!(
        answered >= TIMEOUT - Duration::from_millis(50),
        "{answered:?}"
    );
    server.shutdown().await.unwrap();
}
