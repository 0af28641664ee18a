//! Hash one local file with the file-hashing core at a chosen read size;
//! for tuning `DEFAULT_HASH_BUFFER` (see benches/README.md).
//!
//! ```text
//! cargo run --release -p custos-ingest --example hashfile -- FILE [BUFFER_BYTES] [ROUNDS]
//! ```

use std::time::Instant;

use custos_core::digest::MultiHasher;
use custos_ingest::{hash_reader, DEFAULT_HASH_BUFFER};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: hashfile FILE [BUFFER_BYTES] [ROUNDS]"))?;
    let size: usize = args.next().map_or(Ok(DEFAULT_HASH_BUFFER), |s| s.parse())?;
    let rounds: usize = args.next().map_or(Ok(3), |s| s.parse())?;
    for _ in 0..rounds {
        let file = std::fs::File::open(&path)?;
        let len = file.metadata()?.len();
        let t = Instant::now();
        let d = hash_reader(file, MultiHasher::sha256(), size)?;
        let secs = t.elapsed().as_secs_f64();
        println!(
            "buffer={size} {:.0} MB/s {}",
            len as f64 / secs / 1e6,
            d.sha256
        );
    }
    Ok(())
}
