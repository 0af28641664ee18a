//! `custos report --config FILE (--case ID | --segment ID...) --out FILE.pdf`:
//! the chain-of-custody report (the same PDF an export bundle holds as
//! `REPORT.pdf`, without the export) for a case or some segments.
//!
//! The ledger's `data_dir` is opened in this process (the service must be
//! stopped, as for an in-process `custos export`). The report records
//! nothing and yields no footage: it lists the custody entries as of the
//! published tree, whose checkpoint every page's footer names. It is
//! written to `FILE.pdf.partial` and renamed once whole.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use custos_ledger::{export, report, Ledger, LedgerOptions};

/// Arguments of `custos report`.
#[derive(Debug, clap::Args)]
pub(crate) struct ReportArgs {
    /// The configuration file ([ledger], [client] token for who makes it).
    #[arg(long, value_name = "FILE", env = "CUSTOS_CONFIG", default_value = super::DEFAULT_CONFIG)]
    config: PathBuf,
    /// Report on every segment linked to this case.
    #[arg(
        long,
        value_name = "ID",
        conflicts_with = "segment",
        required_unless_present = "segment"
    )]
    case: Option<String>,
    /// Report on this segment (repeat for more).
    #[arg(long, value_name = "ID")]
    segment: Vec<String>,
    /// The PDF to write.
    #[arg(long, value_name = "FILE.pdf")]
    out: PathBuf,
}

pub(crate) fn run(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let cfg = super::ledger::load_config(&args.config)?;
    if cfg.client.ledger_url.is_some() {
        bail!(
            "custos report opens the ledger's data_dir in this process; stop the service and \
             unset [client] ledger_url, or take REPORT.pdf from an export bundle"
        );
    }
    let font = report::load_font(&cfg.ledger.report_font)?;
    let options = LedgerOptions {
        report_font: cfg.ledger.report_font.clone(),
        ..LedgerOptions::new(&cfg.ledger.data_dir, &cfg.ledger.origin).with_config_keys(&cfg)
    };
    let signing = options
        .load_keys(&cfg.ledger.key_file)
        .with_context(|| format!("ledger key {}", cfg.ledger.key_file.display()))?;
    let ledger = Ledger::open(options, signing)
        .with_context(|| format!("opening the ledger in {}", cfg.ledger.data_dir.display()))?;
    let made = (|| -> anyhow::Result<Vec<u8>> {
        let actor = super::export::gate(&cfg, &ledger)?.actor;
        let mut segments = args.segment.clone();
        if let Some(case) = &args.case {
            segments.extend(export::case_segments(&ledger, case)?);
        }
        Ok(report::standalone_report(
            &ledger,
            &segments,
            args.case.clone(),
            &actor,
            &font,
        )?)
    })();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(ledger.close());
    let pdf = made?;
    let mut partial = args.out.clone().into_os_string();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    std::fs::write(&partial, &pdf).with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, &args.out)
        .with_context(|| format!("renaming {} to {}", partial.display(), args.out.display()))?;
    println!(
        "wrote the custody report ({} bytes) to {}",
        pdf.len(),
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
