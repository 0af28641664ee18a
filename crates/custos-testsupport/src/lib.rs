//! # custos-testsupport: real servers for the tests
//!
//! Every test that needs S3 uses [`Garage`]: a real, single-node Garage
//! object store on free loopback ports with its data in a temporary
//! directory, laid out, with a key and a bucket made through the `garage`
//! command, and stopped when the value is dropped. Its data is on disk, so a
//! test can [`Garage::stop`] it mid-upload and [`Garage::start_again`] it to
//! find what it had acknowledged.
//!
//! The other real process most tests need is the ledger service:
//! [`serve_ledger`] starts `custos ledger serve` and waits for the line that
//! gives its address, and [`create_token`] makes a bearer token offline
//! through `custos token create`, as an operator would.
//!
//! [`pki`] makes a site's private CA and the certificates it issues (the
//! ledger's, a station's) for the TLS tests.
//!
//! [`fixtures`] holds the keys, manifests and signed events tests build
//! again and again (fixed seeds and times: every run signs the same bytes).
//!
//! ## What this crate must never do
//!
//! Skip quietly. A test that needs Garage fails, with a message saying how to
//! install it, when the `garage` binary is missing. Nothing here is a mock.

pub mod fixtures;
pub mod pki;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use object_store::aws::AmazonS3Builder;
use object_store::ObjectStore;

/// The access key id every test node gets (Garage's `GK` + 24 hex digits).
const ACCESS_KEY: &str = "GK0123456789abcdef01234567";
/// Its secret (64 hex digits). Test-only: the node listens on loopback and
/// lives in a temporary directory.
const SECRET_KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const RPC_SECRET: &str = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00";
const REGION: &str = "garage";

/// How long a node may take to come up before the test fails.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the `garage` binary is: `$CUSTOS_GARAGE_BIN`, else `garage` on
/// `PATH`, else `~/.cargo/bin/garage` (where `cargo install` puts it).
pub fn garage_binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("CUSTOS_GARAGE_BIN") {
        return Ok(PathBuf::from(p));
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("garage");
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    if let Some(home) = std::env::var_os("HOME") {
        let candidate = Path::new(&home).join(".cargo/bin/garage");
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!(
        "the Garage S3 server is not installed: this test needs it \
         (run .ci/run, or `cargo install --locked garage`)"
    )
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("binding a free loopback port")?;
    Ok(l.local_addr()?.port())
}

/// A running single-node Garage on loopback. Dropping it kills the server and
/// removes its directory.
#[derive(Debug)]
pub struct Garage {
    binary: PathBuf,
    dir: tempfile::TempDir,
    config: PathBuf,
    s3_port: u16,
    bucket: String,
    /// The server process; `None` while stopped.
    child: Option<Child>,
}

static BUCKET_SEQ: AtomicU32 = AtomicU32::new(0);

impl Garage {
    /// Start a node, lay it out, and create the access key and a bucket.
    pub fn start() -> Result<Garage> {
        let binary = garage_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("custos-garage-")
            .tempdir()
            .context("creating Garage's temporary directory")?;
        let (s3_port, rpc_port, admin_port) = (free_port()?, free_port()?, free_port()?);
        let config = dir.path().join("garage.toml");
        let text = format!(
            r#"metadata_dir = "{meta}"
data_dir = "{data}"
db_engine = "sqlite"
metadata_fsync = true
data_fsync = true
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc_port}"
rpc_public_addr = "127.0.0.1:{rpc_port}"
rpc_secret = "{RPC_SECRET}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{s3_port}"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:{admin_port}"
"#,
            meta = dir.path().join("meta").display(),
            data = dir.path().join("data").display(),
        );
        std::fs::write(&config, text).context("writing garage.toml")?;
        let n = BUCKET_SEQ.fetch_add(1, Ordering::Relaxed);
        let bucket = format!("custos-test-{}-{n}", std::process::id());
        let mut g = Garage {
            binary,
            dir,
            config,
            s3_port,
            bucket,
            child: None,
        };
        g.spawn()?;
        g.setup().context("laying out the Garage test node")?;
        Ok(g)
    }

    fn garage(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(&self.binary)
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {} {}", self.binary.display(), args.join(" ")))?;
        if !out.status.success() {
            bail!(
                "garage {} failed: {}{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim(),
                String::from_utf8_lossy(&out.stdout).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Retry `f` until it succeeds or the start timeout passes.
    fn retry<T>(&self, what: &str, mut f: impl FnMut() -> Result<T>) -> Result<T> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match f() {
                Ok(v) => return Ok(v),
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => {
                    return Err(e.context(format!(
                        "{what} (Garage's log: {})",
                        self.log_path().display()
                    )))
                }
            }
        }
    }

    fn spawn(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .context("opening Garage's log file")?;
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(&self.config)
            .arg("server")
            .env("RUST_LOG", "garage=info")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        self.child = Some(child);
        self.retry("waiting for Garage to answer", || {
            self.garage(&["status"]).map(|_| ())
        })?;
        Ok(())
    }

    fn setup(&self) -> Result<()> {
        let id = self.retry("reading Garage's node id", || {
            let out = self.garage(&["node", "id", "-q"])?;
            let id = out.trim().split('@').next().unwrap_or("").to_owned();
            if id.is_empty() {
                bail!("empty node id");
            }
            Ok(id)
        })?;
        self.garage(&["layout", "assign", "-z", "dc1", "-c", "1G", &id])?;
        self.garage(&["layout", "apply", "--version", "1"])?;
        self.retry("importing the test key", || {
            self.garage(&[
                "key",
                "import",
                "--yes",
                "-n",
                "custos-test",
                ACCESS_KEY,
                SECRET_KEY,
            ])
            .map(|_| ())
        })?;
        self.retry("creating the test bucket", || {
            self.garage(&["bucket", "create", &self.bucket]).map(|_| ())
        })?;
        self.garage(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            &self.bucket,
            "--key",
            ACCESS_KEY,
        ])?;
        self.wait_s3()
    }

    /// Wait until the S3 endpoint accepts connections.
    fn wait_s3(&self) -> Result<()> {
        self.retry("waiting for Garage's S3 port", || {
            std::net::TcpStream::connect(("127.0.0.1", self.s3_port))
                .map(|_| ())
                .context("connecting to the S3 port")
        })
    }

    /// Kill the server (SIGKILL), keeping its data on disk.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start the server again on the same ports and data after [`Garage::stop`].
    pub fn start_again(&mut self) -> Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        self.spawn()?;
        self.wait_s3()
    }

    /// Whether the server process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// The S3 region name.
    pub fn region(&self) -> &str {
        REGION
    }

    /// The access key id.
    pub fn access_key(&self) -> &str {
        ACCESS_KEY
    }

    /// The secret access key.
    pub fn secret_key(&self) -> &str {
        SECRET_KEY
    }

    /// The bucket made for this node.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Create another bucket, owned by the test key.
    pub fn create_bucket(&self, name: &str) -> Result<()> {
        self.garage(&["bucket", "create", name])?;
        self.garage(&[
            "bucket", "allow", "--read", "--write", "--owner", name, "--key", ACCESS_KEY,
        ])?;
        Ok(())
    }

    /// `s3://BUCKET`, for a Custos `[storage] url`.
    pub fn storage_url(&self) -> String {
        format!("s3://{}", self.bucket)
    }

    /// The standard AWS variables that point an S3 client (object_store's
    /// `from_env`, the aws CLI, boto3) at this node.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_owned()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_DEFAULT_REGION", REGION.to_owned()),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
        ]
    }

    /// An object_store client for the bucket, path-style over plain HTTP.
    pub fn object_store(&self) -> Result<Arc<dyn ObjectStore>> {
        Ok(Arc::new(self.s3_builder().build()?))
    }

    /// The builder behind [`Garage::object_store`], for tests that tune it.
    pub fn s3_builder(&self) -> AmazonS3Builder {
        AmazonS3Builder::new()
            .with_endpoint(self.endpoint())
            .with_region(REGION)
            .with_bucket_name(&self.bucket)
            .with_access_key_id(ACCESS_KEY)
            .with_secret_access_key(SECRET_KEY)
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
    }

    /// The server's log file (printed in failure messages).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("garage.log")
    }

    /// The node's directory (config, metadata, data, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The path of a workspace binary built by cargo (`custos`), for tests that
/// start real processes: `$CARGO_BIN_EXE_<name>` when cargo set it, else
/// `target/<profile>/<name>` next to the running test executable.
pub fn workspace_binary(name: &str) -> Result<PathBuf> {
    if let Ok(p) = std::env::var(format!("CARGO_BIN_EXE_{name}")) {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().context("locating the test executable")?;
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("test executable has no target directory")?;
    let candidate = profile_dir.join(name);
    if candidate.is_file() {
        Ok(candidate)
    } else {
        bail!(
            "{} not found: build it first (cargo build --bin {name})",
            candidate.display()
        )
    }
}

/// Run `custos`, prepared by the caller (binary and environment), as
/// `ledger serve` would be run by `custos ledger serve --config ...` — the
/// caller adds those arguments — and return the process once it printed
/// its first line, `listening on URL`, with that URL. The process's stdout
/// is taken; a first line other than that (the service refused to start)
/// is an error that quotes it, after the process was killed.
pub fn serve_ledger(mut command: Command) -> Result<(Child, String)> {
    use std::io::{BufRead as _, BufReader};
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the ledger service")?;
    let stdout = child.stdout.take().context("the service's stdout")?;
    let mut line = String::new();
    let read = BufReader::new(stdout).read_line(&mut line);
    match line.trim().strip_prefix("listening on ") {
        Some(url) if read.is_ok() => Ok((child, url.to_owned())),
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the ledger service did not start: its first line was {line:?}")
        }
    }
}

/// `custos token create --config CONFIG --role ROLE --name NAME [--key KEY]`
/// through `custos` (the caller's prepared command): the new token, the
/// last line of its output. A failure is an error that quotes stderr.
pub fn create_token(
    mut custos: Command,
    config: &Path,
    role: &str,
    name: &str,
    key: Option<&Path>,
) -> Result<String> {
    custos
        .args(["token", "create", "--config"])
        .arg(config)
        .args(["--role", role, "--name", name]);
    if let Some(key) = key {
        custos.arg("--key").arg(key);
    }
    let out = custos.output().context("running custos token create")?;
    if !out.status.success() {
        bail!(
            "custos token create --role {role} --name {name}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .map(str::to_owned)
        .context("custos token create printed nothing")
}
