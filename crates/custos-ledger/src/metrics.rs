//! The ledger's Prometheus metrics, served at `GET /metrics`.
//!
//! One private [`prometheus::Registry`] per ledger (not the process-global
//! one), so that several ledgers in one test process do not share counters.
//! Names follow Prometheus conventions: `_total` counters, `_seconds`
//! histograms, base units.
//!
//! Metrics must never carry a token, a subject or any other per-request
//! value as a label: labels are bounded sets (route templates, results).

use prometheus::{
    exponential_buckets, Encoder as _, Histogram, HistogramOpts, HistogramVec, IntCounterVec,
    IntGauge, Opts, Registry, TextEncoder,
};

/// The ledger's metrics.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// Appends by result: `new`, `duplicate`, `rejected`, `failed`.
    pub appends: IntCounterVec,
    /// Entries per written batch.
    pub batch_size: Histogram,
    /// Time to write and flush (fsync) one batch.
    pub flush_seconds: Histogram,
    /// Time from an append entering the queue to its acknowledgement.
    pub append_seconds: Histogram,
    /// Signatures per batch verification of dock events.
    pub signature_batch_size: Histogram,
    /// Batch verifications by result (`passed`, `failed`).
    pub signature_batches: IntCounterVec,
    /// The published tree size.
    pub tree_size: IntGauge,
    /// HTTP requests by method (the standard ones by name, any other as
    /// `other`), route template and status code.
    pub http_requests: IntCounterVec,
    /// Time the server spent on each request, by method and route template.
    pub http_seconds: HistogramVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh set of metrics in a private registry.
    pub fn new() -> Metrics {
        // INVARIANT: the names, help texts and bucket lists below are
        // constants that prometheus accepts; registration in a fresh
        // registry cannot collide. A failure here is a programming error.
        let registry = Registry::new();
        let appends = IntCounterVec::new(
            Opts::new("custos_ledger_appends_total", "Appends by result."),
            &["result"],
        )
        .expect("INVARIANT: valid metric");
        let batch_size = Histogram::with_opts(
            HistogramOpts::new("custos_ledger_batch_size", "Entries per written batch.")
                .buckets(exponential_buckets(1.0, 2.0, 12).expect("INVARIANT: valid buckets")),
        )
        .expect("INVARIANT: valid metric");
        let flush_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "custos_ledger_flush_seconds",
                "Time to write and fsync one batch.",
            )
            .buckets(exponential_buckets(0.000_05, 2.0, 16).expect("INVARIANT: valid buckets")),
        )
        .expect("INVARIANT: valid metric");
        let append_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "custos_ledger_append_seconds",
                "Time from queueing an append to its durable acknowledgement.",
            )
            .buckets(exponential_buckets(0.000_05, 2.0, 16).expect("INVARIANT: valid buckets")),
        )
        .expect("INVARIANT: valid metric");
        let signature_batch_size = Histogram::with_opts(
            HistogramOpts::new(
                "custos_ledger_signature_batch_size",
                "Dock event signatures verified together in one batch.",
            )
            .buckets(exponential_buckets(2.0, 2.0, 8).expect("INVARIANT: valid buckets")),
        )
        .expect("INVARIANT: valid metric");
        let signature_batches = IntCounterVec::new(
            Opts::new(
                "custos_ledger_signature_batches_total",
                "Batch verifications of dock event signatures by result (a failed batch is re-checked one signature at a time).",
            ),
            &["result"],
        )
        .expect("INVARIANT: valid metric");
        let tree_size = IntGauge::new("custos_ledger_tree_size", "The published tree size.")
            .expect("INVARIANT: valid metric");
        let http_requests = IntCounterVec::new(
            Opts::new(
                "custos_ledger_http_requests_total",
                "HTTP requests by method, route and status.",
            ),
            &["method", "route", "status"],
        )
        .expect("INVARIANT: valid metric");
        let http_seconds = HistogramVec::new(
            HistogramOpts::new(
                "custos_ledger_http_request_seconds",
                "Time from a request's arrival to its response, by route.",
            )
            .buckets(exponential_buckets(0.000_025, 2.0, 18).expect("INVARIANT: valid buckets")),
            &["method", "route"],
        )
        .expect("INVARIANT: valid metric");
        for metric in [
            Box::new(appends.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(batch_size.clone()),
            Box::new(flush_seconds.clone()),
            Box::new(append_seconds.clone()),
            Box::new(signature_batch_size.clone()),
            Box::new(signature_batches.clone()),
            Box::new(tree_size.clone()),
            Box::new(http_requests.clone()),
            Box::new(http_seconds.clone()),
        ] {
            registry
                .register(metric)
                .expect("INVARIANT: distinct metric names");
        }
        Metrics {
            registry,
            appends,
            batch_size,
            flush_seconds,
            append_seconds,
            signature_batch_size,
            signature_batches,
            tree_size,
            http_requests,
            http_seconds,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // INVARIANT: the text encoder writes to a Vec, which cannot fail,
        // and our metric families are well-formed.
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("INVARIANT: encoding metrics into memory");
        String::from_utf8(out).expect("INVARIANT: the text format is UTF-8")
    }
}
