//! `custos token create --config FILE --role ROLE --name NAME [--key NAME.pub]...
//! [--expires 90d]`, `custos token list --config FILE`, `custos token revoke
//! --config FILE --name NAME [--id ID]`: with the ledger service stopped
//! (they open its data_dir); a running service answers `GET /v1/tokens`
//! and `POST /v1/tokens/{name}/revoke` for an admin token instead.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use custos_core::entry::{Actor, ActorKind};
use custos_core::keys::VerifierKey;
use custos_ledger::{LedgerOptions, Role};
use custos_server::offline;

/// Arguments of `custos token`.
#[derive(Debug, clap::Args)]
pub(crate) struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Debug, clap::Subcommand)]
enum TokenCommand {
    /// Create a bearer token and print it once (the last line of the output).
    /// Works with the ledger service stopped (it opens the ledger's data_dir).
    Create {
        /// The configuration file ([ledger] data_dir, origin, key_file).
        #[arg(long, value_name = "FILE", env = "CUSTOS_CONFIG", default_value = super::DEFAULT_CONFIG)]
        config: PathBuf,
        /// dock, officer, reviewer, supervisor, auditor or admin.
        #[arg(long)]
        role: Role,
        /// Who holds it (for a dock: its station id); recorded as the actor
        /// of its entries.
        #[arg(long)]
        name: String,
        /// A dock's verifier key (NAME.pub, Ed25519 or SM2); its events must
        /// be signed by it. Repeat it for a dock that signs with several
        /// suites (`--key dock.key.pub --key dock-sm2.key.pub`): every
        /// signature of its envelopes must then be by one of these keys.
        /// To replace a dock's key, create a new token with the new key and
        /// revoke the old token (`revoke --name ID --id OLD`).
        #[arg(long, value_name = "NAME.pub")]
        key: Vec<PathBuf>,
        /// The token stops working this long after now: a number with a
        /// unit s, m, h or d (e.g. 90d). Without it the token has no end.
        #[arg(long, value_name = "DURATION", value_parser = parse_lifetime)]
        expires: Option<std::time::Duration>,
    },
    /// List every token: id, role, name, state, created, end, dock key.
    /// Never shows a secret.
    List {
        /// The configuration file ([ledger] data_dir, origin, key_file).
        #[arg(long, value_name = "FILE", env = "CUSTOS_CONFIG", default_value = super::DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Revoke the tokens in force held by NAME (or only the one with --id):
    /// a token.revoked entry; they are refused from then on. A dock's key
    /// stays registered, so what it signed before still verifies.
    Revoke {
        /// The configuration file ([ledger] data_dir, origin, key_file).
        #[arg(long, value_name = "FILE", env = "CUSTOS_CONFIG", default_value = super::DEFAULT_CONFIG)]
        config: PathBuf,
        /// The token holder's name.
        #[arg(long)]
        name: String,
        /// Only this token of NAME (its 16-hex-digit id, from `token list`).
        #[arg(long, value_name = "ID")]
        id: Option<String>,
    },
}

/// `--expires`: a number and a unit s, m, h or d.
fn parse_lifetime(text: &str) -> Result<std::time::Duration, String> {
    let expected = format!(
        "{text:?} is not a lifetime: expected a number with a unit s, m, h or d (e.g. 90d)"
    );
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| expected.clone())?;
    let (n, unit) = text.split_at(split);
    let n: u64 = n.parse().map_err(|_| expected.clone())?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(expected),
    };
    match n.checked_mul(unit) {
        Some(0) => Err("the lifetime must be longer than zero".into()),
        Some(secs) => Ok(std::time::Duration::from_secs(secs)),
        None => Err(format!("{text:?} is too long")),
    }
}

/// Who runs an offline token command, for its entry's actor.
/// The operating-system user who runs an offline token command, as the
/// admin the entry names (`local:<user>@<host>`).
fn local_admin() -> Actor {
    Actor {
        kind: ActorKind::Admin,
        id: super::operator::local_actor_id(),
    }
}

pub(crate) fn run(args: TokenArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        TokenCommand::Create {
            config,
            role,
            name,
            key,
            expires,
        } => {
            let cfg = super::ledger::load_config(&config)?;
            let keys = key
                .iter()
                .map(|path| {
                    VerifierKey::load(path).with_context(|| format!("dock key {}", path.display()))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let options =
                LedgerOptions::new(&cfg.ledger.data_dir, &cfg.ledger.origin).with_config_keys(&cfg);
            let token = offline::create_token_with_keys(
                options,
                &cfg.ledger.key_file,
                local_admin(),
                role,
                &name,
                keys,
                expires,
            )
            .with_context(|| format!("creating the {role} token for {name:?}"))?;
            let until = match token.record.expires_at {
                Some(end) => format!(", valid until {end}"),
                None => String::new(),
            };
            eprintln!(
                "created {role} token {} for {name:?}{until}; it is shown once, store it now:",
                token.record.id
            );
            println!("{}", token.token);
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::List { config } => {
            let cfg = super::ledger::load_config(&config)?;
            let options =
                LedgerOptions::new(&cfg.ledger.data_dir, &cfg.ledger.origin).with_config_keys(&cfg);
            let tokens = offline::list_tokens(options, &cfg.ledger.key_file)
                .context("listing the tokens")?;
            println!("ID\tROLE\tNAME\tSTATE\tCREATED\tEXPIRES\tKEY");
            for t in tokens {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    t.id,
                    t.role,
                    t.name.escape_debug(),
                    t.state,
                    t.created_at,
                    t.expires_at
                        .map_or_else(|| "-".to_owned(), |e| e.to_string()),
                    keys_column(&t.key_id, &t.more_key_ids),
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::Revoke { config, name, id } => {
            let cfg = super::ledger::load_config(&config)?;
            let options =
                LedgerOptions::new(&cfg.ledger.data_dir, &cfg.ledger.origin).with_config_keys(&cfg);
            let (seq, ids) = offline::revoke_token(
                options,
                &cfg.ledger.key_file,
                local_admin(),
                &name,
                id.as_deref(),
            )
            .with_context(|| format!("revoking the tokens of {name:?}"))?;
            eprintln!(
                "revoked {} token(s) of {name:?} ({}) at entry {seq}",
                ids.len(),
                ids.join(", ")
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The KEY column of `custos token list`: a dock's key ids, comma
/// separated, or `-`.
fn keys_column(first: &Option<String>, more: &[String]) -> String {
    let ids: Vec<String> = first
        .iter()
        .chain(more)
        .map(|k| k.escape_debug().to_string())
        .collect();
    if ids.is_empty() {
        "-".to_owned()
    } else {
        ids.join(",")
    }
}
