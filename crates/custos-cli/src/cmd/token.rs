//! `custos token create --config FILE --role ROLE --name NAME [--key NAME.pub]`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use custos_core::entry::{Actor, ActorKind};
use custos_core::keys::VerifierKey;
use custos_ledger::{offline, LedgerOptions, Role};

/// Arguments of `custos token`.
#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Debug, clap::Subcommand)]
enum TokenCommand {
    /// Create a bearer token and print it once (the last line of the output).
    /// Works with the ledger service stopped (it opens the ledger's data_dir).
    Create {
        /// The configuration file ([ledger] data_dir, origin, key_file).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// dock, officer, reviewer, supervisor, auditor or admin.
        #[arg(long)]
        role: Role,
        /// Who holds it (for a dock: its station id); recorded as the actor
        /// of its entries.
        #[arg(long)]
        name: String,
        /// A dock's verifier key (NAME.pub); its events must be signed by it.
        #[arg(long, value_name = "NAME.pub")]
        key: Option<PathBuf>,
    },
}

pub fn run(args: TokenArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        TokenCommand::Create {
            config,
            role,
            name,
            key,
        } => {
            let cfg = super::ledger::load_config(&config)?;
            let key = match key {
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("reading dock key {}", path.display()))?;
                    Some(
                        text.trim()
                            .parse::<VerifierKey>()
                            .with_context(|| format!("dock key {}", path.display()))?,
                    )
                }
                None => None,
            };
            let creator = Actor {
                kind: ActorKind::Admin,
                id: super::operator::local_actor_id(),
            };
            let options = LedgerOptions::new(&cfg.ledger.data_dir, &cfg.ledger.origin);
            let token =
                offline::create_token(options, &cfg.ledger.key_file, creator, role, &name, key)
                    .with_context(|| format!("creating the {role} token for {name:?}"))?;
            eprintln!(
                "created {role} token {} for {name:?}; it is shown once, store it now:",
                token.record.id
            );
            println!("{}", token.token);
            Ok(ExitCode::SUCCESS)
        }
    }
}
