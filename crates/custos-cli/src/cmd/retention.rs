//! `custos retention sweep --config FILE [--dry-run]`: the retention
//! sweeper on demand.
//!
//! The ledger's `data_dir` is opened in this process (the service must be
//! stopped; a running `custos ledger serve` sweeps on its own schedule,
//! `[retention] sweep_interval`). [`custos_ledger::governance::sweep`]
//! decides: footage whose retention (`[retention]`, never below 180 days)
//! ended, without a legal hold and not linked to an open case, is deleted
//! from `[storage] url` after its `retention.deleted` entry is written. A
//! dry run lists what would go and changes nothing. One line per segment,
//! then a summary; exit 1 when an entry was written but its object could
//! not be deleted.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use custos_ledger::governance;

/// Arguments of `custos retention`.
#[derive(Debug, clap::Args)]
pub(crate) struct RetentionArgs {
    #[command(subcommand)]
    command: RetentionCommand,
}

#[derive(Debug, clap::Subcommand)]
enum RetentionCommand {
    /// Delete footage whose retention ended (no hold, no open case), each
    /// deletion recorded first; --dry-run lists what would go.
    Sweep {
        /// The configuration file ([ledger], [storage] url, [retention]).
        #[arg(long, value_name = "FILE", env = "CUSTOS_CONFIG", default_value = super::DEFAULT_CONFIG)]
        config: PathBuf,
        /// List what would be deleted; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

pub(crate) fn run(args: RetentionArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        RetentionCommand::Sweep { config, dry_run } => sweep(&config, dry_run),
    }
}

fn sweep(config: &Path, dry_run: bool) -> anyhow::Result<ExitCode> {
    let cfg = super::ledger::load_config(config)?;
    let (store, ledger, rt) = super::ledger::open_offline(
        &cfg,
        "stop `custos ledger serve` first; it sweeps on its own every [retention] sweep_interval",
    )?;
    let result = rt.block_on(governance::sweep(
        &ledger,
        &cfg.retention,
        Some(store.object_store()),
        dry_run,
    ));
    rt.block_on(ledger.close());
    let items = result.context("retention sweep")?;
    let mut failed = 0;
    for item in &items {
        let s = &item.status;
        let why = format!(
            "retention {} days{} ended {}",
            s.days,
            s.category
                .as_deref()
                .map(|c| format!(" (category {c})"))
                .unwrap_or_default(),
            s.until
        );
        match (dry_run, item.deleted_seq, &item.error) {
            (true, _, _) => println!("would delete {}: {why}", s.segment_id),
            (false, Some(seq), None) => {
                println!("deleted {}: {why}; entry {seq}", s.segment_id)
            }
            (false, seq, Some(error)) => {
                failed += 1;
                println!(
                    "NOT DELETED {}: entry {} written, but {error}",
                    s.segment_id,
                    seq.map_or("?".into(), |s| s.to_string())
                );
            }
            (false, None, None) => println!("deleted {}: {why}", s.segment_id),
        }
    }
    if dry_run {
        println!(
            "dry run: {} segment(s) would be deleted; nothing was changed",
            items.len()
        );
    } else {
        println!(
            "retention sweep: {} segment(s) deleted, each recorded as a retention.deleted entry{}",
            items.len() - failed,
            if failed > 0 {
                format!("; {failed} object(s) could not be deleted")
            } else {
                String::new()
            }
        );
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
