//! A docking's own events, kept in the recorder's session record of the
//! journal from before they are queued: `recorder.docked` (once per
//! docking, also across a restart of the dock), `recorder.clock_set` when
//! the profile says to set an off clock, and `recorder.undocked` when the
//! recorder leaves. A clock that cannot be set is noted, never fatal.

use custos_core::entry::details::{RecorderClockSet, RecorderDocked, RecorderUndocked};
use custos_core::entry::Details;

use super::error::StepError;
use super::{now, timestamp, Dock, Gone, SessionReport};
use crate::journal::{EventKind, EventOwner, EventState, SessionRecord};
use crate::outbox::OutboxError;
use crate::profile::ClockSet;
use crate::transport::{Attached, RecorderTransport};

impl Dock {
    /// Record the docking (once per docking: a restart of the dock during
    /// an open docking does not record another).
    pub(super) async fn docked(&self, slot: &str, attached: &Attached) -> Result<(), StepError> {
        let id = &attached.identity.id;
        if self
            .journal
            .session(id)?
            .is_some_and(|s| s.is_open() && s.docked.is_some())
        {
            return Ok(());
        }
        self.journal.put_session(&SessionRecord {
            recorder_id: id.clone(),
            slot: slot.to_owned(),
            docked: None,
            clock_set: Vec::new(),
            undocked: None,
        })?;
        let identity = &attached.identity;
        let d = Details::RecorderDocked(RecorderDocked {
            slot: slot.to_owned(),
            profile: attached.profile.name.clone(),
            model: identity.model.clone(),
            transport: attached.transport.to_owned(),
            clock_offset_ms: attached.clock.map(|c| c.offset_ms()),
            recorder_time: attached.clock.map(|c| timestamp(c.recorder).to_string()),
            serial: identity.serial.clone(),
            officer_id: identity.officer_id.clone(),
            firmware: identity.firmware.clone(),
        });
        self.emit_session(id, EventKind::Docked, d, |s| &mut s.docked)
            .await?;
        Ok(())
    }

    /// Sign and queue a docking's own event (`recorder.docked`,
    /// `recorder.undocked`), kept in the session's `slot` of the journal
    /// from before it is queued.
    async fn emit_session(
        &self,
        id: &str,
        kind: EventKind,
        details: Details,
        slot: fn(&mut SessionRecord) -> &mut Option<EventState>,
    ) -> Result<(), OutboxError> {
        let owner = EventOwner {
            recorder_id: id.to_owned(),
            segment_id: None,
            kind,
        };
        let journal = &self.journal;
        self.outbox
            .emit(
                &details,
                id,
                owner,
                |env| {
                    journal
                        .update_session(id, |s| *slot(s) = Some(EventState::new(env.clone())))
                        .map(|_| ())
                },
                |_| {
                    journal
                        .update_session(id, |s| {
                            if let Some(e) = slot(s).as_mut() {
                                e.queued = true;
                            }
                        })
                        .map(|_| ())
                },
            )
            .await?;
        Ok(())
    }

    /// Set the recorder's clock when the profile says so and it is off.
    pub(super) async fn maybe_set_clock(
        &self,
        slot: &str,
        transport: Box<dyn RecorderTransport>,
        attached: &Attached,
    ) -> Box<dyn RecorderTransport> {
        let profile = &attached.profile;
        if let Some(c) = attached.clock {
            self.status.clock(slot, c.offset_ms(), false);
        }
        let tolerance_ms = i64::try_from(profile.clock.tolerance.as_millis()).unwrap_or(i64::MAX);
        let needed = match (&profile.clock.set, attached.clock) {
            (ClockSet::None, _) => false,
            (ClockSet::Usb, Some(c)) => c.offset_ms().abs() > tolerance_ms,
            (ClockSet::Usb, None) => false,
            // A clock file is written at every docking: its recorder reads
            // it at the next start, and the dock cannot read its clock.
            (ClockSet::File { .. }, c) => c.is_none_or(|c| c.offset_ms().abs() > tolerance_ms),
        };
        if !needed {
            return transport;
        }
        let a = attached.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let mut transport = transport;
            let r = transport.set_clock(&a, now());
            (transport, r)
        })
        .await;
        let Ok((transport, result)) = joined else {
            return Box::new(Gone);
        };
        match result {
            Ok(Some(method)) => {
                if let Some(c) = attached.clock {
                    self.status.clock(slot, c.offset_ms(), true);
                }
                let id = &attached.identity.id;
                let d = Details::RecorderClockSet(RecorderClockSet {
                    slot: slot.to_owned(),
                    method: method.to_owned(),
                    offset_ms_before: attached.clock.map(|c| c.offset_ms()),
                });
                let owner = EventOwner {
                    recorder_id: id.clone(),
                    segment_id: None,
                    kind: EventKind::ClockSet,
                };
                let journal = &self.journal;
                let emitted = self
                    .outbox
                    .emit(
                        &d,
                        id,
                        owner,
                        |env| {
                            journal
                                .update_session(id, |s| {
                                    if !s.clock_set.iter().any(|e| e.envelope == *env) {
                                        s.clock_set.push(EventState::new(env.clone()));
                                    }
                                })
                                .map(|_| ())
                        },
                        |env| {
                            journal
                                .update_session(id, |s| {
                                    for e in &mut s.clock_set {
                                        if e.envelope == *env {
                                            e.queued = true;
                                        }
                                    }
                                })
                                .map(|_| ())
                        },
                    )
                    .await;
                if let Err(e) = emitted {
                    tracing::error!(slot, error = %e, "cannot record the clock setting");
                }
                tracing::info!(slot, method, "recorder clock set");
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(slot, error = %e, "cannot set the recorder's clock");
                self.status.note(slot, &format!("clock not set: {e}"));
            }
        }
        transport
    }

    /// Record that the recorder left `slot` (closes its docking).
    pub async fn undock(&self, slot: &str, report: &SessionReport) {
        let Some(id) = report.recorder_id.as_deref() else {
            self.status.left(slot);
            return;
        };
        let open = matches!(self.journal.session(id), Ok(Some(s)) if s.is_open());
        if open {
            let incomplete: Vec<&str> = report.failed.iter().map(|(s, _)| s.as_str()).collect();
            let d = Details::RecorderUndocked(RecorderUndocked {
                slot: slot.to_owned(),
                segments: report.segments as u64,
                done: report.done as u64,
                incomplete: incomplete.into_iter().map(str::to_owned).collect(),
            });
            let r = self
                .emit_session(id, EventKind::Undocked, d, |s| &mut s.undocked)
                .await;
            if let Err(e) = r {
                tracing::error!(slot, error = %e, "cannot record the undocking");
            }
        }
        if !report.is_complete() {
            tracing::warn!(
                slot,
                recorder = id,
                done = report.done,
                segments = report.segments,
                "the recorder left before the dock was done; plug it back in to finish"
            );
        }
        self.status.left(slot);
    }
}
