//! `custos witness serve --config FILE`: a C2SP tlog-witness that cosigns
//! the checkpoints of the ledgers in `[[witness.logs]]`
//! ([`custos_server::witness`]); `custos witness key --config FILE` prints
//! its cosigner key, what the ledgers' `[[ledger.witnesses]]` and the
//! auditors' policy files name.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use custos_core::config::Config;
use custos_core::cosignature::CosignerKey;
use custos_core::keys::{SigningKey, VerifierKey};
use custos_core::witness::WitnessedLog;
use custos_server::witness::{WitnessOptions, WitnessServer};

/// Arguments of `custos witness`.
#[derive(Debug, clap::Args)]
pub(crate) struct WitnessArgs {
    #[command(subcommand)]
    command: WitnessCommand,
}

#[derive(Debug, clap::Subcommand)]
enum WitnessCommand {
    /// Serve POST /add-checkpoint (prints the URL it listens on).
    Serve {
        /// The configuration file ([witness] listen, key_file, state_dir, logs).
        #[arg(long, value_name = "FILE", env = "CUSTOS_CONFIG", default_value = super::DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Print the witness's cosigner key (name+hash+base64(0x04 || key)).
    Key {
        /// The configuration file ([witness] key_file).
        #[arg(long, value_name = "FILE", env = "CUSTOS_CONFIG", default_value = super::DEFAULT_CONFIG)]
        config: PathBuf,
    },
}

fn load_key(cfg: &Config) -> anyhow::Result<(SigningKey, CosignerKey)> {
    let path = &cfg.witness.key_file;
    let key = SigningKey::load(path).with_context(|| format!("witness key {}", path.display()))?;
    let cosigner =
        CosignerKey::of(&key).with_context(|| format!("witness key {}", path.display()))?;
    Ok((key, cosigner))
}

/// The `[[witness.logs]]` of the configuration.
pub(crate) fn witnessed_logs(cfg: &Config) -> anyhow::Result<Vec<WitnessedLog>> {
    cfg.witness
        .logs
        .iter()
        .map(|log| {
            let keys = log
                .keys
                .iter()
                .map(|k| k.parse::<VerifierKey>())
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("[[witness.logs]] {:?} keys", log.origin))?;
            Ok(WitnessedLog {
                origin: log.origin.clone(),
                keys,
            })
        })
        .collect()
}

pub(crate) fn run(args: WitnessArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        WitnessCommand::Key { config } => {
            let cfg = super::ledger::load_config(&config)?;
            let (_, cosigner) = load_key(&cfg)?;
            println!("{cosigner}");
            Ok(ExitCode::SUCCESS)
        }
        WitnessCommand::Serve { config } => {
            let cfg = super::ledger::load_config(&config)?;
            custos_server::serve::init_logging();
            let (key, cosigner) = load_key(&cfg)?;
            let logs = witnessed_logs(&cfg)?;
            if logs.is_empty() {
                anyhow::bail!(
                    "configuration {}: [[witness.logs]] names no log to witness",
                    config.display()
                );
            }
            let options = WitnessOptions {
                listen: cfg.witness.listen.clone(),
                key,
                state_dir: cfg.witness.state_dir.clone(),
                logs,
            };
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .thread_name("custos-witness")
                .build()
                .context("starting the runtime")?;
            rt.block_on(async {
                let server = WitnessServer::start(options).await?;
                println!("listening on {}", server.url());
                eprintln!(
                    "custos witness {cosigner}: witnessing {} log(s); Ctrl-C to stop",
                    cfg.witness.logs.len()
                );
                custos_server::serve::shutdown_signal().await;
                server.shutdown().await;
                anyhow::Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
