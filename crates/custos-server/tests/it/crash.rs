//! A real server process killed with SIGKILL in the middle of batches of
//! concurrent appends loses no acknowledged entry.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use custos_client::LedgerClient;
use custos_core::dsse::Envelope;
use custos_core::merkle::{leaf_hash, Hash};
use custos_ledger::{LedgerOptions, Role};
use custos_server::offline;

use crate::util::*;

const SERVER: &str = env!("CARGO_BIN_EXE_custos-ledger-bench");

/// Write a config, the ledger key, a dock token and an auditor token into `dir`.
fn prepare(dir: &Path) -> (String, String) {
    std::fs::write(
        dir.join("custos.toml"),
        format!("[ledger]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"./ledger\"\norigin = \"{ORIGIN}\"\nkey_file = \"./ledger.key\"\n"),
    )
    .unwrap();
    ledger_key().save(&dir.join("ledger.key")).unwrap();
    let token = offline::create_token(
        LedgerOptions::new(dir.join("ledger"), ORIGIN),
        &dir.join("ledger.key"),
        admin_actor(),
        Role::Dock,
        "dock-01",
        Some(dock_key().verifier_key()),
    )
    .unwrap();
    let auditor = offline::create_token(
        LedgerOptions::new(dir.join("ledger"), ORIGIN),
        &dir.join("ledger.key"),
        admin_actor(),
        Role::Auditor,
        "aud-1",
        None,
    )
    .unwrap();
    (token.token, auditor.token)
}

/// Start `serve` and wait for its "listening on URL" line.
fn start(dir: &Path) -> (Child, String) {
    let mut child = Command::new(SERVER)
        .args(["serve", "--config"])
        .arg(dir.join("custos.toml"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (child, url)
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_in_the_middle_of_batches_loses_no_acknowledged_entry() {
    let dir = tempfile::tempdir().unwrap();
    let (token, auditor) = prepare(dir.path());
    let (child, url) = start(dir.path());
    let mut server = KillOnDrop(child);

    // While the service runs, offline token creation says why it cannot.
    let err = offline::create_token(
        LedgerOptions::new(dir.path().join("ledger"), ORIGIN),
        &dir.path().join("ledger.key"),
        admin_actor(),
        Role::Auditor,
        "aud-2",
        None,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("in use by another process"),
        "{err}"
    );

    let envelopes: Arc<Vec<Envelope>> = Arc::new(
        (0..1200)
            .map(|i| docked_event(&format!("rec-{i:05}")))
            .collect(),
    );
    let client = LedgerClient::with_timeout(&url, Some(&token), Duration::from_secs(10)).unwrap();
    let acked: Arc<Mutex<HashMap<usize, (u64, Hash)>>> = Arc::default();
    let failed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (client, envelopes, acked, failed, next) = (
            client.clone(),
            envelopes.clone(),
            acked.clone(),
            failed.clone(),
            next.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(env) = envelopes.get(i) else { break };
                match client.append_envelope(env).await {
                    Ok(r) => {
                        acked.lock().unwrap().insert(i, (r.seq, r.leaf_hash));
                    }
                    Err(_) => {
                        failed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        break;
                    }
                }
            }
        }));
    }
    // Kill when a few hundred appends are acknowledged and 32 are in flight.
    let started = Instant::now();
    while acked.lock().unwrap().len() < 300 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the server is too slow"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let failed = failed.load(std::sync::atomic::Ordering::SeqCst);
    assert!(failed > 0, "the kill must land while appends are in flight");

    // Restart: every acknowledged entry is there with the same bytes.
    let (child, url) = start(dir.path());
    let _server = KillOnDrop(child);
    let client = LedgerClient::new(&url, Some(&token)).unwrap();
    let size = {
        let cp = client.checkpoint().await.unwrap();
        cp.lines().nth(1).unwrap().parse::<u64>().unwrap()
    };
    assert!(
        size as usize > acked.len(),
        "size {size}, acknowledged {}",
        acked.len()
    );
    let reader = LedgerClient::new(&url, Some(&auditor)).unwrap();
    let mut entries = Vec::new();
    while (entries.len() as u64) < size {
        let page = reader
            .entries(entries.len() as u64, Some(size))
            .await
            .unwrap();
        assert!(!page.is_empty());
        entries.extend(page);
    }
    let root = crate::proofs::checkpoint_root(&client.checkpoint().await.unwrap());
    for (&i, &(seq, leaf)) in &acked {
        let raw = entries[seq as usize].raw_bytes().unwrap();
        assert_eq!(
            leaf_hash(&raw),
            leaf,
            "acknowledged entry {seq} (event {i}) changed or vanished"
        );
        let proof = client.inclusion_proof(seq, size).await.unwrap();
        let hashes: Vec<[u8; 32]> = proof.hashes.iter().map(|h| h.to_bytes()).collect();
        assert!(
            crate::proofs::verify_inclusion(seq, size, crate::proofs::leaf(&raw), &hashes, root),
            "acknowledged entry {seq} (event {i}) is not provable in the restarted log"
        );
    }
    // Sending every event again: acknowledged ones are duplicates with
    // their first index; the rest are appended now (or were durable but
    // unacknowledged, and are duplicates too).
    for (i, env) in envelopes.iter().enumerate() {
        let r = client.append_envelope(env).await.unwrap();
        if let Some(&(seq, leaf)) = acked.get(&i) {
            assert!(r.duplicate, "event {i}");
            assert_eq!((r.seq, r.leaf_hash), (seq, leaf), "event {i}");
        }
    }
    let cp = client.checkpoint().await.unwrap();
    let final_size: u64 = cp.lines().nth(1).unwrap().parse().unwrap();
    assert_eq!(
        final_size,
        2 + envelopes.len() as u64,
        "two token entries and one entry per event"
    );
    // The restarted service's full verification passes.
    let started = Instant::now();
    loop {
        let h = client.health().await.unwrap();
        assert_eq!(h.status, "ok", "{h:?}");
        if started.elapsed() > Duration::from_millis(300) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
