//! `custos export --config FILE (--case ID | --segment ID...) --out FILE.tar`:
//! build an export bundle (DESIGN.md "Formats").
//!
//! With `[client] ledger_url` set, the running ledger builds it
//! (`POST /v1/exports` with `[client] token`) and the answer streams to the
//! file; otherwise the ledger's `data_dir` is opened in this process (the
//! service must be stopped, as for `custos token create`) and footage is
//! read from `[storage] url`. Either way the bundle is written to
//! `FILE.tar.partial` and renamed on success; on failure the partial file
//! is removed, so `FILE.tar` is only ever a whole bundle.
//!
//! In process, the export passes the same footage gate as through the API
//! (see [`gate`]) and its entry names who made it; with `[[ledger.witnesses]]`
//! the tiles publisher runs for the export's time, so that the bundle's
//! tlog-proofs are against a checkpoint the witnesses cosigned, as the
//! running ledger's are.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use custos_core::config::Config;
use custos_core::entry::{Actor, ActorKind};
use custos_ingest::IngestStore;
use custos_ledger::export::{self, ExportRequest, ExportSummary, ObjectFootage};
use custos_ledger::governance::{FootageGate, Governance};
use custos_ledger::{Ledger, LedgerOptions};

/// Arguments of `custos export`.
#[derive(Debug, clap::Args)]
pub(crate) struct ExportArgs {
    /// The configuration file ([ledger], [storage], [client]).
    #[arg(long, value_name = "FILE", env = "CUSTOS_CONFIG", default_value = super::DEFAULT_CONFIG)]
    config: PathBuf,
    /// Export every segment linked to this case.
    #[arg(
        long,
        value_name = "ID",
        conflicts_with = "segment",
        required_unless_present = "segment"
    )]
    case: Option<String>,
    /// Export this segment (repeat for more).
    #[arg(long, value_name = "ID")]
    segment: Vec<String>,
    /// Why the export is made (recorded in the export entry).
    #[arg(long)]
    reason: Option<String>,
    /// The bundle to write.
    #[arg(long, value_name = "FILE.tar")]
    out: PathBuf,
}

pub(crate) fn run(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let cfg = super::ledger::load_config(&args.config)?;
    let mut partial = args.out.clone().into_os_string();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let result = match cfg.client.ledger_url.clone() {
        Some(url) => remote(&cfg, &url, &args, &partial).map(|()| None),
        None => in_process(&cfg, &args, &partial).map(Some),
    };
    match result {
        Ok(summary) => {
            std::fs::rename(&partial, &args.out).with_context(|| {
                format!("renaming {} to {}", partial.display(), args.out.display())
            })?;
            match summary {
                Some(s) => println!(
                    "exported {} segment(s), {} entries, {} footage bytes to {}; export {} is entry {} (checkpoint size {})",
                    s.segments,
                    s.entries,
                    s.footage_bytes,
                    args.out.display(),
                    s.export_id,
                    s.export_seq,
                    s.size
                ),
                None => println!("exported to {} by the ledger service", args.out.display()),
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

/// The ledger opened here: export through [`custos_ledger::export`].
fn in_process(cfg: &Config, args: &ExportArgs, partial: &Path) -> anyhow::Result<ExportSummary> {
    let store = IngestStore::from_url(&cfg.storage.url)
        .with_context(|| format!("[storage] url {:?}", cfg.storage.url))?;
    let options = LedgerOptions {
        report_font: cfg.ledger.report_font.clone(),
        ..LedgerOptions::new(&cfg.ledger.data_dir, &cfg.ledger.origin).with_config_keys(cfg)
    };
    let signing = options
        .load_keys(&cfg.ledger.key_file)
        .with_context(|| format!("ledger key {}", cfg.ledger.key_file.display()))?;
    let ledger = Ledger::open(options, signing)
        .with_context(|| format!("opening the ledger in {}", cfg.ledger.data_dir.display()))?;
    let rt = super::client_runtime()?;
    // With witnesses, the tiles publisher runs here for the export's time:
    // it publishes the export entry's checkpoint with the witnesses'
    // cosignatures, under which the bundle's tlog-proofs are made.
    let publisher = if cfg.ledger.witnesses.is_empty() {
        None
    } else {
        let tiles = custos_server::serve::tiles_options(cfg).context("[ledger] tiles_url")?;
        let _in_runtime = rt.enter();
        tiles.map(|tiles| custos_ledger::tiles::spawn(ledger.clone(), tiles))
    };
    let result =
        gate(cfg, &ledger).and_then(|gate| export_with(&rt, &ledger, &gate, store, args, partial));
    if let Some(publisher) = publisher {
        rt.block_on(publisher.stop());
    }
    rt.block_on(ledger.close());
    result
}

fn export_with(
    rt: &tokio::runtime::Runtime,
    ledger: &Ledger,
    gate: &FootageGate,
    store: IngestStore,
    args: &ExportArgs,
    partial: &Path,
) -> anyhow::Result<ExportSummary> {
    let mut segments = args.segment.clone();
    if let Some(case) = &args.case {
        segments.extend(export::case_segments(ledger, case)?);
    }
    let request = ExportRequest {
        segments,
        case: args.case.clone(),
        reason: args.reason.clone(),
    };
    rt.block_on(export::check_footage(
        ledger,
        store.object_store().as_ref(),
        &request.segments,
    ))?;
    let prepared = rt
        .block_on(export::prepare_export(ledger, gate, &request))
        .context("recording the export")?;
    let source = ObjectFootage::new(store.object_store().clone(), rt.handle().clone());
    let out = super::create_buffered(partial)?;
    let (out, summary) = export::write_bundle(&prepared, &source, out)
        .with_context(|| format!("writing {}", partial.display()))?;
    let file = out
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(|| format!("writing {}", partial.display()))?;
    file.sync_all()
        .with_context(|| format!("syncing {}", partial.display()))?;
    Ok(summary)
}

/// Who exports with the ledger opened here. With `[client] token` set, the
/// token's holder: its role and name on the entry, and the footage gate's
/// rule for that role (a reviewer needs an approval in force, as through
/// the API). Without one, the operator who opened the ledger's directory,
/// named by account and host (`local:<user>@<host>`).
pub(crate) fn gate(cfg: &Config, ledger: &Ledger) -> anyhow::Result<FootageGate> {
    match cfg.client.token.as_deref() {
        Some(token) => {
            let caller = ledger
                .authenticate(token)
                .context("[client] token is not a valid token of this ledger")?;
            let policy = Governance::from_access(&cfg.access).context("[access]")?;
            Ok(FootageGate::for_caller(&policy, &caller))
        }
        None => Ok(FootageGate::operator(Actor {
            kind: ActorKind::Admin,
            id: super::operator::local_actor_id(),
        })),
    }
}

/// A running ledger builds the bundle: `POST /v1/exports`, streamed to the file.
fn remote(cfg: &Config, url: &str, args: &ExportArgs, partial: &Path) -> anyhow::Result<()> {
    let token = cfg
        .client
        .token
        .as_deref()
        .context("[client] token is needed to export through [client] ledger_url")?;
    let request = ExportRequest {
        segments: args.segment.clone(),
        case: args.case.clone(),
        reason: args.reason.clone(),
    };
    let client = super::client_with_token(cfg, url, token)?;
    let mut out = super::create_buffered(partial)?;
    let rt = super::client_runtime()?;
    rt.block_on(client.export(&request, &mut out))
        .with_context(|| format!("exporting through {url}"))?;
    out.flush()
        .with_context(|| format!("writing {}", partial.display()))?;
    let file = out
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(|| format!("writing {}", partial.display()))?;
    file.sync_all()
        .with_context(|| format!("syncing {}", partial.display()))?;
    Ok(())
}
