//! The JSON shapes of the dock's status endpoint (`GET /status` of `custos
//! dock run`, on `[dock] status_listen`): what a kiosk page, a monitoring
//! system and `custos dock status` read.
//!
//! The document is a snapshot: every slot's state, progress and findings,
//! the outbox's depth, and the alerts an operator must act on. It carries no
//! footage, key or token, and nothing in it changes anything.

use serde::{Deserialize, Serialize};

/// The whole status document of one docking station.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DockStatus {
    /// The station's id (`[dock] id`).
    pub dock_id: String,
    /// Every slot, in name order.
    pub slots: Vec<SlotStatus>,
    /// Custody events kept in the dock's journal, waiting for the ledger.
    pub events_pending: usize,
    /// Seconds the oldest of them has waited.
    pub oldest_event_age_seconds: Option<u64>,
    /// Why events wait, while the ledger cannot be reached or refuses.
    pub ledger_trouble: Option<String>,
    /// What the operator must look at now (a stuck slot, the ledger out of
    /// reach, a store refusing writes, a disk nearly full).
    pub alerts: Vec<Alert>,
}

/// What a slot is doing, in the order a docking goes through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotState {
    /// Nothing docked.
    Empty,
    /// Identifying the recorder, unlocking it, waiting for its volume.
    Attaching,
    /// Copying footage into storage (reading, hashing, uploading).
    Copying,
    /// Recording the stored segments on the ledger (`segment.ingested`).
    Recording,
    /// Reading the stored objects back and comparing them.
    Verifying,
    /// Verified in storage; waiting for the ledger to acknowledge
    /// `segment.verified` before anything is wiped.
    WaitingForLedger,
    /// Removing verified footage from the recorder.
    Wiping,
    /// Every segment verified, acknowledged and wiped (or kept) per policy:
    /// safe to undock.
    Done,
    /// Finished with segments left on the recorder (see `message`): it
    /// must be docked again.
    Incomplete,
    /// Taken out before the dock was done: plug it back in to finish.
    Unplugged,
    /// The recorder could not be attached (see `message`).
    Error,
}

impl SlotState {
    /// Every state, in order.
    pub const ALL: [SlotState; 11] = [
        SlotState::Empty,
        SlotState::Attaching,
        SlotState::Copying,
        SlotState::Recording,
        SlotState::Verifying,
        SlotState::WaitingForLedger,
        SlotState::Wiping,
        SlotState::Done,
        SlotState::Incomplete,
        SlotState::Unplugged,
        SlotState::Error,
    ];

    /// The name used in JSON, metrics and the page's classes.
    pub fn as_str(self) -> &'static str {
        match self {
            SlotState::Empty => "empty",
            SlotState::Attaching => "attaching",
            SlotState::Copying => "copying",
            SlotState::Recording => "recording",
            SlotState::Verifying => "verifying",
            SlotState::WaitingForLedger => "waiting_for_ledger",
            SlotState::Wiping => "wiping",
            SlotState::Done => "done",
            SlotState::Incomplete => "incomplete",
            SlotState::Unplugged => "unplugged",
            SlotState::Error => "error",
        }
    }

    /// The dock is working with the recorder: unplugging it now leaves
    /// work for the next docking.
    pub fn busy(self) -> bool {
        matches!(
            self,
            SlotState::Attaching
                | SlotState::Copying
                | SlotState::Recording
                | SlotState::Verifying
                | SlotState::WaitingForLedger
                | SlotState::Wiping
        )
    }
}

/// One slot's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlotStatus {
    /// The slot's name (`dir-<name>` for a directory, `usb-<bus>-<ports>`).
    pub slot: String,
    /// Its state.
    pub state: SlotState,
    /// The recorder in it.
    pub recorder_id: Option<String>,
    /// The recorder's model, when it says.
    pub model: Option<String>,
    /// The recorder's firmware profile.
    pub profile: Option<String>,
    /// The officer the recorder names.
    pub officer_id: Option<String>,
    /// The officer's name, from `[dock] roster`.
    pub officer_name: Option<String>,
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
    /// The copy's rate over this docking, bytes per second.
    pub bytes_per_second: Option<u64>,
    /// Seconds to go at that rate.
    pub eta_seconds: Option<u64>,
    /// The officer may take the recorder: every segment on it is verified
    /// in storage, its `segment.verified` acknowledged by the ledger, and
    /// wiped (or kept) per policy.
    pub safe_to_undock: bool,
    /// The recorder's clock as the dock found it.
    pub clock: Option<ClockNote>,
    /// Original names of segments found damaged (ingested and flagged).
    pub damaged: Vec<String>,
    /// Original names of segments ingested late (more than 24 h after
    /// their recording ended).
    pub late: Vec<String>,
    /// The latest problem or note.
    pub message: Option<String>,
    /// Seconds since the recorder was docked.
    pub elapsed_seconds: u64,
    /// Seconds from docking to "safe to undock", once it was.
    pub safe_after_seconds: Option<f64>,
    /// Seconds since the slot last made progress, when that is longer
    /// than `[dock] stuck_after`.
    pub stuck_seconds: Option<u64>,
}

/// The recorder's clock at docking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockNote {
    /// Recorder time minus dock time, in milliseconds.
    pub offset_ms: i64,
    /// The dock set the recorder's clock.
    pub set: bool,
}

/// Something the operator must look at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// What kind of trouble.
    pub kind: AlertKind,
    /// The slot it is about, if one.
    pub slot: Option<String>,
    /// The cause, in words.
    pub message: String,
    /// Seconds since it began.
    pub since_seconds: u64,
}

/// The kinds of [`Alert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A busy slot made no progress for `[dock] stuck_after`.
    SlotStuck,
    /// The outbox cannot deliver to the ledger.
    LedgerUnreachable,
    /// The object store refuses writes.
    StoreRefusesWrites,
    /// A disk the dock writes to is nearly full.
    DiskNearlyFull,
}

impl AlertKind {
    /// The name used in JSON, logs and the page.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::SlotStuck => "slot_stuck",
            AlertKind::LedgerUnreachable => "ledger_unreachable",
            AlertKind::StoreRefusesWrites => "store_refuses_writes",
            AlertKind::DiskNearlyFull => "disk_nearly_full",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names_are_their_json() {
        for s in SlotState::ALL {
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::Value::String(s.as_str().into())
            );
        }
        for k in [
            AlertKind::SlotStuck,
            AlertKind::LedgerUnreachable,
            AlertKind::StoreRefusesWrites,
            AlertKind::DiskNearlyFull,
        ] {
            assert_eq!(
                serde_json::to_value(k).unwrap(),
                serde_json::Value::String(k.as_str().into())
            );
        }
    }

    #[test]
    fn states_are_in_docking_order() {
        let mut sorted = SlotState::ALL;
        sorted.sort();
        assert_eq!(sorted, SlotState::ALL);
        assert!(SlotState::Copying < SlotState::Recording);
        assert!(SlotState::WaitingForLedger < SlotState::Done);
    }
}
