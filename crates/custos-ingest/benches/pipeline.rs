//! The whole pipeline: a 64 MiB segment from memory, read, hashed and
//! stored with the default options, into the local filesystem store and
//! into a real Garage S3 node on loopback (started here; the bench fails
//! when `garage` is missing).
//!
//! `cargo bench -p custos-ingest --bench pipeline`

// The custody rules of clippy.toml are for production code: the bench deletes what each iteration wrote.
#![allow(clippy::disallowed_methods)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use custos_ingest::object_store::path::Path;
use custos_ingest::object_store::ObjectStoreExt;
use custos_ingest::{ingest_segment, IngestOptions, IngestStore, NoProgress};

const SIZE: usize = 64 * 1024 * 1024;

fn data() -> Vec<u8> {
    (0..SIZE)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761) as u8)
        .collect()
}

fn bench_store(c: &mut Criterion, name: &str, store: &IngestStore, rt: &tokio::runtime::Runtime) {
    let data = data();
    let opts = IngestOptions::default();
    let n = AtomicU64::new(0);
    let mut g = c.benchmark_group("ingest_64MiB");
    g.throughput(Throughput::Bytes(SIZE as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(8));
    g.bench_function(name, |b| {
        b.iter(|| {
            let key = Path::from(format!("bench/{}.mp4", n.fetch_add(1, Ordering::Relaxed)));
            rt.block_on(async {
                let out = ingest_segment(&data[..], store, &key, &opts, &NoProgress)
                    .await
                    .expect("ingest");
                // Keep the store small between iterations.
                store.object_store().delete(&key).await.expect("delete");
                out
            })
        })
    });
    g.finish();
}

fn pipeline(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let local = IngestStore::local(dir.path()).expect("local store");
    bench_store(c, "local_fs", &local, &rt);

    let garage = custos_testsupport::Garage::start()
        .unwrap_or_else(|e| panic!("the S3 bench needs a Garage node: {e:#}"));
    let s3 = IngestStore::s3(garage.s3_builder()).expect("Garage store");
    bench_store(c, "garage_s3", &s3, &rt);
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
