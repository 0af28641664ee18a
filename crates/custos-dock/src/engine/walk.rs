//! One segment's walk through the journal's steps: from wherever its
//! record stands to a final step, one step function per stage (see
//! `stage.rs`), re-reading the record after each; a step that failed for a
//! reason worth retrying is retried after a growing wait, up to the
//! session's deadline. Also the plumbing every step shares: building,
//! journalling and queueing a segment's event, and waiting for the
//! ledger's acknowledgement.
//!
//! Must never advance a record past a step whose effect is not durable:
//! each step writes its own journal update (flushed where the journal's
//! protocol says so) and the walk only reads what the journal holds.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use custos_core::entry::{actions, Details};

use super::at_path::{not_listed, AtPath};
use super::error::StepError;
use super::stage::Stage;
use super::{Dock, Session};
use crate::journal::{EventKind, EventOwner, EventState, SegmentRecord, Step};
use crate::status::SlotState;
use crate::volume::SourceFile;

/// A segment's file as this docking found it.
#[derive(Debug)]
pub(super) enum Found {
    /// Listed: the file.
    Listed(SourceFile),
    /// Not listed (an unfinished record of this volume): what is at its
    /// path, looked at right after the listing.
    Unlisted(AtPath),
}

impl Found {
    /// The listed file, if it was listed.
    fn file(&self) -> Option<&SourceFile> {
        match self {
            Found::Listed(f) => Some(f),
            Found::Unlisted(_) => None,
        }
    }
}

impl Dock {
    /// Take one segment from wherever its record stands to a final step.
    pub(super) async fn segment(
        &self,
        s: &Session,
        record: SegmentRecord,
        found: Found,
    ) -> Result<(), StepError> {
        let name = String::from_utf8_lossy(&record.relative())
            .escape_debug()
            .to_string();
        let at = match found {
            Found::Listed(f) => {
                if matches!(record.step, Step::Wiped | Step::Gone) {
                    // The journal has this file as stored, verified and gone
                    // from the recorder, yet a file with its path, size and
                    // time is listed again: the bytes decide.
                    return self.reappeared(s, record, f).await;
                }
                return self.walk(s, record, Found::Listed(f)).await;
            }
            Found::Unlisted(at) => at,
        };
        if record.rewiping {
            return self.finish_rewipe(&record, at, &name).await;
        }
        if record.step == Step::Wiping {
            match &at {
                // The removal reached it (before a crash or an unplug).
                AtPath::Nothing => {}
                AtPath::Another => {
                    // Another file holds its name: whether the removal
                    // reached the medium before cannot be told. Not wiped.
                    self.journal
                        .update(&record.recorder_id, &record.segment_id, |r| {
                            if r.step == Step::Wiping {
                                r.step = Step::Gone;
                                r.last_error = Some("another file has its name on the recorder now; the removal is not counted as wiped".into());
                            }
                        })?;
                    return Ok(());
                }
                AtPath::TheFile | AtPath::Unknown(_) => {
                    return Err(StepError::Stop(not_listed(&name, &at)))
                }
            }
        }
        self.walk(s, record, Found::Unlisted(at)).await
    }

    /// The segment's steps, from its record's to a final one. An unlisted
    /// record comes with what is at its path: it becomes Gone at Verified
    /// only if nothing or another file is there.
    pub(super) async fn walk(
        &self,
        s: &Session,
        record: SegmentRecord,
        found: Found,
    ) -> Result<(), StepError> {
        let recorder = record.recorder_id.clone();
        let id = record.segment_id.clone();
        let mut rec = record;
        let mut backoff = self.settings.backoff.0;
        // Whether this segment still counts in the session's `to_upload`.
        let mut uploading = rec.step < Step::Uploaded;
        let left_upload = |uploading: &mut bool| {
            if std::mem::replace(uploading, false) {
                s.to_upload.fetch_sub(1, Ordering::Relaxed);
            }
        };
        loop {
            if uploading && rec.step >= Step::Uploaded {
                left_upload(&mut uploading);
            }
            self.status
                .segment_state(&s.slot, &id, shown_state(rec.step));
            if rec.step.is_final() {
                return Ok(());
            }
            let result = match Stage::of(&rec) {
                Ok(stage) => self.advance(s, &rec, stage, &found).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => backoff = self.settings.backoff.0,
                Err(StepError::Retry(why)) => {
                    tracing::warn!(slot = %s.slot, segment = %id, step = ?rec.step, error = %why, "step failed; retrying");
                    self.status.note(&s.slot, &why);
                    let _ = self
                        .journal
                        .update_lazy(&recorder, &id, |r| r.last_error = Some(why.clone()));
                    if let Err(e) = self.pause(s, backoff, &why).await {
                        left_upload(&mut uploading);
                        return Err(e);
                    }
                    backoff = (backoff * 2).min(self.settings.backoff.1);
                }
                Err(e) => {
                    left_upload(&mut uploading);
                    return Err(e);
                }
            }
            rec = self
                .journal
                .segment(&recorder, &id)?
                .ok_or_else(|| StepError::Stop("the journal lost the record".into()))?;
        }
    }

    /// Run the step `stage` leads to, giving it the stage's data.
    async fn advance(
        &self,
        s: &Session,
        rec: &SegmentRecord,
        stage: Stage,
        found: &Found,
    ) -> Result<(), StepError> {
        let file = found.file();
        match stage {
            Stage::Discovered => self.probe(s, rec, source(file)?).await,
            Stage::Uploading => self.upload(s, rec, source(file)?).await,
            Stage::Uploaded { upload, manifest } => self.record(s, rec, upload, manifest).await,
            Stage::Recorded { upload } => self.verify(rec, upload).await,
            Stage::Verified => match found {
                Found::Unlisted(at @ (AtPath::TheFile | AtPath::Unknown(_))) => Err(
                    StepError::Stop(not_listed(&String::from_utf8_lossy(&rec.relative()), at)),
                ),
                _ => self.after_verified(s, rec, file.is_some()).await,
            },
            Stage::Wiping { verified_seq } => self.wipe(s, rec, file, verified_seq).await,
            Stage::Final => Ok(()),
        }
    }

    /// Wait `d`, unless the session is cancelled or out of time.
    async fn pause(&self, s: &Session, d: Duration, why: &str) -> Result<(), StepError> {
        if let Some(deadline) = s.deadline {
            if Instant::now() + d > deadline {
                return Err(StepError::Cancelled(format!("gave up waiting: {why}")));
            }
        }
        tokio::select! {
            _ = s.cancel.cancelled() => Err(StepError::Cancelled("the docking ended".into())),
            _ = tokio::time::sleep(d) => Ok(()),
        }
    }

    /// Build, journal and queue a segment event, moving the record to `step`.
    pub(super) async fn emit_segment(
        &self,
        rec: &SegmentRecord,
        kind: EventKind,
        details: Details,
        step: Step,
        verify_method: Option<&str>,
    ) -> Result<(), StepError> {
        let (recorder, seg) = (rec.recorder_id.as_str(), rec.segment_id.as_str());
        if rec.event(kind).is_some() {
            // Built before a crash; the record already moved on.
            return Ok(());
        }
        let owner = EventOwner {
            recorder_id: recorder.to_owned(),
            segment_id: Some(seg.to_owned()),
            kind,
        };
        let journal = &self.journal;
        self.outbox
            .emit(
                &details,
                seg,
                owner,
                |env| {
                    journal
                        .update_lazy(recorder, seg, |r| {
                            if let std::collections::btree_map::Entry::Vacant(slot) =
                                r.events.entry(kind)
                            {
                                slot.insert(EventState::new(env.clone()));
                                r.step = r.step.max(step);
                                if let Some(m) = verify_method {
                                    r.verify_method = Some(m.to_owned());
                                }
                                r.last_error = None;
                            }
                        })
                        .map(|_| ())
                },
                |env| {
                    journal
                        .update_lazy(recorder, seg, |r| {
                            if let Some(e) = r.events.get_mut(&kind) {
                                if e.envelope == *env {
                                    e.queued = true;
                                }
                            }
                        })
                        .map(|_| ())
                },
            )
            .await?;
        Ok(())
    }

    /// Wait until the ledger acknowledged the record's event of `kind`.
    pub(super) async fn wait_acknowledged(
        &self,
        s: &Session,
        rec: &SegmentRecord,
        kind: EventKind,
    ) -> Result<(), StepError> {
        let mut acks = self.outbox.acknowledgements();
        let mut announced = false;
        loop {
            let r = self
                .journal
                .segment(&rec.recorder_id, &rec.segment_id)?
                .ok_or_else(|| StepError::Stop("the journal lost the record".into()))?;
            if let Some((refused, why)) = r.refused() {
                return Err(StepError::Stop(format!(
                    "the ledger refused its {} event for good; the segment stays on the recorder: {why}",
                    action_of(refused)
                )));
            }
            match r.event(kind) {
                Some(e) if e.seq.is_some() => return Ok(()),
                Some(_) => {}
                None => return Err(StepError::Stop("journal: the event was never built".into())),
            }
            if !announced && s.to_upload.load(Ordering::Relaxed) == 0 {
                tracing::debug!(slot = %s.slot, segment = %rec.segment_id, "stored; waiting for the ledger's acknowledgement");
                announced = true;
            }
            let wait = match s.deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(3600),
            };
            if wait.is_zero() {
                return Err(StepError::Cancelled(format!(
                    "gave up waiting for the ledger to acknowledge {kind:?}{}",
                    self.outbox
                        .trouble()
                        .map(|t| format!(": {t}"))
                        .unwrap_or_default()
                )));
            }
            tokio::select! {
                _ = s.cancel.cancelled() => return Err(StepError::Cancelled("the docking ended while waiting for the ledger".into())),
                _ = acks.changed() => {}
                _ = tokio::time::sleep(wait.min(Duration::from_secs(1))) => {}
            }
        }
    }
}

/// The action of a segment event kind, for messages.
fn action_of(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Ingested => actions::SEGMENT_INGESTED,
        EventKind::Verified => actions::SEGMENT_VERIFIED,
        EventKind::Wiped | EventKind::Rewiped => actions::SEGMENT_WIPED,
        EventKind::Docked => actions::RECORDER_DOCKED,
        EventKind::Undocked => actions::RECORDER_UNDOCKED,
        EventKind::ClockSet => actions::RECORDER_CLOCK_SET,
    }
}

/// The listed file a step before the upload's end reads.
fn source(file: Option<&SourceFile>) -> Result<&SourceFile, StepError> {
    file.ok_or_else(|| {
        StepError::Stop("the file is no longer on the recorder, and was never stored".into())
    })
}

/// The state a segment at `step` shows on its slot's tile (`None`: done).
fn shown_state(step: Step) -> Option<SlotState> {
    match step {
        Step::Discovered | Step::Uploading => Some(SlotState::Copying),
        Step::Uploaded => Some(SlotState::Recording),
        Step::Recorded => Some(SlotState::Verifying),
        Step::Verified => Some(SlotState::WaitingForLedger),
        Step::Wiping => Some(SlotState::Wiping),
        Step::Wiped | Step::Kept | Step::Gone => None,
    }
}
