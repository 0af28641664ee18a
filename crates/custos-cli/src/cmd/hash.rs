//! `custos hash [--algo sha256|sm3] FILE...`: output byte-identical to
//! `sha256sum` ("<hex>  <name>"), `-` reads standard input.
//!
//! The files are hashed by custos-ingest's hashing core, in parallel (one
//! per core, and a reader thread beside the hasher when there are cores to
//! spare); the lines come out in argument order all the same. A file that
//! cannot be read gets one line on standard error and exit code 2, after
//! the others are hashed. This command must never print a line for a file
//! it could not hash completely.

use std::ffi::OsStr;
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt as _;
use std::path::PathBuf;
use std::process::ExitCode;

use custos_core::digest::Algorithm;
use custos_ingest::{hash_sources, FileHashOptions, HashSource};

/// Arguments of `custos hash`.
#[derive(Debug, clap::Args)]
pub(crate) struct HashArgs {
    /// Digest algorithm.
    #[arg(long, default_value = "sha256", value_parser = ["sha256", "sm3"])]
    algo: String,
    /// Files to hash; `-` is standard input. None: standard input.
    files: Vec<PathBuf>,
}

pub(crate) fn run(args: HashArgs) -> anyhow::Result<ExitCode> {
    let algo: Algorithm = args.algo.parse()?;
    let files = if args.files.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        args.files
    };
    let sources: Vec<HashSource> = files
        .iter()
        .map(|f| HashSource::from_arg(f.as_os_str()))
        .collect();
    let mut opts = FileHashOptions::default();
    opts.with_sm3 = algo == Algorithm::Sm3;

    let mut out = std::io::stdout().lock();
    let mut code = ExitCode::SUCCESS;
    let mut write_error: Option<std::io::Error> = None;
    hash_sources(&sources, &opts, |i, result| match result {
        Ok(d) => {
            if write_error.is_some() {
                return;
            }
            let digest = match algo {
                Algorithm::Sm3 => d.sm3.unwrap_or(d.sha256),
                _ => d.sha256,
            };
            let line = sha256sum_line(&digest.hex(), files[i].as_os_str());
            if let Err(e) = out.write_all(&line) {
                write_error = Some(e);
            }
        }
        Err(e) => {
            eprintln!("custos: {e}");
            code = ExitCode::from(2);
        }
    });
    if let Some(e) = write_error {
        // A closed pipe is handled (as success) by `main`.
        return Err(e.into());
    }
    out.flush()?;
    Ok(code)
}

/// One output line exactly as GNU `sha256sum` writes it: a name holding a
/// backslash, a newline or a carriage return is escaped (`\\`, `\n`, `\r`)
/// and the line then starts with a backslash; other bytes, valid UTF-8 or
/// not, are written as they are.
fn sha256sum_line(hex: &str, name: &OsStr) -> Vec<u8> {
    let bytes = name.as_bytes();
    let escape = bytes.iter().any(|b| matches!(b, b'\\' | b'\n' | b'\r'));
    let mut line = Vec::with_capacity(hex.len() + bytes.len() + 4);
    if escape {
        line.push(b'\\');
    }
    line.extend_from_slice(hex.as_bytes());
    line.extend_from_slice(b"  ");
    for &b in bytes {
        match b {
            b'\\' if escape => line.extend_from_slice(b"\\\\"),
            b'\n' => line.extend_from_slice(b"\\n"),
            b'\r' => line.extend_from_slice(b"\\r"),
            _ => line.push(b),
        }
    }
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_escape_like_sha256sum() {
        let h = "ab";
        assert_eq!(sha256sum_line(h, OsStr::new("a b")), b"ab  a b\n");
        assert_eq!(
            sha256sum_line(h, OsStr::new("back\\slash")),
            b"\\ab  back\\\\slash\n"
        );
        assert_eq!(
            sha256sum_line(h, OsStr::new("new\nline")),
            b"\\ab  new\\nline\n"
        );
        assert_eq!(sha256sum_line(h, OsStr::new("cr\rx")), b"\\ab  cr\\rx\n");
        assert_eq!(
            sha256sum_line(h, OsStr::from_bytes(b"bad\xffname")),
            b"ab  bad\xffname\n"
        );
    }
}
