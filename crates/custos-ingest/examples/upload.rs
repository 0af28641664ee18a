//! Ingest one file into a store, as the dock does, and report the figures:
//! the upload half of `benches/compare-upload.sh` and the peak-memory check.
//!
//! ```text
//! cargo run --release -p custos-ingest --example upload -- \
//!     --url s3://bucket --key rec/segment.mp4 [--part-size BYTES] \
//!     [--in-flight N] [--sm3] [--verify] [--progress] FILE|-
//! ```
//!
//! `--url` is a Custos `[storage] url`: `file:///dir`, `s3://bucket[/prefix]`
//! (credentials and endpoint from the `AWS_*` environment variables) or
//! `memory://`. Prints one line of figures on standard output.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use custos_ingest::object_store::path::Path;
use custos_ingest::{
    ingest_file, ingest_segment, verify_object, IngestOptions, IngestStore, NoProgress, Progress,
    ProgressSink, VerifyMode,
};

const USAGE: &str = "usage: upload --url URL --key KEY [--part-size BYTES] [--in-flight N] [--sm3] [--verify] [--progress] FILE|-";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("upload: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> anyhow::Result<()> {
    let mut url = None;
    let mut key = None;
    let mut file = None;
    let mut opts = IngestOptions::default();
    let (mut verify, mut progress) = (false, false);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| anyhow::anyhow!("{a} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--url" => url = Some(value()?),
            "--key" => key = Some(value()?),
            "--part-size" => opts.part_size = value()?.parse()?,
            "--in-flight" => opts.parts_in_flight = value()?.parse()?,
            "--sm3" => opts.with_sm3 = true,
            "--verify" => verify = true,
            "--progress" => progress = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            _ if file.is_none() => file = Some(a),
            _ => anyhow::bail!("unexpected argument {a:?}\n{USAGE}"),
        }
    }
    let (Some(url), Some(key), Some(file)) = (url, key, file) else {
        anyhow::bail!("{USAGE}");
    };
    let store = IngestStore::from_url(&url)?;
    let key = Path::parse(&key)?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let bar = progress.then(|| {
            let b = indicatif::ProgressBar::new(0);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .expect("valid template"),
            );
            b
        });
        let sink: Arc<dyn ProgressSink> = match &bar {
            Some(b) => {
                let b = b.clone();
                Arc::new(move |p: Progress| {
                    if let Some(t) = p.total {
                        b.set_length(t);
                    }
                    b.set_position(p.done());
                })
            }
            None => Arc::new(NoProgress),
        };
        let started = Instant::now();
        let out = if file == "-" {
            ingest_segment(tokio::io::stdin(), &store, &key, &opts, sink.as_ref()).await?
        } else {
            ingest_file(std::path::Path::new(&file), &store, &key, &opts, sink.as_ref()).await?
        };
        let secs = started.elapsed().as_secs_f64();
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        let t = out.timings;
        println!(
            "size={} {} parts={} already_present={} secs={:.3} MB/s={:.1} read={:.3} hash={:.3} upload={:.3} stalled={:.3}",
            out.size,
            out.digests.sha256,
            out.parts,
            out.already_present,
            secs,
            out.size as f64 / secs / 1e6,
            t.read.as_secs_f64(),
            t.hash.as_secs_f64(),
            t.upload.as_secs_f64(),
            t.stalled.as_secs_f64(),
        );
        if verify {
            let started = Instant::now();
            let v = verify_object(&store, &key, &out.digests, VerifyMode::ReadBack).await?;
            println!(
                "verified={:?} secs={:.3}",
                v.method,
                started.elapsed().as_secs_f64()
            );
        }
        Ok(())
    })
}
