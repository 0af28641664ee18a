//! `custos ledger serve --config FILE`: the ledger HTTP API; `custos ledger
//! backup` and `custos ledger restore` ([`super::backup`]).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use custos_core::config::Config;
use custos_ledger::governance::Governance;
use custos_server::serve::{self, ServeOptions};

/// Arguments of `custos ledger`.
#[derive(Debug, clap::Args)]
pub(crate) struct LedgerArgs {
    #[command(subcommand)]
    command: LedgerCommand,
}

impl LedgerArgs {
    /// The log level shown unless `RUST_LOG` says otherwise: the service
    /// logs what it does (`info`); backup and restore only what goes wrong.
    pub(crate) fn log_default(&self) -> &'static str {
        match self.command {
            LedgerCommand::Serve { .. } => "info",
            LedgerCommand::Backup(_) | LedgerCommand::Restore(_) => "warn",
        }
    }
}

#[derive(Debug, clap::Subcommand)]
enum LedgerCommand {
    /// Serve the ledger HTTP API (prints the URL it listens on).
    Serve {
        /// The configuration file ([ledger] listen, data_dir, origin, key_file).
        #[arg(long, value_name = "FILE", env = "CUSTOS_CONFIG", default_value = super::DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Back the ledger up at its size now (appends continue): entries, the
    /// signed checkpoint of that size, tokens (hashed) and dock keys, and
    /// the state the entries cannot re-create. Through the running ledger
    /// with `[client] ledger_url` and an admin's token; else the stopped
    /// ledger's data_dir.
    Backup(super::backup::BackupArgs),
    /// Restore a backup into an empty data_dir: the tree and catalogue are
    /// re-derived from the entries and checked against the backup's
    /// signed checkpoint and every --checkpoint OLD kept by an auditor.
    Restore(super::backup::RestoreArgs),
}

/// Read and parse the configuration file, with `CUSTOS_*` overrides from
/// the environment and paths relative to the file's directory.
/// What a command that works on the ledger's own directory needs: the
/// store, the ledger opened by this process (so `custos ledger serve` must
/// be stopped; `hint` ends the error line when it is not) and a runtime.
pub(crate) fn open_offline(
    cfg: &Config,
    hint: &str,
) -> anyhow::Result<(
    custos_ingest::IngestStore,
    custos_ledger::Ledger,
    tokio::runtime::Runtime,
)> {
    let store = custos_ingest::IngestStore::from_url(&cfg.storage.url)
        .with_context(|| format!("[storage] url {:?}", cfg.storage.url))?;
    let options = custos_ledger::LedgerOptions::new(&cfg.ledger.data_dir, &cfg.ledger.origin)
        .with_config_keys(cfg);
    let signing = options
        .load_keys(&cfg.ledger.key_file)
        .with_context(|| format!("ledger key {}", cfg.ledger.key_file.display()))?;
    let ledger = custos_ledger::Ledger::open(options, signing).with_context(|| {
        format!(
            "opening the ledger in {} ({hint})",
            cfg.ledger.data_dir.display()
        )
    })?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    Ok((store, ledger, rt))
}

pub(crate) fn load_config(path: &Path) -> anyhow::Result<Config> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading configuration {}", path.display()))?;
    let base = path
        .parent()
        .map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
        .unwrap_or(Path::new("."));
    let base = base
        .canonicalize()
        .with_context(|| format!("resolving the directory of {}", path.display()))?;
    Config::parse(&text, &base, std::env::vars())
        .with_context(|| format!("configuration {}", path.display()))
}

pub(crate) fn run(args: LedgerArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        LedgerCommand::Backup(args) => super::backup::run_backup(args),
        LedgerCommand::Restore(args) => super::backup::run_restore(args),
        LedgerCommand::Serve { config } => {
            let cfg = load_config(&config)?;
            let mut options = ServeOptions::from_config(&cfg);
            // Footage is read from the `[storage] url` store; who needs an
            // approved request is `[access] approval_required`.
            let policy = Governance::from_access(&cfg.access)
                .context("configuration [access] approval_required")?;
            let store = custos_ingest::IngestStore::from_url(&cfg.storage.url)
                .with_context(|| format!("configuration [storage] url {:?}", cfg.storage.url))?;
            options.governance = policy
                .with_retention(cfg.retention.clone())
                .with_store(store.object_store().clone());
            options.tiles = serve::tiles_options(&cfg)?;
            let sweep = match options.sweep_interval {
                Some(every) => format!("retention sweep every {every:?}"),
                None => "scheduled retention sweep off".to_owned(),
            };
            let origin = options.ledger.origin.clone();
            serve::run_blocking(options, |server| {
                println!("listening on {}", server.url());
                // Standard output holds only the "listening on" line that
                // scripts and tests read; the rest goes to standard error.
                eprintln!(
                    "web console on {}/ui/ (sign in with a reviewer, supervisor or auditor token)",
                    server.url()
                );
                eprintln!(
                    "custos ledger: origin {origin:?}, {} entries, {sweep}; Ctrl-C to stop",
                    server.ledger().published().size
                );
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
