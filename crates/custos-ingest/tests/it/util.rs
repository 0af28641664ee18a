//! Helpers shared by the integration tests: generated segments, sources
//! that are slow, fail or count, stores, and what Garage says about
//! unfinished uploads.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use custos_ingest::object_store::path::Path;
use custos_ingest::object_store::{BackoffConfig, ObjectStore, ObjectStoreExt, RetryConfig};
use custos_ingest::{IngestOptions, IngestStore, RetryPolicy};
use custos_testsupport::Garage;
use tokio::io::{AsyncRead, ReadBuf};

/// `len` bytes of deterministic noise (xorshift), different per `seed`.
pub(crate) fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Options with a small part size (allowed for tests only) and quick retries.
pub(crate) fn small_parts(part_size: usize) -> IngestOptions {
    let mut o = IngestOptions::default();
    o.part_size = part_size;
    o.allow_small_parts_for_tests = true;
    o.retry = RetryPolicy::new(3, Duration::from_millis(20), Duration::from_millis(100));
    o
}

/// The bytes stored at `key`, or `None` when there is no object.
pub(crate) async fn stored(store: &IngestStore, key: &Path) -> Option<Vec<u8>> {
    match store.object_store().get(key).await {
        Ok(r) => Some(r.bytes().await.expect("reading the object body").to_vec()),
        Err(custos_ingest::object_store::Error::NotFound { .. }) => None,
        Err(e) => panic!("reading {key}: {e}"),
    }
}

/// A Garage store through the low-level multipart interface with SHA-256
/// checksums, whose client gives up quickly when the server is down.
pub(crate) fn garage_store(g: &Garage) -> IngestStore {
    let retry = RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(200),
            base: 2.0,
        },
        max_retries: 1,
        retry_timeout: Duration::from_secs(3),
    };
    IngestStore::s3(g.s3_builder().with_retry(retry)).expect("building the Garage store")
}

/// The plain `Arc<dyn ObjectStore>` the test-support crate hands out
/// (high-level multipart interface, no checksums).
pub(crate) fn garage_plain(g: &Garage) -> Arc<dyn ObjectStore> {
    g.object_store().expect("building the Garage object store")
}

/// Start Garage, or fail the test with the harness's message.
pub(crate) fn garage() -> Garage {
    match Garage::start() {
        Ok(g) => g,
        Err(e) => panic!("this test needs a Garage S3 node: {e:#}"),
    }
}

/// Unfinished multipart uploads in the node's bucket, as the `garage` CLI
/// reports them (`Unfinished uploads: N multipart uploads`, a line Garage
/// prints only when N > 0).
pub(crate) fn unfinished_uploads(g: &Garage) -> u64 {
    let bin = custos_testsupport::garage_binary().expect("garage binary");
    let out = std::process::Command::new(bin)
        .arg("-c")
        .arg(g.dir().join("garage.toml"))
        .args(["bucket", "info", g.bucket()])
        .env("RUST_LOG", "warn")
        .output()
        .expect("running garage bucket info");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "garage bucket info failed: {text}");
    // The format must be the one understood here, or a count of 0 would
    // prove nothing.
    assert!(
        text.lines().any(|l| l.trim_start().starts_with("Objects:")),
        "unexpected `garage bucket info` output:\n{text}"
    );
    for line in text.lines() {
        if let Some(rest) = line.trim_start().strip_prefix("Unfinished uploads:") {
            if rest.contains("multipart") {
                return rest
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("cannot read the upload count in {line:?}"));
            }
        }
    }
    0
}

/// Wait (up to 10 s) until Garage reports no unfinished multipart upload.
pub(crate) async fn wait_no_unfinished_uploads(g: &Garage) {
    for _ in 0..100 {
        if unfinished_uploads(g) == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "Garage still has {} unfinished multipart uploads",
        unfinished_uploads(g)
    );
}

/// A source that hands out `data` in `chunk`-byte reads, sleeping `delay`
/// before each, and fails with an I/O error once `fail_at` bytes have been
/// handed out (if set). Counts what it handed out.
pub(crate) struct TestSource {
    data: Bytes,
    pos: usize,
    chunk: usize,
    delay: Duration,
    fail_at: Option<usize>,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Bytes handed out so far, shared with the test.
    pub served: Arc<AtomicU64>,
    /// Sources between their first read and their end, shared across
    /// sources of one test (for concurrency limits).
    pub active: Option<(Arc<AtomicUsize>, Arc<AtomicUsize>)>,
    started: bool,
    ended: bool,
}

impl TestSource {
    pub(crate) fn new(data: Vec<u8>) -> Self {
        TestSource {
            data: Bytes::from(data),
            pos: 0,
            chunk: 64 * 1024,
            delay: Duration::ZERO,
            fail_at: None,
            sleep: None,
            served: Arc::new(AtomicU64::new(0)),
            active: None,
            started: false,
            ended: false,
        }
    }

    pub(crate) fn slow(mut self, chunk: usize, delay: Duration) -> Self {
        self.chunk = chunk;
        self.delay = delay;
        self
    }

    pub(crate) fn failing_at(mut self, at: usize) -> Self {
        self.fail_at = Some(at);
        self
    }

    /// Track concurrency: `now` counts active sources, `max` the peak.
    pub(crate) fn tracked(mut self, now: Arc<AtomicUsize>, max: Arc<AtomicUsize>) -> Self {
        self.active = Some((now, max));
        self
    }

    fn end(&mut self) {
        if !self.ended {
            self.ended = true;
            if let Some((now, _)) = &self.active {
                now.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}

impl AsyncRead for TestSource {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.started {
            this.started = true;
            if let Some((now, max)) = &this.active {
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                max.fetch_max(n, Ordering::SeqCst);
            }
        }
        if !this.delay.is_zero() {
            let delay = this.delay;
            let sleep = this
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(delay)));
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.sleep = None;
        }
        if let Some(at) = this.fail_at {
            if this.pos >= at {
                this.end();
                return Poll::Ready(Err(io::Error::other("recorder unplugged (test)")));
            }
        }
        let mut end = (this.pos + this.chunk).min(this.data.len());
        if let Some(at) = this.fail_at {
            end = end.min(at.max(this.pos));
        }
        let n = (end - this.pos).min(buf.remaining());
        buf.put_slice(&this.data[this.pos..this.pos + n]);
        this.pos += n;
        this.served.fetch_add(n as u64, Ordering::SeqCst);
        if n == 0 || this.pos == this.data.len() {
            this.end();
        }
        Poll::Ready(Ok(()))
    }
}

use std::future::Future as _;
