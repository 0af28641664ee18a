//! Shell completions and manual pages, generated from the command line's own
//! definition so they never drift from it: `custos completions SHELL` prints
//! a completion script; `custos man --out DIR` (hidden: the package build
//! runs it) writes `custos.1` and one page per subcommand
//! (`custos-ledger-serve.1`, …).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, CommandFactory};
use clap_complete::Shell;

/// Arguments of `custos completions`.
#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: Shell,
}

/// Arguments of `custos man`.
#[derive(Debug, Args)]
pub(crate) struct ManArgs {
    /// The directory to write the pages into (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

/// Print the completion script for one shell on standard output.
pub(crate) fn run_completions(args: CompletionsArgs) -> anyhow::Result<ExitCode> {
    let mut command = crate::Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut command, "custos", &mut out);
    std::io::stdout()
        .write_all(&out)
        .context("writing the completion script")?;
    Ok(ExitCode::SUCCESS)
}

/// Write one manual page per command and subcommand into `--out`.
pub(crate) fn run_man(args: ManArgs) -> anyhow::Result<ExitCode> {
    fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let mut command = crate::Cli::command();
    command.build();
    let written = write_pages(&command, "custos", &args.out)?;
    eprintln!("custos man: {written} pages in {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}

/// The page of `command` (named `name`), then those of its visible
/// subcommands, named `name-sub`. Returns how many pages were written.
fn write_pages(command: &clap::Command, name: &str, dir: &Path) -> anyhow::Result<usize> {
    let page = command.clone().name(name.to_owned());
    let mut roff = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut roff)
        .with_context(|| format!("rendering the page of {name}"))?;
    let path = dir.join(format!("{name}.1"));
    fs::write(&path, roff).with_context(|| format!("writing {}", path.display()))?;
    let mut written = 1;
    for sub in command.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        written += write_pages(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(written)
}
