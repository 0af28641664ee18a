//! `custos ledger backup --config FILE --out FILE` and `custos ledger
//! restore --config FILE BACKUP [--checkpoint OLD]...`
//! ([`custos_ledger::backup`]).
//!
//! A backup goes through the running ledger (`GET /v1/backup`) when
//! `[client] ledger_url` is set, with `[client] token` (an admin's) and
//! `[client] ledger_ca`, like `custos export`; otherwise it opens the
//! stopped ledger's `data_dir` itself. Either way it is written to
//! `FILE.partial`, checked (complete, SHA-256 as its end line says) and
//! renamed; a failed backup leaves no `FILE`. A restore writes into the
//! configured `data_dir`, which must be empty, and leaves it empty when it
//! refuses the backup.

use std::fs::File;
use std::io::{BufReader, BufWriter, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use custos_core::config::Config;
use custos_core::keys::VerifierKey;
use custos_ledger::backup::{self, RestoreOptions};
use custos_ledger::{Ledger, LedgerOptions};

/// Arguments of `custos ledger backup`.
#[derive(Debug, clap::Args)]
pub(crate) struct BackupArgs {
    /// The configuration file: `[client] ledger_url`, `token` (an admin's)
    /// and `ledger_ca` for a running ledger; without `ledger_url`, `[ledger]
    /// data_dir`, origin and key files of a stopped one.
    #[arg(long, value_name = "FILE", env = "CUSTOS_CONFIG", default_value = super::DEFAULT_CONFIG)]
    config: PathBuf,
    /// Where to write the backup (written as FILE.partial, then renamed).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

/// Arguments of `custos ledger restore`.
#[derive(Debug, clap::Args)]
pub(crate) struct RestoreArgs {
    /// The configuration file: `[ledger] data_dir` (empty), origin and key
    /// files (the backup's checkpoint must be signed by one of its keys).
    #[arg(long, value_name = "FILE", env = "CUSTOS_CONFIG", default_value = super::DEFAULT_CONFIG)]
    config: PathBuf,
    /// The backup, as `custos ledger backup` wrote it.
    #[arg(value_name = "BACKUP")]
    backup: PathBuf,
    /// A checkpoint an auditor kept (a signed note, as `/v1/checkpoint`
    /// serves it): the restored log must be consistent with it. Repeat it
    /// for several.
    #[arg(long, value_name = "OLD")]
    checkpoint: Vec<PathBuf>,
    /// The verifier key (`.pub`) of a ledger key retired since an OLD
    /// checkpoint was signed: it may open those kept checkpoints, never
    /// the backup's own, which a configured key must have signed. Repeat it
    /// for several.
    #[arg(long = "retired-key", value_name = "FILE.pub")]
    retired_key: Vec<PathBuf>,
}

/// Progress on standard error, at most once a second.
struct Progress {
    last: Instant,
    started: Instant,
}

impl Progress {
    fn new() -> Progress {
        let now = Instant::now();
        Progress {
            last: now,
            started: now,
        }
    }

    fn tick(&mut self, line: impl FnOnce() -> String) {
        if self.last.elapsed() >= Duration::from_secs(1) {
            self.last = Instant::now();
            let end = if std::io::stderr().is_terminal() {
                "\r"
            } else {
                "\n"
            };
            eprint!("{}{end}", line());
        }
    }
}

pub(crate) fn run_backup(args: BackupArgs) -> anyhow::Result<ExitCode> {
    let cfg = super::ledger::load_config(&args.config)?;
    let mut partial = args.out.clone().into_os_string();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let result = match cfg.client.ledger_url.clone() {
        Some(url) => remote(&cfg, &url, &partial),
        None => offline(&cfg, &partial),
    }
    .and_then(|()| {
        let file =
            File::open(&partial).with_context(|| format!("reading {}", partial.display()))?;
        backup::check_backup(BufReader::with_capacity(1 << 20, file))
            .with_context(|| format!("checking {}", partial.display()))
    });
    match result {
        Ok((origin, entries, rows)) => {
            std::fs::rename(&partial, &args.out).with_context(|| {
                format!("renaming {} to {}", partial.display(), args.out.display())
            })?;
            eprintln!(
                "backup of {origin:?}: {entries} entries, {rows} state rows, checked; written to {}",
                args.out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

fn finish(out: BufWriter<File>, path: &Path) -> anyhow::Result<()> {
    let file = out
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(|| format!("writing {}", path.display()))?;
    file.sync_all()
        .with_context(|| format!("syncing {}", path.display()))
}

/// Through the running ledger's `GET /v1/backup`.
fn remote(cfg: &Config, url: &str, partial: &Path) -> anyhow::Result<()> {
    let token =
        cfg.client.token.as_deref().context(
            "[client] token (an admin's) is needed to back up through [client] ledger_url",
        )?;
    let client = super::client_with_token(cfg, url, token)?;
    let mut out = super::create_buffered(partial)?;
    let mut progress = Progress::new();
    let (bytes, size) = super::client_runtime()?
        .block_on(client.backup(&mut out, &mut |bytes| {
            progress.tick(|| format!("backup: {} MiB received", bytes >> 20));
        }))
        .with_context(|| format!("backing up through {url}"))?;
    out.flush()
        .with_context(|| format!("writing {}", partial.display()))?;
    finish(out, partial)?;
    eprintln!(
        "backup: {bytes} bytes received in {:.1} s{}",
        progress.started.elapsed().as_secs_f64(),
        size.map(|s| format!(" (tree size {s})"))
            .unwrap_or_default()
    );
    Ok(())
}

/// The stopped ledger, opened here.
fn offline(cfg: &Config, partial: &Path) -> anyhow::Result<()> {
    let options =
        LedgerOptions::new(&cfg.ledger.data_dir, &cfg.ledger.origin).with_config_keys(cfg);
    let signing = options
        .load_keys(&cfg.ledger.key_file)
        .with_context(|| format!("ledger key {}", cfg.ledger.key_file.display()))?;
    let ledger = Ledger::open(options, signing).with_context(|| {
        format!(
            "opening the ledger in {} (while `custos ledger serve` runs, set [client] ledger_url and an admin's token to back up through it)",
            cfg.ledger.data_dir.display()
        )
    })?;
    let rt = super::client_runtime()?;
    let result = (|| {
        let snapshot = rt.block_on(backup::snapshot(&ledger))?;
        let size = snapshot.size;
        let mut out = super::create_buffered(partial)?;
        let mut progress = Progress::new();
        backup::write_backup(&ledger, &snapshot, &mut out, &mut |done| {
            progress.tick(|| format!("backup: {done} of {size} entries"));
        })?;
        finish(out, partial)
    })();
    rt.block_on(ledger.close());
    result
}

pub(crate) fn run_restore(args: RestoreArgs) -> anyhow::Result<ExitCode> {
    let cfg = super::ledger::load_config(&args.config)?;
    let keys = LedgerOptions::new(&cfg.ledger.data_dir, &cfg.ledger.origin)
        .with_config_keys(&cfg)
        .load_keys(&cfg.ledger.key_file)
        .with_context(|| format!("ledger key {}", cfg.ledger.key_file.display()))?
        .verifier_keys();
    let checkpoints = args
        .checkpoint
        .iter()
        .map(|path| {
            std::fs::read_to_string(path)
                .map(|text| (path.display().to_string(), text))
                .with_context(|| format!("reading checkpoint {}", path.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let retired_keys = args
        .retired_key
        .iter()
        .map(|path| {
            VerifierKey::load(path)
                .with_context(|| format!("retired ledger key {}", path.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let options = RestoreOptions {
        data_dir: cfg.ledger.data_dir.clone(),
        origin: cfg.ledger.origin.clone(),
        keys,
        checkpoints,
        retired_keys,
    };
    let file = File::open(&args.backup)
        .with_context(|| format!("reading backup {}", args.backup.display()))?;
    let mut progress = Progress::new();
    let summary = backup::restore(
        &options,
        BufReader::with_capacity(1 << 20, file),
        &mut |done, size| progress.tick(|| format!("restore: {done} of {size} entries")),
    )
    .with_context(|| format!("restoring {}", args.backup.display()))?;
    eprintln!(
        "restored {} entries and {} state rows into {} in {:.1} s; root {} as the backup's checkpoint; consistent with {} kept checkpoint(s)",
        summary.entries,
        summary.rows,
        cfg.ledger.data_dir.display(),
        progress.started.elapsed().as_secs_f64(),
        summary.root,
        summary.checked
    );
    Ok(ExitCode::SUCCESS)
}
