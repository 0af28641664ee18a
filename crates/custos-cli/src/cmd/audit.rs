//! `custos audit scrub --config FILE [--jobs N]`: re-hash every stored
//! object against its signed manifest and put the result on the record.
//!
//! The ledger's `data_dir` is opened in this process (the service must be
//! stopped, as for `custos export` without `[client] ledger_url`); every
//! catalogued segment not deleted by the retention sweeper is read back from
//! `[storage] url` and compared with its manifest by
//! `custos_ingest::check_object` (the ingest's own hashing core), at most
//! `--jobs` objects at once, with a progress bar on a terminal. The result becomes `audit.scrubbed` entries
//! ([`custos_ledger::audit`]): one per missing, altered or unreadable object
//! and one summary. Each bad object is printed on one line naming the
//! segment and its object key; the exit code is 1 when there is any, 0 when
//! every object matched, 2 when the scrub could not run.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use custos_core::entry::{Actor, ActorKind};
use custos_ingest::{check_object, ExpectedObject, IngestStore, ObjectCheck};
use custos_ledger::audit::{self, ScrubFinding, ScrubProblem, ScrubReport, ScrubTarget};
use custos_ledger::Ledger;
use futures::StreamExt as _;
use indicatif::{ProgressBar, ProgressStyle};

/// Arguments of `custos audit`.
#[derive(Debug, clap::Args)]
pub(crate) struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Debug, clap::Subcommand)]
enum AuditCommand {
    /// Re-hash every stored object against its manifest; record and report
    /// missing or altered objects (exit 1 when there is any).
    Scrub {
        /// The configuration file ([ledger] data_dir and key_file, [storage] url).
        #[arg(long, value_name = "FILE", env = "CUSTOS_CONFIG", default_value = super::DEFAULT_CONFIG)]
        config: PathBuf,
        /// Objects read and hashed at once.
        #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
        jobs: u16,
    },
}

pub(crate) fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        AuditCommand::Scrub { config, jobs } => scrub(&config, usize::from(jobs)),
    }
}

fn scrub(config: &std::path::Path, jobs: usize) -> anyhow::Result<ExitCode> {
    let cfg = super::ledger::load_config(config)?;
    let (store, ledger, rt) =
        super::ledger::open_offline(&cfg, "stop `custos ledger serve` first")?;
    let result = rt.block_on(scrub_with(&ledger, &store, &cfg.storage.url, jobs));
    rt.block_on(ledger.close());
    let (report, record) = result?;
    for f in &report.findings {
        println!("{}", finding_line(f));
    }
    let count = |p: ScrubProblem| report.findings.iter().filter(|f| f.problem == p).count();
    println!(
        "scrubbed {} object(s): {} ok, {} missing, {} altered, {} unreadable ({} deleted by retention, skipped); recorded as {} (entry {})",
        report.checked,
        report.ok,
        count(ScrubProblem::Missing),
        count(ScrubProblem::Altered),
        count(ScrubProblem::Unreadable),
        report.skipped_deleted,
        record.scrub_id,
        record.summary_seq
    );
    Ok(if report.findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn finding_line(f: &ScrubFinding) -> String {
    match f.problem {
        ScrubProblem::Missing => format!(
            "MISSING segment {} (object {}): not in the store",
            f.segment_id, f.object_key
        ),
        ScrubProblem::Altered => format!(
            "ALTERED segment {} (object {}): {} bytes with {}, the manifest says {} bytes with {}",
            f.segment_id,
            f.object_key,
            f.actual_size.unwrap_or_default(),
            f.actual_sha256.as_deref().unwrap_or("?"),
            f.expected_size,
            f.expected_sha256
        ),
        ScrubProblem::Unreadable => format!(
            "UNREADABLE segment {} (object {}): {}",
            f.segment_id,
            f.object_key,
            f.error.as_deref().unwrap_or("?")
        ),
    }
}

fn progress_bar(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "scrub [{bar:30}] {bytes}/{total_bytes} {pos} object(s) {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

async fn scrub_with(
    ledger: &Ledger,
    store: &IngestStore,
    url: &str,
    jobs: usize,
) -> anyhow::Result<(ScrubReport, audit::ScrubRecord)> {
    let started = ledger.now().to_string();
    let (targets, skipped_deleted) =
        audit::scrub_targets(ledger).context("listing the catalogue's segments")?;
    let bar = progress_bar(targets.iter().map(|t| t.size).sum());
    let mut findings = Vec::new();
    let mut ok = 0u64;
    let mut checked = 0u64;
    let mut results = futures::stream::iter(targets)
        .map(|t| {
            let store = store.clone();
            async move {
                let result = check_one(&store, &t).await;
                (t, result)
            }
        })
        .buffer_unordered(jobs);
    while let Some((t, finding)) = results.next().await {
        checked += 1;
        bar.inc(t.size);
        match finding {
            None => ok += 1,
            Some(f) => findings.push(f),
        }
    }
    bar.finish_and_clear();
    // The report lists findings in segment order, whatever order the jobs finished in.
    findings.sort_by(|a, b| a.segment_id.cmp(&b.segment_id));
    let report = ScrubReport {
        storage: url.to_owned(),
        started,
        finished: ledger.now().to_string(),
        checked,
        ok,
        skipped_deleted,
        findings,
    };
    let actor = Actor {
        kind: ActorKind::System,
        id: format!("audit-scrub:{}", super::operator::local_actor_id()),
    };
    let record = audit::record_scrub(ledger, actor, &report)
        .await
        .context("recording the scrub in the ledger")?;
    Ok((report, record))
}

/// `None` when the object matches its manifest; otherwise the finding
/// [`custos_ingest::check_object`]'s answer makes.
async fn check_one(store: &IngestStore, t: &ScrubTarget) -> Option<ScrubFinding> {
    let expected = ExpectedObject {
        size: t.size,
        sha256: t.sha256,
        sm3: t.sm3,
    };
    let (problem, actual, error) = match check_object(store, &t.object_key, &expected).await {
        ObjectCheck::Matches => return None,
        ObjectCheck::Missing => (ScrubProblem::Missing, None, None),
        ObjectCheck::Altered { size, digests } => {
            (ScrubProblem::Altered, Some((size, digests)), None)
        }
        ObjectCheck::Unreadable(reason) => {
            (ScrubProblem::Unreadable, None, Some(reason.to_string()))
        }
    };
    Some(ScrubFinding {
        segment_id: t.segment_id.clone(),
        problem,
        object_key: t.object_key.clone(),
        expected_sha256: t.sha256.to_string(),
        expected_size: t.size,
        actual_sha256: actual.map(|(_, d)| d.sha256.to_string()),
        actual_size: actual.map(|(s, _)| s),
        error,
    })
}
