//! The dock's engine: a [`Dock`] holds what every slot shares (the key, the
//! store, the journal, the outbox, the status board, the profiles), and
//! [`Dock::ingest`] runs one docking of one recorder from attach to the
//! last wipe, one task per segment, each walking the journal's steps
//! (see [`crate::journal`] for the steps and what a crash at each leaves).
//! [`Dock::dock_once`] is the one-shot docking of `custos dock ingest`
//! (attach, ingest, undock, wait for the ledger) with its [`OnceOutcome`].
//!
//! The rooms, in the order a segment meets them:
//!
//! - `docking.rs`: one docking — attach, record `recorder.docked`, set the
//!   clock (`recorder.rs`, which also records the undocking), list the
//!   volume, give every listed file and every unfinished record of this
//!   volume a task;
//! - `stage.rs`: `Stage`, the journal's [`Step`](crate::journal::Step) of a record read once
//!   into a typed value whose variants carry what earlier steps produced
//!   (pure, unit-tested); `walk.rs` takes a segment from stage to stage,
//!   with retries, and emits its events;
//! - one file per step: `probe.rs` (1 → 2: probe, times), `upload.rs`
//!   (2 → 3: read once, hash, store), `record.rs` (3 → 4: manifest,
//!   `segment.ingested`), `verify.rs` (4 → 5: the stored object checked,
//!   `segment.verified`), `wipe.rs` (5 → 6 → 7: the acknowledgement
//!   awaited, the file removed, `segment.wiped`);
//! - `reappeared.rs`: a file listed again after its segment was wiped (the
//!   bytes decide); `at_path.rs`: what is at an unlisted record's path;
//! - `once.rs`: the one-shot lifecycle; `error.rs`: how a step fails.
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
//! for the next docking.
//!
//! ## What the engine must never do
//!
//! Remove a file whose `segment.verified` the ledger has not acknowledged
//! (DESIGN.md invariant 1): a slot is safe to undock only when every
//! segment is verified and acknowledged. Record `segment.wiped` for a
//! removal not known to be on the recorder. Touch anything outside the
//! recorder's media root. Change the journal's step order or its flushes:
//! they are what a killed dock resumes from.

use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use custos_core::config::{Config, WipePolicy};
use custos_core::keys::KeySet;
use custos_core::manifest::Timestamp;
use custos_ingest::{IngestOptions, IngestStore};
use custos_media::ProbeOptions;
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::journal::{Journal, JournalError, SegmentRecord};
use crate::outbox::{LedgerLink, Outbox, OutboxError};
use crate::profile::Profiles;
use crate::status::{BoardSettings, StatusBoard};
use crate::transport::{Attached, RecorderTransport};

mod at_path;
mod docking;
mod error;
mod once;
mod probe;
mod reappeared;
mod record;
mod recorder;
mod stage;
mod upload;
mod verify;
mod walk;
mod wipe;

pub use once::{OnceOutcome, OnceVerdict};

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
    /// What the status board needs (`[dock] stuck_after`, `roster`).
    pub board: BoardSettings,
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
            board: BoardSettings {
                stuck_after: d
                    .stuck_after()
                    .unwrap_or(BoardSettings::default().stuck_after),
                roster: Default::default(),
            },
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
    key: Arc<KeySet>,
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

#[expect(
    clippy::disallowed_methods,
    reason = "the engine's one reading of the dock's wall clock"
)]
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
        key: impl Into<KeySet>,
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
        let key = Arc::new(key.into());
        let outbox = Arc::new(Outbox::new(journal.clone(), link, key.clone())?);
        let requeued = outbox.requeue_unacknowledged().await?;
        if requeued > 0 {
            tracing::info!(
                requeued,
                "unacknowledged events from before a restart were queued again"
            );
        }
        let status = Arc::new(StatusBoard::with_settings(
            &settings.id,
            settings.board.clone(),
        ));
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
            // Since when events wait (as this process saw the queue), and
            // the delivery failures already counted.
            let mut waiting_since: Option<Instant> = None;
            let mut failures = 0;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let pending = outbox.pending();
                waiting_since = match pending {
                    0 => None,
                    _ => waiting_since.or_else(|| Some(Instant::now())),
                };
                status.set_ledger(
                    pending,
                    waiting_since.map(|t| t.elapsed()),
                    outbox.trouble(),
                );
                let now_failed = outbox.failed_deliveries();
                for _ in failures..now_failed {
                    status.metrics().ledger_error();
                }
                failures = now_failed;
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
