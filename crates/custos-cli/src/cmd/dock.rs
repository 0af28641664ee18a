//! `custos dock ingest --config FILE --source DIR [--profile NAME]` (one
//! recorder mounted at DIR), `custos dock run --config FILE` (the daemon:
//! USB hotplug, directory slots, the station's status screen) and `custos
//! dock status --config FILE` (the running daemon's slots as a table).
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
use custos_dock::status::watch::WatchSettings;
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

impl DockArgs {
    /// The log level shown unless `RUST_LOG` says otherwise: the station's
    /// service logs what it does (`info`); a one-shot ingest, whose progress
    /// has its own lines, and the status table only what goes wrong.
    pub(crate) fn log_default(&self) -> &'static str {
        match self.command {
            DockCommand::Run { .. } => "info",
            _ => "warn",
        }
    }
}

#[derive(Debug, clap::Subcommand)]
enum DockCommand {
    /// Ingest one recorder mounted at DIR; exit 0 when every segment is
    /// verified (and wiped, per policy) and on the record.
    Ingest {
        /// The configuration file.
        #[arg(long, value_name = "FILE", env = "CUSTOS_CONFIG", default_value = super::DEFAULT_CONFIG)]
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
        #[arg(long, value_name = "FILE", env = "CUSTOS_CONFIG", default_value = super::DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// The running daemon's slots, as a table (read from [dock]
    /// status_listen); exit 0 when it answered.
    Status {
        /// The configuration file.
        #[arg(long, value_name = "FILE", env = "CUSTOS_CONFIG", default_value = super::DEFAULT_CONFIG)]
        config: PathBuf,
        /// Print the JSON document instead of the table.
        #[arg(long)]
        json: bool,
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
            runtime()?.block_on(daemon_main(cfg))
        }
        DockCommand::Status { config, json } => {
            let cfg = super::ledger::load_config(&config)?;
            let url = format!("http://{}", cfg.dock.status_listen);
            let status = runtime()?
                .block_on(custos_client::dock_status(&url))
                .with_context(|| {
                    format!("the dock's status at {url} (is `custos dock run` running with this configuration?)")
                })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print!("{}", status_table(&status));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A state in the terminal's words.
fn state_words(state: SlotState) -> &'static str {
    match state {
        SlotState::Empty => "empty",
        SlotState::Attaching => "identifying",
        SlotState::Copying => "copying",
        SlotState::Recording => "recording on the ledger",
        SlotState::Verifying => "verifying",
        SlotState::WaitingForLedger => "waiting for the ledger",
        SlotState::Wiping => "wiping",
        SlotState::Done => "SAFE TO UNDOCK",
        SlotState::Incomplete => "incomplete: dock again",
        SlotState::Unplugged => "UNPLUGGED EARLY: plug back in",
        SlotState::Error => "error",
    }
}

fn mb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1e6)
}

/// The slots as a table for a terminal, then the alerts and the outbox.
fn status_table(status: &custos_core::wire::dock::DockStatus) -> String {
    let header = [
        "SLOT", "RECORDER", "OFFICER", "STATE", "SEGMENTS", "MB", "MB/S", "LEFT", "NOTE",
    ];
    let mut rows: Vec<[String; 9]> = vec![header.map(str::to_owned)];
    for s in &status.slots {
        let officer = match (&s.officer_id, &s.officer_name) {
            (Some(id), Some(name)) => format!("{id} {name}"),
            (Some(id), None) => id.clone(),
            _ => "-".into(),
        };
        let mut note = Vec::new();
        if s.segments_failed > 0 {
            note.push(format!("{} left on the recorder", s.segments_failed));
        }
        if !s.damaged.is_empty() {
            note.push(format!("{} damaged", s.damaged.len()));
        }
        if !s.late.is_empty() {
            note.push(format!("{} late", s.late.len()));
        }
        if let Some(c) = s.clock {
            if c.set {
                note.push(format!("clock set ({:+.1} s)", c.offset_ms as f64 / 1000.0));
            }
        }
        if let Some(secs) = s.stuck_seconds {
            note.push(format!("no progress for {secs} s"));
        }
        if let Some(m) = &s.message {
            if s.state != SlotState::Done {
                note.push(m.replace(['\n', '\r'], " "));
            }
        }
        rows.push([
            s.slot.clone(),
            s.recorder_id.clone().unwrap_or_else(|| "-".into()),
            officer,
            state_words(s.state).to_owned(),
            format!("{}/{}", s.segments_done, s.segments_total),
            format!("{}/{}", mb(s.bytes_done), mb(s.bytes_total)),
            s.bytes_per_second.map(mb).unwrap_or_else(|| "-".into()),
            s.eta_seconds
                .map(|e| format!("{}:{:02}", e / 60, e % 60))
                .unwrap_or_else(|| "-".into()),
            note.join("; "),
        ]);
    }
    let widths: Vec<usize> = (0..9)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = format!("dock {}\n", status.dock_id);
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell}{}", " ".repeat(w - cell.chars().count())))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    for a in &status.alerts {
        out.push_str(&format!(
            "ALERT {}{}: {} (for {} s)\n",
            a.kind.as_str(),
            a.slot
                .as_ref()
                .map(|s| format!(" [{s}]"))
                .unwrap_or_default(),
            a.message,
            a.since_seconds
        ));
    }
    out.push_str(&match status.events_pending {
        0 => "every custody event is on the ledger\n".to_owned(),
        n => format!("{n} custody events wait for the ledger (kept in the dock's journal)\n"),
    });
    out
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
        status_language: d
            .status_language
            .as_deref()
            .and_then(custos_i18n::Lang::from_tag),
        watch: WatchSettings {
            disks: watched_disks(&cfg),
            min_free_percent: d.disk_min_free_percent,
        },
    };
    let bars = std::io::stderr()
        .is_terminal()
        .then(|| tokio::spawn(draw(dock.status().clone(), stop.clone())));
    daemon::run(dock, opts, stop.clone(), |addr| {
        if let Some(a) = addr {
            println!("station screen on http://{a}/ (JSON at /status, metrics at /metrics)");
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

/// The directories whose disks the watch keeps an eye on: the journal's
/// and a `file://` store's.
fn watched_disks(cfg: &custos_core::config::Config) -> Vec<PathBuf> {
    let mut disks = vec![cfg.dock.data_dir.clone()];
    if let Some(path) = cfg.storage.url.strip_prefix("file://") {
        disks.push(PathBuf::from(path));
    }
    disks
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
            let recorder = s.recorder_id.as_deref().unwrap_or("");
            let state = match s.state {
                SlotState::Empty => "empty".to_owned(),
                SlotState::Copying => format!(
                    "{recorder} copying {}/{} segments{}",
                    s.segments_done,
                    s.segments_total,
                    s.eta_seconds
                        .map(|e| format!(", ETA {e} s"))
                        .unwrap_or_default()
                ),
                SlotState::Incomplete | SlotState::Error | SlotState::Unplugged => format!(
                    "{recorder} {}: {}",
                    state_words(s.state),
                    s.message.as_deref().unwrap_or("")
                ),
                st => format!("{recorder} {}", state_words(st)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use custos_core::wire::dock::{Alert, AlertKind, DockStatus, SlotStatus};

    #[test]
    fn the_table_lines_up_and_says_what_to_do() {
        let slot = |name: &str, state, recorder: Option<&str>| SlotStatus {
            slot: name.into(),
            state,
            recorder_id: recorder.map(str::to_owned),
            model: None,
            profile: None,
            officer_id: recorder.map(|_| "100233".to_owned()),
            officer_name: recorder.map(|_| "张三".to_owned()),
            segments_total: 4,
            segments_done: 1,
            segments_failed: 0,
            bytes_total: 40_000_000,
            bytes_done: 12_500_000,
            bytes_per_second: Some(5_000_000),
            eta_seconds: Some(75),
            safe_to_undock: state == SlotState::Done,
            clock: None,
            damaged: vec![],
            late: vec![],
            message: Some("two\nlines".into()),
            elapsed_seconds: 3,
            safe_after_seconds: None,
            stuck_seconds: None,
        };
        let status = DockStatus {
            dock_id: "dock-01".into(),
            slots: vec![
                slot("dir-a", SlotState::Copying, Some("SIM0001")),
                slot("usb-1-2", SlotState::Done, Some("SIM0002")),
                slot("dir-b", SlotState::Unplugged, Some("SIM0003")),
            ],
            events_pending: 2,
            oldest_event_age_seconds: Some(4),
            ledger_trouble: None,
            alerts: vec![Alert {
                kind: AlertKind::LedgerUnreachable,
                slot: None,
                message: "connection refused".into(),
                since_seconds: 4,
            }],
        };
        let t = status_table(&status);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "dock dock-01");
        assert!(lines[1].starts_with("SLOT     RECORDER  OFFICER"), "{t}");
        // Columns start at the same character in every row.
        let at = |l: &str, what: &str| l[..l.find(what).unwrap()].chars().count();
        assert_eq!(at(lines[1], "STATE"), at(lines[2], "copying"));
        assert_eq!(at(lines[1], "STATE"), at(lines[3], "SAFE TO UNDOCK"));
        assert!(lines[2].contains("1:15") && lines[2].contains("12.5/40.0"));
        assert!(
            lines[4].contains("UNPLUGGED EARLY: plug back in") && lines[4].contains("two lines")
        );
        assert_eq!(
            lines[5],
            "ALERT ledger_unreachable: connection refused (for 4 s)"
        );
        assert!(lines[6].starts_with("2 custody events wait"));
    }
}
