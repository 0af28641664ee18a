//! The dock's engine: a [`Dock`] holds what every slot shares (the key, the
//! store, the journal, the outbox, the status board, the profiles), and
//! [`Dock::ingest`] runs one docking of one recorder from attach to the
//! last wipe, one task per segment, each walking the journal's steps
//! (see [`crate::journal`] for the steps and what a crash at each leaves).
//!
//! Concurrency and backpressure:
//!
//! - a recorder is read by one segment at a time (a session's `reading`
//!   semaphore): a USB mass-storage device reads fastest sequentially;
//! - at most `[dock] concurrency` segments read and upload at once across
//!   all slots (the dock's `uploads` semaphore): a permit is taken before a
//!   segment's first byte is read;
//! - verifying, signing and waiting for the ledger take no permit: a slot
//!   whose ledger is unreachable does not hold up another slot's uploads.
//!
//! Failures: a store that is down and a ledger that is down are waited out
//! with backoff, up to the session's deadline; a recorder that leaves
//! cancels its session, and everything not yet verified simply stays on it
//! for the next docking. Nothing here removes a file whose
//! `segment.verified` the ledger has not acknowledged.

use std::os::fd::AsRawFd as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use custos_core::config::{Config, WipePolicy};
use custos_core::entry::details::{
    RecorderClockSet, RecorderDocked, RecorderUndocked, SegmentIngested, SegmentVerified,
    SegmentWiped,
};
use custos_core::entry::{actions, Details};
use custos_core::keys::SigningKey;
use custos_core::manifest::{
    is_late, Dock as ManifestDock, Manifest, ObjectRef, OriginalName, Recorder, Timestamp,
};
use custos_ingest::object_store::path::Path as ObjectPath;
use custos_ingest::{
    ingest_file, ingest_segment, verify_object, IngestError, IngestOptions, IngestStore, Progress,
    StoreReceipt, VerifyError, VerifyMethod, VerifyMode,
};
use custos_media::{ProbeError, ProbeOptions};
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::journal::{
    to_b64, EventKind, EventOwner, EventState, Journal, JournalError, SegmentRecord, SessionRecord,
    SourceRecord, Step, UploadRecord,
};
use crate::naming::SourceIdentity;
use crate::outbox::{LedgerLink, Outbox, OutboxError};
use crate::profile::{ClockSet, Profiles};
use crate::status::{SlotState, StatusBoard};
use crate::times::{self, Readings};
use crate::transport::{Attached, RecorderTransport};
use crate::volume::{SourceFile, VolumeError};

/// The officer id written when neither the recorder nor its file names say.
pub const UNASSIGNED_OFFICER: &str = "unassigned";

/// What the dock needs from the configuration.
#[derive(Debug, Clone)]
pub struct DockSettings {
    /// `[dock] id`.
    pub id: String,
    /// `[dock] data_dir`.
    pub data_dir: PathBuf,
    /// `[dock] wipe`.
    pub wipe: WipePolicy,
    /// `[storage] url`, as written into manifests.
    pub store_url: String,
    /// Options of every upload.
    pub ingest: IngestOptions,
    /// Accept an S3 store's SHA-256 receipt instead of reading back.
    pub trust_store_checksum: bool,
    /// `[dock] unlock_password`.
    pub unlock_password: Option<Vec<u8>>,
    /// `[dock] concurrency`.
    pub concurrency: usize,
    /// Options of the media probe.
    pub probe: ProbeOptions,
    /// Shortest and longest wait between retries of a failed step.
    pub backoff: (Duration, Duration),
}

impl DockSettings {
    /// Settings from a parsed configuration.
    pub fn from_config(config: &Config) -> DockSettings {
        let d = &config.dock;
        let mut ingest = IngestOptions::default();
        ingest.part_size = usize::try_from(d.part_size_mib.max(5))
            .unwrap_or(usize::MAX / (1 << 20))
            .saturating_mul(1 << 20);
        ingest.with_sm3 = d.sm3;
        DockSettings {
            id: d.id.clone(),
            data_dir: d.data_dir.clone(),
            wipe: d.wipe,
            store_url: config.storage.url.clone(),
            ingest,
            trust_store_checksum: true,
            unlock_password: d.unlock_password.as_ref().map(|p| p.as_bytes().to_vec()),
            concurrency: d.concurrency.max(1) as usize,
            probe: ProbeOptions::default(),
            backoff: (Duration::from_millis(500), Duration::from_secs(15)),
        }
    }
}

/// Why the dock could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DockError {
    /// The journal could not be opened.
    #[error("{0} (is another custos dock using {1}?)")]
    Journal(JournalError, PathBuf),
    /// The outbox could not be set up.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
}

/// What one docking achieved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionReport {
    /// The slot.
    pub slot: String,
    /// The recorder, once identified.
    pub recorder_id: Option<String>,
    /// Its volume, once attached (`Attached::volume_id`).
    pub volume_id: Option<String>,
    /// Segments handled (found on the recorder or left unfinished before).
    pub segments: usize,
    /// Segments finished (wiped, kept, or verified and gone).
    pub done: usize,
    /// Segments not finished, with why.
    pub failed: Vec<(String, String)>,
    /// Why the recorder could not be attached or listed, if so.
    pub error: Option<String>,
    /// The session was cancelled (recorder unplugged, dock stopping).
    pub cancelled: bool,
}

impl SessionReport {
    /// Every segment finished and nothing went wrong.
    pub fn is_complete(&self) -> bool {
        self.error.is_none()
            && self.failed.is_empty()
            && !self.cancelled
            && self.done == self.segments
    }
}

/// The docking station (see the module documentation).
#[derive(Debug)]
pub struct Dock {
    settings: DockSettings,
    key: Arc<SigningKey>,
    store: IngestStore,
    journal: Journal,
    outbox: Arc<Outbox>,
    status: Arc<StatusBoard>,
    profiles: Arc<Profiles>,
    /// Segments reading and uploading at once, across slots. Created here;
    /// a permit is held by a segment task from its first read to the
    /// store's last acknowledgement.
    uploads: Arc<Semaphore>,
}

/// Per-docking context shared by the session's segment tasks.
#[derive(Debug)]
struct Session {
    slot: String,
    attached: Attached,
    /// `attached.volume_id`, the volume this docking's records belong to.
    volume_id: String,
    cancel: CancellationToken,
    deadline: Option<Instant>,
    /// One segment reads the recorder at a time. Created per session; a
    /// permit is held while a segment is probed and uploaded.
    reading: Semaphore,
    /// Segments of this session not yet past their upload.
    to_upload: AtomicUsize,
}

/// How a step failed.
#[derive(Debug, thiserror::Error)]
enum StepError {
    /// Worth retrying after a wait (store or ledger unreachable).
    #[error("{0}")]
    Retry(String),
    /// Not worth retrying in this docking.
    #[error("{0}")]
    Stop(String),
    /// The session was cancelled or ran out of time.
    #[error("{0}")]
    Cancelled(String),
}

impl From<JournalError> for StepError {
    fn from(e: JournalError) -> Self {
        StepError::Stop(e.to_string())
    }
}

impl From<OutboxError> for StepError {
    fn from(e: OutboxError) -> Self {
        StepError::Stop(e.to_string())
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn timestamp(t: OffsetDateTime) -> Timestamp {
    Timestamp::from_offset_datetime(t).unwrap_or_else(|_| {
        // INVARIANT: the system clock is within years 0-9999.
        Timestamp::from_unix_seconds(0).expect("INVARIANT: the epoch is representable")
    })
}

impl Dock {
    /// Open the journal in `settings.data_dir`, set up the outbox towards
    /// `link`, and queue again any event a crash left unqueued. Call
    /// [`Dock::start`] to begin delivering events.
    pub async fn open(
        settings: DockSettings,
        key: SigningKey,
        store: IngestStore,
        link: LedgerLink,
        profiles: Profiles,
    ) -> Result<Arc<Dock>, DockError> {
        let dir = settings.data_dir.join("journal");
        if let Err(e) = std::fs::create_dir_all(&settings.data_dir) {
            return Err(DockError::Journal(
                JournalError::Sled(sled::Error::Io(e)),
                dir,
            ));
        }
        let journal = Journal::open(&dir).map_err(|e| DockError::Journal(e, dir.clone()))?;
        let key = Arc::new(key);
        let outbox = Arc::new(Outbox::new(journal.clone(), link, key.clone())?);
        let requeued = outbox.requeue_unacknowledged().await?;
        if requeued > 0 {
            tracing::info!(
                requeued,
                "unacknowledged events from before a restart were queued again"
            );
        }
        let status = Arc::new(StatusBoard::new(&settings.id));
        let uploads = Arc::new(Semaphore::new(settings.concurrency));
        Ok(Arc::new(Dock {
            settings,
            key,
            store,
            journal,
            outbox,
            status,
            profiles: Arc::new(profiles),
            uploads,
        }))
    }

    /// Start delivering events (and reporting the outbox on the status
    /// board) until `stop` is cancelled.
    pub fn start(self: &Arc<Self>, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        let outbox = self.outbox.clone();
        let status = self.status.clone();
        let pump = tokio::spawn(outbox.clone().run(stop.clone()));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => status.set_ledger(outbox.pending(), outbox.trouble()),
                }
            }
            let _ = pump.await;
        })
    }

    /// The status board.
    pub fn status(&self) -> &Arc<StatusBoard> {
        &self.status
    }

    /// The profiles.
    pub fn profiles(&self) -> &Arc<Profiles> {
        &self.profiles
    }

    /// The journal.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// The settings.
    pub fn settings(&self) -> &DockSettings {
        &self.settings
    }

    /// Events waiting for the ledger.
    pub fn events_pending(&self) -> usize {
        self.outbox.pending()
    }

    /// Why events wait for the ledger, if they do (unreachable, or a
    /// refusal a fix can lift, in the ledger's words).
    pub fn ledger_trouble(&self) -> Option<String> {
        self.outbox.trouble()
    }

    /// Wait until every queued event is delivered and its answer recorded
    /// in the journal, or `deadline` passes (`false`), or `cancel` fires
    /// (`false`).
    pub async fn drain(&self, deadline: Option<Instant>, cancel: &CancellationToken) -> bool {
        loop {
            if self.outbox.settled() {
                return true;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) || cancel.is_cancelled() {
                return false;
            }
            tokio::select! {
                _ = cancel.cancelled() => return false,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }

    /// Whether every segment of `recorder_id` is finished and every event
    /// about it acknowledged.
    pub fn recorder_done(&self, recorder_id: &str) -> Result<bool, JournalError> {
        let segments_done = self
            .journal
            .segments_of(recorder_id)?
            .iter()
            .all(SegmentRecord::is_done);
        Ok(segments_done && self.docking_acknowledged(recorder_id)?)
    }

    /// Whether every event of `recorder_id`'s docking session (docked,
    /// undocked, clock set) is acknowledged by the ledger.
    fn docking_acknowledged(&self, recorder_id: &str) -> Result<bool, JournalError> {
        Ok(self.journal.session(recorder_id)?.is_none_or(|s| {
            [s.docked.as_ref(), s.undocked.as_ref()]
                .into_iter()
                .flatten()
                .chain(s.clock_set.iter())
                .all(|e| e.seq.is_some())
        }))
    }

    /// Whether the docking `report` describes is finished: every segment of
    /// its recorder *on its volume* finished and every event about them and
    /// the docking acknowledged. Records of the recorder's other volumes
    /// (another card, a volume not docked now) do not count.
    pub fn session_done(&self, report: &SessionReport) -> Result<bool, JournalError> {
        let Some(id) = report.recorder_id.as_deref() else {
            return Ok(false);
        };
        let volume = report.volume_id.as_deref().unwrap_or("");
        let segments_done = self
            .journal
            .segments_of(id)?
            .iter()
            .filter(|r| r.on_volume(volume))
            .all(SegmentRecord::is_done);
        Ok(segments_done && self.docking_acknowledged(id)?)
    }

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
        self.status.attaching(slot);
        let joined = tokio::task::spawn_blocking(move || {
            let mut transport = transport;
            let attached = transport.attach();
            (transport, attached)
        })
        .await;
        let (mut transport, attached) = match joined {
            Ok(pair) => pair,
            Err(e) => {
                // The transport was lost with the panicking thread.
                let msg = format!("internal error while attaching: {e}");
                self.status.error(slot, &msg);
                report.error = Some(msg);
                return (Box::new(Gone), report);
            }
        };
        let attached = match attached {
            Ok(a) => a,
            Err(e) => {
                let msg = e.to_string();
                tracing::error!(slot, error = %msg, "cannot attach the recorder");
                self.status.error(slot, &msg);
                report.error = Some(msg);
                return (transport, report);
            }
        };
        let recorder_id = attached.identity.id.clone();
        let volume_id = attached.volume_id.clone();
        report.recorder_id = Some(recorder_id.clone());
        report.volume_id = Some(volume_id.clone());
        let offset_ms = attached.clock.map(|c| c.offset_ms()).unwrap_or(0);
        tracing::info!(slot, recorder = %recorder_id, profile = %attached.profile.name, offset_ms, "recorder attached");

        if let Err(e) = self.docked(slot, &attached).await {
            let msg = format!("cannot record the docking: {e}");
            self.status.error(slot, &msg);
            report.error = Some(msg);
            return (transport, report);
        }
        transport = self.maybe_set_clock(slot, transport, &attached).await;

        let volume = attached.volume.clone();
        let storage = attached.profile.storage.clone();
        let listing = tokio::task::spawn_blocking(move || volume.list(&storage)).await;
        let listing = match listing {
            Ok(Ok(l)) => l,
            Ok(Err(e)) => {
                let msg = e.to_string();
                self.status.error(slot, &msg);
                report.error = Some(msg);
                return (transport, report);
            }
            Err(e) => {
                let msg = format!("internal error while listing: {e}");
                self.status.error(slot, &msg);
                report.error = Some(msg);
                return (transport, report);
            }
        };
        for s in &listing.skipped {
            if s.reason.contains("symbolic")
                || s.reason.contains("file system")
                || s.reason.contains("too")
            {
                tracing::warn!(slot, path = %String::from_utf8_lossy(&s.relative), reason = s.reason, "skipped on the recorder");
            }
        }

        // Every listed file gets a record (or finds its own); unfinished
        // records of this volume whose file is no longer listed are resumed
        // without it, as far as what is at their path allows.
        let mut work: Vec<(SegmentRecord, Option<SourceFile>, Option<AtPath>)> = Vec::new();
        let listed: std::collections::HashSet<(Vec<u8>, u64, i128)> = listing
            .files
            .iter()
            .map(|f| (f.relative.clone(), f.size, f.mtime_ns))
            .collect();
        for f in listing.files {
            let ident = SourceIdentity {
                recorder_id: &recorder_id,
                relative_path: &f.relative,
                size: f.size,
                mtime_ns: f.mtime_ns,
                discriminator: None,
            };
            let mut original = attached
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
            if !original.is_empty() {
                original.push(b'/');
            }
            original.extend_from_slice(&f.relative);
            let record = SegmentRecord {
                segment_id: ident.segment_id(),
                recorder_id: recorder_id.clone(),
                model: attached.identity.model.clone(),
                profile: attached.profile.name.clone(),
                recorder_officer: attached.identity.officer_id.clone(),
                slot: slot.to_owned(),
                source: SourceRecord {
                    relative_b64: to_b64(&f.relative),
                    original_b64: to_b64(&original),
                    size: f.size,
                    mtime_ns: f.mtime_ns,
                    dev: f.dev,
                    ino: f.ino,
                },
                object_key: ident.object_key(),
                clock_offset_ms: offset_ms,
                step: Step::Discovered,
                media: None,
                recorded: None,
                officer_id: None,
                upload: None,
                manifest: None,
                verify_method: None,
                events: Default::default(),
                last_error: None,
                volume_id: Some(volume_id.clone()),
                discriminator: None,
                rewiping: false,
                rewiped: Vec::new(),
            };
            match self.journal.discover(record) {
                Ok(r) => work.push((r, Some(f), None)),
                Err(e) => {
                    let msg = format!("journal: {e}");
                    self.status.error(slot, &msg);
                    report.error = Some(msg);
                    return (transport, report);
                }
            }
        }
        match self.journal.segments_of(&recorder_id) {
            Ok(all) => {
                let mut elsewhere = 0;
                for r in all {
                    let unfinished = !r.step.is_final() || r.rewiping;
                    if !unfinished || work.iter().any(|(w, _, _)| w.segment_id == r.segment_id) {
                        continue;
                    }
                    if !r.on_volume(&volume_id) {
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
                    work.push((r, None, Some(at)));
                }
                if elsewhere > 0 {
                    tracing::info!(slot, recorder = %recorder_id, elsewhere, "unfinished segments of this recorder's other volumes are left for when those are docked");
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot read the journal"),
        }

        report.segments = work.len();
        let bytes: u64 = work.iter().map(|(r, _, _)| r.source.size).sum();
        self.status.ingesting(
            slot,
            &recorder_id,
            &attached.profile.name,
            work.len(),
            bytes,
        );
        let to_upload = work
            .iter()
            .filter(|(r, _, _)| r.step < Step::Uploaded)
            .count();
        for (r, _, _) in &work {
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
        let mut tasks = JoinSet::new();
        for (r, f, at) in work {
            let dock = self.clone();
            let session = session.clone();
            tasks.spawn(async move {
                let id = r.segment_id.clone();
                let result = dock.segment(&session, r, f, at).await;
                (id, result)
            });
        }
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((_, Ok(()))) => {
                    report.done += 1;
                    self.status.segment_done(slot);
                }
                Ok((id, Err(e))) => {
                    let (why, cancelled) = match e {
                        StepError::Retry(w) | StepError::Stop(w) => (w, false),
                        StepError::Cancelled(w) => (w, true),
                    };
                    report.cancelled |= cancelled;
                    let _ = self
                        .journal
                        .update_lazy(&recorder_id, &id, |r| r.last_error = Some(why.clone()));
                    tracing::warn!(slot, segment = %id, error = %why, "segment left unfinished");
                    self.status.segment_failed(slot, &why);
                    report.failed.push((id, why));
                }
                Err(e) => report
                    .failed
                    .push(("?".into(), format!("internal error: {e}"))),
            }
        }
        let state = if report.failed.is_empty() {
            SlotState::Done
        } else {
            SlotState::Incomplete
        };
        self.status.state(slot, state);
        tracing::info!(slot, recorder = %recorder_id, done = report.done, failed = report.failed.len(), "docking finished");
        (transport, report)
    }

    /// Record the docking (once per docking: a restart of the dock during
    /// an open docking does not record another).
    async fn docked(&self, slot: &str, attached: &Attached) -> Result<(), StepError> {
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
    async fn maybe_set_clock(
        &self,
        slot: &str,
        transport: Box<dyn RecorderTransport>,
        attached: &Attached,
    ) -> Box<dyn RecorderTransport> {
        let profile = &attached.profile;
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
            self.status.empty(slot);
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
        self.status.empty(slot);
    }

    // -----------------------------------------------------------------------
    // One segment.

    /// Take one segment from wherever its record stands to a final step.
    /// `file` is its file as listed; an unlisted record comes with what
    /// was at its path right after the listing (`at`).
    async fn segment(
        &self,
        s: &Session,
        record: SegmentRecord,
        file: Option<SourceFile>,
        at: Option<AtPath>,
    ) -> Result<(), StepError> {
        let name = String::from_utf8_lossy(&record.relative())
            .escape_debug()
            .to_string();
        if let Some(f) = file {
            if matches!(record.step, Step::Wiped | Step::Gone) {
                // The journal has this file as stored, verified and gone
                // from the recorder, yet a file with its path, size and time
                // is listed again: the bytes decide.
                return self.reappeared(s, record, f).await;
            }
            return self.walk(s, record, Some(f), None).await;
        }
        let at = at.unwrap_or(AtPath::Unknown("not looked at".into()));
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
        self.walk(s, record, None, Some(at)).await
    }

    /// The segment's steps, from its record's to a final one. An unlisted
    /// record (`file` none) comes with what is at its path: it becomes Gone
    /// at Verified only if nothing or another file is there.
    async fn walk(
        &self,
        s: &Session,
        record: SegmentRecord,
        file: Option<SourceFile>,
        unlisted: Option<AtPath>,
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
            if rec.step.is_final() {
                return Ok(());
            }
            let result = match rec.step {
                Step::Discovered => self.probe(s, &rec, file.as_ref()).await,
                Step::Uploading => self.upload(s, &rec, file.as_ref()).await,
                Step::Uploaded => self.record(&rec).await,
                Step::Recorded => self.verify(&rec).await,
                Step::Verified => match (&file, &unlisted) {
                    (None, Some(at @ (AtPath::TheFile | AtPath::Unknown(_)))) => Err(
                        StepError::Stop(not_listed(&String::from_utf8_lossy(&rec.relative()), at)),
                    ),
                    _ => self.after_verified(s, &rec, file.is_some()).await,
                },
                Step::Wiping => self.wipe(s, &rec, file.as_ref()).await,
                Step::Wiped | Step::Kept | Step::Gone => Ok(()),
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

    /// A file listed with the name, size and time of a segment that is
    /// Wiped or Gone: the same bytes are removed again (a removal that
    /// never reached the medium); other bytes are a new segment beside the
    /// stored one (a recorder whose clock and counter were reset), with the
    /// content digest in its id and object key.
    async fn reappeared(
        &self,
        s: &Session,
        rec: SegmentRecord,
        file: SourceFile,
    ) -> Result<(), StepError> {
        let digest = self.content_digest(s, &file).await?;
        let stored = rec.upload.as_ref().map(|u| u.digests.sha256.to_string());
        if stored.as_deref() == Some(digest.as_str()) {
            return self.rewipe(s, &rec, &file).await;
        }
        let ident = SourceIdentity {
            recorder_id: &rec.recorder_id,
            relative_path: &file.relative,
            size: file.size,
            mtime_ns: file.mtime_ns,
            discriminator: Some(&digest),
        };
        let id = ident.segment_id();
        let record = match self.journal.segment(&rec.recorder_id, &id)? {
            // That later recording was stored and removed before, too.
            Some(r) if matches!(r.step, Step::Wiped | Step::Gone) => {
                return self.rewipe(s, &r, &file).await
            }
            Some(r) => r,
            None => {
                let a = &s.attached;
                self.journal.discover(SegmentRecord {
                    segment_id: id.clone(),
                    recorder_id: rec.recorder_id.clone(),
                    model: a.identity.model.clone(),
                    profile: a.profile.name.clone(),
                    recorder_officer: a.identity.officer_id.clone(),
                    slot: s.slot.clone(),
                    source: SourceRecord {
                        dev: file.dev,
                        ino: file.ino,
                        ..rec.source.clone()
                    },
                    object_key: ident.object_key(),
                    clock_offset_ms: a.clock.map(|c| c.offset_ms()).unwrap_or(0),
                    step: Step::Discovered,
                    media: None,
                    recorded: None,
                    officer_id: None,
                    upload: None,
                    manifest: None,
                    verify_method: None,
                    events: Default::default(),
                    last_error: None,
                    volume_id: Some(s.volume_id.clone()),
                    discriminator: Some(digest.clone()),
                    rewiping: false,
                    rewiped: Vec::new(),
                })?
            }
        };
        tracing::warn!(slot = %s.slot, stored = %rec.segment_id, segment = %id, file = %String::from_utf8_lossy(&rec.relative()), "a different recording with the name, size and time of a stored segment (a reset clock?): ingested as a new segment beside it");
        self.status.note(
            &s.slot,
            &format!(
                "{id}: a new recording with the name, size and time of {}; ingested beside it",
                rec.segment_id
            ),
        );
        if record.step < Step::Uploaded {
            s.to_upload.fetch_add(1, Ordering::Relaxed);
        }
        self.walk(s, record, Some(file), None).await
    }

    /// The SHA-256 of a listed file, as `sha256:<hex>` (one read, the
    /// recorder's reading permit held; the file checked against the listing).
    async fn content_digest(&self, s: &Session, file: &SourceFile) -> Result<String, StepError> {
        let _reading = s
            .reading
            .acquire()
            .await
            .map_err(|_| StepError::Cancelled("closed".into()))?;
        let mut f = s.attached.volume.open(file).map_err(volume_error)?;
        let path = s.attached.volume.path_of(&file.relative);
        let hashed = tokio::task::spawn_blocking(move || {
            use sha2::Digest as _;
            use std::io::Read as _;
            let mut h = sha2::Sha256::new();
            let mut buf = vec![0u8; 1 << 20];
            loop {
                match f.read(&mut buf) {
                    Ok(0) => return Ok(format!("sha256:{}", hex::encode(h.finalize()))),
                    Ok(n) => h.update(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(source) => return Err(VolumeError::Io { path, source }),
                }
            }
        })
        .await
        .map_err(|e| StepError::Stop(format!("internal error while hashing: {e}")))?;
        let digest = hashed.map_err(volume_error)?;
        s.attached.volume.check(file).map_err(volume_error)?;
        Ok(digest)
    }

    /// Remove again a file whose very bytes were stored, verified and
    /// removed (or found gone) before, and record one more `segment.wiped`:
    /// the same checks as the first wipe, with `rewiping` durable before
    /// the file is touched.
    async fn rewipe(
        &self,
        s: &Session,
        rec: &SegmentRecord,
        file: &SourceFile,
    ) -> Result<(), StepError> {
        if self.settings.wipe == WipePolicy::Never {
            // The dock keeps footage on recorders; these bytes are stored.
            return Ok(());
        }
        tracing::warn!(slot = %s.slot, segment = %rec.segment_id, file = %String::from_utf8_lossy(&rec.relative()), "on the recorder again with the very bytes stored and removed before (a removal that never reached the medium): removing it again");
        self.still_attached(s, "before the wipe; the file was not touched")
            .await?;
        self.journal
            .update(&rec.recorder_id, &rec.segment_id, |r| r.rewiping = true)?;
        let volume = s.attached.volume.clone();
        let f = file.clone();
        let removed = tokio::task::spawn_blocking(move || volume.remove(&f))
            .await
            .map_err(|e| StepError::Stop(format!("internal error while wiping: {e}")))?;
        match removed {
            Ok(()) | Err(VolumeError::Gone { .. }) => {}
            Err(e) => {
                self.still_attached(s, "during the wipe").await?;
                return Err(StepError::Stop(format!("not wiped: {e}")));
            }
        }
        self.still_attached(s, "during the wipe").await?;
        self.emit_rewiped(rec).await
    }

    /// A removal again (`rewiping`) left unrecorded by an earlier docking:
    /// recorded if the file is gone from its path.
    async fn finish_rewipe(
        &self,
        rec: &SegmentRecord,
        at: AtPath,
        name: &str,
    ) -> Result<(), StepError> {
        match at {
            AtPath::Nothing => self.emit_rewiped(rec).await,
            AtPath::Another => {
                self.journal
                    .update(&rec.recorder_id, &rec.segment_id, |r| {
                        r.rewiping = false;
                        r.last_error = Some("another file has its name on the recorder now; the second removal is not counted as wiped".into());
                    })?;
                Ok(())
            }
            AtPath::TheFile | AtPath::Unknown(_) => Err(StepError::Stop(not_listed(name, &at))),
        }
    }

    /// Build, journal and queue one more `segment.wiped` for `rec` (kept in
    /// its `rewiped`), ending its `rewiping`.
    async fn emit_rewiped(&self, rec: &SegmentRecord) -> Result<(), StepError> {
        let (recorder, seg) = (rec.recorder_id.as_str(), rec.segment_id.as_str());
        let d = Details::SegmentWiped(SegmentWiped {
            recorder_id: rec.recorder_id.clone(),
            original_name: Some(OriginalName::from_os_bytes(&rec.original())),
            verified_seq: rec.event(EventKind::Verified).and_then(|e| e.seq),
            again: true,
        });
        let owner = EventOwner {
            recorder_id: recorder.to_owned(),
            segment_id: Some(seg.to_owned()),
            kind: EventKind::Rewiped,
        };
        let journal = &self.journal;
        self.outbox
            .emit(
                &d,
                seg,
                owner,
                |env| {
                    journal
                        .update_lazy(recorder, seg, |r| {
                            if r.rewiping {
                                r.rewiped.push(EventState::new(env.clone()));
                                r.rewiping = false;
                            }
                        })
                        .map(|_| ())
                },
                |env| {
                    journal
                        .update_lazy(recorder, seg, |r| {
                            for e in &mut r.rewiped {
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

    fn source<'f>(&self, file: Option<&'f SourceFile>) -> Result<&'f SourceFile, StepError> {
        file.ok_or_else(|| {
            StepError::Stop("the file is no longer on the recorder, and was never stored".into())
        })
    }

    /// Step 1 → 2: probe and work out the times.
    async fn probe(
        &self,
        s: &Session,
        rec: &SegmentRecord,
        file: Option<&SourceFile>,
    ) -> Result<(), StepError> {
        let file = self.source(file)?;
        s.attached.volume.check(file).map_err(volume_error)?;
        let path = s.attached.volume.path_of(&file.relative);
        let opts = self.settings.probe.clone();
        let probe = {
            let _reading = s
                .reading
                .acquire()
                .await
                .map_err(|_| StepError::Cancelled("closed".into()))?;
            tokio::task::spawn_blocking(move || custos_media::probe_with(&path, &opts))
                .await
                .map_err(|e| StepError::Stop(format!("internal error in the media probe: {e}")))?
        };
        let probe = match probe {
            Ok(p) => p,
            Err(ProbeError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Err(StepError::Stop("the file left the recorder".into()))
            }
            Err(e) => return Err(StepError::Stop(e.to_string())),
        };
        let profile = &s.attached.profile;
        let name = profile
            .names
            .as_ref()
            .map(|p| p.fields(&file.name, profile.clock.time_zone))
            .unwrap_or_default();
        let readings = Readings {
            media_start: probe.creation_time.clone(),
            duration_ms: probe.duration_ms,
            name: name.clone(),
            mtime_ns: file.mtime_ns,
        };
        let recorded = times::recorded(&readings, &profile.clock, rec.clock_offset_ms, now());
        let officer = name
            .officer
            .or_else(|| rec.recorder_officer.clone())
            .unwrap_or_else(|| UNASSIGNED_OFFICER.to_owned());
        let media = probe.to_media();
        if let Some(d) = &media.damaged {
            tracing::warn!(slot = %s.slot, segment = %rec.segment_id, damaged = %d, "damaged recording; ingested and flagged");
        }
        self.journal
            .update_lazy(&rec.recorder_id, &rec.segment_id, |r| {
                if r.step == Step::Discovered {
                    r.media = Some(media.clone());
                    r.recorded = Some(recorded.clone());
                    r.officer_id = Some(officer.clone());
                    r.step = Step::Uploading;
                    r.last_error = None;
                }
            })?;
        Ok(())
    }

    /// Step 2 → 3: read once, hash, store.
    async fn upload(
        &self,
        s: &Session,
        rec: &SegmentRecord,
        file: Option<&SourceFile>,
    ) -> Result<(), StepError> {
        let file = self.source(file)?;
        let key = object_path(&rec.object_key)?;
        let _reading = s
            .reading
            .acquire()
            .await
            .map_err(|_| StepError::Cancelled("closed".into()))?;
        let _upload = self
            .uploads
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StepError::Cancelled("closed".into()))?;
        if s.cancel.is_cancelled() {
            return Err(StepError::Cancelled("the docking ended".into()));
        }
        let std_file = s.attached.volume.open(file).map_err(volume_error)?;
        let mut opts = self.settings.ingest.clone();
        opts.expected_size = Some(file.size);
        let status = self.status.clone();
        let (slot, seg) = (s.slot.clone(), rec.segment_id.clone());
        let progress = move |p: Progress| status.progress(&slot, &seg, p.done());
        // The file as opened and checked above (no link followed, same
        // inode as listed), read by the pipeline's file reader through
        // /proc/self/fd, which reopens this very inode; without /proc, the
        // open file itself through tokio.
        let fd_path = PathBuf::from(format!("/proc/self/fd/{}", std_file.as_raw_fd()));
        let ingest = async {
            if fd_path.exists() {
                let r = ingest_file(&fd_path, &self.store, &key, &opts, &progress).await;
                drop(std_file);
                r
            } else {
                let source =
                    tokio::io::AsyncReadExt::take(tokio::fs::File::from_std(std_file), file.size);
                ingest_segment(source, &self.store, &key, &opts, &progress).await
            }
        };
        let outcome = tokio::select! {
            r = ingest => r,
            _ = s.cancel.cancelled() => return Err(StepError::Cancelled("the docking ended during the upload".into())),
        };
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => return Err(ingest_error(e)),
        };
        let t = outcome.timings;
        tracing::debug!(
            segment = %rec.segment_id,
            bytes = outcome.size,
            total_ms = t.total.as_millis() as u64,
            read_ms = t.read.as_millis() as u64,
            hash_ms = t.hash.as_millis() as u64,
            upload_ms = t.upload.as_millis() as u64,
            stalled_ms = t.stalled.as_millis() as u64,
            "stored"
        );
        if outcome.size != file.size {
            return Err(StepError::Stop(format!(
                "read {} bytes where the recorder listed {}; the file changed while it was read",
                outcome.size, file.size
            )));
        }
        if let Some(d) = &rec.discriminator {
            if outcome.digests.sha256.to_string() != *d {
                return Err(StepError::Stop(format!(
                    "the file's bytes changed between the dock's two reads ({d}, then {}); it stays on the recorder",
                    outcome.digests.sha256
                )));
            }
        }
        s.attached.volume.check(file).map_err(volume_error)?;
        let upload = UploadRecord {
            size: outcome.size,
            digests: outcome.digests,
            e_tag: outcome.e_tag.clone(),
            store_checked_sha256: outcome.store_receipt().is_some(),
            already_present: outcome.already_present,
            finished_at: timestamp(now()),
        };
        self.journal
            .update_lazy(&rec.recorder_id, &rec.segment_id, |r| {
                if r.step == Step::Uploading {
                    r.upload = Some(upload.clone());
                    r.step = Step::Uploaded;
                    r.last_error = None;
                }
            })?;
        self.status.stored(&s.slot, &rec.segment_id, outcome.size);
        Ok(())
    }

    /// Step 3 → 4: manifest, stored next to the object; `segment.ingested`.
    async fn record(&self, rec: &SegmentRecord) -> Result<(), StepError> {
        let upload = rec
            .upload
            .clone()
            .ok_or_else(|| StepError::Stop("journal: uploaded without an upload record".into()))?;
        let envelope = match &rec.manifest {
            Some(m) => m.clone(),
            None => {
                let recorded = rec
                    .recorded
                    .clone()
                    .ok_or_else(|| StepError::Stop("journal: no recording times".into()))?;
                let media = rec
                    .media
                    .clone()
                    .ok_or_else(|| StepError::Stop("journal: no media summary".into()))?;
                let manifest = Manifest {
                    segment_id: rec.segment_id.clone(),
                    recorder: Recorder {
                        id: rec.recorder_id.clone(),
                        model: rec.model.clone(),
                        profile: rec.profile.clone(),
                    },
                    officer_id: rec
                        .officer_id
                        .clone()
                        .unwrap_or_else(|| UNASSIGNED_OFFICER.into()),
                    dock: ManifestDock {
                        id: self.settings.id.clone(),
                        clock_offset_ms: rec.clock_offset_ms,
                    },
                    original_name: OriginalName::from_os_bytes(&rec.original()),
                    size: upload.size,
                    digests: upload.digests,
                    late: is_late(recorded.end, upload.finished_at),
                    recorded,
                    media,
                    ingested_at: upload.finished_at,
                    object: ObjectRef {
                        url: self.settings.store_url.clone(),
                        key: rec.object_key.clone(),
                    },
                };
                let env = manifest
                    .sign(&self.key)
                    .map_err(|e| StepError::Stop(format!("cannot sign the manifest: {e}")))?;
                let stored = self
                    .journal
                    .update(&rec.recorder_id, &rec.segment_id, |r| {
                        if r.manifest.is_none() {
                            r.manifest = Some(env.clone());
                        }
                    })?;
                stored.manifest.unwrap_or(env)
            }
        };
        // The manifest next to the object: the same bytes on every retry.
        let manifest_key = object_path(&format!("{}.manifest.json", rec.object_key))?;
        let bytes = envelope.to_json();
        let mut opts = self.settings.ingest.clone();
        opts.expected_size = Some(bytes.len() as u64);
        ingest_segment(
            &bytes[..],
            &self.store,
            &manifest_key,
            &opts,
            &custos_ingest::NoProgress,
        )
        .await
        .map_err(ingest_error)?;

        let d = Details::SegmentIngested(SegmentIngested {
            manifest: envelope,
            object_key: Some(rec.object_key.clone()),
            sha256: Some(upload.digests.sha256.to_string()),
        });
        self.emit_segment(rec, EventKind::Ingested, d, Step::Recorded, None)
            .await
    }

    /// Step 4 → 5: the stored object is the segment.
    async fn verify(&self, rec: &SegmentRecord) -> Result<(), StepError> {
        let upload = rec
            .upload
            .clone()
            .ok_or_else(|| StepError::Stop("journal: recorded without an upload record".into()))?;
        let key = object_path(&rec.object_key)?;
        let mode = match (
            &upload.e_tag,
            upload.store_checked_sha256 && self.settings.trust_store_checksum,
        ) {
            (Some(e_tag), true) => VerifyMode::TrustStoreChecksum(StoreReceipt {
                size: upload.size,
                sha256: upload.digests.sha256,
                e_tag: e_tag.clone(),
            }),
            _ => VerifyMode::ReadBack,
        };
        let verifying = Instant::now();
        let verified = verify_object(&self.store, &key, &upload.digests, mode).await;
        tracing::debug!(segment = %rec.segment_id, ms = verifying.elapsed().as_millis() as u64, "verified");
        let verified = match verified {
            Ok(v) => v,
            Err(e @ VerifyError::Store { .. }) => return Err(StepError::Retry(e.to_string())),
            Err(e) => {
                return Err(StepError::Stop(format!(
                    "the stored object does not check out; the segment stays on the recorder: {e}"
                )))
            }
        };
        let method = match verified.method {
            VerifyMethod::StoreChecksum => "store_checksum",
            _ => "read_back",
        };
        let d = Details::SegmentVerified(SegmentVerified {
            method: method.to_owned(),
            object_key: rec.object_key.clone(),
            sha256: verified.digests.sha256.to_string(),
        });
        self.emit_segment(rec, EventKind::Verified, d, Step::Verified, Some(method))
            .await
    }

    /// Step 5 → 6 (or 7): wait for the ledger's acknowledgement of
    /// `segment.verified`, then wipe per policy.
    async fn after_verified(
        &self,
        s: &Session,
        rec: &SegmentRecord,
        file_present: bool,
    ) -> Result<(), StepError> {
        self.wait_acknowledged(s, rec, EventKind::Verified).await?;
        let next = match self.settings.wipe {
            WipePolicy::Never => Step::Kept,
            _ if !file_present => Step::Gone,
            _ => Step::Wiping,
        };
        // Wiping is made durable before the file is touched (step 6).
        let update = |f: &dyn Fn(&mut SegmentRecord)| {
            if next == Step::Wiping {
                self.journal.update(&rec.recorder_id, &rec.segment_id, f)
            } else {
                self.journal
                    .update_lazy(&rec.recorder_id, &rec.segment_id, f)
            }
        };
        update(&|r: &mut SegmentRecord| {
            if r.step == Step::Verified {
                r.step = next;
                if next == Step::Gone {
                    r.last_error =
                        Some("the file left the recorder by other means before the wipe".into());
                }
            }
        })?;
        Ok(())
    }

    /// Step 6 → 7: remove the file, if it is still the file verified, and
    /// record `segment.wiped` only when the removal is known to be on the
    /// recorder.
    ///
    /// The order, and what an unplug at each point leaves:
    ///
    /// 1. the session still open and the medium still the one attached
    ///    (else the file is not touched; the step stays Wiping);
    /// 2. the file checked against the listing, removed, the file system
    ///    synced ([`crate::volume::Volume::remove`]);
    /// 3. the session still open and the medium still the one attached,
    ///    *after* the sync returned. An unplug before the removal, between
    ///    it and the sync, or during the sync fails this check: a removal
    ///    on a mount whose device left may never reach the recorder, so
    ///    the step stays Wiping and the next docking looks again (file gone:
    ///    wiped; file there with the same path, size and time: removed
    ///    again). An unplug after this check is after a sync that ran
    ///    against the attached medium, so the removal is on it;
    /// 4. `segment.wiped`.
    async fn wipe(
        &self,
        s: &Session,
        rec: &SegmentRecord,
        file: Option<&SourceFile>,
    ) -> Result<(), StepError> {
        if !rec.acknowledged(EventKind::Verified) {
            // Never reached: step 6 is written only after the acknowledgement.
            return Err(StepError::Stop(
                "refusing to wipe: segment.verified is not acknowledged".into(),
            ));
        }
        self.still_attached(s, "before the wipe; the file was not touched")
            .await?;
        if let Some(f) = file {
            let volume = s.attached.volume.clone();
            let f = f.clone();
            let removed = tokio::task::spawn_blocking(move || volume.remove(&f))
                .await
                .map_err(|e| StepError::Stop(format!("internal error while wiping: {e}")))?;
            match removed {
                Ok(()) => {}
                Err(VolumeError::Gone { .. }) => {
                    tracing::info!(slot = %s.slot, segment = %rec.segment_id, "the file was already gone at the wipe");
                }
                Err(e) => {
                    self.still_attached(s, "during the wipe").await?;
                    return Err(StepError::Stop(format!("not wiped: {e}")));
                }
            }
        }
        self.still_attached(s, "during the wipe").await?;
        tracing::info!(slot = %s.slot, segment = %rec.segment_id, file = %String::from_utf8_lossy(&rec.relative()), "wiped from the recorder");
        let verified_seq = rec.event(EventKind::Verified).and_then(|e| e.seq);
        let d = Details::SegmentWiped(SegmentWiped {
            recorder_id: rec.recorder_id.clone(),
            original_name: Some(OriginalName::from_os_bytes(&rec.original())),
            verified_seq,
            again: false,
        });
        self.emit_segment(rec, EventKind::Wiped, d, Step::Wiped, None)
            .await
    }

    /// `Ok` if the session is open and its medium is still the one
    /// attached; else `Cancelled`, saying the recorder left `when`.
    async fn still_attached(&self, s: &Session, when: &str) -> Result<(), StepError> {
        let why = if s.cancel.is_cancelled() {
            Some("the docking ended".to_owned())
        } else {
            // USB transfers and sysfs reads: on a blocking thread.
            let medium = s.attached.medium.clone();
            match tokio::task::spawn_blocking(move || medium.still_attached()).await {
                Ok(r) => r.err(),
                Err(e) => Some(format!("internal error while checking the recorder: {e}")),
            }
        };
        match why {
            None => Ok(()),
            Some(why) => {
                tracing::warn!(slot = %s.slot, error = %why, "the recorder left {when}; the wipe is checked again at the next docking");
                Err(StepError::Cancelled(format!(
                    "the recorder left {when} ({why}); not counted as wiped, checked again at the next docking"
                )))
            }
        }
    }

    /// Build, journal and queue a segment event, moving the record to `step`.
    async fn emit_segment(
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
    async fn wait_acknowledged(
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
                self.status.state(&s.slot, SlotState::WaitingForLedger);
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

/// Why an unlisted record's file is not counted wiped (or gone).
fn not_listed(name: &str, at: &AtPath) -> String {
    match at {
        AtPath::Unknown(why) => format!(
            "{name} was not listed and what is at its path cannot be told ({why}); not counted as wiped, left for the next docking"
        ),
        _ => format!(
            "{name} is still on the recorder but was not listed (past a listing limit, or outside what the profile lists); not counted as wiped, left for the next docking"
        ),
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

/// What is at an unlisted record's path, looked at (`lstat`, component by
/// component from the volume root, never following a link) right after
/// the listing. Nothing is read or removed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AtPath {
    /// Nothing: the file is gone from the recorder.
    Nothing,
    /// A regular file with the record's size and time: still there.
    TheFile,
    /// Something else holds its name.
    Another,
    /// Cannot be told (a link or another file system on the way, an I/O
    /// error).
    Unknown(String),
}

/// See [`AtPath`]. The path is the record's original name (relative to the
/// volume root as it was discovered), so a change of profile or media root
/// does not make a file look gone.
fn at_path(root: &std::path::Path, rec: &SegmentRecord) -> AtPath {
    use std::os::unix::ffi::OsStrExt as _;
    use std::os::unix::fs::MetadataExt as _;
    let original = rec.original();
    let parts: Vec<&[u8]> = original
        .split(|b| *b == b'/')
        .filter(|c| !c.is_empty() && *c != b"." && *c != b"..")
        .collect();
    if parts.is_empty() {
        return AtPath::Unknown("the journal has no path for it".into());
    }
    let root_dev = match std::fs::symlink_metadata(root) {
        Ok(m) => m.dev(),
        Err(e) => return AtPath::Unknown(format!("{}: {e}", root.display())),
    };
    let mut at = root.to_path_buf();
    for (i, c) in parts.iter().enumerate() {
        at.push(std::ffi::OsStr::from_bytes(c));
        let last = i + 1 == parts.len();
        match std::fs::symlink_metadata(&at) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return AtPath::Nothing,
            Err(e) => return AtPath::Unknown(format!("{}: {e}", at.display())),
            Ok(m) if m.file_type().is_symlink() => {
                return AtPath::Unknown("a symbolic link is on its path".into())
            }
            Ok(m) if m.dev() != root_dev => {
                return AtPath::Unknown("another file system is mounted on its path".into())
            }
            Ok(m) if !last && !m.is_dir() => return AtPath::Nothing,
            Ok(m) if last => {
                let mtime = i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec());
                let same =
                    m.is_file() && m.len() == rec.source.size && mtime == rec.source.mtime_ns;
                return if same {
                    AtPath::TheFile
                } else {
                    AtPath::Another
                };
            }
            Ok(_) => {}
        }
    }
    AtPath::Unknown("unreachable: the walk ends at the last component".into())
}

fn object_path(key: &str) -> Result<ObjectPath, StepError> {
    ObjectPath::parse(key).map_err(|e| StepError::Stop(format!("object key {key:?}: {e}")))
}

fn volume_error(e: VolumeError) -> StepError {
    match e {
        VolumeError::Io { .. } => StepError::Retry(e.to_string()),
        other => StepError::Stop(other.to_string()),
    }
}

fn ingest_error(e: IngestError) -> StepError {
    if e.is_retryable() {
        StepError::Retry(e.to_string())
    } else {
        StepError::Stop(e.to_string())
    }
}

/// Stands in for a transport lost to a panic on a blocking thread.
#[derive(Debug)]
struct Gone;

impl RecorderTransport for Gone {
    fn attach(&mut self) -> Result<Attached, crate::transport::TransportError> {
        Err(crate::transport::TransportError::NoId(
            "the transport was lost".into(),
        ))
    }
    fn set_clock(
        &mut self,
        _: &Attached,
        _: OffsetDateTime,
    ) -> Result<Option<&'static str>, crate::transport::TransportError> {
        Ok(None)
    }
    fn present(&mut self) -> bool {
        false
    }
    fn detach(&mut self) {}
}
