//! The log published as C2SP tlog-tiles by a real ledger (`custos ledger
//! serve` with `[ledger] tiles_url`), read back by `custos verify log
//! --tiles`, in a directory and in a real Garage bucket: honest tiles
//! verify; a flipped byte in a hash tile or an entry bundle is named; a
//! log that forked from the checkpoint kept in `--state` is refused; tiles
//! deleted are published again at the next start; a second writer's
//! checkpoint is never overwritten.

use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use custos_client::LedgerClient;
use custos_core::checkpoint::Checkpoint;
use custos_core::entry::Event;
use custos_core::keys::SigningKey;
use custos_core::manifest::Timestamp;
use custos_core::merkle::leaf_hash;
use custos_ingest::object_store::path::Path as ObjectPath;
use custos_ingest::object_store::ObjectStoreExt as _;
use custos_testsupport::Garage;
use serde_json::json;

use crate::util::*;

const ORIGIN: &str = "verify-tiles.test/ledger";

/// A ledger directory with its key, a dock token, and where it publishes.
struct Site {
    dir: tempfile::TempDir,
    config: PathBuf,
    dock: SigningKey,
    dock_token: String,
    /// The environment of every command (Garage's AWS_* variables).
    env: Vec<(&'static str, String)>,
}

/// A running `custos ledger serve`.
struct Serving {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Site {
    fn new(tiles_url: &str, env: Vec<(&'static str, String)>) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("custos.toml");
        std::fs::write(
            &config,
            format!(
                "[ledger]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"./ledger\"\norigin = \"{ORIGIN}\"\nkey_file = \"./ledger.key\"\ntiles_url = \"{tiles_url}\"\ncheckpoint_interval = \"100ms\"\n"
            ),
        )
        .unwrap();
        ok(&custos()
            .args(["keygen", "--out"])
            .arg(dir.path().join("ledger.key"))
            .output()
            .unwrap());
        let dock = SigningKey::from_seed("dock-01", &[9; 32]).unwrap();
        let dock_pub = dir.path().join("dock.pub");
        std::fs::write(&dock_pub, format!("{}\n", dock.verifier_key())).unwrap();
        let dock_token = token(&config, "dock", "dock-01", Some(&dock_pub));
        Site {
            dir,
            config,
            dock,
            dock_token,
            env,
        }
    }

    fn serve(&self) -> Serving {
        let log = self.dir.path().join(format!(
            "serve-{}.log",
            std::fs::read_dir(self.dir.path()).unwrap().count()
        ));
        let mut cmd = custos();
        cmd.args(["ledger", "serve", "--config"])
            .arg(&self.config)
            .envs(self.env.clone())
            .env("RUST_LOG", "info")
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()));
        let (child, url) = custos_testsupport::serve_ledger(cmd).unwrap();
        Serving { child, url, log }
    }

    fn key_pub(&self) -> PathBuf {
        self.dir.path().join("ledger.key.pub")
    }

    fn key(&self) -> SigningKey {
        SigningKey::load(&self.dir.path().join("ledger.key")).unwrap()
    }

    /// Append `n` dock events through the API; the log's size after.
    fn append(&self, serving: &Serving, n: usize) -> u64 {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let client = LedgerClient::new(&serving.url, Some(&self.dock_token)).unwrap();
        // Each event differs from every earlier one: an envelope sent again
        // is answered with its first entry and adds nothing.
        static SENT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let mut size = 0;
        for _ in 0..n {
            let i = SENT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let env = Event::new(
                "dock.heartbeat",
                "dock-01",
                json!({ "n": i }).as_object().unwrap().clone(),
                Timestamp::parse("2026-03-01T08:00:00Z").unwrap(),
            )
            .unwrap()
            .sign(&self.dock)
            .unwrap();
            size = rt.block_on(client.append_envelope(&env)).unwrap().seq + 1;
        }
        size
    }

    fn verify(&self, tiles: &str, state: Option<&Path>) -> Output {
        let mut cmd = custos();
        cmd.args(["verify", "log", "--tiles", tiles, "--ledger-key"])
            .arg(self.key_pub())
            .envs(self.env.clone());
        if let Some(state) = state {
            cmd.arg("--state").arg(state);
        }
        cmd.output().unwrap()
    }
}

/// The size in a published checkpoint's text.
fn size_of(checkpoint: &[u8]) -> Option<u64> {
    String::from_utf8_lossy(checkpoint)
        .lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
}

/// Wait until `read_checkpoint` shows `size` (10 s at most).
fn wait_for(size: u64, read_checkpoint: impl Fn() -> Option<Vec<u8>>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = read_checkpoint().and_then(|c| size_of(&c));
        if now == Some(size) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the tiles' checkpoint shows size {now:?}, not {size}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn assert_valid(out: &Output, size: u64) {
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}\nstdout: {stdout}",
        text(&out.stderr)
    );
    assert!(stdout.contains(&format!("size {size} root")), "{stdout}");
}

fn assert_invalid(out: &Output, says: &str) {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("INVALID: "), "{stderr}");
    assert!(stderr.contains(says), "want {says:?} in {stderr:?}");
}

/// Flip one bit of the file at `path`; returns the original bytes.
fn flip(path: &Path, at: usize) -> Vec<u8> {
    let original = std::fs::read(path).unwrap();
    let mut bytes = original.clone();
    bytes[at] ^= 1;
    std::fs::write(path, bytes).unwrap();
    original
}

#[test]
fn tiles_in_a_directory_verify_catch_tampering_and_forks_and_are_republished() {
    let tiles_dir = tempfile::tempdir().unwrap();
    let tiles = tiles_dir.path().join("tiles");
    let site = Site::new(&format!("file://{}", tiles.display()), Vec::new());
    let serving = site.serve();
    // The token entry, then 300 events: a full level-0 tile, a partial one.
    let size = site.append(&serving, 300);
    assert!((257..512).contains(&size), "{size}");
    let read = || std::fs::read(tiles.join("checkpoint")).ok();
    wait_for(size, read);
    let tile_names: Vec<String> = custos_core::tiles::tiles(size).map(|t| t.path()).collect();
    let bundle_names: Vec<String> = custos_core::tiles::bundles(size)
        .map(|b| b.path())
        .collect();
    let partial = format!(".p/{}", size - 256);
    assert_eq!(
        tile_names,
        [
            "tile/0/000".to_owned(),
            format!("tile/0/001{partial}"),
            "tile/1/000.p/1".to_owned()
        ]
    );
    assert_eq!(
        bundle_names,
        [
            "tile/entries/000".to_owned(),
            format!("tile/entries/001{partial}")
        ]
    );
    for name in tile_names.iter().chain(&bundle_names) {
        assert!(tiles.join(name).is_file(), "{name} was not published");
    }

    let state = site.dir.path().join("auditor-state");
    let out = site.verify(tiles.to_str().unwrap(), Some(&state));
    assert_valid(&out, size);
    assert!(text(&out.stdout).contains("hash tiles recomputed"));
    let kept = std::fs::read(state.join("checkpoint")).unwrap();
    assert_eq!(size_of(&kept), Some(size));

    // A flipped byte in a full hash tile, in a partial one, in an entry
    // bundle: each is named, and the log is invalid.
    for (name, at, says) in [
        ("tile/0/000", 40, "tile/0/000 does not hold the hashes"),
        (
            "tile/1/000.p/1",
            3,
            "tile/1/000.p/1 does not hold the hashes",
        ),
        ("tile/entries/001.p/45", 50, "tile/entries/001.p/45"),
    ] {
        let path = tiles.join(name);
        let original = flip(&path, at);
        assert_invalid(&site.verify(tiles.to_str().unwrap(), None), says);
        std::fs::write(&path, original).unwrap();
    }
    // A missing bundle is named too.
    let bundle = tiles.join("tile/entries/000");
    let original = std::fs::read(&bundle).unwrap();
    std::fs::remove_file(&bundle).unwrap();
    assert_invalid(
        &site.verify(tiles.to_str().unwrap(), None),
        "tile/entries/000 is missing",
    );
    std::fs::write(&bundle, original).unwrap();
    assert_valid(&site.verify(tiles.to_str().unwrap(), None), size);

    // The log grows; the kept state is extended.
    let size = site.append(&serving, 5);
    wait_for(size, read);
    let out = site.verify(tiles.to_str().unwrap(), Some(&state));
    assert_valid(&out, size);
    assert!(
        text(&out.stdout).contains("the log only grew since"),
        "{}",
        text(&out.stdout)
    );

    // A kept checkpoint of another history, signed by the real key: the
    // published log does not extend it.
    let forked = site.dir.path().join("forked-state");
    std::fs::create_dir_all(&forked).unwrap();
    let other = Checkpoint::new(ORIGIN, 200, leaf_hash(b"another history"))
        .unwrap()
        .sign(&site.key());
    std::fs::write(forked.join("checkpoint"), other).unwrap();
    assert_invalid(
        &site.verify(tiles.to_str().unwrap(), Some(&forked)),
        "the log forked",
    );
    // A kept checkpoint larger than the published one: the log shrank.
    let larger = Checkpoint::new(ORIGIN, size + 10, leaf_hash(b"x"))
        .unwrap()
        .sign(&site.key());
    std::fs::write(forked.join("checkpoint"), larger).unwrap();
    assert_invalid(
        &site.verify(tiles.to_str().unwrap(), Some(&forked)),
        "the log shrank",
    );

    // The tiles are lost; the ledger publishes them all again at start.
    drop(serving);
    std::fs::remove_dir_all(&tiles).unwrap();
    let serving = site.serve();
    wait_for(size, read);
    assert_valid(&site.verify(tiles.to_str().unwrap(), Some(&state)), size);

    // A second writer's checkpoint is never overwritten: the ledger stops
    // publishing and says so.
    let foreign = Checkpoint::new("someone.else/log", 1, leaf_hash(b"y"))
        .unwrap()
        .sign(&SigningKey::from_seed("intruder", &[5; 32]).unwrap());
    std::fs::write(tiles.join("checkpoint"), &foreign).unwrap();
    site.append(&serving, 3);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        std::fs::read_to_string(tiles.join("checkpoint")).unwrap(),
        foreign
    );
    let log = std::fs::read_to_string(&serving.log).unwrap();
    assert!(
        log.contains("another writer publishes to this tiles store"),
        "{log}"
    );
    // Nor does a ledger started on it publish over it.
    drop(serving);
    let serving = site.serve();
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        std::fs::read_to_string(tiles.join("checkpoint")).unwrap(),
        foreign
    );
    let log = std::fs::read_to_string(&serving.log).unwrap();
    assert!(
        log.contains("is for log \\\"someone.else/log\\\"") || log.contains("someone.else/log"),
        "{log}"
    );
}

#[test]
fn tiles_in_a_garage_bucket_verify_and_a_flipped_byte_is_named() {
    let garage = Garage::start().expect("Garage must be installed (scripts/install-deps)");
    let tiles_url = format!("{}/custos-tiles", garage.storage_url());
    let site = Site::new(&tiles_url, garage.env());
    let serving = site.serve();
    let size = site.append(&serving, 260);
    let store = garage.object_store().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let get = |name: &str| {
        rt.block_on(async {
            let got = store
                .get(&ObjectPath::from(format!("custos-tiles/{name}")))
                .await
                .ok()?;
            Some(got.bytes().await.ok()?.to_vec())
        })
    };
    wait_for(size, || get("checkpoint"));
    assert_valid(&site.verify(&tiles_url, None), size);

    let name = "tile/0/000";
    let original = get(name).unwrap();
    let mut bytes = original.clone();
    bytes[7] ^= 0x80;
    let path = ObjectPath::from(format!("custos-tiles/{name}"));
    rt.block_on(store.put(&path, bytes.into())).unwrap();
    assert_invalid(
        &site.verify(&tiles_url, None),
        "tile/0/000 does not hold the hashes",
    );
    rt.block_on(store.put(&path, original.into())).unwrap();
    assert_valid(&site.verify(&tiles_url, None), size);
    drop(serving);
}

#[test]
fn tiles_that_cannot_be_read_exit_2_and_tiles_needs_a_pinned_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("ledger.pub");
    let signer = SigningKey::from_seed("ledger", &[3; 32]).unwrap();
    std::fs::write(&key, format!("{}\n", signer.verifier_key())).unwrap();
    let run = |args: &[&str]| {
        custos()
            .args(["verify", "log"])
            .args(args)
            .output()
            .unwrap()
    };
    let missing = dir.path().join("no-such-dir");
    let out = run(&[
        "--tiles",
        missing.to_str().unwrap(),
        "--ledger-key",
        key.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("not a directory"),
        "{}",
        text(&out.stderr)
    );
    // A directory without a checkpoint: nothing to verify, cannot read.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = run(&[
        "--tiles",
        empty.to_str().unwrap(),
        "--ledger-key",
        key.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("checkpoint"),
        "{}",
        text(&out.stderr)
    );
    // No pinned key: refused before anything is read.
    let out = run(&["--tiles", empty.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--ledger-key"),
        "{}",
        text(&out.stderr)
    );
    // --state without --tiles, --tiles with --ledger: usage errors.
    let out = run(&[
        "--ledger",
        "http://127.0.0.1:1",
        "--state",
        "x",
        "--ledger-key",
        key.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = run(&[
        "--ledger",
        "http://127.0.0.1:1",
        "--tiles",
        "x",
        "--ledger-key",
        key.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

/// A plain static web server (Python's `http.server`) over `dir`, as a
/// site would put a web server or CDN in front of its tiles; killed on drop.
struct StaticServer {
    _process: Killed,
    url: String,
}

impl StaticServer {
    fn start(dir: &Path) -> StaticServer {
        let port = free_port();
        let python = std::env::var_os("CUSTOS_PYTHON").unwrap_or_else(|| "python3".into());
        let child = std::process::Command::new(python)
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .arg("--directory")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m http.server");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the static server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        StaticServer {
            _process: Killed(child),
            url,
        }
    }
}

#[test]
fn tiles_behind_a_plain_web_server_verify_and_a_flipped_byte_is_named() {
    let tiles_dir = tempfile::tempdir().unwrap();
    let tiles = tiles_dir.path().join("tiles");
    let site = Site::new(&format!("file://{}", tiles.display()), Vec::new());
    let serving = site.serve();
    let size = site.append(&serving, 300);
    wait_for(size, || std::fs::read(tiles.join("checkpoint")).ok());
    let web = StaticServer::start(&tiles);

    let out = site.verify(&format!("{}/", web.url), None);
    assert_valid(&out, size);
    assert!(text(&out.stdout).contains("hash tiles recomputed"));

    // What the server hands out is checked, not trusted.
    let path = tiles.join("tile/0/000");
    let original = flip(&path, 40);
    assert_invalid(
        &site.verify(&web.url, None),
        "tile/0/000 does not hold the hashes",
    );
    std::fs::write(&path, original).unwrap();
    let bundle = tiles.join("tile/entries/000");
    let original = std::fs::read(&bundle).unwrap();
    std::fs::remove_file(&bundle).unwrap();
    assert_invalid(&site.verify(&web.url, None), "tile/entries/000 is missing");
    std::fs::write(&bundle, original).unwrap();
    assert_valid(&site.verify(&web.url, None), size);
}
