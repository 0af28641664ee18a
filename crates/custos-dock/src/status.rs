//! Slot status: for every slot, its state, bytes done of total, an ETA and
//! whether the officer may take the recorder — kept on a [`StatusBoard`]
//! that the ingest updates and that is read by the terminal display of
//! `custos dock run` and served as JSON on a local endpoint ([`serve`]).
//!
//! "Safe to undock" means the dock is done with the recorder: every
//! segment on it is verified in storage with its `segment.verified`
//! acknowledged by the ledger, and wiped (or kept, per policy). A recorder
//! unplugged earlier loses nothing — what is not verified stays on it — but
//! it has to come back.
//!
//! The endpoint listens on loopback only by default and serves nothing but
//! this status: no footage, no keys, no tokens.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

/// What a slot is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotState {
    /// Nothing docked.
    Empty,
    /// Identifying, unlocking, waiting for the volume.
    Attaching,
    /// Reading, uploading, verifying, wiping.
    Ingesting,
    /// Stored and verified, waiting for the ledger's acknowledgements.
    WaitingForLedger,
    /// Finished: every segment is done.
    Done,
    /// Finished with segments left unfinished (see `message`).
    Incomplete,
    /// The recorder could not be attached (see `message`).
    Error,
}

/// One slot's status, as served.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlotStatus {
    /// The slot's name.
    pub slot: String,
    /// Its state.
    pub state: SlotState,
    /// The recorder in it.
    pub recorder_id: Option<String>,
    /// The recorder's profile.
    pub profile: Option<String>,
    /// Segments found on the recorder (and unfinished ones from earlier).
    pub segments_total: usize,
    /// Segments finished.
    pub segments_done: usize,
    /// Segments that failed this time (they stay on the recorder).
    pub segments_failed: usize,
    /// Bytes of all segments.
    pub bytes_total: u64,
    /// Bytes stored.
    pub bytes_done: u64,
    /// Seconds to go at the current rate.
    pub eta_seconds: Option<u64>,
    /// The officer may take the recorder.
    pub safe_to_undock: bool,
    /// The latest problem or note.
    pub message: Option<String>,
    /// Seconds since the recorder was docked.
    pub elapsed_seconds: u64,
    /// Seconds from docking to "safe to undock", once it was.
    pub safe_after_seconds: Option<f64>,
}

#[derive(Debug)]
struct Slot {
    status: SlotStatus,
    started: Instant,
    /// Bytes of finished segments.
    finished_bytes: u64,
    /// Bytes done of segments in progress.
    in_flight: BTreeMap<String, u64>,
    /// Bytes that were already stored when this docking began (not counted
    /// in the rate).
    bytes_at_start: u64,
    /// When the slot became safe to undock, from its docking.
    safe_after: Option<std::time::Duration>,
}

/// The status of every slot (see the module documentation). Shared as an `Arc`.
#[derive(Debug, Default)]
pub struct StatusBoard {
    dock_id: String,
    slots: Mutex<BTreeMap<String, Slot>>,
    /// Outbox health, set by whoever owns the outbox.
    ledger: Mutex<(usize, Option<String>)>,
}

/// The whole status document.
#[derive(Debug, Clone, Serialize)]
pub struct DockStatus {
    /// The station id.
    pub dock_id: String,
    /// Every slot.
    pub slots: Vec<SlotStatus>,
    /// Events waiting for the ledger.
    pub events_pending: usize,
    /// Why events wait, if the ledger is unreachable.
    pub ledger_trouble: Option<String>,
}

impl StatusBoard {
    /// A board for the dock `dock_id`.
    pub fn new(dock_id: &str) -> StatusBoard {
        StatusBoard {
            dock_id: dock_id.to_owned(),
            ..StatusBoard::default()
        }
    }

    fn with<T>(&self, slot: &str, f: impl FnOnce(&mut Slot) -> T) -> T {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let s = slots.entry(slot.to_owned()).or_insert_with(|| Slot {
            status: SlotStatus {
                slot: slot.to_owned(),
                state: SlotState::Empty,
                recorder_id: None,
                profile: None,
                segments_total: 0,
                segments_done: 0,
                segments_failed: 0,
                bytes_total: 0,
                bytes_done: 0,
                eta_seconds: None,
                safe_to_undock: false,
                message: None,
                elapsed_seconds: 0,
                safe_after_seconds: None,
            },
            started: Instant::now(),
            finished_bytes: 0,
            in_flight: BTreeMap::new(),
            bytes_at_start: 0,
            safe_after: None,
        });
        f(s)
    }

    /// A slot now holds nothing (or was just configured).
    pub fn empty(&self, slot: &str) {
        self.with(slot, |s| {
            s.status.state = SlotState::Empty;
            s.status.recorder_id = None;
            s.status.profile = None;
            s.status.safe_to_undock = false;
            s.status.message = None;
            s.status.segments_total = 0;
            s.status.segments_done = 0;
            s.status.segments_failed = 0;
            s.status.bytes_total = 0;
            s.status.bytes_done = 0;
            s.status.eta_seconds = None;
            s.finished_bytes = 0;
            s.in_flight.clear();
            s.safe_after = None;
        });
    }

    /// A recorder was plugged into `slot`.
    pub fn attaching(&self, slot: &str) {
        self.empty(slot);
        self.with(slot, |s| {
            s.status.state = SlotState::Attaching;
            s.started = Instant::now();
        });
    }

    /// The recorder in `slot` is identified and its segments counted.
    pub fn ingesting(
        &self,
        slot: &str,
        recorder: &str,
        profile: &str,
        segments: usize,
        bytes: u64,
    ) {
        self.with(slot, |s| {
            s.status.state = SlotState::Ingesting;
            s.status.recorder_id = Some(recorder.to_owned());
            s.status.profile = Some(profile.to_owned());
            s.status.segments_total = segments;
            s.status.bytes_total = bytes;
        });
    }

    /// A segment was already stored before this docking (resumed).
    pub fn already_stored(&self, slot: &str, bytes: u64) {
        self.with(slot, |s| {
            s.finished_bytes += bytes;
            s.bytes_at_start += bytes;
        });
    }

    /// Progress of one segment's upload.
    pub fn progress(&self, slot: &str, segment: &str, bytes: u64) {
        self.with(slot, |s| {
            s.in_flight.insert(segment.to_owned(), bytes);
        });
    }

    /// A segment's upload finished (or was skipped as already stored).
    pub fn stored(&self, slot: &str, segment: &str, bytes: u64) {
        self.with(slot, |s| {
            s.in_flight.remove(segment);
            s.finished_bytes += bytes;
        });
    }

    /// A segment is finished.
    pub fn segment_done(&self, slot: &str) {
        self.with(slot, |s| s.status.segments_done += 1);
    }

    /// A segment failed this time.
    pub fn segment_failed(&self, slot: &str, why: &str) {
        self.with(slot, |s| {
            s.status.segments_failed += 1;
            s.status.message = Some(why.to_owned());
        });
    }

    /// A note for the slot.
    pub fn note(&self, slot: &str, message: &str) {
        self.with(slot, |s| s.status.message = Some(message.to_owned()));
    }

    /// Set the slot's state.
    pub fn state(&self, slot: &str, state: SlotState) {
        self.with(slot, |s| {
            s.status.state = state;
            let safe = state == SlotState::Done;
            if safe && s.safe_after.is_none() {
                s.safe_after = Some(s.started.elapsed());
            }
            s.status.safe_to_undock = safe;
        });
    }

    /// Attaching failed.
    pub fn error(&self, slot: &str, message: &str) {
        self.with(slot, |s| {
            s.status.state = SlotState::Error;
            s.status.message = Some(message.to_owned());
            s.status.safe_to_undock = false;
        });
    }

    /// How long after docking the slot became safe to undock, if it did.
    pub fn safe_after(&self, slot: &str) -> Option<std::time::Duration> {
        self.with(slot, |s| s.safe_after)
    }

    /// Record the outbox's health.
    pub fn set_ledger(&self, pending: usize, trouble: Option<String>) {
        *self.ledger.lock().unwrap_or_else(|p| p.into_inner()) = (pending, trouble);
    }

    /// One slot's status now.
    pub fn slot(&self, slot: &str) -> SlotStatus {
        self.with(slot, |s| snapshot(s))
    }

    /// Every slot's status now.
    pub fn snapshot(&self) -> DockStatus {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let (pending, trouble) = self
            .ledger
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        DockStatus {
            dock_id: self.dock_id.clone(),
            slots: slots.values().map(snapshot).collect(),
            events_pending: pending,
            ledger_trouble: trouble,
        }
    }
}

fn snapshot(s: &Slot) -> SlotStatus {
    let mut st = s.status.clone();
    let done = (s.finished_bytes + s.in_flight.values().sum::<u64>())
        .min(st.bytes_total.max(s.finished_bytes));
    st.bytes_done = done;
    let elapsed = s.started.elapsed();
    st.elapsed_seconds = elapsed.as_secs();
    st.safe_after_seconds = s.safe_after.map(|d| d.as_secs_f64());
    let moved = done.saturating_sub(s.bytes_at_start);
    st.eta_seconds = match st.state {
        SlotState::Ingesting if moved > 0 && elapsed.as_secs_f64() > 0.5 => {
            let rate = moved as f64 / elapsed.as_secs_f64();
            Some((st.bytes_total.saturating_sub(done) as f64 / rate).ceil() as u64)
        }
        SlotState::Done | SlotState::WaitingForLedger => Some(0),
        _ => None,
    };
    st
}

/// The router of the status endpoint: `GET /status` (JSON, every slot) and
/// `GET /healthz`.
pub fn router(board: Arc<StatusBoard>) -> Router {
    Router::new()
        .route("/status", get(status_json))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(board)
}

async fn status_json(State(board): State<Arc<StatusBoard>>) -> Json<DockStatus> {
    Json(board.snapshot())
}

/// Serve the status endpoint on `listen` until `stop`; returns the bound
/// address once listening.
pub async fn serve(
    board: Arc<StatusBoard>,
    listen: &str,
    stop: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let app = router(board);
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "the status endpoint stopped");
        }
    });
    Ok((addr, task))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_becomes_safe_only_when_done() {
        let b = StatusBoard::new("dock-1");
        b.attaching("s1");
        b.ingesting("s1", "R1", "simulated", 2, 200);
        b.progress("s1", "a", 50);
        let s = b.slot("s1");
        assert_eq!(
            (s.bytes_done, s.bytes_total, s.safe_to_undock),
            (50, 200, false)
        );
        b.stored("s1", "a", 100);
        b.segment_done("s1");
        b.state("s1", SlotState::WaitingForLedger);
        assert!(!b.slot("s1").safe_to_undock);
        b.stored("s1", "b", 100);
        b.segment_done("s1");
        b.state("s1", SlotState::Done);
        let s = b.slot("s1");
        assert!(s.safe_to_undock);
        assert_eq!(
            (s.bytes_done, s.segments_done, s.eta_seconds),
            (200, 2, Some(0))
        );
        assert!(b.safe_after("s1").is_some());
        let doc = serde_json::to_value(b.snapshot()).unwrap();
        assert_eq!(doc["slots"][0]["state"], "done");
        assert_eq!(doc["slots"][0]["safe_to_undock"], true);
    }
}
