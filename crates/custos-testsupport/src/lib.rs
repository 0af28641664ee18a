//! # custos-testsupport: real servers for the tests
//!
//! Every test that needs S3 uses [`Garage`]: a real Garage object store on
//! free loopback ports with its data in a temporary directory — one node
//! ([`Garage::start`]), or a cluster that replicates every object three
//! times ([`Garage::cluster`]) — laid out, with a key and a bucket made
//! through the `garage` command, and stopped when the value is dropped. Its
//! data is on disk, so a test can [`Garage::stop`] it (or one node of a
//! cluster, [`Garage::stop_node`]) mid-upload and start it again to find
//! what it had acknowledged.
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

/// A running Garage on loopback: one node ([`Garage::start`]) or a
/// cluster of several ([`Garage::cluster`]), each node with its own ports,
/// metadata and data under one temporary directory. Dropping it kills every
/// node and removes the directory. Clients talk to node 0's S3 port (as a
/// site's clients talk to one address in front of the cluster).
#[derive(Debug)]
pub struct Garage {
    binary: PathBuf,
    dir: tempfile::TempDir,
    nodes: Vec<GarageNode>,
    bucket: String,
}

/// One node of a [`Garage`].
#[derive(Debug)]
struct GarageNode {
    dir: PathBuf,
    config: PathBuf,
    s3_port: u16,
    rpc_port: u16,
    /// The server process; `None` while stopped.
    child: Option<Child>,
}

static BUCKET_SEQ: AtomicU32 = AtomicU32::new(0);

impl Garage {
    /// Start a node, lay it out, and create the access key and a bucket.
    pub fn start() -> Result<Garage> {
        Self::cluster(1)
    }

    /// Start `nodes` nodes that know each other, each in its own zone, with
    /// every object stored on min(`nodes`, 3) of them (Garage's
    /// `replication_factor`; writes and reads need a majority of those),
    /// then the key and a bucket.
    pub fn cluster(nodes: usize) -> Result<Garage> {
        if nodes == 0 {
            bail!("a Garage cluster needs at least one node");
        }
        let binary = garage_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("custos-garage-")
            .tempdir()
            .context("creating Garage's temporary directory")?;
        let replication = nodes.min(3);
        let mut list = Vec::with_capacity(nodes);
        for i in 0..nodes {
            // Node 0 keeps the layout of a single node's directory.
            let node_dir = if nodes == 1 {
                dir.path().to_path_buf()
            } else {
                dir.path().join(format!("node-{i}"))
            };
            std::fs::create_dir_all(&node_dir).context("creating a Garage node's directory")?;
            let (s3_port, rpc_port, admin_port) = (free_port()?, free_port()?, free_port()?);
            let config = node_dir.join("garage.toml");
            let text = format!(
                r#"metadata_dir = "{meta}"
data_dir = "{data}"
db_engine = "sqlite"
metadata_fsync = true
data_fsync = true
replication_factor = {replication}
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
                meta = node_dir.join("meta").display(),
                data = node_dir.join("data").display(),
            );
            std::fs::write(&config, text).context("writing garage.toml")?;
            list.push(GarageNode {
                dir: node_dir,
                config,
                s3_port,
                rpc_port,
                child: None,
            });
        }
        let n = BUCKET_SEQ.fetch_add(1, Ordering::Relaxed);
        let bucket = format!("custos-test-{}-{n}", std::process::id());
        let mut g = Garage {
            binary,
            dir,
            nodes: list,
            bucket,
        };
        for i in 0..nodes {
            g.spawn(i)?;
        }
        g.setup().context("laying out the Garage test cluster")?;
        Ok(g)
    }

    /// Run the `garage` command against node `node`.
    fn garage_on(&self, node: usize, args: &[&str]) -> Result<String> {
        let out = Command::new(&self.binary)
            .arg("-c")
            .arg(&self.nodes[node].config)
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

    fn garage(&self, args: &[&str]) -> Result<String> {
        self.garage_on(0, args)
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

    fn spawn(&mut self, node: usize) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.node_log_path(node))
            .context("opening Garage's log file")?;
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(&self.nodes[node].config)
            .arg("server")
            .env("RUST_LOG", "garage=info")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        self.nodes[node].child = Some(child);
        self.retry("waiting for Garage to answer", || {
            self.garage_on(node, &["status"]).map(|_| ())
        })?;
        Ok(())
    }

    /// Node `node`'s id, as `garage node id` prints it (without the address).
    fn node_id(&self, node: usize) -> Result<String> {
        self.retry("reading Garage's node id", || {
            let out = self.garage_on(node, &["node", "id", "-q"])?;
            let id = out.trim().split('@').next().unwrap_or("").to_owned();
            if id.is_empty() {
                bail!("empty node id");
            }
            Ok(id)
        })
    }

    fn setup(&self) -> Result<()> {
        let ids = (0..self.nodes.len())
            .map(|i| self.node_id(i))
            .collect::<Result<Vec<_>>>()?;
        for (i, id) in ids.iter().enumerate().skip(1) {
            let peer = format!("{id}@127.0.0.1:{}", self.nodes[i].rpc_port);
            self.retry("connecting the Garage nodes", || {
                self.garage(&["node", "connect", &peer]).map(|_| ())
            })?;
        }
        for (i, id) in ids.iter().enumerate() {
            let zone = format!("dc{}", i + 1);
            self.garage(&["layout", "assign", "-z", &zone, "-c", "1G", id])?;
        }
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
        for node in 0..self.nodes.len() {
            self.wait_s3(node)?;
        }
        Ok(())
    }

    /// Wait until node `node`'s S3 endpoint accepts connections.
    fn wait_s3(&self, node: usize) -> Result<()> {
        let port = self.nodes[node].s3_port;
        self.retry("waiting for Garage's S3 port", || {
            std::net::TcpStream::connect(("127.0.0.1", port))
                .map(|_| ())
                .context("connecting to the S3 port")
        })
    }

    /// Kill every node (SIGKILL), keeping their data on disk.
    pub fn stop(&mut self) {
        for node in 0..self.nodes.len() {
            self.stop_node(node);
        }
    }

    /// Start every stopped node again on the same ports and data after
    /// [`Garage::stop`].
    pub fn start_again(&mut self) -> Result<()> {
        for node in 0..self.nodes.len() {
            self.start_node(node)?;
        }
        Ok(())
    }

    /// Kill node `node` (SIGKILL), keeping its data on disk: a storage
    /// server lost mid-work.
    pub fn stop_node(&mut self, node: usize) {
        if let Some(mut child) = self.nodes[node].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start node `node` again on its ports and data (a no-op while it runs).
    pub fn start_node(&mut self, node: usize) -> Result<()> {
        if self.nodes[node].child.is_some() {
            return Ok(());
        }
        self.spawn(node)?;
        self.wait_s3(node)
    }

    /// Wait until node 0 counts node `node` among its healthy peers again
    /// (asking it to connect, rather than waiting for Garage's own retry).
    pub fn wait_connected(&self, node: usize) -> Result<()> {
        let id = self.node_id(node)?;
        let address = format!("127.0.0.1:{}", self.nodes[node].rpc_port);
        let peer = format!("{id}@{address}");
        self.retry("waiting for the node to rejoin the cluster", || {
            self.garage(&["node", "connect", &peer])?;
            let status = self.garage(&["status"])?;
            let healthy = status
                .split("==== HEALTHY NODES ====")
                .nth(1)
                .and_then(|rest| rest.split("====").next())
                .unwrap_or("");
            if healthy.contains(&address) {
                Ok(())
            } else {
                bail!("node {node} is not among the healthy nodes:\n{status}")
            }
        })
    }

    /// Ask node `node` for a full sync of its metadata tables and a resync of
    /// its blocks with the others (what Garage otherwise does on its own
    /// schedule after a node comes back).
    pub fn repair_node(&self, node: usize) -> Result<()> {
        self.garage_on(node, &["repair", "--yes", "tables"])?;
        self.garage_on(node, &["repair", "--yes", "blocks"])?;
        Ok(())
    }

    /// The names of the data blocks node `node` holds on disk (Garage keeps
    /// each block as a file named by its hash, `.zst` when compressed).
    pub fn blocks_on(&self, node: usize) -> Result<std::collections::BTreeSet<String>> {
        fn walk(dir: &Path, out: &mut std::collections::BTreeSet<String>) -> Result<()> {
            let entries = match std::fs::read_dir(dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
            };
            for entry in entries {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if entry.file_type()?.is_dir() {
                    walk(&entry.path(), out)?;
                } else {
                    let hash = name.trim_end_matches(".zst");
                    if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                        out.insert(hash.to_owned());
                    }
                }
            }
            Ok(())
        }
        let mut out = std::collections::BTreeSet::new();
        walk(&self.nodes[node].dir.join("data"), &mut out)?;
        Ok(out)
    }

    /// Whether every node's server process is running.
    pub fn is_running(&self) -> bool {
        self.nodes.iter().all(|n| n.child.is_some())
    }

    /// How many nodes the cluster has.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// `http://127.0.0.1:PORT` (node 0).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.nodes[0].s3_port)
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

    /// The bucket made for this cluster.
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
    /// `from_env`, the aws CLI, boto3) at node 0.
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

    /// Node 0's log file (printed in failure messages).
    pub fn log_path(&self) -> PathBuf {
        self.node_log_path(0)
    }

    /// Node `node`'s log file.
    pub fn node_log_path(&self, node: usize) -> PathBuf {
        self.nodes[node].dir.join("garage.log")
    }

    /// The cluster's directory (each node's config, metadata, data, log;
    /// a single node's directly in it).
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
