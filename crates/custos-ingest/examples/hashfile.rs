//! Hash one local file with the file-hashing core, choosing the read size
//! and whether a separate reader thread overlaps reads with hashing; for
//! tuning `DEFAULT_HASH_BUFFER` and the pipelining rule of `custos hash`.
//!
//! ```text
//! cargo run --release -p custos-ingest --example hashfile -- FILE [BUFFER_BYTES] [inline|pipelined] [ROUNDS]
//! ```

use std::time::Instant;

use custos_core::digest::MultiHasher;
use custos_ingest::{hash_reader, hash_reader_pipelined, DEFAULT_HASH_BUFFER};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or_else(|| {
        anyhow::anyhow!("usage: hashfile FILE [BUFFER_BYTES] [inline|pipelined] [ROUNDS]")
    })?;
    let size: usize = args.next().map_or(Ok(DEFAULT_HASH_BUFFER), |s| s.parse())?;
    let mode = args.next().unwrap_or_else(|| "pipelined".into());
    let rounds: usize = args.next().map_or(Ok(3), |s| s.parse())?;
    for _ in 0..rounds {
        let file = std::fs::File::open(&path)?;
        let len = file.metadata()?.len();
        let t = Instant::now();
        let d = match mode.as_str() {
            "inline" => hash_reader(file, MultiHasher::sha256(), size)?,
            _ => hash_reader_pipelined(file, MultiHasher::sha256(), size)?,
        };
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{mode} buffer={size} {:.0} MB/s {}",
            len as f64 / secs / 1e6,
            d.sha256
        );
    }
    Ok(())
}
