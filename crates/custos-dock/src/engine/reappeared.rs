//! A file listed with the name, size and time of a segment the journal has
//! as wiped or gone: its bytes decide. The very bytes stored are removed
//! again (a removal that never reached the medium), under the wipe's own
//! checks, with `rewiping` durable before the file is touched and one more
//! `segment.wiped` (`again: true`); other bytes are a new segment beside the
//! stored one, whose id and object key also cover its content digest.
//! Never leaves such a file on the recorder as "done", never writes it
//! onto the stored segment's key.

use std::sync::atomic::Ordering;

use custos_core::config::WipePolicy;
use custos_core::entry::details::SegmentWiped;
use custos_core::entry::Details;
use custos_core::manifest::OriginalName;

use super::at_path::{not_listed, AtPath};
use super::docking::new_record;
use super::error::{volume_error, StepError};
use super::walk::Found;
use super::{Dock, Session};
use crate::journal::{EventKind, EventOwner, EventState, SegmentRecord, SourceRecord, Step};
use crate::naming::SourceIdentity;
use crate::volume::{SourceFile, VolumeError};

impl Dock {
    /// A file listed with the name, size and time of a segment that is
    /// Wiped or Gone: the same bytes are removed again (a removal that
    /// never reached the medium); other bytes are a new segment beside the
    /// stored one (a recorder whose clock and counter were reset), with the
    /// content digest in its id and object key.
    pub(super) async fn reappeared(
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
                let source = SourceRecord {
                    dev: file.dev,
                    ino: file.ino,
                    ..rec.source.clone()
                };
                self.journal.discover(new_record(
                    &s.attached,
                    &s.slot,
                    &s.volume_id,
                    &rec.recorder_id,
                    &ident,
                    source,
                    Some(digest.clone()),
                ))?
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
        self.walk(s, record, Found::Listed(file)).await
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
    pub(super) async fn finish_rewipe(
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
}
