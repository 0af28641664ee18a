//! `custos hash [--algo sha256|sm3] FILE...`: output byte-identical to
//! `sha256sum` ("<hex>  <name>"), `-` reads standard input.

use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use custos_core::digest::{Algorithm, MultiHasher};

/// Arguments of `custos hash`.
#[derive(Debug, clap::Args)]
pub struct HashArgs {
    /// Digest algorithm.
    #[arg(long, default_value = "sha256", value_parser = ["sha256", "sm3"])]
    algo: String,
    /// Files to hash; `-` is standard input. None: standard input.
    files: Vec<PathBuf>,
}

pub fn run(args: HashArgs) -> anyhow::Result<ExitCode> {
    let algo: Algorithm = args.algo.parse()?;
    let files = if args.files.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        args.files
    };
    let mut out = std::io::stdout().lock();
    let mut code = ExitCode::SUCCESS;
    for f in &files {
        let mut hasher = MultiHasher::new(algo == Algorithm::Sm3)?;
        let mut buf = vec![0u8; 1 << 20];
        let mut reader: Box<dyn std::io::Read> = if f.as_os_str() == "-" {
            Box::new(std::io::stdin().lock())
        } else {
            match std::fs::File::open(f) {
                Ok(file) => Box::new(file),
                Err(e) => {
                    eprintln!("custos: {}: {e}", f.display());
                    code = ExitCode::from(2);
                    continue;
                }
            }
        };
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let d = hasher.finalize();
        let digest = match algo {
            Algorithm::Sm3 => d.sm3.unwrap_or(d.sha256),
            _ => d.sha256,
        };
        writeln!(out, "{}  {}", digest.hex(), f.display())?;
    }
    Ok(code)
}
