//! `custos dock ingest --config FILE --source DIR [--profile NAME]` (one
//! recorder mounted at DIR) and `custos dock run --config FILE` (the
//! daemon: USB hotplug, directory slots, slot status).
//!
//! `ingest` exits 0 once every segment is verified, wiped per policy and
//! every custody event acknowledged by the ledger; 1 when work is left
//! (the journal keeps it: run the same command again to resume); 2 for bad
//! usage, configuration or I/O. The docking itself and its verdict are
//! custos-dock's (`Dock::dock_once`, `OnceVerdict`); this module prints the
//! verdict and maps it to the exit code.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use custos_dock::daemon::{self, DaemonOptions};
use custos_dock::status::{SlotState, StatusBoard};
use custos_dock::{DirectoryTransport, OnceOutcome, OnceVerdict};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio_util::sync::CancellationToken;

/// Arguments of `custos dock`.
#[derive(Debug, clap::Args)]
pub(crate) struct DockArgs {
    #[command(subcommand)]
    command: DockCommand,
}

#[derive(Debug, clap::Subcommand)]
enum DockCommand {
    /// Ingest one recorder mounted at DIR; exit 0 when every segment is
    /// verified (and wiped, per policy) and on the record.
    Ingest {
        /// The configuration file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The recorder's files (its mounted volume).
        #[arg(long, value_name = "DIR")]
        source: PathBuf,
        /// The firmware profile (default: the one whose file names fit best).
        #[arg(long, value_name = "NAME")]
        profile: Option<String>,
        /// The recorder id (default: the device the footage names name, per
        /// the profile; required when they name none). Never taken from DIR.
        #[arg(long, value_name = "ID")]
        recorder_id: Option<String>,
        /// The officer id when the file names carry none.
        #[arg(long, value_name = "ID")]
        officer_id: Option<String>,
        /// Give up waiting for the store or the ledger after this many seconds.
        #[arg(long, value_name = "SECS", default_value_t = 900)]
        max_wait: u64,
        /// Progress bar on standard error: auto (when it is a terminal), always, never.
        #[arg(long, value_name = "WHEN", default_value = "auto")]
        progress: String,
    },
    /// The docking-station daemon: USB recorders and directory slots, with
    /// slot status in the terminal and as JSON on [dock] status_listen.
    Run {
        /// The configuration file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
}

pub(crate) fn run(args: DockArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        DockCommand::Ingest {
            config,
            source,
            profile,
            recorder_id,
            officer_id,
            max_wait,
            progress,
        } => {
            let show = match progress.as_str() {
                "auto" => std::io::stderr().is_terminal(),
                "always" => true,
                "never" => false,
                other => bail!("--progress {other:?}: expected auto, always or never"),
            };
            let cfg = super::ledger::load_config(&config)?;
            init_logging("warn");
            runtime()?.block_on(ingest(
                cfg,
                source,
                profile,
                recorder_id,
                officer_id,
                max_wait,
                show,
            ))
        }
        DockCommand::Run { config } => {
            let cfg = super::ledger::load_config(&config)?;
            init_logging("info");
            runtime()?.block_on(daemon_main(cfg))
        }
    }
}

fn init_logging(default: &str) {
    if std::env::var_os("RUST_LOG").is_none() {
        std::env::set_var("RUST_LOG", default);
    }
    custos_server::serve::init_logging();
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("custos-dock")
        .build()
        .context("starting the runtime")
}

fn stop_on_signal() -> CancellationToken {
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move {
        custos_server::serve::shutdown_signal().await;
        s.cancel();
    });
    stop
}

async fn ingest(
    cfg: custos_core::config::Config,
    source: PathBuf,
    profile: Option<String>,
    recorder_id: Option<String>,
    officer_id: Option<String>,
    max_wait: u64,
    show: bool,
) -> anyhow::Result<ExitCode> {
    if !source.is_dir() {
        bail!("--source {}: not a directory", source.display());
    }
    let assembled = custos_cli::in_process::assemble(&cfg).await?;
    let dock = assembled.dock.clone();
    if let Some(name) = &profile {
        dock.profiles().get(name)?;
    }
    let stop = stop_on_signal();
    let deadline = Some(Instant::now() + Duration::from_secs(max_wait));
    let slot = format!(
        "dir-{}",
        source
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "source".into())
    );
    let bar_stop = CancellationToken::new();
    let bars = show.then(|| tokio::spawn(draw(dock.status().clone(), bar_stop.clone())));

    let source = source
        .canonicalize()
        .with_context(|| format!("--source {}", source.display()))?;
    let transport = DirectoryTransport::new(
        &source,
        dock.profiles().clone(),
        profile,
        recorder_id,
        officer_id,
    );
    let outcome = dock
        .dock_once(&slot, Box::new(transport), &stop, deadline)
        .await;
    bar_stop.cancel();
    if let Some(b) = bars {
        let _ = b.await;
    }
    let outcome = outcome?;
    if let Some(ledger) = assembled.local_ledger {
        ledger.close().await;
    }
    Ok(report(&source, &outcome))
}

/// Print what a one-shot docking achieved and map its verdict to the exit
/// code: 0 only when it is safe to undock, else 1.
fn report(source: &std::path::Path, outcome: &OnceOutcome) -> ExitCode {
    let report = &outcome.report;
    let verdict = outcome.verdict();
    if let Some(e) = &report.error {
        eprintln!("custos: dock ingest {}: {e}", source.display());
        return ExitCode::from(1);
    }
    let recorder = report.recorder_id.as_deref().unwrap_or("?");
    println!(
        "{recorder}: {} segments, {} done, {} left on the recorder{}",
        report.segments,
        report.done,
        report.failed.len(),
        if outcome.drained {
            ""
        } else {
            "; custody events still queued for the ledger"
        }
    );
    for (segment, why) in &report.failed {
        eprintln!("custos: segment {segment} left unfinished: {why}");
    }
    match verdict {
        OnceVerdict::SafeToUndock => ExitCode::SUCCESS,
        OnceVerdict::EventsQueued => {
            eprintln!(
                "custos: {} custody events wait for the ledger; they are kept in the journal and sent by the next run{}",
                outcome.events_pending,
                outcome
                    .ledger_trouble
                    .as_ref()
                    .map(|t| format!(" ({t})"))
                    .unwrap_or_default()
            );
            ExitCode::from(1)
        }
        OnceVerdict::NotAcknowledged => {
            eprintln!(
                "custos: {recorder}: the ledger has not acknowledged every custody event yet (refused or unanswered); run again to resume"
            );
            ExitCode::from(1)
        }
        _ => ExitCode::from(1),
    }
}

async fn daemon_main(cfg: custos_core::config::Config) -> anyhow::Result<ExitCode> {
    let assembled = custos_cli::in_process::assemble(&cfg).await?;
    let dock = assembled.dock.clone();
    let stop = stop_on_signal();
    let d = &cfg.dock;
    let opts = DaemonOptions {
        slots: d.slots.clone(),
        usb: d.usb,
        mount_root: d.mount_root.clone(),
        mount_options: d.mount_options.clone(),
        poll: Duration::from_secs(1),
        status_listen: Some(d.status_listen.clone()),
    };
    let bars = std::io::stderr()
        .is_terminal()
        .then(|| tokio::spawn(draw(dock.status().clone(), stop.clone())));
    daemon::run(dock, opts, stop.clone(), |addr| {
        if let Some(a) = addr {
            println!("slot status on http://{a}/status");
        }
    })
    .await?;
    if let Some(b) = bars {
        let _ = b.await;
    }
    if let Some(ledger) = assembled.local_ledger {
        ledger.close().await;
    }
    Ok(ExitCode::SUCCESS)
}

/// One progress bar per slot, from the status board, until `stop`.
async fn draw(board: Arc<StatusBoard>, stop: CancellationToken) {
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let style =
        ProgressStyle::with_template("{prefix:>14} [{bar:30}] {bytes:>10}/{total_bytes:<10} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    let mut bars: std::collections::BTreeMap<String, ProgressBar> = Default::default();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        let last = tokio::select! {
            _ = stop.cancelled() => true,
            _ = tick.tick() => false,
        };
        let snap = board.snapshot();
        for s in &snap.slots {
            let bar = bars.entry(s.slot.clone()).or_insert_with(|| {
                let b = multi.add(ProgressBar::new(0));
                b.set_style(style.clone());
                b.set_prefix(s.slot.clone());
                b
            });
            bar.set_length(s.bytes_total.max(1));
            bar.set_position(s.bytes_done);
            let state = match s.state {
                SlotState::Empty => "empty".to_owned(),
                SlotState::Attaching => "attaching".to_owned(),
                SlotState::Ingesting => format!(
                    "{} {}/{} segments{}",
                    s.recorder_id.as_deref().unwrap_or(""),
                    s.segments_done,
                    s.segments_total,
                    s.eta_seconds
                        .map(|e| format!(", ETA {e} s"))
                        .unwrap_or_default()
                ),
                SlotState::WaitingForLedger => "stored; waiting for the ledger".to_owned(),
                SlotState::Done => {
                    format!("{} SAFE TO UNDOCK", s.recorder_id.as_deref().unwrap_or(""))
                }
                SlotState::Incomplete => format!(
                    "{} incomplete: {}",
                    s.recorder_id.as_deref().unwrap_or(""),
                    s.message.as_deref().unwrap_or("")
                ),
                SlotState::Error => format!("error: {}", s.message.as_deref().unwrap_or("")),
            };
            bar.set_message(state);
        }
        if last {
            for b in bars.values() {
                b.abandon();
            }
            return;
        }
    }
}
