//! `custos coverage list|explain` and `custos supervision`: the coverage
//! findings, a supervisor's explanation (中断说明), and the supervisor's
//! view per officer and recorder over a period, through a running
//! ledger's API (`[client] ledger_url` and `token`, like the other client
//! commands). The ledger decides who may do what; these commands show its
//! refusals as one line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use custos_client::LedgerClient;
use custos_core::wire::{CoverageQuery, SupervisionCounts, SupervisionQuery};

/// Arguments of `custos coverage`.
#[derive(Debug, clap::Args)]
pub(crate) struct CoverageArgs {
    #[command(subcommand)]
    command: CoverageCommand,
}

#[derive(Debug, clap::Subcommand)]
enum CoverageCommand {
    /// List coverage findings (missing files, clock jumps, late dockings).
    List {
        /// The configuration file ([client] ledger_url and token).
        #[arg(long, value_name = "FILE", env = "CUSTOS_CONFIG", default_value = super::DEFAULT_CONFIG)]
        config: PathBuf,
        /// Only this recorder's.
        #[arg(long, value_name = "ID")]
        recorder: Option<String>,
        /// Only this officer's.
        #[arg(long, value_name = "ID")]
        officer: Option<String>,
        /// Only findings not yet explained.
        #[arg(long)]
        open: bool,
        /// Only findings about footage from this instant (RFC 3339, or a
        /// date: that UTC day's start).
        #[arg(long, value_name = "TIME")]
        from: Option<String>,
        /// Only findings about footage before this instant (RFC 3339, or a
        /// date: that UTC day included).
        #[arg(long, value_name = "TIME")]
        to: Option<String>,
        /// Print the ledger's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Record a supervisor's explanation of finding SEQ (coverage.explained).
    Explain {
        /// The seq of the finding's coverage.gap entry.
        seq: u64,
        /// Why the footage is incomplete.
        #[arg(long, value_name = "TEXT")]
        reason: String,
        /// The configuration file ([client] ledger_url and a supervisor's token).
        #[arg(long, value_name = "FILE", env = "CUSTOS_CONFIG", default_value = super::DEFAULT_CONFIG)]
        config: PathBuf,
    },
}

/// Arguments of `custos supervision`.
#[derive(Debug, clap::Args)]
pub(crate) struct SupervisionArgs {
    /// The period's start, inclusive: RFC 3339, or a date (that UTC day's
    /// start). Default: seven days before --to.
    #[arg(long, value_name = "TIME")]
    from: Option<String>,
    /// The period's end, exclusive: RFC 3339, or a date (that UTC day
    /// included). Default: now.
    #[arg(long, value_name = "TIME")]
    to: Option<String>,
    /// Only this officer.
    #[arg(long, value_name = "ID")]
    officer: Option<String>,
    /// Only this recorder.
    #[arg(long, value_name = "ID")]
    recorder: Option<String>,
    /// Print the ledger's CSV instead of a table.
    #[arg(long)]
    csv: bool,
    /// The configuration file ([client] ledger_url and token).
    #[arg(long, value_name = "FILE", env = "CUSTOS_CONFIG", default_value = super::DEFAULT_CONFIG)]
    config: PathBuf,
}

/// A client for `[client] ledger_url` with `[client] token`, and a runtime.
fn client(config: &Path) -> anyhow::Result<(LedgerClient, tokio::runtime::Runtime, String)> {
    let cfg = super::ledger::load_config(config)?;
    let url = cfg
        .client
        .ledger_url
        .clone()
        .context("[client] ledger_url is needed: this command asks a running ledger")?;
    let token = cfg
        .client
        .token
        .as_deref()
        .context("[client] token is needed to ask the ledger")?;
    let client = super::client_with_token(&cfg, &url, token)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    Ok((client, rt, url))
}

pub(crate) fn run(args: CoverageArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        CoverageCommand::List {
            config,
            recorder,
            officer,
            open,
            from,
            to,
            json,
        } => {
            let (client, rt, url) = client(&config)?;
            let query = CoverageQuery {
                recorder,
                officer,
                open: open.then_some(true),
                from,
                to,
            };
            let list = rt
                .block_on(client.coverage(&query))
                .with_context(|| format!("listing coverage findings at {url}"))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = list
                .findings
                .iter()
                .map(|f| {
                    let files = match (f.gap.first, f.gap.last) {
                        (Some(a), Some(b)) if a == b => format!("{a:04}"),
                        (Some(a), Some(b)) => format!("{a:04}-{b:04}"),
                        _ => String::new(),
                    };
                    let when = match (&f.gap.from, &f.gap.to) {
                        (Some(a), Some(b)) => format!("{a} - {b}"),
                        _ => String::new(),
                    };
                    let state = match &f.explanation {
                        Some(e) => format!("explained #{} by {}: {}", e.seq, e.by.id, e.reason),
                        None => "open".to_owned(),
                    };
                    vec![
                        f.gap_seq.to_string(),
                        f.gap.recorder_id.clone(),
                        f.gap.officer_id.clone(),
                        f.gap.kind.clone(),
                        files,
                        when,
                        state,
                    ]
                })
                .collect();
            print!(
                "{}",
                table(
                    &["SEQ", "RECORDER", "OFFICER", "KIND", "FILES", "TIME", "STATE"],
                    &rows
                )
            );
            println!("{} finding(s)", rows.len());
            Ok(ExitCode::SUCCESS)
        }
        CoverageCommand::Explain {
            seq,
            reason,
            config,
        } => {
            let (client, rt, url) = client(&config)?;
            let receipt = rt
                .block_on(client.explain_finding(seq, &reason))
                .with_context(|| format!("explaining coverage finding {seq} at {url}"))?;
            println!("coverage finding {seq} explained: entry {}", receipt.seq);
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub(crate) fn run_supervision(args: SupervisionArgs) -> anyhow::Result<ExitCode> {
    let (client, rt, url) = client(&args.config)?;
    let query = SupervisionQuery {
        from: args.from,
        to: args.to,
        officer: args.officer,
        recorder: args.recorder,
        format: None,
    };
    if args.csv {
        let csv = rt
            .block_on(client.supervision_csv(&query))
            .with_context(|| format!("asking {url} for the supervision view"))?;
        print!("{csv}");
        return Ok(ExitCode::SUCCESS);
    }
    let view = rt
        .block_on(client.supervision(&query))
        .with_context(|| format!("asking {url} for the supervision view"))?;
    println!("period {} - {}", view.from, view.to);
    let cells = |officer: &str, recorder: &str, c: &SupervisionCounts| {
        let s = c.recording_ms / 1000;
        vec![
            officer.to_owned(),
            recorder.to_owned(),
            format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60),
            c.segments.to_string(),
            c.late.to_string(),
            c.damaged.to_string(),
            c.findings_open.to_string(),
            c.findings_explained.to_string(),
        ]
    };
    let mut rows: Vec<Vec<String>> = view
        .rows
        .iter()
        .map(|r| cells(&r.officer_id, &r.recorder_id, &SupervisionCounts::from(r)))
        .collect();
    if !rows.is_empty() {
        rows.push(cells("TOTAL", "", &view.total));
    }
    print!(
        "{}",
        table(
            &[
                "OFFICER",
                "RECORDER",
                "RECORDED",
                "FILES",
                "LATE",
                "DAMAGED",
                "OPEN",
                "EXPLAINED"
            ],
            &rows
        )
    );
    Ok(ExitCode::SUCCESS)
}

/// A plain terminal table: columns padded to their widest cell (in
/// characters; CJK text may sit a little off), two spaces apart.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = line(header.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}
