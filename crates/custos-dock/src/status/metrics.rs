//! The dock's Prometheus metrics, served at `GET /metrics` of the status
//! endpoint: bytes ingested, segments by outcome and by state, time per
//! segment, the outbox's depth and the age of its oldest event, store and
//! ledger errors, per slot where a slot is concerned.
//!
//! Counters live in one private registry per board; gauges that describe
//! "now" (slot states, segments of the current docking, the outbox) are set
//! from the board's snapshot at each scrape, so they cannot drift from what
//! the page shows. Labels are bounded sets: slot names (configured
//! directories and USB ports), states, outcomes — never a recorder, segment
//! or officer id.

use std::time::Duration;

use prometheus::{
    exponential_buckets, Encoder as _, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use super::{DockStatus, SlotState};

/// The dock's metrics (see the module documentation).
#[derive(Debug, Clone)]
pub struct DockMetrics {
    registry: Registry,
    bytes_ingested: IntCounterVec,
    segments: IntCounterVec,
    ingest_seconds: HistogramVec,
    store_errors: IntCounterVec,
    ledger_errors: IntCounter,
    outbox_events: IntGauge,
    outbox_oldest: IntGauge,
    slot_state: IntGaugeVec,
    docking_segments: IntGaugeVec,
    safe_to_undock: IntGaugeVec,
}

impl Default for DockMetrics {
    fn default() -> Self {
        DockMetrics::new()
    }
}

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("INVARIANT: valid metric")
}

fn gauge_vec(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    IntGaugeVec::new(Opts::new(name, help), labels).expect("INVARIANT: valid metric")
}

impl DockMetrics {
    /// A fresh set in a private registry.
    pub fn new() -> DockMetrics {
        // INVARIANT: the names, help texts and buckets are constants that
        // prometheus accepts, registered once in a fresh registry.
        let registry = Registry::new();
        let m = DockMetrics {
            bytes_ingested: counter_vec(
                "custos_dock_bytes_ingested_total",
                "Bytes of footage stored by this dock (uploads finished this run).",
                &["slot"],
            ),
            segments: counter_vec(
                "custos_dock_segments_total",
                "Segments whose docking ended, by outcome: done (verified, acknowledged, wiped or kept) or failed (left on the recorder).",
                &["slot", "outcome"],
            ),
            ingest_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "custos_dock_ingest_seconds",
                    "Time from a segment's first step in a docking to done.",
                )
                .buckets(exponential_buckets(0.25, 2.0, 14).expect("INVARIANT: valid buckets")),
                &["slot"],
            )
            .expect("INVARIANT: valid metric"),
            store_errors: counter_vec(
                "custos_dock_store_errors_total",
                "Failed or refused writes to the object store.",
                &["slot"],
            ),
            ledger_errors: IntCounter::new(
                "custos_dock_ledger_errors_total",
                "Failed deliveries of custody events to the ledger (each attempt).",
            )
            .expect("INVARIANT: valid metric"),
            outbox_events: IntGauge::new(
                "custos_dock_outbox_events",
                "Custody events kept in the dock's journal, waiting for the ledger.",
            )
            .expect("INVARIANT: valid metric"),
            outbox_oldest: IntGauge::new(
                "custos_dock_outbox_oldest_event_age_seconds",
                "Age of the oldest event waiting for the ledger (0 when none waits).",
            )
            .expect("INVARIANT: valid metric"),
            slot_state: gauge_vec(
                "custos_dock_slot_state",
                "1 for the state each slot is in, 0 for the others.",
                &["slot", "state"],
            ),
            docking_segments: gauge_vec(
                "custos_dock_docking_segments",
                "Segments of the recorder docked in each slot now, by state: done, failed or pending.",
                &["slot", "state"],
            ),
            safe_to_undock: gauge_vec(
                "custos_dock_safe_to_undock",
                "1 when the recorder in the slot may be taken out.",
                &["slot"],
            ),
            registry,
        };
        for c in [
            Box::new(m.bytes_ingested.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.segments.clone()),
            Box::new(m.ingest_seconds.clone()),
            Box::new(m.store_errors.clone()),
            Box::new(m.ledger_errors.clone()),
            Box::new(m.outbox_events.clone()),
            Box::new(m.outbox_oldest.clone()),
            Box::new(m.slot_state.clone()),
            Box::new(m.docking_segments.clone()),
            Box::new(m.safe_to_undock.clone()),
        ] {
            m.registry
                .register(c)
                .expect("INVARIANT: each metric registered once");
        }
        m
    }

    pub(super) fn bytes_ingested(&self, slot: &str, bytes: u64) {
        self.bytes_ingested.with_label_values(&[slot]).inc_by(bytes);
    }

    pub(super) fn segment_finished(&self, slot: &str, outcome: &str, took: Option<Duration>) {
        self.segments.with_label_values(&[slot, outcome]).inc();
        if let Some(t) = took {
            self.ingest_seconds
                .with_label_values(&[slot])
                .observe(t.as_secs_f64());
        }
    }

    pub(super) fn store_error(&self, slot: &str) {
        self.store_errors.with_label_values(&[slot]).inc();
    }

    /// One failed delivery to the ledger.
    pub fn ledger_error(&self) {
        self.ledger_errors.inc();
    }

    pub(super) fn outbox(&self, pending: usize, oldest: Option<Duration>) {
        self.outbox_events
            .set(i64::try_from(pending).unwrap_or(i64::MAX));
        self.outbox_oldest
            .set(oldest.map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)));
    }

    /// The text exposition of every metric, with the "now" gauges set from
    /// `status`.
    pub fn render(&self, status: &DockStatus) -> String {
        for s in &status.slots {
            let slot = s.slot.as_str();
            for st in SlotState::ALL {
                self.slot_state
                    .with_label_values(&[slot, st.as_str()])
                    .set(i64::from(st == s.state));
            }
            let pending = s
                .segments_total
                .saturating_sub(s.segments_done + s.segments_failed);
            for (state, n) in [
                ("done", s.segments_done),
                ("failed", s.segments_failed),
                ("pending", pending),
            ] {
                self.docking_segments
                    .with_label_values(&[slot, state])
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
            self.safe_to_undock
                .with_label_values(&[slot])
                .set(i64::from(s.safe_to_undock));
        }
        let mut out = Vec::new();
        // INVARIANT: encoding into a Vec cannot fail; the metric families
        // are well-formed (built above).
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("INVARIANT: text encoding into memory");
        String::from_utf8(out).unwrap_or_default()
    }
}
