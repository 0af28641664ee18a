//! The hashing core alone: SHA-256 (SHA-NI where the CPU has it) over 64 MiB
//! fed in buffers of 4 KiB to 64 MiB, and a cached file read and hashed at
//! several read sizes.
//!
//! `cargo bench -p custos-ingest --bench hasher`

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use custos_core::digest::MultiHasher;
use custos_ingest::hash_reader;

const TOTAL: usize = 64 * 1024 * 1024;

fn data() -> Vec<u8> {
    (0..TOTAL)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761) as u8)
        .collect()
}

fn buffer_sizes(c: &mut Criterion) {
    let data = data();
    let mut g = c.benchmark_group("sha256_buffer_size");
    g.throughput(Throughput::Bytes(TOTAL as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(4));
    for kib in [4usize, 64, 256, 1024, 16 * 1024, 64 * 1024] {
        let size = kib * 1024;
        g.bench_with_input(
            BenchmarkId::from_parameter(format!("{kib}KiB")),
            &size,
            |b, &size| {
                b.iter(|| {
                    let mut h = MultiHasher::sha256();
                    for chunk in data.chunks(size) {
                        h.update(chunk);
                    }
                    h.finalize()
                })
            },
        );
    }
    g.finish();
}

fn file_reads(c: &mut Criterion) {
    // A cached 64 MiB file read and hashed on one thread at several read
    // sizes: the choice behind DEFAULT_HASH_BUFFER.
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("segment.bin");
    std::fs::write(&path, data()).expect("writing the bench file");
    let mut g = c.benchmark_group("hash_file_read_size");
    g.throughput(Throughput::Bytes(TOTAL as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(4));
    for kib in [16usize, 64, 256, 1024] {
        g.bench_with_input(
            BenchmarkId::from_parameter(format!("{kib}KiB")),
            &kib,
            |b, &kib| {
                b.iter(|| {
                    let f = std::fs::File::open(&path).expect("open");
                    hash_reader(f, MultiHasher::sha256(), kib * 1024).expect("read")
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, buffer_sizes, file_reads);
criterion_main!(benches);
