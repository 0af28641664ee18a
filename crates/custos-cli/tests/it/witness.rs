//! Witnesses as real processes (`custos witness serve`) beside real ledgers
//! (`custos ledger serve`), over HTTP: the refusals of C2SP tlog-witness
//! (403, 404, 400, 409 with the witness's size, 422), a witness killed with
//! SIGKILL in the middle of a run that never goes back on what it cosigned,
//! a ledger whose published checkpoints carry its witness's cosignature, and
//! a second ledger with the same key and origin that forked from it after N
//! entries and gets no cosignature.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use custos_client::LedgerClient;
use custos_core::checkpoint::Checkpoint;
use custos_core::cosignature::CosignerKey;
use custos_core::entry::Event;
use custos_core::keys::SigningKey;
use custos_core::manifest::Timestamp;
use custos_core::merkle::{consistency_proof, leaf_hash, root_at, Hash, MemoryTree};
use custos_core::note::{NoteSignature, SignedNote};
use custos_core::policy::Policy;
use custos_core::witness::AddCheckpoint;
use serde_json::json;

use crate::util::*;

const ORIGIN: &str = "witness.test/ledger";
const WITNESS_NAME: &str = "witness.test/w1";

/// A child process killed (SIGKILL) when dropped.
struct Running {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    /// SIGTERM and wait: a clean stop.
    fn stop(mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn spawn(args: &[&str], config: &Path, log: PathBuf) -> Running {
    let mut cmd = custos();
    cmd.args(args)
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "info")
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()));
    let (child, url) = custos_testsupport::serve_ledger(cmd).unwrap();
    Running { child, url, log }
}

/// A witness's directory: its key and configuration.
struct WitnessSite {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl WitnessSite {
    /// A witness of the log `origin` signed by `log_key` (a verifier key line).
    fn new(log_key: &str) -> WitnessSite {
        let dir = tempfile::tempdir().unwrap();
        ok(&custos()
            .args(["keygen", "--name", WITNESS_NAME, "--out"])
            .arg(dir.path().join("witness.key"))
            .output()
            .unwrap());
        let config = dir.path().join("custos.toml");
        std::fs::write(
            &config,
            format!(
                "[witness]\nlisten = \"127.0.0.1:0\"\nkey_file = \"./witness.key\"\nstate_dir = \"./state\"\n\n[[witness.logs]]\norigin = \"{ORIGIN}\"\nkeys = [\"{log_key}\"]\n"
            ),
        )
        .unwrap();
        WitnessSite { dir, config }
    }

    fn key(&self) -> CosignerKey {
        let out = custos()
            .args(["witness", "key", "--config"])
            .arg(&self.config)
            .output()
            .unwrap();
        ok(&out).trim().parse().unwrap()
    }

    fn serve(&self) -> Running {
        let n = std::fs::read_dir(self.dir.path()).unwrap().count();
        spawn(
            &["witness", "serve"],
            &self.config,
            self.dir.path().join(format!("witness-{n}.log")),
        )
    }
}

/// What a POST /add-checkpoint answered.
struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

fn post(url: &str, body: Vec<u8>) -> Answer {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = reqwest::Client::new()
            .post(format!("{url}/add-checkpoint"))
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let content_type = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        Answer {
            status,
            content_type,
            body: r.text().await.unwrap(),
        }
    })
}

fn tree_of(prefix: &str, n: usize) -> MemoryTree {
    let leaves: Vec<Hash> = (0..n)
        .map(|i| leaf_hash(format!("{prefix}{i}").as_bytes()))
        .collect();
    MemoryTree::from_leaves(&leaves)
}

fn request(tree: &MemoryTree, old: u64, new: u64, key: &SigningKey) -> Vec<u8> {
    let cp = Checkpoint::new(ORIGIN, new, root_at(tree, new).unwrap()).unwrap();
    AddCheckpoint {
        old_size: old,
        proof: consistency_proof(tree, old, new).unwrap(),
        checkpoint: SignedNote::parse(cp.sign(key).as_bytes()).unwrap(),
    }
    .to_bytes()
}

fn assert_conflict(a: &Answer, size: u64) {
    assert_eq!(a.status, 409, "{}", a.body);
    assert_eq!(a.content_type, "text/x.tlog.size");
    assert_eq!(a.body, format!("{size}\n"));
}

#[test]
fn a_witness_refuses_what_the_spec_refuses_and_never_goes_back_after_sigkill() {
    let log = SigningKey::from_seed(ORIGIN, &[42; 32]).unwrap();
    let site = WitnessSite::new(&log.verifier_key().to_string());
    let cosigner = site.key();
    assert_eq!(cosigner.name(), WITNESS_NAME);
    let witness = site.serve();
    let t = tree_of("a", 200);

    // A first checkpoint: cosigned, and the cosignature verifies.
    let a = post(&witness.url, request(&t, 0, 5, &log));
    assert_eq!(a.status, 200, "{}", a.body);
    let sigs = NoteSignature::parse_lines(&a.body).unwrap();
    let cp = Checkpoint::new(ORIGIN, 5, root_at(&t, 5).unwrap()).unwrap();
    assert_eq!(sigs.len(), 1);
    assert!(cosigner.matches(&sigs[0]));
    cosigner.verify(&cp.to_body(), &sigs[0]).unwrap();

    // A stale old size: 409 with the witness's size.
    assert_conflict(&post(&witness.url, request(&t, 0, 7, &log)), 5);
    assert_conflict(&post(&witness.url, request(&t, 3, 7, &log)), 5);
    // Not signed by the log's key: 403. Another origin: 404.
    let impostor = SigningKey::from_seed(ORIGIN, &[1; 32]).unwrap();
    assert_eq!(post(&witness.url, request(&t, 5, 7, &impostor)).status, 403);
    let other = SigningKey::from_seed("other.test/log", &[42; 32]).unwrap();
    let cp = Checkpoint::new("other.test/log", 1, root_at(&t, 1).unwrap()).unwrap();
    let body = format!("old 0\n\n{}", cp.sign(&other)).into_bytes();
    assert_eq!(post(&witness.url, body).status, 404);
    // Malformed: 400 and one line saying why; old above new: 400.
    let bad = post(&witness.url, b"old 01\n\nx".to_vec());
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body.lines().count(), 1, "{}", bad.body);
    assert!(bad.body.contains("old <size>"), "{}", bad.body);
    let mut backwards = String::from_utf8(request(&t, 0, 4, &log)).unwrap();
    backwards.replace_range(..5, "old 5");
    assert_eq!(post(&witness.url, backwards.into_bytes()).status, 400);
    // A forked tree: the proof from 5 does not verify (422); the same size
    // with another root is a conflict (409).
    let fork = tree_of("b", 200);
    let forked = post(&witness.url, request(&fork, 5, 9, &log));
    assert_eq!(forked.status, 422, "{}", forked.body);
    assert_conflict(&post(&witness.url, request(&fork, 5, 5, &log)), 5);

    // SIGKILL in the middle of a run of submissions: after a restart the
    // witness's size is at least the last one it answered with a
    // cosignature, and it refuses anything older.
    let url = witness.url.clone();
    let progress = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(5));
    let seen = progress.clone();
    let submitter = std::thread::spawn(move || {
        let log = SigningKey::from_seed(ORIGIN, &[42; 32]).unwrap();
        let t = tree_of("a", 200);
        let mut cosigned = 5;
        for new in 6..200u64 {
            let answer = std::panic::catch_unwind(|| post(&url, request(&t, cosigned, new, &log)));
            match answer {
                Ok(a) if a.status == 200 => cosigned = new,
                _ => break,
            }
            seen.store(cosigned, std::sync::atomic::Ordering::SeqCst);
        }
        cosigned
    });
    // Kill it once a few submissions went through, while more are coming.
    let deadline = Instant::now() + Duration::from_secs(20);
    while progress.load(std::sync::atomic::Ordering::SeqCst) < 10 {
        assert!(Instant::now() < deadline, "no submission got through");
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(witness); // SIGKILL
    let last_cosigned = submitter.join().unwrap();
    assert!(
        last_cosigned > 5,
        "no submission got through before the kill"
    );
    let witness = site.serve();
    let a = post(&witness.url, request(&t, 0, 199, &log));
    assert_eq!(a.status, 409);
    let kept: u64 = a.body.trim().parse().unwrap();
    assert!(
        kept >= last_cosigned,
        "the witness cosigned size {last_cosigned} but restarted at {kept}"
    );
    // Backwards and forked checkpoints are refused after the restart too.
    let mut old = String::from_utf8(request(&t, 0, kept - 1, &log)).unwrap();
    old.replace_range(..5, &format!("old {kept}"));
    assert_eq!(post(&witness.url, old.into_bytes()).status, 400);
    assert_conflict(&post(&witness.url, request(&fork, kept, kept, &log)), kept);
    assert_eq!(
        post(&witness.url, request(&fork, kept, 199, &log)).status,
        422
    );
    // The log's honest extension still is cosigned.
    assert_eq!(post(&witness.url, request(&t, kept, 199, &log)).status, 200);
}

/// A ledger's directory, configured to submit to one witness.
struct LedgerSite {
    dir: tempfile::TempDir,
    config: PathBuf,
    dock: SigningKey,
    dock_token: String,
}

impl LedgerSite {
    fn config_text(witness_url: &str, witness_key: &CosignerKey) -> String {
        format!(
            "[ledger]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"./ledger\"\norigin = \"{ORIGIN}\"\nkey_file = \"./ledger.key\"\ntiles_url = \"file://./tiles\"\ncheckpoint_interval = \"100ms\"\nwitness_quorum = 1\nwitness_timeout = \"2s\"\n\n[[ledger.witnesses]]\nurl = \"{witness_url}\"\nkey = \"{witness_key}\"\n"
        )
    }

    /// A new ledger with its own key.
    fn new() -> LedgerSite {
        let dir = tempfile::tempdir().unwrap();
        ok(&custos()
            .args(["keygen", "--name", ORIGIN, "--out"])
            .arg(dir.path().join("ledger.key"))
            .output()
            .unwrap());
        let config = dir.path().join("custos.toml");
        // The token is made before the witness is configured.
        std::fs::write(&config, "[ledger]\ndata_dir = \"./ledger\"\nkey_file = \"./ledger.key\"\norigin = \"witness.test/ledger\"\n").unwrap();
        let dock = SigningKey::from_seed("dock-01", &[9; 32]).unwrap();
        let dock_pub = dir.path().join("dock.pub");
        std::fs::write(&dock_pub, format!("{}\n", dock.verifier_key())).unwrap();
        let dock_token = token(&config, "dock", "dock-01", Some(&dock_pub));
        LedgerSite {
            dir,
            config,
            dock,
            dock_token,
        }
    }

    /// A copy of `other` (stopped): the same key, origin, entries, tokens.
    fn copy_of(other: &LedgerSite) -> LedgerSite {
        let dir = tempfile::tempdir().unwrap();
        for name in ["ledger", "ledger.key", "ledger.key.pub", "custos.toml"] {
            copy_all(&other.dir.path().join(name), &dir.path().join(name));
        }
        LedgerSite {
            config: dir.path().join("custos.toml"),
            dir,
            dock: SigningKey::from_seed("dock-01", &[9; 32]).unwrap(),
            dock_token: other.dock_token.clone(),
        }
    }

    fn key_line(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("ledger.key.pub"))
            .unwrap()
            .trim()
            .to_owned()
    }

    fn use_witness(&self, url: &str, key: &CosignerKey) {
        std::fs::write(&self.config, Self::config_text(url, key)).unwrap();
    }

    fn serve(&self) -> Running {
        let n = std::fs::read_dir(self.dir.path()).unwrap().count();
        spawn(
            &["ledger", "serve"],
            &self.config,
            self.dir.path().join(format!("serve-{n}.log")),
        )
    }

    /// Append `n` heartbeats marked `tag`; the log's size after.
    fn append(&self, serving: &Running, tag: &str, n: usize) -> u64 {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let client = LedgerClient::new(&serving.url, Some(&self.dock_token)).unwrap();
        let mut size = 0;
        for i in 0..n {
            let env = Event::new(
                "dock.heartbeat",
                "dock-01",
                json!({ "tag": tag, "n": i }).as_object().unwrap().clone(),
                Timestamp::parse("2026-03-01T08:00:00Z").unwrap(),
            )
            .unwrap()
            .sign(&self.dock)
            .unwrap();
            size = rt.block_on(client.append_envelope(&env)).unwrap().seq + 1;
        }
        size
    }

    /// The tiles' checkpoint once it shows `size` (10 s at most).
    fn published(&self, size: u64) -> Vec<u8> {
        let path = self.dir.path().join("tiles/checkpoint");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(bytes) = std::fs::read(&path) {
                let shown = String::from_utf8_lossy(&bytes)
                    .lines()
                    .nth(1)
                    .and_then(|l| l.parse::<u64>().ok());
                if shown == Some(size) {
                    return bytes;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no checkpoint of size {size} published"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn copy_all(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            copy_all(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::copy(from, to).unwrap();
    }
}

#[test]
fn a_ledger_publishes_cosigned_checkpoints_and_its_fork_gets_no_cosignature() {
    let a = LedgerSite::new();
    let site = WitnessSite::new(&a.key_line());
    let witness = site.serve();
    let wkey = site.key();
    a.use_witness(&witness.url, &wkey);
    let policy =
        Policy::parse(format!("log {}\nwitness {wkey}\nquorum 1\n", a.key_line()).as_bytes())
            .unwrap();

    // Ledger A: its published checkpoints carry the witness's cosignature,
    // in the tiles and on GET /v1/checkpoint.
    let serving = a.serve();
    let n = a.append(&serving, "common", 5);
    let published = a.published(n);
    let verified = policy.verify(&published).unwrap();
    assert_eq!(verified.witnesses, [WITNESS_NAME]);
    // Code Custos did not write reads it too.
    let cp = crate::interop::check_cosigned(&published, &a.key_line(), &wkey.to_string());
    assert_eq!((cp.origin(), cp.size()), (ORIGIN, n));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let served = rt
        .block_on(async {
            reqwest::get(format!("{}/v1/checkpoint", serving.url))
                .await?
                .text()
                .await
        })
        .unwrap();
    policy.verify(served.as_bytes()).unwrap();
    serving.stop();
    // `verify log --tiles --policy`: passes with the cosigned checkpoint;
    // a quorum the checkpoint does not meet, or a doctored cosignature,
    // fails with one line.
    let policy_file = a.dir.path().join("policy.txt");
    std::fs::write(&policy_file, policy.to_string()).unwrap();
    let tiles = a.dir.path().join("tiles");
    let verify = |policy_file: &Path| {
        custos()
            .args(["verify", "log", "--tiles"])
            .arg(&tiles)
            .arg("--policy")
            .arg(policy_file)
            .output()
            .unwrap()
    };
    let out = ok(&verify(&policy_file));
    assert!(
        out.contains(&format!(
            "1 of the policy's quorum 1 cosigned: {WITNESS_NAME}"
        )),
        "{out}"
    );
    let other = SigningKey::from_seed("witness.test/w2", &[5; 32]).unwrap();
    let stricter = a.dir.path().join("policy-2.txt");
    std::fs::write(
        &stricter,
        format!("{policy}witness {}\n", CosignerKey::of(&other).unwrap()).replace("quorum 1\n", "")
            + "quorum 2\n",
    )
    .unwrap();
    let out = verify(&stricter);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("requires 2"),
        "{}",
        text(&out.stderr)
    );
    let checkpoint = tiles.join("checkpoint");
    let honest = std::fs::read_to_string(&checkpoint).unwrap();
    let last = honest.trim_end().rsplit('\n').next().unwrap().to_owned();
    let mut doctored_line = last.clone();
    // Inside the base64, away from its last (padded) group: still base64.
    let at = doctored_line.len() - 20;
    let c = if &doctored_line[at..=at] == "A" {
        "B"
    } else {
        "A"
    };
    doctored_line.replace_range(at..=at, c);
    std::fs::write(&checkpoint, honest.replace(&last, &doctored_line)).unwrap();
    let out = verify(&policy_file);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("does not verify"),
        "{}",
        text(&out.stderr)
    );
    std::fs::write(&checkpoint, honest).unwrap();

    // B: a copy of A's ledger after N entries (same key, same origin),
    // publishing to tiles of its own.
    let b = LedgerSite::copy_of(&a);
    std::fs::remove_dir_all(b.dir.path().join("tiles")).ok();
    b.use_witness(&witness.url, &wkey);

    // A goes on; B appends other entries: the two logs diverge after N.
    let serving_a = a.serve();
    let size_a = a.append(&serving_a, "a", 3);
    policy.verify(&a.published(size_a)).unwrap();
    let serving_b = b.serve();
    let size_b = b.append(&serving_b, "b", 5);
    let forked = b.published(size_b);
    // B's checkpoint is signed by the (shared) ledger key, but carries no
    // cosignature: the witness refused it.
    Checkpoint::open(&forked, &policy.logs()[0], Some(ORIGIN)).unwrap();
    let err = policy.verify(&forked).unwrap_err();
    assert!(err.to_string().contains("requires 1"), "{err}");
    let log_b = std::fs::read_to_string(&serving_b.log).unwrap();
    assert!(
        log_b.contains("witness") && log_b.contains(WITNESS_NAME),
        "B's log does not warn about the witness: {log_b}"
    );
    // The witness logged the fork, and kept A's tree head.
    let wlog = std::fs::read_to_string(&witness.log).unwrap();
    assert!(wlog.contains("forked"), "{wlog}");
    // A keeps getting cosigned.
    let size_a = a.append(&serving_a, "a2", 2);
    policy.verify(&a.published(size_a)).unwrap();
    drop(serving_b);

    // A witness that is down stops neither appends nor publication.
    drop(witness);
    let size_a = a.append(&serving_a, "a3", 2);
    let lone = a.published(size_a);
    Checkpoint::open(&lone, &policy.logs()[0], Some(ORIGIN)).unwrap();
    assert!(policy.verify(&lone).is_err());
    let log_a = std::fs::read_to_string(&serving_a.log).unwrap();
    assert!(log_a.contains(WITNESS_NAME), "{log_a}");
}

#[test]
fn a_witness_that_never_answers_holds_up_neither_appends_nor_publication() {
    let a = LedgerSite::new();
    // A witness whose connections are accepted by the kernel and never
    // answered.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", hole.local_addr().unwrap());
    let silent =
        CosignerKey::of(&SigningKey::from_seed("silent.test/w", &[8; 32]).unwrap()).unwrap();
    std::fs::write(
        &a.config,
        LedgerSite::config_text(&url, &silent)
            .replace("witness_timeout = \"2s\"", "witness_timeout = \"300ms\""),
    )
    .unwrap();
    let serving = a.serve();
    let started = Instant::now();
    let n = a.append(&serving, "quiet", 30);
    let appending = started.elapsed();
    // Published all the same, signed by the ledger, without a cosignature.
    let published = a.published(n);
    let ledger_key: custos_core::keys::VerifierKey = a.key_line().parse().unwrap();
    Checkpoint::open(&published, &ledger_key, Some(ORIGIN)).unwrap();
    assert_eq!(SignedNote::parse(&published).unwrap().signatures().len(), 1);
    assert!(
        appending < Duration::from_secs(10),
        "30 appends took {appending:?} beside a silent witness"
    );
    let log = std::fs::read_to_string(&serving.log).unwrap();
    assert!(
        log.contains("silent.test/w")
            && log.contains("did not cosign")
            && log.contains("timed out"),
        "{log}"
    );
    drop(hole);
}
