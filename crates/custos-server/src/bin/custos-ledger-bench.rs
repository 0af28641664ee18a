//! Load generator and fixture builder for `benches/ledger-append.sh`, and a
//! `serve` that runs exactly what `custos ledger serve` runs (the crash
//! tests start it as a real process).
//!
//! ```text
//! custos-ledger-bench setup --dir DIR            keys, config, a dock token (DIR/dock.token)
//! custos-ledger-bench serve --config FILE        the ledger API (prints "listening on URL")
//! custos-ledger-bench append --url URL --dir DIR --clients N --count M
//! custos-ledger-bench bulk-load --config FILE --count N
//! custos-ledger-bench startup --config FILE      time Ledger::open
//! custos-ledger-bench proofs --url URL --count N inclusion-proof latency over HTTP
//! custos-ledger-bench witness --dir DIR          a witness of DIR's ledger (as `custos
//!                                                witness serve`), added to DIR/custos.toml
//! ```
//!
//! Every figure it prints is measured, never estimated. It only talks to the
//! URL it is given (loopback in the script), with bounded request counts.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use custos_client::LedgerClient;
use custos_core::config::Config;
use custos_core::entry::details::RecorderDocked;
use custos_core::entry::{Actor, ActorKind, Details, Event};
use custos_core::keys::SigningKey;
use custos_core::manifest::Timestamp;
use custos_ledger::{Append, Ledger, LedgerOptions, Role};
use custos_server::offline;
use custos_server::serve::{self, ServeOptions};

#[derive(Debug, Parser)]
#[command(name = "custos-ledger-bench")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Write DIR/ledger.key, DIR/dock-bench.key, DIR/custos.toml and a dock token.
    Setup {
        #[arg(long)]
        dir: PathBuf,
        /// Listen address written into the config.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
    },
    /// Serve the ledger API, as `custos ledger serve` does.
    Serve {
        #[arg(long)]
        config: PathBuf,
    },
    /// Durable appends over HTTP with N concurrent clients.
    Append {
        #[arg(long)]
        url: String,
        /// The setup directory (dock key and token).
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 1)]
        clients: usize,
        #[arg(long, default_value_t = 2000)]
        count: usize,
        /// Print each acknowledged "seq leaf_hash" to this file.
        #[arg(long)]
        acks: Option<PathBuf>,
        /// The server's process id: also report its CPU time per append.
        #[arg(long)]
        server_pid: Option<u32>,
    },
    /// Append N entries through the internal API (fixture building).
    BulkLoad {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        count: u64,
    },
    /// Time opening the ledger (the service's start-up), several times.
    Startup {
        #[arg(long)]
        config: PathBuf,
        #[arg(long, default_value_t = 5)]
        repeat: usize,
    },
    /// A witness of the setup directory's ledger (`custos witness serve`'s
    /// server), added to its custos.toml as `[[ledger.witnesses]]`; prints
    /// "listening on URL" and serves until killed.
    Witness {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Inclusion-proof latency over HTTP at the current tree size.
    Proofs {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 5000)]
        count: usize,
    },
}

fn load_config(path: &Path) -> anyhow::Result<Config> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .canonicalize()?;
    Ok(Config::parse(&text, &base, std::env::vars())?)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(what: &str, n: usize, elapsed: Duration, mut lat: Vec<Duration>) {
    lat.sort_unstable();
    println!(
        "{what}: {n} in {:.3} s = {:.0}/s; latency p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        percentile(&lat, 0.50).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        percentile(&lat, 1.0).as_secs_f64() * 1e3,
    );
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("custos-ledger-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Cmd::Setup { dir, listen } => setup(&dir, &listen),
        Cmd::Witness { dir } => runtime()?.block_on(witness(&dir)),
        Cmd::Serve { config } => {
            let cfg = load_config(&config)?;
            serve::init_logging();
            let mut options = ServeOptions::from_config(&cfg);
            options.tiles = serve::tiles_options(&cfg)?;
            serve::run_blocking(options, |server| {
                println!("listening on {}", server.url());
            })?;
            Ok(())
        }
        Cmd::Append {
            url,
            dir,
            clients,
            count,
            acks,
            server_pid,
        } => runtime()?.block_on(append(
            &url,
            &dir,
            clients,
            count,
            acks.as_deref(),
            server_pid,
        )),
        Cmd::BulkLoad { config, count } => runtime()?.block_on(bulk_load(&config, count)),
        Cmd::Startup { config, repeat } => startup(&config, repeat),
        // One request at a time on one connection: a single-threaded
        // runtime, so that the client adds no hand-offs between threads
        // to the latency it measures.
        Cmd::Proofs { url, count } => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(proofs(&url, count)),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn setup(dir: &Path, listen: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let ledger_key = dir.join("ledger.key");
    let dock_key = dir.join("dock-bench.key");
    for (path, name) in [(&ledger_key, "ledger"), (&dock_key, "dock-bench")] {
        if !path.exists() {
            SigningKey::generate(name, &mut rand_core::OsRng)?.save(path)?;
        }
    }
    let config = dir.join("custos.toml");
    std::fs::write(
        &config,
        format!(
            "[ledger]\nlisten = \"{listen}\"\ndata_dir = \"./ledger\"\norigin = \"bench.custos.local/ledger\"\nkey_file = \"./ledger.key\"\n"
        ),
    )?;
    let cfg = load_config(&config)?;
    let dock = SigningKey::load(&dock_key)?;
    let token = offline::create_token(
        LedgerOptions::new(&cfg.ledger.data_dir, &cfg.ledger.origin),
        &cfg.ledger.key_file,
        Actor {
            kind: ActorKind::Admin,
            id: "bench-setup".into(),
        },
        Role::Dock,
        "dock-bench",
        Some(dock.verifier_key()),
    )?;
    std::fs::write(dir.join("dock.token"), &token.token)?;
    println!("{}", config.display());
    Ok(())
}

/// Start a witness of `dir`'s ledger and configure the ledger to submit
/// its checkpoints to it.
async fn witness(dir: &Path) -> anyhow::Result<()> {
    use custos_core::cosignature::CosignerKey;
    use custos_server::witness::{WitnessOptions, WitnessServer};
    let config = dir.join("custos.toml");
    let cfg = load_config(&config)?;
    let key_path = dir.join("witness.key");
    if !key_path.exists() {
        SigningKey::generate("bench.custos.local/witness", &mut rand_core::OsRng)?
            .save(&key_path)?;
    }
    let key = SigningKey::load(&key_path)?;
    let cosigner = CosignerKey::of(&key)?;
    let ledger = SigningKey::load(&cfg.ledger.key_file)?.verifier_key();
    let server = WitnessServer::start(WitnessOptions {
        listen: "127.0.0.1:0".into(),
        key,
        state_dir: dir.join("witness-state"),
        logs: vec![custos_core::witness::WitnessedLog {
            origin: cfg.ledger.origin.clone(),
            keys: vec![ledger],
        }],
    })
    .await?;
    let mut text = std::fs::read_to_string(&config)?;
    text.push_str(&format!(
        "witness_quorum = 1\n\n[[ledger.witnesses]]\nurl = \"{}\"\nkey = \"{cosigner}\"\n",
        server.url()
    ));
    std::fs::write(&config, text)?;
    println!("listening on {}", server.url());
    serve::shutdown_signal().await;
    server.shutdown().await;
    Ok(())
}

/// Pre-signed events (signing is the dock's cost, not the ledger's).
fn events(dir: &Path, count: usize) -> anyhow::Result<Vec<custos_core::dsse::Envelope>> {
    let key = SigningKey::load(&dir.join("dock-bench.key"))?;
    #[expect(
        clippy::disallowed_methods,
        reason = "the load generator stamps its events with the wall clock, as a dock would"
    )]
    let now = Timestamp::from_offset_datetime(time::OffsetDateTime::now_utc())?;
    let run = Instant::now().elapsed().as_nanos() ^ u128::from(std::process::id());
    (0..count)
        .map(|i| {
            // The run's number as the serial: a second run's envelopes are
            // new ones, not replays the ledger de-duplicates.
            let details = Details::RecorderDocked(RecorderDocked {
                slot: (i % 20).to_string(),
                profile: "bench".into(),
                model: "bench".into(),
                transport: "simulated".into(),
                clock_offset_ms: None,
                recorder_time: None,
                serial: Some(format!("run-{run}")),
                officer_id: None,
                firmware: None,
            });
            let event = Event::of(&details, format!("recorder-{i:07}"), now)?;
            Ok(event.sign(&key)?)
        })
        .collect()
}

/// User + system CPU time a process has used so far (`/proc/PID/stat`,
/// fields 14 and 15, in clock ticks of 10 ms: Linux's USER_HZ is 100).
fn cpu_time(pid: &str) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').context("no ')' in /proc/PID/stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<u64> {
        Ok(fields.get(i).context("short /proc/PID/stat")?.parse()?)
    };
    // Field 3 (the state) is fields[0], so field 14 is fields[11].
    Ok(Duration::from_millis((ticks(11)? + ticks(12)?) * 10))
}

async fn append(
    url: &str,
    dir: &Path,
    clients: usize,
    count: usize,
    acks: Option<&Path>,
    server_pid: Option<u32>,
) -> anyhow::Result<()> {
    let token = std::fs::read_to_string(dir.join("dock.token"))?;
    let client = LedgerClient::new(url, Some(token.trim()))?;
    let envelopes = Arc::new(events(dir, count)?);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let server_pid = server_pid.map(|p| p.to_string());
    let cpu = |pid: &Option<String>| pid.as_deref().map(cpu_time).transpose();
    let (client_cpu, server_cpu) = (cpu_time("self")?, cpu(&server_pid)?);
    let watcher = CheckpointWatcher::spawn(dir)?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients.max(1) {
        let (client, envelopes, next) = (client.clone(), envelopes.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(env) = envelopes.get(i) else { break };
                let t = Instant::now();
                let receipt = client.append_envelope(env).await?;
                let acked = Instant::now();
                out.push((acked - t, acked, receipt));
            }
            anyhow::Ok(out)
        }));
    }
    let mut latencies = Vec::with_capacity(count);
    let mut acked = Vec::with_capacity(count);
    let mut lines = String::new();
    for task in tasks {
        for (lat, at, receipt) in task.await?? {
            latencies.push(lat);
            acked.push((receipt.seq, at));
            if acks.is_some() {
                lines.push_str(&format!("{} {}\n", receipt.seq, receipt.leaf_hash));
            }
        }
    }
    let elapsed = started.elapsed();
    let per_append = |d: Duration| d.as_secs_f64() * 1e6 / count.max(1) as f64;
    let client_cpu = per_append(cpu_time("self")?.saturating_sub(client_cpu));
    let server_cpu = match (cpu(&server_pid)?, server_cpu) {
        (Some(after), Some(before)) => format!(", server {:.0} us", per_append(after - before)),
        _ => String::new(),
    };
    if let Some(path) = acks {
        std::fs::write(path, lines)?;
    }
    report(
        &format!("durable appends over HTTP, {clients} clients"),
        latencies.len(),
        elapsed,
        latencies,
    );
    println!("  CPU time (user + sys) per append: client {client_cpu:.0} us{server_cpu}");
    if let Some(watcher) = watcher {
        watcher.report(&acked).await?;
    }
    Ok(())
}

/// Watches the published tiles' `checkpoint` (a `file://` tiles_url) and
/// notes when each size first appeared, to measure the time from an
/// append's acknowledgement to the first published checkpoint covering it.
struct CheckpointWatcher {
    seen: Arc<std::sync::Mutex<Vec<(u64, Instant)>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

/// How often the watcher reads the checkpoint: the measurement's resolution.
const WATCH_EVERY: Duration = Duration::from_millis(5);

impl CheckpointWatcher {
    fn spawn(dir: &Path) -> anyhow::Result<Option<CheckpointWatcher>> {
        let cfg = load_config(&dir.join("custos.toml"))?;
        let Some(path) = cfg
            .ledger
            .tiles_url()
            .and_then(|u| u.strip_prefix("file://").map(PathBuf::from))
        else {
            println!("  append to publication: not measured (tiles not in a file:// directory)");
            return Ok(None);
        };
        let checkpoint = path.join(custos_core::tiles::CHECKPOINT_PATH);
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (seen2, stop2) = (seen.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let mut last = None;
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(text) = tokio::fs::read_to_string(&checkpoint).await {
                    let size = text.lines().nth(1).and_then(|l| l.parse::<u64>().ok());
                    if let Some(size) = size.filter(|s| Some(*s) != last) {
                        last = Some(size);
                        // A poisoned lock only loses the measurement.
                        if let Ok(mut seen) = seen2.lock() {
                            seen.push((size, Instant::now()));
                        }
                    }
                }
                tokio::time::sleep(WATCH_EVERY).await;
            }
        });
        Ok(Some(CheckpointWatcher { seen, stop, task }))
    }

    async fn report(self, acked: &[(u64, Instant)]) -> anyhow::Result<()> {
        let Some(last) = acked.iter().map(|(seq, _)| *seq).max() else {
            return Ok(());
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let covered = self
                .seen
                .lock()
                .map_err(|_| anyhow::anyhow!("watcher lock poisoned"))?
                .last()
                .is_some_and(|(size, _)| *size > last);
            if covered {
                break;
            }
            tokio::time::sleep(WATCH_EVERY).await;
        }
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.task.await?;
        let seen = self
            .seen
            .lock()
            .map_err(|_| anyhow::anyhow!("watcher lock poisoned"))?
            .clone();
        let mut lat = Vec::with_capacity(acked.len());
        for (seq, at) in acked {
            let published = seen
                .iter()
                .find(|(size, _)| size > seq)
                .with_context(|| format!("entry {seq} was not published within 30 s"))?
                .1;
            lat.push(published.saturating_duration_since(*at));
        }
        lat.sort_unstable();
        println!(
            "  append to publication (acknowledged to first published checkpoint covering it, read every {} ms): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            WATCH_EVERY.as_millis(),
            percentile(&lat, 0.50).as_secs_f64() * 1e3,
            percentile(&lat, 0.99).as_secs_f64() * 1e3,
            percentile(&lat, 1.0).as_secs_f64() * 1e3,
        );
        Ok(())
    }
}

async fn bulk_load(config: &Path, count: u64) -> anyhow::Result<()> {
    let cfg = load_config(config)?;
    let key = SigningKey::load(&cfg.ledger.key_file)?;
    let ledger = Ledger::open(
        LedgerOptions::new(&cfg.ledger.data_dir, &cfg.ledger.origin),
        key,
    )?;
    let before = ledger.published().size;
    let started = Instant::now();
    // Keep a few thousand appends in flight so the writer fills its batches.
    let in_flight = 4096u64;
    let mut next = 0u64;
    let mut set = tokio::task::JoinSet::new();
    while next < count || !set.is_empty() {
        while next < count && (set.len() as u64) < in_flight {
            let ledger = ledger.clone();
            let i = next;
            set.spawn(async move {
                let actor = Actor {
                    kind: ActorKind::Auditor,
                    id: "bench-loader".into(),
                };
                let mut details = serde_json::Map::new();
                details.insert("n".into(), i.into());
                let details = Details::Other {
                    action: "bench.loaded".into(),
                    details,
                };
                ledger
                    .append(Append::new(actor, format!("object-{i:08}"), details)?)
                    .await?;
                anyhow::Ok(())
            });
            next += 1;
        }
        if let Some(done) = set.join_next().await {
            done??;
        }
    }
    let elapsed = started.elapsed();
    let size = ledger.published().size;
    ledger.close().await;
    println!(
        "bulk load: {} entries in {:.1} s ({:.0}/s); tree size {before} -> {size}",
        size - before,
        elapsed.as_secs_f64(),
        (size - before) as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}

fn startup(config: &Path, repeat: usize) -> anyhow::Result<()> {
    let cfg = load_config(config)?;
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..repeat.max(1) {
        let key = SigningKey::load(&cfg.ledger.key_file)?;
        let started = Instant::now();
        let ledger = Ledger::open(
            LedgerOptions::new(&cfg.ledger.data_dir, &cfg.ledger.origin),
            key,
        )?;
        times.push(started.elapsed());
        size = ledger.published().size;
        runtime()?.block_on(ledger.close());
        drop(ledger);
    }
    times.sort_unstable();
    println!(
        "start-up (open + check) at {size} entries: min {:.1} ms, median {:.1} ms, max {:.1} ms over {} runs",
        times[0].as_secs_f64() * 1e3,
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 1.0).as_secs_f64() * 1e3,
        times.len()
    );
    Ok(())
}

async fn proofs(url: &str, count: usize) -> anyhow::Result<()> {
    let client = LedgerClient::new(url, None)?;
    let text = client.checkpoint().await?;
    let size: u64 = text
        .lines()
        .nth(1)
        .context("checkpoint has no size line")?
        .parse()?;
    anyhow::ensure!(size > 0, "the log is empty");
    // A fixed-seed xorshift: the same indexes every run.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut lat = Vec::with_capacity(count);
    let started = Instant::now();
    for _ in 0..count {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let index = x % size;
        let t = Instant::now();
        let proof = client.inclusion_proof(index, size).await?;
        lat.push(t.elapsed());
        anyhow::ensure!(proof.index == index && proof.size == size, "wrong proof");
    }
    report(
        &format!("inclusion proofs over HTTP at size {size}"),
        count,
        started.elapsed(),
        lat,
    );
    Ok(())
}
