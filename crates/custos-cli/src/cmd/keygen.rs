//! `custos keygen --out PATH [--name NAME] [--algo ed25519|sm2]`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use custos_core::keys::{pub_path, Algorithm, SigningKey};

/// Arguments of `custos keygen`.
#[derive(Debug, clap::Args)]
pub(crate) struct KeygenArgs {
    /// Where to write the private key (mode 0600); the public key goes to
    /// PATH.pub.
    #[arg(long, value_name = "PATH")]
    out: PathBuf,
    /// The suite: ed25519 (a 32-byte seed; PATH.pub is the C2SP verifier
    /// key) or sm2 (PKCS#8 PEM that OpenSSL 3 reads; PATH.pub is the
    /// verifier key line followed by the PEM public key).
    #[arg(long, default_value = "ed25519", value_name = "ed25519|sm2")]
    algo: Algorithm,
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
    let key = SigningKey::generate_for(args.algo, &name, &mut rand_core::OsRng)
        .with_context(|| format!("generating key {name:?}"))?;
    key.save(&args.out)
        .with_context(|| format!("writing key {}", args.out.display()))?;
    println!("{}", key.verifier_key());
    eprintln!(
        "wrote {} ({}, 0600) and {}",
        args.out.display(),
        match args.algo {
            Algorithm::Ed25519 => "Ed25519 seed",
            Algorithm::Sm2 => "SM2 PKCS#8 PEM",
        },
        pub_path(&args.out).display()
    );
    Ok(ExitCode::SUCCESS)
}
