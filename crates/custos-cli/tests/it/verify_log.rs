//! `custos verify log` against a real ledger (`custos ledger serve`, tokens
//! from `custos token create`, events appended over HTTP by a dock), and
//! against a small HTTP fixture serving logs a real ledger never would (a
//! broken chain, an altered entry, an altered signed event), since the
//! verifier exists for the day the server misbehaves.

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};

use crate::bundle_support::Fixture;
use custos_client::LedgerClient;
use custos_core::bundle::EntryLine;
use custos_core::checkpoint::Checkpoint;
use custos_core::entry::{Entry, Event};
use custos_core::keys::SigningKey;
use custos_core::manifest::Timestamp;
use custos_core::merkle::{consistency_proof, leaf_hash, root_at, MemoryTree};
use serde_json::{json, Value};

use crate::util::*;

const ORIGIN: &str = "verify-log.test/ledger";

fn verify_log(url: &str, key: &Path, old: Option<&Path>, token: Option<&str>) -> Output {
    let mut cmd = custos();
    cmd.args(["verify", "log", "--ledger", url, "--ledger-key"])
        .arg(key)
        .env_remove("CUSTOS_CLIENT_TOKEN");
    if let Some(old) = old {
        cmd.arg("--checkpoint").arg(old);
    }
    if let Some(token) = token {
        cmd.args(["--token", token]);
    }
    cmd.output().unwrap()
}

/// The checkpoint a ledger serving the fixture's whole log publishes (size
/// 11; the fixture's own is the export's, size 10).
fn whole_log_checkpoint(f: &Fixture) -> String {
    Checkpoint::new(
        crate::bundle_support::ORIGIN,
        f.full_tree.size(),
        f.full_tree.root(),
    )
    .unwrap()
    .sign(&f.ledger)
}

/// Exit code 1 and one line on stderr containing `says`.
fn assert_invalid(out: &Output, says: &str) {
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stderr: {stderr}\nstdout: {}",
        text(&out.stdout)
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("INVALID: "), "{stderr}");
    assert!(stderr.contains(says), "want {says:?} in {stderr:?}");
}

// ---------------------------------------------------------------------------
// The real ledger

struct RealLedger {
    dir: tempfile::TempDir,
    server: Child,
    url: String,
    dock_token: String,
    auditor_token: String,
}

impl Drop for RealLedger {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

impl RealLedger {
    fn start(dock: &SigningKey) -> RealLedger {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("custos.toml");
        std::fs::write(
            &config,
            format!("[ledger]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"./ledger\"\norigin = \"{ORIGIN}\"\nkey_file = \"./ledger.key\"\n"),
        )
        .unwrap();
        let keygen = custos()
            .args(["keygen", "--out"])
            .arg(dir.path().join("ledger.key"))
            .output()
            .unwrap();
        assert!(keygen.status.success(), "{}", text(&keygen.stderr));
        let dock_pub = dir.path().join("dock.pub");
        std::fs::write(&dock_pub, format!("{}\n", dock.verifier_key())).unwrap();
        let dock_token = token(&config, "dock", dock.name(), Some(&dock_pub));
        let auditor_token = token(&config, "auditor", "aud-1", None);

        let (server, url) = serve_real(&config);
        RealLedger {
            dir,
            server,
            url,
            dock_token,
            auditor_token,
        }
    }

    fn key_pub(&self) -> PathBuf {
        self.dir.path().join("ledger.key.pub")
    }

    /// Kill the service (its data stays).
    fn stop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }

    /// Start the service again, on `port` (the one it had).
    fn restart_on(&mut self, port: u16) {
        let config = self.dir.path().join("custos.toml");
        let text = std::fs::read_to_string(&config).unwrap().replace(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"127.0.0.1:{port}\""),
        );
        std::fs::write(&config, text).unwrap();
        let (server, url) = serve_real(&config);
        assert_eq!(url, self.url);
        self.server = server;
    }

    fn key(&self) -> SigningKey {
        SigningKey::load(&self.dir.path().join("ledger.key")).unwrap()
    }

    fn client(&self) -> LedgerClient {
        LedgerClient::new(&self.url, Some(&self.dock_token)).unwrap()
    }
}

/// Start `custos ledger serve --config CONFIG`: the process and its URL.
fn serve_real(config: &Path) -> (Child, String) {
    let mut serve = custos();
    serve
        .args(["ledger", "serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stderr(Stdio::null());
    custos_testsupport::serve_ledger(serve).unwrap()
}

fn event(
    dock: &SigningKey,
    action: &str,
    subject: &str,
    details: Value,
) -> custos_core::dsse::Envelope {
    let Value::Object(details) = details else {
        panic!("details must be an object")
    };
    Event::new(
        action,
        subject,
        details,
        Timestamp::parse("2026-03-01T08:00:00Z").unwrap(),
    )
    .unwrap()
    .sign(dock)
    .unwrap()
}

#[test]
fn a_real_ledger_verifies_and_extends_the_checkpoint_kept() {
    let fixture = Fixture::new();
    let dock = &fixture.dock;
    let ledger = RealLedger::start(dock);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = ledger.client();
    let append = |env| rt.block_on(client.append_envelope(&env)).unwrap();

    append(event(
        dock,
        "recorder.docked",
        "RC-17",
        json!({ "slot": "1", "profile": "generic", "model": "BWC-T", "transport": "usb" }),
    ));
    append(event(
        dock,
        "segment.ingested",
        "seg-a",
        json!({ "manifest": serde_json::to_value(&fixture.manifest_a.1).unwrap() }),
    ));
    // The auditor keeps this checkpoint.
    let kept = rt.block_on(client.checkpoint()).unwrap();
    let kept_path = ledger.dir.path().join("kept.checkpoint");
    std::fs::write(&kept_path, &kept).unwrap();
    let kept_size = Checkpoint::open(kept.as_bytes(), &ledger.key().verifier_key(), None)
        .unwrap()
        .size();
    for i in 0..9 {
        append(event(dock, "dock.heartbeat", "dock-01", json!({ "n": i })));
    }
    append(event(
        dock,
        "segment.verified",
        "seg-a",
        json!({ "method": "read_back", "object_key": "k", "sha256": "00" }),
    ));

    let out = verify_log(
        &ledger.url,
        &ledger.key_pub(),
        Some(&kept_path),
        Some(&ledger.auditor_token),
    );
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{stdout}",
        text(&out.stderr)
    );
    let size = kept_size + 10;
    for want in [
        format!("ledger {}: valid", ledger.url),
        format!("log         {ORIGIN} size {size} root "),
        format!("entries     {size}, prev chain intact, tree recomputed, 12 dock-signed events verified"),
        format!("consistent  with {} (size {kept_size})", kept_path.display()),
    ] {
        assert!(stdout.contains(&want), "no {want:?} in:\n{stdout}");
    }

    // Without a token the ledger refuses to list entries: cannot read, 2.
    let out = verify_log(&ledger.url, &ledger.key_pub(), None, None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("refused"),
        "{}",
        text(&out.stderr)
    );

    // Another ledger key: the checkpoint does not open.
    let other = ledger.dir.path().join("other.pub");
    let stranger = SigningKey::from_seed("ledger", &[42; 32]).unwrap();
    std::fs::write(&other, format!("{}\n", stranger.verifier_key())).unwrap();
    let out = verify_log(&ledger.url, &other, None, Some(&ledger.auditor_token));
    assert_invalid(&out, "checkpoint: does not open with ledger key ledger+");

    // A kept checkpoint of the same size but another root, signed by the
    // real key (the ledger showed someone a different history): a fork.
    let forked = ledger.dir.path().join("forked.checkpoint");
    let text_forked = Checkpoint::new(ORIGIN, kept_size, leaf_hash(b"another history"))
        .unwrap()
        .sign(&ledger.key());
    std::fs::write(&forked, text_forked).unwrap();
    let out = verify_log(
        &ledger.url,
        &ledger.key_pub(),
        Some(&forked),
        Some(&ledger.auditor_token),
    );
    assert_invalid(&out, "the log was rewritten (a fork)");
    // Kept beside an honest one, the fork is still caught, and named.
    let out = custos()
        .args(["verify", "log", "--ledger", &ledger.url, "--ledger-key"])
        .arg(ledger.key_pub())
        .arg("--checkpoint")
        .arg(&kept_path)
        .arg("--checkpoint")
        .arg(&forked)
        .args(["--token", &ledger.auditor_token])
        .env_remove("CUSTOS_CLIENT_TOKEN")
        .output()
        .unwrap();
    assert_invalid(&out, "forked.checkpoint");

    // A kept checkpoint larger than today's: the log shrank.
    let larger = ledger.dir.path().join("larger.checkpoint");
    let text_larger = Checkpoint::new(ORIGIN, size + 5, leaf_hash(b"x"))
        .unwrap()
        .sign(&ledger.key());
    std::fs::write(&larger, text_larger).unwrap();
    let out = verify_log(
        &ledger.url,
        &ledger.key_pub(),
        Some(&larger),
        Some(&ledger.auditor_token),
    );
    assert_invalid(&out, "the log shrank");

    // A kept checkpoint the key did not sign.
    let unsigned = ledger.dir.path().join("unsigned.checkpoint");
    std::fs::write(&unsigned, kept.replace(ORIGIN, "other.origin/ledger")).unwrap();
    let out = verify_log(
        &ledger.url,
        &ledger.key_pub(),
        Some(&unsigned),
        Some(&ledger.auditor_token),
    );
    assert_invalid(
        &out,
        "unsigned.checkpoint: INVALID: does not open with ledger key",
    );
}

#[test]
fn usage_and_reachability_errors_exit_2() {
    let out = custos()
        .args(["verify", "log", "--ledger", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--ledger-key"),
        "{}",
        text(&out.stderr)
    );

    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("ledger.pub");
    let k = SigningKey::from_seed("ledger", &[1; 32]).unwrap();
    std::fs::write(&key, format!("{}\n", k.verifier_key())).unwrap();
    let port = free_port();
    // The command tries again three times, saying so each time, then ends
    // with one line of its own.
    let out = verify_log(&format!("http://127.0.0.1:{port}"), &key, None, None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 4, "{stderr}");
    for (n, line) in lines[..3].iter().enumerate() {
        assert!(line.contains("WARN"), "{line}");
        assert!(
            line.contains(&format!(
                "trying again in {} s (attempt {} of 4)",
                1 << n,
                n + 2
            )),
            "{line}"
        );
    }
    assert!(lines[3].starts_with("custos: cannot reach"), "{stderr}");
}

#[test]
fn a_ledger_that_comes_up_late_is_waited_for() {
    // The command starts while the ledger is down; the ledger starts a
    // moment later, and the command's retries find it.
    let dock = SigningKey::from_seed("dock-01", &[2; 32]).unwrap();
    let mut ledger = RealLedger::start(&dock);
    let port: u16 = ledger.url.rsplit(':').next().unwrap().parse().unwrap();
    ledger.stop();
    let mut cmd = custos();
    cmd.args(["verify", "log", "--ledger", &ledger.url, "--ledger-key"])
        .arg(ledger.key_pub())
        .args(["--token", &ledger.auditor_token])
        .env_remove("CUSTOS_CLIENT_TOKEN")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    ledger.restart_on(port);
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("trying again in 1 s (attempt 2 of 4)"),
        "{stderr}"
    );
    assert!(
        text(&out.stdout).contains(": valid"),
        "{}",
        text(&out.stdout)
    );
}

// ---------------------------------------------------------------------------
// A fixture server for logs a real ledger would never serve

/// Serve `log` (3 entries a page), its checkpoint and consistency proofs
/// over HTTP/1.1 on loopback until the test process ends; returns the URL.
fn serve(log: Vec<EntryLine>, checkpoint: String) -> String {
    let leaves: Vec<_> = log.iter().map(|l| l.leaf_hash().unwrap()).collect();
    let tree = MemoryTree::from_leaves(&leaves);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = Vec::new();
            let mut byte = [0u8; 1];
            while !request.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                request.push(byte[0]);
            }
            let request = String::from_utf8_lossy(&request).into_owned();
            let target = request.split(' ').nth(1).unwrap_or("/").to_owned();
            let (path, query) = target.split_once('?').unwrap_or((&target, ""));
            let param = |name: &str| -> u64 {
                query
                    .split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .find(|(k, _)| *k == name)
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0)
            };
            let (status, body) = match path {
                "/v1/checkpoint" => ("200 OK", checkpoint.clone()),
                "/v1/entries" => {
                    let start = param("start") as usize;
                    let end = (param("end") as usize).min(log.len()).min(start + 3);
                    let body: String = log[start.min(end)..end]
                        .iter()
                        .map(EntryLine::to_json_line)
                        .collect();
                    ("200 OK", body)
                }
                "/v1/proof/consistency" => {
                    let (from, to) = (param("from"), param("to"));
                    let hashes = consistency_proof(&tree, from, to).unwrap();
                    (
                        "200 OK",
                        json!({ "from": from, "to": to, "hashes": hashes }).to_string(),
                    )
                }
                _ => (
                    "404 Not Found",
                    json!({ "error": "not_found", "message": "no such route" }).to_string(),
                ),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

fn write_key(dir: &Path, key: &SigningKey) -> PathBuf {
    let path = dir.join("ledger.pub");
    std::fs::write(&path, format!("{}\n", key.verifier_key())).unwrap();
    path
}

#[test]
fn an_honest_log_from_the_fixture_server_verifies() {
    let f = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let key = write_key(dir.path(), &f.ledger);
    let url = serve(f.log.clone(), whole_log_checkpoint(&f));
    let kept = dir.path().join("kept.checkpoint");
    let root5 = root_at(&f.tree, 5).unwrap();
    std::fs::write(
        &kept,
        Checkpoint::new(crate::bundle_support::ORIGIN, 5, root5)
            .unwrap()
            .sign(&f.ledger),
    )
    .unwrap();
    let out = verify_log(&url, &key, Some(&kept), None);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{stdout}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains("entries     11, prev chain intact"),
        "{stdout}"
    );
    assert!(stdout.contains("6 dock-signed events verified"), "{stdout}");
    assert!(
        stdout.contains("(size 5): the log only grew since"),
        "{stdout}"
    );
}

#[test]
fn a_broken_chain_is_caught() {
    // A ledger that wrote entry 5 with a wrong prev, built its tree over
    // those bytes and signed it: the root matches, the chain does not.
    let f = Fixture::build(&|e: &mut Entry| {
        if e.seq == 5 {
            e.prev = Some(leaf_hash(b"not entry 4"));
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let url = serve(f.log.clone(), whole_log_checkpoint(&f));
    let out = verify_log(&url, &write_key(dir.path(), &f.ledger), None, None);
    assert_invalid(&out, "entry 5: prev does not match leaf hash of entry 4");
}

#[test]
fn an_altered_entry_is_caught() {
    let f = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let key = write_key(dir.path(), &f.ledger);

    // Entry 7 altered in place: entry 8's prev no longer matches.
    let mut log = f.log.clone();
    let altered = String::from_utf8(log[7].raw_bytes().unwrap())
        .unwrap()
        .replace("sup-1", "sup-2");
    log[7] = EntryLine::new(7, altered.as_bytes()).unwrap();
    let out = verify_log(&serve(log, whole_log_checkpoint(&f)), &key, None, None);
    assert_invalid(&out, "entry 8: prev does not match leaf hash of entry 7");

    // The last entry altered: no chain after it, but the tree's root moves.
    let mut log = f.log.clone();
    let altered = String::from_utf8(log[10].raw_bytes().unwrap())
        .unwrap()
        .replace("case-9", "case-8");
    log[10] = EntryLine::new(10, altered.as_bytes()).unwrap();
    let out = verify_log(&serve(log, whole_log_checkpoint(&f)), &key, None, None);
    assert_invalid(&out, "not the checkpoint's");

    // An entry dropped: the next one takes its seq.
    let mut log = f.log.clone();
    log.remove(6);
    let out = verify_log(&serve(log, whole_log_checkpoint(&f)), &key, None, None);
    assert_invalid(&out, "entry 6: the ledger served seq 7 in its place");
}

#[test]
fn an_altered_signed_event_is_caught() {
    // The ledger changed the details of what the dock signed.
    let f = Fixture::build(&|e: &mut Entry| {
        if e.seq == 4 {
            e.details.insert("sha256".into(), "sha256:00".into());
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let url = serve(f.log.clone(), whole_log_checkpoint(&f));
    let out = verify_log(&url, &write_key(dir.path(), &f.ledger), None, None);
    assert_invalid(
        &out,
        "entry 4: the entry differs from the event the dock signed",
    );

    // The ledger registered another key for the dock than the one that
    // signed its events.
    let stranger = SigningKey::from_seed("dock-01", &[77; 32]).unwrap();
    let f = Fixture::build(&|e: &mut Entry| {
        if e.seq == 0 {
            e.details
                .insert("key".into(), stranger.verifier_key().to_string().into());
        }
    });
    let url = serve(f.log.clone(), whole_log_checkpoint(&f));
    let out = verify_log(&url, &write_key(dir.path(), &f.ledger), None, None);
    assert_invalid(
        &out,
        "entry 1: signed event does not verify under the keys registered for dock",
    );
}

impl RealLedger {
    /// Stop the server, set `[ledger] key_files` to these files of the
    /// ledger's directory, and start it again (on a new port).
    fn restart_with_key_files(&mut self, files: &[&str]) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        let config = self.dir.path().join("custos.toml");
        let list = files
            .iter()
            .map(|f| format!("\"./{f}\""))
            .collect::<Vec<_>>()
            .join(", ");
        std::fs::write(
            &config,
            format!("[ledger]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"./ledger\"\norigin = \"{ORIGIN}\"\nkey_files = [{list}]\n"),
        )
        .unwrap();
        let (server, url) = serve_real(&config);
        self.server = server;
        self.url = url;
    }
}

fn verify_log_keys(url: &str, keys: &[&Path], old: Option<&Path>, token: &str) -> Output {
    let mut cmd = custos();
    cmd.args(["verify", "log", "--ledger", url, "--token", token])
        .env_remove("CUSTOS_CLIENT_TOKEN");
    for key in keys {
        cmd.arg("--ledger-key").arg(key);
    }
    if let Some(old) = old {
        cmd.arg("--checkpoint").arg(old);
    }
    cmd.output().unwrap()
}

/// `[ledger] key_files = [new, old]`, then `[new]`: the served log records
/// both changes, `verify log` accepts the checkpoint under any pinned key
/// that signed it, and a checkpoint kept before the rotation (old key) is
/// proved consistent with one signed by the new key alone.
#[test]
fn a_rotated_ledger_key_verifies_under_either_pinned_key() {
    let fixture = Fixture::new();
    let dock = &fixture.dock;
    let mut ledger = RealLedger::start(dock);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let append = |ledger: &RealLedger, env| {
        rt.block_on(ledger.client().append_envelope(&env)).unwrap();
    };
    append(
        &ledger,
        event(dock, "dock.heartbeat", "dock-01", json!({ "n": 0 })),
    );
    let kept = rt.block_on(ledger.client().checkpoint()).unwrap();
    let kept_path = ledger.dir.path().join("kept.checkpoint");
    std::fs::write(&kept_path, &kept).unwrap();

    let keygen = custos()
        .args(["keygen", "--out"])
        .arg(ledger.dir.path().join("new.key"))
        .output()
        .unwrap();
    assert!(keygen.status.success(), "{}", text(&keygen.stderr));
    let old_pub = ledger.key_pub();
    let new_pub = ledger.dir.path().join("new.key.pub");

    ledger.restart_with_key_files(&["new.key", "ledger.key"]);
    append(
        &ledger,
        event(dock, "dock.heartbeat", "dock-01", json!({ "n": 1 })),
    );
    let token = ledger.auditor_token.clone();
    // Both keys sign during the overlap: either alone verifies today's
    // checkpoint; the kept one opens with the old key only.
    let out = verify_log_keys(&ledger.url, &[&old_pub], Some(&kept_path), &token);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = verify_log_keys(&ledger.url, &[&new_pub], None, &token);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = verify_log_keys(&ledger.url, &[&new_pub], Some(&kept_path), &token);
    assert_invalid(
        &out,
        "kept.checkpoint: INVALID: does not open with ledger key new+",
    );

    ledger.restart_with_key_files(&["new.key"]);
    append(
        &ledger,
        event(dock, "dock.heartbeat", "dock-01", json!({ "n": 2 })),
    );
    let out = verify_log_keys(&ledger.url, &[&old_pub], None, &token);
    assert_invalid(&out, "checkpoint: does not open with ledger key ledger+");
    // The kept checkpoint opens only with the old key, today's only with
    // the new: the auditor pins both and the log is proved to have grown.
    let out = verify_log_keys(&ledger.url, &[&new_pub, &old_pub], Some(&kept_path), &token);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(stdout.contains("consistent  with"), "{stdout}");
    let new_id = custos_core::keys::VerifierKey::load(&new_pub)
        .unwrap()
        .key_id();
    assert!(
        stdout.contains(&format!("ledger key  {new_id} (pinned")),
        "only the new key signed today's checkpoint:\n{stdout}"
    );
    // The log names both changes, in order, by the ledger.
    let entries = rt
        .block_on(
            LedgerClient::new(&ledger.url, Some(&token))
                .unwrap()
                .entries(0, None),
        )
        .unwrap();
    let changes: Vec<(String, String)> = entries
        .iter()
        .map(|l| Entry::parse(l.entry.get().as_bytes()).unwrap())
        .filter(|e| e.action.as_str().starts_with("ledger.key_"))
        .map(|e| (e.action.as_str().to_owned(), e.actor.id))
        .collect();
    assert_eq!(
        changes,
        [
            ("ledger.key_added".to_owned(), "keys".to_owned()),
            ("ledger.key_retired".to_owned(), "keys".to_owned())
        ]
    );
}
