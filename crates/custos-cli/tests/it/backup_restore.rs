//! `custos ledger backup` and `custos ledger restore` against the real
//! ledger (`custos ledger serve`): a large log backed up over HTTP while
//! appends continue, the data_dir destroyed and restored, `custos verify
//! log` against a checkpoint kept before the backup, and the restored
//! ledger serving and appending; then every refusal (a flipped byte, a
//! truncated file, a forked log's checkpoint, a non-empty data_dir, every
//! role but admin on `GET /v1/backup`).
//!
//! The log is filled in-process through the ledger's own writer (the
//! fastest honest way: the same append path as the service, without HTTP
//! per entry), then served by the real process. Its size is
//! `CUSTOS_BACKUP_TEST_ENTRIES` (default 100 000).

use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::bundle_support::Fixture;
use custos_client::LedgerClient;
use custos_core::checkpoint::Checkpoint;
use custos_core::entry::{Actor, ActorKind, Details, Event};
use custos_core::keys::SigningKey;
use custos_core::manifest::Timestamp;
use custos_ledger::{Append, Ledger, LedgerOptions};
use serde_json::{json, Value};

use crate::util::*;

const ORIGIN: &str = "backup.test/ledger";
const ROLES: [&str; 6] = [
    "admin",
    "reviewer",
    "supervisor",
    "auditor",
    "officer",
    "dock",
];

fn entries_wanted() -> u64 {
    std::env::var("CUSTOS_BACKUP_TEST_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

/// A ledger's directory: its config, key and a token per role.
struct Site {
    dir: tempfile::TempDir,
    config: PathBuf,
    tokens: Vec<(&'static str, String)>,
}

impl Site {
    fn new(fixture: &Fixture) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("custos.toml");
        std::fs::write(&config, ledger_section("./ledger")).unwrap();
        let keygen = custos()
            .args(["keygen", "--out"])
            .arg(dir.path().join("ledger.key"))
            .output()
            .unwrap();
        assert!(keygen.status.success(), "{}", text(&keygen.stderr));
        let dock_pub = dir.path().join("dock.pub");
        std::fs::write(&dock_pub, format!("{}\n", fixture.dock.verifier_key())).unwrap();
        let tokens = ROLES
            .iter()
            .map(|&role| {
                let (name, key) = if role == "dock" {
                    (fixture.dock.name().to_owned(), Some(dock_pub.as_path()))
                } else {
                    (format!("{role}-1"), None)
                };
                (role, token(&config, role, &name, key))
            })
            .collect();
        Site {
            dir,
            config,
            tokens,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn token(&self, role: &str) -> &str {
        &self.tokens.iter().find(|(r, _)| *r == role).unwrap().1
    }

    fn data_dir(&self) -> PathBuf {
        self.path("ledger")
    }

    /// A config for data_dir `dir` (relative to the site) with a
    /// `[client]` section naming `url` and the admin's token.
    fn client_config(&self, name: &str, dir: &str, url: Option<&str>) -> PathBuf {
        let path = self.path(name);
        let mut text = ledger_section(dir);
        if let Some(url) = url {
            text.push_str(&format!(
                "[client]\nledger_url = \"{url}\"\ntoken = \"{}\"\n",
                self.token("admin")
            ));
        }
        std::fs::write(&path, text).unwrap();
        path
    }
}

fn ledger_section(data_dir: &str) -> String {
    format!("[ledger]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{data_dir}\"\norigin = \"{ORIGIN}\"\nkey_file = \"./ledger.key\"\n")
}

/// Append `count` entries through the ledger's writer, in-process (the
/// service is stopped), a few thousand in flight so batches fill.
fn bulk_load(data_dir: &Path, key: &Path, count: u64, label: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ledger = Ledger::open(
        LedgerOptions::new(data_dir, ORIGIN),
        SigningKey::load(key).unwrap(),
    )
    .unwrap();
    rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..count {
            if set.len() >= 4096 {
                set.join_next().await.unwrap().unwrap();
            }
            let ledger = ledger.clone();
            let label = label.to_owned();
            set.spawn(async move {
                let actor = Actor {
                    kind: ActorKind::Supervisor,
                    id: "loader".into(),
                };
                let mut details = serde_json::Map::new();
                details.insert("n".into(), i.into());
                details.insert("label".into(), label.into());
                let details = Details::Other {
                    action: "test.loaded".into(),
                    details,
                };
                ledger
                    .append(Append::new(actor, format!("object-{i:08}"), details).unwrap())
                    .await
                    .unwrap();
            });
        }
        while let Some(done) = set.join_next().await {
            done.unwrap();
        }
        ledger.close().await;
    });
}

fn serve(config: &Path) -> (Child, String) {
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

fn restore(config: &Path, backup: &Path, checkpoints: &[&Path]) -> Output {
    let mut cmd = custos();
    cmd.args(["ledger", "restore", "--config"])
        .arg(config)
        .arg(backup);
    for c in checkpoints {
        cmd.arg("--checkpoint").arg(c);
    }
    cmd.output().unwrap()
}

/// A failure, one error line on stderr saying `says`, and `dir` as it was:
/// missing, or empty (`left` lists what it must still hold).
fn assert_refused(out: &Output, says: &str, dir: &Path, left: &[&str]) {
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    // Progress lines, then one error line.
    let errors: Vec<_> = stderr
        .lines()
        .filter(|l| !l.starts_with("restore: ") && !l.trim().is_empty())
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].starts_with("custos: "), "{stderr}");
    assert!(stderr.contains(says), "want {says:?} in {stderr:?}");
    let mut found: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    found.sort();
    assert_eq!(found, left, "{} after a refused restore", dir.display());
}

/// GET `url` with `token`: the status and the body.
fn get(rt: &tokio::runtime::Runtime, url: &str, token: Option<&str>) -> (u16, String) {
    rt.block_on(async {
        let mut req = reqwest::Client::new().get(url);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let answer = req.send().await.unwrap();
        let status = answer.status().as_u16();
        (status, answer.text().await.unwrap())
    })
}

fn checkpoint_size(text: &str) -> u64 {
    let body = custos_core::note::SignedNote::parse(text.as_bytes())
        .unwrap()
        .text()
        .to_owned();
    Checkpoint::parse(&body).unwrap().size()
}

#[test]
fn a_large_log_is_backed_up_while_it_grows_and_restored_and_bad_backups_are_refused() {
    let started = std::time::Instant::now();
    let fixture = Fixture::new();
    let dock = &fixture.dock;
    let site = Site::new(&fixture);
    let count = entries_wanted();
    bulk_load(&site.data_dir(), &site.path("ledger.key"), count, "main");
    let loaded = started.elapsed();

    let (child, url) = serve(&site.config);
    let mut server = Killed(child);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dock_client = LedgerClient::new(&url, Some(site.token("dock"))).unwrap();
    for env in [
        event(
            dock,
            "recorder.docked",
            "RC-17",
            json!({ "slot": "1", "profile": "generic", "model": "BWC-T", "transport": "usb" }),
        ),
        event(
            dock,
            "segment.ingested",
            "seg-a",
            json!({ "manifest": serde_json::to_value(&fixture.manifest_a.1).unwrap() }),
        ),
        event(
            dock,
            "segment.verified",
            "seg-a",
            json!({ "method": "read_back", "object_key": "k", "sha256": "00" }),
        ),
    ] {
        rt.block_on(dock_client.append_envelope(&env)).unwrap();
    }
    // The auditor keeps the checkpoint of this moment.
    let kept = rt.block_on(dock_client.checkpoint()).unwrap();
    let kept_path = site.path("kept.checkpoint");
    std::fs::write(&kept_path, &kept).unwrap();

    // Only an admin may take a backup.
    let backup_url = format!("{url}/v1/backup");
    assert_eq!(get(&rt, &backup_url, None).0, 401);
    for role in ROLES.iter().filter(|r| **r != "admin") {
        let (status, body) = get(&rt, &backup_url, Some(site.token(role)));
        assert_eq!(status, 403, "GET /v1/backup as {role}: {body}");
        assert!(!body.contains("custos-ledger-backup"), "{body}");
    }

    // Appends continue over HTTP while the backup streams.
    let stop = AtomicBool::new(false);
    let appended = AtomicU64::new(0);
    let backup_config = site.client_config("backup.toml", "./ledger", Some(&url));
    let backup = site.path("ledger.backup");
    let backup_started = std::time::Instant::now();
    let out = std::thread::scope(|scope| {
        let appender = scope.spawn(|| {
            let client = LedgerClient::new(&url, Some(site.token("dock"))).unwrap();
            let rt = tokio::runtime::Runtime::new().unwrap();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) || n < 5 {
                let env = event(dock, "dock.heartbeat", "dock-01", json!({ "n": n }));
                rt.block_on(client.append_envelope(&env)).unwrap();
                n += 1;
                appended.store(n, Ordering::Relaxed);
            }
        });
        let out = custos()
            .args(["ledger", "backup", "--config"])
            .arg(&backup_config)
            .arg("--out")
            .arg(&backup)
            .output()
            .unwrap();
        stop.store(true, Ordering::Relaxed);
        appender.join().unwrap();
        out
    });
    let backup_took = backup_started.elapsed();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!site.path("ledger.backup.partial").exists());
    let bytes = std::fs::read(&backup).unwrap();
    let first = bytes.split(|&b| b == b'\n').next().unwrap();
    let header: Value = serde_json::from_slice(first).unwrap();
    assert_eq!(header["format"], "custos-ledger-backup/1");
    assert_eq!(header["origin"], ORIGIN);
    let size = header["size"].as_u64().unwrap();
    let kept_size = checkpoint_size(&kept);
    assert!(size > kept_size, "backup size {size}, kept {kept_size}");
    let final_size = checkpoint_size(&rt.block_on(dock_client.checkpoint()).unwrap());
    assert!(
        final_size > size,
        "appends continued during the backup: the log is {final_size}, the backup {size}"
    );
    // Tokens travel as their hashes: no secret is in the backup.
    let backup_text = String::from_utf8_lossy(&bytes);
    for (role, token) in &site.tokens {
        assert!(
            !backup_text.contains(token.as_str()),
            "the {role} token is in the backup"
        );
        // custos_<16 hex digits>_<secret>
        let secret = &token["custos_0123456789abcdef_".len()..];
        assert!(secret.len() >= 32, "{token}");
        assert!(
            !backup_text.contains(secret),
            "the {role} token's secret is in the backup"
        );
    }
    assert!(backup_text.contains(r#""table":"tokens""#));
    assert!(backup_text.contains(r#""table":"dock_keys""#));
    for derived in ["segments", "by_time", "object_keys", "segment_entries"] {
        assert!(
            !backup_text.contains(&format!(r#""table":"{derived}""#)),
            "derived table {derived} copied"
        );
    }
    drop(backup_text);

    // The site is lost; the backup is restored.
    drop(server);
    std::fs::remove_dir_all(site.data_dir()).unwrap();
    let restore_started = std::time::Instant::now();
    let out = restore(&site.config, &backup, &[&kept_path]);
    let restore_took = restore_started.elapsed();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!("restored {size} entries")),
        "{}",
        text(&out.stderr)
    );

    let (child, url) = serve(&site.config);
    server = Killed(child);
    let verify_started = std::time::Instant::now();
    let out = custos()
        .args(["verify", "log", "--ledger", &url, "--ledger-key"])
        .arg(site.path("ledger.key.pub"))
        .arg("--checkpoint")
        .arg(&kept_path)
        .args(["--token", site.token("auditor")])
        .env_remove("CUSTOS_CLIENT_TOKEN")
        .output()
        .unwrap();
    let verify_took = verify_started.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!("size {size} root")),
        "{}",
        text(&out.stdout)
    );
    // The catalogue was re-derived: the segment is found, verified.
    let (status, segment) = get(
        &rt,
        &format!("{url}/v1/segments/seg-a"),
        Some(site.token("auditor")),
    );
    assert_eq!(status, 200, "{segment}");
    let segment: Value = serde_json::from_str(&segment).unwrap();
    assert_eq!(segment["segment_id"], "seg-a", "{segment}");
    assert!(segment["verified_seq"].is_u64(), "{segment}");
    // The restored ledger appends, with the restored dock token, and a
    // resent envelope is still a duplicate (the index was re-derived).
    let dock_client = LedgerClient::new(&url, Some(site.token("dock"))).unwrap();
    let receipt = rt
        .block_on(dock_client.append_envelope(&event(
            dock,
            "dock.heartbeat",
            "dock-01",
            json!({ "n": "after" }),
        )))
        .unwrap();
    assert!(!receipt.duplicate);
    assert!(receipt.seq >= size, "{receipt:?}");
    let again = rt
        .block_on(dock_client.append_envelope(&event(
            dock,
            "recorder.docked",
            "RC-17",
            json!({ "slot": "1", "profile": "generic", "model": "BWC-T", "transport": "usb" }),
        )))
        .unwrap();
    assert!(again.duplicate, "{again:?}");
    // Without [client] ledger_url the command opens data_dir itself, which
    // the running service holds: one line says how to go through it.
    let out = custos()
        .args(["ledger", "backup", "--config"])
        .arg(&site.config)
        .arg("--out")
        .arg(site.path("offline.backup"))
        .env_remove("CUSTOS_CLIENT_LEDGER_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("[client] ledger_url"), "{stderr}");
    assert!(!site.path("offline.backup").exists());
    assert!(!site.path("offline.backup.partial").exists());
    drop(server);

    // Refusals, each into an empty data_dir of its own.
    let target = site.client_config("target.toml", "./target", None);
    let target_dir = site.path("target");

    // A flipped byte in an early entry (a digit of its "n"): found at the
    // entry after it, whose prev no longer matches, or at the root.
    let mut flipped = bytes.clone();
    let at = bytes
        .windows(br#""n":1000"#.len())
        .position(|w| w == br#""n":1000"#)
        .unwrap()
        + 4;
    flipped[at] = b'2';
    let flipped_path = site.path("flipped.backup");
    std::fs::write(&flipped_path, &flipped).unwrap();
    let out = restore(&target, &flipped_path, &[]);
    assert_refused(&out, "restoring", &target_dir, &[]);

    let truncated = site.path("truncated.backup");
    let cut = bytes[..bytes.len() / 10]
        .iter()
        .rposition(|&b| b == b'\n')
        .unwrap()
        + 1;
    std::fs::write(&truncated, &bytes[..cut]).unwrap();
    let out = restore(&target, &truncated, &[]);
    assert_refused(&out, "the backup is truncated", &target_dir, &[]);

    // A log of the same origin and key that forked: its checkpoint is not
    // consistent with the backup.
    let fork_dir = site.path("fork");
    bulk_load(&fork_dir, &site.path("ledger.key"), 50, "fork");
    let fork = {
        let ledger = Ledger::open(
            LedgerOptions::new(&fork_dir, ORIGIN),
            SigningKey::load(&site.path("ledger.key")).unwrap(),
        )
        .unwrap();
        let c = ledger.checkpoint_at(ledger.published().size).unwrap();
        rt.block_on(ledger.close());
        c
    };
    let fork_path = site.path("fork.checkpoint");
    std::fs::write(&fork_path, fork).unwrap();
    let out = restore(&target, &backup, &[&kept_path, &fork_path]);
    assert_refused(&out, "inconsistent with checkpoint", &target_dir, &[]);

    // A stopped ledger is backed up from its data_dir, and that backup
    // restores (the forked log: its checkpoint is consistent with it).
    let fork_config = site.client_config("fork.toml", "./fork", None);
    token(&fork_config, "auditor", "aud-fork", None);
    let fork_backup = site.path("fork.backup");
    let out = custos()
        .args(["ledger", "backup", "--config"])
        .arg(&fork_config)
        .arg("--out")
        .arg(&fork_backup)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = restore(&target, &fork_backup, &[&fork_path]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let fork_bytes = std::fs::read(&fork_backup).unwrap();
    assert!(
        text(&out.stderr).contains("restored 51 entries"),
        "{}",
        text(&out.stderr)
    );
    // ...but not next to the main log's kept checkpoint.
    std::fs::remove_dir_all(&target_dir).unwrap();
    let out = restore(&target, &fork_backup, &[&kept_path]);
    assert_refused(
        &out,
        "the backup is older than what was seen",
        &target_dir,
        &[],
    );

    // A flipped byte in a state row of the small backup (a token's hash: its first row).
    let row_at = fork_bytes
        .windows(7)
        .position(|w| w == br#""value""#)
        .unwrap()
        + 12;
    let mut flipped = fork_bytes.clone();
    flipped[row_at] = if flipped[row_at] == b'A' { b'B' } else { b'A' };
    std::fs::write(&flipped_path, &flipped).unwrap();
    let out = restore(&target, &flipped_path, &[]);
    assert_refused(&out, "the backup was altered", &target_dir, &[]);

    // The same change with the SHA-256 of the end line made to fit (anyone
    // can): the seal, signed by the ledger's key, does not.
    let end_at = flipped[..flipped.len() - 1]
        .iter()
        .rposition(|&b| b == b'\n')
        .unwrap()
        + 1;
    let sha = custos_core::digest::Digest::sha256(&flipped[..end_at]).hex();
    let mut end: Value = serde_json::from_slice(&flipped[end_at..]).unwrap();
    end["sha256"] = sha.into();
    let mut forged = flipped[..end_at].to_vec();
    forged.extend_from_slice(format!("{end}\n").as_bytes());
    std::fs::write(&flipped_path, &forged).unwrap();
    let out = restore(&target, &flipped_path, &[]);
    assert_refused(
        &out,
        "the backup was altered or made by another ledger",
        &target_dir,
        &[],
    );

    std::fs::create_dir_all(&target_dir).unwrap();
    std::fs::write(target_dir.join("notes.txt"), "not a ledger").unwrap();
    let out = restore(&target, &backup, &[]);
    assert_refused(&out, "is not empty", &target_dir, &["notes.txt"]);
    assert_eq!(
        std::fs::read_to_string(target_dir.join("notes.txt")).unwrap(),
        "not a ledger"
    );

    eprintln!(
        "{count} entries: loaded in {loaded:?}; backup of {size} entries ({} MB, {} appends meanwhile) in {backup_took:?}; restore in {restore_took:?}; verify log in {verify_took:?}; whole test {:?}",
        bytes.len() >> 20,
        appended.load(Ordering::Relaxed),
        started.elapsed()
    );
}
