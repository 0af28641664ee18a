//! The one-shot docking (`custos dock ingest`): deliver events, dock one
//! recorder ([`Dock::ingest`]), record its undocking unless the dock was
//! stopped, wait for the ledger's acknowledgements up to the deadline, and
//! say what that achieved ([`OnceOutcome`], read as a [`OnceVerdict`]).
//! Only [`OnceVerdict::SafeToUndock`] means every segment is verified,
//! wiped per policy and on the record; anything else leaves work in the
//! journal for the next run. Prints nothing: the binary words the verdict.

use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::{Dock, SessionReport};
use crate::journal::JournalError;
use crate::transport::RecorderTransport;

/// What a one-shot docking achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnceOutcome {
    /// The docking's report.
    pub report: SessionReport,
    /// Every queued event was delivered and its answer recorded before the
    /// deadline.
    pub drained: bool,
    /// Every segment of the recorder's volume is finished and every event
    /// about them and the docking acknowledged ([`Dock::session_done`]).
    pub acknowledged: bool,
    /// Events still waiting for the ledger when the docking ended.
    pub events_pending: usize,
    /// Why events wait for the ledger, if they do
    /// ([`Dock::ledger_trouble`], read right after the wait).
    pub ledger_trouble: Option<String>,
}

/// The verdict on a one-shot docking, first that applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnceVerdict {
    /// The recorder could not be attached or listed, or its docking not
    /// recorded (the report's `error`).
    NotDocked,
    /// Every segment finished, every event delivered and acknowledged.
    SafeToUndock,
    /// Events still wait for the ledger (kept in the journal).
    EventsQueued,
    /// Delivered, but the ledger has not acknowledged every event
    /// (refused or unanswered).
    NotAcknowledged,
    /// Segments left on the recorder, or the docking was cancelled.
    SegmentsLeft,
}

impl OnceOutcome {
    /// The verdict (see [`OnceVerdict`]).
    pub fn verdict(&self) -> OnceVerdict {
        if self.report.error.is_some() {
            OnceVerdict::NotDocked
        } else if self.report.is_complete() && self.drained && self.acknowledged {
            OnceVerdict::SafeToUndock
        } else if !self.drained {
            OnceVerdict::EventsQueued
        } else if !self.acknowledged {
            OnceVerdict::NotAcknowledged
        } else {
            OnceVerdict::SegmentsLeft
        }
    }
}

impl Dock {
    /// One docking from start to finish (see the module documentation):
    /// `stop` ends it early (a signal), `deadline` bounds every wait for the
    /// store and the ledger. Event delivery runs from the start until the
    /// outcome is known.
    pub async fn dock_once(
        self: &Arc<Self>,
        slot: &str,
        transport: Box<dyn RecorderTransport>,
        stop: &CancellationToken,
        deadline: Option<Instant>,
    ) -> Result<OnceOutcome, JournalError> {
        let pump_stop = CancellationToken::new();
        let pump = self.start(pump_stop.clone());
        let (transport, report) = self.ingest(slot, transport, stop.clone(), deadline).await;
        if report.recorder_id.is_some() && !stop.is_cancelled() {
            self.undock(slot, &report).await;
        }
        let drained = self.drain(deadline, stop).await;
        let ledger_trouble = self.ledger_trouble();
        let acknowledged = self.session_done(&report);
        pump_stop.cancel();
        let _ = pump.await;
        drop(transport);
        Ok(OnceOutcome {
            acknowledged: acknowledged?,
            events_pending: self.events_pending(),
            report,
            drained,
            ledger_trouble,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(report: SessionReport, drained: bool, acknowledged: bool) -> OnceOutcome {
        OnceOutcome {
            report,
            drained,
            acknowledged,
            events_pending: 0,
            ledger_trouble: None,
        }
    }

    fn complete() -> SessionReport {
        SessionReport {
            slot: "dir-a".into(),
            recorder_id: Some("R1".into()),
            segments: 2,
            done: 2,
            ..SessionReport::default()
        }
    }

    #[test]
    fn only_a_complete_drained_acknowledged_docking_is_safe() {
        assert_eq!(
            outcome(complete(), true, true).verdict(),
            OnceVerdict::SafeToUndock
        );
        assert_eq!(
            outcome(complete(), false, true).verdict(),
            OnceVerdict::EventsQueued
        );
        assert_eq!(
            outcome(complete(), true, false).verdict(),
            OnceVerdict::NotAcknowledged
        );
        let mut left = complete();
        left.done = 1;
        left.failed.push(("S2".into(), "why".into()));
        assert_eq!(
            outcome(left.clone(), true, true).verdict(),
            OnceVerdict::SegmentsLeft
        );
        // Queued events are told before unacknowledged ones, both before
        // segments left.
        assert_eq!(
            outcome(left.clone(), false, false).verdict(),
            OnceVerdict::EventsQueued
        );
        assert_eq!(
            outcome(left, true, false).verdict(),
            OnceVerdict::NotAcknowledged
        );
        let mut cancelled = complete();
        cancelled.cancelled = true;
        assert_eq!(
            outcome(cancelled, true, true).verdict(),
            OnceVerdict::SegmentsLeft
        );
    }

    #[test]
    fn an_error_comes_first() {
        let mut r = complete();
        r.error = Some("cannot attach".into());
        assert_eq!(outcome(r, true, true).verdict(), OnceVerdict::NotDocked);
    }
}
