//! One docking of one recorder ([`Dock::ingest`]): attach it, record the
//! docking and set its clock (`recorder.rs`), list its volume, give every
//! listed file a record (or find its own) and every unfinished record of
//! this volume a task, run the tasks, and report. Each task is one
//! segment's walk (`walk.rs`).
//!
//! Must never resume a record found on another volume (a recorder's other
//! card), nor guess what an unlisted record's file became: it is looked at
//! (`at_path.rs`) right after the listing and the walk decides from that.

use std::collections::HashSet;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::at_path::at_path;
use super::error::StepError;
use super::walk::Found;
use super::{Dock, Gone, Session, SessionReport};
use crate::journal::{to_b64, SegmentRecord, SourceRecord, Step};
use crate::naming::SourceIdentity;
use crate::status::{Recorder, SlotState};
use crate::transport::{Attached, RecorderTransport};
use crate::volume::Listing;

/// Why a docking stopped before its segments: the words for the report and
/// the slot's status.
type Refusal = String;

/// A recorder's transport, handed back to the caller whatever happens.
type Transport = Box<dyn RecorderTransport>;

impl Dock {
    /// One docking: attach the recorder through `transport`, record the
    /// docking, set its clock if the profile says so, and take every segment
    /// through the journal's steps. Returns the transport (to detach or
    /// watch it) and the report. Does not record the undocking: call
    /// [`Dock::undock`] when the recorder leaves.
    pub async fn ingest(
        self: &Arc<Self>,
        slot: &str,
        transport: Box<dyn RecorderTransport>,
        cancel: CancellationToken,
        deadline: Option<Instant>,
    ) -> (Box<dyn RecorderTransport>, SessionReport) {
        let mut report = SessionReport {
            slot: slot.to_owned(),
            ..SessionReport::default()
        };
        let (mut transport, attached) = match self.attach(slot, transport).await {
            Ok(pair) => pair,
            Err((transport, msg)) => return (transport, self.refused(slot, report, msg)),
        };
        let recorder_id = attached.identity.id.clone();
        let volume_id = attached.volume_id.clone();
        report.recorder_id = Some(recorder_id.clone());
        report.volume_id = Some(volume_id.clone());
        let offset_ms = attached.clock.map(|c| c.offset_ms()).unwrap_or(0);
        tracing::info!(slot, recorder = %recorder_id, profile = %attached.profile.name, offset_ms, "recorder attached");

        if let Err(e) = self.docked(slot, &attached).await {
            let msg = format!("cannot record the docking: {e}");
            return (transport, self.refused(slot, report, msg));
        }
        transport = self.maybe_set_clock(slot, transport, &attached).await;

        let listing = match self.list(slot, &attached).await {
            Ok(l) => l,
            Err(msg) => return (transport, self.refused(slot, report, msg)),
        };
        let work = match self.work(slot, &attached, listing) {
            Ok(w) => w,
            Err(msg) => return (transport, self.refused(slot, report, msg)),
        };

        report.segments = work.len();
        let bytes: u64 = work.iter().map(|(r, _)| r.source.size).sum();
        self.status.ingesting(
            slot,
            &Recorder {
                id: &recorder_id,
                model: Some(attached.identity.model.as_str()).filter(|m| !m.is_empty()),
                profile: &attached.profile.name,
                officer_id: attached.identity.officer_id.as_deref(),
            },
            work.len(),
            bytes,
        );
        let to_upload = work.iter().filter(|(r, _)| r.step < Step::Uploaded).count();
        for (r, _) in &work {
            if r.step >= Step::Uploaded {
                self.status.already_stored(slot, r.source.size);
            }
        }
        let session = Arc::new(Session {
            slot: slot.to_owned(),
            attached,
            volume_id,
            cancel: cancel.clone(),
            deadline,
            reading: Semaphore::new(1),
            to_upload: AtomicUsize::new(to_upload),
        });
        self.run_tasks(&session, work, &mut report).await;
        let state = if report.failed.is_empty() {
            SlotState::Done
        } else {
            SlotState::Incomplete
        };
        self.status.state(slot, state);
        tracing::info!(slot, recorder = %recorder_id, done = report.done, failed = report.failed.len(), "docking finished");
        (transport, report)
    }

    /// The docking stops here: `msg` goes on the slot's status and into the
    /// report.
    fn refused(&self, slot: &str, mut report: SessionReport, msg: Refusal) -> SessionReport {
        self.status.error(slot, &msg);
        report.error = Some(msg);
        report
    }

    /// Attach the recorder (on a blocking thread: USB transfers, mounts).
    async fn attach(
        &self,
        slot: &str,
        transport: Transport,
    ) -> Result<(Transport, Attached), (Transport, Refusal)> {
        self.status.attaching(slot);
        let joined = tokio::task::spawn_blocking(move || {
            let mut transport = transport;
            let attached = transport.attach();
            (transport, attached)
        })
        .await;
        let (transport, attached) = match joined {
            Ok(pair) => pair,
            Err(e) => {
                // The transport was lost with the panicking thread.
                let msg = format!("internal error while attaching: {e}");
                return Err((Box::new(Gone), msg));
            }
        };
        match attached {
            Ok(a) => Ok((transport, a)),
            Err(e) => {
                let msg = e.to_string();
                tracing::error!(slot, error = %msg, "cannot attach the recorder");
                Err((transport, msg))
            }
        }
    }

    /// List the recorder's footage (on a blocking thread), warning about
    /// what was skipped for a reason the operator should hear of.
    async fn list(&self, slot: &str, attached: &Attached) -> Result<Listing, Refusal> {
        let volume = attached.volume.clone();
        let storage = attached.profile.storage.clone();
        let listing = match tokio::task::spawn_blocking(move || volume.list(&storage)).await {
            Ok(Ok(l)) => l,
            Ok(Err(e)) => return Err(e.to_string()),
            Err(e) => return Err(format!("internal error while listing: {e}")),
        };
        for s in &listing.skipped {
            if s.reason.worth_a_warning() {
                tracing::warn!(slot, path = %String::from_utf8_lossy(&s.relative), reason = s.reason.as_str(), "skipped on the recorder");
            }
        }
        Ok(listing)
    }

    /// Every listed file gets a record (or finds its own); unfinished
    /// records of this volume whose file is no longer listed are resumed
    /// without it, as far as what is at their path allows.
    fn work(
        &self,
        slot: &str,
        attached: &Attached,
        listing: Listing,
    ) -> Result<Vec<(SegmentRecord, Found)>, Refusal> {
        let recorder_id = &attached.identity.id;
        let volume_id = &attached.volume_id;
        let mut work: Vec<(SegmentRecord, Found)> = Vec::new();
        let listed: HashSet<(Vec<u8>, u64, i128)> = listing
            .files
            .iter()
            .map(|f| (f.relative.clone(), f.size, f.mtime_ns))
            .collect();
        let media_root = original_prefix(attached);
        for f in listing.files {
            let ident = SourceIdentity {
                recorder_id,
                relative_path: &f.relative,
                size: f.size,
                mtime_ns: f.mtime_ns,
                discriminator: None,
            };
            let mut original = media_root.clone();
            original.extend_from_slice(&f.relative);
            let source = SourceRecord {
                relative_b64: to_b64(&f.relative),
                original_b64: to_b64(&original),
                size: f.size,
                mtime_ns: f.mtime_ns,
                dev: f.dev,
                ino: f.ino,
            };
            let record = new_record(attached, slot, volume_id, recorder_id, &ident, source, None);
            match self.journal.discover(record) {
                Ok(r) => work.push((r, Found::Listed(f))),
                Err(e) => return Err(format!("journal: {e}")),
            }
        }
        match self.journal.segments_of(recorder_id) {
            Ok(all) => {
                let mut elsewhere = 0;
                for r in all {
                    let unfinished = !r.step.is_final() || r.rewiping;
                    if !unfinished || work.iter().any(|(w, _)| w.segment_id == r.segment_id) {
                        continue;
                    }
                    if !r.on_volume(volume_id) {
                        // Another volume's: resumed only when that volume is docked.
                        elsewhere += 1;
                        continue;
                    }
                    if listed.contains(&(r.relative(), r.source.size, r.source.mtime_ns)) {
                        // A later recording with the name, size and time of
                        // a stored one: its listed file's task resumes it.
                        continue;
                    }
                    let at = at_path(attached.volume.root(), &r);
                    work.push((r, Found::Unlisted(at)));
                }
                if elsewhere > 0 {
                    tracing::info!(slot, recorder = %recorder_id, elsewhere, "unfinished segments of this recorder's other volumes are left for when those are docked");
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot read the journal"),
        }
        Ok(work)
    }

    /// One task per segment; their results into `report` and the slot's
    /// status as they finish.
    async fn run_tasks(
        self: &Arc<Self>,
        session: &Arc<Session>,
        work: Vec<(SegmentRecord, Found)>,
        report: &mut SessionReport,
    ) {
        let slot = session.slot.as_str();
        let recorder_id = &session.attached.identity.id;
        let mut tasks = JoinSet::new();
        for (r, found) in work {
            let dock = self.clone();
            let session = session.clone();
            tasks.spawn(async move {
                let id = r.segment_id.clone();
                let result = dock.segment(&session, r, found).await;
                (id, result)
            });
        }
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((id, Ok(()))) => {
                    report.done += 1;
                    self.status.segment_done(slot, &id);
                }
                Ok((id, Err(e))) => {
                    let (why, cancelled) = match e {
                        StepError::Retry(w) | StepError::Stop(w) => (w, false),
                        StepError::Cancelled(w) => (w, true),
                    };
                    report.cancelled |= cancelled;
                    let _ = self
                        .journal
                        .update_lazy(recorder_id, &id, |r| r.last_error = Some(why.clone()));
                    tracing::warn!(slot, segment = %id, error = %why, "segment left unfinished");
                    self.status.segment_failed(slot, &id, &why);
                    report.failed.push((id, why));
                }
                Err(e) => report
                    .failed
                    .push(("?".into(), format!("internal error: {e}"))),
            }
        }
    }
}

/// The media root's path on the volume as a prefix of original names
/// (`DCIM/`, or nothing when footage is at the root).
fn original_prefix(attached: &Attached) -> Vec<u8> {
    let mut prefix = attached
        .profile
        .storage
        .media_root
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(n) => Some(n.as_encoded_bytes().to_vec()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join(&b'/');
    if !prefix.is_empty() {
        prefix.push(b'/');
    }
    prefix
}

/// A new record at step Discovered for the file `ident` and `source`
/// describe, found on `volume_id` of the recorder `attached`.
pub(super) fn new_record(
    attached: &Attached,
    slot: &str,
    volume_id: &str,
    recorder_id: &str,
    ident: &SourceIdentity<'_>,
    source: SourceRecord,
    discriminator: Option<String>,
) -> SegmentRecord {
    SegmentRecord {
        segment_id: ident.segment_id(),
        recorder_id: recorder_id.to_owned(),
        model: attached.identity.model.clone(),
        profile: attached.profile.name.clone(),
        recorder_officer: attached.identity.officer_id.clone(),
        slot: slot.to_owned(),
        source,
        object_key: ident.object_key(),
        clock_offset_ms: attached.clock.map(|c| c.offset_ms()).unwrap_or(0),
        step: Step::Discovered,
        media: None,
        recorded: None,
        officer_id: None,
        upload: None,
        manifest: None,
        verify_method: None,
        events: Default::default(),
        last_error: None,
        volume_id: Some(volume_id.to_owned()),
        discriminator,
        rewiping: false,
        rewiped: Vec::new(),
    }
}
