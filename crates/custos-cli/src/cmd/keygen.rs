//! `custos keygen --out PATH [--name NAME]`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use custos_core::keys::{pub_path, SigningKey};

/// Arguments of `custos keygen`.
#[derive(Debug, clap::Args)]
pub(crate) struct KeygenArgs {
    /// Where to write the seed (mode 0600); the verifier key goes to PATH.pub.
    #[arg(long, value_name = "PATH")]
    out: PathBuf,
    /// The key's name in the verifier key and signatures (default: the file
    /// name without its extension).
    #[arg(long)]
    name: Option<String>,
}

pub(crate) fn run(args: KeygenArgs) -> anyhow::Result<ExitCode> {
    let name = match &args.name {
        Some(n) => n.clone(),
        None => args
            .out
            .file_stem()
            .and_then(|s| s.to_str())
            .with_context(|| {
                format!(
                    "{}: cannot derive a key name from this path; pass --name",
                    args.out.display()
                )
            })?
            .to_owned(),
    };
    let key = SigningKey::generate(&name, &mut rand_core::OsRng)
        .with_context(|| format!("generating key {name:?}"))?;
    key.save(&args.out)
        .with_context(|| format!("writing key {}", args.out.display()))?;
    println!("{}", key.verifier_key());
    eprintln!(
        "wrote {} (seed, 0600) and {}",
        args.out.display(),
        pub_path(&args.out).display()
    );
    Ok(ExitCode::SUCCESS)
}
