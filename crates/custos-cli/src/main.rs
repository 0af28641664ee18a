//! The `custos` command: wires the Custos crates together.
//!
//! `main` returns an [`ExitCode`] from [`run`]. Exit codes follow DESIGN.md:
//! 0 success, 1 verification failed or work incomplete, 2 bad usage, config
//! or I/O. Every failure prints one line on standard error saying what and
//! where; a closed pipe on standard output is not an error.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

/// Body-worn-camera evidence: ingest, custody ledger, verification.
#[derive(Debug, Parser)]
#[command(name = "custos", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write an Ed25519 key: PATH (32-byte seed, mode 0600) and PATH.pub.
    Keygen(cmd::keygen::KeygenArgs),
    /// Print "<hex>  <file>" per file, like sha256sum.
    Hash(cmd::hash::HashArgs),
    /// The custody ledger service: `custos ledger serve --config FILE`.
    Ledger(cmd::ledger::LedgerArgs),
    /// A C2SP tlog-witness cosigning other ledgers' checkpoints: `custos witness serve|key --config FILE`.
    Witness(cmd::witness::WitnessArgs),
    /// Bearer tokens: `custos token create|list|revoke --config FILE ...` (service stopped).
    Token(cmd::token::TokenArgs),
    /// Verify an export bundle offline, or a ledger's whole log: `custos verify bundle|log`.
    Verify(cmd::verify::VerifyArgs),
    /// The docking station: `custos dock ingest --source DIR` or `custos dock run`.
    Dock(cmd::dock::DockArgs),
    /// The main job on embedded defaults, start to finish: `custos demo [--workdir DIR]`.
    Demo(cmd::demo::DemoArgs),
    /// Build an export bundle: `custos export --config FILE (--case ID | --segment ID...) --out FILE.tar`.
    Export(cmd::export::ExportArgs),
    /// Write the chain-of-custody report: `custos report --config FILE (--case ID | --segment ID...) --out FILE.pdf`.
    Report(cmd::report::ReportArgs),
    /// Re-hash stored objects against their manifests: `custos audit scrub --config FILE [--jobs N]`.
    Audit(cmd::audit::AuditArgs),
    /// The retention sweeper on demand: `custos retention sweep --config FILE [--dry-run]`.
    Retention(cmd::retention::RetentionArgs),
    /// Coverage findings through a running ledger: `custos coverage list|explain --config FILE`.
    Coverage(cmd::coverage::CoverageArgs),
    /// Per officer and recorder over a period: `custos supervision --from T --to T [--csv] --config FILE`.
    Supervision(cmd::coverage::SupervisionArgs),
    /// Print a shell completion script: `custos completions bash|zsh|fish|elvish|powershell`.
    Completions(cmd::docs::CompletionsArgs),
    /// Write the manual pages (custos.1 and one per subcommand) into a directory.
    #[command(hide = true)]
    Man(cmd::docs::ManArgs),
}

impl Command {
    /// The log level shown on standard error unless `RUST_LOG` says
    /// otherwise: services log what they do, every other command only its
    /// warnings (a retry, a slow store) and errors.
    fn log_default(&self) -> &'static str {
        match self {
            Command::Ledger(args) => args.log_default(),
            Command::Dock(args) => args.log_default(),
            _ => "warn",
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    cmd::init_logging(cli.command.log_default());
    match cli.command {
        Command::Keygen(args) => cmd::keygen::run(args),
        Command::Hash(args) => cmd::hash::run(args),
        Command::Ledger(args) => cmd::ledger::run(args),
        Command::Witness(args) => cmd::witness::run(args),
        Command::Token(args) => cmd::token::run(args),
        Command::Verify(args) => cmd::verify::run(args),
        Command::Dock(args) => cmd::dock::run(args),
        Command::Demo(args) => cmd::demo::run(args),
        Command::Export(args) => cmd::export::run(args),
        Command::Report(args) => cmd::report::run(args),
        Command::Audit(args) => cmd::audit::run(args),
        Command::Retention(args) => cmd::retention::run(args),
        Command::Coverage(args) => cmd::coverage::run(args),
        Command::Supervision(args) => cmd::coverage::run_supervision(args),
        Command::Completions(args) => cmd::docs::run_completions(args),
        Command::Man(args) => cmd::docs::run_man(args),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            // One line: the context chain joined, outermost first.
            eprintln!("custos: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
