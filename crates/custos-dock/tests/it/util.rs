//! Helpers of the dock's integration tests: a site (keys, configuration),
//! simulated recorders on disk (real clips made by `ffmpeg`, plus noise
//! files of chosen sizes), a real ledger process, the `custos` binary, and
//! reading the ledger's entries back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use custos_client::LedgerClient;
use custos_core::entry::{Entry, Event};
use custos_core::keys::SigningKey;
use custos_core::manifest::{Manifest, OriginalName};
use custos_ledger::wire::EntryLine;
use custos_media::synth::{Pattern, SyntheticClip};
use sha2::{Digest as _, Sha256};

/// The shipped firmware profiles.
pub(crate) fn profiles_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../firmware-profiles")
}

/// The built `custos` binary (scripts/test builds it first).
pub(crate) fn custos() -> Command {
    let bin = custos_testsupport::workspace_binary("custos")
        .expect("the custos binary is needed: cargo build --bin custos");
    let mut c = Command::new(bin);
    c.env("RUST_LOG", "warn").stdin(Stdio::null());
    c
}

/// `len` bytes of deterministic noise (xorshift), different per `seed`.
pub(crate) fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Hex SHA-256.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A place with keys and a configuration file.
pub(crate) struct Site {
    /// Everything lives here.
    pub dir: tempfile::TempDir,
}

impl Site {
    /// Keys for the dock (`dock-01`) and the ledger.
    pub(crate) fn new() -> Site {
        let dir = tempfile::Builder::new()
            .prefix("custos-dock-it-")
            .tempdir()
            .unwrap();
        std::fs::create_dir(dir.path().join("keys")).unwrap();
        let mut rng = rand_core::OsRng;
        SigningKey::generate("dock-01", &mut rng)
            .unwrap()
            .save(&dir.path().join("keys/dock-01.key"))
            .unwrap();
        SigningKey::generate("ledger", &mut rng)
            .unwrap()
            .save(&dir.path().join("keys/ledger.key"))
            .unwrap();
        Site { dir }
    }

    /// A path inside the site.
    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Write `custos.toml`: storage at `storage_url`, the ledger listening
    /// on `ledger_listen`, and the dock talking to `dock_ledger` (URL and
    /// token; `None` = in-process); `extra_dock` is appended to `[dock]`.
    pub(crate) fn write_config(
        &self,
        storage_url: &str,
        ledger_listen: &str,
        dock_ledger: Option<(&str, &str)>,
        extra_dock: &str,
    ) -> PathBuf {
        let ledger = match dock_ledger {
            Some((url, token)) => format!("ledger_url = \"{url}\"\nledger_token = \"{token}\"\n"),
            None => String::new(),
        };
        let text = format!(
            r#"[storage]
url = "{storage_url}"
[ledger]
listen = "{ledger_listen}"
data_dir = "./data/ledger"
origin = "test.custos/ledger"
key_file = "./keys/ledger.key"
[dock]
id = "dock-01"
key_file = "./keys/dock-01.key"
data_dir = "./data/dock"
profiles_dir = "{profiles}"
part_size_mib = 5
usb = false
status_listen = "127.0.0.1:0"
{ledger}{extra_dock}
"#,
            profiles = profiles_dir().display(),
        );
        let path = self.path("custos.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The parsed configuration (no environment overrides).
    pub(crate) fn config(&self) -> custos_core::config::Config {
        let text = std::fs::read_to_string(self.path("custos.toml")).unwrap();
        custos_core::config::Config::parse(
            &text,
            self.dir.path(),
            std::iter::empty::<(String, String)>(),
        )
        .unwrap()
    }

    /// A bearer token made offline (`custos token create`).
    pub(crate) fn token(&self, role: &str, name: &str, key: Option<&str>) -> String {
        let key = key.map(|k| self.path(k));
        custos_testsupport::create_token(
            custos(),
            &self.path("custos.toml"),
            role,
            name,
            key.as_deref(),
        )
        .unwrap()
    }
}

/// A free loopback port.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A recorder's files on disk: `<root>/DCIM/100MEDIA/…`.
pub(crate) struct RecorderFiles {
    /// The volume root.
    pub root: PathBuf,
    /// Original file name → SHA-256 hex of its bytes.
    pub files: BTreeMap<String, String>,
}

/// One real clip, made once per test process and copied with new metadata
/// bytes; `ffmpeg` is slow to start, the copies are not.
fn clip(seconds: u32, variant: u32) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("c.mp4");
    SyntheticClip::new(seconds)
        .pattern(Pattern::Testsrc)
        .video(160, 120, 15)
        .tone(300 + variant, None)
        .creation_time("2024-05-01T08:30:00Z")
        .write(&out)
        .unwrap();
    std::fs::read(out).unwrap()
}

/// Make a simulated recorder under `root`: `clips` real clips and one
/// noise file per entry of `blobs` (its size), named the simulated
/// profile's way for `device` and `officer`.
pub(crate) fn recorder(
    root: &Path,
    device: &str,
    officer: &str,
    clips: u32,
    blobs: &[usize],
    seed: u64,
) -> RecorderFiles {
    let media = root.join("DCIM/100MEDIA");
    std::fs::create_dir_all(&media).unwrap();
    let mut files = BTreeMap::new();
    let mut seq = 1u32;
    let mut write = |bytes: Vec<u8>| {
        let name = format!(
            "{device}_{officer}_20240501{:06}_{seq:04}.MP4",
            83000 + seq * 100
        );
        std::fs::write(media.join(&name), &bytes).unwrap();
        files.insert(name, sha256_hex(&bytes));
        seq += 1;
    };
    for i in 0..clips {
        write(clip(1, i));
    }
    for (i, &len) in blobs.iter().enumerate() {
        write(noise(len, seed * 1000 + i as u64));
    }
    RecorderFiles {
        root: root.to_owned(),
        files,
    }
}

/// Footage names still on a recorder.
pub(crate) fn remaining(root: &Path) -> Vec<String> {
    let media = root.join("DCIM/100MEDIA");
    let mut v: Vec<String> = std::fs::read_dir(media)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A `custos ledger serve` process on a fixed port.
pub(crate) struct LedgerProcess {
    config: PathBuf,
    child: Option<Child>,
    /// Its base URL.
    pub url: String,
}

impl LedgerProcess {
    /// Start it and wait until it listens.
    pub(crate) fn start(config: &Path) -> LedgerProcess {
        let mut l = LedgerProcess {
            config: config.to_owned(),
            child: None,
            url: String::new(),
        };
        l.spawn();
        l
    }

    fn serve(&self) -> anyhow::Result<(std::process::Child, String)> {
        let mut c = custos();
        c.args(["ledger", "serve", "--config"])
            .arg(&self.config)
            .stderr(Stdio::null());
        custos_testsupport::serve_ledger(c)
    }

    fn spawn(&mut self) {
        let (child, url) = self.serve().unwrap();
        self.url = url;
        self.child = Some(child);
    }

    /// Kill it (SIGKILL) and wait for it to be gone.
    pub(crate) fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start it again on the same port and data.
    pub(crate) fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            // The sled lock of the killed process may take a moment to go.
            if let Ok((child, url)) = self.serve() {
                self.url = url;
                self.child = Some(child);
                return;
            }
            assert!(Instant::now() < deadline, "the ledger does not restart");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for LedgerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Every entry of the ledger at `url`, read with `token`.
pub(crate) fn entries(url: &str, token: &str) -> Vec<Entry> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = LedgerClient::new(url, Some(token)).unwrap();
        let mut all = Vec::new();
        loop {
            let page = client.entries(all.len() as u64, None).await.unwrap();
            if page.is_empty() {
                break;
            }
            all.extend(page.iter().map(parse_line));
        }
        all
    })
}

/// The entries the dock made (not the tokens' and keys' of the set-up).
pub(crate) fn dock_entries(url: &str, token: &str) -> Vec<Entry> {
    entries(url, token)
        .into_iter()
        .filter(|e| e.actor.kind == custos_core::entry::ActorKind::Dock)
        .collect()
}

/// An entry from its line.
pub(crate) fn parse_line(line: &EntryLine) -> Entry {
    Entry::parse(&line.raw_bytes().unwrap()).unwrap()
}

/// The manifest a `segment.ingested` entry carries.
pub(crate) fn manifest_of(entry: &Entry) -> Manifest {
    let env: custos_core::dsse::Envelope =
        serde_json::from_value(entry.details["manifest"].clone()).unwrap();
    Manifest::parse(&env.payload).unwrap()
}

/// The dock's own time of the event an entry carries.
pub(crate) fn event_time(entry: &Entry) -> custos_core::manifest::Timestamp {
    Event::parse(&entry.envelope.as_ref().unwrap().payload)
        .unwrap()
        .time
}

/// The original name as text (lossy).
pub(crate) fn name_text(n: &OriginalName) -> String {
    n.to_string_lossy()
}

/// Per segment id, the (seq, action) of its segment.* entries, in log order.
pub(crate) fn by_segment(entries: &[Entry]) -> BTreeMap<String, Vec<(u64, String)>> {
    let mut m: BTreeMap<String, Vec<(u64, String)>> = BTreeMap::new();
    for e in entries {
        if e.action.as_str().starts_with("segment.") {
            m.entry(e.subject.clone())
                .or_default()
                .push((e.seq, e.action.to_string()));
        }
    }
    m
}

/// Check, for every segment: exactly one ingested, verified and (if
/// `wiped`) wiped entry, in that order.
pub(crate) fn check_segment_entries(entries: &[Entry], wiped: bool) -> BTreeMap<String, Manifest> {
    let mut manifests = BTreeMap::new();
    for (seg, list) in by_segment(entries) {
        let actions: Vec<&str> = list.iter().map(|(_, a)| a.as_str()).collect();
        let want: &[&str] = if wiped {
            &["segment.ingested", "segment.verified", "segment.wiped"]
        } else {
            &["segment.ingested", "segment.verified"]
        };
        assert_eq!(actions, want, "entries of {seg}: {list:?}");
        let ingested = entries
            .iter()
            .find(|e| e.subject == seg && e.action == "segment.ingested")
            .unwrap();
        manifests.insert(seg, manifest_of(ingested));
    }
    manifests
}

/// A site whose dock talks to a real ledger process over HTTP and stores
/// into `garage`; returns the site, its configuration file, the ledger
/// process and an auditor's token for reading entries.
pub(crate) fn remote_site(
    garage: &custos_testsupport::Garage,
    extra_dock: &str,
) -> (Site, PathBuf, LedgerProcess, String) {
    let site = Site::new();
    let listen = format!("127.0.0.1:{}", free_port());
    site.write_config(&garage.storage_url(), &listen, None, extra_dock);
    let dock_token = site.token("dock", "dock-01", Some("keys/dock-01.key.pub"));
    let audit = site.token("auditor", "audit-1", None);
    let url = format!("http://{listen}");
    let config = site.write_config(
        &garage.storage_url(),
        &listen,
        Some((&url, &dock_token)),
        extra_dock,
    );
    let ledger = LedgerProcess::start(&config);
    (site, config, ledger, audit)
}

/// `custos dock ingest` of `source` with the simulated profile, storing
/// into `garage`.
pub(crate) fn dock_ingest(
    config: &Path,
    source: &Path,
    garage: &custos_testsupport::Garage,
) -> Command {
    let mut c = custos();
    c.args(["dock", "ingest", "--config"])
        .arg(config)
        .arg("--source")
        .arg(source)
        .args([
            "--profile",
            "simulated",
            "--progress",
            "never",
            "--max-wait",
            "240",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in garage.env() {
        c.env(k, v);
    }
    c
}

/// Every object in the bucket: key → SHA-256 hex of its bytes. A read
/// that fails (Garage resetting a connection while a dock uploads beside
/// it on a loaded machine) is tried again, for up to 30 s.
pub(crate) fn bucket(garage: &custos_testsupport::Garage) -> BTreeMap<String, String> {
    use custos_ingest::object_store::ObjectStoreExt as _;
    use futures::TryStreamExt as _;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let read = || {
        rt.block_on(async {
            let store = garage.object_store()?;
            let metas: Vec<_> = store.list(None).try_collect().await?;
            let mut out = BTreeMap::new();
            for m in metas {
                let bytes = store.get(&m.location).await?.bytes().await?;
                out.insert(m.location.to_string(), sha256_hex(&bytes));
            }
            anyhow::Ok(out)
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match read() {
            Ok(out) => return out,
            Err(e) if std::time::Instant::now() < deadline => {
                eprintln!("reading the bucket failed ({e:#}); trying again");
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => panic!("reading the bucket: {e:#}"),
        }
    }
}

/// Invariant 1 at any instant: every file gone from the recorder has a
/// `segment.verified` entry and its bytes in storage; no `segment.wiped`
/// precedes its `segment.verified`.
pub(crate) fn check_nothing_lost(
    files: &RecorderFiles,
    entries: &[Entry],
    stored: &BTreeMap<String, String>,
) {
    let left = remaining(&files.root);
    let per_segment = by_segment(entries);
    for (seg, list) in &per_segment {
        let verified = list.iter().position(|(_, a)| a == "segment.verified");
        let wiped = list.iter().position(|(_, a)| a == "segment.wiped");
        if let Some(w) = wiped {
            assert!(
                verified.is_some_and(|v| v < w),
                "{seg} wiped before verified: {list:?}"
            );
        }
    }
    for (name, sha) in &files.files {
        if left.contains(name) {
            continue;
        }
        let ingested = entries
            .iter()
            .filter(|e| e.action == "segment.ingested")
            .find(|e| name_text(&manifest_of(e).original_name).ends_with(name.as_str()))
            .unwrap_or_else(|| panic!("{name} left the recorder without a segment.ingested entry"));
        let seg = &ingested.subject;
        assert!(
            per_segment[seg]
                .iter()
                .any(|(_, a)| a == "segment.verified"),
            "{name} left the recorder before its segment.verified"
        );
        assert!(
            stored.values().any(|s| s == sha),
            "{name}'s bytes are not in storage"
        );
    }
}
