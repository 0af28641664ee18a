//! The end-to-end site: a real Garage S3 node, keys and tokens made with
//! `custos keygen` and `custos token create`, `custos ledger serve` as a
//! process on a free loopback port, simulated 执法记录仪 recorders filled
//! with FFmpeg-made H.264/AAC clips, `custos dock ingest` as a process, and
//! the independent Python checkers beside this file (boto3, `cryptography`,
//! ffprobe) run against all of it.
//!
//! Nothing here talks to Custos's libraries: the test sees the system only
//! through its command line, its HTTP API and the S3 bucket, as an operator
//! and an auditor would.

use std::ffi::OsString;
use std::io::{BufRead as _, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use custos_media::synth::SyntheticClip;
use custos_testsupport::Garage;

/// The checkpoint origin of the e2e ledger.
pub(crate) const ORIGIN: &str = "e2e.custos.test/ledger";
/// The dock's station id (and key name).
pub(crate) const DOCK_ID: &str = "dock-e2e";

/// The id of the site's dock number `n` (from 0): [`DOCK_ID`], then
/// `dock-e2e-2`, `dock-e2e-3`, ….
pub(crate) fn dock_id(n: usize) -> String {
    if n == 0 {
        DOCK_ID.to_owned()
    } else {
        format!("{DOCK_ID}-{}", n + 1)
    }
}

/// A file name for dock `n`: `base` for the first dock, `base-N` after it.
fn numbered(base: &str, n: usize) -> String {
    if n == 0 {
        base.to_owned()
    } else {
        format!("{base}-{}", n + 1)
    }
}

/// The repository's root (this file is in tests/e2e/).
pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Python that has boto3 and cryptography: `$CUSTOS_PYTHON`, else the
/// repository's `.venv` that scripts/install-deps makes. Missing: the test
/// fails saying how to get it.
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("CUSTOS_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = repo().join(".venv/bin/python");
    assert!(
        venv.is_file(),
        "the e2e checkers need Python with boto3 and cryptography: run scripts/install-deps \
         (it makes {}), or set CUSTOS_PYTHON",
        venv.display()
    );
    venv
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("binding a free loopback port");
    l.local_addr().unwrap().port()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Panic with the command's output unless it exited 0; its stdout.
pub(crate) fn ok(what: &str, out: &Output) -> String {
    assert!(
        out.status.success(),
        "{what}: exit {:?}\nstderr: {}\nstdout: {}",
        out.status.code(),
        text(&out.stderr),
        text(&out.stdout)
    );
    text(&out.stdout)
}

/// Settings a test may change before the site starts.
#[derive(Debug, Clone)]
pub(crate) struct SiteOptions {
    /// `[dock] concurrency`.
    pub concurrency: u32,
    /// The site's own PKI: the ledger serves HTTPS with a certificate of
    /// the site CA and asks docks for their station certificate
    /// (`tls_client_ca`); the dock and the client trust that CA
    /// (`ledger_ca`), the dock presents its certificate.
    pub tls: bool,
    /// Garage nodes: 1, or a cluster (three replicas of every object).
    pub storage_nodes: usize,
    /// Docking stations, each with its own id, key, token, data_dir,
    /// station certificate and configuration file ([`Site::dock_config`]).
    pub docks: usize,
}

impl Default for SiteOptions {
    fn default() -> Self {
        SiteOptions {
            concurrency: 2,
            tls: false,
            storage_nodes: 1,
            docks: 1,
        }
    }
}

/// Bearer tokens made with `custos token create` before the service starts:
/// one per role.
#[derive(Debug, Default)]
pub(crate) struct Tokens {
    /// The first dock's.
    pub dock: String,
    /// Every dock's, in dock order (the first is `dock`).
    pub docks: Vec<String>,
    pub auditor: String,
    pub supervisor: String,
    pub reviewer: String,
    pub officer: String,
    pub admin: String,
}

/// One site: S3, a ledger service, one dock's configuration.
#[derive(Debug)]
pub(crate) struct Site {
    pub dir: tempfile::TempDir,
    pub garage: Garage,
    pub config: PathBuf,
    port: u16,
    pub tokens: Tokens,
    ledger: Option<Child>,
    /// The site CA's certificate, with [`SiteOptions::tls`].
    pub ca: Option<PathBuf>,
    /// How many docking stations the site has.
    docks: usize,
    /// The ledger's verifier keys the checks accept (a checkpoint signed
    /// by any of them): its first key, and those a rotation adds.
    pub ledger_keys: Vec<PathBuf>,
    /// The ledger's signing keys as `[ledger] key_files` names them, newest
    /// first; empty: `key_file = "./keys/ledger.key"`.
    ledger_key_files: Vec<String>,
    opts: SiteOptions,
}

impl Site {
    /// Garage, keys, configuration, tokens, and the ledger service running.
    pub(crate) fn start(opts: SiteOptions) -> Site {
        let garage =
            Garage::cluster(opts.storage_nodes).expect("starting Garage (the e2e tests need it)");
        let dir = tempfile::Builder::new()
            .prefix("custos-e2e-")
            .tempdir()
            .unwrap();
        for sub in ["keys", "recorders", "originals", "logs"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        let port = free_port();
        let mut site = Site {
            config: dir.path().join("custos.toml"),
            dir,
            garage,
            port,
            tokens: Tokens::default(),
            ledger: None,
            ca: None,
            docks: opts.docks.max(1),
            ledger_keys: Vec::new(),
            ledger_key_files: Vec::new(),
            opts: opts.clone(),
        };
        site.ledger_keys.push(site.ledger_key());
        if opts.tls {
            site.make_pki();
        }
        let names = std::iter::once("ledger".to_owned()).chain((0..site.docks).map(dock_id));
        for name in names {
            let key = site.path(&format!("keys/{name}.key"));
            ok(
                "custos keygen",
                &site
                    .custos()
                    .args(["keygen", "--name", &name, "--out"])
                    .arg(&key)
                    .output()
                    .unwrap(),
            );
        }
        site.write_config();
        let docks: Vec<String> = (0..site.docks)
            .map(|n| site.token("dock", &dock_id(n), Some(&site.dock_key_of(n))))
            .collect();
        site.tokens = Tokens {
            dock: docks[0].clone(),
            docks,
            auditor: site.token("auditor", "aud-e2e", None),
            supervisor: site.token("supervisor", "sup-e2e", None),
            reviewer: site.token("reviewer", "rev-e2e", None),
            officer: site.token("officer", "off-e2e", None),
            admin: site.token("admin", "adm-e2e", None),
        };
        site.write_config();
        site.start_ledger();
        site
    }

    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The site CA (pki/site-ca.pem), the ledger's server certificate for
    /// 127.0.0.1 (pki/ledger.crt) and the dock's station certificate
    /// naming its id (pki/station.crt).
    fn make_pki(&mut self) {
        use custos_testsupport::pki::{TestCa, Validity};
        let pki = self.path("pki");
        std::fs::create_dir(&pki).unwrap();
        let ca = TestCa::new(&pki, "site-ca").unwrap();
        ca.server("ledger", &["127.0.0.1", "localhost"], Validity::Current)
            .unwrap();
        for n in 0..self.docks {
            ca.client(&numbered("station", n), &[&dock_id(n)]).unwrap();
        }
        self.ca = Some(ca.cert_path());
    }

    /// Dock `n`'s verifier key file.
    pub(crate) fn dock_key_of(&self, n: usize) -> PathBuf {
        self.path(&format!("keys/{}.key.pub", dock_id(n)))
    }

    /// Dock `n`'s configuration file: the site's `custos.toml` for the
    /// first dock, `custos-dock-N.toml` for the others (the same but for
    /// the `[dock]` section).
    pub(crate) fn dock_config(&self, n: usize) -> PathBuf {
        if n == 0 {
            self.config.clone()
        } else {
            self.path(&format!("custos-dock-{}.toml", n + 1))
        }
    }

    /// The ledger's verifier key file.
    pub(crate) fn ledger_key(&self) -> PathBuf {
        self.path("keys/ledger.key.pub")
    }

    pub(crate) fn ledger_url(&self) -> String {
        let scheme = if self.ca.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The configuration: S3 storage on Garage, the ledger on its port, the
    /// dock reaching it over HTTP with its token, export through the
    /// service with the supervisor's token; one file per dock
    /// ([`Site::dock_config`]).
    fn write_config(&self) {
        for n in 0..self.docks {
            std::fs::write(self.dock_config(n), self.config_text(n)).unwrap();
        }
    }

    /// Rotate the ledger's key in every configuration file: `[ledger]
    /// key_files = files` (newest first, relative to the site). Takes
    /// effect at the ledger's next start.
    pub(crate) fn set_ledger_key_files(&mut self, files: &[&str]) {
        self.ledger_key_files = files.iter().map(|f| (*f).to_owned()).collect();
        self.write_config();
    }

    fn config_text(&self, dock: usize) -> String {
        let opts = &self.opts;
        let ledger_keys = if self.ledger_key_files.is_empty() {
            "key_file = \"./keys/ledger.key\"".to_owned()
        } else {
            let quoted: Vec<String> = self
                .ledger_key_files
                .iter()
                .map(|f| format!("{f:?}"))
                .collect();
            format!("key_files = [{}]", quoted.join(", "))
        };
        let t = &self.tokens;
        let profiles = repo().join("firmware-profiles");
        let id = dock_id(dock);
        let station = numbered("station", dock);
        let (ledger_tls, dock_tls, client_tls) = if self.ca.is_some() {
            (
                "tls_cert = \"./pki/ledger.crt\"\ntls_key = \"./pki/ledger.key\"\ntls_client_ca = \"./pki/site-ca.pem\"\n".to_owned(),
                format!("ledger_ca = \"./pki/site-ca.pem\"\ntls_cert = \"./pki/{station}.crt\"\ntls_key = \"./pki/{station}.key\"\n"),
                "ledger_ca = \"./pki/site-ca.pem\"\n",
            )
        } else {
            (String::new(), String::new(), "")
        };
        format!(
            r#"[storage]
url = "{storage}"

[ledger]
listen = "127.0.0.1:{port}"
data_dir = "./ledger"
origin = "{ORIGIN}"
{ledger_keys}
{ledger_tls}
[dock]
id = "{id}"
key_file = "./keys/{id}.key"
data_dir = "./{data_dir}"
ledger_url = "{url}"
ledger_token = "{dock_token}"
profiles_dir = "{profiles}"
wipe = "after-verified"
usb = false
status_listen = "127.0.0.1:0"
concurrency = {concurrency}
part_size_mib = 5
{dock_tls}
[client]
ledger_url = "{url}"
token = "{supervisor}"
{client_tls}"#,
            storage = self.garage.storage_url(),
            port = self.port,
            url = self.ledger_url(),
            data_dir = numbered("dock", dock),
            dock_token = t.docks.get(dock).map(String::as_str).unwrap_or_default(),
            supervisor = t.supervisor,
            profiles = profiles.display(),
            concurrency = opts.concurrency,
        )
    }

    /// The `custos` binary with the S3 variables of the site's Garage and
    /// none of the caller's `CUSTOS_*` overrides.
    pub(crate) fn custos(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_custos"));
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("CUSTOS_") {
                cmd.env_remove(k);
            }
        }
        cmd.envs(self.garage.env())
            .env("RUST_LOG", "warn")
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        cmd
    }

    pub(crate) fn token(&self, role: &str, name: &str, key: Option<&Path>) -> String {
        let mut cmd = self.custos();
        cmd.args(["token", "create", "--config"])
            .arg(&self.config)
            .args(["--role", role, "--name", name]);
        if let Some(key) = key {
            cmd.arg("--key").arg(key);
        }
        let out = ok("custos token create", &cmd.output().unwrap());
        out.lines().last().unwrap().trim().to_owned()
    }

    /// Start `custos ledger serve` on the site's port and wait until it
    /// says it listens.
    pub(crate) fn start_ledger(&mut self) {
        assert!(self.ledger.is_none(), "the ledger is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path("logs/ledger.log"))
            .unwrap();
        let mut child = self
            .custos()
            .args(["ledger", "serve", "--config"])
            .arg(&self.config)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(
            line.starts_with("listening on "),
            "custos ledger serve did not start: {line:?} (log: {})",
            self.path("logs/ledger.log").display()
        );
        self.ledger = Some(child);
    }

    /// SIGKILL the ledger service: no shutdown, no flush.
    pub(crate) fn kill_ledger(&mut self) {
        let mut child = self.ledger.take().expect("the ledger is running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// GET a public path of the ledger.
    fn http_get(&self, path: &str) -> Result<String, String> {
        let url = format!("{}{path}", self.ledger_url());
        let mut client = reqwest::Client::builder();
        if let Some(ca) = &self.ca {
            let pem = std::fs::read(ca).map_err(|e| e.to_string())?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| e.to_string())?;
            client = client
                .tls_built_in_root_certs(false)
                .add_root_certificate(cert);
        }
        let client = client.build().map_err(|e| e.to_string())?;
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?
            .block_on(async {
                let resp = client.get(&url).send().await.map_err(|e| e.to_string())?;
                if !resp.status().is_success() {
                    return Err(format!("GET {url}: {}", resp.status()));
                }
                resp.text().await.map_err(|e| e.to_string())
            })
    }

    /// The ledger's signed checkpoint, as served.
    pub(crate) fn checkpoint(&self) -> String {
        self.http_get("/v1/checkpoint").unwrap()
    }

    /// The size of the ledger's tree.
    pub(crate) fn size(&self) -> u64 {
        self.checkpoint().lines().nth(1).unwrap().parse().unwrap()
    }

    /// Keep the current checkpoint in a file (for `check_log.py --earlier`).
    pub(crate) fn keep_checkpoint(&self, name: &str) -> PathBuf {
        let path = self.path(&format!("{name}.checkpoint"));
        std::fs::write(&path, self.checkpoint()).unwrap();
        path
    }

    /// A recorder `DEVICE` of officer `OFFICER` holding `clips` clips of
    /// `seconds` seconds under DCIM/100MEDIA/, named as a GA/T 947 recorder
    /// names them; a pristine copy goes to originals/DEVICE/DCIM/100MEDIA/.
    /// Returns the
    /// recorder's folder (what `--source` takes).
    pub(crate) fn recorder(
        &self,
        device: &str,
        officer: &str,
        clips: u32,
        seconds: u32,
    ) -> PathBuf {
        let root = self.path(&format!("recorders/{device}"));
        let media = root.join("DCIM/100MEDIA");
        let pristine = self.path(&format!("originals/{device}/DCIM/100MEDIA"));
        std::fs::create_dir_all(&media).unwrap();
        std::fs::create_dir_all(&pristine).unwrap();
        let cst = time::UtcOffset::from_hms(8, 0, 0).unwrap();
        let now = time::OffsetDateTime::now_utc();
        for i in 0..clips {
            let start = (now
                - time::Duration::seconds(i64::from((clips - i) * (seconds + 20) + 60)))
            .to_offset(cst);
            let stamp = format!(
                "{:04}{:02}{:02}{:02}{:02}{:02}",
                start.year(),
                u8::from(start.month()),
                start.day(),
                start.hour(),
                start.minute(),
                start.second()
            );
            let name = format!("{device}_{officer}_{stamp}_{:04}.MP4", i + 1);
            // The recorder's wall clock, labelled UTC (the gat947 profile's
            // media_time = "local").
            let creation = format!(
                "{}-{}-{}T{}:{}:{}Z",
                &stamp[0..4],
                &stamp[4..6],
                &stamp[6..8],
                &stamp[8..10],
                &stamp[10..12],
                &stamp[12..14]
            );
            clip(&media.join(&name), seconds, 500 + 100 * i, &creation);
            std::fs::copy(media.join(&name), pristine.join(&name)).unwrap();
        }
        root
    }

    /// The files left on a recorder.
    pub(crate) fn files_on(recorder: &Path) -> Vec<String> {
        let media = recorder.join("DCIM/100MEDIA");
        let mut names: Vec<String> = std::fs::read_dir(media)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// `custos dock ingest` of `recorder`, ready to run or spawn.
    pub(crate) fn dock_ingest(&self, recorder: &Path) -> Command {
        self.dock_ingest_at(0, recorder)
    }

    /// `custos dock ingest` of `recorder` at dock `n`.
    pub(crate) fn dock_ingest_at(&self, n: usize, recorder: &Path) -> Command {
        let mut cmd = self.custos();
        cmd.args(["dock", "ingest", "--progress", "never", "--max-wait", "90"])
            .arg("--config")
            .arg(self.dock_config(n))
            .arg("--source")
            .arg(recorder);
        cmd
    }

    /// Run one of the Python checkers with the auditor's token; its output.
    pub(crate) fn checker(&self, script: &str, args: &[OsString]) -> Output {
        let mut cmd = Command::new(python());
        cmd.arg(repo().join("tests/e2e/checkers").join(script))
            .arg("--ledger")
            .arg(self.ledger_url())
            .args(args)
            .envs(self.garage.env())
            .env("CUSTOS_E2E_TOKEN", &self.tokens.auditor)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null());
        if let Some(ca) = &self.ca {
            // urllib's default context trusts the site CA (OpenSSL reads it).
            cmd.env("SSL_CERT_FILE", ca);
        }
        cmd.output().unwrap()
    }

    /// Run a checker and panic with its failure lines unless it passes.
    pub(crate) fn check(&self, script: &str, args: &[OsString]) {
        let out = self.checker(script, args);
        let stdout = ok(script, &out);
        eprint!("{stdout}");
    }

    /// `--bucket B --originals DIR` and `--recorder DIR` for each recorder.
    pub(crate) fn store_args(&self, recorders: &[&Path]) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "--bucket".into(),
            self.garage.bucket().into(),
            "--originals".into(),
            self.path("originals").into(),
        ];
        for r in recorders {
            args.push("--recorder".into());
            args.push(r.into());
        }
        args
    }

    /// Every independent check of a finished site: the store (boto3), the
    /// signatures (cryptography), the log (our RFC 6962 code) and the media
    /// (ffprobe). `earlier`: checkpoints kept along the way.
    pub(crate) fn check_everything(
        &self,
        recorders: &[&Path],
        segments: usize,
        earlier: &[PathBuf],
    ) {
        let n: OsString = segments.to_string().into();
        let mut store = self.store_args(recorders);
        store.extend(["--segments".into(), n.clone()]);
        self.check("check_store.py", &store);
        let ledger_keys: Vec<OsString> = self
            .ledger_keys
            .iter()
            .flat_map(|k| ["--ledger-key".into(), k.into()])
            .collect();
        let mut signatures = ledger_keys.clone();
        for d in 0..self.docks {
            signatures.extend(["--dock-key".into(), self.dock_key_of(d).into()]);
        }
        self.check("check_signatures.py", &signatures);
        let mut log = ledger_keys;
        log.extend(["--segments".into(), n, "--wiped".into()]);
        for e in earlier {
            log.extend(["--earlier".into(), e.into()]);
        }
        self.check("check_log.py", &log);
        self.check(
            "check_media.py",
            &["--bucket".into(), self.garage.bucket().into()],
        );
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        if let Some(mut child) = self.ledger.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One clip: 640x360 test pattern with moving noise (so that it is a few
/// MiB, and a multipart upload), H.264 + a `tone` Hz AAC tone, with the
/// recorder's `creation_time`.
fn clip(out: &Path, seconds: u32, tone: u32, creation: &str) {
    SyntheticClip::new(seconds)
        .tone(tone, Some(48000))
        .video_filter("noise=alls=30:allf=t")
        .encoder_options(&["-crf", "20", "-b:a", "64k"])
        .creation_time(creation)
        .write(out)
        .unwrap();
}

/// Wait for `child` up to `limit`; its status, or panic.
pub(crate) fn wait_for(child: &mut Child, limit: Duration, what: &str) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stop storage node `node` while `dock` is mid-ingest: once the ledger
/// has grown beyond `base` (the dock put something on the record) and the
/// dock is still running. Panics if it made no progress in 90 s or
/// finished first (the loss would prove nothing).
pub(crate) fn lose_node_mid_ingest(site: &mut Site, dock: &mut Child, base: u64, node: usize) {
    let mut exited = None;
    assert!(
        poll(Duration::from_secs(90), || {
            if let Some(status) = dock.try_wait().unwrap() {
                exited = Some(status);
                return true;
            }
            site.size() > base
        }),
        "the dock made no progress in 90 s"
    );
    assert!(
        exited.is_none(),
        "the dock finished ({exited:?}) before a node could be lost mid-ingest"
    );
    site.garage.stop_node(node);
}

/// Poll `cond` every 10 ms up to `limit`; whether it came true.
pub(crate) fn poll(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}
