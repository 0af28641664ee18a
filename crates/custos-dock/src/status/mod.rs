//! Slot status: for every slot, its state, progress, findings and whether
//! the officer may take the recorder — kept on a [`StatusBoard`] that the
//! docking updates, read by the terminal display of `custos dock run`, and
//! served by [`serve`] as a page for the station's screen, JSON and
//! Prometheus metrics.
//!
//! "Safe to undock" means the dock is done with the recorder: every
//! segment on it is verified in storage with its `segment.verified`
//! acknowledged by the ledger, and wiped (or kept) per policy. The board
//! shows it only when the docking finished with every segment final
//! ([`StatusBoard::state`] with [`SlotState::Done`]), never from counts. A
//! recorder taken out earlier loses nothing — what is not verified stays on
//! it — but the tile turns red ([`SlotState::Unplugged`]) until it comes
//! back.
//!
//! While a docking works, the slot's state is that of its least advanced
//! unfinished segment (copying, recording, verifying, waiting for the
//! ledger, wiping), so it only ever moves forward.
//!
//! The board never changes what the dock does: it is written by the
//! docking and read by everyone else. The endpoint serves nothing but this
//! status: no footage, no keys, no tokens, no forms.

mod metrics;
pub mod page;
mod serve;
pub mod watch;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use custos_core::wire::dock::{Alert, AlertKind, ClockNote, DockStatus, SlotState, SlotStatus};
pub use metrics::DockMetrics;
pub use serve::{router, serve};

/// What the board needs to know of the station's settings.
#[derive(Debug, Clone)]
pub struct BoardSettings {
    /// A busy slot without progress for this long is flagged stuck.
    pub stuck_after: Duration,
    /// Officer names by officer id (`[dock] roster`).
    pub roster: BTreeMap<String, String>,
}

impl Default for BoardSettings {
    fn default() -> Self {
        BoardSettings {
            stuck_after: Duration::from_secs(300),
            roster: BTreeMap::new(),
        }
    }
}

#[derive(Debug)]
struct Slot {
    status: SlotStatus,
    started: Instant,
    /// The docking's segments are being worked on (the state is derived
    /// from `steps`).
    working: bool,
    /// The least state shown while working.
    floor: SlotState,
    /// Unfinished segments and the state each is in.
    steps: BTreeMap<String, SlotState>,
    /// When each unfinished segment was first seen (for `ingest_seconds`).
    segment_started: BTreeMap<String, Instant>,
    /// Bytes of finished segments.
    finished_bytes: u64,
    /// Bytes done of segments in progress.
    in_flight: BTreeMap<String, u64>,
    /// Bytes that were already stored when this docking began (not counted
    /// in the rate).
    bytes_at_start: u64,
    /// When the slot became safe to undock, from its docking.
    safe_after: Option<Duration>,
    /// The last time anything moved.
    last_progress: Instant,
    damaged: BTreeSet<String>,
    late: BTreeSet<String>,
}

impl Slot {
    fn new(slot: &str) -> Slot {
        Slot {
            status: SlotStatus {
                slot: slot.to_owned(),
                state: SlotState::Empty,
                recorder_id: None,
                model: None,
                profile: None,
                officer_id: None,
                officer_name: None,
                segments_total: 0,
                segments_done: 0,
                segments_failed: 0,
                bytes_total: 0,
                bytes_done: 0,
                bytes_per_second: None,
                eta_seconds: None,
                safe_to_undock: false,
                clock: None,
                damaged: Vec::new(),
                late: Vec::new(),
                message: None,
                elapsed_seconds: 0,
                safe_after_seconds: None,
                stuck_seconds: None,
            },
            started: Instant::now(),
            working: false,
            floor: SlotState::Copying,
            steps: BTreeMap::new(),
            segment_started: BTreeMap::new(),
            finished_bytes: 0,
            in_flight: BTreeMap::new(),
            bytes_at_start: 0,
            safe_after: None,
            last_progress: Instant::now(),
            damaged: BTreeSet::new(),
            late: BTreeSet::new(),
        }
    }

    fn moved(&mut self) {
        self.last_progress = Instant::now();
    }

    /// The state shown: while working, the least advanced unfinished
    /// segment's, never behind what was shown before (a segment that
    /// finishes leaves the others, which are further on).
    fn shown_state(&self) -> SlotState {
        if self.working {
            let least = self.steps.values().min().copied().unwrap_or(self.floor);
            least.max(self.floor)
        } else {
            self.status.state
        }
    }

    /// Remember what is shown now, so that it never goes back.
    fn hold_floor(&mut self) {
        self.floor = self.shown_state();
    }
}

/// The outbox's health, as last reported.
#[derive(Debug, Default, Clone)]
struct OutboxHealth {
    pending: usize,
    oldest_age: Option<Duration>,
    trouble: Option<String>,
    trouble_since: Option<Instant>,
}

/// The status of every slot (see the module documentation). Shared as an `Arc`.
#[derive(Debug)]
pub struct StatusBoard {
    dock_id: String,
    settings: BoardSettings,
    slots: Mutex<BTreeMap<String, Slot>>,
    outbox: Mutex<OutboxHealth>,
    /// Station-wide troubles other than the ledger's, with their start.
    troubles: Mutex<BTreeMap<AlertKind, (String, Instant)>>,
    metrics: DockMetrics,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl StatusBoard {
    /// A board for the dock `dock_id` with default settings.
    pub fn new(dock_id: &str) -> StatusBoard {
        StatusBoard::with_settings(dock_id, BoardSettings::default())
    }

    /// A board for the dock `dock_id`.
    pub fn with_settings(dock_id: &str, settings: BoardSettings) -> StatusBoard {
        StatusBoard {
            dock_id: dock_id.to_owned(),
            settings,
            slots: Mutex::new(BTreeMap::new()),
            outbox: Mutex::new(OutboxHealth::default()),
            troubles: Mutex::new(BTreeMap::new()),
            metrics: DockMetrics::new(),
        }
    }

    /// The station's id.
    pub fn dock_id(&self) -> &str {
        &self.dock_id
    }

    /// The board's counters, for `/metrics`.
    pub fn metrics(&self) -> &DockMetrics {
        &self.metrics
    }

    fn with<T>(&self, slot: &str, f: impl FnOnce(&mut Slot) -> T) -> T {
        let mut slots = lock(&self.slots);
        let s = slots
            .entry(slot.to_owned())
            .or_insert_with(|| Slot::new(slot));
        f(s)
    }

    /// A slot now holds nothing (or was just configured).
    pub fn empty(&self, slot: &str) {
        self.with(slot, |s| {
            let fresh = Slot::new(slot);
            *s = fresh;
        });
    }

    /// A recorder was plugged into `slot`.
    pub fn attaching(&self, slot: &str) {
        self.empty(slot);
        self.with(slot, |s| {
            s.status.state = SlotState::Attaching;
            s.started = Instant::now();
            s.moved();
        });
    }

    /// The recorder in `slot` is identified and its segments counted; the
    /// docking's work begins.
    pub fn ingesting(&self, slot: &str, recorder: &Recorder<'_>, segments: usize, bytes: u64) {
        let name = recorder
            .officer_id
            .and_then(|o| self.settings.roster.get(o))
            .cloned();
        self.with(slot, |s| {
            s.working = true;
            s.status.recorder_id = Some(recorder.id.to_owned());
            s.status.model = recorder.model.map(str::to_owned);
            s.status.profile = Some(recorder.profile.to_owned());
            s.status.officer_id = recorder.officer_id.map(str::to_owned);
            s.status.officer_name = name;
            s.status.segments_total = segments;
            s.status.bytes_total = bytes;
            s.moved();
        });
    }

    /// The officer a segment's file names give, when the recorder itself
    /// named none (the first one found is shown).
    pub fn officer(&self, slot: &str, officer_id: &str) {
        let name = self.settings.roster.get(officer_id).cloned();
        self.with(slot, |s| {
            if s.status.officer_id.is_none() {
                s.status.officer_id = Some(officer_id.to_owned());
                s.status.officer_name = name;
            }
        });
    }

    /// The recorder's clock as found, and whether the dock set it.
    pub fn clock(&self, slot: &str, offset_ms: i64, set: bool) {
        self.with(slot, |s| {
            s.status.clock = Some(ClockNote { offset_ms, set })
        });
    }

    /// A segment was already stored before this docking (resumed).
    pub fn already_stored(&self, slot: &str, bytes: u64) {
        self.with(slot, |s| {
            s.finished_bytes += bytes;
            s.bytes_at_start += bytes;
        });
    }

    /// Where an unfinished segment is (`None`: finished, or given up).
    pub fn segment_state(&self, slot: &str, segment: &str, state: Option<SlotState>) {
        self.with(slot, |s| match state {
            Some(st) => {
                s.segment_started
                    .entry(segment.to_owned())
                    .or_insert_with(Instant::now);
                if s.steps.insert(segment.to_owned(), st) != Some(st) {
                    s.moved();
                }
                s.hold_floor();
            }
            None => {
                s.hold_floor();
                s.steps.remove(segment);
            }
        });
    }

    /// Progress of one segment's upload.
    pub fn progress(&self, slot: &str, segment: &str, bytes: u64) {
        self.with(slot, |s| {
            if s.in_flight.insert(segment.to_owned(), bytes) != Some(bytes) {
                s.moved();
            }
        });
    }

    /// A segment's upload finished.
    pub fn stored(&self, slot: &str, segment: &str, bytes: u64) {
        self.with(slot, |s| {
            s.in_flight.remove(segment);
            s.finished_bytes += bytes;
            s.moved();
        });
        self.metrics.bytes_ingested(slot, bytes);
        self.clear_trouble(AlertKind::StoreRefusesWrites);
    }

    /// A segment was found damaged (it is ingested and flagged).
    pub fn damaged(&self, slot: &str, original_name: &str) {
        self.with(slot, |s| s.damaged.insert(original_name.to_owned()));
    }

    /// A segment was ingested late.
    pub fn late(&self, slot: &str, original_name: &str) {
        self.with(slot, |s| s.late.insert(original_name.to_owned()));
    }

    /// A segment is finished.
    pub fn segment_done(&self, slot: &str, segment: &str) {
        let took = self.with(slot, |s| {
            s.status.segments_done += 1;
            s.hold_floor();
            s.steps.remove(segment);
            s.moved();
            s.segment_started.remove(segment).map(|t| t.elapsed())
        });
        self.metrics.segment_finished(slot, "done", took);
    }

    /// A segment failed this time.
    pub fn segment_failed(&self, slot: &str, segment: &str, why: &str) {
        self.with(slot, |s| {
            s.status.segments_failed += 1;
            s.status.message = Some(why.to_owned());
            s.hold_floor();
            s.steps.remove(segment);
            s.segment_started.remove(segment);
            s.moved();
        });
        self.metrics.segment_finished(slot, "failed", None);
    }

    /// The store failed or refused a write for `slot` (the step is
    /// retried or left for the next docking).
    pub fn store_error(&self, slot: &str, why: &str) {
        self.metrics.store_error(slot);
        let mut t = lock(&self.troubles);
        let since = t
            .get(&AlertKind::StoreRefusesWrites)
            .map(|(_, since)| *since)
            .unwrap_or_else(Instant::now);
        t.insert(
            AlertKind::StoreRefusesWrites,
            (format!("{slot}: {why}"), since),
        );
    }

    /// A disk the dock writes to is nearly full (`None`: no longer).
    pub fn disk(&self, trouble: Option<String>) {
        match trouble {
            Some(why) => {
                let mut t = lock(&self.troubles);
                let since = t
                    .get(&AlertKind::DiskNearlyFull)
                    .map(|(_, since)| *since)
                    .unwrap_or_else(Instant::now);
                t.insert(AlertKind::DiskNearlyFull, (why, since));
            }
            None => self.clear_trouble(AlertKind::DiskNearlyFull),
        }
    }

    fn clear_trouble(&self, kind: AlertKind) {
        lock(&self.troubles).remove(&kind);
    }

    /// A note for the slot.
    pub fn note(&self, slot: &str, message: &str) {
        self.with(slot, |s| s.status.message = Some(message.to_owned()));
    }

    /// The docking's work ended with `state` (done or incomplete).
    pub fn state(&self, slot: &str, state: SlotState) {
        self.with(slot, |s| {
            s.working = false;
            s.steps.clear();
            s.status.state = state;
            s.moved();
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
            s.working = false;
            s.status.state = SlotState::Error;
            s.status.message = Some(message.to_owned());
            s.status.safe_to_undock = false;
            s.moved();
        });
    }

    /// The recorder left `slot`. After a finished docking (or none) the
    /// slot is empty; taken out before that, it shows
    /// [`SlotState::Unplugged`] with the recorder's id until a recorder
    /// is docked there again.
    pub fn left(&self, slot: &str) {
        let finished = self.with(slot, |s| {
            matches!(s.shown_state(), SlotState::Done | SlotState::Empty)
                || s.status.recorder_id.is_none()
        });
        if finished {
            self.empty(slot);
            return;
        }
        self.with(slot, |s| {
            s.working = false;
            s.steps.clear();
            s.in_flight.clear();
            s.status.state = SlotState::Unplugged;
            s.status.safe_to_undock = false;
            s.moved();
        });
    }

    /// How long after docking the slot became safe to undock, if it did.
    pub fn safe_after(&self, slot: &str) -> Option<Duration> {
        self.with(slot, |s| s.safe_after)
    }

    /// Record the outbox's health.
    pub fn set_ledger(
        &self,
        pending: usize,
        oldest_age: Option<Duration>,
        trouble: Option<String>,
    ) {
        let mut o = lock(&self.outbox);
        o.trouble_since = match (&trouble, o.trouble_since) {
            (Some(_), Some(since)) => Some(since),
            (Some(_), None) => Some(Instant::now()),
            (None, _) => None,
        };
        o.pending = pending;
        o.oldest_age = oldest_age;
        o.trouble = trouble;
        self.metrics.outbox(pending, oldest_age);
    }

    /// One slot's status now.
    pub fn slot(&self, slot: &str) -> SlotStatus {
        let stuck_after = self.settings.stuck_after;
        let ledger_trouble = lock(&self.outbox).trouble.is_some();
        self.with(slot, |s| snapshot(s, stuck_after, ledger_trouble))
    }

    /// Every slot's status now, with the alerts.
    pub fn snapshot(&self) -> DockStatus {
        let outbox = lock(&self.outbox).clone();
        let stuck_after = self.settings.stuck_after;
        let slots: Vec<SlotStatus> = lock(&self.slots)
            .values()
            .map(|s| snapshot(s, stuck_after, outbox.trouble.is_some()))
            .collect();
        let mut alerts = Vec::new();
        for s in &slots {
            if let Some(secs) = s.stuck_seconds {
                alerts.push(Alert {
                    kind: AlertKind::SlotStuck,
                    slot: Some(s.slot.clone()),
                    message: format!(
                        "no progress for {secs} s while {}",
                        s.state.as_str().replace('_', " ")
                    ),
                    since_seconds: secs,
                });
            }
        }
        if let (Some(why), Some(since)) = (&outbox.trouble, outbox.trouble_since) {
            alerts.push(Alert {
                kind: AlertKind::LedgerUnreachable,
                slot: None,
                message: why.clone(),
                since_seconds: since.elapsed().as_secs(),
            });
        }
        for (kind, (why, since)) in lock(&self.troubles).iter() {
            alerts.push(Alert {
                kind: *kind,
                slot: None,
                message: why.clone(),
                since_seconds: since.elapsed().as_secs(),
            });
        }
        DockStatus {
            dock_id: self.dock_id.clone(),
            slots,
            events_pending: outbox.pending,
            oldest_event_age_seconds: outbox.oldest_age.map(|d| d.as_secs()),
            ledger_trouble: outbox.trouble,
            alerts,
        }
    }
}

/// Who a docked recorder is, for [`StatusBoard::ingesting`].
#[derive(Debug, Clone, Copy)]
pub struct Recorder<'a> {
    /// Its id.
    pub id: &'a str,
    /// Its model.
    pub model: Option<&'a str>,
    /// Its firmware profile.
    pub profile: &'a str,
    /// The officer it names.
    pub officer_id: Option<&'a str>,
}

fn snapshot(s: &Slot, stuck_after: Duration, ledger_trouble: bool) -> SlotStatus {
    let mut st = s.status.clone();
    st.state = s.shown_state();
    let done = (s.finished_bytes + s.in_flight.values().sum::<u64>())
        .min(st.bytes_total.max(s.finished_bytes));
    st.bytes_done = done;
    let elapsed = s.started.elapsed();
    st.elapsed_seconds = elapsed.as_secs();
    st.safe_after_seconds = s.safe_after.map(|d| d.as_secs_f64());
    st.damaged = s.damaged.iter().cloned().collect();
    st.late = s.late.iter().cloned().collect();
    let moved = done.saturating_sub(s.bytes_at_start);
    let secs = elapsed.as_secs_f64();
    st.bytes_per_second = (moved > 0 && secs > 0.5).then(|| (moved as f64 / secs) as u64);
    st.eta_seconds = match st.state {
        SlotState::Copying => st
            .bytes_per_second
            .filter(|r| *r > 0)
            .map(|rate| st.bytes_total.saturating_sub(done).div_ceil(rate)),
        SlotState::Done => Some(0),
        _ => None,
    };
    let quiet = s.last_progress.elapsed();
    // Waiting for a ledger that cannot be reached is the ledger's alert,
    // not the slot's.
    let waits_on_ledger = st.state == SlotState::WaitingForLedger && ledger_trouble;
    st.stuck_seconds =
        (st.state.busy() && !waits_on_ledger && quiet >= stuck_after).then_some(quiet.as_secs());
    st
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorder() -> Recorder<'static> {
        Recorder {
            id: "R1",
            model: Some("DSJ-1"),
            profile: "simulated",
            officer_id: Some("100233"),
        }
    }

    #[test]
    fn a_slot_becomes_safe_only_when_done() {
        let b = StatusBoard::new("dock-1");
        b.attaching("s1");
        assert_eq!(b.slot("s1").state, SlotState::Attaching);
        b.ingesting("s1", &recorder(), 2, 200);
        b.segment_state("s1", "a", Some(SlotState::Copying));
        b.segment_state("s1", "b", Some(SlotState::Copying));
        b.progress("s1", "a", 50);
        let s = b.slot("s1");
        assert_eq!(
            (s.state, s.bytes_done, s.bytes_total, s.safe_to_undock),
            (SlotState::Copying, 50, 200, false)
        );
        b.stored("s1", "a", 100);
        b.segment_state("s1", "a", Some(SlotState::WaitingForLedger));
        // The least advanced segment decides.
        assert_eq!(b.slot("s1").state, SlotState::Copying);
        b.stored("s1", "b", 100);
        b.segment_state("s1", "b", Some(SlotState::Verifying));
        assert_eq!(b.slot("s1").state, SlotState::Verifying);
        b.segment_done("s1", "a");
        b.segment_done("s1", "b");
        assert!(!b.slot("s1").safe_to_undock, "counts never make it safe");
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
        assert_eq!(doc["slots"][0]["officer_id"], "100233");
    }

    #[test]
    fn taken_out_early_the_slot_turns_red_until_the_next_docking() {
        let b = StatusBoard::new("dock-1");
        b.attaching("s1");
        b.ingesting("s1", &recorder(), 1, 100);
        b.segment_state("s1", "a", Some(SlotState::Copying));
        b.left("s1");
        let s = b.slot("s1");
        assert_eq!(s.state, SlotState::Unplugged);
        assert_eq!(s.recorder_id.as_deref(), Some("R1"));
        assert!(!s.safe_to_undock);
        b.attaching("s1");
        assert_eq!(b.slot("s1").state, SlotState::Attaching);
        // After a finished docking the slot is simply empty.
        b.ingesting("s1", &recorder(), 0, 0);
        b.state("s1", SlotState::Done);
        b.left("s1");
        assert_eq!(b.slot("s1").state, SlotState::Empty);
        assert_eq!(b.slot("s1").recorder_id, None);
        // An incomplete docking is red when it leaves too.
        b.attaching("s1");
        b.ingesting("s1", &recorder(), 1, 10);
        b.state("s1", SlotState::Incomplete);
        b.left("s1");
        assert_eq!(b.slot("s1").state, SlotState::Unplugged);
    }

    #[test]
    fn the_shown_state_only_moves_forward() {
        let b = StatusBoard::new("d");
        b.ingesting("s", &recorder(), 3, 30);
        let order = [
            SlotState::Copying,
            SlotState::Recording,
            SlotState::Verifying,
            SlotState::WaitingForLedger,
            SlotState::Wiping,
        ];
        let mut seen = Vec::new();
        for seg in ["a", "b", "c"] {
            b.segment_state("s", seg, Some(SlotState::Copying));
        }
        // Each segment moves forward at its own pace, interleaved.
        let mut at = [0usize; 3];
        let pace = [1, 2, 3];
        while at.iter().any(|&i| i <= order.len()) {
            for (k, seg) in ["a", "b", "c"].iter().enumerate() {
                for _ in 0..pace[k] {
                    if at[k] < order.len() {
                        b.segment_state("s", seg, Some(order[at[k]]));
                    } else if at[k] == order.len() {
                        b.segment_done("s", seg);
                    }
                    at[k] += 1;
                    seen.push(b.slot("s").state);
                }
            }
        }
        assert_eq!(seen.first(), Some(&SlotState::Copying));
        assert!(seen.contains(&SlotState::Wiping));
        assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    }

    #[test]
    fn a_quiet_busy_slot_is_stuck_but_not_while_the_ledger_is_away() {
        let b = StatusBoard::with_settings(
            "d",
            BoardSettings {
                stuck_after: Duration::ZERO,
                roster: [("100233".to_owned(), "张三".to_owned())].into(),
            },
        );
        b.ingesting("s", &recorder(), 1, 10);
        b.segment_state("s", "a", Some(SlotState::WaitingForLedger));
        let doc = b.snapshot();
        assert_eq!(doc.slots[0].officer_name.as_deref(), Some("张三"));
        assert!(doc.slots[0].stuck_seconds.is_some());
        assert_eq!(doc.alerts[0].kind, AlertKind::SlotStuck);
        b.set_ledger(
            3,
            Some(Duration::from_secs(9)),
            Some("connection refused".into()),
        );
        let doc = b.snapshot();
        assert!(doc.slots[0].stuck_seconds.is_none());
        assert_eq!(doc.alerts.len(), 1);
        assert_eq!(doc.alerts[0].kind, AlertKind::LedgerUnreachable);
        assert_eq!(doc.oldest_event_age_seconds, Some(9));
        b.store_error("s", "503 Slow Down");
        assert!(b
            .snapshot()
            .alerts
            .iter()
            .any(|a| a.kind == AlertKind::StoreRefusesWrites));
        b.stored("s", "a", 10);
        assert!(!b
            .snapshot()
            .alerts
            .iter()
            .any(|a| a.kind == AlertKind::StoreRefusesWrites));
    }
}
